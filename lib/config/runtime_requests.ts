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
import { parseMac, parsePrefix } from "../ids/mod.ts";

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

function addresses(value: unknown, field: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length > MAX_IPS) {
    throw invalidConfig(field, value, `must be a list of at most ${MAX_IPS} addresses`);
  }
  return value.map((entry, i) => {
    if (typeof entry !== "string" || !parsePrefix(entry)) {
      throw invalidConfig(`${field}[${i}]`, entry, "must be an address with prefix length");
    }
    return entry;
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
  const ips = addresses(runtime.ips, "runtimeConfig.ips");
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
