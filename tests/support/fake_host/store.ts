/**
 * The shared state file of a fake host: every command loads the model, runs
 * and saves it while holding an exclusive lock on `<state>.lock`, and appends
 * its record to the log in the same critical section, so concurrent plugin
 * processes see one consistent host and the log order is the execution order.
 *
 * @module
 */

import { type DelegateName, runDelegate } from "./host_device.ts";
import { type CommandResult, Kernel, type KernelOptions } from "./kernel.ts";

/** One recorded call of a fake program. */
export interface RecordedCommand {
  /** argv; argv[0] is the program's base name (`ip`, `host-device`). */
  readonly argv: string[];
  /** Text given on stdin (ip -batch, delegates); absent when none was read. */
  readonly stdin?: string;
  readonly code: number;
  /** Standard output. */
  readonly stdout: string;
  /** Standard error. */
  readonly stderr: string;
  /** Process id of the caller (the shim's deno, or the test process in-process). */
  readonly pid: number;
  /** Time (ms since the epoch). */
  readonly t: number;
  /** CNI_* environment of a delegate call. */
  readonly env?: Readonly<Record<string, string>>;
}

/** Where a fake host keeps its state and log. */
export interface StorePaths {
  /** JSON state file. */
  readonly state: string;
  /** JSON-lines log (optional). */
  readonly log?: string;
}

/** Programs the fake interprets. */
export const FAKE_PROGRAMS: readonly string[] = ["ip", "sysctl", "iptables", "ip6tables"];

/** Delegates the fake interprets. */
export const FAKE_DELEGATES: readonly DelegateName[] = ["host-device", "static"];

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Writes a fresh state file (no lock: call before anything runs). */
export async function initState(path: string, options: KernelOptions = {}): Promise<void> {
  await Deno.writeTextFile(path, Kernel.create(options).toJson());
}

/**
 * Runs `body` on the model loaded from `path` while holding the lock; the
 * model is saved afterwards if it changed. A missing file is a fresh host.
 */
export async function withState<T>(
  path: string,
  body: (kernel: Kernel) => T | Promise<T>,
): Promise<T> {
  using lock = await Deno.open(`${path}.lock`, { read: true, write: true, create: true });
  await lock.lock(true);
  let before: string;
  try {
    before = await Deno.readTextFile(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    before = "";
  }
  const kernel = before === "" ? Kernel.create() : Kernel.fromJson(before);
  const result = await body(kernel);
  const after = kernel.toJson();
  if (after !== before) {
    const temp = `${path}.${Deno.pid}.tmp`;
    await Deno.writeTextFile(temp, after);
    await Deno.rename(temp, path);
  }
  return result;
}

/**
 * Runs one fake program (`argv[0]` may be a path) with `stdin` and, for
 * delegates, the CNI environment `env`; records it in the log.
 */
export async function runCommand(
  paths: StorePaths,
  argv: readonly string[],
  options: { stdin?: string; env?: Readonly<Record<string, string | undefined>>; pid?: number } =
    {},
): Promise<CommandResult> {
  const name = baseName(argv[0] ?? "");
  const args = argv.slice(1);
  const stdin = options.stdin ?? "";
  return await withState(paths.state, async (kernel) => {
    const delegate = (FAKE_DELEGATES as readonly string[]).includes(name);
    const result = delegate
      ? runDelegate(kernel, name as DelegateName, options.env ?? {}, stdin)
      : kernel.execute([name, ...args], stdin);
    if (paths.log) {
      const cniEnv = delegate
        ? Object.fromEntries(
          Object.entries(options.env ?? {}).filter((e): e is [string, string] =>
            e[0].startsWith("CNI_") && e[1] !== undefined
          ),
        )
        : undefined;
      const record: RecordedCommand = {
        argv: [name, ...args],
        ...(options.stdin !== undefined && { stdin: options.stdin }),
        code: result.code,
        stdout: result.stdout,
        stderr: result.stderr,
        pid: options.pid ?? Deno.pid,
        t: Date.now(),
        ...(cniEnv && { env: cniEnv }),
      };
      await Deno.writeTextFile(paths.log, `${JSON.stringify(record)}\n`, { append: true });
    }
    return result;
  });
}

/** Where running fake programs mark themselves (one file per pid): next to the state file. */
function runningDir(state: string): string {
  return `${state}.running`;
}

/**
 * Marks this process as a running fake program until the returned disposer
 * runs. A plugin killed mid-verb leaves its other children running (they
 * are in sessions of their own); {@linkcode settled} waits for them.
 */
export async function markRunning(state: string): Promise<AsyncDisposable> {
  const file = `${runningDir(state)}/${Deno.pid}`;
  await Deno.mkdir(runningDir(state), { recursive: true });
  await Deno.writeTextFile(file, "");
  return { [Symbol.asyncDispose]: () => Deno.remove(file).catch(() => {}) };
}

/** Resolves once no fake program runs (polled; a marker whose process is gone counts as done). */
export async function settled(state: string, options: { timeoutMs?: number } = {}): Promise<void> {
  const end = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    const running: string[] = [];
    try {
      for await (const entry of Deno.readDir(runningDir(state))) {
        const alive = await Deno.stat(`/proc/${entry.name}`).then(() => true, () => false);
        if (alive) running.push(entry.name);
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (running.length === 0) return;
    if (Date.now() > end) throw new Error(`fake programs still running: pids ${running}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Where {@linkcode armKill} keeps its plan: next to the state file. */
function killPlanPath(state: string): string {
  return `${state}.kill`;
}

/**
 * Arms a crash: the `after`-th fake program run from now (counted across
 * processes, under the state lock) kills its parent, the plugin, with
 * SIGKILL once its own effect is applied, before the plugin sees its output.
 * One crash per arming. Process level only (the in-process runner has no
 * parent to kill).
 */
export async function armKill(state: string, after: number): Promise<void> {
  await withState(state, () => Deno.writeTextFile(killPlanPath(state), JSON.stringify({ after })));
}

/** Counts one program run against the armed crash; true: this run is the one that kills. */
export async function takeKillTurn(state: string): Promise<boolean> {
  return await withState(state, async () => {
    const path = killPlanPath(state);
    let plan: { after: number };
    try {
      plan = JSON.parse(await Deno.readTextFile(path));
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return false;
      throw error;
    }
    if (plan.after > 1) {
      await Deno.writeTextFile(path, JSON.stringify({ after: plan.after - 1 }));
      return false;
    }
    await Deno.remove(path);
    return true;
  });
}

export async function readLog(path: string): Promise<RecordedCommand[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return [];
    throw error;
  }
  return text.split("\n").filter((line) => line !== "").map((line) =>
    JSON.parse(line) as RecordedCommand
  );
}
