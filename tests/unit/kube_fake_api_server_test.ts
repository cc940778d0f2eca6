/**
 * The fake API server must behave like the real one where the plugin depends
 * on it; these tests talk to it over plain HTTP.
 */

import assert from "node:assert/strict";
import { PLUGIN_RBAC } from "../../lib/kube/rbac.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { FAKE_TOKEN, FakeApiServer, type StoredObject } from "../support/fake_api_server.ts";
import { matchesLabelQuery, parseLabelQuery } from "../support/label_query.ts";
import { provider, vrfInstance } from "../support/kube_fixtures.ts";

const VRFS = "/apis/bgp.miloapis.com/v1alpha1/bgpvrfinstances";
const PROVIDERS = "/apis/providers.bgp.miloapis.com/v1alpha1/bgpproviders";

async function call(
  server: FakeApiServer,
  path: string,
  init: { method?: string; body?: unknown; token?: string | null; contentType?: string } = {},
): Promise<{ status: number; body: StoredObject; headers: Headers }> {
  const headers: Record<string, string> = {
    "content-type": init.contentType ?? "application/json",
  };
  if (init.token !== null) headers.authorization = `Bearer ${init.token ?? FAKE_TOKEN}`;
  const response = await fetch(`${server.url}${path}`, {
    method: init.method ?? "GET",
    headers,
    ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  let body: StoredObject;
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status: response.status, body, headers: response.headers };
}

function vrf(name: string, extra: StoredObject = {}): StoredObject {
  return { ...vrfInstance(name), ...extra };
}

Deno.test("fake API server: label queries follow the apiserver's syntax and semantics", () => {
  const labels = { a: "1", b: "2" };
  const cases: [string, boolean][] = [
    ["a=1", true],
    ["a==1", true],
    ["a!=1", false],
    ["c!=1", true],
    ["a in (1,3)", true],
    ["a notin (1)", false],
    ["c notin (1)", true],
    ["a", true],
    ["!a", false],
    ["!c", true],
    ["a=1,b=2", true],
    ["a=1,b=3", false],
    ["", true],
  ];
  for (const [query, expected] of cases) {
    assert.equal(matchesLabelQuery(parseLabelQuery(query), labels), expected, query);
  }
  assert.throws(() => parseLabelQuery("a b"), /unable to parse requirement/);
  assert.throws(() => parseLabelQuery("a=has space"), /unable to parse requirement/);
});

Deno.test("fake API server: authentication, RBAC and not-found answer with Status bodies", async () => {
  await using server = new FakeApiServer();
  const anonymous = await call(server, VRFS, { token: null });
  assert.equal(anonymous.status, 401);
  assert.deepEqual(anonymous.body, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: "Unauthorized",
    reason: "Unauthorized",
    code: 401,
  });
  assert.equal((await call(server, VRFS, { token: "wrong" })).status, 401);

  const missing = await call(server, `${VRFS}/nope`);
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.body.details, {
    name: "nope",
    group: "bgp.miloapis.com",
    kind: "bgpvrfinstances",
  });
  assert.equal(missing.body.message, 'bgpvrfinstances.bgp.miloapis.com "nope" not found');

  const notServed = await call(server, "/apis/bgp.miloapis.com/v1alpha1/bgpnothings");
  assert.equal(notServed.status, 404);
  assert.equal(notServed.body.text, "404 page not found\n");

  const providerWrite = await call(server, PROVIDERS, { method: "POST", body: provider("p", "n") });
  assert.equal(providerWrite.status, 403, "PLUGIN_RBAC has no create on bgpproviders");
  assert.equal(
    providerWrite.body.message,
    'bgpproviders.providers.bgp.miloapis.com is forbidden: User "system:serviceaccount:galactic-system:galactic-cni" ' +
      'cannot create resource "bgpproviders" in API group "providers.bgp.miloapis.com" at the cluster scope',
  );
  server.deny("get", "bgpvrfinstances");
  const forbiddenGet = await call(server, `${VRFS}/x`);
  assert.equal(forbiddenGet.status, 403);
  assert.match(
    forbiddenGet.body.message,
    /^bgpvrfinstances\.bgp\.miloapis\.com "x" is forbidden: User .* cannot get/,
  );
  assert.deepEqual(server.counts(), { list: 2, unknown: 1, create: 1, get: 2 });
});

