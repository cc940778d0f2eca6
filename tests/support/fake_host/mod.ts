/**
 * A faithful fake of one host's network stack for the plugin's unprivileged
 * tests: fake `ip`, `sysctl`, `iptables`, `ip6tables` programs (shell shims
 * in `bin/`) and a fake `host-device` delegate (with `static` IPAM), all
 * acting on one shared kernel model kept in a locked state file, and logging
 * every call in execution order.
 *
 * ```ts
 * await using host = await createFakeHost();
 * // a plugin subprocess: env { ...host.env, CNI_PATH: host.cniDir, ... }
 * // or in-process:       runInvocation(io, { runner: host.runner() })
 * const kernel = await host.kernel();
 * assert.equal(kernel.link("G0000000jU00GV")?.kind, "vrf");
 * assert.deepEqual(summarize(await host.commands()), ["ip -json -details -force -batch - : link show dev ...", ...]);
 * ```
 *
 * Supported forms (anything else exits non-zero with `fake <tool>: unsupported
 * command ...`, never silently):
 *
 * - `ip [-json|-j] [-details|-d] [-4|-6] [-force] [-batch -] ...`, `ip -V`;
 *   `link add NAME [mtu N] [up] type veth [peer [name] P [mtu N]]`,
 *   `link add NAME type vrf table T`, `link add NAME type dummy`,
 *   `link del [dev] NAME`, `link del group G`, `link set [dev] NAME [mtu N] [name N] [alias A]
 *   [address MAC] [group G] [up|down] [master M|nomaster]`, `link show [[dev] NAME] [type K] [master M] [up]`;
 *   `route add|replace [unreachable|blackhole|prohibit] PREFIX|default [via A]
 *   [dev D] [onlink] [scope S] [metric N] [table T] [proto P]
 *   [encap seg6local action A [vrftable T|table T]]`, `route del ...` (same
 *   selectors), `route show [table T|all] [PREFIX] [dev D] [type T]`,
 *   `route flush table T`.
 * - `sysctl [-w] [-q] [-n] [-e] key[=value]...` (dotted or slash keys).
 * - `iptables|ip6tables [-w [S]] [-t filter] -C|-A|-I|-D|-S|-N|-X|-F CHAIN
 *   [-s|-d|-i|-o|-p|-j ...]`.
 * - `host-device` ADD/DEL/CHECK/VERSION with `device` and `static` IPAM.
 *
 * @module
 */

import { CniError, ErrorCode } from "../../../lib/cni/errors.ts";
import type { CommandOutput, CommandRunner, RunOptions } from "../../../lib/iproute2/runner.ts";
import type { CommandResult, FaultSpec, Kernel, KernelOptions, KernelSnapshot } from "./kernel.ts";
import {
  armKill,
  baseName,
  FAKE_DELEGATES,
  FAKE_PROGRAMS,
  initState,
  readLog,
  type RecordedCommand,
  runCommand,
  settled,
  withState,
} from "./store.ts";

export type { RecordedCommand } from "./store.ts";
export type {
  CommandResult,
  Fault,
  FaultSpec,
  Kernel,
  KernelOptions,
  KernelSnapshot,
  LinkView,
  RouteView,
} from "./kernel.ts";

/** Options of {@linkcode createFakeHost}. */
export interface FakeHostOptions extends KernelOptions {
  /** Parent of the temporary directory (default: the system's). */
  readonly tempDir?: string;
}

