/**
 * Breakdown of one plugin invocation from `strace -f -ttt -e trace=execve`:
 * every process the plugin starts (ip, sysctl, iptables, host-device, ...)
 * with its start and exit, lined up with the API requests the fake server
 * saw and the plugin's own debug log lines.
 *
 * @module
 */

import type { Subject } from "./results.ts";
import { unionLength } from "./stats.ts";
import { invoke, type Node } from "./subjects.ts";
import { runChecked, systemRunner } from "../../lib/iproute2/runner.ts";
import { failure } from "./timed_exec.ts";

/** A moment of a profiled invocation, from the exec of bin/galactic. */
export interface TimelineEvent {
  readonly atMs: number;
  /** Duration, for commands. */
  readonly ms?: number;
  readonly kind: "exec" | "api" | "log";
  readonly what: string;
}

/** Where one profiled invocation spent its time. */
export interface ProfileRun {
  readonly mode: Exclude<Subject, "go" | "floor">;
  readonly verb: "ADD" | "DEL";
  readonly code: number;
  /** Exec of bin/galactic to its exit, ms. */
  readonly totalMs: number;
  /** The sh launcher until it execs deno. */
  readonly launcherMs: number;
  /** deno's exec until the first child process (runtime start, module graph, config, locks). */
  readonly startupMs: number;
  /** Time covered by child processes (union). */
  readonly commandsMs: number;
  /** Between the first child's start and the last one's end, covered by none (JS, API, locks). */
  readonly betweenMs: number;
  /** Last child's end until exit. */
  readonly tailMs: number;
  /** Per program family: processes and covered time. */
  readonly byProgram: Record<string, { count: number; ms: number }>;
  readonly apiRequests: number;
  /** Every child process, API request and log line. */
  readonly events: TimelineEvent[];
}

/** One exec'd process in the trace (epoch ms; argv strings may be truncated by strace). */
export interface TracedExec {
  readonly pid: number;
  /** Successful execve. */
  readonly at: number;
  /** Exit (undefined when the trace ends first). */
  end?: number;
  readonly path: string;
  readonly argv: string[];
}

const runner = systemRunner();

const EXECVE = /^(\d+)\s+(\d+\.\d+)\s+execve\("((?:[^"\\]|\\.)*)",\s*\[(.*?)\](?:\.\.\.)?,/;
const UNFINISHED =
  /^(\d+)\s+(\d+\.\d+)\s+execve\("((?:[^"\\]|\\.)*)",\s*\[(.*?)\].*<unfinished \.\.\.>$/;
const RESUMED = /^(\d+)\s+(\d+\.\d+)\s+<\.\.\. execve resumed>.*=\s*(-?\d+)/;
const EXITED = /^(\d+)\s+(\d+\.\d+)\s+\+\+\+ (?:exited with \d+|killed by \w+)/;
const STRING = /"((?:[^"\\]|\\.)*)"/g;

function strings(list: string): string[] {
  return [...list.matchAll(STRING)].map((m) => m[1]!.replace(/\\(.)/g, "$1"));
}

/** Parses strace output into exec'd processes, in exec order. */
export function parseStrace(text: string): TracedExec[] {
  const execs: TracedExec[] = [];
  const pending = new Map<number, { at: number; path: string; argv: string[] }>();
  const live = new Map<number, TracedExec>();
  // A process that execs again (a launcher, a shim) ends its previous program there.
  const push = (exec: TracedExec): void => {
    const previous = live.get(exec.pid);
    if (previous) previous.end = exec.at;
    execs.push(exec);
    live.set(exec.pid, exec);
  };
  for (const line of text.split("\n")) {
    const unfinished = UNFINISHED.exec(line);
    if (unfinished) {
      pending.set(Number(unfinished[1]), {
        at: Number(unfinished[2]) * 1000,
        path: unfinished[3]!,
        argv: strings(unfinished[4]!),
      });
      continue;
    }
    const resumed = RESUMED.exec(line);
    if (resumed) {
      const pid = Number(resumed[1]);
      const call = pending.get(pid);
      pending.delete(pid);
      if (call && resumed[3] === "0") push({ pid, ...call });
      continue;
    }
    const execve = EXECVE.exec(line);
    if (execve) {
      if (!/\)\s*=\s*0\s*$/.test(line)) continue; // a PATH lookup miss (ENOENT)
      const pid = Number(execve[1]);
      const exec = {
        pid,
        at: Number(execve[2]) * 1000,
        path: execve[3]!,
        argv: strings(execve[4]!),
      };
      push(exec);
      continue;
    }
    const exited = EXITED.exec(line);
    if (exited) {
      const exec = live.get(Number(exited[1]));
      if (exec && exec.end === undefined) exec.end = Number(exited[2]) * 1000;
      live.delete(Number(exited[1]));
    }
  }
  return execs;
}

/** Program family of an exec, for the breakdown. */
export function family(exec: TracedExec): string {
  const name = (exec.argv[0] ?? exec.path).split("/").pop() ?? "?";
  if (name === "ip") return "ip";
  if (name === "sysctl") return "sysctl";
  if (/^(ip6?tables|xtables)/.test(name)) return "iptables";
  if (name === "host-device" || name === "static") return "host-device";
  return name;
}

function label(exec: TracedExec): string {
  const name = (exec.argv[0] ?? exec.path).split("/").pop() ?? "?";
  const shim = exec.path.endsWith(`/shim/${name}`) ? "(substitute) " : "";
  const text = shim + [name, ...exec.argv.slice(1)].join(" ");
  return text.length > 72 ? `${text.slice(0, 71)}…` : text;
}

