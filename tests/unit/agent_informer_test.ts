import assert from "node:assert/strict";
import {
  BadApiData,
  checkList,
  type Informer,
  MAX_EVENT_CHARS,
  parseWatchLine,
  startInformer,
} from "../../lib/agent/informer.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { BGP_INSTANCES } from "../../lib/kube/api.ts";
import { openRawApi } from "../../lib/kube/client.ts";
import { createLogger } from "../../lib/log/logger.ts";
import type { FaultSpec, StoredObject } from "../support/fake_api_server.ts";
import {
  instance as validInstance,
  type KubeFixture,
  kubeFixture,
} from "../support/kube_fixtures.ts";

const PLURAL = BGP_INSTANCES.plural;

function instance(name: string): StoredObject {
  return validInstance(name, { selector: { matchLabels: { "bgp.miloapis.com/node": "n1" } } });
}

/** Polls `condition` (no timing assertion: only a generous bound against hanging forever). */
async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.fail(`never happened: ${what}`);
}

interface Watched extends AsyncDisposable {
  readonly kube: KubeFixture;
  readonly informer: Informer;
  /** Warning lines logged so far. */
  readonly warnings: string[];
  names(): string[];
}

/**
 * An informer of the fake's BGPInstances. The server ends each watch after
 * 1 s; a watch counts as stalled only `stallGraceMs` later (long by default,
 * so a loaded machine's late stream end is not taken for a stall).
 */
/** Budgets of the informer under test; short ones only where a test is about them (load-proof). */
interface Budgets {
  stallGraceMs?: number;
  listTimeoutMs?: number;
}

async function watched(options: Budgets = {}): Promise<Watched> {
  const kube = await kubeFixture({ rbac: AGENT_RBAC });
  kube.server.seed(instance("first"));
  const raw = await openRawApi({ kind: "file", path: kube.kubeconfig, origin: "test" });
  const warnings: string[] = [];
  const informer = startInformer(raw, {
    resource: BGP_INSTANCES,
    log: createLogger({
      level: "debug",
      stderr: (line) => {
        if (/ WARN /.test(line)) warnings.push(line);
      },
    }),
    listTimeoutMs: options.listTimeoutMs ?? 10_000,
    watchSeconds: 1,
    stallGraceMs: options.stallGraceMs ?? 10_000,
    backoffMs: 20,
    maxBackoffMs: 100,
  });
  await informer.firstSync();
  return {
    kube,
    informer,
    warnings,
    names: () => informer.list().map((o) => o.metadata.name).sort(),
    async [Symbol.asyncDispose](): Promise<void> {
      await informer.stop();
      await raw.close();
      await kube[Symbol.asyncDispose]();
    },
  };
}

/**
 * After `fault` hits the next request (the fake ends each watch after the
 * informer's `timeoutSeconds=1`, so a new one comes soon), the cache recovers.
 */
async function survives(
  fault: FaultSpec,
  expected: RegExp,
  options: Budgets = {},
): Promise<void> {
  // A list fault needs a list: the next watch answers 410, which re-lists quietly.
  const relist: FaultSpec[] = fault.verb === "list"
    ? [{ verb: "watch", status: 410, times: 1 }]
    : [];
  await using w = await watched(options);
  assert.deepEqual(w.names(), ["first"]);
  const lists = () => w.kube.server.requests.filter((r) => r.verb === "list").length;
  const listed = lists();
  for (const f of [...relist, fault]) w.kube.server.fault({ resource: PLURAL, times: 1, ...f });
  await until(() => w.warnings.some((l) => expected.test(l)), `a warning matching ${expected}`);
  w.kube.server.seed(instance("second"));
  await until(() => w.names().includes("second"), "the cache follows again");
  await until(() => w.informer.synced(), "in sync again");
  assert.ok(lists() > listed, "it listed again");
  assert.equal(w.warnings.filter((l) => expected.test(l)).length, 1, "logged once");
}

Deno.test("informer: a watch line that is not JSON is logged and the cache re-lists", async () => {
  await survives({ verb: "watch", body: "this is not json\n" }, /is not JSON: this is not json/);
});

Deno.test("informer: an event without an object (the library's crash) is logged and survived", async () => {
  await survives(
    { verb: "watch", body: '{"type":"ADDED","object":null}\n' },
    /\(ADDED\) is not an object: null/,
  );
});

Deno.test("informer: an event of an object without metadata or name is refused", async () => {
  await survives(
    { verb: "watch", body: '{"type":"MODIFIED","object":{"spec":{}}}\n' },
    /has no metadata object/,
  );
  await survives(
    { verb: "watch", body: '{"type":"ADDED","object":{"metadata":{"resourceVersion":"9"}}}\n' },
    /has no metadata.name/,
  );
});

Deno.test("informer: an event of an unknown type is refused", async () => {
  await survives({ verb: "watch", body: '{"type":"EXPLODED","object":{}}\n' }, /unknown type/);
});

Deno.test("informer: a watch stream cut inside an event counts as truncated", async () => {
  await survives(
    { verb: "watch", body: '{"type":"ADDED","object":{"metadata":{"name":"half"' },
    /ended inside an event/,
  );
});

