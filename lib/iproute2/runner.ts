/**
 * Running host commands (ip, iptables, sysctl, delegates) without a shell.
 * Everything the plugin does to the host goes through {@linkcode CommandRunner},
 * so tests can substitute a recording fake.
 *
 * Every command has a deadline: a hung child (a stuck `ip` on a wedged rtnl
 * lock, a delegate waiting on something that never comes) would otherwise
 * hold the attachment's lock until the runtime kills the whole plugin, with
 * no rollback. On expiry the child's process group is killed (children are
 * started in their own session, so a shell script's `sleep` goes too, and
 * the output pipes close) and the command fails with code 11.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";

/** What a finished command returned. */
export interface CommandOutput {
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
  /** Deadline in milliseconds (default: the runner's). */
  readonly timeoutMs?: number;
}

/** Deadline of a command run without one: well above a healthy `ip`/`iptables -w 5`. */
export const DEFAULT_COMMAND_TIMEOUT_MS = 10_000;

/** Runs a program given as argv; never through a shell. */
export interface CommandRunner {
  /** Runs `argv` and returns its output; rejects only when it cannot start. */
  run(argv: readonly string[], options?: RunOptions): Promise<CommandOutput>;
}

const decoder = new TextDecoder();

/**
 * The real runner over `Deno.Command`; programs are looked up on PATH.
 * Commands without their own `timeoutMs` get `options.timeoutMs`.
 */
export function systemRunner(options: { timeoutMs?: number } = {}): CommandRunner {
  const defaultTimeout = options.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
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
          // Its own session and process group, so a deadline kills all of it.
          detached: true,
          ...(options.env && { env: options.env }),
          ...(options.clearEnv && { clearEnv: true }),
        }).spawn();
      } catch (error) {
        throw new CniError(
          ErrorCode.DataPlane,
          `cannot run ${program}: ${(error as Error).message}`,
        );
      }
      const timeoutMs = options.timeoutMs ?? defaultTimeout;
      let expired = false;
      const timer = setTimeout(() => {
        expired = true;
        killGroup(child.pid);
      }, timeoutMs);
      let output: Deno.CommandOutput;
      try {
        if (options.stdin !== undefined) {
          const writer = child.stdin.getWriter();
          // A program that exits without reading stdin must not fail the run.
          await writer.write(new TextEncoder().encode(options.stdin)).catch(() => {});
          await writer.close().catch(() => {});
        }
        output = await child.output();
      } finally {
        clearTimeout(timer);
      }
      if (expired) {
        throw new CniError(
          ErrorCode.TryAgainLater,
          `${showCommand(argv)} did not finish within ${seconds(timeoutMs)}; killed it`,
        );
      }
      return {
        code: output.code,
        stdout: decoder.decode(output.stdout),
        stderr: decoder.decode(output.stderr),
      };
    },
  };
}

function killGroup(pid: number): void {
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch {
    // The group is gone already; kill the child alone in case it left it.
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* exited */ }
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}

/**
 * A runner whose commands get `timeoutMs` unless they carry their own (the
 * configured `command_timeout_seconds` over a host's runner).
 */
export function withTimeout(runner: CommandRunner, timeoutMs: number): CommandRunner {
  return {
    run: (argv, options = {}) =>
      runner.run(argv, { ...options, timeoutMs: options.timeoutMs ?? timeoutMs }),
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
