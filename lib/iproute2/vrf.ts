/**
 * VRF devices and their routing tables.
 *
 * @module
 */

import { BatchError, ipBatch } from "./batch.ts";
import { linksDeleteLines } from "./links.ts";
import { ROUTE_GONE } from "./routes.ts";
import type { CommandRunner } from "./runner.ts";

/** Tables never handed out: unspecified, default, main, local. */
export const RESERVED_TABLES: ReadonlySet<number> = new Set([0, 253, 254, 255]);

/**
 * Metric of the catch-all unreachable routes: the highest a route can have,
 * so any real route wins, and a lookup that misses stops in the VRF instead
 * of falling through to the main table (tenant isolation).
 */
export const UNREACHABLE_METRIC = 4278198272;

/** Lowest table in `range` that is neither used nor reserved. */
export function lowestFreeTable(
  used: ReadonlySet<number>,
  range: { min: number; max: number },
): number | undefined {
  for (let table = range.min; table <= range.max; table++) {
    if (!used.has(table) && !RESERVED_TABLES.has(table)) return table;
  }
  return undefined;
}

/** Why creating a VRF did not happen. */
export type CreateVrfOutcome = "created" | "table-in-use";

/**
 * Lines for `ip -6 -batch` that create the VRF on `table`, empty the table's
 * IPv6 routes (leftovers of an earlier owner), bring the VRF up and install
 * the IPv6 unreachable default. iproute2 gives a batch one address family, so
 * the IPv4 half is {@linkcode vrfIpv4TableLines}, run in the caller's next
 * (default-family) batch before anything IPv4 goes into the table.
 */
export function vrfCreateLines(vrf: { name: string; table: number }): string[] {
  return [
    `link add ${vrf.name} type vrf table ${vrf.table}`,
    `route flush table ${vrf.table}`,
    `link set ${vrf.name} up`,
    `route replace unreachable default metric ${UNREACHABLE_METRIC} table ${vrf.table}`,
  ];
}

/** Lines (default family) that empty a new VRF's IPv4 routes and install its IPv4 unreachable default. */
export function vrfIpv4TableLines(vrf: { table: number }): string[] {
  return [
    `route flush table ${vrf.table}`,
    `route replace unreachable default metric ${UNREACHABLE_METRIC} table ${vrf.table}`,
  ];
}

/**
 * Creates the VRF bound to `table` in one `ip -6` process (see
 * {@linkcode vrfCreateLines}); the caller still runs
 * {@linkcode vrfIpv4TableLines}. The table is flushed only after the kernel
 * accepted the VRF: with `net.vrf.strict_mode=1` it refuses a table another
 * VRF holds ("Table is used by another VRF"), reported as "table-in-use" so
 * the caller picks another table, and another VRF's routes are never touched.
 * If a later line fails, the VRF is deleted again before the error is thrown.
 */
export async function createVrf(
  runner: CommandRunner,
  vrf: { name: string; table: number },
): Promise<CreateVrfOutcome> {
  try {
    await ipBatch(runner, vrfCreateLines(vrf), { flags: ["-6"] });
    return "created";
  } catch (error) {
    if (!(error instanceof BatchError) || error.line === undefined || error.line <= 1) {
      if (/used by another VRF/i.test((error as Error).message)) return "table-in-use";
      throw error;
    }
    await ipBatch(runner, vrfDeleteLines(vrf), { tolerate: ROUTE_GONE });
    throw error;
  }
}

/** Lines that remove a VRF and the routes it leaves in its table (run with tolerance). */
export function vrfDeleteLines(vrf: { name: string; table: number | undefined }): string[] {
  return [
    `link del ${vrf.name}`,
    ...(vrf.table === undefined ? [] : vrfTableDeleteLines(vrf.table)),
  ];
}

/**
 * Lines that remove a VRF, the devices enslaved to it (an attachment's veth
 * ends) and what it leaves in its table. With the table known, the devices
 * and the VRF go in one kernel call as device group `table` (see
 * {@linkcode linksDeleteLines}); run with tolerance of routes and links
 * already gone.
 */
export function vrfWithMembersDeleteLines(
  vrf: { name: string; table: number | undefined },
  members: readonly string[],
): string[] {
  const devices = [...members, vrf.name];
  if (vrf.table === undefined) return devices.map((name) => `link del ${name}`);
  return [...linksDeleteLines(devices, vrf.table), ...vrfTableDeleteLines(vrf.table)];
}

/** Lines that remove what a deleted VRF leaves in its table: the unreachable defaults. */
export function vrfTableDeleteLines(table: number): string[] {
  return [
    `route del unreachable default metric ${UNREACHABLE_METRIC} table ${table}`,
    `route del unreachable ::/0 metric ${UNREACHABLE_METRIC} table ${table}`,
  ];
}

/** Lines that bring a VRF up and (re)install its unreachable defaults; idempotent. */
export function vrfUpLines(vrf: { name: string; table: number }): string[] {
  return [
    `link set ${vrf.name} up`,
    `route replace unreachable default metric ${UNREACHABLE_METRIC} table ${vrf.table}`,
    `route replace unreachable ::/0 metric ${UNREACHABLE_METRIC} table ${vrf.table}`,
  ];
}
