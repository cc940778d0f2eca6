/**
 * The lab side of the benchmark, run as root on a kernel with VRF (the host,
 * or the lab VM): creates the node's network namespace, runs the measuring
 * worker inside it, prints the report, and removes everything the run
 * created — processes, namespaces, the scratch directory — whatever happened.
 *
 * @module
 */

import { mustRun, run } from "./exec.ts";
import type { HostInfo } from "./machine.ts";
import type { BenchOptions } from "./options.ts";
import { renderReport } from "./report.ts";
import type { BenchResults } from "./results.ts";
import type { WorkerInput } from "./worker.ts";

/** Why benchmarking cannot start here, or undefined. */
async function unusable(prefix: string): Promise<string | undefined> {
  if (Deno.build.os !== "linux") return "needs Linux";
  if (Deno.uid() !== 0) return "needs root (network namespaces)";
  const probe = `${prefix}-probe`;
  if ((await run(["ip", "netns", "add", probe])).code !== 0) return "cannot create a netns";
  try {
    const vrf = await run(["ip", "-n", probe, "link", "add", "p", "type", "vrf", "table", "10"]);
    return vrf.code === 0
      ? undefined
      : `kernel ${Deno.osRelease()} has no VRF devices (${vrf.stderr.trim()}); run \`deno task bench\`, which uses the lab VM`;
  } finally {
    await run(["ip", "netns", "del", probe]);
  }
}

/** Kills every process left in netns `name` (the worker, plugin processes, the agent). */
async function killNetnsProcesses(name: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const pids = (await run(["ip", "netns", "pids", name])).stdout.split("\n")
      .map((line) => Number(line.trim())).filter((pid) => pid > 0 && pid !== Deno.pid);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Removes every named netns of this run (the worker's pod namespaces too). */
async function removeNetns(prefix: string): Promise<void> {
  const names: string[] = [];
  try {
    for await (const entry of Deno.readDir("/run/netns")) {
      if (entry.name.startsWith(`${prefix}-`)) names.push(entry.name);
    }
  } catch { /* no /run/netns */ }
  for (const name of names) {
    await killNetnsProcesses(name);
    await run(["ip", "netns", "del", name]);
    // A pod netns bound only in the worker's mount namespace leaves a plain file here.
    await Deno.remove(`/run/netns/${name}`).catch(() => {});
  }
}

/** Runs the benchmark here; returns the exit code. */
export async function runDriver(
  options: BenchOptions,
  flags: { jsonOut?: string; hostInfo?: string },
): Promise<number> {
  const repo = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const prefix = `gb${Deno.pid}`;
  const reason = await unusable(prefix);
  if (reason) {
    console.error(`bench: ${reason}`);
    return 2;
  }
  const started = performance.now();
  const node = `${prefix}-node`;
  const tmp = await Deno.makeTempDir({ prefix: "galactic-bench-" });
  let worker: Deno.ChildProcess | undefined;
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    try {
      worker?.kill(signals === 1 ? "SIGTERM" : "SIGKILL");
    } catch { /* gone */ }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await mustRun(["ip", "netns", "add", node]);
    const input: WorkerInput = {
      options,
      repo,
      tmp,
      prefix,
      resultsFile: `${tmp}/results.json`,
      ...(flags.hostInfo && { host: JSON.parse(flags.hostInfo) as HostInfo }),
    };
    await Deno.writeTextFile(`${tmp}/input.json`, JSON.stringify(input));
    worker = new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        node,
        Deno.execPath(),
        "run",
        "--allow-all",
        "--quiet",
        "--cached-only",
        `${repo}/tools/bench.ts`,
        "--node-worker",
        `${tmp}/input.json`,
      ],
      cwd: repo,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const status = await worker.status;
    worker = undefined;
    let results: BenchResults;
    try {
      results = JSON.parse(await Deno.readTextFile(`${tmp}/results.json`));
    } catch {
      console.error(`bench: the worker wrote no results (exit ${status.code})`);
      return status.code || 1;
    }
    results.wallMs = performance.now() - started;
    console.log(renderReport(results));
    if (flags.jsonOut) await Deno.writeTextFile(flags.jsonOut, JSON.stringify(results, null, 1));
    return status.code;
  } finally {
    if (worker) {
      try {
        worker.kill("SIGKILL");
      } catch { /* gone */ }
    }
    await killNetnsProcesses(node);
    await removeNetns(prefix);
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
