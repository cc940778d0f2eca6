/**
 * The node agent's watch cache of one resource: list, then watch from the
 * list's resourceVersion, forever. The agent must survive whatever the API
 * server (or something posing as it) sends (client-node's informer, used
 * before, threw inside an async callback on an event without metadata, and
 * that unhandled rejection ended the process).
 *
 * Every answer is checked before it touches the cache (a list must hold an
 * `items` array of objects with names and a resourceVersion; each watch line
 * must be a JSON event of a known type around such an object). Anything
 * wrong — bad data, a non-200, a dropped connection, a list that does not
 * answer within its budget — ends the current round: the cache is marked out
 * of sync, the problem is logged once (a repeat of the same problem is logged
 * at debug), and after a backoff the informer lists again. A watch the server
 * closes cleanly is resumed from the last resourceVersion; `410 Gone` (or an
 * `ERROR` event with code 410) re-lists at once.
 *
 * A watch silent for longer than the server was asked to keep it open is
 * resumed the same way, and the cache stays in sync: it holds everything up
 * to that resourceVersion, and the resumed watch replays what came since (or
 * answers 410). The silence is not evidence against the cache: a process
 * starved of CPU (a node starting fifty pods at once) runs its overdue timers
 * before the socket read that holds the server's end, so a healthy watch
 * looks stalled, and calling the cache out of sync then sent every plugin
 * past the agent just when the node was busiest. A resumed watch that gets no
 * answer within its budget is out of sync, as before.
 *
 * The informer reports whether its cache is in sync (for readiness) and when
 * its loop last made progress (for liveness).
 *
 * @module
 */

import { apiVersion, type KubeObject, type Resource } from "../kube/api.ts";
import type { RawApi, RawResponse } from "../kube/client.ts";
import { pause } from "../kube/deadline.ts";
import type { Logger } from "../log/logger.ts";

/** Timing of an informer (defaults suit a real API server). */
export interface InformerTiming {
  /** Budget of one list request (default 10 s). */
  readonly listTimeoutMs?: number;
  /**
   * How long the server is asked to keep a watch open (default 60 s). A
   * connection the peer closes or resets ends the watch at once; one that
   * goes silent without a close (a partitioned node) only by the stall timer.
   */
  readonly watchSeconds?: number;
  /** A watch silent this much longer than `watchSeconds` counts as stalled (default 15 s). */
  readonly stallGraceMs?: number;
  /** First backoff after a failure; doubles per failure (default 500 ms). */
  readonly backoffMs?: number;
  /** Longest backoff (default 30 s). */
  readonly maxBackoffMs?: number;
}

/** What one informer watches. */
export interface InformerOptions extends InformerTiming {
  /** The resource. */
  readonly resource: Resource;
  /** Server-side label selector. */
  readonly labelSelector?: string;
  /** Where problems are logged. */
  readonly log: Logger;
  /** Called after each list or watch request, with its outcome (for metrics). */
  readonly onRequest?: (kind: "list" | "watch", outcome: "ok" | "error") => void;
}

/** A running informer. */
export interface Informer {
  /** The objects as last seen (empty until the first list). */
  list(): KubeObject[];
  /** True while the cache reflects the server: listed, and the watch since then unbroken. */
  synced(): boolean;
  /** Resolves at the first sync: listed and watching (or when stopped). */
  firstSync(): Promise<void>;
  /** `performance.now()` of the loop's last step (a list, an event, a retry). */
  lastProgress(): number;
  /** Stops the loop and any request in flight. */
  stop(): Promise<void>;
}

/**
 * The longest a healthy loop goes without a step: a quiet watch until its
 * stall timer, a list's budget, the longest backoff. Longer means stuck.
 */
export function longestQuietMs(timing: InformerTiming): number {
  return (timing.watchSeconds ?? 60) * 1000 + (timing.stallGraceMs ?? 15_000) +
    (timing.listTimeoutMs ?? 10_000) + (timing.maxBackoffMs ?? 30_000);
}

/** Data that is not what the API promises; the message says what was wrong. */
export class BadApiData extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "BadApiData";
  }
}

