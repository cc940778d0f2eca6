/**
 * Upgrade aid for the RD change (SPEC §10): older plugins wrote one
 * BGPVRFInstance per attachment, named from the raw base62 identifiers
 * (`<vpc>-<attachment>`), with RD `routerID:vrfTable`. This version writes one
 * object per (VPC, node), named `galactic-vpc-<hex>-<node>`, with RD `ASN:NN`.
 *
 * {@linkcode planMigration} lists every BGPVRFInstance, picks the ones this
 * plugin (or an older one) wrote, and computes what this version would write
 * for each; {@linkcode applyMigration} writes the correct object (same
 * converging write and route-target guard as ADD) and deletes a stale one.
 *
 * An object is a candidate when it carries `app.kubernetes.io/managed-by:
 * galactic`, has this version's name form, has an older plugin's RD form
 * `a.b.c.d:NN`, or has an older plugin's name form confirmed by its route
 * target. Its VPC comes from the `galactic.io/vpc` label, else from its
 * name (checked against the NN of its route target when it has one); its
 * node from the `galactic.io/node` label, else from its provider selector.
 * Objects whose VPC or node cannot be told are reported, never touched.
 *
 * @module
 */

import { LABELS, MANAGER, parseVpc, routeNumber, vpcFromValue } from "../ids/mod.ts";
import type { Identifier } from "../ids/mod.ts";
import {
  BGP_INSTANCES,
  BGP_PROVIDERS,
  BGP_VRF_INSTANCES,
  type KubeApi,
  type KubeObject,
  NODE_LABEL,
} from "./api.ts";
import { type BgpConfig, selectBgpConfig } from "./bgp_config.ts";
import {
  desiredVrfInstance,
  vrfDifferences,
  type WriteAction,
  writeVrfInstance,
} from "./bgp_vrf_instance.ts";
import { type Deadline, startDeadline } from "./deadline.ts";

/** What migrating one object takes. */
export type MigrationAction =
  /** Already what this version writes. */
  | "none"
  /** Same name: update it in place. */
  | "update"
  /** Other name: create the (VPC, node) object, then delete this one. */
  | "replace";

/** One object this plugin (or an older one) wrote, and what this version would write instead. */
export interface MigrationEntry {
  /** The existing object's name. */
  readonly current: string;
  /** Its uid (deletion is conditional on it). */
  readonly uid: string | undefined;
  readonly vpc: Identifier;
  readonly node: string;
  /** What this version would write. */
  readonly desired: KubeObject;
  /** What needs doing. */
  readonly action: MigrationAction;
  /** Human-readable differences (empty when none). */
  readonly differences: readonly string[];
}

/** An object that looks like galactic's but cannot be migrated automatically. */
export interface Unmigratable {
  readonly name: string;
  /** Why. */
  readonly reason: string;
}

/** Result of {@linkcode planMigration}. */
export interface MigrationPlan {
  /** Candidates whose VPC and node are known. */
  readonly entries: readonly MigrationEntry[];
  /** Candidates that need an operator. */
  readonly unmigratable: readonly Unmigratable[];
}

/** What {@linkcode applyMigration} did for one entry. */
export interface MigrationOutcome {
  readonly entry: MigrationEntry;
  /** What the write of the desired object did. */
  readonly written?: WriteAction;
  /** Whether the stale object was deleted. */
  readonly deletedStale?: boolean;
  /** The failure, when it failed. */
  readonly error?: string;
}

const ROUTER_ID_RD = /^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+$/;
/** Older plugins: `<vpc base62>-<attachment base62>` (only all-lowercase ones were accepted by the server). */
const PER_ATTACHMENT_NAME = /^([0-9a-z]{1,9})-([0-9a-z]{1,3})$/;
/** This version's form, used when the labels are gone. */
const CURRENT_NAME = /^galactic-vpc-([0-9a-f]{1,12})-(.+)$/;
const PAGE = 500;

