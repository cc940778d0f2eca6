/**
 * The node agent: CNI processes reach the API through it (so they never load
 * the Kubernetes client), it caches the lookup with watches, and the plugin
 * falls back to its own client when the agent is absent or goes away.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import type { RequestRecord } from "../support/fake_api_server.ts";
import { cni, leftovers, NODE, ok, RD, type World, world } from "../support/cni_world.ts";
import { type AgentProcess, startAgentProcess } from "../support/agent_process.ts";

function apiCalls(w: World): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of w.api.requests) {
    counts[`${r.verb} ${r.resource}`] = (counts[`${r.verb} ${r.resource}`] ?? 0) + 1;
  }
  return counts;
}

/** A second attachment of the default config's VPC. */
function siblingConfig(w: World): Record<string, unknown> {
  return w.config({
    name: "tenant-a2",
    vpcattachment: "H",
    ipam: { type: "static", addresses: [{ address: "10.1.0.3/24" }] },
  });
}

Deno.test("with the agent, ADD writes with at most 2 API requests, steady state none, DEL one", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  await using _agent = await startAgentProcess(w);
  const first = w.config();
  const sibling = siblingConfig(w);

  w.api.resetLog();
  ok(await cni(w, "ADD", { config: first, containerId: "c1" }), "ADD");
  assert.deepEqual(
    apiCalls(w),
    { "create bgpvrfinstances": 1, "list bgpvrfinstances": 1 },
    "first ADD: create + re-check",
  );

  // The sibling ADD of the same VPC is answered from the agent's watch cache,
  // which receives the agent's own write within milliseconds on loopback.
  await new Promise((resolve) => setTimeout(resolve, 300));
  w.api.resetLog();
  ok(await cni(w, "ADD", { config: sibling, containerId: "c2" }), "sibling ADD");
  assert.deepEqual(apiCalls(w), {}, "steady-state ADD: no API request");

  w.api.resetLog();
  ok(await cni(w, "DEL", { config: sibling, containerId: "c2" }), "sibling DEL");
  assert.deepEqual(apiCalls(w), {}, "DEL of a non-last attachment keeps the object");
  ok(await cni(w, "DEL", { config: first, containerId: "c1" }), "last DEL");
  assert.deepEqual(apiCalls(w), { "delete bgpvrfinstances": 1 });
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("back-to-back ADDs of one VPC before the agent's watch catches up: its own writes count", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  await using _agent = await startAgentProcess(w);
  const first = w.config();
  const sibling = siblingConfig(w);
  const name = `galactic-vpc-b04-${NODE}`;
  const step = async (verb: string, config: Record<string, unknown>, containerId: string) => {
    w.api.resetLog();
    ok(await cni(w, verb, { config, containerId }), `${verb} ${containerId}`);
    return apiCalls(w);
  };

  // No watch event reaches the agent until release: its cache stays as it started.
  const release = w.api.holdWatches();
  try {
    assert.deepEqual(
      await step("ADD", first, "c1"),
      { "create bgpvrfinstances": 1, "list bgpvrfinstances": 1 },
      "first ADD: create + re-check",
    );
    assert.deepEqual(await step("ADD", sibling, "c2"), {}, "sibling ADD: the agent's own create");
    assert.deepEqual(await step("DEL", sibling, "c2"), {}, "DEL of a non-last attachment");
    assert.deepEqual(
      await step("DEL", first, "c1"),
      { "delete bgpvrfinstances": 1 },
      "last DEL",
    );
    assert.equal(w.api.object("bgpvrfinstances", name), undefined);
    // The cache still lists the object; the agent knows it deleted it.
    assert.deepEqual(
      await step("ADD", first, "c1"),
      { "create bgpvrfinstances": 1, "list bgpvrfinstances": 1 },
      "ADD after the delete creates the object again",
    );
    assert.equal(w.api.heldWatchEvents, 3, "created, deleted, created: all held");
  } finally {
    release();
  }
  const stored = w.api.object("bgpvrfinstances", name);
  assert.equal(stored?.spec.routeDistinguisher, RD);
  assert.deepEqual(stored?.spec.exportRouteTargets, [{ value: "65000:2820" }]);
  assert.deepEqual(w.api.objects("bgpvrfinstances").map((o) => o.metadata.name), [name]);

  // Once the events are in, the sibling still costs nothing and the last DEL one delete.
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.deepEqual(await step("ADD", sibling, "c2"), {}, "sibling ADD after release");
  assert.deepEqual(await step("DEL", sibling, "c2"), {});
  assert.deepEqual(await step("DEL", first, "c1"), { "delete bgpvrfinstances": 1 });
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("the agent's cache follows a changed BGPInstance (watch), and ADD writes the new RD", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  await using _agent = await startAgentProcess(w);
  const config = w.config();
  ok(await cni(w, "ADD", { config }), "ADD");
  const name = `galactic-vpc-b04-${NODE}`;
  assert.equal(w.api.object("bgpvrfinstances", name)?.spec.routeDistinguisher, "65000:2820");
  const instance = w.api.object("bgpinstances", "workers")!;
  w.api.seed({ ...instance, spec: { ...instance.spec, asNumber: 65001 } });
  // Re-ADD until the agent's watch delivered the change (no restart, no re-list needed).
  let rd = "";
  for (let i = 0; i < 50 && rd !== "65001:2820"; i++) {
    ok(await cni(w, "ADD", { config }), "re-ADD");
    rd = w.api.object("bgpvrfinstances", name)?.spec.routeDistinguisher;
  }
  assert.equal(rd, "65001:2820");
  ok(await cni(w, "DEL", { config }), "DEL");
});

/** GETs a health path; its status. */
async function probe(agent: AgentProcess, path: string): Promise<number> {
  const response = await fetch(agent.health + path);
  await response.body?.cancel();
  return response.status;
}

async function eventually(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`never happened: ${what}`);
}

