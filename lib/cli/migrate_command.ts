/**
 * `galactic migrate`: the upgrade aid for the RD change (SPEC §10), the CLI
 * face of `lib/kube/migrate.ts`. Read-only unless `--apply`.
 *
 * @module
 */

import { type Command, InvalidArgumentError } from "commander";
import { startDeadline } from "../kube/deadline.ts";
import { resolveKubeconfig } from "../kube/kubeconfig.ts";
import type { MigrationOutcome, MigrationPlan } from "../kube/migrate.ts";

/** Parsed options of `galactic migrate`. */
interface MigrateOptions {
  kubeconfig?: string;
  apply?: boolean;
  timeout: number;
  json?: boolean;
}

function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 3600) {
    throw new InvalidArgumentError(`"${value}" is not a number of seconds in 1..3600`);
  }
  return parsed;
}

/** The plan with stable keys and JSON-safe values (identifiers as their base62 text). */
function planJson(plan: MigrationPlan): Record<string, unknown> {
  return {
    entries: plan.entries.map((e) => ({
      current: e.current,
      uid: e.uid ?? null,
      vpc: e.vpc.text,
      node: e.node,
      desired: e.desired.metadata.name ?? null,
      action: e.action,
      differences: e.differences,
    })),
    unmigratable: plan.unmigratable.map((u) => ({ name: u.name, reason: u.reason })),
  };
}

function outcomesJson(outcomes: readonly MigrationOutcome[]): Record<string, unknown>[] {
  return outcomes.map((o) => ({
    current: o.entry.current,
    written: o.written ?? null,
    deletedStale: o.deletedStale ?? false,
    error: o.error ?? null,
  }));
}

async function migrate(options: MigrateOptions): Promise<void> {
  const env = Deno.env.toObject();
  const source = resolveKubeconfig(
    options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig },
    { env, homeConfig: true },
  );
  // Loaded only when the command runs.
  const [{ openKubeApi }, migration] = await Promise.all([
    import("../kube/client.ts"),
    import("../kube/migrate.ts"),
  ]);
  const api = await openKubeApi(source);
  try {
    const timeoutMs = options.timeout * 1000;
    const plan = await migration.planMigration(api, { deadline: startDeadline(timeoutMs) });
    const pending = plan.entries.filter((e) => e.action !== "none").length;
    if (!options.json) console.log(migration.formatMigrationPlan(plan));
    if (!options.apply) {
      if (options.json) console.log(JSON.stringify({ ...planJson(plan), outcomes: null }, null, 2));
      else if (pending > 0) {
        console.log(`\n${pending} object(s) to migrate; run again with --apply to fix them`);
      }
      return;
    }
    const outcomes = await migration.applyMigration(api, plan, { timeoutMs });
    if (options.json) {
      console.log(JSON.stringify({ ...planJson(plan), outcomes: outcomesJson(outcomes) }, null, 2));
    } else console.log(`\n${migration.formatMigrationOutcomes(outcomes)}`);
    const failed = outcomes.filter((o) => o.error !== undefined).length;
    if (failed > 0) throw new Error(`${failed} of ${outcomes.length} object(s) failed to migrate`);
  } finally {
    await api.close();
  }
}

/** Adds the `migrate` subcommand to `program`. */
export function registerMigrateCommand(program: Command): void {
  program
    .command("migrate")
    .description(
      "find BGPVRFInstances written by galactic (including older versions: per-attachment objects, " +
        "routerID:table route distinguishers) that differ from what this version writes; --apply " +
        "creates the per-(VPC, node) object and deletes the stale one",
    )
    .option(
      "--kubeconfig <path>",
      "kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, the plugin's own, in-cluster)",
    )
    .option("--apply", "write the fixes (default: only report)")
    .option("--timeout <seconds>", "API budget for the listing and for each object", seconds, 30)
    .option("--json", "machine-readable output (plan, and outcomes with --apply)")
    .action(async (options: MigrateOptions) => {
      await migrate(options);
    });
}
