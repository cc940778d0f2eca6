/**
 * Routes the plugin owns: terminations in the VRF table and the SRv6 ingress
 * (End.DT46) route in the main table.
 *
 * @module
 */

import type { Termination } from "../config/mod.ts";
import { ipBatch, parseJsonLines } from "./batch.ts";
import type { CommandRunner } from "./runner.ts";

/** Where a VRF's terminations go. */
export interface TerminationTarget {
  readonly table: number;
  /** Host veth end the pod is behind. */
  readonly host: string;
}

/**
 * `replace` lines for terminations. A next hop is declared `onlink` through
 * the host veth: the host end has no address, so the gateway is reachable
 * only through it, whatever order the routes are added in.
 */
export function terminationLines(
  terminations: readonly Termination[],
  target: TerminationTarget,
): string[] {
  return terminations.map((t) =>
    t.via === undefined
      ? `route replace ${t.network} dev ${target.host} scope link table ${target.table}`
      : `route replace ${t.network} via ${t.via} dev ${target.host} onlink table ${target.table}`
  );
}

/** `del` lines for terminations (run with tolerance of missing routes). */
export function terminationDeleteLines(
  terminations: readonly Termination[],
  table: number,
): string[] {
  return terminations.map((t) => `route del ${t.network} table ${table}`);
}

/** Route-missing messages `ip` prints on delete. */
export const ROUTE_GONE = [/No such process/, /FIB table does not exist/, /Cannot find device/];

/** A route as `ip -json` prints it (fields the plugin reads). */
export interface IpRoute {
  /** Destination prefix or address. */
  readonly dst: string;
  /** Next hop. */
  readonly gateway?: string;
  /** Output device. */
  readonly dev?: string;
  /** Route type (unicast, unreachable, ...). */
  readonly type?: string;
  /** Lightweight tunnel kind. */
  readonly encap?: string;
  /** seg6local action. */
  readonly action?: string;
  /** seg6local vrftable (End.DT4/DT46). */
  readonly vrftable?: number | string;
  /** seg6local table (End.DT6) or route table. */
  readonly table?: number | string;
}

/** Routes of table `table`, both families, in one process. */
export async function tableRoutes(runner: CommandRunner, table: number): Promise<IpRoute[]> {
  const [v4, v6] = await Promise.all([
    ipBatch(runner, [`route show table ${table}`], { flags: ["-4", "-json"] }),
    ipBatch(runner, [`route show table ${table}`], { flags: ["-6", "-json"] }),
  ]);
  return [...parseJsonLines<IpRoute[]>(v4!).flat(), ...parseJsonLines<IpRoute[]>(v6!).flat()];
}

/** The SRv6 ingress route of an endpoint. */
export interface Srv6Ingress {
  /** Endpoint address (/128). */
  readonly endpoint: string;
  /** VRF table the decapsulated packet is looked up in. */
  readonly table: number;
  /** Device the route hangs off (the host veth end). */
  readonly dev: string;
}

/** argv that installs (or converges) the End.DT46 ingress route. */
export function srv6ReplaceArgv(ingress: Srv6Ingress): string[] {
  return [
    "ip",
    "-6",
    "route",
    "replace",
    `${ingress.endpoint}/128`,
    "encap",
    "seg6local",
    "action",
    "End.DT46",
    "vrftable",
    String(ingress.table),
    "dev",
    ingress.dev,
  ];
}

/** argv that removes the ingress route. */
export function srv6DeleteArgv(endpoint: string): string[] {
  return ["ip", "-6", "route", "del", `${endpoint}/128`];
}

/** The ingress route as installed, if any. */
export async function srv6Route(
  runner: CommandRunner,
  endpoint: string,
): Promise<IpRoute | undefined> {
  const stdout = await ipBatch(runner, [`route show ${endpoint}/128`], {
    flags: ["-6", "-json", "-details"],
  });
  return parseJsonLines<IpRoute[]>(stdout).flat()[0];
}
