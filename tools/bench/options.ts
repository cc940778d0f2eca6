/**
 * Command-line options of `deno task bench`.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** What to measure and how much. */
export interface BenchOptions {
  /** Measured ADD/DEL pairs per subject, interleaved, after the warm-up. */
  readonly iterations: number;
  /** Unmeasured pairs per subject first (module and page caches). */
  readonly warmup: number;
  /** strace-profiled pairs per galactic mode (0: none). */
  readonly profileRuns: number;
  /** Use the VRF substitute even when the kernel has VRF devices. */
  readonly host: boolean;
  /** Run in the lab VM (tests/lab/run.sh) instead of on this machine. */
  readonly lab: boolean;
  /** Skip galactic's agent mode. */
  readonly noAgent: boolean;
  /** Skip the no-agent fallback (its pairs take most of a run's time). */
  readonly agentOnly: boolean;
  /** Also save the results (JSON) here. */
  readonly json?: string;
  /** Another checkout whose bin/galactic runs beside this one's (A/B, agent mode). */
  readonly compare?: string;
}

/** Usage text. */
export const USAGE = `deno task bench [options]

Execs galactic ADD/DEL (bin/galactic, through the node agent and without it,
against a fake API server on loopback, real ip/iptables/host-device) beside Go
host-device + static and a minimal Deno plugin, interleaved, each pair in a
fresh pod netns. On a kernel without VRF the VRF steps go through a measured
substitute (host mode). Needs root.

  --iterations N     measured ADD/DEL pairs per subject (default 20; quick 3)
  --warmup N         unmeasured pairs first (default 1)
  --profile-runs N   strace-profiled pairs per galactic mode (default 2; quick 1; 0: none)
  --host             substitute the VRF steps even when the kernel has VRF
  --lab              run in the lab VM (tests/lab/run.sh; TCG: 10-100x slower)
  --no-agent         skip the agent mode
  --agent-only       skip the no-agent fallback (a faster run, e.g. for --compare)
  --quick            small sizes for a smoke test
  --json FILE        also save every sample as JSON
  --compare DIR      also run DIR/bin/galactic (another checkout) in agent mode, interleaved
  -h, --help         this text`;

function count(name: string, text: string | undefined, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > 10_000) {
    throw new Error(`--${name} wants an integer ${min}..10000, got ${JSON.stringify(text)}`);
  }
  return value;
}

/** Parses `args`; throws with a message on bad input. */
export function parseBenchArgs(
  args: readonly string[],
): { options: BenchOptions; help: boolean; nodeWorker?: string } {
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      iterations: { type: "string" },
      warmup: { type: "string" },
      "profile-runs": { type: "string" },
      host: { type: "boolean", default: false },
      lab: { type: "boolean", default: false },
      "no-agent": { type: "boolean", default: false },
      "agent-only": { type: "boolean", default: false },
      quick: { type: "boolean", default: false },
      json: { type: "string" },
      compare: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
      "node-worker": { type: "string" },
    },
  });
  const quick = values.quick;
  const options: BenchOptions = {
    iterations: count("iterations", values.iterations, quick ? 3 : 20),
    warmup: count("warmup", values.warmup, 1, 0),
    profileRuns: count("profile-runs", values["profile-runs"], quick ? 1 : 2, 0),
    host: values.host,
    lab: values.lab,
    noAgent: values["no-agent"],
    agentOnly: values["agent-only"],
    ...(values.json !== undefined && { json: values.json }),
    ...(values.compare !== undefined && { compare: values.compare }),
  };
  if (options.noAgent && options.agentOnly) {
    throw new Error("--no-agent and --agent-only leave no galactic mode to measure");
  }
  if (options.compare !== undefined && !options.compare.startsWith("/")) {
    throw new Error(`--compare wants an absolute path, got ${JSON.stringify(options.compare)}`);
  }
  return {
    options,
    help: values.help,
    ...(values["node-worker"] !== undefined && { nodeWorker: values["node-worker"] }),
  };
}

/** The options as flags again (for the lab VM's run). */
export function optionsToArgs(options: BenchOptions): string[] {
  return [
    `--iterations=${options.iterations}`,
    `--warmup=${options.warmup}`,
    `--profile-runs=${options.profileRuns}`,
    ...(options.host ? ["--host"] : []),
    ...(options.noAgent ? ["--no-agent"] : []),
    ...(options.agentOnly ? ["--agent-only"] : []),
    ...(options.compare ? [`--compare=${options.compare}`] : []),
  ];
}
