/**
 * The operator CLI (when `CNI_COMMAND` is not set).
 *
 * @module
 */

import { Command, InvalidArgumentError } from "commander";
import { SUPPORTED_VERSIONS } from "../cni/version.ts";
import { DEFAULTS } from "../config/mod.ts";
import { AttachmentStore } from "../state/attachments.ts";
import { PLUGIN_VERSION } from "../version.ts";
import { registerAgentCommand } from "./agent_command.ts";
import { explain } from "./explain.ts";
import { registerInstallCommand } from "./install_command.ts";
import { registerMigrateCommand } from "./migrate_command.ts";

function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed)) throw new InvalidArgumentError(`"${value}" is not an integer`);
  return parsed;
}

function print(pairs: Record<string, unknown>, json: boolean): void {
  if (json) {
    console.log(JSON.stringify(pairs, null, 2));
    return;
  }
  const width = Math.max(...Object.keys(pairs).map((k) => k.length));
  for (const [key, value] of Object.entries(pairs)) console.log(`${key.padEnd(width)}  ${value}`);
}

/** Builds the CLI program. */
export function buildProgram(): Command {
  const program = new Command("galactic")
    .description(
      "Kubernetes CNI plugin: a VRF per pod attachment, an SRv6 End.DT46 ingress SID, and a BGPVRFInstance " +
        "for the BGP control plane.\nRun by the container runtime with CNI_COMMAND set; these commands are for operators.",
    )
    .version(PLUGIN_VERSION, "-V, --version-flag")
    .exitOverride()
    .showHelpAfterError();

  program.command("version")
    .description("print the plugin version and the CNI versions it speaks")
    .option("--json", "machine-readable output")
    .action((options: { json?: boolean }) => {
      print(
        { version: PLUGIN_VERSION, cniVersions: SUPPORTED_VERSIONS.join(", ") },
        options.json ?? false,
      );
    });

  program.command("explain")
    .description(
      "show what the plugin derives for a VPC attachment (names, SRv6 SID, RD/RT, object name)",
    )
    .requiredOption("--vpc <base62>", "VPC identifier (1..9 base62 chars)")
    .option("--attachment <base62>", "VPC attachment identifier (1..3 base62 chars)")
    .option("--locator <prefix>", "node SRv6 locator, e.g. fc00:0:1::/48")
    .option("--asn <number>", "ASN of the node's BGPInstance", integer)
    .option("--node <name>", "Kubernetes node name")
    .option("--json", "machine-readable output")
    .action(
      (
        options: {
          vpc: string;
          attachment?: string;
          locator?: string;
          asn?: number;
          node?: string;
          json?: boolean;
        },
      ) => {
        print(explain(options), options.json ?? false);
      },
    );

  program.command("state")
    .description("list the attachments this node's plugin owns (local state)")
    .option("--state-dir <dir>", "state directory", DEFAULTS.stateDir)
    .option("--json", "machine-readable output")
    .action(async (options: { stateDir: string; json?: boolean }) => {
      const records = await new AttachmentStore(options.stateDir).read();
      if (options.json) {
        console.log(JSON.stringify(records, null, 2));
        return;
      }
      const rows = Object.values(records);
      if (rows.length === 0) console.log(`no attachments recorded in ${options.stateDir}`);
      for (const r of rows) {
        console.log(
          `vpc ${r.vpc} attachment ${r.attachment} table ${r.table} container ${r.containerId} ifname ${r.ifname} network ${r.network}`,
        );
      }
    });

  registerInstallCommand(program);
  registerMigrateCommand(program);
  registerAgentCommand(program);
  return program;
}

/** Runs the CLI; returns the exit code. */
export async function runCli(args: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...args], { from: "user" });
    return 0;
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (
      code === "commander.helpDisplayed" || code === "commander.version" ||
      code === "commander.help"
    ) return 0;
    if (typeof code === "string" && code.startsWith("commander.")) return 2;
    console.error(`galactic: ${(error as Error).message}`);
    return 1;
  }
}
