/**
 * Identifiers and encodings (SPEC §4). Every expected value below is derived
 * by hand from the SPEC, not copied from the implementation:
 *
 * - base62 digit values: `0`-`9` → 0-9, `A`-`Z` → 10-35, `a`-`z` → 36-61.
 * - `jU` = 45·62 + 30 = 2820 = 0xb04; `G` = 16 = 0x10.
 * - 2^48 − 1 = 281474976710655 = `1HvWXNAa7`, 2^48 = `1HvWXNAa8`.
 * - 2^16 − 1 = 65535 = 17·62² + 3·62 + 1 = `H31`, 2^16 = `H32`.
 *
 * Note: SPEC §4 also says "vpc `0000000jU` → `4d2`", but 0x4d2 = 1234 is
 * `Ju` in the SPEC's own alphabet (`jU` is 1234 only in a `0-9a-zA-Z`
 * alphabet). The alphabet rule ("value 10 is `A`, 36 is `a`") is the
 * normative one, so these tests use 0xb04 for `jU`.
 */

import assert from "node:assert/strict";
import {
  attachmentFromValue,
  BASE62_ALPHABET,
  bgpVrfInstanceName,
  decodeBase62,
  decodeSrv6Endpoint,
  encodeBase62,
  formatIp,
  formatIPv4,
  formatIPv6,
  formatNetwork,
  type Identifier,
  interfaceNames,
  nodeLabelValue,
  parseAttachment,
  parseInterfaceName,
  parseIp,
  parsePrefix,
  parseVpc,
  routeDistinguisher,
  routeNumber,
  routeTarget,
  srv6Endpoint,
  vpcFromValue,
} from "../../lib/ids/mod.ts";

// ---------------------------------------------------------------------------
// Independent helpers (reference implementations written from the SPEC).

/** Digit value of one base62 character by character-code arithmetic. */
function digitOf(char: string): number {
  const c = char.charCodeAt(0);
  if (c >= 0x30 && c <= 0x39) return c - 0x30; // 0-9
  if (c >= 0x41 && c <= 0x5a) return c - 0x41 + 10; // A-Z
  if (c >= 0x61 && c <= 0x7a) return c - 0x61 + 36; // a-z
  throw new Error(`not a base62 digit: ${char}`);
}

/** Positional base62 value: Σ digit·62^position. */
function referenceDecode(text: string): bigint {
  let value = 0n;
  let weight = 1n;
  for (let i = text.length - 1; i >= 0; i--) {
    value += BigInt(digitOf(text[i]!)) * weight;
    weight *= 62n;
  }
  return value;
}

function randomBigInt(bits: number): bigint {
  const bytes = new Uint8Array(Math.ceil(bits / 8));
  crypto.getRandomValues(bytes);
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  return value & ((1n << BigInt(bits)) - 1n);
}

function randomBase62(length: number): string {
  const chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  let text = "";
  for (let i = 0; i < length; i++) text += chars[Math.floor(Math.random() * 62)];
  return text;
}

/** Kubernetes' own IsDNS1123Subdomain (stricter than the SPEC's one-line regex). */
function isDns1123Subdomain(name: string): boolean {
  return name.length <= 253 &&
    /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name);
}

/** Kubernetes' IsValidLabelValue. */
function isK8sLabelValue(value: string): boolean {
  return value.length <= 63 && /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/.test(value);
}

/** The API server's validation of RD and RT values (SPEC §7). */
function isServerValidRouteValue(value: string): boolean {
  return value.length <= 21 &&
    /^([0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}[.][0-9]{1,3}|[0-9]{1,10}):[0-9]{1,10}$/.test(value);
}

function prefix(text: string): NonNullable<ReturnType<typeof parsePrefix>> {
  const parsed = parsePrefix(text);
  assert.ok(parsed, `test fixture ${text} must parse`);
  return parsed;
}

const MAX_VPC = (1n << 48n) - 1n;
const MAX_ATTACHMENT = (1n << 16n) - 1n;

// ---------------------------------------------------------------------------
// base62

Deno.test("base62 alphabet is 0-9, then A-Z, then a-z", () => {
  assert.equal(BASE62_ALPHABET.length, 62);
  for (let i = 0; i < 62; i++) assert.equal(digitOf(BASE62_ALPHABET[i]!), i, `index ${i}`);
});

