/**
 * The node agent's local HTTP endpoint on 127.0.0.1 (the DaemonSet's probes
 * reach it through the host network; nothing off the node can):
 *
 * - `/readyz`: 200 while every watch cache is in sync, else 503. While not
 *   ready the agent tells the plugin to go direct instead of answering from
 *   stale caches, so "not ready" costs speed, not correctness.
 * - `/livez`: 200 while every watch loop made a step within the liveness
 *   window (a healthy loop never waits longer: a quiet watch is closed by the
 *   server, a list has a budget, backoff is capped), else 503 — a loop that
 *   is stuck, which a restart heals.
 * - `/metrics`: Prometheus text, when a source is given.
 *
 * @module
 */

/** What the health endpoint reports on. */
export interface HealthSources {
  /** Port on 127.0.0.1 (0: any free port). */
  readonly port: number;
  /** Ready now. */
  readonly ready: () => boolean;
  /** The watch loops (their last step, for liveness). */
  readonly informers: readonly { lastProgress(): number }[];
  /** Longest gap between steps of a live loop. */
  readonly livenessWindowMs: number;
  /** Prometheus text exposition of the agent's metrics. */
  readonly metrics?: () => string;
  /** Monotonic clock (default `performance.now`). */
  readonly now?: () => number;
}

/** A running health endpoint. */
export interface HealthServer {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Stops serving. */
  close(): Promise<void>;
}

function text(status: number, body: string, type = "text/plain; charset=utf-8"): Response {
  return new Response(body, { status, headers: { "content-type": type } });
}

/** Serves `/readyz`, `/livez` and `/metrics` on 127.0.0.1. */
export function serveHealth(sources: HealthSources): HealthServer {
  const now = sources.now ?? (() => performance.now());
  const live = (): boolean =>
    sources.informers.every((i) => now() - i.lastProgress() <= sources.livenessWindowMs);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: sources.port,
    onListen: () => {},
  }, (request) => {
    const { pathname } = new URL(request.url);
    switch (pathname) {
      case "/readyz":
        return sources.ready()
          ? text(200, "ok\n")
          : text(503, "not ready: watch caches out of sync\n");
      case "/livez":
        return live() ? text(200, "ok\n") : text(503, "not live: a watch loop made no progress\n");
      case "/metrics":
        if (sources.metrics) return text(200, sources.metrics(), "text/plain; version=0.0.4");
    }
    return text(404, "not found\n");
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close(): Promise<void> {
      await server.shutdown();
    },
  };
}
