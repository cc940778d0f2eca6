/**
 * What the runtime asks for one pod, as libcni and Multus deliver it:
 * `runtimeConfig` (libcni injects only the capabilities this plugin's config
 * declares: `ips`, `mac`, `deviceID` from Multus' network selection) and
 * `args.cni` (Multus' `cni-args`). Validated here once, with code 7 naming
 * the field; the verbs pass `ips` and `args` on to host-device and its IPAM
 * the way libcni would and set `mac` on the pod's end of the veth.
 *
 * @module
 */

import { CniError, ErrorCode, invalidConfig } from "../cni/errors.ts";
import { type IpPrefix, parseIp, parseMac, parsePrefix } from "../ids/mod.ts";

/** Per-pod requests of the runtime. */
export interface RuntimeRequests {
  /** Addresses for static IPAM (`runtimeConfig.ips`), CIDR form. */
  readonly ips?: readonly string[];
  /** MAC of the pod interface (`runtimeConfig.mac`, else `args.cni.mac`). */
  readonly mac?: string;
  /** The config's `args`, passed on unchanged (static reads `args.cni.ips`). */
  readonly args?: Readonly<Record<string, unknown>>;
  /** A device-plugin device (`runtimeConfig.deviceID`): ADD refuses it. */
  readonly deviceID?: string;
}

/** Most addresses one pod interface may ask for. */
const MAX_IPS = 16;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The subnets of the configured static addresses (`ipam.addresses[].address`). */
function staticSubnets(ipam: unknown): IpPrefix[] {
  const entries = isRecord(ipam) && Array.isArray(ipam.addresses) ? ipam.addresses : [];
  return entries.flatMap((entry: unknown) => {
    const text = isRecord(entry) ? entry.address : undefined;
    const prefix = typeof text === "string" ? parsePrefix(text) : undefined;
    return prefix ? [prefix] : [];
  });
}

/**
 * An address in the CIDR form static IPAM requires. podman 4.3 sends the
 * addresses a user asks for without a prefix length (`--ip` as `CNI_ARGS`
 * `IP`, several as `runtimeConfig.ips`), which static refuses: such an
 * address gets the length of the configured static subnet holding it, else
 * a host length. Undefined when it is not an address.
 */
export function withPrefixLength(text: string, subnets: readonly IpPrefix[]): string | undefined {
  if (text.includes("/")) return parsePrefix(text) ? text : undefined;
  const ip = parseIp(text);
  if (!ip) return undefined;
  const inside = subnets.find((subnet) => {
    if (subnet.family !== ip.family) return false;
    const hostBits = BigInt((ip.family === 4 ? 32 : 128) - subnet.length);
    return (subnet.value >> hostBits) === (ip.value >> hostBits);
  });
  return `${text}/${inside?.length ?? (ip.family === 4 ? 32 : 128)}`;
}

function addresses(
  value: unknown,
  field: string,
  subnets?: readonly IpPrefix[],
): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length > MAX_IPS) {
    throw invalidConfig(field, value, `must be a list of at most ${MAX_IPS} addresses`);
  }
  return value.map((entry, i) => {
    const cidr = typeof entry !== "string"
      ? undefined
      : subnets
      ? withPrefixLength(entry, subnets)
      : parsePrefix(entry) && entry;
    if (!cidr) {
      throw invalidConfig(
        `${field}[${i}]`,
        entry,
        subnets ? "must be an IP address" : "must be an address with prefix length",
      );
    }
    return cidr;
  });
}

function mac(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  const parsed = typeof value === "string" ? parseMac(value) : undefined;
  if (!parsed) throw invalidConfig(field, value, "must be a unicast MAC like 02:00:00:00:00:01");
  return parsed;
}

/** Reads the runtime's requests from the raw configuration. */
export function parseRuntimeRequests(raw: Record<string, unknown>): RuntimeRequests {
  const runtime = raw.runtimeConfig ?? {};
  if (!isRecord(runtime)) throw invalidConfig("runtimeConfig", runtime, "must be an object");
  const args = raw.args;
  if (args !== undefined && !isRecord(args)) throw invalidConfig("args", args, "must be an object");
  const cni = args?.cni ?? {};
  if (!isRecord(cni)) throw invalidConfig("args.cni", cni, "must be an object");
  const deviceID = runtime.deviceID;
  if (deviceID !== undefined && typeof deviceID !== "string") {
    throw invalidConfig("runtimeConfig.deviceID", deviceID, "must be a string");
  }
  addresses(cni.ips, "args.cni.ips");
  const ips = addresses(runtime.ips, "runtimeConfig.ips", staticSubnets(raw.ipam));
  const requested = mac(runtime.mac, "runtimeConfig.mac") ?? mac(cni.mac, "args.cni.mac");
  return {
    ...(ips && { ips }),
    ...(requested && { mac: requested }),
    ...(args && { args }),
    ...(deviceID !== undefined && { deviceID }),
  };
}

/**
 * ADD refuses a `deviceID`: host-device would move that device instead of
 * our veth and the pod would bypass its VRF. Refused (code 2) rather than
 * silently dropped; DEL and CHECK of such a config still work.
 */
export function refuseDeviceId(runtime: RuntimeRequests): void {
  if (runtime.deviceID === undefined) return;
  throw new CniError(
    ErrorCode.UnsupportedField,
    `unsupported field "runtimeConfig.deviceID" (got ${
      JSON.stringify(runtime.deviceID.slice(0, 64))
    }): galactic attaches its own veth through the VRF, not a device-plugin device; ` +
      `drop the deviceID capability (or the NAD's resourceName)`,
  );
}

/** The MAC the pod gets: the configuration's request, else `CNI_ARGS` `MAC`. */
export function requestedMac(
  runtime: RuntimeRequests,
  cniArgs: ReadonlyMap<string, string>,
): string | undefined {
  if (runtime.mac) return runtime.mac;
  const text = cniArgs.get("MAC");
  if (text === undefined) return undefined;
  const parsed = parseMac(text);
  if (!parsed) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `invalid environment variable CNI_ARGS: MAC must be a unicast MAC (got ${
        JSON.stringify(text.slice(0, 40))
      })`,
    );
  }
  return parsed;
}

/**
 * `CNI_ARGS` as host-device (and so static) gets it: `IP` addresses without
 * a prefix length completed as {@linkcode withPrefixLength} does; code 4
 * naming the value when one is not an address.
 */
export function delegateCniArgs(
  cniArgs: ReadonlyMap<string, string>,
  ipam: unknown,
): ReadonlyMap<string, string> {
  const ip = cniArgs.get("IP");
  if (ip === undefined) return cniArgs;
  const subnets = staticSubnets(ipam);
  const completed = ip.split(",").map((item) => {
    const cidr = withPrefixLength(item.trim(), subnets);
    if (!cidr) {
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `invalid environment variable CNI_ARGS: IP must be a list of addresses (got ${
          JSON.stringify(item.slice(0, 60))
        })`,
      );
    }
    return cidr;
  });
  return new Map([...cniArgs, ["IP", completed.join(",")]]);
}
