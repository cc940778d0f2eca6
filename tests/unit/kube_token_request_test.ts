/**
 * TokenRequest: `KubeApi.requestToken` through the real API client, and
 * the fake API server held to the real endpoint's contract (request shape,
 * validation, RBAC with resourceNames, expiry and revocation as 401).
 */

import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../../lib/cni/errors.ts";
import { BGP_PROVIDERS, KubeApiError } from "../../lib/kube/api.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { openKubeApi } from "../../lib/kube/client.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";
import { FAKE_API_AUDIENCE } from "../support/fake_tokens.ts";
import type { FakeApiServer } from "../support/fake_api_server.ts";
import { FAST_RETRY, kubeFixture } from "../support/kube_fixtures.ts";
import { requestPluginToken } from "../../lib/agent/plugin_credentials.ts";

const NS = "galactic-system";
const SA = "galactic-cni";

async function post(server: FakeApiServer, account: string, body: unknown): Promise<Response> {
  return await fetch(`${server.url}/api/v1/namespaces/${NS}/serviceaccounts/${account}/token`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.token}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Lists BGPProviders with `token` as the bearer: the HTTP status. */
async function statusWith(server: FakeApiServer, token: string): Promise<number> {
  const response = await fetch(
    `${server.url}/apis/providers.bgp.miloapis.com/v1alpha1/bgpproviders`,
    {
      headers: { authorization: `Bearer ${token}` },
    },
  );
  await response.body?.cancel();
  return response.status;
}

const REQUEST = {
  apiVersion: "authentication.k8s.io/v1",
  kind: "TokenRequest",
  spec: { expirationSeconds: 3600, audiences: [] },
};

Deno.test("requestToken: the client issues a token of galactic-cni that the server accepts until it expires", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  const before = kube.server.tokens.now();
  const issued = await kube.api.requestToken(NS, SA, { expirationSeconds: 3600 }, {
    deadline: startDeadline(5000),
  });
  const lifetime = issued.expirationTimestamp.getTime() - before;
  assert.ok(lifetime > 3590_000 && lifetime <= 3600_000, `lifetime ${lifetime} ms`);
  assert.deepEqual(
    kube.server.tokens.issued().map((t) => [t.account, t.seconds, t.audiences]),
    [[`${NS}/${SA}`, 3600, [FAKE_API_AUDIENCE]]],
  );
  assert.deepEqual(kube.server.counts("serviceaccounts/token"), { create: 1 });

  // The issued token works as a kubeconfig's bearer token, through the client.
  const kubeconfig = await kube.server.writeKubeconfigFile(`${kube.dir}/issued`, {
    token: issued.token,
  });
  const plugin = await openKubeApi({ kind: "file", path: kubeconfig, origin: "test" }, {
    retry: FAST_RETRY,
  });
  try {
    assert.deepEqual(await plugin.list(BGP_PROVIDERS, { deadline: startDeadline(5000) }), []);
    kube.server.tokens.advance(3600_000);
    const error = await plugin.list(BGP_PROVIDERS, { deadline: startDeadline(5000) }).then(
      () => assert.fail("an expired token must be refused"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof KubeApiError);
    assert.equal(error.status, 401);
    assert.equal(error.code, ErrorCode.Kubernetes);
    assert.ok(!error.message.includes(issued.token), "the token must not be in the message");
  } finally {
    await plugin.close();
  }
});

Deno.test("requestToken: a refusal is a KubeApiError naming serviceaccounts/token, never a token", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  const deadline = startDeadline(5000);
  const short = await kube.api.requestToken(NS, SA, { expirationSeconds: 599 }, { deadline })
    .then(() => assert.fail("599 s must be refused"), (e: unknown) => e);
  assert.ok(short instanceof KubeApiError);
  assert.equal(short.status, 422);
  assert.equal(short.code, ErrorCode.Kubernetes);
  assert.match(short.message, /create serviceaccounts\/token "galactic-cni"/);
  assert.match(short.message, /less than 10 minutes/);

  const other = await kube.api.requestToken(NS, "galactic-agent", { expirationSeconds: 3600 }, {
    deadline,
  }).then(() => assert.fail("only galactic-cni is in resourceNames"), (e: unknown) => e);
  assert.ok(other instanceof KubeApiError);
  assert.equal(other.status, 403);
  assert.match(other.message, /forbidden/);
  // The hint names the namespaced Role that grants it, not the plugin's ClusterRole.
  assert.match(
    other.message,
    /Role: create on serviceaccounts\/token with resourceNames \[galactic-agent\]/,
  );
  assert.doesNotMatch(other.message, /plugin's ClusterRole/);
  assert.deepEqual(kube.server.tokens.issued(), []);
});

Deno.test("requestToken: a 201 without a token or expiry is an error, not an empty token", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  for (
    const status of [{}, { token: "", expirationTimestamp: "2030-01-01T00:00:00Z" }, { token: "t" }]
  ) {
    kube.server.fault({
      verb: "create",
      resource: "serviceaccounts/token",
      times: 1,
      status: 201,
      body: JSON.stringify({ ...REQUEST, status }),
    });
    const error = await kube.api.requestToken(NS, SA, { expirationSeconds: 3600 }, {
      deadline: startDeadline(5000),
    }).then(() => assert.fail(`${JSON.stringify(status)} must be refused`), (e: unknown) => e);
    assert.ok(error instanceof CniError, String(error));
    assert.equal(error.code, ErrorCode.Kubernetes);
    assert.match(error.message, /ServiceAccount galactic-system\/galactic-cni .* returned no/);
  }
});

