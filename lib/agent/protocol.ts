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
  "finishRemoval",
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
  /** finishRemoval: the plugin's state directory, the record's key and its container. */
  readonly stateDir?: string;
  readonly key?: string;
  readonly container?: string;
  /** finishRemoval: the DEL's duration so far, counted as its report once taken. */
  readonly seconds?: number;
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

/** Longest request line the agent reads (a request is a few dozen bytes). */
export const MAX_REQUEST_CHARS = 4096;

/** A line longer than the reader's limit: the connection is dropped unread. */
export class LineTooLong extends Error {
  constructor(limit: number) {
    super(`line longer than ${limit} characters`);
    this.name = "LineTooLong";
  }
}

/**
 * Splits a byte stream into lines (JSON documents). With `maxChars`, a line
 * (or unterminated rest) longer than that throws {@linkcode LineTooLong}
 * before more is buffered.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  options: { maxChars?: number } = {},
): AsyncGenerator<string> {
  const limit = options.maxChars ?? Infinity;
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.length > limit) throw new LineTooLong(limit);
      if (line.trim() !== "") yield line;
    }
    if (buffered.length > limit) throw new LineTooLong(limit);
  }
}

/** Writes `value` as one JSON line (a write may take only part of it). */
export async function writeLine(conn: Deno.Conn, value: unknown): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify(value) + "\n");
  for (let written = 0; written < bytes.length;) {
    written += await conn.write(bytes.subarray(written));
  }
}

/**
 * Runs `use` on a fresh connection to the agent at `socket`, bounded by
 * `budgetMs`: resolves `otherwise` when it fails or the budget runs out, and
 * closes the connection either way. For the plugin's calls that must never
 * fail or hold a CNI call (its report, a DEL's hand-off).
 */
export async function onBriefConnection<T>(
  socket: string,
  use: (conn: Deno.UnixConn) => Promise<T>,
  options: { budgetMs: number; otherwise: T },
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let conn: Deno.UnixConn | undefined;
  try {
    return await Promise.race([
      (async () => {
        conn = await Deno.connect({ transport: "unix", path: socket });
        return await use(conn);
      })().catch(() => options.otherwise),
      new Promise<T>((resolve) =>
        timer = setTimeout(() => resolve(options.otherwise), options.budgetMs)
      ),
    ]);
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* already closed */ }
  }
}