/** The watch's resourceVersion is too old: list again (not a fault). */
class Expired extends Error {}

/** Longest watch event accepted (a BGPVRFInstance is about a kilobyte). */
export const MAX_EVENT_CHARS = 4 * 1024 * 1024;

const EVENT_TYPES = new Set(["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function brief(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}

/** Checks one object of a list or event; `where` names it in the error. */
export function checkObject(value: unknown, where: string): KubeObject {
  if (!isRecord(value)) throw new BadApiData(`${where} is not an object: ${brief(value)}`);
  const metadata = value.metadata;
  if (!isRecord(metadata)) throw new BadApiData(`${where} has no metadata object`);
  if (typeof metadata.name !== "string" || metadata.name === "") {
    throw new BadApiData(`${where} has no metadata.name (got ${brief(metadata.name)})`);
  }
  if (typeof metadata.resourceVersion !== "string") {
    throw new BadApiData(`${where} ${metadata.name} has no metadata.resourceVersion`);
  }
  if (metadata.labels !== undefined && !isRecord(metadata.labels)) {
    throw new BadApiData(`${where} ${metadata.name} has metadata.labels that are not an object`);
  }
  if (value.spec !== undefined && !isRecord(value.spec)) {
    throw new BadApiData(`${where} ${metadata.name} has a spec that is not an object`);
  }
  return value as unknown as KubeObject;
}

/** Checks a list answer; returns its objects and resourceVersion. */
export function checkList(
  value: unknown,
  resource: Resource,
): { items: KubeObject[]; resourceVersion: string } {
  const what = `list of ${resource.plural}`;
  if (!isRecord(value)) throw new BadApiData(`${what} is not a JSON object: ${brief(value)}`);
  if (!Array.isArray(value.items)) throw new BadApiData(`${what} has no items array`);
  const metadata = value.metadata;
  const resourceVersion = isRecord(metadata) ? metadata.resourceVersion : undefined;
  if (typeof resourceVersion !== "string" || resourceVersion === "") {
    throw new BadApiData(`${what} has no metadata.resourceVersion`);
  }
  if (value.apiVersion !== undefined && value.apiVersion !== apiVersion(resource)) {
    throw new BadApiData(`${what} has apiVersion ${brief(value.apiVersion)}`);
  }
  const items = value.items.map((item, i) => checkObject(item, `${what}: item ${i}`));
  return { items, resourceVersion };
}

/** One watch event, checked. */
export type WatchEvent =
  | { readonly type: "ADDED" | "MODIFIED" | "DELETED"; readonly object: KubeObject }
  | { readonly type: "BOOKMARK"; readonly resourceVersion: string }
  | { readonly type: "ERROR"; readonly code: number; readonly message: string };

/** Parses and checks one line of a watch stream. */
export function parseWatchLine(line: string, resource: Resource): WatchEvent {
  const what = `watch event of ${resource.plural}`;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new BadApiData(`${what} is not JSON: ${brief(line)}`);
  }
  if (!isRecord(value)) throw new BadApiData(`${what} is not an object: ${brief(value)}`);
  const type = value.type;
  if (typeof type !== "string" || !EVENT_TYPES.has(type)) {
    throw new BadApiData(`${what} has unknown type ${brief(type)}`);
  }
  if (type === "ERROR") {
    const status = isRecord(value.object) ? value.object : {};
    const code = typeof status.code === "number" ? status.code : 0;
    const message = typeof status.message === "string" ? status.message : brief(value.object);
    return { type, code, message };
  }
  if (type === "BOOKMARK") {
    const metadata = isRecord(value.object) ? value.object.metadata : undefined;
    const resourceVersion = isRecord(metadata) ? metadata.resourceVersion : undefined;
    if (typeof resourceVersion !== "string" || resourceVersion === "") {
      throw new BadApiData(`${what}: BOOKMARK without metadata.resourceVersion`);
    }
    return { type, resourceVersion };
  }
  return {
    type: type as "ADDED" | "MODIFIED" | "DELETED",
    object: checkObject(value.object, `${what} (${type})`),
  };
}

/** Starts the list+watch loop of `options.resource` over `api`. */
export function startInformer(api: RawApi, options: InformerOptions): Informer {
  const { resource, log } = options;
  const listTimeoutMs = options.listTimeoutMs ?? 10_000;
  const watchSeconds = options.watchSeconds ?? 60;
  const stallMs = watchSeconds * 1000 + (options.stallGraceMs ?? 15_000);
  const backoffMs = options.backoffMs ?? 500;
  const maxBackoffMs = options.maxBackoffMs ?? 30_000;
  const base = `/apis/${resource.group}/${resource.version}/${resource.plural}`;
  const selector = options.labelSelector !== undefined
    ? `labelSelector=${encodeURIComponent(options.labelSelector)}`
    : "";

  const stopping = new AbortController();
  let objects = new Map<string, KubeObject>();
  let inSync = false;
  let progress = performance.now();
  let lastProblem: string | undefined;
  let markSynced: () => void = () => {};
  const synced = new Promise<void>((resolve) => markSynced = resolve);
  const step = (): void => {
    progress = performance.now();
  };
  const counted = (kind: "list" | "watch", outcome: "ok" | "error"): void => {
    try {
      options.onRequest?.(kind, outcome);
    } catch { /* a metrics hook cannot stop the loop */ }
  };

  /**
   * Starts a GET bounded by stop and by `timeoutMs` (until `end` is called,
   * or for a stream only until its headers arrive); `end` releases it (and
   * aborts it if still open); `timeout` is the budget's error once it ran out.
   */
  async function request(
    path: string,
    options: { timeoutMs: number; stream?: boolean },
  ): Promise<{
    response: RawResponse;
    end: () => void;
    timeout: () => Error | undefined;
    aborted: Promise<never>;
  }> {
    const { timeoutMs } = options;
    const controller = new AbortController();
    const abort = (): void => controller.abort();
    const timer = setTimeout(
      () => controller.abort(new Error(`no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    stopping.signal.addEventListener("abort", abort);
    const end = (): void => {
      clearTimeout(timer);
      stopping.signal.removeEventListener("abort", abort);
      controller.abort();
    };
    try {
      const response = await api.get(path, controller.signal);
      if (options.stream) clearTimeout(timer);
      if (response.status === 410) throw new Expired();
      if (response.status !== 200) {
        const text = await response.text().catch(() => "");
        throw new Error(`HTTP ${response.status}: ${brief(text)}`);
      }
      // Why a later read of the body failed, if it was this budget.
      const timeout = (): Error | undefined => {
        const reason: unknown = controller.signal.reason;
        return !stopping.signal.aborted && reason instanceof Error ? reason : undefined;
      };
      const aborted = new Promise<never>((_, reject) => {
        const fail = (): void => reject(controller.signal.reason);
        if (controller.signal.aborted) fail();
        else controller.signal.addEventListener("abort", fail, { once: true });
      });
      aborted.catch(() => {});
      return { response, end, timeout, aborted };
    } catch (error) {
      const timedOut = controller.signal.aborted && !stopping.signal.aborted;
      const reason: unknown = controller.signal.reason;
      end();
      throw timedOut && reason instanceof Error ? reason : error;
    }
  }

  async function relist(): Promise<string> {
    const { response, end, timeout, aborted } = await request(
      selector ? `${base}?${selector}` : base,
      {
        timeoutMs: listTimeoutMs,
      },
    );
    let text: string;
    try {
      // Raced with the abort: a RawApi need not end a body read on it.
      text = await Promise.race([response.text(), aborted]);
    } catch (error) {
      throw timeout() ?? error;
    } finally {
      end();
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new BadApiData(`list of ${resource.plural} is not JSON: ${brief(text)}`);
    }
    const { items, resourceVersion } = checkList(body, resource);
    objects = new Map(items.map((o) => [o.metadata.name, o]));
    return resourceVersion;
  }

  /** Watches from `from` until the server ends the stream; returns the last resourceVersion. */
  async function watch(from: string, opened: () => void): Promise<string> {
    const query = [
      "watch=true",
      `resourceVersion=${encodeURIComponent(from)}`,
      "allowWatchBookmarks=true",
      `timeoutSeconds=${watchSeconds}`,
      ...(selector ? [selector] : []),
    ].join("&");
    const { response, end } = await request(`${base}?${query}`, {
      timeoutMs: listTimeoutMs,
      stream: true,
    });
    if (!response.body) {
      end();
      throw new BadApiData(`watch of ${resource.plural} has no body`);
    }
    opened();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let stalled = false;
    const close = (): void => {
      end();
      reader.cancel().catch(() => {});
    };
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        close();
      }, stallMs);
    };
    stopping.signal.addEventListener("abort", close);
    arm();
    let version = from;
    let buffered = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (stalled) {
          log.info("agent: watch silent past its deadline; resuming from its resourceVersion", {
            resource: resource.plural,
            silentMs: stallMs,
            resourceVersion: version,
          });
          // A partial event in `buffered` comes again: the resumed watch starts after `version`.
          return version;
        }
        if (done) break;
        arm();
        step();
        buffered += value;
        if (buffered.length > MAX_EVENT_CHARS && !buffered.includes("\n")) {
          throw new BadApiData(
            `watch of ${resource.plural} sent an event longer than ${MAX_EVENT_CHARS} characters`,
          );
        }
        let newline;
        while ((newline = buffered.indexOf("\n")) >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line.trim() === "") continue;
          version = apply(parseWatchLine(line, resource)) ?? version;
          failures = 0;
        }
      }
    } finally {
      clearTimeout(timer);
      stopping.signal.removeEventListener("abort", close);
      close();
    }
    if (buffered.trim() !== "" && !stopping.signal.aborted) {
      throw new BadApiData(`watch of ${resource.plural} ended inside an event: ${brief(buffered)}`);
    }
    return version;
  }

  /** Applies one event to the cache; returns the resourceVersion it brings. */
  function apply(event: WatchEvent): string | undefined {
    switch (event.type) {
      case "ERROR":
        if (event.code === 410) throw new Expired();
        throw new Error(
          `watch of ${resource.plural} ended with ERROR ${event.code}: ${event.message}`,
        );
      case "BOOKMARK":
        return event.resourceVersion;
      case "DELETED":
        objects.delete(event.object.metadata.name);
        return event.object.metadata.resourceVersion;
      default:
        objects.set(event.object.metadata.name, event.object);
        return event.object.metadata.resourceVersion;
    }
  }

  function report(error: unknown): void {
    const problem = error instanceof Error ? error.message : String(error);
    const fields = { resource: resource.plural, error: problem };
    if (problem === lastProblem) {
      log.debug("agent: watch cache still failing; re-listing", fields);
    } else {
      log.warn("agent: watch cache out of sync; re-listing", fields);
    }
    lastProblem = problem;
  }

  let failures = 0;
  /** The watch after a list is open: from now on the cache follows the server. */
  const watching = (): void => {
    if (inSync) return;
    if (lastProblem !== undefined) {
      log.info("agent: watch cache in sync again", { resource: resource.plural });
    }
    inSync = true;
    lastProblem = undefined;
    markSynced();
  };

  const loop = (async () => {
    let version: string | undefined;
    while (!stopping.signal.aborted) {
      try {
        if (version === undefined) {
          try {
            version = await relist();
            counted("list", "ok");
          } catch (error) {
            counted("list", "error");
            throw error;
          }
          step();
        }
        try {
          version = await watch(version, watching);
          counted("watch", "ok");
          failures = 0;
        } catch (error) {
          counted("watch", "error");
          throw error;
        }
        step();
      } catch (error) {
        step();
        if (stopping.signal.aborted) break;
        version = undefined;
        if (error instanceof Expired) {
          log.debug("agent: resourceVersion expired; re-listing", { resource: resource.plural });
          continue;
        }
        inSync = false;
        report(error);
        await pause(Math.min(maxBackoffMs, backoffMs * 2 ** failures++), stopping.signal);
        step();
      }
    }
    inSync = false;
    markSynced();
  })();

  return {
    list: () => [...objects.values()],
    synced: () => inSync,
    firstSync: () => synced,
    lastProgress: () => progress,
    async stop(): Promise<void> {
      stopping.abort();
      await loop;
    },
  };
}
