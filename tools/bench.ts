/**
 * `deno task bench`: galactic ADD/DEL against the Go `host-device` + `static`
 * baseline, in one run on one machine (issue 7).
 *
 * Measures, as the container runtime sees it (exec of the plugin to exit):
 *
 * 1. sequential ADD/DEL pairs: p50/p95 per verb and the ratio to Go;
 * 2. peak RSS per plugin process (GNU time);
 * 3. N concurrent ADDs then DELs on one node: all succeed, distinct tables,
 *    wall time against N × the single p50 / 2;
 * 4. Kubernetes API requests per ADD and DEL (counted by the fake server);
 * 5. ADD cost against pre-existing VRFs and BGPInstances (a small curve);
 *
 * plus a breakdown of where an ADD and a DEL spend their time (strace). Both
 * modes run when `galactic agent` exists: with the node agent and without.
 *
 * Needs root. This process re-runs itself through `tests/lab/run.sh`, which
 * runs it here when the kernel has VRF devices and in the lab VM otherwise;
 * there (`--inside-lab`) it creates a node netns and runs the measuring
 * worker inside it (`--node-worker`). See `tools/bench/`.
 *
 * @module
 */

import { runDriver } from "./bench/driver.ts";
import { parseBenchArgs, USAGE } from "./bench/options.ts";
import { runOuter } from "./bench/outer.ts";
import { runWorker } from "./bench/worker.ts";

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseBenchArgs(args);
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { options, internal, help } = parsed;
  if (help) {
    console.log(USAGE);
    return 0;
  }
  if (internal.nodeWorker) return await runWorker(internal.nodeWorker);
  if (internal.insideLab) {
    const jsonOut = internal.jsonOut ?? options.json;
    return await runDriver(options, {
      ...(jsonOut !== undefined && { jsonOut }),
      ...(internal.hostInfo !== undefined && { hostInfo: internal.hostInfo }),
    });
  }
  return await runOuter(options);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