function routeTargetNumber(object: KubeObject): number | undefined {
  const targets = object.spec?.importRouteTargets ?? object.spec?.exportRouteTargets;
  const value = Array.isArray(targets)
    ? (targets[0] as { value?: unknown } | undefined)?.value
    : undefined;
  const match = typeof value === "string" ? /:(\d+)$/.exec(value) : null;
  return match ? Number(match[1]) : undefined;
}

function vpcFromHex(hex: string): Identifier | undefined {
  try {
    return vpcFromValue(BigInt(`0x${hex}`));
  } catch {
    return undefined;
  }
}

/** The VPC of a candidate, or why it cannot be told. */
function vpcOf(object: KubeObject): Identifier | string {
  const label = object.metadata.labels?.[LABELS.vpc];
  if (label !== undefined) {
    const fromLabel = /^[0-9a-f]{1,12}$/.test(label) ? vpcFromHex(label) : undefined;
    return fromLabel ?? `label ${LABELS.vpc}=${label} is not a VPC hex value`;
  }
  const name = object.metadata.name;
  let vpc: Identifier | undefined;
  const current = CURRENT_NAME.exec(name);
  const old = PER_ATTACHMENT_NAME.exec(name);
  if (current) vpc = vpcFromHex(current[1]!);
  else if (old) {
    try {
      vpc = parseVpc(old[1]!);
    } catch {
      vpc = undefined;
    }
  }
  if (!vpc) return `no ${LABELS.vpc} label and the name does not encode a VPC`;
  const nn = routeTargetNumber(object);
  if (nn !== undefined && nn !== routeNumber(vpc)) {
    const expected = routeNumber(vpc);
    return `its name gives vpc ${vpc.text}, but its route target number ${nn} is not that VPC's (${expected})`;
  }
  return vpc;
}

function nodeOf(object: KubeObject): string | undefined {
  const selector = object.spec?.providerSelector as
    | { matchLabels?: Record<string, string> }
    | undefined;
  return object.metadata.labels?.[LABELS.node] ?? selector?.matchLabels?.[NODE_LABEL];
}

/**
 * Whether galactic (this or an older version) wrote `object`: the managed-by
 * label, this version's name form, an older version's `routerID:table` RD,
 * or an older per-attachment name whose route target agrees with the VPC
 * the name encodes (a short hyphenated name alone proves nothing).
 */
function isCandidate(object: KubeObject): boolean {
  if (object.metadata.labels?.[LABELS.managedBy] === MANAGER) return true;
  const rd = object.spec?.routeDistinguisher;
  if (
    CURRENT_NAME.test(object.metadata.name) || (typeof rd === "string" && ROUTER_ID_RD.test(rd))
  ) return true;
  const old = PER_ATTACHMENT_NAME.exec(object.metadata.name);
  if (!old) return false;
  try {
    return routeTargetNumber(object) === routeNumber(parseVpc(old[1]!));
  } catch {
    return false;
  }
}

