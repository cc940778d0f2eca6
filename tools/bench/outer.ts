/**
 * What `deno task bench` does first: make sure the tools it measures with are
 * installed, warm the Deno cache (the lab VM has no network), measure a
 * hardware reference here (start-up calibration, the Deno runtime floor, Go
 * ADD/DEL), then run the lab side through `tests/lab/run.sh`, which runs it
 * directly when this kernel has VRF support and in a throwaway VM otherwise.
 *
 * @module
 */

import { exists, run } from "./exec.ts";
import { calibrate, hostBaseline } from "./calibrate.ts";
import { hardware, type HostInfo, packageVersion } from "./machine.ts";
import { type BenchOptions, optionsToArgs } from "./options.ts";

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** Installs a Debian package when `path` is missing; false when that failed. */
async function ensurePackage(path: string, pkg: string): Promise<boolean> {
  if (await exists(path)) return true;
  console.error(`bench: installing ${pkg} (for ${path})`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", pkg];
  if ((await run(install, { env })).code !== 0) {
    await run(["apt-get", "update", "-q"], { env });
    const out = await run(install, { env });
    if (out.code !== 0) console.error(`bench: apt-get install ${pkg} failed: ${out.stderr.trim()}`);
  }
  return await exists(path);
}

/** Fetches every module the lab side and the plugin load, without touching deno.lock. */
async function warmCache(): Promise<void> {
  const lock = await Deno.makeTempFile({ prefix: "bench-lock-" });
  try {
    await Deno.copyFile(`${REPO}/deno.lock`, lock).catch(() => {});
    const out = await run([
      Deno.execPath(),
      "install",
      "--quiet",
      `--lock=${lock}`,
      "--entrypoint",
      "tools/bench.ts",
      "main.ts",
    ], { cwd: REPO });
    if (out.code !== 0) {
      console.error(
        `bench: warming the deno cache failed (the lab may miss modules): ${out.stderr.trim()}`,
      );
    }
  } finally {
    await Deno.remove(lock).catch(() => {});
  }
}

/** Samples the 1-minute load average every few seconds until stopped. */
function sampleLoad(): { stop(): number[] } {
  const samples: number[] = [];
  const read = (): void => {
    try {
      samples.push(Number(Deno.readTextFileSync("/proc/loadavg").split(" ")[0]));
    } catch { /* no /proc */ }
  };
  read();
  const timer = setInterval(read, 5000);
  return {
    stop(): number[] {
      clearInterval(timer);
      read();
      return samples.filter(Number.isFinite);
    },
  };
}

/** Runs the benchmark through the lab runner; returns the exit code. */
export async function runOuter(options: BenchOptions): Promise<number> {
  const started = performance.now();
  if (Deno.uid() !== 0) {
    console.error(
      "bench: needs root (it creates network namespaces, and the lab VM needs root too)",
    );
    return 2;
  }
  if (!(await ensurePackage("/usr/bin/time", "time"))) return 2;
  if (!(await ensurePackage("/usr/lib/cni/host-device", "containernetworking-plugins"))) return 2;
  if (options.profileRuns > 0 && !(await ensurePackage("/usr/bin/strace", "strace"))) {
    console.error("bench: no strace: the time breakdown will be skipped");
  }
  await warmCache();
  await Deno.mkdir(`${REPO}/.lab`, { recursive: true });
  // The lab side writes its JSON inside the repo: the VM's /tmp vanishes at power-off.
  const jsonOut = `${REPO}/.lab/bench-${Deno.pid}.json`;
  const hw = await hardware();
  const plugins = await packageVersion("containernetworking-plugins");
  const host: HostInfo = {
    ...hw,
    packages: plugins === undefined ? {} : { "containernetworking-plugins": plugins },
    // Hardware reference for the lab's numbers: VERSION start-up, the Deno runtime floor and
    // Go ADD/DEL (throwaway netns), measured here before the lab starts.
    calibration: { ...await calibrate(REPO), ...await hostBaseline(REPO, `gb${Deno.pid}`) },
  };
  const env: Record<string, string> = {
    LAB_TIMEOUT: Deno.env.get("LAB_TIMEOUT") ?? String(options.quick ? 2400 : 14_400),
    // Concurrent plugin processes need memory: up to ~150 MB each without the agent.
    LAB_MEM: Deno.env.get("LAB_MEM") ?? String(
      Math.max(2048, Math.min(Math.floor(hw.memMiB * 0.6), 1536 + 160 * options.concurrency)),
    ),
  };
  const ignore = (): void => {}; // the lab runner gets the signal too and cleans up
  Deno.addSignalListener("SIGINT", ignore);
  const load = sampleLoad();
  try {
    const lab = new Deno.Command("bash", {
      args: [
        `${REPO}/tests/lab/run.sh`,
        "node_modules/.bin/deno",
        "run",
        "--allow-all",
        "--quiet",
        "--cached-only",
        "tools/bench.ts",
        "--inside-lab",
        ...optionsToArgs(options),
        `--json-out=${jsonOut}`,
        `--host-info=${JSON.stringify(host)}`,
      ],
      cwd: REPO,
      env,
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    });
    const { code } = await lab.output();
    const loads = load.stop();
    const meanLoad = loads.reduce((a, b) => a + b, 0) / Math.max(loads.length, 1);
    const maxLoad = Math.max(0, ...loads);
    // The lab side cannot see its host: say here whether other work competed for the CPUs.
    console.log(
      `host load during the run (1-min load average, ${hw.cores} CPUs): mean ${
        meanLoad.toFixed(1)
      }, max ${maxLoad.toFixed(1)}` +
        (maxLoad > hw.cores
          ? " — other processes competed for the CPUs: absolute times and their spread are noisy;" +
            " ratios of interleaved runs hold up better"
          : ""),
    );
    if (await exists(jsonOut)) {
      const results = JSON.parse(await Deno.readTextFile(jsonOut));
      results.hostLoad = { cores: hw.cores, mean: meanLoad, max: maxLoad, samples: loads };
      await Deno.writeTextFile(jsonOut, JSON.stringify(results, null, 1));
    }
    if (options.json) {
      // `deno task` runs in the repo; INIT_CWD is where the user typed the command.
      const base = Deno.env.get("INIT_CWD") ?? Deno.cwd();
      const target = options.json.startsWith("/") ? options.json : `${base}/${options.json}`;
      if (await exists(jsonOut)) {
        await Deno.copyFile(jsonOut, target);
        console.log(`results saved to ${target}`);
      } else {
        console.error(`bench: no results to save to ${target}`);
      }
    }
    const seconds = ((performance.now() - started) / 1000).toFixed(0);
    console.log(`bench: ${seconds} s wall in all (tool checks, cache warm-up, lab start, run)`);
    return code;
  } finally {
    load.stop();
    Deno.removeSignalListener("SIGINT", ignore);
    await Deno.remove(jsonOut).catch(() => {});
  }
}