Deno.test("informer: an endless line on a watch is cut at the event size bound", async () => {
  await survives(
    { verb: "watch", body: "x".repeat(MAX_EVENT_CHARS + 1024) },
    /an event longer than 4194304 characters/,
  );
});

Deno.test("informer: a list answer that is not a list is refused until a good one comes", async () => {
  await survives(
    { verb: "list", body: '{"kind":"Status","code":200}', times: 2 },
    /no items array/,
  );
  await survives(
    { verb: "list", body: '{"items":[null],"metadata":{"resourceVersion":"1"}}' },
    /item 0 is not an object/,
  );
  await survives(
    { verb: "list", body: "<html>proxy error</html>" },
    /list of bgpinstances is not JSON/,
  );
});

Deno.test("informer: a non-200 watch answer and a dropped connection re-list", async () => {
  await survives({ verb: "watch", status: 500 }, /HTTP 500/);
  // Twice: fetch itself resends a GET whose reused connection closed before
  // any answer, once, on a new connection.
  await survives({ verb: "watch", reset: true, times: 2 }, /watch cache out of sync/);
});

Deno.test("informer: a watch connection dropped mid-stream is noticed at once, not by the stall timer", async () => {
  // The server would end each watch only after a minute, and a silent one
  // would count as stalled a minute after that: only noticing the dropped
  // connection itself brings the second object within `until`'s bound.
  const kube = await kubeFixture({ rbac: AGENT_RBAC });
  kube.server.seed(instance("first"));
  const raw = await openRawApi({ kind: "file", path: kube.kubeconfig, origin: "test" });
  const warnings: string[] = [];
  const informer = startInformer(raw, {
    resource: BGP_INSTANCES,
    log: createLogger({ level: "debug", stderr: (line) => warnings.push(line) }),
    listTimeoutMs: 5000,
    watchSeconds: 60,
    stallGraceMs: 60_000,
    backoffMs: 20,
    maxBackoffMs: 100,
  });
  try {
    await informer.firstSync();
    await until(() => kube.server.openWatches === 1, "the watch is open");
    const watches = kube.server.counts().watch ?? 0;
    assert.equal(kube.server.dropWatches(), 1);
    // Seeded while no watch is open, so only a new list or watch brings it.
    await until(() => (kube.server.counts().watch ?? 0) > watches, "a new watch");
    kube.server.seed(instance("second"));
    await until(
      () => informer.list().some((o) => o.metadata.name === "second"),
      "the cache follows again",
    );
    assert.ok(
      warnings.some((l) => / WARN .*error reading a body from connection/.test(l)),
      warnings.join("\n"),
    );
  } finally {
    await informer.stop();
    await raw.close();
    await kube[Symbol.asyncDispose]();
  }
});

Deno.test("informer: a list that stalls past its budget is abandoned and retried", async () => {
  await survives({ verb: "list", delayMs: 60_000 }, /no answer within 500 ms/, {
    listTimeoutMs: 500,
  });
  // Headers, then nothing: the body read runs into the same budget.
  await survives({ verb: "list", stall: true }, /no answer within 500 ms/, { listTimeoutMs: 500 });
});

Deno.test("informer: a watch that stalls (open, silent past the server's timeout) is resumed from its resourceVersion, in sync", async () => {
  await using w = await watched({ stallGraceMs: 300 });
  const lists = (): number => w.kube.server.requests.filter((r) => r.verb === "list").length;
  const watchPaths = (): string[] =>
    w.kube.server.requests.filter((r) => r.verb === "watch").map((r) => r.path);
  const listed = lists();
  w.kube.server.fault({ verb: "watch", resource: PLURAL, times: 1, stall: true });
  await until(() => w.kube.server.requests.some((r) => r.fault?.stall), "the stalled watch");
  const stalledAt = watchPaths().length - 1;
  let everOutOfSync = false;
  await until(() => {
    everOutOfSync ||= !w.informer.synced();
    return watchPaths().length > stalledAt + 1;
  }, "a watch after the stalled one");
  const version = (path: string) => new URL(path, "http://x").searchParams.get("resourceVersion");
  const paths = watchPaths();
  assert.equal(version(paths[stalledAt + 1]!), version(paths[stalledAt]!), "resumed where it was");
  w.kube.server.seed(instance("second"));
  await until(() => {
    everOutOfSync ||= !w.informer.synced();
    return w.names().includes("second");
  }, "the cache follows");
  assert.equal(lists(), listed, "no list");
  assert.equal(everOutOfSync, false, "never out of sync");
  assert.deepEqual(w.warnings, []);
});

Deno.test("informer: 410 Gone on a stale resourceVersion re-lists without a warning", async () => {
  await using w = await watched();
  w.kube.server.fault({ verb: "watch", resource: PLURAL, times: 1, status: 410 });
  await until(
    () => w.kube.server.requests.some((r) => r.verb === "watch" && r.status === 410),
    "the 410",
  );
  w.kube.server.seed(instance("second"));
  await until(() => w.names().includes("second"), "the cache follows again");
  assert.deepEqual(w.warnings, []);
});

