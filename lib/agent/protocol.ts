/**
 * The node agent's wire protocol: one JSON object per line over a unix
 * socket, each request answered by a response with the same id.
 *
 * @module
 */

/** Control-plane calls the agent serves (those of `BgpControlPlane`). */
export const AGENT_OPS = [
  "declareVrf",
  "withdrawVrf",
  "verifyVrf",
  "listNodeVrfs",
  "probe",
] as const;
/** One of {@linkcode AGENT_OPS}. */
export type AgentOp = typeof AGENT_OPS[number];

export interface AgentRequest {
  /** Correlates the response. */
  readonly id: number;
  /** The call. */
  readonly op: AgentOp;
  readonly node: string;
  /** VPC base62 text (VRF calls). */
  readonly vpc?: string;
}

/**
 * A plugin process's report of a finished CNI verb, sent without waiting for
 * an answer (none comes): the agent's metrics of verbs and their latency.
 */
export interface VerbReport {
  /** Always 0: no response. */
  readonly id: 0;
  /** Marks a report. */
  readonly op: "report";
  /** CNI verb. */
  readonly verb: string;
  /** CNI error code; 0 for success. */
  readonly code: number;
  /** Duration of the verb in the plugin process. */
  readonly seconds: number;
}

/** Verbs a report may name (anything else is dropped). */
export const REPORTED_VERBS: ReadonlySet<string> = new Set(["ADD", "DEL", "CHECK", "GC", "STATUS"]);

/** A response: the call's value, or the CNI error it failed with. */
export type AgentResponse =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | {
    readonly id: number;
    readonly ok: false;
    readonly code: number;
    readonly msg: string;
    /** The agent cannot answer this call now (not ready): the caller should go direct. */
    readonly unavailable?: boolean;
  };

/** Splits a byte stream into lines (JSON documents). */
export async function* readLines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.trim() !== "") yield line;
    }
  }
}
