/**
 * What one run records (the worker writes it, the report and `--json` read
 * it). Raw samples are kept; summaries are computed when reporting.
 *
 * @module
 */

import type { Machine } from "./machine.ts";
import type { BenchOptions } from "./options.ts";
import type { ShimCost } from "./ip_shim.ts";
import type { ProfileRun } from "./profile.ts";

/** How galactic reaches the Kubernetes API. */
export type Mode = "agent" | "no-agent";
/**
 * What is measured: Go host-device, the minimal Deno plugin, galactic in one
 * mode, and (`--compare`) another checkout's galactic in agent mode.
 */
export type Subject = "go" | "floor" | Mode | "compare";

/** Samples of one CNI verb, one entry per measured invocation. */
export interface VerbSamples {
  /** Exec to exit, ms. */
  readonly ms: number[];
  /** Peak RSS (GNU time), KiB. */
  readonly rssKb: number[];
  /** CPU time of the invocation and its children (GNU time), ms. */
  readonly cpuMs: number[];
  /** Requests the fake API server saw during the invocation. */
  readonly api: number[];
  /** Host mode: what the VRF substitute added to the invocation, ms. */
  readonly shimMs: number[];
  /** Host mode: the CPU time the VRF substitute added to the invocation, ms. */
  readonly shimCpuMs: number[];
  /**
   * Subjects through the agent: the agent's CPU time (with its children's)
   * from the exec until the invocation was done — a DEL's until the record
   * was gone, so the removal it handed over counts — ms.
   */
  readonly agentCpuMs: number[];
  /** DEL: from its exit until its record was gone (0 when the DEL removed it itself), ms. */
  readonly removalMs: number[];
}

/** The sequential pairs of one subject. */
export interface SubjectResult {
  readonly subject: Subject;
  readonly add: VerbSamples;
  readonly del: VerbSamples;
  readonly failures: string[];
  /** Agent mode: requests that reached the server the plugin would fall back to. */
  fallbackRequests: number;
}

/** Everything one run produced. */
export interface BenchResults {
  readonly version: 3;
  readonly startedAt: string;
  wallMs: number;
  readonly options: BenchOptions;
  readonly machine: Machine;
  /** `kernel`: real VRF devices; `shim`: host mode's substitute (ip_shim.ts). */
  readonly vrf: "kernel" | "shim";
  /** 1-, 5- and 15-minute load averages before and after the run. */
  readonly load: { before: number[]; after?: number[] };
  /** Host mode: the substitute's per-call cost (p50 differences: wall, CPU) and the raw p50s. */
  shim?: { cost: ShimCost; cpu?: ShimCost; p50: Record<string, number> };
  /**
   * The node agent: spawn to ready, its peak RSS, its requests until ready
   * (list, watch), where its CPU time was read (`agent_cpu.ts`), and the
   * removals it finished by outcome (its /metrics at the end).
   */
  agent?: {
    startMs: number;
    peakRssKb?: number;
    backgroundApi: number;
    cpuSource?: "cgroup" | "proc";
    removals?: Record<string, number>;
  };
  readonly subjects: SubjectResult[];
  readonly profile: ProfileRun[];
  readonly errors: string[];
}
