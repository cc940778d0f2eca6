import assert from "node:assert/strict";
import { ErrorCode } from "../../lib/cni/errors.ts";
import {
  BGP_PROVIDERS,
  BGP_VRF_INSTANCES,
  KubeApiError,
  type KubeObject,
} from "../../lib/kube/api.ts";
import { openKubeApi } from "../../lib/kube/client.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";
import { FakeApiServer } from "../support/fake_api_server.ts";
import { FAST_RETRY, kubeFixture, provider, vrfInstance } from "../support/kube_fixtures.ts";

function vrf(name: string, spec: Record<string, unknown> = {}): KubeObject {
  const valid = vrfInstance(name, { labels: { "galactic.io/vpc": "4d2" } });
  return {
    ...valid,
    metadata: valid.metadata as KubeObject["metadata"],
    spec: { ...valid.spec, ...spec },
  };
}

async function rejection(promise: Promise<unknown>): Promise<KubeApiError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof KubeApiError, `expected a KubeApiError, got ${error}`);
    return error;
  }
  assert.fail("expected the call to fail");
}

Deno.test("client: create, get, replace, list and delete round-trip through the real library", async () => {
  await using kube = await kubeFixture();
  const deadline = startDeadline(5000);
  const created = await kube.api.create(BGP_VRF_INSTANCES, vrf("a"), { deadline });
  assert.equal(created.metadata.generation, 1);
  assert.ok(created.metadata.uid);
  const read = await kube.api.get(BGP_VRF_INSTANCES, "a", { deadline });
  assert.deepEqual(read, created);
  const replaced = await kube.api.replace(BGP_VRF_INSTANCES, {
    ...read!,
    spec: { ...read!.spec, routeDistinguisher: "65000:7" },
  }, {
    deadline,
  });
  assert.equal(replaced.metadata.generation, 2);
  assert.notEqual(replaced.metadata.resourceVersion, created.metadata.resourceVersion);
  assert.deepEqual(
    (await kube.api.list(BGP_VRF_INSTANCES, { deadline })).map((o) => o.metadata.name),
    ["a"],
  );
  assert.equal(await kube.api.delete(BGP_VRF_INSTANCES, "a", { deadline }), true);
  assert.equal(
    await kube.api.delete(BGP_VRF_INSTANCES, "a", { deadline }),
    false,
    "404 on delete is false",
  );
  assert.equal(
    await kube.api.get(BGP_VRF_INSTANCES, "a", { deadline }),
    undefined,
    "404 on get is undefined",
  );
});

Deno.test("client: create of an existing object throws AlreadyExists, a stale update Conflict", async () => {
  await using kube = await kubeFixture();
  const deadline = startDeadline(5000);
  const created = await kube.api.create(BGP_VRF_INSTANCES, vrf("a"), { deadline });
  const exists = await rejection(kube.api.create(BGP_VRF_INSTANCES, vrf("a"), { deadline }));
  assert.equal(exists.status, 409);
  assert.equal(exists.reason, "AlreadyExists");
  await kube.api.replace(
    BGP_VRF_INSTANCES,
    { ...created, spec: { ...created.spec, routeDistinguisher: "65000:2" } },
    { deadline },
  );
  const stale = await rejection(
    kube.api.replace(BGP_VRF_INSTANCES, {
      ...created,
      spec: { ...created.spec, routeDistinguisher: "65000:3" },
    }, {
      deadline,
    }),
  );
  assert.equal(stale.status, 409);
  assert.equal(stale.reason, "Conflict");
  assert.match(stale.message, /the object has been modified/);
});

Deno.test("client: list follows continue tokens, firstPageOnly stops after one page", async () => {
  await using kube = await kubeFixture();
  for (const name of ["a", "b", "c", "d", "e"]) kube.server.seed(provider(name, "node-1"));
  const deadline = startDeadline(5000);
  const all = await kube.api.list(BGP_PROVIDERS, { deadline, limit: 2 });
  assert.deepEqual(all.map((o) => o.metadata.name), ["a", "b", "c", "d", "e"]);
  assert.equal(kube.server.counts().list, 3);
  const first = await kube.api.list(BGP_PROVIDERS, { deadline, limit: 2, firstPageOnly: true });
  assert.equal(first.length, 2);
});

Deno.test("client: a continue token expired between pages (410) restarts as one full list, like client-go's pager", async () => {
  await using kube = await kubeFixture();
  for (const name of ["a", "b", "c", "d", "e"]) kube.server.seed(provider(name, "node-1"));
  kube.server.onRequest((record) => {
    if (record.path.includes("continue=")) kube.server.compact();
  });
  const all = await kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(5000), limit: 2 });
  assert.deepEqual(all.map((o) => o.metadata.name), ["a", "b", "c", "d", "e"]);
  assert.deepEqual(kube.server.requests.map((r) => r.status), [200, 410, 200]);
  assert.ok(!kube.server.requests[2]!.path.includes("limit="), "the full list is unpaginated");
});

