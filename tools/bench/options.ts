/**
 * Command-line options of `deno task bench`.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** What to measure and how much. */
export interface BenchOptions {
  /** Sequential ADD/DEL pairs per subject, after the warm-up. */
  readonly iterations: number;
  /** Unmeasured ADD/DEL pairs per subject first (module and page caches). */
  readonly warmup: number;
  /** Concurrent ADDs (then DELs) on one node. */
  readonly concurrency: number;
  /** Pre-existing VRFs (and extra BGPInstances) of the cost curve, ascending. */
  readonly curve: readonly number[];
  /** ADD/DEL pairs per curve point and mode. */
  readonly curveIterations: number;
  /** Pairs per mode traced with strace for the time breakdown (0: none). */
  readonly profileRuns: number;
  /** Latency injected into every fake API server answer, ms. */
  readonly apiDelayMs: number;
  /** Skip the agent mode even when `galactic agent` exists. */
  readonly noAgent: boolean;
  /** Smoke-test sizes. */
  readonly quick: boolean;
  /** Save the results (JSON) here. */
  readonly json?: string;
}

/** Internal flags between the invoking process, the lab and the node worker. */
export interface InternalFlags {
  /** Already running as root on a kernel with VRF (inside the lab runner). */
  readonly insideLab: boolean;
  /** Input file of the worker that runs inside the node netns. */
  readonly nodeWorker?: string;
  /** Where the lab side writes the JSON results (inside the repo, readable after a VM). */
  readonly jsonOut?: string;
  /** JSON description of the machine that started the lab (CPU, kernel). */
  readonly hostInfo?: string;
}

/** Parsed command line. */
export interface ParsedArgs {
  /** Benchmark options. */
  readonly options: BenchOptions;
  /** Internal flags. */
  readonly internal: InternalFlags;
  /** `--help` was given. */
  readonly help: boolean;
}

/** Usage text. */
export const USAGE = `deno task bench [options]

Benchmarks galactic ADD/DEL (exec of bin/galactic to exit, real ip/host-device,
fake API server) against Debian's Go host-device + static plugins, on this
kernel when it has VRF support, else in the lab VM (tests/lab/run.sh). Root.

  --iterations N        sequential ADD/DEL pairs per subject (default 15; quick 3)
  --warmup N            unmeasured pairs first (default 1)
  --concurrency N       concurrent ADDs then DELs on one node (default 50; quick 6)
  --curve A,B,C         pre-existing VRFs and extra BGPInstances (default 1,100,1000;
                        quick 1,20)
  --curve-iterations N  pairs per curve point (default 5; quick 2)
  --profile-runs N      strace-profiled pairs per mode for the time breakdown
                        (default 3; quick 1; 0 disables)
  --api-delay-ms N      injected API latency (default 1)
  --no-agent            skip the agent mode
  --quick               small sizes for a smoke test
  --json FILE           also save the results as JSON
  -h, --help            this text

Environment: LAB_TIMEOUT and LAB_MEM (see tests/lab/README.md) default to values
sized for the run (4 h / 8 GiB for a full run under TCG).`;

function positiveInt(name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`--${name} wants an integer ≥ ${min}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function curvePoints(text: string | undefined, fallback: readonly number[]): number[] {
  if (text === undefined) return [...fallback];
  const points = text.split(",").map((part) => Number(part.trim()));
  if (points.length === 0 || points.some((p) => !Number.isInteger(p) || p < 1 || p > 60_000)) {
    throw new Error(`--curve wants integers 1..60000 separated by commas, got ${text}`);
  }
  return [...new Set(points)].sort((a, b) => a - b);
}

/** Parses `args`; throws with a message on bad input. */
export function parseBenchArgs(args: readonly string[]): ParsedArgs {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      iterations: { type: "string" },
      warmup: { type: "string" },
      concurrency: { type: "string" },
      curve: { type: "string" },
      "curve-iterations": { type: "string" },
      "profile-runs": { type: "string" },
      "api-delay-ms": { type: "string" },
      "no-agent": { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
      "inside-lab": { type: "boolean", default: false },
      "node-worker": { type: "string" },
      "json-out": { type: "string" },
      "host-info": { type: "string" },
    },
  });
  const quick = values.quick;
  const options: BenchOptions = {
    iterations: positiveInt("iterations", values.iterations, quick ? 3 : 15),
    warmup: positiveInt("warmup", values.warmup, 1, 0),
    concurrency: positiveInt("concurrency", values.concurrency, quick ? 6 : 50),
    curve: curvePoints(values.curve, quick ? [1, 20] : [1, 100, 1000]),
    curveIterations: positiveInt("curve-iterations", values["curve-iterations"], quick ? 2 : 5),
    profileRuns: positiveInt("profile-runs", values["profile-runs"], quick ? 1 : 3, 0),
    apiDelayMs: positiveInt("api-delay-ms", values["api-delay-ms"], 1, 0),
    noAgent: values["no-agent"],
    quick,
    ...(values.json !== undefined && { json: values.json }),
  };
  if (options.concurrency > 900) throw new Error("--concurrency: at most 900 attachments");
  const internal: InternalFlags = {
    insideLab: values["inside-lab"],
    ...(values["node-worker"] !== undefined && { nodeWorker: values["node-worker"] }),
    ...(values["json-out"] !== undefined && { jsonOut: values["json-out"] }),
    ...(values["host-info"] !== undefined && { hostInfo: values["host-info"] }),
  };
  return { options, internal, help: values.help };
}

/** The user's options as flags again (for the re-executed lab side). */
export function optionsToArgs(options: BenchOptions): string[] {
  return [
    `--iterations=${options.iterations}`,
    `--warmup=${options.warmup}`,
    `--concurrency=${options.concurrency}`,
    `--curve=${options.curve.join(",")}`,
    `--curve-iterations=${options.curveIterations}`,
    `--profile-runs=${options.profileRuns}`,
    `--api-delay-ms=${options.apiDelayMs}`,
    ...(options.noAgent ? ["--no-agent"] : []),
    ...(options.quick ? ["--quick"] : []),
  ];
}