Deno.test("decodeBase62 matches hand-computed values", async (t) => {
  const cases: [string, bigint][] = [
    ["0", 0n],
    ["9", 9n],
    ["A", 10n], // SPEC: value 10 is A
    ["Z", 35n],
    ["a", 36n], // SPEC: value 36 is a
    ["z", 61n],
    ["10", 62n],
    ["zz", 62n * 62n - 1n],
    ["100", 3844n],
    ["jU", 2820n], // 45·62 + 30
    ["Ju", 1234n], // 19·62 + 56
    ["G", 16n],
    ["H31", 65535n], // 17·3844 + 3·62 + 1
    ["H32", 65536n],
    ["1HvWXNAa7", MAX_VPC],
    ["1HvWXNAa8", MAX_VPC + 1n],
    ["zzzzzzzzz", 62n ** 9n - 1n],
    ["0000000jU", 2820n], // leading zeros do not change the value
  ];
  for (const [text, value] of cases) {
    await t.step(`${text} = ${value}`, () => {
      assert.equal(decodeBase62(text), value);
      assert.equal(referenceDecode(text), value, "reference decoder agrees");
    });
  }
});

Deno.test("base62 is case-sensitive: A ≠ a, Z ≠ z, jU ≠ Ju ≠ JU ≠ ju", () => {
  assert.notEqual(decodeBase62("A"), decodeBase62("a"));
  assert.notEqual(decodeBase62("Z"), decodeBase62("z"));
  const values = ["jU", "Ju", "JU", "ju"].map(decodeBase62);
  assert.equal(new Set(values).size, 4);
});

Deno.test("encodeBase62 produces hand-computed text and pads with 0", async (t) => {
  const cases: [bigint, number | undefined, string][] = [
    [0n, undefined, "0"],
    [0n, 3, "000"],
    [10n, undefined, "A"],
    [36n, undefined, "a"],
    [61n, undefined, "z"],
    [62n, undefined, "10"],
    [2820n, undefined, "jU"],
    [2820n, 9, "0000000jU"],
    [16n, 3, "00G"],
    [65535n, 3, "H31"],
    [MAX_VPC, 9, "1HvWXNAa7"],
    [62n ** 9n, 3, "1000000000"], // width is a minimum, never truncates
  ];
  for (const [value, width, text] of cases) {
    await t.step(`${value} width ${width ?? "default"} → ${text}`, () => {
      assert.equal(width === undefined ? encodeBase62(value) : encodeBase62(value, width), text);
    });
  }
});

Deno.test("encodeBase62 refuses negative values", () => {
  assert.throws(() => encodeBase62(-1n), RangeError);
});

Deno.test("base62 round trips random values and random text", () => {
  for (let i = 0; i < 500; i++) {
    const value = randomBigInt(1 + (i % 64));
    const text = encodeBase62(value);
    assert.equal(referenceDecode(text), value, `encode ${value}`);
    assert.equal(decodeBase62(text), value);
  }
  for (let i = 0; i < 500; i++) {
    const text = randomBase62(1 + (i % 9));
    const value = decodeBase62(text);
    assert.equal(value, referenceDecode(text), `decode ${text}`);
    assert.equal(encodeBase62(value, text.length), text, `re-encode ${text}`);
  }
});

Deno.test("decodeBase62 refuses empty text and non-base62 characters", async (t) => {
  const bad = ["", "-", "+1", "a-b", "a b", " a", "a ", "_", "é", "Ä", "😀", "1.5", "\n", "\u0000"];
  for (const text of bad) {
    await t.step(JSON.stringify(text), () => {
      assert.throws(() => decodeBase62(text), RangeError);
    });
  }
});

// ---------------------------------------------------------------------------
// VPC and attachment identifiers

