/**
 * Running host commands (ip, iptables, sysctl, delegates) without a shell.
 * Everything the plugin does to the host goes through {@linkcode CommandRunner},
 * so tests can substitute a recording fake.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";

/** What a finished command returned. */
export interface CommandOutput {
  /** Exit code. */
  readonly code: number;
  /** Standard output, decoded. */
  readonly stdout: string;
  /** Standard error, decoded. */
  readonly stderr: string;
}

/** Options of one command. */
export interface RunOptions {
  /** Text written to stdin. */
  readonly stdin?: string;
  /** Environment of the child (replaces the parent's when `clearEnv`). */
  readonly env?: Record<string, string>;
  /** Start from an empty environment (delegates get exactly the CNI env). */
  readonly clearEnv?: boolean;
}

/** Runs a program given as argv; never through a shell. */
export interface CommandRunner {
  /** Runs `argv` and returns its output; rejects only when it cannot start. */
  run(argv: readonly string[], options?: RunOptions): Promise<CommandOutput>;
}

const decoder = new TextDecoder();

/** The real runner over `Deno.Command`; programs are looked up on PATH. */
export function systemRunner(): CommandRunner {
  return {
    async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandOutput> {
      const [program, ...args] = argv;
      if (!program) throw new Error("empty command");
      let child: Deno.ChildProcess;
      try {
        child = new Deno.Command(program, {
          args,
          stdin: options.stdin === undefined ? "null" : "piped",
          stdout: "piped",
          stderr: "piped",
          ...(options.env && { env: options.env }),
          ...(options.clearEnv && { clearEnv: true }),
        }).spawn();
      } catch (error) {
        throw new CniError(
          ErrorCode.DataPlane,
          `cannot run ${program}: ${(error as Error).message}`,
        );
      }
      if (options.stdin !== undefined) {
        const writer = child.stdin.getWriter();
        // A program that exits without reading stdin must not fail the run.
        await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
        await writer.close().catch(() => {});
      }
      const output = await child.output();
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
      };
    },
  };
}

/** Renders argv for messages. */
export function showCommand(argv: readonly string[]): string {
  return argv.map((arg) => (/^[\w.:/@=+,-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(" ");
}

/** Runs a command and returns stdout; a non-zero exit becomes a CniError naming the command. */
export async function runChecked(
  runner: CommandRunner,
  argv: readonly string[],
  options: RunOptions = {},
): Promise<string> {
  const output = await runner.run(argv, options);
  if (output.code !== 0) {
    const detail = (output.stderr.trim() || output.stdout.trim()).split("\n").slice(-3).join("; ");
    throw new CniError(ErrorCode.DataPlane, `${showCommand(argv)}: exit ${output.code}: ${detail}`);
  }
  return output.stdout;
}
