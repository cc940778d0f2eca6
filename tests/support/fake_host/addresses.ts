/**
 * IPv4/IPv6 addresses and prefixes as iproute2 reads and prints them, for the
 * fake host's kernel model.
 *
 * @module
 */

/** Address family: 4 (inet) or 6 (inet6). */
export type Family = 4 | 6;

/** An address as bytes. */
export interface Address {
  readonly family: Family;
  /** 4 or 16 bytes. */
  readonly bytes: readonly number[];
}

/** A prefix: an address and a length. */
export interface Prefix extends Address {
  /** Prefix length in bits. */
  readonly len: number;
}

function parseIpv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = parts.map((part) => (/^\d{1,3}$/.test(part) ? Number(part) : NaN));
  return bytes.every((b) => Number.isInteger(b) && b <= 255) ? bytes : undefined;
}

function parseIpv6(text: string): number[] | undefined {
  let s = text;
  const lastColon = s.lastIndexOf(":");
  const last = s.slice(lastColon + 1);
  if (last.includes(".")) {
    const v4 = parseIpv4(last);
    if (!v4) return undefined;
    const hi = ((v4[0]! << 8) | v4[1]!).toString(16);
    const lo = ((v4[2]! << 8) | v4[3]!).toString(16);
    s = `${s.slice(0, lastColon + 1)}${hi}:${lo}`;
  }
  if (!/^[0-9a-fA-F:]+$/.test(s) || s.split("::").length > 2) return undefined;
  const groupsOf = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    for (const g of part.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[] | undefined;
  if (s.includes("::")) {
    const [head, rest] = s.split("::") as [string, string];
    const a = groupsOf(head);
    const b = groupsOf(rest);
    if (!a || !b || a.length + b.length > 7) return undefined;
    groups = [...a, ...new Array<number>(8 - a.length - b.length).fill(0), ...b];
  } else {
    groups = groupsOf(s);
    if (!groups || groups.length !== 8) return undefined;
  }
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** Parses an address of either family (no prefix length). */
export function parseAddress(text: string): Address | undefined {
  const v4 = parseIpv4(text);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = text.includes(":") ? parseIpv6(text) : undefined;
  return v6 ? { family: 6, bytes: v6 } : undefined;
}

/** Prints an address like `inet_ntop` (glibc: the longest run of ≥ 2 zero groups becomes `::`). */
export function formatAddress(address: Address): string {
  const { bytes } = address;
  if (address.family === 4) return bytes.join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.slice(12).join(".")}`;
  }
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.len) best = { start: i, len: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.len < 2) return hex.join(":");
  const head = hex.slice(0, best.start).join(":");
  const tail = hex.slice(best.start + best.len).join(":");
  return `${head}::${tail}`;
}

/** Parses `addr[/len]`; a missing length is the host length. */
export function parsePrefix(text: string): Prefix | undefined {
  const [addr, len, extra] = text.split("/");
  if (addr === undefined || extra !== undefined) return undefined;
  const address = parseAddress(addr);
  if (!address) return undefined;
  const max = address.family === 4 ? 32 : 128;
  if (len === undefined) return { ...address, len: max };
  if (!/^\d{1,3}$/.test(len) || Number(len) > max) return undefined;
  return { ...address, len: Number(len) };
}

/** The prefix with host bits cleared. */
export function maskPrefix(prefix: Prefix): Prefix {
  const bytes = prefix.bytes.map((b, i) => {
    const bits = Math.max(0, Math.min(8, prefix.len - i * 8));
    return b & ((0xff << (8 - bits)) & 0xff);
  });
  return { family: prefix.family, bytes, len: prefix.len };
}

/** True when bits beyond the prefix length are set. */
export function hasHostBits(prefix: Prefix): boolean {
  return maskPrefix(prefix).bytes.some((b, i) => b !== prefix.bytes[i]);
}

/** The zero prefix (`default`) of a family. */
export function defaultPrefix(family: Family): Prefix {
  return { family, bytes: new Array<number>(family === 4 ? 4 : 16).fill(0), len: 0 };
}

/** Canonical text kept in the model: `10.0.0.0/16`, `fd00::/64`, `::/0`. */
export function prefixText(prefix: Prefix): string {
  return `${formatAddress(prefix)}/${prefix.len}`;
}

/** How `ip route` prints a destination: `default`, a host route without its length. */
export function displayPrefix(prefix: Prefix): string {
  if (prefix.len === 0) return "default";
  if (prefix.len === (prefix.family === 4 ? 32 : 128)) return formatAddress(prefix);
  return prefixText(prefix);
}

/** True when `prefix` contains `address`. */
export function prefixContains(prefix: Prefix, address: Address): boolean {
  if (prefix.family !== address.family) return false;
  const masked = maskPrefix({ ...address, len: prefix.len });
  return masked.bytes.every((b, i) => b === maskPrefix(prefix).bytes[i]);
}

function bit(bytes: readonly number[], i: number): number {
  return (bytes[i >> 3]! >> (7 - (i & 7))) & 1;
}

/**
 * Dump order of routes: the IPv4 trie lists keys in ascending order (longer
 * prefix first on the same key); the IPv6 radix tree walks more specific
 * prefixes before the prefix that contains them.
 */
export function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  const min = Math.min(a.len, b.len);
  for (let i = 0; i < min; i++) {
    const d = bit(a.bytes, i) - bit(b.bytes, i);
    if (d !== 0) return d;
  }
  if (a.family === 4) {
    for (let i = min; i < 32; i++) {
      const d = bit(a.bytes, i) - bit(b.bytes, i);
      if (d !== 0) return d;
    }
  }
  return b.len - a.len;
}

/** The EUI-64 link-local address the kernel derives from a MAC. */
export function linkLocalFromMac(mac: string): string {
  const m = mac.split(":").map((h) => parseInt(h, 16));
  const bytes = [
    0xfe,
    0x80,
    0,
    0,
    0,
    0,
    0,
    0,
    m[0]! ^ 2,
    m[1]!,
    m[2]!,
    0xff,
    0xfe,
    m[3]!,
    m[4]!,
    m[5]!,
  ];
  return formatAddress({ family: 6, bytes });
}