Deno.test("a malformed watch event does not kill the agent: it re-lists and keeps serving", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  // What made the client library's informer throw an uncaught TypeError.
  w.api.fault({ verb: "watch", times: 3, body: '{"type":"ADDED","object":null}\n' });
  await using agent = await startAgentProcess(w);
  await eventually(
    () => Promise.resolve(w.api.requests.filter((r) => r.fault?.body !== undefined).length === 3),
    "every watch got the malformed event",
  );
  await eventually(async () => await probe(agent, "/readyz") === 200, "ready again");
  w.api.resetLog();
  ok(await cni(w, "ADD", { config: w.config(), containerId: "c1" }), "ADD");
  assert.deepEqual(apiCalls(w), { "create bgpvrfinstances": 1, "list bgpvrfinstances": 1 });
  ok(await cni(w, "DEL", { config: w.config(), containerId: "c1" }), "DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("an agent whose watches fail is not ready (but live), and ADDs go direct", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  w.api.fault({ verb: "watch", status: 500 });
  await using agent = await startAgentProcess(w);
  await eventually(
    async () => await probe(agent, "/readyz") === 503,
    "not ready",
  );
  assert.equal(await probe(agent, "/livez"), 200);
  w.api.resetLog();
  const config = w.config();
  ok(await cni(w, "ADD", { config, containerId: "c1" }), "ADD");
  assert.ok(
    w.api.requests.some((r) => r.verb === "list" && r.resource === "bgpproviders"),
    "the plugin looked the BGP configuration up itself",
  );
  assert.ok(w.api.object("bgpvrfinstances", `galactic-vpc-b04-${NODE}`), "declared");
  ok(await cni(w, "DEL", { config, containerId: "c1" }), "DEL");
  assert.deepEqual(await leftovers(w), []);

  w.api.clearFaults();
  await eventually(
    async () => await probe(agent, "/readyz") === 200,
    "ready once watches work",
  );
});

