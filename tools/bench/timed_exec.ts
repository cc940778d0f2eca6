/**
 * The measured exec: a plugin process from spawn to exit, as a container
 * runtime sees it, optionally under GNU time (peak RSS, CPU time) or strace (the
 * breakdown). It goes through the plugin's own runner, so the bench spawns
 * processes exactly the way the plugin does.
 *
 * @module
 */

import { type CommandOutput, systemRunner } from "../../lib/iproute2/runner.ts";

/** A measured exec. */
export interface Timed extends CommandOutput {
  /** Spawn to exit and end of output, ms. */
  readonly ms: number;
  /** Start, ms since the epoch (lines up with the fake API server's request times). */
  readonly startedAt: number;
  /** Peak RSS in KiB (GNU time's %M), when measured. */
  readonly rssKb?: number;
  /**
   * CPU time, ms (GNU time's %U + %S): the process's and that of every child
   * it waited for — load-independent, unlike the wall time. When measured.
   */
  readonly cpuMs?: number;
}

/** strace arguments: only execve is stopped on (seccomp-bpf), so the tracee runs nearly free. */
export function straceArgv(file: string): string[] {
  return ["strace", "-f", "-q", "-ttt", "-s", "96", "--seccomp-bpf", "-e", "trace=execve"]
    .concat(["-e", "signal=none", "-o", file]);
}

/** GNU time's format: peak RSS (KiB), user and system CPU seconds. */
export const TIME_FORMAT = "%M %U %S";

/**
 * GNU time's `-o` file: the last line is {@linkcode TIME_FORMAT} (an earlier
 * one may report the exit status).
 */
export function parseTimeOutput(text: string): { rssKb?: number; cpuMs?: number } {
  const last = text.trim().split("\n").pop()?.trim() ?? "";
  const match = /^(\d+) (\d+\.\d+) (\d+\.\d+)$/.exec(last);
  if (!match) return {};
  return { rssKb: Number(match[1]), cpuMs: (Number(match[2]) + Number(match[3])) * 1000 };
}

// A measured plugin process takes seconds under the lab's TCG emulation: the
// plugin's per-command default (10 s) would kill a slow no-agent ADD there.
const runner = systemRunner({ timeoutMs: 10 * 60_000 });

/** Execs `argv` with exactly `env` (nothing inherited) and `stdin`, and measures it. */
export async function timedExec(
  argv: readonly string[],
  options: { env: Record<string, string>; stdin: string; rssFile?: string; straceFile?: string },
): Promise<Timed> {
  const wrapped = [
    ...(options.straceFile ? straceArgv(options.straceFile) : []),
    ...(options.rssFile ? ["/usr/bin/time", "-f", TIME_FORMAT, "-o", options.rssFile] : []),
    ...argv,
  ];
  const startedAt = performance.timeOrigin + performance.now();
  const started = performance.now();
  const out = await runner.run(wrapped, { env: options.env, clearEnv: true, stdin: options.stdin })
    .catch((error): CommandOutput => ({ code: 127, stdout: "", stderr: String(error) }));
  const ms = performance.now() - started;
  if (!options.rssFile) return { ...out, ms, startedAt };
  const usage = parseTimeOutput(await Deno.readTextFile(options.rssFile).catch(() => ""));
  await Deno.remove(options.rssFile).catch(() => {});
  return { ...out, ms, startedAt, ...usage };
}

/** A failed exec in one line for the report: the CNI error's code and msg, else stderr's tail. */
export function failure(what: string, out: CommandOutput): string {
  let detail = out.stdout.trim();
  try {
    const doc = JSON.parse(detail);
    if (doc && typeof doc === "object" && "msg" in doc) detail = `code ${doc.code}: ${doc.msg}`;
  } catch { /* not JSON */ }
  if (detail === "") detail = out.stderr.trim().split("\n").slice(-3).join("; ");
  return `${what}: exit ${out.code}: ${detail}`.slice(0, 400);
}
