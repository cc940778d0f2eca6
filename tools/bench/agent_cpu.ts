/**
 * The node agent's CPU time, read around each invocation: since DEL hands
 * its device removal to the agent (issue 17), DEL's own CPU no longer shows
 * all the work a DEL costs the node. The agent runs in a cgroup of its own
 * (cgroup v2, mounted in the worker's mount namespace: `ip netns exec`
 * leaves none), whose `usage_usec` counts the agent, every thread and every
 * child it starts (`ip`, `iptables`) to the microsecond. Where no cgroup can
 * be made, /proc's utime + stime of the agent and of the children it reaped
 * stand in, in 10 ms ticks.
 *
 * @module
 */

import { runChecked, systemRunner } from "../../lib/iproute2/runner.ts";

/** Where the agent's CPU time comes from. */
export type CpuSource = "cgroup" | "proc";

/** `usage_usec` of a cgroup v2 `cpu.stat`, ms. */
export function parseCgroupCpuMs(text: string): number | undefined {
  const match = /^usage_usec (\d+)$/m.exec(text);
  return match ? Number(match[1]) / 1000 : undefined;
}

/**
 * utime + stime + cutime + cstime of a `/proc/<pid>/stat` line, ms (USER_HZ
 * is 100 on Linux); the command name may hold spaces and parentheses.
 */
export function parseProcCpuMs(text: string): number | undefined {
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // Fields 14–17 of proc(5); the slice starts at field 3 (state).
  const ticks = fields.slice(11, 15).map(Number);
  if (ticks.length < 4 || !ticks.every(Number.isFinite)) return undefined;
  return ticks.reduce((a, b) => a + b, 0) * 10;
}

/** A cgroup the agent is started in. */
export interface AgentCgroup {
  /** The cgroup's directory (write a pid to its `cgroup.procs` to move it in). */
  readonly dir: string;
  /** Removes the cgroup (empty once the agent exited) and its mount. */
  close(): Promise<void>;
}

/** Mounts cgroup v2 under `tmp` and makes cgroup `name`; undefined where that fails. */
export async function makeAgentCgroup(tmp: string, name: string): Promise<AgentCgroup | undefined> {
  const runner = systemRunner();
  const mount = `${tmp}/cgroup`;
  try {
    await Deno.mkdir(mount, { recursive: true });
    await runChecked(runner, ["mount", "-t", "cgroup2", "none", mount]);
  } catch {
    return undefined;
  }
  const dir = `${mount}/${name}`;
  const unmount = async (): Promise<void> => {
    await runner.run(["umount", mount]).catch(() => {});
  };
  try {
    await Deno.mkdir(dir);
    if (parseCgroupCpuMs(await Deno.readTextFile(`${dir}/cpu.stat`)) === undefined) {
      throw new Error("no usage_usec");
    }
  } catch {
    await Deno.remove(dir).catch(() => {});
    await unmount();
    return undefined;
  }
  return {
    dir,
    async close(): Promise<void> {
      await Deno.remove(dir).catch(() => {});
      await unmount();
    },
  };
}

/** The agent's CPU time so far, ms, from its cgroup or else from /proc. */
export async function agentCpuMs(
  source: { cgroup?: string; pid: number },
): Promise<number | undefined> {
  if (source.cgroup !== undefined) {
    return parseCgroupCpuMs(await Deno.readTextFile(`${source.cgroup}/cpu.stat`).catch(() => ""));
  }
  return parseProcCpuMs(await Deno.readTextFile(`/proc/${source.pid}/stat`).catch(() => ""));
}