/** Lists the cluster's BGPVRFInstances and plans their migration (3 lists, read-only). */
export async function planMigration(
  api: KubeApi,
  options: { deadline: Deadline },
): Promise<MigrationPlan> {
  const { deadline } = options;
  const [objects, providers, instances] = await Promise.all([
    api.list(BGP_VRF_INSTANCES, { deadline, limit: PAGE }),
    api.list(BGP_PROVIDERS, { deadline, limit: PAGE }),
    api.list(BGP_INSTANCES, { deadline, limit: PAGE }),
  ]);
  const configs = new Map<string, BgpConfig | string>();
  const configFor = (node: string): BgpConfig | string => {
    if (!configs.has(node)) {
      try {
        configs.set(node, selectBgpConfig(node, { providers, instances }));
      } catch (error) {
        configs.set(node, (error as Error).message);
      }
    }
    return configs.get(node)!;
  };

  const entries: MigrationEntry[] = [];
  const unmigratable: Unmigratable[] = [];
  for (const object of objects.filter(isCandidate)) {
    const name = object.metadata.name;
    const vpc = vpcOf(object);
    if (typeof vpc === "string") {
      unmigratable.push({ name, reason: vpc });
      continue;
    }
    const node = nodeOf(object);
    if (node === undefined) {
      unmigratable.push({
        name,
        reason: `no ${LABELS.node} label and no ${NODE_LABEL} in its provider selector`,
      });
      continue;
    }
    const config = configFor(node);
    if (typeof config === "string") {
      unmigratable.push({ name, reason: config });
      continue;
    }
    let desired: KubeObject;
    try {
      desired = desiredVrfInstance({ vpc, node }, config);
    } catch (error) {
      unmigratable.push({ name, reason: (error as Error).message });
      continue;
    }
    const differences = vrfDifferences(object, desired);
    const renamed = desired.metadata.name !== name;
    entries.push({
      current: name,
      uid: object.metadata.uid,
      vpc,
      node,
      desired,
      action: renamed ? "replace" : differences.length > 0 ? "update" : "none",
      differences: renamed
        ? [`name ${name} -> ${desired.metadata.name}`, ...differences]
        : differences,
    });
  }
  return { entries, unmigratable };
}

/**
 * Applies a plan: for each entry that needs it, converges the desired object
 * (route-target guard included) and then deletes the stale object (only the
 * one planned, by uid). Each entry has its own deadline of `timeoutMs`; a
 * failure is recorded and the next entry still runs.
 */
export async function applyMigration(
  api: KubeApi,
  plan: MigrationPlan,
  options: { timeoutMs: number },
): Promise<MigrationOutcome[]> {
  const outcomes: MigrationOutcome[] = [];
  for (const entry of plan.entries) {
    if (entry.action === "none") continue;
    const deadline = startDeadline(options.timeoutMs);
    try {
      const { action } = await writeVrfInstance(api, entry.desired, {
        key: { vpc: entry.vpc, node: entry.node },
        deadline,
      });
      let deletedStale: boolean | undefined;
      if (entry.action === "replace") {
        deletedStale = await api.delete(BGP_VRF_INSTANCES, entry.current, {
          deadline,
          ...(entry.uid !== undefined && { uid: entry.uid }),
        });
      }
      outcomes.push({
        entry,
        written: action,
        ...(deletedStale !== undefined && { deletedStale }),
      });
    } catch (error) {
      outcomes.push({ entry, error: (error as Error).message });
    }
  }
  return outcomes;
}

function table(rows: readonly string[][]): string[] {
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  return rows.map((row) =>
    row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]!)).join("  ")
  );
}

/** The plan as a table, then the objects that need an operator. */
export function formatMigrationPlan(plan: MigrationPlan): string {
  const lines: string[] = [];
  if (plan.entries.length === 0) lines.push("no BGPVRFInstances written by galactic found");
  else {
    lines.push(...table([
      ["OBJECT", "VPC", "NODE", "ACTION", "TARGET", "DIFFERENCES"],
      ...plan.entries.map((e) => [
        e.current,
        `${e.vpc.text} (${e.vpc.hex})`,
        e.node,
        e.action,
        e.desired.metadata.name,
        e.differences.join("; ") || "-",
      ]),
    ]));
  }
  if (plan.unmigratable.length > 0) {
    lines.push("", "cannot migrate automatically (fix or delete by hand):");
    for (const item of plan.unmigratable) lines.push(`  ${item.name}: ${item.reason}`);
  }
  return lines.join("\n");
}

/** One line per applied entry. */
export function formatMigrationOutcomes(outcomes: readonly MigrationOutcome[]): string {
  if (outcomes.length === 0) return "nothing to change";
  return outcomes.map(({ entry, written, deletedStale, error }) => {
    if (error !== undefined) return `FAILED ${entry.current}: ${error}`;
    const stale = entry.action === "replace"
      ? `; stale ${entry.current} ${deletedStale ? "deleted" : "already gone"}`
      : "";
    return `${entry.desired.metadata.name} ${written}${stale}`;
  }).join("\n");
}
