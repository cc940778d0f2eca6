/**
 * Start-up calibration: the CNI VERSION command of galactic and of the Go
 * host-device, exec to exit. It does no work beyond starting the runtime and
 * printing, so comparing it on the lab VM and on its host shows how much the
 * emulation slows each runtime — TCG slows a JIT (V8) far more than Go's
 * ahead-of-time code, which skews the galactic/Go ratios measured there.
 *
 * @module
 */

import { timedExec } from "./exec.ts";

/** Start-up samples, ms. */
export interface Calibration {
  /** `CNI_COMMAND=VERSION bin/galactic`. */
  readonly galactic: number[];
  /** `CNI_COMMAND=VERSION host-device`. */
  readonly go: number[];
}

/** Runs each VERSION command `runs` times (after one unmeasured run). */
export async function calibrate(repo: string, runs = 5): Promise<Calibration> {
  const env = {
    PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    CNI_COMMAND: "VERSION",
  };
  const stdin = JSON.stringify({ cniVersion: "1.0.0" });
  const result: Calibration = { galactic: [], go: [] };
  for (
    const [key, program] of [
      ["galactic", `${repo}/bin/galactic`],
      ["go", "/usr/lib/cni/host-device"],
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
