/**
 * Start-up calibration and the Deno runtime floor.
 *
 * - The CNI VERSION command of galactic and of the Go host-device, exec to
 *   exit. It does no work beyond starting the runtime and printing, so
 *   comparing it on the lab VM and on its host shows how much the emulation
 *   slows each runtime — TCG slows a JIT (V8) far more than Go's ahead-of-time
 *   code, which skews the galactic/Go ratios measured there.
 * - The Deno runtime floor: `deno run` of an empty module with bin/galactic's
 *   deno binary and flags (no config). No program on this runtime can start
 *   and exit faster, so floor / Go ADD above the latency target means the
 *   target is out of reach on that machine whatever the plugin does. The
 *   worker measures it interleaved with the ADD/DEL pairs; `hostBaseline`
 *   measures it, and Go host-device ADD/DEL, on the machine that starts the
 *   lab VM, so the report can show the same ratio on hardware.
 *
 * @module
 */

import { failure, mustRun, run, type Timed, timedExec } from "./exec.ts";

/** Start-up samples, ms. */
export interface Calibration {
  /** `CNI_COMMAND=VERSION bin/galactic`. */
  readonly galactic: number[];
  /** `CNI_COMMAND=VERSION host-device`. */
  readonly go: number[];
  /** Deno runtime floor ({@linkcode floorArgv}, under GNU time); measured by {@linkcode hostBaseline}. */
  floor?: number[];
  /** Go host-device + static ADD of a veth end (nsenter into a throwaway netns, GNU time). */
  goAdd?: number[];
  /** The matching DELs. */
  goDel?: number[];
  /** What could not be measured by {@linkcode hostBaseline}, and why. */
  errors?: string[];
}

const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const CNI_PATH = "/usr/lib/cni";