Deno.test("/metrics: the plugin's verb reports, the agent's API requests and sync state", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  await using agent = await startAgentProcess(w);
  const metrics = async (): Promise<string> =>
    await (await fetch(`${agent.health}/metrics`)).text();
  const config = w.config();
  ok(await cni(w, "ADD", { config, containerId: "c1" }), "ADD");
  ok(await cni(w, "DEL", { config, containerId: "c1" }), "DEL");
  // Reports are fire-and-forget: they may land just after the process exits.
  await eventually(
    async () => (await metrics()).includes('galactic_cni_operations_total{verb="DEL",code="0"} 1'),
    "the DEL's report",
  );
  const lines = new Set((await metrics()).split("\n"));
  for (
    const line of [
      'galactic_cni_operations_total{verb="ADD",code="0"} 1',
      'galactic_cni_operation_duration_seconds_count{verb="ADD"} 1',
      'galactic_cni_operation_duration_seconds_bucket{verb="DEL",le="+Inf"} 1',
      'galactic_agent_api_requests_total{verb="create",resource="bgpvrfinstances",outcome="ok"} 1',
      'galactic_agent_api_requests_total{verb="delete",resource="bgpvrfinstances",outcome="ok"} 1',
      'galactic_agent_calls_total{op="declareVrf",outcome="ok"} 1',
      'galactic_agent_cache_synced{resource="bgpvrfinstances"} 1',
      "galactic_agent_ready 1",
      "galactic_reclaimed_attachments_total 0",
    ]
  ) {
    assert.ok(lines.has(line), `missing: ${line}`);
  }
});

Deno.test("without an agent (stale socket file), the plugin uses its own client", async () => {
  await using w = await world();
  await Deno.writeTextFile(`${w.dir}/agent.sock`, "");
  const config = w.config();
  ok(await cni(w, "ADD", { config }), "ADD");
  assert.ok(
    w.api.requests.some((r) => r.verb === "list" && r.resource === "bgpproviders"),
    "direct lookup",
  );
  ok(await cni(w, "DEL", { config }), "DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("agent restarted or stopped between calls: every call still succeeds", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  const configs = ["G", "H", "I", "J"].map((att, i) =>
    w.config({
      name: `net-${att}`,
      vpcattachment: att,
      ipam: { type: "static", addresses: [{ address: `10.1.0.${i + 2}/24` }] },
    })
  );
  const first = await startAgentProcess(w);
  ok(await cni(w, "ADD", { config: configs[0]!, containerId: "c0" }), "ADD via agent");
  await first.stop();
  ok(await cni(w, "ADD", { config: configs[1]!, containerId: "c1" }), "ADD with the agent down");
  await using _second = await startAgentProcess(w);
  ok(
    await cni(w, "ADD", { config: configs[2]!, containerId: "c2" }),
    "ADD via the restarted agent",
  );
  ok(
    await cni(w, "ADD", { config: configs[3]!, containerId: "c3" }),
    "ADD via the restarted agent",
  );
  for (const [i, config] of configs.entries()) {
    ok(await cni(w, "DEL", { config, containerId: `c${i}` }), `DEL ${i}`);
  }
  assert.deepEqual(await leftovers(w), []);
});

