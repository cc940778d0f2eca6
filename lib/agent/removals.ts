/**
 * The node agent's share of DEL (issue 17): a DEL answers the runtime once
 * the SID, the BGPVRFInstance, the pod interface and the FORWARD rules are
 * gone, and the agent removes the veth and the VRF after, then drops the
 * record (`finishRemoval` in `lib/verbs/teardown.ts`). Until then the record
 * stays `removing`: its table stays reserved, CHECK reports the DEL as
 * unfinished, an ADD of the attachment finishes the removal first, GC tears
 * it down like any unfinished DEL.
 *
 * The agent trusts nothing in a request but the key it names: it takes a
 * removal only in its own state directory, for a record that is `removing`
 * and still the named container's, and reads what to remove from that
 * record. Removals it accepted but did not finish (the agent died, a command
 * failed) are found again by a sweep of `removing` records at start and
 * every interval; a runtime's retried DEL, ADD or GC finishes them too.
 *
 * The record store works with synchronous calls (its reads and writes are
 * on every CNI call's critical path): here each removal's record write, an
 * fsync of a small file, holds the agent's event loop for its duration.
 *
 * @module
 */

import type { CommandRunner } from "../iproute2/runner.ts";
import type { Logger } from "../log/logger.ts";
import { AttachmentStore } from "../state/attachments.ts";
import { finishRemoval } from "../verbs/teardown.ts";
import type { AgentMetrics } from "./metrics.ts";

/** Where and how the agent removes devices. */
export interface RemovalSettings {
  /** The plugin's state directory on this node (the agent takes removals of no other). */
  readonly stateDir: string;
  /** Runs `ip` and `iptables` (with a deadline). */
  readonly runner: CommandRunner;
  /** Longest wait for an attachment's lock. */
  readonly lockTimeoutMs: number;
  /** How often to look for `removing` records nobody finishes (0: only at start). */
  readonly sweepIntervalMs: number;
  /** Removals run at once (each is one `ip` process; a swept record's also two `iptables`). */
  readonly concurrency?: number;
}

const KEY = /^[0-9a-f]{1,12}\.[0-9a-f]{1,4}$/;

/** Removals the agent has taken and not yet finished. */
export class PendingRemovals {
  readonly #settings: RemovalSettings;
  readonly #log: Logger;
  readonly #metrics: AgentMetrics;
  readonly #store: AttachmentStore;
  /** The last queued removal of each key (a later one chains after it). */
  readonly #queued = new Map<string, Promise<void>>();
  #running = 0;
  readonly #waiting: (() => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #sweeping: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(settings: RemovalSettings, options: { log: Logger; metrics: AgentMetrics }) {
    this.#settings = settings;
    this.#log = options.log;
    this.#metrics = options.metrics;
    this.#store = new AttachmentStore(settings.stateDir, {
      timeoutMs: settings.lockTimeoutMs,
      holder: "node agent removal",
    });
  }

  /** Sweeps now and then every interval. */
  start(): void {
    const round = (): void => {
      this.#sweeping = this.sweep().finally(() => {
        if (!this.#closed && this.#settings.sweepIntervalMs > 0) {
          this.#timer = setTimeout(round, this.#settings.sweepIntervalMs);
        }
      });
    };
    round();
  }

  /**
   * Takes the removal of `key` if it is in this agent's state directory and
   * its record is `removing` and `container`'s; resolves once it is queued.
   */
  async take(request: { stateDir: string; key: string; container: string }): Promise<boolean> {
    if (this.#closed || request.stateDir !== this.#settings.stateDir || !KEY.test(request.key)) {
      return false;
    }
    const record = (await this.#store.read().catch(() => undefined))?.[request.key];
    if (record?.phase !== "removing" || record.containerId !== request.container) return false;
    // The DEL removed the FORWARD rules before handing off.
    this.#enqueue(request.key, { owner: request.container, rulesGone: true });
    return true;
  }

  /** Queues every `removing` record not already queued. */
  async sweep(): Promise<void> {
    let records;
    try {
      records = await this.#store.read();
    } catch (error) {
      this.#log.warn("removal sweep: cannot read the records", { error: (error as Error).message });
      return;
    }
    for (const [key, record] of Object.entries(records)) {
      if (record.phase === "removing" && !this.#queued.has(key)) {
        this.#enqueue(key, { owner: record.containerId, rulesGone: false });
      }
    }
  }

  /** Resolves once every removal queued so far has finished (or failed). */
  async idle(): Promise<void> {
    while (this.#queued.size > 0) await Promise.allSettled([...this.#queued.values()]);
  }

  /** Stops sweeping and waits for queued removals. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#sweeping;
    await this.idle();
  }

  #enqueue(key: string, removal: { owner: string; rulesGone: boolean }): void {
    const previous = this.#queued.get(key) ?? Promise.resolve();
    const next = previous.then(() => this.#limited(() => this.#remove(key, removal)));
    this.#queued.set(key, next);
    void next.finally(() => {
      if (this.#queued.get(key) === next) this.#queued.delete(key);
    });
  }

  async #remove(key: string, removal: { owner: string; rulesGone: boolean }): Promise<void> {
    try {
      const removed = await finishRemoval(this.#settings.runner, {
        store: this.#store,
        key,
        ...removal,
        log: this.#log,
      });
      this.#metrics.removalDone(removed ? "removed" : "skipped");
    } catch (error) {
      // The record stays `removing`: the next sweep, or the runtime, retries.
      this.#metrics.removalDone("failed");
      this.#log.warn("removal failed; retried by the next sweep", {
        key,
        error: (error as Error).message,
      });
    }
  }

  /** At most `concurrency` at once; a finished one hands its slot to the next waiting. */
  async #limited(run: () => Promise<void>): Promise<void> {
    if (this.#running < (this.#settings.concurrency ?? 4)) this.#running++;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    try {
      await run();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#running--;
    }
  }
}
