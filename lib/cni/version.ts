/**
 * CNI spec versions this plugin speaks, and which verbs exist in each.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

/** Every spec version the plugin accepts, oldest first. */
export const SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"] as const;

/** The newest supported version. */
export const LATEST_VERSION = "1.1.0";

/** Compares two dotted versions numerically: negative, zero or positive. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const diff = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return 0;
}

/** True when `version` is one this plugin speaks. */
export function isSupported(version: string): boolean {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(version);
}

/**
 * Picks the version to speak for a configuration: its `cniVersion` when set,
 * else the newest of its `cniVersions` that the plugin also supports.
 */
export function negotiateVersion(config: Record<string, unknown>): string {
  const { cniVersion, cniVersions } = config;
  if (cniVersion !== undefined) {
    if (typeof cniVersion !== "string") {
      throw new CniError(
        ErrorCode.InvalidConfig,
        `invalid network configuration: field "cniVersion" must be a string (got ${
          JSON.stringify(cniVersion)
        })`,
      );
    }
    if (!isSupported(cniVersion)) {
      throw new CniError(
        ErrorCode.IncompatibleVersion,
        `incompatible CNI version: cniVersion "${cniVersion}" is not one of ${
          SUPPORTED_VERSIONS.join(", ")
        }`,
      );
    }
    return cniVersion;
  }
  if (Array.isArray(cniVersions)) {
    const common = cniVersions.filter((v): v is string => typeof v === "string" && isSupported(v));
    if (common.length === 0) {
      throw new CniError(
        ErrorCode.IncompatibleVersion,
        `incompatible CNI version: none of cniVersions ${
          JSON.stringify(cniVersions)
        } is supported (${SUPPORTED_VERSIONS.join(", ")})`,
      );
    }
    return common.sort(compareVersions).at(-1)!;
  }
  throw new CniError(
    ErrorCode.InvalidConfig,
    `invalid network configuration: field "cniVersion" is required`,
  );
}

/** The oldest version in which each verb exists. */
const VERB_SINCE: Record<string, string> = {
  ADD: "0.3.0",
  DEL: "0.3.0",
  VERSION: "0.3.0",
  CHECK: "0.4.0",
  GC: "1.1.0",
  STATUS: "1.1.0",
};

/** Throws code 1 when `command` does not exist in `version`. */
export function requireVerb(command: string, version: string): void {
  const since = VERB_SINCE[command];
  if (since && compareVersions(version, since) < 0) {
    throw new CniError(
      ErrorCode.IncompatibleVersion,
      `incompatible CNI version: ${command} needs cniVersion >= ${since}, configuration has "${version}"`,
    );
  }
}
