/**
 * The operator CLI (when `CNI_COMMAND` is not set), to the conventions of
 * kubectl/cilium/calicoctl: `--version`, flag values validated with the flag
 * named, `--json` with stable keys and typed values on every command a
 * script reads, and exit codes that mean what they say (0 success, 1 a
 * failure or an unhealthy/refused answer, 2 a usage error).
 *
 * @module
 */

import { Command } from "commander";
import { DEFAULTS } from "../config/mod.ts";
import { type CommandRunner, systemRunner } from "../iproute2/mod.ts";
import { buildInfo } from "../build_info.ts";
import { createLogger } from "../log/logger.ts";
import { registerAgentCommand } from "./agent_command.ts";
import { registerGcCommand } from "./gc_command.ts";
import { readConfigFile } from "./config_file.ts";
import { derive, explain, formatExplanation, inputsFromConfig } from "./explain.ts";
import { absolutePath, integerIn } from "./flag_values.ts";
import { registerInstallCommand } from "./install_command.ts";
import { registerMigrateCommand } from "./migrate_command.ts";
import { AttachmentStore, parseStateFile } from "../state/attachments.ts";
import { formatNodeState, readNodeState, rebuildRecords } from "../state/node_state.ts";
import { formatNodeStatus, nodeStatus } from "./node_status.ts";
import { registerUninstallCommand } from "./uninstall_command.ts";