/** An API request as the fake server saw it (arrival in epoch ms). */
export interface ApiEvent {
  readonly at: number;
  readonly verb: string;
  readonly resource?: string;
}

const LOG_LINE = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z) (\w+) galactic: (.*)$/;

/** Log lines of the plugin as `[epoch ms, text]`. */
export function parseLog(text: string): [number, string][] {
  const lines: [number, string][] = [];
  for (const line of text.split("\n")) {
    const match = LOG_LINE.exec(line);
    if (match) lines.push([Date.parse(match[1]!), `${match[2]!.toLowerCase()}: ${match[3]!}`]);
  }
  return lines;
}

/**
 * Builds the breakdown of one invocation from its trace, the API requests
 * of the run and the plugin's log. Undefined when the trace has no process.
 */
export function analyze(
  input: {
    mode: Exclude<Subject, "go" | "floor">;
    verb: "ADD" | "DEL";
    code: number;
    trace: string;
    api: readonly ApiEvent[];
    log: string;
  },
): ProfileRun | undefined {
  const execs = parseStrace(input.trace);
  const main = execs[0];
  if (!main) return undefined;
  const start = main.at;
  const last = execs.findLast((e) => e.pid === main.pid)!;
  const end = last.end ?? Math.max(...execs.map((e) => e.end ?? e.at));
  // The launcher is a shell script that execs deno in the same process.
  const denoExec = execs.find((e) => e.pid === main.pid && e !== main) ?? main;
  const children = execs.filter((e) => e.pid !== main.pid && e.at >= denoExec.at);
  const intervals = children.map((e): [number, number] => [e.at, e.end ?? end]);
  const firstChild = Math.min(...intervals.map(([s]) => s));
  const lastEnd = Math.max(...intervals.map(([, e]) => e));
  const commandsMs = unionLength(intervals);
  const byProgram: Record<string, { count: number; ms: number }> = {};
  for (const name of new Set(children.map(family))) {
    const own = children.filter((e) => family(e) === name);
    byProgram[name] = {
      count: new Set(own.map((e) => e.pid)).size,
      ms: unionLength(own.map((e): [number, number] => [e.at, e.end ?? end])),
    };
  }
  const api = input.api.filter((a) => a.at >= start && a.at <= end);
  const events: TimelineEvent[] = [
    ...children.map((e): TimelineEvent => ({
      atMs: e.at - start,
      ms: (e.end ?? end) - e.at,
      kind: "exec",
      what: label(e),
    })),
    ...api.map((a): TimelineEvent => ({
      atMs: a.at - start,
      kind: "api",
      what: `API ${a.verb} ${a.resource ?? ""}`.trim(),
    })),
    ...parseLog(input.log)
      .filter(([at]) => at >= start - 1 && at <= end + 1)
      .map(([at, text]): TimelineEvent => ({ atMs: at - start, kind: "log", what: text })),
  ].sort((a, b) => a.atMs - b.atMs);
  const hasChildren = children.length > 0;
  return {
    mode: input.mode,
    verb: input.verb,
    code: input.code,
    totalMs: end - start,
    launcherMs: denoExec.at - start,
    startupMs: hasChildren ? firstChild - denoExec.at : end - denoExec.at,
    commandsMs,
    betweenMs: hasChildren ? lastEnd - firstChild - commandsMs : 0,
    tailMs: hasChildren ? end - lastEnd : 0,
    byProgram,
    apiRequests: api.length,
    events,
  };
}

/**
 * The breakdown scenario: `runs` ADD/DEL pairs of galactic in `mode` under
 * strace with the plugin's debug log, lined up with the API requests.
 */
export async function profilePairs(
  node: Node,
  mode: Exclude<Subject, "go" | "floor">,
  options: { runs: number; prefix: string; errors: string[] },
): Promise<ProfileRun[]> {
  const profiles: ProfileRun[] = [];
  const server = node.servers[mode === "compare" ? "agent" : mode];
  const api: ApiEvent[] = [];
  const stopListening = server.onRequest((r) => {
    api.push({
      at: performance.timeOrigin + performance.now(),
      verb: r.verb,
      ...(r.resource && { resource: r.resource }),
    });
  });
  try {
    for (let run = 0; run < options.runs; run++) {
      const pod = `${options.prefix}-prof${run}`;
      await runChecked(runner, ["ip", "netns", "add", pod]);
      let prevResult: unknown;
      try {
        for (const verb of ["ADD", "DEL"] as const) {
          const base = `${node.tmp}/profile-${mode}-${run}-${verb}`;
          api.length = 0;
          const inv = await invoke(node, mode, verb, {
            pod,
            cid: `bench-profile-${run}`,
            straceFile: `${base}.strace`,
            extra: { log_level: "debug" },
            nodeExtra: { log_file: `${base}.log` },
            ...(prevResult !== undefined && { prevResult }),
          });
          prevResult = inv.result;
          if (!inv.ok) options.errors.push(failure(`profile ${mode} ${verb}`, inv.out));
          if (inv.unclean) options.errors.push(`profile ${mode} ${verb}: ${inv.unclean}`);
          const profile = analyze({
            mode,
            verb,
            code: inv.out.code,
            trace: await Deno.readTextFile(`${base}.strace`).catch(() => ""),
            api,
            log: await Deno.readTextFile(`${base}.log`).catch(() => ""),
          });
          if (profile) profiles.push(profile);
        }
      } finally {
        await runner.run(["ip", "netns", "del", pod]);
      }
    }
  } finally {
    stopListening();
  }
  return profiles;
}
