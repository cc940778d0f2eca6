/**
 * Breakdown of one plugin invocation from `strace -f -ttt -e trace=execve`:
 * every process the plugin starts (ip, sysctl, iptables, host-device, ...)
 * with its start and exit, lined up with the API requests the fake server
 * saw and the plugin's own debug log lines.
 *
 * @module
 */

import type { Mode, ProfileRun, TimelineEvent } from "./results.ts";
import { unionLength } from "./stats.ts";

/** One exec'd process in the trace. */
export interface TracedExec {
  /** Process id. */
  readonly pid: number;
  /** Successful execve, epoch ms. */
  readonly at: number;
  /** Exit, epoch ms (undefined when the trace ends first). */
  end?: number;
  /** Program path. */
  readonly path: string;
  /** argv (strings may be truncated by strace). */
  readonly argv: string[];
}

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
      if (call && resumed[3] === "0") {
        const exec = { pid, ...call };
        execs.push(exec);
        live.set(pid, exec);
      }
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
      execs.push(exec);
      live.set(pid, exec);
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
  const text = [name, ...exec.argv.slice(1)].join(" ");
  return text.length > 72 ? `${text.slice(0, 71)}…` : text;
}

/** An API request as the fake server saw it. */
export interface ApiEvent {
  /** Arrival, epoch ms. */
  readonly at: number;
  /** RBAC verb. */
  readonly verb: string;
  /** Resource plural. */
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
    mode: Mode;
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
  const end = main.end ?? Math.max(...execs.map((e) => e.end ?? e.at));
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
      count: own.length,
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
