/**
 * The side of `deno task bench` the user runs, as root: installs the tools it
 * measures with, picks where the VRF steps come from (the kernel, or host
 * mode's substitute when the kernel has no VRF devices or `--host` asks),
 * creates the node's network namespace, runs the worker inside it, prints
 * the report and removes everything the run created, whatever happened.
 * `--lab` instead runs all of this again inside the lab VM.
 *
 * @module
 */

import { systemRunner } from "../../lib/iproute2/runner.ts";
import { type BenchOptions, optionsToArgs } from "./options.ts";
import { renderReport } from "./report.ts";
import type { BenchResults } from "./results.ts";
import type { WorkerInput } from "./worker.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const runner = systemRunner();
const run = (argv: string[]): Promise<{ code: number; stderr: string }> =>
  runner.run(argv).catch((e) => ({ code: 127, stdout: "", stderr: String(e) }));

/** Installs a Debian package when `path` is missing; false when that failed. */
async function ensurePackage(path: string, pkg: string): Promise<boolean> {
  if (await Deno.lstat(path).then(() => true, () => false)) return true;
  console.error(`bench: installing ${pkg} (for ${path})`);
  Deno.env.set("DEBIAN_FRONTEND", "noninteractive");
  const install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", pkg];
  if ((await run(install)).code !== 0) {
    await run(["apt-get", "update", "-q"]);
    await run(install);
  }
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Whether this kernel makes VRF devices (probed in a throwaway netns). */
async function kernelHasVrf(prefix: string): Promise<boolean> {
  const probe = `${prefix}-probe`;
  await run(["ip", "netns", "add", probe]);
  try {
    return (await run(["ip", "-n", probe, "link", "add", "p", "type", "vrf", "table", "10"]))
      .code === 0;
  } finally {
    await run(["ip", "netns", "del", probe]);
  }
}

/** Kills what is left in netns `name` and deletes it. */
async function removeNetns(name: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const pids = (await runner.run(["ip", "netns", "pids", name])).stdout.split("\n")
      .map(Number).filter((pid) => pid > 0 && pid !== Deno.pid);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* exited meanwhile */ }
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await run(["ip", "netns", "del", name]);
  // A netns bound only in the worker's mount namespace leaves a plain file here.
  await Deno.remove(`/run/netns/${name}`).catch(() => {});
}

async function removeAllNetns(prefix: string): Promise<void> {
  const names = [];
  try {
    for await (const entry of Deno.readDir("/run/netns")) {
      if (entry.name.startsWith(`${prefix}-`)) names.push(entry.name);
    }
  } catch { /* no /run/netns */ }
  // The node first: its processes (worker, agent) go with it.
  for (const name of names.sort((a) => (a.endsWith("-node") ? -1 : 1))) await removeNetns(name);
}

/** Runs the bench in the lab VM through tests/lab/run.sh; returns its exit code. */
async function runLab(options: BenchOptions): Promise<number> {
  // The VM has no network: fetch what the bench and the plugin load, without touching deno.lock.
  const lock = await Deno.makeTempFile({ prefix: "bench-lock-" });
  await Deno.copyFile(`${REPO}/deno.lock`, lock).catch(() => {});
  await runner.run([Deno.execPath(), "install", "--quiet", `--lock=${lock}`, "--entrypoint"]
    .concat(["tools/bench.ts", "main.ts"]));
  await Deno.remove(lock).catch(() => {});
  const json = options.json;
  // The VM shares the repo read-write, not /tmp: the results come back through .lab/.
  const inRepo = `.lab/bench-${Deno.pid}.json`;
  await Deno.mkdir(`${REPO}/.lab`, { recursive: true });
  const { code } = await new Deno.Command("bash", {
    args: [`${REPO}/tests/lab/run.sh`, "node_modules/.bin/deno", "run", "--allow-all"]
      .concat(["--quiet", "--cached-only", "tools/bench.ts", ...optionsToArgs(options)])
      .concat(json ? [`--json=${REPO}/${inRepo}`] : []),
    cwd: REPO,
    env: { LAB_TIMEOUT: Deno.env.get("LAB_TIMEOUT") ?? "7200" },
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (json) {
    await Deno.rename(`${REPO}/${inRepo}`, json).then(
      () => console.log(`results saved to ${json}`),
      () => console.error("bench: the lab wrote no results"),
    );
  }
  return code;
}

/** Runs the bench on this machine (or, with `--lab`, in the lab VM); returns the exit code. */
export async function runDriver(options: BenchOptions): Promise<number> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) {
    console.error("bench: needs root on Linux (network namespaces)");
    return 2;
  }
  for (
    const [path, pkg] of [["/usr/bin/time", "time"], [
      "/usr/lib/cni/host-device",
      "containernetworking-plugins",
    ], ["/usr/bin/strace", "strace"]]
  ) {
    if (!(await ensurePackage(path!, pkg!)) && pkg !== "strace") return 2;
  }
  if (options.json && !options.json.startsWith("/")) {
    // `deno task` runs in the repo; INIT_CWD is where the user typed the command.
    options = { ...options, json: `${Deno.env.get("INIT_CWD") ?? Deno.cwd()}/${options.json}` };
  }
  if (options.lab) return await runLab(options);
  const prefix = `gb${Deno.pid}`;
  const shim = options.host || !(await kernelHasVrf(prefix));
  if (shim) console.error("bench: host mode: the VRF steps go through the substitute (ip_shim.ts)");
  const started = performance.now();
  const tmp = await Deno.makeTempDir({ prefix: "galactic-bench-" });
  const input: WorkerInput = {
    options,
    repo: REPO,
    tmp,
    prefix,
    shim,
    resultsFile: `${tmp}/results.json`,
  };
  let worker: Deno.ChildProcess | undefined;
  let signals = 0;
  const onSignal = (): void => {
    try {
      worker?.kill(++signals === 1 ? "SIGTERM" : "SIGKILL");
    } catch { /* gone */ }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await runner.run(["ip", "netns", "add", `${prefix}-node`]);
    await Deno.writeTextFile(`${tmp}/input.json`, JSON.stringify(input));
    worker = new Deno.Command("ip", {
      args: ["netns", "exec", `${prefix}-node`, Deno.execPath(), "run", "--allow-all", "--quiet"]
        .concat(["--cached-only", `${REPO}/tools/bench.ts`, `--node-worker=${tmp}/input.json`]),
      stdin: "null",
    }).spawn();
    const status = await worker.status;
    worker = undefined;
    const results: BenchResults | undefined = JSON.parse(
      await Deno.readTextFile(input.resultsFile).catch(() => "null"),
    );
    if (!results) {
      console.error(`bench: the worker wrote no results (exit ${status.code})`);
      return status.code || 1;
    }
    results.wallMs = performance.now() - started;
    console.log(renderReport(results));
    if (options.json) {
      await Deno.writeTextFile(options.json, JSON.stringify(results, null, 1));
      console.log(`results saved to ${options.json}`);
    }
    return status.code;
  } finally {
    try {
      worker?.kill("SIGKILL");
    } catch { /* gone */ }
    await removeAllNetns(prefix);
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}
