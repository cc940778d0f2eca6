/**
 * CNI results and their per-version shapes. Internally results use the 1.x
 * shape; {@linkcode formatResult} converts to the version the runtime asked for.
 *
 * @module
 */

import { compareVersions } from "./version.ts";
import { CniError, ErrorCode } from "./errors.ts";
import { parsePrefix } from "../ids/mod.ts";

export interface ResultInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}

/** An address in a result (1.x shape; `version` is added for 0.3.x/0.4.0). */
export interface ResultIp {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface ResultRoute {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** A CNI result (1.x shape, without `cniVersion`). */
export interface Result {
  interfaces?: ResultInterface[];
  ips?: ResultIp[];
  routes?: ResultRoute[];
  dns?: Record<string, unknown>;
}

const INTERFACE_FIELDS_1_1 = ["mtu", "socketPath", "pciID"] as const;
const ROUTE_FIELDS_1_1 = ["mtu", "advmss", "priority", "table", "scope"] as const;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads a result of any supported version (a delegate's output or a
 * `prevResult`) into the internal shape; code 6 when it is not a result.
 */
export function parseResult(value: unknown, origin: string): Result {
  if (!isRecord(value)) {
    throw new CniError(ErrorCode.DecodeFailure, `${origin} is not a CNI result object`);
  }
  const result: Result = {};
  if (Array.isArray(value.interfaces)) {
    result.interfaces = value.interfaces.filter(isRecord).map((entry) =>
      ({ ...entry }) as unknown as ResultInterface
    );
  }
  if (Array.isArray(value.ips)) {
    result.ips = value.ips.map((entry, i) => {
      if (!isRecord(entry) || typeof entry.address !== "string" || !parsePrefix(entry.address)) {
        throw new CniError(
          ErrorCode.DecodeFailure,
          `${origin}: ips[${i}].address is not an address with prefix`,
        );
      }
      const { version: _version, ...rest } = entry;
      return rest as unknown as ResultIp;
    });
  }
  if (Array.isArray(value.routes)) {
    result.routes = value.routes.filter(isRecord).map((r) => ({ ...r }) as unknown as ResultRoute);
  }
  if (isRecord(value.dns)) result.dns = { ...value.dns };
  return result;
}

/** Renders a result in the shape of `cniVersion`. */
export function formatResult(result: Result, cniVersion: string): Record<string, unknown> {
  const legacy = compareVersions(cniVersion, "1.0.0") < 0;
  const before11 = compareVersions(cniVersion, "1.1.0") < 0;
  const out: Record<string, unknown> = { cniVersion };
  if (result.interfaces) {
    out.interfaces = result.interfaces.map((entry) => {
      const copy: Record<string, unknown> = { ...entry };
      if (before11) { for (const field of INTERFACE_FIELDS_1_1) delete copy[field]; }
      return copy;
    });
  }
  if (result.ips) {
    out.ips = result.ips.map((ip) =>
      legacy ? { version: ip.address.includes(":") ? "6" : "4", ...ip } : { ...ip }
    );
  }
  if (result.routes) {
    out.routes = result.routes.map((route) => {
      const copy: Record<string, unknown> = { ...route };
      if (before11) { for (const field of ROUTE_FIELDS_1_1) delete copy[field]; }
      return copy;
    });
  }
  out.dns = result.dns ?? {};
  return out;
}
