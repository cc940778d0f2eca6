/**
 * The measured exec: a plugin process from spawn to exit, as a container
 * runtime sees it, optionally under GNU time (peak RSS) and bash's `times`
 * (CPU time), or under strace (the
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
   * CPU time, ms (user + system): the process's and that of every child it
   * waited for — load-independent, unlike the wall time. When measured.
   */
  readonly cpuMs?: number;
}

/** strace arguments: only execve is stopped on (seccomp-bpf), so the tracee runs nearly free. */
export function straceArgv(file: string): string[] {
  return ["strace", "-f", "-q", "-ttt", "-s", "96", "--seccomp-bpf", "-e", "trace=execve"]
    .concat(["-e", "signal=none", "-o", file]);
}

/** GNU time's `-o` file: the last line is %M (an earlier one may report the exit status). */
export function parseTimeOutput(text: string): number | undefined {
  const last = text.trim().split("\n").pop()?.trim() ?? "";
  return /^\d+$/.test(last) ? Number(last) : undefined;
}

/**
 * Runs "$@" and writes bash's `times` to "$0": GNU time prints CPU time in
 * whole centiseconds, too coarse for a 3 ms `ip`; `times` has milliseconds.
 */
const CPU_WRAPPER = `"$@"; status=$?; times >"$0"; exit $status`;

/** bash's `times`: the second line is the children's user and system time (`0m0.012s 0m0.004s`). */
export function parseTimes(text: string): number | undefined {
  const match = /^(\d+)m(\d+\.\d+)s (\d+)m(\d+\.\d+)s$/.exec(text.split("\n")[1]?.trim() ?? "");
  if (!match) return undefined;
  const [, um, us, sm, ss] = match.map(Number) as number[];
  return ((um! + sm!) * 60 + us! + ss!) * 1000;
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
    ...(options.rssFile
      ? ["/usr/bin/time", "-f", "%M", "-o", options.rssFile]
        .concat(["bash", "-c", CPU_WRAPPER, `${options.rssFile}.cpu`])
      : []),
    ...argv,
  ];
  const startedAt = performance.timeOrigin + performance.now();
  const started = performance.now();
  const out = await runner.run(wrapped, { env: options.env, clearEnv: true, stdin: options.stdin })
    .catch((error): CommandOutput => ({ code: 127, stdout: "", stderr: String(error) }));
  const ms = performance.now() - started;
  if (!options.rssFile) return { ...out, ms, startedAt };
  const rssKb = parseTimeOutput(await Deno.readTextFile(options.rssFile).catch(() => ""));
  const cpuMs = parseTimes(await Deno.readTextFile(`${options.rssFile}.cpu`).catch(() => ""));
  await Deno.remove(options.rssFile).catch(() => {});
  await Deno.remove(`${options.rssFile}.cpu`).catch(() => {});
  return {
    ...out,
    ms,
    startedAt,
    ...(rssKb !== undefined && { rssKb }),
    ...(cpuMs !== undefined && { cpuMs }),
  };
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