/** The CLI's side of the process (tests substitute it). */
export interface CliIo {
  /** Runner of host commands (the plugin's own seam). */
  readonly runner: CommandRunner;
  /** Writes stdout text. */
  readonly stdout: (text: string) => void;
  /** Writes stderr text. */
  readonly stderr: (text: string) => void;
  /** Process environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/** The real process. */
export function processIo(): CliIo {
  return {
    runner: systemRunner(),
    stdout: (text) => console.log(text.replace(/\n$/, "")),
    stderr: (text) => console.error(text.replace(/\n$/, "")),
    env: Deno.env.toObject(),
  };
}

/** A command ended with an answer that is not success (printed already). */
class NonZeroExit extends Error {}

function emit(io: CliIo, json: boolean, value: unknown, human: () => string): void {
  io.stdout(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
}

function addVersion(program: Command, io: CliIo): void {
  const show = async (json: boolean): Promise<void> => {
    const info = await buildInfo();
    emit(io, json, info, () =>
      [
        `galactic ${info.version}`,
        `commit      ${info.commit}`,
        `deno        ${info.deno} (v8 ${info.v8}, typescript ${info.typescript})`,
        `cni         ${info.cniVersions.join(", ")}`,
      ].join("\n"));
  };
  program
    .option("-V, --version", "print the version, build commit and Deno version")
    // The root action also receives what is not a command: name it like kubectl does.
    .argument("[command]")
    .usage("[options] [command]")
    .action(async (unknown: string | undefined, options: { version?: boolean }) => {
      if (unknown !== undefined) {
        program.error(`error: unknown command '${unknown}'`, {
          exitCode: 2,
          code: "commander.unknownCommand",
        });
      }
      if (!options.version) program.help({ error: true });
      await show(false);
    });
  program.command("version")
    .description("print the plugin version, build commit, Deno version and CNI versions")
    .option("--json", "machine-readable output")
    .action(async (options: { json?: boolean }) => await show(options.json ?? false));
}

interface ExplainFlags {
  file?: string;
  vpc?: string;
  attachment?: string;
  locator?: string;
  asn?: number;
  node?: string;
  json?: boolean;
}

function addExplain(program: Command, io: CliIo): void {
  program.command("explain")
    .description(
      "show what the plugin derives for a VPC attachment (names, SRv6 SID, RD/RT, object name), " +
        "from flags or from its NAD/config (-f); exits 1 when the plugin would refuse it",
    )
    .option("-f, --file <path>", "NetworkAttachmentDefinition (YAML/JSON), config or conflist")
    .option("--vpc <base62>", "VPC identifier (1..9 base62 chars)")
    .option("--attachment <base62>", "VPC attachment identifier (1..3 base62 chars)")
    .option("--locator <prefix>", "node SRv6 locator, e.g. fc00:0:1::/48")
    .option("--asn <number>", "ASN of the node's BGPInstance", integerIn(1, 0xffffffff))
    .option("--node <name>", "Kubernetes node name")
    .option("--json", "machine-readable output")
    .action(async (flags: ExplainFlags) => {
      let explanation;
      if (flags.file !== undefined) {
        if (flags.vpc ?? flags.attachment ?? flags.locator) {
          throw new Error(
            "-f takes vpc, vpcattachment and srv6_locator from the file; " +
              "drop --vpc/--attachment/--locator",
          );
        }
        const { config } = await readConfigFile(flags.file, io.env);
        explanation = derive(inputsFromConfig(config, flags));
      } else {
        explanation = explain(flags);
      }
      emit(io, flags.json ?? false, explanation, () => formatExplanation(explanation));
      if (explanation.refused.length > 0) {
        io.stderr(
          `galactic: the plugin would refuse this attachment: ${
            explanation.refused.map((r) => `${r.input}: ${r.reason}`).join("; ")
          }\n`,
        );
        throw new NonZeroExit();
      }
    });
}

function addState(program: Command, io: CliIo): void {
  program.command("state")
    .description(
      "list the attachments this node's plugin recorded, each checked against the kernel " +
        "(its VRF with the recorded table, its host veth in that VRF)",
    )
    .option("--state-dir <dir>", "state directory", absolutePath, DEFAULTS.stateDir)
    .option(
      "--rebuild",
      "only for a corrupt attachments.json: keep it aside and record every plugin VRF the " +
        "kernel has (owner unknown: any container's DEL removes it, no GC does)",
    )
    .option("--json", "machine-readable output")
    .action(async (options: { stateDir: string; json?: boolean; rebuild?: boolean }) => {
      if (options.rebuild) await rebuild(io, options.stateDir);
      const state = await readNodeState(options.stateDir, io.runner);
      emit(io, options.json ?? false, state, () => formatNodeState(state));
    });
}

async function rebuild(io: CliIo, stateDir: string): Promise<void> {
  const store = new AttachmentStore(stateDir);
  const text = await Deno.readTextFile(store.recordsFile).catch(() => undefined);
  if (text === undefined || typeof parseStateFile(text) !== "string") {
    throw new Error(`--rebuild: ${store.recordsFile} is not corrupt; nothing to rebuild`);
  }
  const { kept, records } = await rebuildRecords(stateDir, io.runner);
  io.stderr(
    `galactic: kept the corrupt file as ${kept}; recorded ${
      Object.keys(records).length
    } attachment(s) the kernel has, owner unknown (the next DEL of each removes it)\n`,
  );
}

function addStatus(program: Command, io: CliIo): void {
  program.command("status")
    .description(
      "is this node healthy for a network? Runs the plugin's CNI STATUS checks for the " +
        "NAD/config (-f), and checks the node agent and the recorded attachments; exits 1 " +
        "when not healthy",
    )
    .requiredOption(
      "-f, --file <path>",
      "NetworkAttachmentDefinition (YAML/JSON), config or conflist",
    )
    .option(
      "--cni-path <dirs>",
      "where delegates are looked up (default: $CNI_PATH, else /opt/cni/bin)",
    )
    .option("--json", "machine-readable output")
    .action(async (options: { file: string; cniPath?: string; json?: boolean }) => {
      const source = await readConfigFile(options.file, io.env);
      const status = await nodeStatus(source, {
        cniPath: options.cniPath ?? io.env.CNI_PATH ?? "/opt/cni/bin",
        env: io.env,
        runner: io.runner,
        stderr: io.stderr,
      });
      emit(io, options.json ?? false, status, () => formatNodeStatus(status));
      if (!status.healthy) throw new NonZeroExit();
    });
}

/** Builds the CLI program. */
export function buildProgram(io: CliIo = processIo()): Command {
  const program = new Command("galactic")
    .description(
      "Kubernetes CNI plugin: a VRF per pod attachment, an SRv6 End.DT46 ingress SID, and a BGPVRFInstance " +
        "for the BGP control plane.\nRun by the container runtime with CNI_COMMAND set; these commands are for operators.",
    )
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: (text) => io.stderr(text),
    })
    .showHelpAfterError();
  addVersion(program, io);
  addExplain(program, io);
  addState(program, io);
  addStatus(program, io);
  registerInstallCommand(program, (text) => io.stdout(`${text}\n`));
  registerUninstallCommand(program, io);
  registerMigrateCommand(program);
  registerAgentCommand(program);
  registerGcCommand(program, {
    ...io,
    log: createLogger({ level: "info", stderr: (line) => io.stderr(line) }),
  });
  return program;
}

/** Runs the CLI; returns the exit code (0 success, 1 failure or a negative answer, 2 usage). */
export async function runCli(args: readonly string[], io: CliIo = processIo()): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync([...args], { from: "user" });
    return 0;
  } catch (error) {
    if (error instanceof NonZeroExit) return 1;
    const code = (error as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.help") return 0;
    if (typeof code === "string" && code.startsWith("commander.")) return 2;
    io.stderr(`galactic: ${(error as Error).message}\n`);
    return 1;
  }
}
