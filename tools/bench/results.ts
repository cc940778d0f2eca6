/**
 * The results of one benchmark run, as the node worker records them and the
 * report (and `--json`) consume them. Raw samples are kept; summaries are
 * computed when reporting.
 *
 * @module
 */

import type { MachineInfo } from "./machine.ts";
import type { BenchOptions } from "./options.ts";

/** How galactic reaches the Kubernetes API. */
export type Mode = "no-agent" | "agent";
/** What is measured: the Go baseline or galactic in one mode. */
export type Subject = "go" | Mode;

/** Per-verb request counts, e.g. `{ list: 3, create: 1 }`. */
export type VerbCounts = Record<string, number>;

/** Samples of one CNI verb. */
export interface VerbSamples {
  /** Exec-to-exit wall times, ms. */
  readonly ms: number[];
  /** Peak RSS per process, KiB. */
  readonly rssKb: number[];
  /** API requests seen during each invocation (galactic only). */
  readonly api: VerbCounts[];
}

/** Scenario 1 (and 2, 4) for one subject. */
export interface SequentialResult {
  /** Who. */
  readonly subject: Subject;
  /** Measured ADDs. */
  readonly add: VerbSamples;
  /** Measured DELs. */
  readonly del: VerbSamples;
  /** Warm-up wall times (not in the statistics). */
  readonly warmup: { readonly addMs: number[]; readonly delMs: number[] };
  /** Failed invocations. */
  readonly failures: string[];
  /** Agent mode: requests that reached the fallback API server (plugin fell back). */
  fallbackRequests?: number;
}

/**
 * The Deno runtime floor inside the lab: `deno run` of an empty module with
 * bin/galactic's deno binary and flags (no config), exec to exit under GNU
 * time like the pairs, one exec per sequential iteration before its pairs.
 */
export interface FloorResult {
  /** The command. */
  readonly argv: string[];
  /** Exec-to-exit wall times, ms. */
  readonly ms: number[];
  /** Peak RSS per process, KiB. */
  readonly rssKb: number[];
  /** Warm-up wall times (not in the statistics). */
  readonly warmupMs: number[];
  /** Failed execs. */
  readonly failures: string[];
}

/** One batch of concurrent invocations. */
export interface ConcurrentBatch {
  /** First spawn to last exit, ms. */
  readonly wallMs: number;
  /** Successful invocations. */
  readonly ok: number;
  /** Each process's own wall time, ms. */
  readonly ms: number[];
  /** Peak RSS per process, KiB. */
  readonly rssKb: number[];
  /** API requests during the batch (all processes). */
  readonly api: VerbCounts;
}

/** Scenario 3 for one mode. */
export interface ConcurrencyResult {
  /** Mode. */
  readonly mode: Mode;
  /** Attachments. */
  readonly n: number;
  /** The ADD batch. */
  readonly add: ConcurrentBatch;
  /** The DEL batch. */
  readonly del: ConcurrentBatch;
  /** Our VRFs in the kernel after the ADDs. */
  readonly vrfsAfterAdd: number;
  /** Distinct tables among them. */
  readonly distinctTables: number;
  /** Our VRFs left after the DELs. */
  readonly vrfsAfterDel: number;
  /** Failed invocations and checks. */
  readonly failures: string[];
}

/** Scenario 5: one point of the curve for one mode. */
export interface CurvePoint {
  /** Mode. */
  readonly mode: Mode;
  /** Pre-existing VRFs on the node (with attachment records). */
  readonly vrfs: number;
  /** Extra BGPInstances (non-matching selectors) in the cluster. */
  readonly instances: number;
  /** ADD wall times, ms. */
  readonly addMs: number[];
  /** DEL wall times, ms. */
  readonly delMs: number[];
  /** API requests of all ADDs. */
  readonly addApi: VerbCounts;
  /** API requests of all DELs. */
  readonly delApi: VerbCounts;
  /** Failed invocations. */
  readonly failures: string[];
}

/** Creation of the pre-existing state of a curve point. */
export interface CurveSetup {
  /** VRFs after the step. */
  readonly vrfs: number;
  /** Seconds to create them (ip -batch) and seed the instances. */
  readonly setupMs: number;
}

/** A moment of a profiled invocation. */
export interface TimelineEvent {
  /** Offset from the exec of bin/galactic, ms. */
  readonly atMs: number;
  /** Duration, for commands. */
  readonly ms?: number;
  /** `exec`, `api` or `log`. */
  readonly kind: "exec" | "api" | "log";
  /** What happened. */
  readonly what: string;
}

/** Where one profiled invocation spent its time (strace of execve/exit). */
export interface ProfileRun {
  /** Mode. */
  readonly mode: Mode;
  /** Verb. */
  readonly verb: "ADD" | "DEL";
  /** Exec of bin/galactic to exit of the process, ms. */
  readonly totalMs: number;
  /** sh launcher until it execs deno. */
  readonly launcherMs: number;
  /** deno exec until the first command (runtime start, module loading, config, locks). */
  readonly startupMs: number;
  /** Time covered by child processes (union). */
  readonly commandsMs: number;
  /** Between the first command's start and the last one's end, not covered by any. */
  readonly betweenMs: number;
  /** Last command's end until exit. */
  readonly tailMs: number;
  /** Per program family: processes and covered time. */
  readonly byProgram: Record<string, { count: number; ms: number }>;
  /** API requests seen during the invocation. */
  readonly apiRequests: number;
  /** Every command, API request and log line. */
  readonly events: TimelineEvent[];
  /** Exit code. */
  readonly code: number;
}

/** State of the node agent during the run. */
export interface AgentInfo {
  /** `galactic agent` exists (and the run did not skip it). */
  readonly available: boolean;
  /** Why the agent mode did not run. */
  reason?: string;
  /** Spawn until its socket appeared, ms. */
  startMs?: number;
  /** Peak RSS of the agent process over the run (VmHWM), KiB. */
  peakRssKb?: number;
  /** Agent-server requests outside any measured invocation (start-up lists, watches). */
  backgroundApi?: VerbCounts;
  /** Last lines of its stderr when it failed. */
  error?: string;
}

/** Everything one run produced. */
export interface BenchResults {
  /** Format version. */
  readonly version: 1;
  /** When the run started (ISO). */
  readonly startedAt: string;
  /** Whole lab-side run, ms. */
  wallMs: number;
  /** Options used. */
  readonly options: BenchOptions;
  /** Where it ran. */
  readonly machine: MachineInfo;
  /** Plugin configuration extras that matter for reading the numbers. */
  readonly setup: Record<string, unknown>;
  /** The node agent. */
  readonly agent: AgentInfo;
  /** Scenario 1, 2, 4. */
  readonly sequential: SequentialResult[];
  /** The Deno runtime floor, interleaved with scenario 1 (absent in runs before it existed). */
  readonly floor?: FloorResult;
  /** Scenario 3. */
  readonly concurrency: ConcurrencyResult[];
  /** Scenario 5. */
  readonly curve: CurvePoint[];
  /** Scenario 5 set-up costs. */
  readonly curveSetup: CurveSetup[];
  /** Breakdown runs. */
  readonly profile: ProfileRun[];
  /** Scenario-level errors (a scenario that could not complete). */
  readonly errors: string[];
  /** Remarks for the reader. */
  readonly notes: string[];
}
