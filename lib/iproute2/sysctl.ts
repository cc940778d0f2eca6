/**
 * Kernel parameters through `sysctl`, many per process.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { type CommandRunner, runChecked } from "./runner.ts";

/** Global setting End.DT4/DT46 with `vrftable` needs. */
export const VRF_STRICT_MODE = { "net.vrf.strict_mode": "1" } as const;

/**
 * Per-interface settings for the VRF and the host veth end: no reverse-path
 * filter (traffic arrives asymmetrically through SRv6), forwarding on, and
 * proxy ARP/NDP so the pod's gateway needs no address on the host.
 */
export function interfaceSysctls(ifname: string): Record<string, string> {
  // sysctl treats "." as the separator, so interface names are written with "/".
  return {
    [`net/ipv4/conf/${ifname}/rp_filter`]: "0",
    [`net/ipv4/conf/${ifname}/forwarding`]: "1",
    [`net/ipv6/conf/${ifname}/forwarding`]: "1",
    [`net/ipv4/conf/${ifname}/proxy_arp`]: "1",
    [`net/ipv6/conf/${ifname}/proxy_ndp`]: "1",
  };
}

/** Writes all `values` with one `sysctl` process. */
export async function writeSysctls(
  runner: CommandRunner,
  values: Record<string, string>,
): Promise<void> {
  const pairs = Object.entries(values).map(([key, value]) => `${key}=${value}`);
  if (pairs.length > 0) await runChecked(runner, ["sysctl", "-q", "-w", ...pairs]);
}

/**
 * Turns on `net.vrf.strict_mode`. Returns false when the key does not exist
 * yet: the vrf module loads with the first VRF, so then no VRF exists on the
 * node and the caller sets it right after creating one.
 */
export async function enableVrfStrictMode(runner: CommandRunner): Promise<boolean> {
  const output = await runner.run(["sysctl", "-q", "-w", "net.vrf.strict_mode=1"]);
  if (output.code === 0) return true;
  if (/cannot stat|No such file/.test(output.stderr)) return false;
  throw new CniError(
    ErrorCode.DataPlane,
    `sysctl -w net.vrf.strict_mode=1: ${output.stderr.trim()}`,
  );
}

/** Reads `keys` with one `sysctl` process; a missing key is an error naming it. */
export async function readSysctls(
  runner: CommandRunner,
  keys: readonly string[],
): Promise<Record<string, string>> {
  const output = await runner.run(["sysctl", "-n", ...keys]);
  const values = output.stdout.split("\n").filter((line) => line !== "");
  if (output.code !== 0 || values.length !== keys.length) {
    throw new CniError(
      ErrorCode.StateDiverged,
      `cannot read sysctls ${keys.join(" ")}: ${output.stderr.trim()}`,
    );
  }
  return Object.fromEntries(keys.map((key, i) => [key, values[i]!.trim()]));
}