Deno.test("client: two transient 503s are retried and the third attempt succeeds", async () => {
  await using kube = await kubeFixture();
  kube.server.fault({ verb: "list", status: 503, times: 2 });
  const items = await kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) });
  assert.deepEqual(items, []);
  assert.deepEqual(kube.server.requests.map((r) => r.status), [503, 503, 200]);
});

Deno.test("client: persistent 5xx and 429 become code 11 naming the server", async () => {
  await using kube = await kubeFixture();
  for (const status of [500, 503, 429]) {
    kube.server.clearFaults();
    kube.server.resetLog();
    kube.server.fault({ verb: "list", status });
    const error = await rejection(kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) }));
    assert.equal(error.code, ErrorCode.TryAgainLater, `HTTP ${status}`);
    assert.ok(error.message.includes(kube.server.url), error.message);
    assert.match(error.message, /5 attempts/);
    assert.match(error.message, status === 429 ? /throttled/ : new RegExp(`HTTP ${status}`));
    assert.equal(kube.server.requests.length, FAST_RETRY.maxAttempts);
  }
});

Deno.test("client: 429 Retry-After is honoured", async () => {
  await using kube = await kubeFixture();
  kube.server.fault({ verb: "list", status: 429, retryAfterSeconds: 1, times: 1 });
  const started = performance.now();
  await kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) });
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 950, `waited ${elapsed} ms, want >= 1 s`);
  assert.equal(kube.server.requests.length, 2);
});

Deno.test("client: a Retry-After beyond the deadline fails at once with code 11", async () => {
  await using kube = await kubeFixture();
  kube.server.fault({ verb: "list", status: 429, retryAfterSeconds: 30 });
  const started = performance.now();
  const error = await rejection(kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(2000) }));
  assert.ok(performance.now() - started < 1000);
  assert.equal(error.code, ErrorCode.TryAgainLater);
  assert.match(error.message, /throttled.*\(asked to retry after 30s\)$/);
  assert.equal(kube.server.requests.length, 1);
});

Deno.test("client: a dropped connection is retried; always dropped becomes code 11", async () => {
  await using kube = await kubeFixture();
  kube.server.fault({ verb: "list", reset: true, times: 1 });
  await kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) });
  assert.equal(kube.server.requests.length, 2);

  kube.server.fault({ verb: "list", reset: true });
  const error = await rejection(kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) }));
  assert.equal(error.code, ErrorCode.TryAgainLater);
  assert.match(error.message, /unreachable/);
  assert.ok(error.message.includes(kube.server.url), error.message);
});