Deno.test("fake TokenRequest: request shape validated as the real API does", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC, maxTokenSeconds: 7200 });
  const { server } = kube;
  const cases: [unknown, number, RegExp][] = [
    [{ ...REQUEST, kind: "Pod" }, 400, /does not match the expected authentication.k8s.io\/v1/],
    [{ ...REQUEST, apiVersion: "v1" }, 400, /does not match/],
    [{ ...REQUEST, spec: { expirationSeconds: 599 } }, 422, /less than 10 minutes/],
    [{ ...REQUEST, spec: { expirationSeconds: 2 ** 32 + 1 } }, 422, /larger than 2\^32/],
    [{ ...REQUEST, spec: { audiences: "api" } }, 400, /audiences/],
    [
      { ...REQUEST, spec: { boundObjectRef: { kind: "Pod", apiVersion: "v1", name: "p" } } },
      404,
      /pods "p" not found/,
    ],
    ["not an object", 400, /not a JSON object/],
    // The body's name and namespace, when given, must be the URL's (real: 422 Invalid).
    [
      { ...REQUEST, metadata: { name: "galactic-agent" } },
      422,
      /metadata\.name: Invalid value: "galactic-agent": must match the service account name/,
    ],
    [
      { ...REQUEST, metadata: { name: SA, namespace: "kube-system" } },
      422,
      /metadata\.namespace: Invalid value: "kube-system": must match/,
    ],
    // Only core Pods, Secrets and Nodes can be bound (real: 400 BadRequest).
    [
      { ...REQUEST, spec: { boundObjectRef: { kind: "ConfigMap", apiVersion: "v1", name: "c" } } },
      400,
      /cannot bind token to object of type \/v1, Kind=ConfigMap/,
    ],
  ];
  for (const [body, status, message] of cases) {
    const response = await post(server, SA, body);
    const answer = await response.json();
    assert.equal(response.status, status, JSON.stringify(body));
    assert.equal(answer.kind, "Status");
    assert.match(answer.message, message);
  }
  const unknown = await post(server, "nobody", REQUEST);
  assert.equal(unknown.status, 403, "RBAC (resourceNames) is checked before the account exists");
  await unknown.body?.cancel();
  // The agent's Role grants it in galactic-system only: the same account name elsewhere is 403.
  const elsewhere = await fetch(
    `${server.url}/api/v1/namespaces/kube-system/serviceaccounts/${SA}/token`,
    { method: "POST", headers: { authorization: `Bearer ${server.token}` }, body: "{}" },
  );
  assert.equal(elsewhere.status, 403, "a Role's namespace bounds it");
  await elsewhere.body?.cancel();
  assert.deepEqual(server.tokens.issued(), []);
  const named = await post(server, SA, { ...REQUEST, metadata: { name: SA, namespace: NS } });
  assert.equal(named.status, 201, "the URL's own name and namespace are accepted");
  await named.body?.cancel();

  // kind and apiVersion may be left out; expirationSeconds defaults to 3600;
  // a longer request is cut to the server's maximum; audiences default.
  const defaulted = await post(server, SA, { spec: {} });
  assert.equal(defaulted.status, 201);
  const body = await defaulted.json();
  assert.equal(body.kind, "TokenRequest");
  assert.equal(body.spec.expirationSeconds, 3600);
  assert.deepEqual(body.spec.audiences, [FAKE_API_AUDIENCE]);
  assert.match(body.status.expirationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  assert.equal(body.status.token.split(".").length, 3, "shaped like a JWT");
  const long = await (await post(server, SA, { ...REQUEST, spec: { expirationSeconds: 86400 } }))
    .json();
  assert.equal(long.spec.expirationSeconds, 7200);
  assert.equal(
    Date.parse(long.status.expirationTimestamp) - Date.parse(long.metadata.creationTimestamp),
    7200_000,
  );
});

