/**
 * VRF devices and their routing tables.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { ipBatch, parseJsonLines } from "./batch.ts";
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

/** True when table `table` holds any IPv4 or IPv6 route. */
export async function tableHasRoutes(runner: CommandRunner, table: number): Promise<boolean> {
  // In a batch, a dump of a table the kernel has not created yet prints [] (a
  // standalone `ip route show table T` fails with "FIB table does not exist").
  const [v4, v6] = await Promise.all(
    ["-4", "-6"].map((family) =>
      ipBatch(runner, [`route show table ${table}`], { flags: [family, "-json"] })
    ),
  );
  return [v4!, v6!].some((out) => parseJsonLines<unknown[]>(out).flat().length > 0);
}

/** Removes every route of `table` (both families); a table that does not exist is already empty. */
export async function flushTable(runner: CommandRunner, table: number): Promise<void> {
  for (const family of ["-4", "-6"]) {
    const output = await runner.run(["ip", family, "route", "flush", "table", String(table)]);
    if (output.code !== 0 && !/FIB table does not exist/.test(output.stderr)) {
      throw new CniError(
        ErrorCode.DataPlane,
        `ip ${family} route flush table ${table}: ${output.stderr.trim()}`,
      );
    }
  }
}

/** Why creating a VRF did not happen. */
export type CreateVrfOutcome = "created" | "table-in-use";

/**
 * Creates the VRF bound to `table`, brings it up and installs the unreachable
 * defaults. With `net.vrf.strict_mode=1` the kernel refuses a table already
 * bound to another VRF ("Table is used by another VRF"); that is reported as
 * "table-in-use" so the caller can pick another table.
 */
export async function createVrf(
  runner: CommandRunner,
  vrf: { name: string; table: number },
): Promise<CreateVrfOutcome> {
  const add = await runner.run([
    "ip",
    "link",
    "add",
    vrf.name,
    "type",
    "vrf",
    "table",
    String(vrf.table),
  ]);
  if (add.code !== 0) {
    if (/used by another VRF/i.test(add.stderr)) return "table-in-use";
    throw new CniError(
      ErrorCode.DataPlane,
      `ip link add ${vrf.name} type vrf table ${vrf.table}: ${add.stderr.trim()}`,
    );
  }
  await ipBatch(runner, vrfUpLines(vrf));
  return "created";
}

/** Lines that remove a VRF and the routes it leaves in its table (run with tolerance). */
export function vrfDeleteLines(vrf: { name: string; table: number | undefined }): string[] {
  return [
    `link del ${vrf.name}`,
    ...(vrf.table === undefined ? [] : [
      `route del unreachable default metric ${UNREACHABLE_METRIC} table ${vrf.table}`,
      `route del unreachable ::/0 metric ${UNREACHABLE_METRIC} table ${vrf.table}`,
    ]),
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
