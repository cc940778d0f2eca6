/**
 * `galactic gc`: reclaims, on demand, the attachments whose sandbox is gone
 * (see lib/verbs/reclaim.ts); the node agent runs the same periodically.
 * Runtimes pass CNI GC to the default network only, so without this a lost
 * DEL would leave a NAD attachment's state forever.
 *
 * @module
 */

import type { Command } from "commander";
import { DEFAULTS } from "../config/mod.ts";
import { type CommandRunner, withTimeout } from "../iproute2/runner.ts";
import { resolveNodeName } from "../kube/kubeconfig.ts";
import type { Logger } from "../log/logger.ts";
import { ControlPlaneSession } from "../plugin/control_plane.ts";
import { type Reclaimed, reclaimStale, type SandboxProbe } from "../verbs/reclaim.ts";
import type { CliIo } from "./cli.ts";
import { absolutePath, integerIn } from "./flag_values.ts";

/** Where the node's state and delegates are, and how to reach the API. */
export interface NodeReclaimOptions {
  readonly stateDir: string;
  readonly cniPath: readonly string[];
  readonly kubeconfig?: string;
  readonly nodeName?: string;
  readonly apiTimeoutSeconds: number;
  readonly runner: CommandRunner;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly log: Logger;
  /** Default: the netns evidence of lib/verbs/reclaim.ts. */
  readonly probe?: SandboxProbe;
}

/** One reclaim round on this node (the API client is opened only when a teardown needs it). */
export async function reclaimNode(options: NodeReclaimOptions): Promise<Reclaimed[]> {
  const settings = {
    ...(options.kubeconfig !== undefined && { kubeconfig: options.kubeconfig }),
    ...(options.nodeName !== undefined && { node_name: options.nodeName }),
    api_timeout_seconds: options.apiTimeoutSeconds,
  };
  const session = new ControlPlaneSession(async () => {
    const { openDirectControlPlane } = await import("../kube/mod.ts");
    return await openDirectControlPlane(options, { env: options.env });
  });
  try {
    return await reclaimStale({
      runner: withTimeout(options.runner, DEFAULTS.commandTimeoutSeconds * 1000),
      controlPlane: () => session.get(),
      nodeName: () => resolveNodeName(options, { env: options.env }),
    }, {
      stateDir: options.stateDir,
      cniPath: options.cniPath,
      log: options.log,
      settings,
      ...(options.probe && { probe: options.probe }),
    });
  } finally {
    await session.close();
  }
}

/** Human form of a round's outcome. */
export function formatReclaimed(reclaimed: readonly Reclaimed[]): string {
  if (reclaimed.length === 0) return "nothing to reclaim: every recorded sandbox is alive";
  return reclaimed.map((r) =>
    `${r.error ? "FAILED   " : "reclaimed"} ${r.key} (container ${r.containerId}): ${
      r.error ?? r.reason
    }`
  ).join("\n");
}

interface GcFlags {
  stateDir: string;
  cniPath?: string;
  kubeconfig?: string;
  node?: string;
  timeout: number;
  json?: boolean;
}

/** Adds the `gc` command. */
export function registerGcCommand(program: Command, io: CliIo & { log: Logger }): void {
  program.command("gc")
    .description(
      "reclaim the attachments whose pod sandbox is gone (its netns no longer exists or is no " +
        "longer a namespace), as CNI GC would; live attachments are never touched",
    )
    .option("--state-dir <dir>", "state directory", absolutePath, DEFAULTS.stateDir)
    .option("--cni-path <dirs>", "where host-device is (default: $CNI_PATH, else /opt/cni/bin)")
    .option("--kubeconfig <path>", "kubeconfig (default: $KUBECONFIG, the installer's, in-cluster)")
    .option(
      "--node <name>",
      "this node's name (default: $NODE_NAME, the installer's file, hostname)",
    )
    .option("--timeout <seconds>", "budget of each API call, 1..120", integerIn(1, 120), 10)
    .option("--json", "machine-readable output")
    .action(async (flags: GcFlags) => {
      const reclaimed = await reclaimNode({
        stateDir: flags.stateDir,
        cniPath: (flags.cniPath ?? io.env.CNI_PATH ?? "/opt/cni/bin").split(":"),
        ...(flags.kubeconfig !== undefined && { kubeconfig: flags.kubeconfig }),
        ...(flags.node !== undefined && { nodeName: flags.node }),
        apiTimeoutSeconds: flags.timeout,
        runner: io.runner,
        env: io.env,
        log: io.log,
      });
      io.stdout(
        flags.json
          ? `${JSON.stringify({ reclaimed }, null, 2)}\n`
          : `${formatReclaimed(reclaimed)}\n`,
      );
      const failed = reclaimed.filter((r) => r.error).length;
      if (failed > 0) throw new Error(`${failed} attachment(s) could not be reclaimed`);
    });
}
