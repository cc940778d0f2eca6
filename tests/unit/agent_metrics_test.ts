import assert from "node:assert/strict";
import { AgentMetrics } from "../../lib/agent/metrics.ts";
import { reportVerb } from "../../lib/agent/report.ts";

Deno.test("metrics: verbs by code, cumulative latency buckets, API requests, sync state", () => {
  const metrics = new AgentMetrics();
  metrics.verbDone("ADD", 0, 0.04);
  metrics.verbDone("ADD", 0, 0.3);
  metrics.verbDone("ADD", 11, 40);
  metrics.verbDone("DEL", 0, 0.02);
  metrics.apiRequest("create", "bgpvrfinstances", "ok");
  metrics.apiRequest("list", "bgpvrfinstances", "ok");
  metrics.apiRequest("list", "bgpvrfinstances", "ok");
  metrics.callServed("declareVrf", "unavailable");
  metrics.reclaimedAttachments(2);
  const text = metrics.render({
    caches: [{ resource: "bgpinstances", synced: true }, {
      resource: "bgpvrfinstances",
      synced: false,
    }],
    ready: false,
  });
  const lines = new Set(text.split("\n"));
  for (
    const line of [
      "# TYPE galactic_cni_operations_total counter",
      'galactic_cni_operations_total{verb="ADD",code="0"} 2',
      'galactic_cni_operations_total{verb="ADD",code="11"} 1',
      'galactic_cni_operations_total{verb="DEL",code="0"} 1',
      "# TYPE galactic_cni_operation_duration_seconds histogram",
      'galactic_cni_operation_duration_seconds_bucket{verb="ADD",le="0.025"} 0',
      'galactic_cni_operation_duration_seconds_bucket{verb="ADD",le="0.05"} 1',
      'galactic_cni_operation_duration_seconds_bucket{verb="ADD",le="0.5"} 2',
      'galactic_cni_operation_duration_seconds_bucket{verb="ADD",le="30"} 2',
      'galactic_cni_operation_duration_seconds_bucket{verb="ADD",le="+Inf"} 3',
      'galactic_cni_operation_duration_seconds_count{verb="ADD"} 3',
      'galactic_cni_operation_duration_seconds_sum{verb="ADD"} 40.34',
      'galactic_agent_api_requests_total{verb="list",resource="bgpvrfinstances",outcome="ok"} 2',
      'galactic_agent_calls_total{op="declareVrf",outcome="unavailable"} 1',
      'galactic_agent_cache_synced{resource="bgpinstances"} 1',
      'galactic_agent_cache_synced{resource="bgpvrfinstances"} 0',
      "galactic_agent_ready 0",
      "galactic_reclaimed_attachments_total 2",
    ]
  ) {
    assert.ok(lines.has(line), `missing: ${line}\n${text}`);
  }
  assert.ok(text.endsWith("\n"));
});

Deno.test("reportVerb: no agent, or one that never reads, costs nothing but the bound", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await reportVerb(`${dir}/absent.sock`, { verb: "ADD", code: 0, seconds: 0.1 });
    const listener = Deno.listen({ transport: "unix", path: `${dir}/mute.sock` });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn);
    })();
    await reportVerb(`${dir}/mute.sock`, { verb: "DEL", code: 0, seconds: 0.1 });
    listener.close();
    await accepting.catch(() => {});
    for (const conn of held) conn.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