Deno.test("fake TokenRequest: an expired, revoked or foreign-audience token is 401; unknown accounts 404", async () => {
  await using kube = await kubeFixture({
    rbac: [
      ...AGENT_RBAC.filter((r) => r.resource !== "serviceaccounts/token"),
      { apiGroup: "", resource: "serviceaccounts/token", verbs: ["create"] },
    ],
  });
  const { server } = kube;
  const issue = async (spec: Record<string, unknown>): Promise<string> => {
    const response = await post(server, SA, { ...REQUEST, spec });
    assert.equal(response.status, 201);
    return (await response.json()).status.token;
  };
  const missing = await post(server, "nobody", REQUEST);
  assert.equal(missing.status, 404);
  assert.match((await missing.json()).message, /serviceaccounts "nobody" not found/);

  const token = await issue({ expirationSeconds: 600 });
  const foreign = await issue({ expirationSeconds: 600, audiences: ["vault"] });
  assert.equal(await statusWith(server, token), 200);
  assert.equal(await statusWith(server, foreign), 401, "not issued for the API server");
  assert.equal(await statusWith(server, "made-up"), 401);
  server.tokens.advance(590_000);
  assert.equal(await statusWith(server, token), 200, "valid until its expirationTimestamp");
  server.tokens.advance(10_000);
  assert.equal(server.tokens.state(token), "expired");
  assert.equal(await statusWith(server, token), 401);

  const fresh = await issue({ expirationSeconds: 3600 });
  assert.equal(await statusWith(server, fresh), 200);
  assert.equal(server.tokens.revoke(`${NS}/${SA}`), 3, "every token of the account");
  assert.equal(await statusWith(server, fresh), 401);
  assert.equal(await statusWith(server, server.token), 200, "the static token is unaffected");
});

Deno.test("the agent's own token file (kubelet-rotated) is read again at once when the server answers 401", async () => {
  await using kube = await kubeFixture({
    rbac: [
      ...AGENT_RBAC.filter((r) => r.resource !== "serviceaccounts/token"),
      { apiGroup: "", resource: "serviceaccounts/token", verbs: ["create"] },
    ],
  });
  const { server } = kube;
  const issue = async (seconds: number): Promise<string> => {
    const response = await post(server, "galactic-agent", {
      ...REQUEST,
      spec: { expirationSeconds: seconds },
    });
    assert.equal(response.status, 201);
    return (await response.json()).status.token;
  };
  // The pod's projected token, as the kubelet keeps it in a file.
  const tokenFile = `${kube.dir}/token`;
  const kubeconfig = `${kube.dir}/agent`;
  await Deno.writeTextFile(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      `clusters: [{name: c, cluster: {server: "${server.url}", insecure-skip-tls-verify: true}}]`,
      `users: [{name: u, user: {tokenFile: "${tokenFile}"}}]`,
      "contexts: [{name: x, context: {cluster: c, user: u}}]",
      "current-context: x",
    ].join("\n"),
  );
  const old = await issue(600);
  await Deno.writeTextFile(tokenFile, old);
  const agent = await openKubeApi({ kind: "file", path: kubeconfig, origin: "test" }, {
    retry: FAST_RETRY,
  });
  try {
    const deadline = () => ({ deadline: startDeadline(5000) });
    assert.deepEqual(await agent.list(BGP_PROVIDERS, deadline()), []);
    // The kubelet wrote a new token; the old one expires before the agent's next minutely read.
    await Deno.writeTextFile(tokenFile, await issue(3600));
    server.tokens.advance(700_000);
    assert.equal(server.tokens.state(old), "expired");
    server.resetLog();
    assert.deepEqual(await agent.list(BGP_PROVIDERS, deadline()), []);
    assert.deepEqual(server.requests.map((r) => r.status), [401, 200], "one retry, new token");
    const issued = await agent.requestToken(NS, SA, { expirationSeconds: 3600 }, deadline());
    assert.equal(server.tokens.state(issued.token), "valid");

    // A 401 the file cannot cure (same token) is answered as is, without a loop.
    server.tokens.revoke("galactic-system/galactic-agent");
    server.resetLog();
    const refused = await agent.list(BGP_PROVIDERS, deadline()).then(
      () => assert.fail("a revoked token must be refused"),
      (e: unknown) => e,
    );
    assert.ok(refused instanceof KubeApiError && refused.status === 401);
    assert.deepEqual(server.requests.map((r) => r.status), [401]);
  } finally {
    await agent.close();
  }
});

Deno.test("requestPluginToken: a lifetime the server shortened is taken from its expirationTimestamp, not the request", async () => {
  // --service-account-max-token-expiration=20m: the real server cuts 3600 s to 1200 s.
  await using kube = await kubeFixture({ rbac: AGENT_RBAC, maxTokenSeconds: 1200 });
  const clock = { now: () => kube.server.tokens.now(), sleep: () => Promise.resolve() };
  const issued = await requestPluginToken(kube.api, {
    namespace: NS,
    serviceAccount: SA,
    lifetimeSeconds: 3600,
  }, { timeoutMs: 5000, clock });
  const lifetime = issued.expiresAt - issued.issuedAt;
  // Whole seconds on the wire (RFC 3339): within a second of the granted 1200 s.
  assert.ok(lifetime > 1_198_000 && lifetime <= 1_200_000, `lifetime ${lifetime} ms`);
  assert.equal(kube.server.tokens.issued()[0]!.seconds, 1200);
});
