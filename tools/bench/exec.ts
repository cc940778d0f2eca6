/**
 * Running programs: plain helpers for setup, and the measured exec (process
 * start to exit, optionally under GNU time for the peak RSS, or under strace
 * for the breakdown).
 *
 * @module
 */

/** What a finished program returned. */
export interface Output {
  /** Exit code. */
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
}

/** Options of {@linkcode run}. */
export interface RunOptions {
  /** Text for stdin (else /dev/null). */
  readonly stdin?: string;
  /** Environment (added to ours unless `clearEnv`). */
  readonly env?: Record<string, string>;
  /** Start from an empty environment. */
  readonly clearEnv?: boolean;
  /** Working directory. */
  readonly cwd?: string;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Spawns `argv` and feeds stdin; the caller awaits `output()`. */
function spawn(argv: readonly string[], options: RunOptions): Deno.ChildProcess {
  const [program, ...args] = argv;
  if (!program) throw new Error("empty command");
  const child = new Deno.Command(program, {
    args,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env && { env: options.env }),
    ...(options.clearEnv && { clearEnv: true }),
    ...(options.cwd && { cwd: options.cwd }),
  }).spawn();
  return child;
}

async function feed(child: Deno.ChildProcess, stdin: string | undefined): Promise<void> {
  if (stdin === undefined) return;
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(stdin)).catch(() => {});
  await writer.close().catch(() => {});
}

/** Runs `argv` to completion; never throws for a non-zero exit (127 when it cannot start). */
export async function run(argv: readonly string[], options: RunOptions = {}): Promise<Output> {
  let child: Deno.ChildProcess;
  try {
    child = spawn(argv, options);
  } catch (error) {
    return { code: 127, stdout: "", stderr: `${argv[0]}: ${(error as Error).message}` };
  }
  const [, out] = await Promise.all([feed(child, options.stdin), child.output()]);
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

/** Runs `argv` and returns stdout; throws naming the command on a non-zero exit. */
export async function mustRun(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const out = await run(argv, options);
  if (out.code !== 0) {
    const detail = (out.stderr.trim() || out.stdout.trim()).split("\n").slice(-4).join("; ");
    throw new Error(`${argv.join(" ")}: exit ${out.code}: ${detail}`);
  }
  return out.stdout;
}

/** Runs `ip -batch -` with `lines` (optionally `-force`). */
export async function ipBatch(
  lines: readonly string[],
  options: { force?: boolean; flags?: readonly string[] } = {},
): Promise<Output> {
  if (lines.length === 0) return { code: 0, stdout: "", stderr: "" };
  return await run(
    ["ip", ...(options.flags ?? []), ...(options.force ? ["-force"] : []), "-batch", "-"],
    { stdin: lines.join("\n") + "\n" },
  );
}

/** A measured exec. */
export interface Timed extends Output {
  /** Wall time from spawn to exit and end of output, ms. */
  readonly ms: number;
  /** Start, ms since the epoch (for lining up with API request times). */
  readonly startedAt: number;
  /** Peak RSS in KiB (GNU time's %M), when measured. */
  readonly rssKb?: number;
}

/** How to wrap a measured exec. */
export interface TimedOptions {
  /** Exact environment of the program (nothing inherited). */
  readonly env: Record<string, string>;
  /** Stdin text. */
  readonly stdin: string;
  /** Measure peak RSS with `/usr/bin/time -f %M -o FILE`. */
  readonly rssFile?: string;
  /** Trace execve/exit of the process tree into this file (`strace -f`). */
  readonly straceFile?: string;
}

/** GNU time, which reports the peak RSS of the process (and its waited-for children). */
export const GNU_TIME = "/usr/bin/time";

/** strace arguments: only execve is stopped on (seccomp-bpf), so the tracee runs nearly free. */
export function straceArgv(file: string): string[] {
  return [
    "strace",
    "-f",
    "-q",
    "-ttt",
    "-s",
    "96",
    "--seccomp-bpf",
    "-e",
    "trace=execve",
    "-e",
    "signal=none",
    "-o",
    file,
  ];
}

/** Epoch milliseconds with sub-millisecond resolution. */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Parses GNU time's `-o` file: the last line is %M (earlier lines may report the exit status). */
export function parseTimeOutput(text: string): number | undefined {
  const last = text.trim().split("\n").pop()?.trim() ?? "";
  return /^\d+$/.test(last) ? Number(last) : undefined;
}

/** Execs `argv` the way a container runtime does and measures it. */
export async function timedExec(argv: readonly string[], options: TimedOptions): Promise<Timed> {
  const wrapped = [
    ...(options.straceFile ? straceArgv(options.straceFile) : []),
    ...(options.rssFile ? [GNU_TIME, "-f", "%M", "-o", options.rssFile] : []),
    ...argv,
  ];
  const startedAt = epochMs();
  const started = performance.now();
  let out: Output;
  try {
    const child = spawn(wrapped, { env: options.env, clearEnv: true, stdin: options.stdin });
    const [, raw] = await Promise.all([feed(child, options.stdin), child.output()]);
    out = {
      code: raw.code,
      stdout: decoder.decode(raw.stdout),
      stderr: decoder.decode(raw.stderr),
    };
  } catch (error) {
    out = { code: 127, stdout: "", stderr: `${wrapped[0]}: ${(error as Error).message}` };
  }
  const ms = performance.now() - started;
  let rssKb: number | undefined;
  if (options.rssFile) {
    rssKb = parseTimeOutput(await Deno.readTextFile(options.rssFile).catch(() => ""));
    await Deno.remove(options.rssFile).catch(() => {});
  }
  return { ...out, ms, startedAt, ...(rssKb !== undefined && { rssKb }) };
}

/** Short description of a failed exec for the report. */
export function failure(what: string, out: Output): string {
  let detail = out.stdout.trim();
  try {
    const doc = JSON.parse(detail);
    if (doc && typeof doc === "object" && "msg" in doc) detail = `code ${doc.code}: ${doc.msg}`;
  } catch { /* not JSON */ }
  if (detail === "") detail = out.stderr.trim().split("\n").slice(-3).join("; ");
  return `${what}: exit ${out.code}: ${detail}`.slice(0, 400);
}

/** True when `path` exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