/** IPAM of every Go host-device invocation (the worker's and the host baseline's). */
export const GO_IPAM = {
  type: "static",
  addresses: [{ address: "10.1.0.2/24" }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
} as const;

/** Runs each VERSION command `runs` times (after one unmeasured run). */
export async function calibrate(repo: string, runs = 5): Promise<Calibration> {
  const env = { PATH, CNI_COMMAND: "VERSION" };
  const stdin = JSON.stringify({ cniVersion: "1.0.0" });
  const result: Calibration = { galactic: [], go: [] };
  for (
    const [key, program] of [
      ["galactic", `${repo}/bin/galactic`],
      ["go", `${CNI_PATH}/host-device`],
    ] as const
  ) {
    for (let i = 0; i <= runs; i++) {
      const out = await timedExec([program], { env, stdin });
      if (out.code !== 0) break;
      if (i > 0) result[key].push(out.ms);
    }
  }
  return result;
}

/** The deno binary bin/galactic runs (it honours GALACTIC_DENO; the bench does not set it). */
export function denoOf(repo: string): string {
  return `${repo}/node_modules/.bin/deno`;
}

/**
 * `deno run` of `module` with bin/galactic's deno binary and flags, except
 * `--no-config` for its `--config`: the runtime's start-up and exit, no module
 * graph, no lockfile.
 */
export function floorArgv(repo: string, module: string): string[] {
  return [
    denoOf(repo),
    "run",
    "--quiet",
    "--cached-only",
    "--no-prompt",
    "--allow-run",
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-net",
    "--allow-sys",
    "--no-config",
    module,
  ];
}

/** Writes an empty JavaScript module into `dir` and returns its path. */
export async function writeEmptyModule(dir: string): Promise<string> {
  const path = `${dir}/empty.js`;
  await Deno.writeTextFile(path, "");
  return path;
}

/** One exec of the floor command, under GNU time when `rssFile` is given (as the pairs are). */
export async function runFloor(argv: readonly string[], rssFile?: string): Promise<Timed> {
  return await timedExec(argv, {
    env: { PATH },
    stdin: "",
    ...(rssFile !== undefined && { rssFile }),
  });
}

/**
 * On the machine that starts the lab (hardware): the Deno runtime floor and
 * Go host-device + static ADD/DEL pairs, interleaved, `runs` each after one
 * unmeasured round. The Go pairs move a veth end from a throwaway node netns
 * into a throwaway pod netns (`<prefix>-calnode`, `<prefix>-calpod`, removed
 * afterwards), entered with nsenter; both sides go through GNU time like the
 * lab's execs. Whatever cannot be measured is left out and named in `errors`.
 */
export async function hostBaseline(
  repo: string,
  prefix: string,
  runs = 5,
): Promise<Pick<Calibration, "floor" | "goAdd" | "goDel" | "errors">> {
  const floor: number[] = [];
  const goAdd: number[] = [];
  const goDel: number[] = [];
  const errors: string[] = [];
  const dir = await Deno.makeTempDir({ prefix: "galactic-bench-host-" });
  const node = `${prefix}-calnode`;
  const pod = `${prefix}-calpod`;
  let go = true;
  try {
    const argv = floorArgv(repo, await writeEmptyModule(dir));
    try {
      await mustRun(["ip", "netns", "add", node]);
      await mustRun(["ip", "netns", "add", pod]);
      await mustRun(["ip", "-n", node, "link", "set", "lo", "up"]);
    } catch (error) {
      go = false;
      errors.push(`Go ADD/DEL: ${(error as Error).message}`);
    }
    let floorOk = true;
    for (let i = 0; i <= runs && (floorOk || go); i++) {
      if (floorOk) {
        const out = await runFloor(argv, `${dir}/rss`);
        if (out.code !== 0) {
          floorOk = false;
          errors.push(failure("floor", out));
        } else if (i > 0) floor.push(out.ms);
      }
      if (go) {
        const pair = await goPair(node, pod, i, `${dir}/rss`);
        if (typeof pair === "string") {
          go = false;
          errors.push(pair);
        } else if (i > 0) {
          goAdd.push(pair.add);
          goDel.push(pair.del);
        }
      }
    }
  } finally {
    // Deleting a netns destroys the veth ends in it: nothing reaches the host's own netns.
    await run(["ip", "netns", "del", pod]);
    await run(["ip", "netns", "del", node]);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return {
    floor,
    ...(goAdd.length > 0 && { goAdd, goDel }),
    ...(errors.length > 0 && { errors }),
  };
}

/** One host-device ADD and DEL of a fresh veth end; the wall times or what failed. */
async function goPair(
  node: string,
  pod: string,
  i: number,
  rssFile: string,
): Promise<{ add: number; del: number } | string> {
  const host = "gbcalH";
  const dev = "gbcalG";
  await run(["ip", "-n", node, "link", "del", host]);
  const made = await run([
    "ip",
    "-n",
    node,
    "link",
    "add",
    host,
    "type",
    "veth",
    "peer",
    "name",
    dev,
  ]);
  if (made.code !== 0) return failure("Go ADD/DEL: veth", made);
  const argv = ["nsenter", `--net=/run/netns/${node}`, `${CNI_PATH}/host-device`];
  const env = (command: string): Record<string, string> => ({
    PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: `benchcal${i}`,
    CNI_NETNS: `/run/netns/${pod}`,
    CNI_IFNAME: "net1",
    CNI_PATH,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${pod}`,
  });
  const config = { cniVersion: "1.0.0", name: "bench", type: "host-device", device: dev };
  try {
    const add = await timedExec(argv, {
      env: env("ADD"),
      stdin: JSON.stringify({ ...config, ipam: GO_IPAM }),
      rssFile,
    });
    if (add.code !== 0) return failure("Go ADD", add);
    let prevResult: unknown;
    try {
      prevResult = JSON.parse(add.stdout);
    } catch { /* DEL without prevResult */ }
    const del = await timedExec(argv, {
      env: env("DEL"),
      stdin: JSON.stringify({
        ...config,
        ipam: GO_IPAM,
        ...(prevResult !== undefined && { prevResult }),
      }),
      rssFile,
    });
    if (del.code !== 0) return failure("Go DEL", del);
    return { add: add.ms, del: del.ms };
  } finally {
    await run(["ip", "-n", node, "link", "del", host]);
  }
}