Deno.test("fake API server: create, optimistic update, merge patch and conditional delete", async () => {
  // The plugin never patches (its RBAC has no patch); the fake still serves it when granted.
  await using server = new FakeApiServer({
    rbac: PLUGIN_RBAC.map((rule) =>
      rule.resource === "bgpvrfinstances" ? { ...rule, verbs: [...rule.verbs, "patch"] } : rule
    ),
  });
  const created = await call(server, VRFS, {
    method: "POST",
    body: vrf("a", { status: { ignored: true } }),
  });
  assert.equal(created.status, 201);
  assert.equal(created.body.metadata.generation, 1);
  assert.equal(created.body.status, undefined, "status is a subresource");
  assert.match(created.body.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

  assert.equal(
    (await call(server, VRFS, { method: "POST", body: vrf("a") })).body.reason,
    "AlreadyExists",
  );
  const withVersion = vrf("b");
  withVersion.metadata.resourceVersion = "5";
  assert.equal((await call(server, VRFS, { method: "POST", body: withVersion })).status, 500);

  const noVersion = await call(server, `${VRFS}/a`, { method: "PUT", body: vrf("a") });
  assert.equal(noVersion.status, 422);
  assert.match(
    noVersion.body.message,
    /metadata\.resourceVersion: Invalid value: 0x0: must be specified/,
  );

  const update = { ...created.body, spec: { ...created.body.spec, routeDistinguisher: "65000:2" } };
  const updated = await call(server, `${VRFS}/a`, { method: "PUT", body: update });
  assert.equal(updated.status, 200);
  assert.equal(updated.body.metadata.generation, 2);
  const stale = await call(server, `${VRFS}/a`, { method: "PUT", body: update });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.reason, "Conflict");
  const same = await call(server, `${VRFS}/a`, { method: "PUT", body: updated.body });
  assert.equal(
    same.body.metadata.resourceVersion,
    updated.body.metadata.resourceVersion,
    "a no-op update keeps RV",
  );
  const renamed = await call(server, `${VRFS}/a`, {
    method: "PUT",
    body: { ...updated.body, metadata: { name: "z" } },
  });
  assert.equal(renamed.status, 400);

  const patched = await call(server, `${VRFS}/a`, {
    method: "PATCH",
    contentType: "application/merge-patch+json",
    body: { metadata: { labels: { x: "y" } }, spec: { importRouteTargets: [{ value: "1:2" }] } },
  });
  assert.equal(patched.status, 200);
  assert.deepEqual(patched.body.metadata.labels, { x: "y" });
  assert.deepEqual(patched.body.spec.importRouteTargets, [{ value: "1:2" }]);
  const removing = await call(server, `${VRFS}/a`, {
    method: "PATCH",
    contentType: "application/merge-patch+json",
    body: { spec: { importRouteTargets: null } },
  });
  assert.equal(removing.status, 422, "a patch is admitted like any write");
  assert.match(removing.body.message, /spec\.importRouteTargets: Required value/);
  const jsonPatch = await call(server, `${VRFS}/a`, {
    method: "PATCH",
    contentType: "application/json-patch+json",
    body: [],
  });
  assert.equal(jsonPatch.status, 415);

  const wrongUid = await call(server, `${VRFS}/a`, {
    method: "DELETE",
    body: { preconditions: { uid: "other" } },
  });
  assert.equal(wrongUid.status, 409);
  assert.match(wrongUid.body.message, /^Precondition failed: UID in precondition: other/);
  const deleted = await call(server, `${VRFS}/a`, {
    method: "DELETE",
    body: { preconditions: { uid: created.body.metadata.uid } },
  });
  assert.equal(deleted.status, 200);
  assert.equal((await call(server, `${VRFS}/a`, { method: "DELETE" })).status, 404);
});

