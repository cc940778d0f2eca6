/**
 * The plugin's side of the node agent: a {@linkcode BgpControlPlane} that
 * forwards calls over the agent's unix socket, so the CNI process never loads
 * the Kubernetes client while an agent runs. Cheap to import.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type {
  BgpControlPlane,
  DeclaredVrf,
  VrfDeclaration,
  VrfKey,
} from "../kube/control_plane.ts";
import { type AgentOp, type AgentResponse, readLines } from "./protocol.ts";

/** The agent went away (not running, restarted mid-call); the caller may go direct. */
export class AgentUnavailable extends Error {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "AgentUnavailable";
  }
}

/** Connects to the agent; undefined when no agent listens at `path`. */
export async function connectAgent(
  path: string,
  options: { timeoutMs: number },
): Promise<BgpControlPlane | undefined> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch {
    return undefined;
  }
  return new AgentControlPlane(conn, path, options.timeoutMs);
}

class AgentControlPlane implements BgpControlPlane {
  readonly #conn: Deno.UnixConn;
  readonly #path: string;
  readonly #timeoutMs: number;
  readonly #lines: AsyncGenerator<string>;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  #nextId = 1;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;

  constructor(conn: Deno.UnixConn, path: string, timeoutMs: number) {
    this.#conn = conn;
    this.#path = path;
    this.#timeoutMs = timeoutMs;
    this.#lines = readLines(conn.readable);
    this.#writer = conn.writable.getWriter();
  }

  /** One call at a time on the connection; responses come back in order. */
  #call(op: AgentOp, args: { node: string; vpc?: string }): Promise<unknown> {
    const run = this.#queue.then(() => this.#send(op, args));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #send(op: AgentOp, args: { node: string; vpc?: string }): Promise<unknown> {
    const id = this.#nextId++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await this.#writer.write(
        new TextEncoder().encode(JSON.stringify({ id, op, ...args }) + "\n"),
      );
      const next = this.#lines.next();
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new CniError(
                ErrorCode.TryAgainLater,
                `node agent at ${this.#path} did not answer ${op} within ${this.#timeoutMs} ms`,
              ),
            ),
          this.#timeoutMs,
        );
      });
      const line = await Promise.race([next, timeout]);
      if (line.done) {
        throw new AgentUnavailable(`node agent at ${this.#path} closed the connection`);
      }
      const response = JSON.parse(line.value) as AgentResponse;
      if (response.id !== id) {
        throw new AgentUnavailable(`node agent answered request ${response.id}, not ${id}`);
      }
      if (!response.ok && response.unavailable) throw new AgentUnavailable(response.msg);
      if (!response.ok) throw new CniError(response.code, response.msg);
      return response.value;
    } catch (error) {
      if (error instanceof CniError || error instanceof AgentUnavailable) throw error;
      throw new AgentUnavailable(
        `node agent at ${this.#path} failed: ${(error as Error).message}`,
        { cause: error },
      );
    } finally {
      clearTimeout(timer);
    }
  }

  async declareVrf(key: VrfKey): Promise<VrfDeclaration> {
    return await this.#call("declareVrf", { node: key.node, vpc: key.vpc.text }) as VrfDeclaration;
  }

  async withdrawVrf(key: VrfKey): Promise<void> {
    await this.#call("withdrawVrf", { node: key.node, vpc: key.vpc.text });
  }

  async verifyVrf(key: VrfKey): Promise<string[]> {
    return await this.#call("verifyVrf", { node: key.node, vpc: key.vpc.text }) as string[];
  }

  async listNodeVrfs(node: string): Promise<DeclaredVrf[]> {
    return await this.#call("listNodeVrfs", { node }) as DeclaredVrf[];
  }

  async probe(node: string): Promise<void> {
    await this.#call("probe", { node });
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#conn.close();
      } catch { /* already closed by the peer */ }
    }
    return Promise.resolve();
  }
}

/**
 * Uses `primary` (the agent) and, for any call the agent cannot answer
 * because it went away, `openFallback()` (the in-process client), opened at
 * most once. Calls are idempotent, so repeating one on the fallback is safe.
 */
export function withFallback(
  primary: BgpControlPlane,
  openFallback: () => Promise<BgpControlPlane>,
): BgpControlPlane {
  let fallback: Promise<BgpControlPlane> | undefined;
  let agentGone = false;
  async function call<T>(invoke: (plane: BgpControlPlane) => Promise<T>): Promise<T> {
    if (!agentGone) {
      try {
        return await invoke(primary);
      } catch (error) {
        if (!(error instanceof AgentUnavailable)) throw error;
        agentGone = true;
      }
    }
    fallback ??= openFallback();
    return await invoke(await fallback);
  }
  return {
    declareVrf: (key) => call((p) => p.declareVrf(key)),
    withdrawVrf: (key) => call((p) => p.withdrawVrf(key)),
    verifyVrf: (key) => call((p) => p.verifyVrf(key)),
    listNodeVrfs: (node) => call((p) => p.listNodeVrfs(node)),
    probe: (node) => call((p) => p.probe(node)),
    async close(): Promise<void> {
      await primary.close();
      if (fallback) await (await fallback.catch(() => undefined))?.close();
    },
  };
}