/** Resolves once `done()` holds, polling; fails after `ms` (a bound, not a timing assertion). */
async function until(done: () => boolean, ms: number, what: string): Promise<void> {
  for (const start = Date.now(); !done();) {
    if (Date.now() - start > ms) throw new Error(`${what}: not after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface Proxy extends AsyncDisposable {
  /** Kubeconfig of the server, through the proxy. */
  readonly kubeconfig: string;
}

/**
 * A TCP proxy to the fake API server that keeps its side of a connection
 * open when the client dies, so a request the client sent in full still
 * reaches the server (as through a load balancer). Without it, the fake's
 * `Deno.serve` handler can no longer read the body of a request whose client
 * went away, and a held create of a killed agent would never land.
 */
async function keepAliveProxy(w: World): Promise<Proxy> {
  const target = new URL(w.api.url);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  const relays = new Set<Promise<void>>();
  const closeQuietly = (conn: Deno.Conn): void => {
    open.delete(conn);
    try {
      conn.close();
    } catch { /* already closed */ }
  };
  async function relay(client: Deno.Conn): Promise<void> {
    open.add(client);
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: target.hostname, port: Number(target.port) });
    } catch {
      closeQuietly(client);
      return;
    }
    open.add(upstream);
    await Promise.allSettled([
      // The client's end (EOF or reset) is not passed on: the server finishes what it got.
      client.readable.pipeTo(upstream.writable, { preventClose: true, preventAbort: true }),
      upstream.readable.pipeTo(client.writable),
    ]);
    closeQuietly(client);
    closeQuietly(upstream);
  }
  const accepting = (async () => {
    try {
      for await (const client of listener) {
        const task = relay(client).finally(() => relays.delete(task));
        relays.add(task);
      }
    } catch { /* listener closed */ }
  })();
  const kubeconfig = `${w.dir}/agent-kubeconfig`;
  const text = await Deno.readTextFile(w.kubeconfig);
  assert.ok(text.includes(`server: ${w.api.url}`));
  await Deno.writeTextFile(
    kubeconfig,
    text.replace(`server: ${w.api.url}`, `server: http://127.0.0.1:${listener.addr.port}`),
    { mode: 0o600 },
  );
  return {
    kubeconfig,
    async [Symbol.asyncDispose](): Promise<void> {
      listener.close();
      await accepting;
      for (const conn of [...open]) closeQuietly(conn);
      await Promise.allSettled([...relays]);
    },
  };
}

Deno.test("agent killed while an ADD's call is in flight: the ADD converges through the fallback", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  // The agent reaches the server through the proxy, the plugin's fallback directly.
  await using proxy = await keepAliveProxy(w);
  await using agent = await startAgentProcess(w, { kubeconfig: proxy.kubeconfig });
  const config = w.config();
  const name = `galactic-vpc-b04-${NODE}`;
  const isCreate = (r: RequestRecord): boolean =>
    r.verb === "create" && r.resource === "bgpvrfinstances";

  // The agent's create is held at the server while the agent is killed; the
  // server completes it only once the plugin's fallback has looked (no object
  // yet) and sent its own create, which then meets the object: 409
  // AlreadyExists, get, compare, done.
  let agentCreate: RequestRecord | undefined;
  let killed: Promise<string> | undefined;
  const release = Promise.withResolvers<void>();
  const unhook = w.api.onRequest(async (record) => {
    if (!isCreate(record)) return;
    if (!agentCreate) {
      agentCreate = record;
      killed = agent.kill();
      await release.promise;
      return;
    }
    // The fallback's create: first let the dead agent's create land.
    release.resolve();
    await until(() => agentCreate!.status !== 0, 5000, "the agent's create to complete");
  });
  try {
    w.api.resetLog();
    ok(await cni(w, "ADD", { config, containerId: "c1" }), "ADD with the agent killed mid-call");
    await killed;
  } finally {
    release.resolve();
    unhook();
  }

  assert.ok(agentCreate, "the ADD's create reached the server through the agent");
  const creates = w.api.requests.filter(isCreate);
  assert.deepEqual(
    creates.map((r) => r.status),
    [201, 409],
    "the dead agent's create landed, then the fallback's met it",
  );
  const afterConflict = w.api.requests.slice(w.api.requests.indexOf(creates[1]!));
  assert.ok(
    afterConflict.some((r) =>
      r.verb === "get" && r.resource === "bgpvrfinstances" && r.name === name
    ),
    "the fallback read the object after its 409",
  );
  assert.ok(
    !afterConflict.some((r) => r.verb === "update"),
    "the landed object was already right: no update",
  );
  assert.ok(
    w.api.requests.some((r) => r.verb === "list" && r.resource === "bgpproviders"),
    "the fallback looked the BGP configuration up itself",
  );

  assert.deepEqual(w.api.objects("bgpvrfinstances").map((o) => o.metadata.name), [name]);
  const stored = w.api.object("bgpvrfinstances", name);
  assert.equal(stored?.spec.routeDistinguisher, RD);
  assert.deepEqual(stored?.spec.exportRouteTargets, [{ value: "65000:2820" }]);
  assert.deepEqual(stored?.spec.importRouteTargets, [{ value: "65000:2820" }]);

  // The killed agent left its socket file; DEL finds nobody there and goes direct.
  assert.ok((await Deno.lstat(`${w.dir}/agent.sock`)).isSocket, "stale socket left behind");
  ok(await cni(w, "DEL", { config, containerId: "c1" }), "DEL");
  assert.deepEqual(await leftovers(w), []);
});
