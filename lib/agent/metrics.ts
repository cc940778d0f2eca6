/**
 * The node agent's metrics, served as Prometheus text on `/metrics` of its
 * health endpoint. Counters and histograms live in this process; the CNI
 * verbs' outcomes and latencies come from the plugin processes, which report
 * each verb over the agent's socket after it finished (`report.ts`).
 * Hand-rolled (a few counters need no client library): label values are
 * always from closed sets (verbs, CNI codes, resource plurals, call names).
 *
 * @module
 */

/** Upper bounds of the CNI latency histogram, in seconds. */
export const DURATION_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

/** A watch cache's state, for the sync gauges. */
export interface CacheState {
  /** Resource plural. */
  readonly resource: string;
  /** In sync now. */
  readonly synced: boolean;
}

interface Histogram {
  readonly buckets: number[];
  sum: number;
  count: number;
}

function labels(values: Record<string, string>): string {
  const text = Object.entries(values)
    .map(([k, v]) => `${k}="${v.replaceAll("\\", "\\\\").replaceAll('"', '\\"')}"`)
    .join(",");
  return text === "" ? "" : `{${text}}`;
}

/** Counts keyed by their label set (in a stable text form). */
class Counter {
  readonly #values = new Map<string, number>();

  add(values: Record<string, string>, by = 1): void {
    const key = labels(values);
    this.#values.set(key, (this.#values.get(key) ?? 0) + by);
  }

  lines(name: string): string[] {
    return [...this.#values].sort(([a], [b]) => a.localeCompare(b)).map(([key, value]) =>
      `${name}${key} ${value}`
    );
  }
}

/** The agent's metrics. */
export class AgentMetrics {
  readonly #operations = new Counter();
  readonly #durations = new Map<string, Histogram>();
  readonly #calls = new Counter();
  readonly #api = new Counter();
  #reclaimed = 0;
  readonly #removals = new Counter();

  /** A CNI verb a plugin process finished: its CNI code (0: success) and duration. */
  verbDone(verb: string, code: number, seconds: number): void {
    this.#operations.add({ verb, code: String(code) });
    let histogram = this.#durations.get(verb);
    if (!histogram) {
      histogram = { buckets: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
      this.#durations.set(verb, histogram);
    }
    DURATION_BUCKETS.forEach((le, i) => {
      if (seconds <= le) histogram.buckets[i]!++;
    });
    histogram.sum += seconds;
    histogram.count++;
  }

  /** A socket call the agent answered: `ok`, `error` or `unavailable` (not ready). */
  callServed(op: string, outcome: "ok" | "error" | "unavailable"): void {
    this.#calls.add({ op, outcome });
  }

  /** A request the agent made to the API server. */
  apiRequest(verb: string, resource: string, outcome: "ok" | "error"): void {
    this.#api.add({ verb, resource, outcome });
  }

  /** Stale attachments reclaimed (the periodic reclaim counts each one here). */
  reclaimedAttachments(count = 1): void {
    this.#reclaimed += count;
  }

  /** A DEL's device removal the agent took over: `removed`, `skipped` (already done) or `failed`. */
  removalDone(outcome: "removed" | "skipped" | "failed"): void {
    this.#removals.add({ outcome });
  }

  /** Prometheus text exposition (format 0.0.4). */
  render(
    state: {
      caches: readonly CacheState[];
      ready: boolean;
      /** The plugin's credential, when the agent keeps it fresh. */
      credentials?: { expiresAt: number | undefined; consecutiveFailures: number };
    },
  ): string {
    const out: string[] = [];
    const family = (name: string, type: string, help: string, lines: string[]): void => {
      out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, ...lines);
    };
    family(
      "galactic_cni_operations_total",
      "counter",
      "CNI verbs finished on this node, by verb and CNI code (0: success), as the plugin reported them.",
      this.#operations.lines("galactic_cni_operations_total"),
    );
    const buckets: string[] = [];
    for (const [verb, h] of [...this.#durations].sort(([a], [b]) => a.localeCompare(b))) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative = h.buckets[i]!;
        buckets.push(
          `galactic_cni_operation_duration_seconds_bucket${
            labels({ verb, le: String(le) })
          } ${cumulative}`,
        );
      });
      buckets.push(
        `galactic_cni_operation_duration_seconds_bucket${labels({ verb, le: "+Inf" })} ${h.count}`,
        `galactic_cni_operation_duration_seconds_sum${labels({ verb })} ${h.sum}`,
        `galactic_cni_operation_duration_seconds_count${labels({ verb })} ${h.count}`,
      );
    }
    family(
      "galactic_cni_operation_duration_seconds",
      "histogram",
      "Duration of CNI verbs in the plugin process (start to result), as the plugin reported it.",
      buckets,
    );
    family(
      "galactic_agent_calls_total",
      "counter",
      "Control-plane calls the agent answered over its socket, by call and outcome.",
      this.#calls.lines("galactic_agent_calls_total"),
    );
    family(
      "galactic_agent_api_requests_total",
      "counter",
      "Requests the agent made to the Kubernetes API (watch: one per stream), by verb, resource and outcome.",
      this.#api.lines("galactic_agent_api_requests_total"),
    );
    family(
      "galactic_agent_cache_synced",
      "gauge",
      "1 while the agent's watch cache of the resource is in sync with the API server.",
      state.caches.map((c) =>
        `galactic_agent_cache_synced${labels({ resource: c.resource })} ${c.synced ? 1 : 0}`
      ),
    );
    family(
      "galactic_agent_ready",
      "gauge",
      "1 while every watch cache is in sync (plugin calls are answered from them), else 0.",
      [`galactic_agent_ready ${state.ready ? 1 : 0}`],
    );
    if (state.credentials) {
      const { expiresAt, consecutiveFailures } = state.credentials;
      family(
        "galactic_agent_plugin_token_expiry_timestamp_seconds",
        "gauge",
        "When the plugin's token in the host kubeconfig expires (Unix time; 0: none written yet).",
        [
          `galactic_agent_plugin_token_expiry_timestamp_seconds ${
            Math.floor((expiresAt ?? 0) / 1000)
          }`,
        ],
      );
      family(
        "galactic_agent_plugin_token_refresh_failures",
        "gauge",
        "Token requests for the plugin failed since the last success (0: healthy).",
        [`galactic_agent_plugin_token_refresh_failures ${consecutiveFailures}`],
      );
    }
    family(
      "galactic_reclaimed_attachments_total",
      "counter",
      "Stale attachments (of pods that no longer exist) reclaimed on this node.",
      [`galactic_reclaimed_attachments_total ${this.#reclaimed}`],
    );
    family(
      "galactic_agent_removals_total",
      "counter",
      "DEL device removals (veth, VRF, FORWARD rules) the agent finished after the plugin answered, by outcome.",
      this.#removals.lines("galactic_agent_removals_total"),
    );
    return out.join("\n") + "\n";
  }
}