Deno.test("fake API server: CRD validation of route values, target lists, names and labels", async () => {
  await using server = new FakeApiServer();
  const invalid = await call(server, VRFS, {
    method: "POST",
    body: vrf("Bad", {
      metadata: { name: "Bad", labels: { "galactic.io/vpc": "not valid!" } },
      spec: {
        routeDistinguisher: "123.123.123.123:4294967295",
        importRouteTargets: [],
        exportRouteTargets: Array.from({ length: 33 }, () => ({ value: "1:1" })),
      },
    }),
  });
  assert.equal(invalid.status, 422);
  assert.equal(invalid.body.reason, "Invalid");
  assert.equal(invalid.body.details.kind, "BGPVRFInstance");
  assert.deepEqual(
    invalid.body.details.causes.map((c: StoredObject) => `${c.field} ${c.reason}`).sort(),
    [
      "<nil> FieldValueInvalid", // CEL rules not run: the errors above block them
      "metadata.labels FieldValueInvalid",
      "metadata.name FieldValueInvalid",
      "spec.exportRouteTargets FieldValueTooMany",
      "spec.importRouteTargets FieldValueInvalid",
      "spec.instanceRef FieldValueRequired",
      "spec.providerSelector FieldValueRequired",
      "spec.routeDistinguisher FieldValueTooLong",
    ],
  );
  assert.match(invalid.body.message, /^BGPVRFInstance\.bgp\.miloapis\.com "Bad" is invalid: \[/);
  assert.match(
    invalid.body.message,
    /spec\.routeDistinguisher: Too long: may not be more than 21 bytes/,
  );
  assert.match(
    invalid.body.message,
    /spec\.importRouteTargets: Invalid value: 0: spec\.importRouteTargets in body should have at least 1 items/,
  );
  assert.match(
    invalid.body.message,
    /spec\.exportRouteTargets: Too many: 33: must have at most 32 items/,
  );
  const badTarget = await call(server, VRFS, {
    method: "POST",
    body: vrf("ok", {
      spec: {
        ...vrf("ok").spec,
        routeDistinguisher: "1:1",
        importRouteTargets: [{ value: "rt:1:1" }],
      },
    }),
  });
  assert.equal(
    badTarget.body.message,
    'BGPVRFInstance.bgp.miloapis.com "ok" is invalid: spec.importRouteTargets[0]: ' +
      'Invalid value: "object": value must be in ASN:NN or IP:NN format',
  );
});

Deno.test("fake API server: list filters by label, pages with limit/continue", async () => {
  await using server = new FakeApiServer();
  const nodes: [string, string][] = [["a", "n1"], ["b", "n2"], ["c", "n1"], ["d", "n1"]];
  for (const [name, node] of nodes) server.seed(provider(name, node));
  const filtered = await call(
    server,
    `${PROVIDERS}?labelSelector=${encodeURIComponent("bgp.miloapis.com/node=n1")}`,
  );
  assert.equal(filtered.body.kind, "BGPProviderList");
  assert.deepEqual(filtered.body.items.map((o: StoredObject) => o.metadata.name), ["a", "c", "d"]);
  const first = await call(server, `${PROVIDERS}?limit=2`);
  assert.deepEqual(first.body.items.map((o: StoredObject) => o.metadata.name), ["a", "b"]);
  assert.equal(first.body.metadata.remainingItemCount, 2);
  const rest = await call(server, `${PROVIDERS}?limit=2&continue=${first.body.metadata.continue}`);
  assert.deepEqual(rest.body.items.map((o: StoredObject) => o.metadata.name), ["c", "d"]);
  assert.equal(rest.body.metadata.continue, undefined);
  assert.equal((await call(server, `${PROVIDERS}?labelSelector=a%20b`)).status, 400);
});

Deno.test("fake API server: faults apply to matching requests, N times", async () => {
  await using server = new FakeApiServer();
  server.fault({
    method: "GET",
    resource: "bgpproviders",
    status: 429,
    retryAfterSeconds: 3,
    times: 1,
  });
  const throttled = await call(server, PROVIDERS);
  assert.equal(throttled.status, 429);
  assert.equal(throttled.headers.get("retry-after"), "3");
  assert.equal(throttled.body.reason, "TooManyRequests");
  assert.equal((await call(server, PROVIDERS)).status, 200);
  assert.equal((await call(server, VRFS)).status, 200);
  // Deno's fetch silently retries once on a reused connection, so drop every attempt.
  const removeReset = server.fault({ verb: "list", reset: true });
  await assert.rejects(call(server, PROVIDERS));
  removeReset();
  assert.equal((await call(server, PROVIDERS)).status, 200);
  assert.deepEqual(server.requests.slice(0, 3).map((r) => r.status), [429, 200, 200]);
  assert.ok(server.requests.slice(3, -1).every((r) => r.status === 0 && r.fault?.reset));
  assert.equal(server.requests.at(-1)!.status, 200);
});

Deno.test("fake API server: runs standalone, prints its URL, writes a kubeconfig, loads a seed", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/seed.json`, JSON.stringify([provider("p1", "n1")]));
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("../support/fake_api_server.ts", import.meta.url).pathname,
        "--port",
        "0",
        "--kubeconfig",
        `${dir}/kubeconfig`,
        "--seed",
        `${dir}/seed.json`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let line = "";
      while (!line.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        line += value;
      }
      const url = line.trim();
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const kubeconfig = await Deno.readTextFile(`${dir}/kubeconfig`);
      assert.ok(kubeconfig.includes(`server: ${url}`));
      const listed = await fetch(`${url}${PROVIDERS}`, {
        headers: { authorization: `Bearer ${FAKE_TOKEN}` },
      });
      assert.deepEqual((await listed.json()).items.map((o: StoredObject) => o.metadata.name), [
        "p1",
      ]);
      const log = await (await fetch(`${url}/_fake/requests`)).json();
      assert.deepEqual(log.counts, { list: 1 });
      reader.releaseLock();
    } finally {
      child.kill("SIGTERM");
      await child.stdout.cancel().catch(() => {});
      assert.equal((await child.status).code, 0);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fake API server: a watch from a resourceVersion too old answers 200 and one ERROR 410 event, like the apiserver", async () => {
  await using server = new FakeApiServer({ rbac: AGENT_RBAC });
  for (const name of ["a", "b", "c"]) server.seed(provider(name, "n1")); // revisions 1-3, no events
  assert.equal(
    (await call(server, VRFS, { method: "POST", body: vrf("v1") })).status,
    201,
  );
  const watch = await call(server, `${PROVIDERS}?watch=true&resourceVersion=1`);
  assert.equal(watch.status, 200, "admitted: the error comes as an event");
  const event = JSON.parse(String(watch.body.text ?? JSON.stringify(watch.body)));
  assert.equal(event.type, "ERROR");
  assert.equal(event.object.kind, "Status");
  assert.equal(event.object.code, 410);
  assert.equal(event.object.reason, "Expired");
  assert.match(event.object.message, /^too old resource version: 1 \(\d+\)$/);
});