Deno.test("informer: an ERROR event with code 410 re-lists; a clean end resumes without a list", async () => {
  await using w = await watched();
  w.kube.server.fault({
    verb: "watch",
    resource: PLURAL,
    times: 1,
    body: '{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old"}}\n',
  });
  const lists = (): number => w.kube.server.requests.filter((r) => r.verb === "list").length;
  await until(() => lists() === 2, "the ERROR 410 made it list again");
  w.kube.server.seed(instance("second"));
  await until(() => w.names().includes("second"), "the cache follows again");
  assert.deepEqual(w.warnings, []);
  // The server ends each watch after timeoutSeconds=1: resumed from the last version.
  const watches = w.kube.server.requests.filter((r) => r.verb === "watch").length;
  await until(
    () => w.kube.server.requests.filter((r) => r.verb === "watch").length >= watches + 2,
    "watches resumed",
  );
  // A watch the server ended cleanly is followed by a watch, not a list. (Counting every list
  // would also count a re-list after a hiccup of a loaded machine, which is right too.)
  const sequence = w.kube.server.requests.filter((r) => r.verb === "list" || r.verb === "watch")
    .map((r) => r.verb);
  const afterRelist = sequence.slice(sequence.indexOf("list", sequence.indexOf("list") + 1));
  assert.ok(
    afterRelist.some((verb, i) => verb === "watch" && afterRelist[i + 1] === "watch"),
    `a resumed watch, no list: ${afterRelist.join(" ")}`,
  );
  assert.ok(w.informer.synced());
});

Deno.test("informer: deleted objects leave the cache; progress is reported", async () => {
  await using w = await watched();
  const before = w.informer.lastProgress();
  w.kube.server.seed(instance("second"));
  await until(() => w.names().includes("second"), "added");
  w.kube.server.remove(PLURAL, "first");
  await until(() => !w.names().includes("first"), "deleted");
  assert.deepEqual(w.names(), ["second"]);
  assert.ok(w.informer.lastProgress() > before);
});

Deno.test("informer: a server that never answers a list leaves it out of sync, still stepping", async () => {
  await using w = await watched();
  w.kube.server.fault({ verb: "watch", resource: PLURAL, status: 410, times: 1 });
  w.kube.server.fault({ verb: "list", resource: PLURAL, status: 503 });
  await until(() => !w.informer.synced(), "out of sync");
  const seen = w.informer.lastProgress();
  await until(() => w.informer.lastProgress() > seen, "the loop keeps retrying");
  assert.equal(w.informer.synced(), false);
  w.kube.server.clearFaults();
  await until(() => w.informer.synced(), "in sync once lists work");
});

Deno.test("checkList and parseWatchLine name what is wrong", () => {
  assert.throws(() => checkList([], BGP_INSTANCES), BadApiData);
  assert.throws(
    () => checkList({ items: [], metadata: {} }, BGP_INSTANCES),
    /no metadata.resourceVersion/,
  );
  assert.throws(
    () =>
      checkList({ apiVersion: "v1", items: [], metadata: { resourceVersion: "1" } }, BGP_INSTANCES),
    /apiVersion v1/,
  );
  assert.throws(
    () =>
      parseWatchLine(
        '{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1","labels":[]}}}',
        BGP_INSTANCES,
      ),
    /labels that are not an object/,
  );
  assert.throws(() => parseWatchLine('{"type":"BOOKMARK","object":{}}', BGP_INSTANCES), /BOOKMARK/);
  assert.deepEqual(
    parseWatchLine(
      '{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"7"}}}',
      BGP_INSTANCES,
    ),
    { type: "BOOKMARK", resourceVersion: "7" },
  );
});

/** Blocks this process's event loop (a node so busy the agent gets no CPU). */
function starve(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* no timer, no socket read runs meanwhile */ }
}

Deno.test("informer: a process starved past a watch's end and its stall deadline stays in sync (no list, no warning)", async () => {
  await using w = await watched({ stallGraceMs: 300 });
  const lists = (): number => w.kube.server.requests.filter((r) => r.verb === "list").length;
  const watches = (): number => w.kube.server.requests.filter((r) => r.verb === "watch").length;
  const listed = lists();
  const opened = watches();
  // The server ends each watch after 1 s; the stall deadline is 300 ms later.
  // When the loop runs again both are overdue: the timers run before the
  // socket read that holds the end, so the end looked like a stall.
  starve(2_500);
  let everOutOfSync = false;
  await until(() => {
    everOutOfSync ||= !w.informer.synced();
    return watches() >= opened + 2;
  }, "watching on");
  w.kube.server.seed(instance("second"));
  await until(() => {
    everOutOfSync ||= !w.informer.synced();
    return w.names().includes("second");
  }, "the cache follows");
  assert.equal(lists(), listed, "no list: the watch resumed from its resourceVersion");
  assert.equal(everOutOfSync, false, "never out of sync");
  assert.deepEqual(w.warnings, []);
});
