/**
 * `galactic uninstall`: the CLI face of {@linkcode uninstall} (run on a node,
 * or by a clean-up DaemonSet with the host paths mounted).
 *
 * @module
 */

import type { Command } from "commander";
import { DEFAULTS } from "../config/mod.ts";
import { DEFAULT_CNI_BIN_DIR, DEFAULT_CONFIG_DIR } from "../install/mod.ts";
import { formatUninstallReport, uninstall } from "../install/mod.ts";
import type { CliIo } from "./cli.ts";
import { absolutePath } from "./flag_values.ts";

interface UninstallFlags {
  cniBinDir: string;
  configDir: string;
  stateDir: string;
  agentSocket: string;
  node?: string;
  force: boolean;
  json?: boolean;
}

/** Adds the `uninstall` command. */
export function registerUninstallCommand(program: Command, io: CliIo): void {
  program.command("uninstall")
    .description(
      "remove galactic from this node: the plugin binary, the installer's kubeconfig and " +
        "node-name, the state dir and the agent socket; refuses while recorded attachments " +
        "still have kernel objects unless --force (which removes them); idempotent",
    )
    .option("--cni-bin-dir <dir>", "CNI bin dir holding the plugin", DEFAULT_CNI_BIN_DIR)
    .option("--config-dir <dir>", "the installer's config dir", DEFAULT_CONFIG_DIR)
    .option("--state-dir <dir>", "the plugin's state dir", absolutePath, DEFAULTS.stateDir)
    .option("--agent-socket <path>", "the node agent's socket", absolutePath, DEFAULTS.agentSocket)
    .option("--node <name>", "this node's name, for the BGPVRFInstance clean-up hint")
    .option("--force", "also remove the kernel objects of attachments still recorded", false)
    .option("--json", "machine-readable output")
    .action(async (flags: UninstallFlags) => {
      const report = await uninstall({ ...flags, runner: io.runner });
      io.stdout(
        flags.json
          ? `${JSON.stringify(report, null, 2)}\n`
          : `${formatUninstallReport(report, flags.node ?? io.env.NODE_NAME)}\n`,
      );
    });
}