Deno.test("parseVpc: 1..9 chars, value < 2^48, padded to 9", async (t) => {
  const ok: [string, bigint, string][] = [
    ["0", 0n, "000000000"],
    ["1", 1n, "000000001"],
    ["jU", 2820n, "0000000jU"],
    ["0000000jU", 2820n, "0000000jU"],
    ["A", 10n, "00000000A"],
    ["a", 36n, "00000000a"],
    ["1HvWXNAa7", MAX_VPC, "1HvWXNAa7"], // 2^48 − 1: largest accepted
    ["000000000", 0n, "000000000"],
  ];
  for (const [text, value, padded] of ok) {
    await t.step(`accepts ${text}`, () => {
      const vpc = parseVpc(text);
      assert.equal(vpc.value, value);
      assert.equal(vpc.text, padded);
      assert.equal(vpc.text.length, 9);
      assert.equal(vpc.hex, value.toString(16));
    });
  }
  const bad = [
    "", // too short
    "0123456789", // 10 chars, even though the value is small
    "0000000000", // 10 chars of zeros
    "1HvWXNAa8", // 2^48
    "zzzzzzzzz", // 62^9 − 1
    "200000000", // 2·62^8 > 2^48
    "ab-c",
    "ab c",
    "jU\n",
  ];
  for (const text of bad) {
    await t.step(`refuses ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseVpc(text), RangeError);
    });
  }
});

Deno.test("parseAttachment: 1..3 chars, value < 2^16, padded to 3", async (t) => {
  const ok: [string, bigint, string][] = [
    ["0", 0n, "000"],
    ["G", 16n, "00G"],
    ["00G", 16n, "00G"],
    ["zz", 3843n, "0zz"],
    ["H31", MAX_ATTACHMENT, "H31"], // 2^16 − 1
  ];
  for (const [text, value, padded] of ok) {
    await t.step(`accepts ${text}`, () => {
      const attachment = parseAttachment(text);
      assert.equal(attachment.value, value);
      assert.equal(attachment.text, padded);
      assert.equal(attachment.hex, value.toString(16));
    });
  }
  for (const text of ["", "0000", "1000", "H32", "zzz", "I00", "a_", "G!"]) {
    await t.step(`refuses ${JSON.stringify(text)}`, () => {
      assert.throws(() => parseAttachment(text), RangeError);
    });
  }
});

Deno.test("vpcFromValue / attachmentFromValue build identifiers and enforce bounds", async (t) => {
  await t.step("hex 000000000064 → value 100", () => {
    const vpc = vpcFromValue(0x000000000064n);
    assert.equal(vpc.value, 100n);
    assert.equal(vpc.text, "00000001c"); // 100 = 1·62 + 38 → "1c"
    assert.equal(vpc.hex, "64");
  });
  await t.step("boundaries", () => {
    assert.equal(vpcFromValue(MAX_VPC).text, "1HvWXNAa7");
    assert.throws(() => vpcFromValue(MAX_VPC + 1n), RangeError);
    assert.equal(attachmentFromValue(MAX_ATTACHMENT).text, "H31");
    assert.throws(() => attachmentFromValue(MAX_ATTACHMENT + 1n), RangeError);
  });
  await t.step("random values round trip through text", () => {
    for (let i = 0; i < 200; i++) {
      const value = randomBigInt(48);
      const vpc = vpcFromValue(value);
      assert.equal(parseVpc(vpc.text).value, value);
      assert.equal(referenceDecode(vpc.text), value);
    }
  });
});

// ---------------------------------------------------------------------------
// Interface names

Deno.test("interfaceNames: SPEC example vpc jU, attachment G", () => {
  const names = interfaceNames(parseVpc("jU"), parseAttachment("G"));
  assert.deepEqual(
    { vrf: names.vrf, host: names.host, guest: names.guest },
    { vrf: "G0000000jU00GV", host: "G0000000jU00GH", guest: "G0000000jU00GG" },
  );
});

Deno.test("interfaceNames: every vpc/attachment width fits IFNAMSIZ and parses back", () => {
  for (let vpcLength = 1; vpcLength <= 9; vpcLength++) {
    for (let attachmentLength = 1; attachmentLength <= 3; attachmentLength++) {
      for (let i = 0; i < 10; i++) {
        // Keep the VPC under 2^48: a 9-char value must start with 0 or 1.
        const vpcText = vpcLength === 9 ? `1${randomBase62(8)}` : randomBase62(vpcLength);
        const attachmentText = attachmentLength === 3
          ? `${"0123456789ABCDEFG"[Math.floor(Math.random() * 17)]}${randomBase62(2)}`
          : randomBase62(attachmentLength);
        let vpc: Identifier;
        try {
          vpc = parseVpc(vpcText);
        } catch {
          continue; // 1Hv… above 2^48; covered by the parseVpc tests
        }
        const attachment = parseAttachment(attachmentText);
        const names = interfaceNames(vpc, attachment);
        const stem = `G${vpcText.padStart(9, "0")}${attachmentText.padStart(3, "0")}`;
        for (
          const [role, name] of [["V", names.vrf], ["H", names.host], ["G", names.guest]] as const
        ) {
          assert.ok(name.length <= 15, `${name} exceeds IFNAMSIZ`);
          assert.equal(name, `${stem}${role}`);
          assert.deepEqual(parseInterfaceName(name), {
            vpc: vpc.text,
            attachment: attachment.text,
            role,
          });
          assert.equal(parseVpc(parseInterfaceName(name)!.vpc).value, vpc.value);
        }
      }
    }
  }
});

Deno.test("interfaceNames keep A and a apart", () => {
  const g = parseAttachment("G");
  assert.notEqual(interfaceNames(parseVpc("A"), g).vrf, interfaceNames(parseVpc("a"), g).vrf);
  const v = parseVpc("jU");
  assert.notEqual(
    interfaceNames(v, parseAttachment("A")).host,
    interfaceNames(v, parseAttachment("a")).host,
  );
});

Deno.test("parseInterfaceName refuses names the plugin did not make", async (t) => {
  const names = [
    "eth0",
    "",
    "G0000000jU00G", // no role
    "G0000000jU00GX", // unknown role
    "g0000000jU00GV", // wrong prefix
    "H0000000jU00GV",
    "G000000jU00GV", // vpc part too short
    "G0000000jU00GVV", // too long
    "G0000000j-00GV",
    "G0000000jU00GV ",
  ];
  for (const name of names) {
    await t.step(JSON.stringify(name), () => assert.equal(parseInterfaceName(name), undefined));
  }
});

// ---------------------------------------------------------------------------
// SRv6 endpoint

Deno.test("srv6Endpoint: locator's first 64 bits, then (vpc << 16) | attachment", async (t) => {
  const cases: { locator: string; vpc: string; attachment: string; endpoint: string }[] = [
    // SPEC example: low 64 = 0x0000_0000_0b04_0010.
    { locator: "fc00:0:1::/48", vpc: "jU", attachment: "G", endpoint: "fc00:0:1::b04:10" },
    // Uppercase input, lowercase output.
    { locator: "FC00:0:1::/48", vpc: "jU", attachment: "G", endpoint: "fc00:0:1::b04:10" },
    // Everything zero: the locator itself.
    { locator: "2001:db8::/32", vpc: "0", attachment: "0", endpoint: "2001:db8::" },
    // vpc 1 → 0x10000: groups 2001,db8,0,0,0,0,1,0.
    { locator: "2001:db8::/32", vpc: "1", attachment: "0", endpoint: "2001:db8::1:0" },
    // Max vpc and attachment fill the low 64 bits completely.
    {
      locator: "fc00:0:1:2::/64",
      vpc: "1HvWXNAa7",
      attachment: "H31",
      endpoint: "fc00:0:1:2:ffff:ffff:ffff:ffff",
    },
    // Host bits beyond /64 in the locator are discarded.
    {
      locator: "fc00:0:1:2:dead:beef:1:2/64",
      vpc: "1",
      attachment: "1",
      endpoint: "fc00:0:1:2::1:1",
    },
    // RFC 5952: two zero runs of equal length, the first one is compressed.
    // vpc 0x000100000000 → groups 1,0,0 then attachment 1.
    {
      locator: "2001:db8::/64",
      vpc: encodeBase62(0x000100000000n),
      attachment: "1",
      endpoint: "2001:db8::1:0:0:1",
    },
    // RFC 5952: the longest zero run wins over an earlier shorter one.
    {
      locator: "2001:db8:0:1::/64",
      vpc: encodeBase62(0x000100000000n),
      attachment: "0",
      endpoint: "2001:db8:0:1:1::",
    },
    // RFC 5952: a single zero group is never "::".
    {
      locator: "2001:db8:0:1::/64",
      vpc: encodeBase62(0x000100010001n),
      attachment: "1",
      endpoint: "2001:db8:0:1:1:1:1:1",
    },
    // Leading zeros of each group are suppressed: 0x0abc → abc.
    {
      locator: "2001:0db8:000a:0001::/64",
      vpc: encodeBase62(0x0abc00000000n),
      attachment: encodeBase62(0x0defn),
      endpoint: "2001:db8:a:1:abc::def",
    },
  ];
  for (const c of cases) {
    await t.step(`${c.locator} vpc ${c.vpc} att ${c.attachment} → ${c.endpoint}`, () => {
      const vpc = parseVpc(c.vpc);
      const attachment = parseAttachment(c.attachment);
      assert.equal(srv6Endpoint(prefix(c.locator), { vpc, attachment }), c.endpoint);
    });
  }
});

Deno.test("srv6Endpoint refuses IPv4 locators and prefixes longer than /64", async (t) => {
  const ids = { vpc: parseVpc("jU"), attachment: parseAttachment("G") };
  for (const locator of ["10.0.0.0/8", "fc00::/65", "fc00::/128"]) {
    await t.step(
      locator,
      () => assert.throws(() => srv6Endpoint(prefix(locator), ids), RangeError),
    );
  }
});

Deno.test("decodeSrv6Endpoint reverses srv6Endpoint", async (t) => {
  await t.step("SPEC example", () => {
    const decoded = decodeSrv6Endpoint("fc00:0:1::b04:10");
    assert.equal(decoded.vpc.text, "0000000jU");
    assert.equal(decoded.attachment.text, "00G");
  });
  await t.step("with /128 suffix", () => {
    const decoded = decodeSrv6Endpoint("fc00:0:1::b04:10/128");
    assert.equal(decoded.vpc.value, 2820n);
    assert.equal(decoded.attachment.value, 16n);
  });
  await t.step("random locators and identifiers", () => {
    for (let i = 0; i < 300; i++) {
      const high = randomBigInt(64) << 64n;
      const lowNoise = randomBigInt(64); // host bits of the locator: must not leak
      const length = Math.floor(Math.random() * 65);
      const locator = { family: 6 as const, value: high | lowNoise, length };
      const vpcValue = randomBigInt(48);
      const attachmentValue = randomBigInt(16);
      const vpc = vpcFromValue(vpcValue);
      const attachment = attachmentFromValue(attachmentValue);
      const endpoint = srv6Endpoint(locator, { vpc, attachment });
      const parsed = parseIp(endpoint);
      assert.ok(parsed && parsed.family === 6, endpoint);
      assert.equal(parsed.value, high | (vpcValue << 16n) | attachmentValue, endpoint);
      assert.equal(formatIPv6(parsed.value), endpoint, "endpoint text is canonical");
      const decoded = decodeSrv6Endpoint(endpoint);
      assert.equal(decoded.vpc.value, vpcValue);
      assert.equal(decoded.attachment.value, attachmentValue);
      assert.equal(decoded.vpc.text, vpc.text);
      assert.equal(decoded.attachment.text, attachment.text);
    }
  });
  await t.step("refuses non-IPv6 input", () => {
    for (const bad of ["10.0.0.1", "garbage", "", "fc00::1::2"]) {
      assert.throws(() => decodeSrv6Endpoint(bad), RangeError, bad);
    }
  });
});

// ---------------------------------------------------------------------------
// Route distinguisher / route target

Deno.test("routeDistinguisher: ASN:low-32-bits of the VPC value", async (t) => {
  const cases: [number, bigint, string][] = [
    // The seed's vectors (VPC given as 12 hex digits).
    [65000, 0x000000000064n, "65000:100"],
    [65000, 0x000000010000n, "65000:65536"],
    [65000, 0x0000ffffffffn, "65000:4294967295"],
    [65000, 0x000100000001n, "65000:1"], // high 16 bits dropped
    // Type 0 boundaries: 2-byte ASN, 4-byte number.
    [1, 0n, "1:0"],
    [65535, 0xffffffffn, "65535:4294967295"],
    [65535, MAX_VPC, "65535:4294967295"],
    // Type 2: 4-byte ASN with a number that fits 16 bits.
    [65536, 0xffffn, "65536:65535"],
    [4200000000, 0x64n, "4200000000:100"],
    [4294967295, 0xffffn, "4294967295:65535"],
    [4200000000, 0x123400000064n, "4200000000:100"], // NN is the low 32 bits: 100
  ];
  for (const [asn, value, expected] of cases) {
    await t.step(`${asn} / vpc 0x${value.toString(16)} → ${expected}`, () => {
      const vpc = vpcFromValue(value);
      assert.equal(routeNumber(vpc), Number(value & 0xffffffffn));
      assert.equal(routeDistinguisher(asn, vpc), expected);
      assert.equal(routeTarget(asn, vpc), expected);
      assert.ok(isServerValidRouteValue(expected));
    });
  }
});

Deno.test("routeDistinguisher is independent of how the VPC is spelled", () => {
  assert.equal(routeDistinguisher(65000, parseVpc("jU")), "65000:2820");
  assert.equal(routeDistinguisher(65000, parseVpc("0000000jU")), "65000:2820");
  assert.notEqual(
    routeDistinguisher(65000, parseVpc("A")),
    routeDistinguisher(65000, parseVpc("a")),
  );
});

Deno.test("VPCs that share their low 32 bits share a route target (the §4 collision)", () => {
  const a = vpcFromValue(0x000000000001n);
  const b = vpcFromValue(0x000100000001n);
  assert.notEqual(a.value, b.value);
  assert.equal(routeTarget(65000, a), routeTarget(65000, b));
});

Deno.test("routeDistinguisher refuses what no RD type can carry", async (t) => {
  const cases: [string, number, bigint][] = [
    ["4-byte ASN with NN 65536", 65536, 0x10000n],
    ["4-byte ASN with NN 2^32-1", 4200000000, 0xffffffffn],
    ["max 4-byte ASN with NN 65536", 4294967295, 0x10000n],
    ["ASN 0", 0, 1n],
    ["negative ASN", -1, 1n],
    ["ASN 2^32", 4294967296, 1n],
    ["non-integer ASN", 65000.5, 1n],
    ["NaN ASN", Number.NaN, 1n],
    ["infinite ASN", Number.POSITIVE_INFINITY, 1n],
  ];
  for (const [label, asn, value] of cases) {
    await t.step(label, () => {
      const vpc = vpcFromValue(value);
      assert.throws(() => routeDistinguisher(asn, vpc), (error: unknown) => {
        assert.ok(error instanceof Error);
        assert.match(error.message, new RegExp(String(asn).replace(".", "\\.")), "names the ASN");
        return true;
      });
      assert.throws(() => routeTarget(asn, vpc));
    });
  }
});

// ---------------------------------------------------------------------------
// Kubernetes object names and labels

const LONG_LABEL = "a".repeat(63);
/** A 253-character node name made of four DNS labels. */
const NODE_253 = `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`;
/** The same length, differing only in its last character. */
const NODE_253_OTHER = `${NODE_253.slice(0, -1)}e`;
const NODE_253_ONE_LABEL = "n".repeat(253);

Deno.test("253-character node name fixtures are valid Kubernetes names", () => {
  for (const node of [NODE_253, NODE_253_OTHER, NODE_253_ONE_LABEL]) {
    assert.equal(node.length, 253);
    assert.ok(isDns1123Subdomain(node));
  }
});

Deno.test("bgpVrfInstanceName is a valid object name for every input", () => {
  const vpcs = [
    "0",
    "1",
    "A",
    "a",
    "Z",
    "z",
    "jU",
    "Ju",
    "JU",
    "ju",
    "ZZZZZZZZ",
    "1HvWXNAa7",
    "10000000z",
  ];
  const nodes = [
    "node-a",
    "n",
    "0",
    "ip-10-0-0-1.ec2.internal",
    "kind-worker2",
    LONG_LABEL,
    NODE_253,
    NODE_253_OTHER,
    NODE_253_ONE_LABEL,
  ];
  for (const v of vpcs) {
    for (const node of nodes) {
      const name = bgpVrfInstanceName(parseVpc(v), node);
      assert.ok(isDns1123Subdomain(name), `vpc ${v} node ${node.length} chars → ${name}`);
      assert.equal(name, name.toLowerCase());
      assert.equal(bgpVrfInstanceName(parseVpc(v), node), name, "deterministic");
    }
  }
});

Deno.test("bgpVrfInstanceName never merges distinct VPCs or nodes", () => {
  // Case-variant base62 texts are different VPCs: a lowercased copy would merge them.
  const vpcs = ["A", "a", "Z", "z", "jU", "Ju", "JU", "ju", "0", "1HvWXNAa7", "1HvWXNAa6"];
  const nodes = ["node-a", "node-b", LONG_LABEL, NODE_253, NODE_253_OTHER, NODE_253_ONE_LABEL];
  const seen = new Map<string, string>();
  for (const v of vpcs) {
    for (const node of nodes) {
      const name = bgpVrfInstanceName(parseVpc(v), node);
      const key = `${v}@${node}`;
      assert.equal(seen.get(name), undefined, `${key} collides with ${seen.get(name)}: ${name}`);
      seen.set(name, key);
    }
  }
});

Deno.test("bgpVrfInstanceName uses the VPC value, not its spelling", () => {
  assert.equal(
    bgpVrfInstanceName(parseVpc("jU"), "node-a"),
    bgpVrfInstanceName(parseVpc("0000000jU"), "node-a"),
  );
  // SPEC §4: names carry the lowercase hex value of the VPC (jU = 2820 = 0xb04).
  assert.match(bgpVrfInstanceName(parseVpc("jU"), "node-a"), /(^|[-.])b04([-.]|$)/);
  assert.match(bgpVrfInstanceName(parseVpc("1HvWXNAa7"), "node-a"), /(^|[-.])ffffffffffff([-.]|$)/);
});

Deno.test("bgpVrfInstanceName refuses node names that are not object names", async (t) => {
  for (const node of ["", "Node-A", "node_a", "-node", "node-", "a".repeat(254)]) {
    await t.step(
      JSON.stringify(node.length > 20 ? `${node.slice(0, 10)}…(${node.length})` : node),
      () => {
        assert.throws(() => bgpVrfInstanceName(parseVpc("jU"), node));
      },
    );
  }
});

Deno.test("nodeLabelValue is always a valid label value and keeps short names", () => {
  for (const node of ["node-a", "ip-10-0-0-1.ec2.internal", LONG_LABEL, "0"]) {
    assert.equal(nodeLabelValue(node), node, "a name that is a valid label value is kept");
  }
  const long = [NODE_253, NODE_253_OTHER, NODE_253_ONE_LABEL, "a".repeat(64), `${LONG_LABEL}.b`];
  const values = new Set<string>();
  for (const node of long) {
    const value = nodeLabelValue(node);
    assert.ok(isK8sLabelValue(value), `${node.length} chars → ${value}`);
    assert.ok(value.length <= 63);
    assert.equal(nodeLabelValue(node), value, "deterministic");
    values.add(value);
  }
  assert.equal(values.size, long.length, "distinct long nodes get distinct label values");
});

// ---------------------------------------------------------------------------
// ip.ts

Deno.test("parseIp accepts IPv4 and IPv6 text", async (t) => {
  const cases: [string, 4 | 6, bigint][] = [
    ["0.0.0.0", 4, 0n],
    ["255.255.255.255", 4, 0xffffffffn],
    ["10.1.2.3", 4, 0x0a010203n],
    ["192.0.2.33", 4, 0xc0000221n],
    ["::", 6, 0n],
    ["::1", 6, 1n],
    ["1::", 6, 1n << 112n],
    ["2001:db8::1", 6, (0x20010db8n << 96n) | 1n],
    ["2001:DB8:0:0:0:0:0:1", 6, (0x20010db8n << 96n) | 1n],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", 6, (0x20010db8n << 96n) | 1n],
    ["1:2:3:4:5:6:7:8", 6, 0x00010002000300040005000600070008n],
    ["1:2:3:4:5:6:7::", 6, 0x00010002000300040005000600070000n],
    ["::2:3:4:5:6:7:8", 6, 0x00000002000300040005000600070008n],
    ["1::8", 6, 0x00010000000000000000000000000008n],
    ["::ffff:1.2.3.4", 6, 0xffff01020304n],
    ["::1.2.3.4", 6, 0x01020304n],
    ["64:ff9b::192.0.2.33", 6, (0x0064ff9bn << 96n) | 0xc0000221n],
    ["1:2:3:4:5:6:1.2.3.4", 6, 0x00010002000300040005000601020304n],
    ["fc00:0:1::b04:10", 6, (0xfc0000000001n << 80n) | 0x0b040010n],
  ];
  for (const [text, family, value] of cases) {
    await t.step(text, () => assert.deepEqual(parseIp(text), { family, value }));
  }
});

Deno.test("parseIp refuses malformed addresses", async (t) => {
  const bad = [
    "",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "1.2.3.256",
    "01.2.3.4", // leading zeros are ambiguous (octal in inet_aton): refused
    "1.2.3.04",
    "1.2.3.-1",
    "a.b.c.d",
    " 1.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4/32",
    ":::",
    ":",
    "1::2::3",
    "::1::",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7:8::",
    "::1:2:3:4:5:6:7:8",
    "12345::",
    "g::",
    ":1::",
    "1::2:",
    "::1.2.3",
    "::1.2.3.4:5",
    "1:2:3:4:5:6:7:1.2.3.4",
    "fe80::1%eth0",
    "[::1]",
    // RFC 4291 §2.2: dotted IPv4 may only form the last 32 bits.
    "1.2.3.4::",
    "1.2.3.4::5",
    "1:1.2.3.4::",
  ];
  for (const text of bad) {
    await t.step(JSON.stringify(text), () => assert.equal(parseIp(text), undefined));
  }
});

Deno.test("parsePrefix accepts address/length and keeps host bits", async (t) => {
  const cases: [string, 4 | 6, bigint, number][] = [
    ["10.0.0.0/8", 4, 0x0a000000n, 8],
    ["10.1.2.3/8", 4, 0x0a010203n, 8],
    ["0.0.0.0/0", 4, 0n, 0],
    ["1.2.3.4/32", 4, 0x01020304n, 32],
    ["::/0", 6, 0n, 0],
    ["::1/128", 6, 1n, 128],
    ["fc00:0:1::/48", 6, 0xfc0000000001n << 80n, 48],
  ];
  for (const [text, family, value, length] of cases) {
    await t.step(text, () => assert.deepEqual(parsePrefix(text), { family, value, length }));
  }
});

Deno.test("parsePrefix refuses malformed prefixes", async (t) => {
  const bad = [
    "10.0.0.0",
    "10.0.0.0/",
    "/8",
    "10.0.0.0/33",
    "::/129",
    "10.0.0.0/-1",
    "10.0.0.0/08",
    "10.0.0.0/+8",
    "10.0.0.0/ 8",
    "10.0.0.0/8/8",
    "10.0.0.0/1e1",
    "garbage/8",
    "1.2.3/8",
    "1::2::3/64",
  ];
  for (const text of bad) {
    await t.step(JSON.stringify(text), () => assert.equal(parsePrefix(text), undefined));
  }
});

Deno.test("formatIPv6 writes RFC 5952 canonical text", async (t) => {
  const cases: [bigint, string][] = [
    [0n, "::"],
    [1n, "::1"],
    [1n << 112n, "1::"],
    [(0x20010db8n << 96n) | 1n, "2001:db8::1"],
    // Equal-length zero runs: the first is compressed.
    [0x20010db8000000000001000000000001n, "2001:db8::1:0:0:1"],
    // Longest run wins.
    [0x20010000000000010000000000000001n, "2001:0:0:1::1"],
    // A single zero group is not compressed.
    [0x20010db8000000010001000100010001n, "2001:db8:0:1:1:1:1:1"],
    [0x00010002000300040005000600070008n, "1:2:3:4:5:6:7:8"],
    [0xffffffffffffffffffffffffffffffffn, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
    [0x0abc0000000000000000000000000defn, "abc::def"],
  ];
  for (const [value, text] of cases) {
    await t.step(text, () => assert.equal(formatIPv6(value), text));
  }
});

Deno.test("formatIp / parseIp round trip", () => {
  for (let i = 0; i < 300; i++) {
    // Sparse values exercise zero-run compression.
    let value = randomBigInt(128);
    if (i % 2 === 0) value &= randomBigInt(128) & randomBigInt(128) & randomBigInt(128);
    const text = formatIp({ family: 6, value });
    assert.deepEqual(parseIp(text), { family: 6, value }, text);
    assert.equal(text, text.toLowerCase());
    assert.ok(!/(^|:)0[0-9a-f]/.test(text), `no leading zeros: ${text}`);
  }
  for (let i = 0; i < 300; i++) {
    const value = randomBigInt(32);
    const text = formatIPv4(value);
    assert.deepEqual(parseIp(text), { family: 4, value }, text);
  }
  assert.equal(formatIPv4(0x0a000001n), "10.0.0.1");
  assert.equal(formatIp({ family: 4, value: 0xc0a80101n }), "192.168.1.1");
});

Deno.test("formatNetwork clears host bits", async (t) => {
  const cases: [string, string][] = [
    ["10.1.2.3/8", "10.0.0.0/8"],
    ["10.1.2.3/32", "10.1.2.3/32"],
    ["10.255.255.255/0", "0.0.0.0/0"],
    ["192.168.1.129/25", "192.168.1.128/25"],
    ["192.168.1.127/25", "192.168.1.0/25"],
    ["2001:db8::1/32", "2001:db8::/32"],
    ["2001:db8:ffff:ffff::/33", "2001:db8:8000::/33"],
    ["fc00:0:1:2:3:4:5:6/64", "fc00:0:1:2::/64"],
    ["::1/0", "::/0"],
    ["1:2:3:4:5:6:7:8/128", "1:2:3:4:5:6:7:8/128"],
    ["2001:DB8:0:0::/48", "2001:db8::/48"],
  ];
  for (const [input, expected] of cases) {
    await t.step(
      `${input} → ${expected}`,
      () => assert.equal(formatNetwork(prefix(input)), expected),
    );
  }
});
