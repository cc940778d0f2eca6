/**
 * `deno task bench`: galactic's ADD and DEL as the container runtime sees
 * them (exec to exit), beside the floors they are judged against — Go
 * host-device + static, and a minimal plugin on galactic's own runtime — in
 * one interleaved run on one machine. On a kernel without VRF devices the
 * VRF steps go through a substitute whose own cost the same run measures.
 * See tools/bench/README.md.
 *
 * @module
 */

import { runDriver } from "./bench/driver.ts";
import { parseBenchArgs, USAGE } from "./bench/options.ts";
import { runWorker } from "./bench/worker.ts";

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseBenchArgs(args);
  } catch (error) {
    console.error(`bench: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.nodeWorker) return await runWorker(parsed.nodeWorker);
  return await runDriver(parsed.options);
}

if (import.meta.main) Deno.exit(await main(Deno.args));