/** A fake host. Dispose it (or call `cleanup()`) to remove its directory. */
export interface FakeHost extends AsyncDisposable {
  /** Temporary directory holding state, log, CNI dir and netns files. */
  readonly dir: string;
  /** Directory of the fake `ip`, `sysctl`, `iptables`, `ip6tables` (put it first in PATH). */
  readonly binDir: string;
  /** A CNI_PATH directory with the fake `host-device` and `static` (bound to this host). */
  readonly cniDir: string;
  /** The shared JSON state. */
  readonly stateFile: string;
  /** JSON lines, one per call. */
  readonly logFile: string;
  /**
   * Environment for a plugin subprocess: `PATH` with `binDir` first,
   * `FAKE_HOST_STATE`, `FAKE_HOST_LOG`, `FAKE_HOST_DENO`, plus `CNI_PATH` = `cniDir`.
   */
  readonly env: Readonly<Record<string, string>>;
  /** Reads the host's current state. */
  kernel(): Promise<KernelSnapshot>;
  /** Every call so far, in execution order. */
  commands(): Promise<RecordedCommand[]>;
  /** Makes matching commands fail (see {@linkcode FaultSpec}). */
  inject(fault: FaultSpec): Promise<void>;
  /** Forgets the recorded calls. */
  clearLog(): Promise<void>;
  /**
   * The `n`-th fake program run from now by a plugin process kills that
   * process with SIGKILL, after its own effect (see `armKill` in store.ts).
   */
  crashAfter(n: number): Promise<void>;
  /**
   * Resolves once no fake program runs: a plugin killed mid-verb leaves its
   * other children running for a moment (a runtime's retry comes after its
   * backoff, by when they are done).
   */
  settled(): Promise<void>;
  /** A runner over the same model and log, without processes (also runs the delegate in-process). */
  runner(): CommandRunner;
  /** Runs one fake command in-process (logged), e.g. to arrange state: `run(["ip", "link", "add", ...])`. */
  run(argv: readonly string[], stdin?: string): Promise<CommandResult>;
  /** Changes the model directly under the lock (not logged), e.g. to plant leftovers. */
  update<T>(change: (kernel: Kernel) => T): Promise<T>;
  /** Registers a pod netns `<dir>/netns/<name>` and returns its path. */
  netns(name: string): Promise<string>;
  /** Deletes a pod netns: devices inside are destroyed (a veth takes its host end along). */
  deleteNetns(path: string): Promise<void>;
  /** Removes the temporary directory. */
  cleanup(): Promise<void>;
}

const here = new URL(".", import.meta.url).pathname;

/** Directory of the fake programs' shims in the repository. */
export const FAKE_BIN_DIR: string = `${here}bin`;

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** The Deno cache of this process: scrubbed environments must pass it on (`--cached-only`). */
export function denoDir(): string {
  const env = Deno.env.toObject();
  if (env.DENO_DIR) return env.DENO_DIR;
  if (env.XDG_CACHE_HOME) return `${env.XDG_CACHE_HOME}/deno`;
  return `${env.HOME ?? "/root"}/.cache/deno`;
}

