/**
 * `galactic migrate`: the upgrade aid for the RD change (SPEC §10), the CLI
 * face of `lib/kube/migrate.ts`. Read-only unless `--apply`.
 *
 * @module
 */

import { type Command, InvalidArgumentError } from "commander";
import { startDeadline } from "../kube/deadline.ts";
import { resolveKubeconfig } from "../kube/kubeconfig.ts";

/** Parsed options of `galactic migrate`. */
interface MigrateOptions {
  kubeconfig?: string;
  apply?: boolean;
  timeout: number;
}

function seconds(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1 || parsed > 3600) {
    throw new InvalidArgumentError(`"${value}" is not a number of seconds in 1..3600`);
  }
  return parsed;
}

async function migrate(options: MigrateOptions): Promise<void> {
  const env = Deno.env.toObject();
  const source = resolveKubeconfig(
    options.kubeconfig === undefined ? {} : { kubeconfig: options.kubeconfig },
    { env, homeConfig: true },
  );
  // Loaded only when the command runs: the client library is heavy.
  const [{ openKubeApi }, migration] = await Promise.all([
    import("../kube/client.ts"),
    import("../kube/migrate.ts"),
  ]);
  const api = await openKubeApi(source);
  try {
    const timeoutMs = options.timeout * 1000;
    const plan = await migration.planMigration(api, { deadline: startDeadline(timeoutMs) });
    console.log(migration.formatMigrationPlan(plan));
    const pending = plan.entries.filter((e) => e.action !== "none").length;
    if (!options.apply) {
      if (pending > 0) {
        console.log(`\n${pending} object(s) to migrate; run again with --apply to fix them`);
      }
      return;
    }
    const outcomes = await migration.applyMigration(api, plan, { timeoutMs });
    console.log(`\n${migration.formatMigrationOutcomes(outcomes)}`);
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
    .action(async (options: MigrateOptions) => {
      await migrate(options);
    });
}
