/**
 * Reading link state with `ip -json -d link show`.
 *
 * @module
 */

import { ipBatch, parseJsonLines } from "./batch.ts";
import type { CommandRunner } from "./runner.ts";

/** What the plugin needs to know about a link. */
export interface LinkState {
  readonly name: string;
  /** `linkinfo.info_kind` (vrf, veth, ...). */
  readonly kind: string | undefined;
  /** Name of the master device, if enslaved. */
  readonly master: string | undefined;
  /** Administratively up. */
  readonly up: boolean;
  readonly mtu: number;
  /** VRF table, for VRF devices. */
  readonly table: number | undefined;
  readonly mac: string | undefined;
}

interface IpLink {
  ifname: string;
  flags?: string[];
  mtu?: number;
  master?: string;
  address?: string;
  linkinfo?: { info_kind?: string; info_data?: { table?: number } };
}

function toState(link: IpLink): LinkState {
  return {
    name: link.ifname,
    kind: link.linkinfo?.info_kind,
    master: link.master,
    up: link.flags?.includes("UP") ?? false,
    mtu: link.mtu ?? 0,
    table: link.linkinfo?.info_data?.table,
    mac: link.address,
  };
}

/** Looks up the named links in one process; missing ones are absent from the map. */
export async function inspectLinks(
  runner: CommandRunner,
  names: readonly string[],
): Promise<Map<string, LinkState>> {
  const stdout = await ipBatch(runner, names.map((name) => `link show dev ${name}`), {
    flags: ["-json", "-details"],
    tolerate: [/^Device ".*" does not exist\.?$/],
  });
  const links = parseJsonLines<IpLink[]>(stdout).flat().map(toState);
  return new Map(links.map((link) => [link.name, link]));
}

/**
 * Lines that delete `names` in one kernel call: each joins device group
 * `group`, then `link del group` unregisters them together — one wait for
 * the kernel's grace period instead of one per device (the longest wait of a
 * DEL). `group` must be held by no other device (the caller's VRF table,
 * under its lock); a name already gone fails only its own line
 * ({@linkcode LINK_GONE}).
 */
export function linksDeleteLines(names: readonly string[], group: number): string[] {
  // Group 0 is every device's default: deleting it would take the whole netns.
  if (!Number.isInteger(group) || group < 1 || group > 0xffffffff) {
    throw new RangeError(`device group ${group} is not in 1..4294967295`);
  }
  return [...names.map((name) => `link set dev ${name} group ${group}`), `link del group ${group}`];
}

/** What `ip` says for a device, or a group's last device, that is already gone. */
export const LINK_GONE = [/Cannot find device/, /^Device .* does not exist/, /No such device/];