/** Creates a fake host in a new temporary directory. */
export async function createFakeHost(options: FakeHostOptions = {}): Promise<FakeHost> {
  const dir = await Deno.makeTempDir({
    prefix: "galactic-fake-host-",
    ...(options.tempDir && { dir: options.tempDir }),
  });
  const stateFile = `${dir}/state.json`;
  const logFile = `${dir}/commands.jsonl`;
  const cniDir = `${dir}/cni`;
  const deno = Deno.env.get("FAKE_HOST_DENO") ?? Deno.execPath();
  await initState(stateFile, options);
  await Deno.writeTextFile(logFile, "");
  await Deno.mkdir(cniDir);
  await Deno.mkdir(`${dir}/netns`);
  // Delegates run with a cleared environment (only CNI_* and PATH): bake the paths in.
  for (const name of FAKE_DELEGATES) {
    const script = [
      "#!/bin/sh",
      `# Fake ${name} bound to the fake host in ${dir}.`,
      `FAKE_HOST_STATE=${shellQuote(stateFile)}`,
      `FAKE_HOST_LOG=${shellQuote(logFile)}`,
      `FAKE_HOST_DENO=${shellQuote(deno)}`,
      `DENO_DIR=\${DENO_DIR:-${shellQuote(denoDir())}}`,
      "export FAKE_HOST_STATE FAKE_HOST_LOG FAKE_HOST_DENO DENO_DIR",
      `exec ${shellQuote(`${here}cni/${name}`)} "$@"`,
      "",
    ].join("\n");
    await Deno.writeTextFile(`${cniDir}/${name}`, script, { mode: 0o755 });
  }
  const paths = { state: stateFile, log: logFile };
  const env = {
    PATH: `${FAKE_BIN_DIR}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    FAKE_HOST_STATE: stateFile,
    FAKE_HOST_LOG: logFile,
    FAKE_HOST_DENO: deno,
    CNI_PATH: cniDir,
    DENO_DIR: denoDir(),
  };
  const run = (argv: readonly string[], stdin?: string): Promise<CommandResult> =>
    runCommand(paths, argv, stdin === undefined ? {} : { stdin });
  let removed = false;
  const cleanup = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    dir,
    binDir: FAKE_BIN_DIR,
    cniDir,
    stateFile,
    logFile,
    env,
    kernel: (): Promise<KernelSnapshot> => withState(stateFile, (kernel) => kernel.snapshot()),
    commands: (): Promise<RecordedCommand[]> => withState(stateFile, () => readLog(logFile)),
    inject: (fault: FaultSpec): Promise<void> =>
      withState(stateFile, (kernel) => kernel.inject(fault)),
    clearLog: (): Promise<void> => withState(stateFile, () => Deno.writeTextFile(logFile, "")),
    crashAfter: (n: number): Promise<void> => armKill(stateFile, n),
    settled: (): Promise<void> => settled(stateFile),
    runner: (): CommandRunner => fakeRunner(paths),
    run,
    update: <T>(change: (kernel: Kernel) => T): Promise<T> => withState(stateFile, change),
    netns: async (name: string): Promise<string> => {
      const path = `${dir}/netns/${name}`;
      await Deno.writeTextFile(path, "");
      await withState(stateFile, (kernel) => kernel.createNetns(path));
      return path;
    },
    deleteNetns: async (path: string): Promise<void> => {
      await withState(stateFile, (kernel) => kernel.deleteNetns(path));
      await Deno.remove(path).catch(() => {});
    },
    cleanup,
    [Symbol.asyncDispose]: cleanup,
  };
}

/**
 * A {@linkcode CommandRunner} that interprets the fake programs in-process
 * (any directory: `ip`, `/sbin/ip`) and runs a delegate path ending in
 * `/host-device` or `/static` in-process with the given environment. Other
 * programs cannot start (it throws like the system runner).
 */
export function fakeRunner(paths: { state: string; log?: string }): CommandRunner {
  return {
    async run(argv: readonly string[], options: RunOptions = {}): Promise<CommandOutput> {
      const [program] = argv;
      if (!program) throw new Error("empty command");
      const name = baseName(program);
      const delegate = (FAKE_DELEGATES as readonly string[]).includes(name) &&
        program.includes("/");
      if (!delegate && !FAKE_PROGRAMS.includes(name)) {
        throw new CniError(
          ErrorCode.DataPlane,
          `cannot run ${program}: not a program of the fake host`,
        );
      }
      const env = delegate
        ? (options.clearEnv ? { ...options.env } : { ...Deno.env.toObject(), ...options.env })
        : undefined;
      return await runCommand(paths, argv, {
        ...(options.stdin !== undefined && { stdin: options.stdin }),
        ...(env && { env }),
      });
    },
  };
}

/** Options of {@linkcode summarize}. */
export interface SummaryOptions {
  /** Append ` => exit N` to failed calls (default true). */
  readonly codes?: boolean;
}

/**
 * One readable line per call, for order assertions:
 * `ip -force -batch - : link del X | link del Y`, `sysctl -q -w a=1 b=0`,
 * `host-device ADD device=G…G ifname=net1`, with ` => exit N` when it failed.
 */
export function summarize(
  commands: readonly RecordedCommand[],
  options: SummaryOptions = {},
): string[] {
  return commands.map((c) => {
    const [name = ""] = c.argv;
    let line: string;
    if ((FAKE_DELEGATES as readonly string[]).includes(name)) {
      let device = "";
      try {
        const config = JSON.parse(c.stdin ?? "{}") as { device?: unknown };
        if (typeof config.device === "string") device = ` device=${config.device}`;
      } catch { /* not JSON */ }
      line = `${name} ${c.env?.CNI_COMMAND ?? "?"}${device} ifname=${c.env?.CNI_IFNAME ?? ""}`;
    } else {
      line = c.argv.join(" ");
      const lines = (c.stdin ?? "").split("\n").map((l) => l.trim()).filter((l) => l !== "");
      if (lines.length > 0) line += ` : ${lines.join(" | ")}`;
    }
    return c.code !== 0 && (options.codes ?? true) ? `${line} => exit ${c.code}` : line;
  });
}