Deno.test("client: connection refused becomes code 11 with the server URL and the cause", async () => {
  const server = new FakeApiServer();
  const dir = await Deno.makeTempDir();
  const kubeconfig = await server.writeKubeconfig(dir);
  await server.close();
  const api = await openKubeApi({ kind: "file", path: kubeconfig, origin: "test" }, {
    retry: FAST_RETRY,
  });
  try {
    const error = await rejection(api.list(BGP_PROVIDERS, { deadline: startDeadline(3000) }));
    assert.equal(error.code, ErrorCode.TryAgainLater);
    assert.ok(error.message.includes(server.url), error.message);
    assert.match(error.message, /Connection refused/);
  } finally {
    await api.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("client: a 5 s server delay under a 1 s budget fails in about 1 s with code 11", async () => {
  await using kube = await kubeFixture();
  kube.server.fault({ verb: "get", delayMs: 5000 });
  const started = performance.now();
  const error = await rejection(
    kube.api.get(BGP_VRF_INSTANCES, "a", { deadline: startDeadline(1000) }),
  );
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 990 && elapsed < 1500, `failed after ${elapsed} ms`);
  assert.equal(error.code, ErrorCode.TryAgainLater);
  assert.match(error.message, /within 1s: deadline exceeded/);
  assert.ok(error.message.includes(kube.server.url));
});

Deno.test("client: 401 names the rejected credentials, code 101", async () => {
  await using kube = await kubeFixture({ token: "the-real-token" });
  await kube.server.writeKubeconfig(kube.dir, { token: "a-wrong-token" });
  const api = await openKubeApi({ kind: "file", path: kube.kubeconfig, origin: "test" });
  try {
    const error = await rejection(api.list(BGP_PROVIDERS, { deadline: startDeadline(3000) }));
    assert.equal(error.code, ErrorCode.Kubernetes);
    assert.equal(error.status, 401);
    assert.match(
      error.message,
      /^unauthorized: Kubernetes API server http:\/\/127\.0\.0\.1:\d+ rejected/,
    );
  } finally {
    await api.close();
  }
});

Deno.test("client: 403 names the missing RBAC verb and resource", async () => {
  await using kube = await kubeFixture();
  kube.server.deny("create", "bgpvrfinstances");
  const error = await rejection(
    kube.api.create(BGP_VRF_INSTANCES, vrf("a"), { deadline: startDeadline(3000) }),
  );
  assert.equal(error.code, ErrorCode.Kubernetes);
  assert.equal(error.status, 403);
  assert.ok(
    error.message.startsWith('forbidden: needs "create" on bgpvrfinstances.bgp.miloapis.com'),
    error.message,
  );
  assert.match(
    error.message,
    /User "system:serviceaccount:galactic-system:galactic-cni" cannot create resource "bgpvrfinstances" in API group "bgp\.miloapis\.com" at the cluster scope/,
  );
  kube.server.deny("list", "bgpproviders");
  const list = await rejection(kube.api.list(BGP_PROVIDERS, { deadline: startDeadline(3000) }));
  assert.ok(
    list.message.startsWith('forbidden: needs "list" on bgpproviders.providers.bgp.miloapis.com'),
  );
});

Deno.test("client: 422 carries the server's validation message", async () => {
  await using kube = await kubeFixture();
  const error = await rejection(
    kube.api.create(BGP_VRF_INSTANCES, vrf("a", { routeDistinguisher: "42000000000:1" }), {
      deadline: startDeadline(3000),
    }),
  );
  assert.equal(error.code, ErrorCode.Kubernetes);
  assert.equal(error.status, 422);
  assert.match(
    error.message,
    // The CRD has no pattern on the RD: its format is a CEL rule on spec.
    /^create bgpvrfinstances\.bgp\.miloapis\.com "a" rejected as invalid: BGPVRFInstance\.bgp\.miloapis\.com "a" is invalid: spec: Invalid value: "object": routeDistinguisher must be in ASN:NN or IP:NN format/,
  );
  const tooLong = await rejection(
    kube.api.create(
      BGP_VRF_INSTANCES,
      vrf("a", { routeDistinguisher: "123.123.123.123:4294967295" }),
      {
        deadline: startDeadline(3000),
      },
    ),
  );
  assert.match(
    tooLong.message,
    /spec\.routeDistinguisher: Too long: may not be more than 21 bytes/,
  );
  const badName = await rejection(
    kube.api.create(BGP_VRF_INSTANCES, vrf("G0000jU"), { deadline: startDeadline(3000) }),
  );
  assert.match(
    badName.message,
    /metadata\.name: Invalid value: "G0000jU": a lowercase RFC 1123 subdomain/,
  );
});

Deno.test("client: a list of a resource the server does not serve says so", async () => {
  await using kube = await kubeFixture();
  const error = await rejection(
    kube.api.list({
      group: "bgp.miloapis.com",
      version: "v1",
      plural: "bgpnothings",
      kind: "BGPNothing",
    }, {
      deadline: startDeadline(3000),
    }),
  );
  assert.equal(error.code, ErrorCode.Kubernetes);
  assert.match(
    error.message,
    /\(the server does not serve bgpnothings\.bgp\.miloapis\.com\/v1: are the CRDs of cosmos d08f786\.\.80a1b50 installed\?\)/,
  );
});

Deno.test("client: discovery lists a group version's resources with their scope; unserved is undefined", async () => {
  await using kube = await kubeFixture();
  const deadline = startDeadline(3000);
  const resources = await kube.api.apiResources("providers.bgp.miloapis.com", "v1alpha1", {
    deadline,
  });
  assert.deepEqual(resources, [
    { name: "bgpproviders", kind: "BGPProvider", namespaced: false },
    { name: "bgpproviders/status", kind: "BGPProvider", namespaced: false },
  ]);
  assert.equal(await kube.api.apiResources("bgp.miloapis.com", "v2", { deadline }), undefined);
  assert.deepEqual(
    (await kube.api.apiGroups({ deadline })).get("bgp.miloapis.com"),
    ["v1alpha1"],
  );
});

Deno.test("client: an unreadable kubeconfig fails with code 4 naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/kubeconfig`, "clusters: [\n");
    await assert.rejects(
      openKubeApi({ kind: "file", path: `${dir}/kubeconfig`, origin: "test" }),
      (error: Error & { code?: number }) =>
        error.code === ErrorCode.InvalidEnvironment && error.message.includes(dir),
    );
    await Deno.writeTextFile(`${dir}/kubeconfig`, "apiVersion: v1\nkind: Config\nclusters: []\n");
    await assert.rejects(
      openKubeApi({ kind: "file", path: `${dir}/kubeconfig`, origin: "test" }),
      /has no "current-context"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A server answering every request with `answer`, and a kubeconfig for it (token auth, http). */
async function oddServer(
  answer: (request: Request) => Response,
): Promise<{ path: string; seen: Request[] } & AsyncDisposable> {
  const seen: Request[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen(): void {} }, (request) => {
    seen.push(request);
    return answer(request);
  });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/kubeconfig`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      clusters: [{
        name: "c",
        cluster: {
          server: `http://127.0.0.1:${server.addr.port}`,
          "insecure-skip-tls-verify": true,
        },
      }],
      users: [{ name: "u", user: { token: "odd-token" } }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  return {
    path,
    seen,
    async [Symbol.asyncDispose](): Promise<void> {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("client: a delete answered 200 without a body counts as deleted", async () => {
  await using odd = await oddServer(() => new Response(null, { status: 200 }));
  const api = await openKubeApi({ kind: "file", path: odd.path, origin: "test" });
  try {
    assert.equal(await api.delete(BGP_VRF_INSTANCES, "a", { deadline: startDeadline(3000) }), true);
    // Where an object is promised, nothing is an error, not an undefined object.
    const error = await rejection(api.create(BGP_VRF_INSTANCES, vrf("a"), {
      deadline: startDeadline(3000),
    }));
    assert.match(error.message, /the answer is not an object with metadata/);
  } finally {
    await api.close();
  }
});

Deno.test("client: a redirect is not followed (the token stays with the server), code 101", async () => {
  await using elsewhere = await oddServer(() => new Response("{}", { status: 200 }));
  const target = new URL(
    JSON.parse(await Deno.readTextFile(elsewhere.path)).clusters[0].cluster.server,
  );
  await using odd = await oddServer(() =>
    new Response(null, { status: 302, headers: { location: `${target.origin}/steal` } })
  );
  const api = await openKubeApi({ kind: "file", path: odd.path, origin: "test" });
  try {
    const error = await rejection(api.list(BGP_PROVIDERS, { deadline: startDeadline(3000) }));
    assert.equal(error.code, ErrorCode.Kubernetes);
    assert.equal(error.status, 302);
    assert.equal(elsewhere.seen.length, 0, "nothing reached the Location");
  } finally {
    await api.close();
  }
});

Deno.test("client: a body that stops mid-way is cut off by the deadline, code 11", async () => {
  await using odd = await oddServer(() =>
    new Response(
      new ReadableStream({
        start(controller): void {
          controller.enqueue(new TextEncoder().encode('{"metadata":{"name":'));
        },
      }),
      { headers: { "content-type": "application/json" } },
    )
  );
  const api = await openKubeApi({ kind: "file", path: odd.path, origin: "test" }, {
    retry: FAST_RETRY,
  });
  try {
    const error = await api.get(BGP_VRF_INSTANCES, "x", { deadline: startDeadline(300) }).then(
      () => assert.fail("a body that never ends cannot answer"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof KubeApiError, String(error));
    assert.equal(error.code, ErrorCode.TryAgainLater);
    assert.match(error.message, /deadline exceeded/);
  } finally {
    await api.close();
  }
  assert.equal(odd.seen.length, 1, "not retried past the deadline");
});

Deno.test("client: a server URL with a path prefix keeps it; names and label selectors arrive intact", async () => {
  const seen: URL[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen(): void {} }, (request) => {
    seen.push(new URL(request.url));
    return Response.json({ apiVersion: "v1", kind: "List", metadata: {}, items: [] });
  });
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/kubeconfig`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        clusters: [{
          name: "c",
          cluster: {
            server: `http://127.0.0.1:${server.addr.port}/k8s/cluster-1/`,
            "insecure-skip-tls-verify": true,
          },
        }],
        users: [{ name: "u", user: { token: "t" } }],
        contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
        "current-context": "x",
      }),
    );
    const api = await openKubeApi({ kind: "file", path, origin: "test" }, { retry: FAST_RETRY });
    const selector = "bgp.miloapis.com/node in (n1,n-2),!gone";
    try {
      await api.list(BGP_PROVIDERS, { deadline: startDeadline(5000), labelSelector: selector });
    } finally {
      await api.close();
    }
    assert.equal(
      seen[0]!.pathname,
      "/k8s/cluster-1/apis/providers.bgp.miloapis.com/v1alpha1/bgpproviders",
    );
    assert.equal(seen[0]!.searchParams.get("labelSelector"), selector);
  } finally {
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
