import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../../lib/cni/errors.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import {
  BGP_INSTANCES,
  BGP_PROVIDERS,
  BGP_VRF_INSTANCES,
  KubeApiError,
  type KubeObject,
} from "../../lib/kube/api.ts";
import { openKubeApi, openRawApi } from "../../lib/kube/client.ts";
import { loadCredentials } from "../../lib/kube/credentials.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";
import { FakeApiServer } from "../support/fake_api_server.ts";
import { FAST_RETRY, instance, provider, vrfInstance } from "../support/kube_fixtures.ts";
import { generateTestPki, startTlsFront, type TestPki } from "../support/tls_front.ts";

/** A secret planted in files and fields: it must never appear in a message. */
const SECRET = "s3cr3t-planted-value";

function base64(text: string): string {
  return btoa(text);
}

/** Writes a kubeconfig (as JSON, which is YAML) with these cluster and user fields. */
async function kubeconfig(
  dir: string,
  cluster: Record<string, unknown>,
  user: Record<string, unknown>,
): Promise<string> {
  const path = `${dir}/kubeconfig-${crypto.randomUUID()}`;
  await Deno.writeTextFile(
    path,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [{ name: "c", cluster }],
      users: [{ name: "u", user }],
      contexts: [{ name: "x", context: { cluster: "c", user: "u" } }],
      "current-context": "x",
    }),
  );
  return path;
}

let pkiOnce: Promise<TestPki> | undefined;
/** One throwaway PKI for the file's tests, removed when the process ends. */
function pki(): Promise<TestPki> {
  pkiOnce ??= generateTestPki().then((generated) => {
    globalThis.addEventListener("unload", () => {
      Deno.removeSync(generated.dir, { recursive: true });
    });
    return generated;
  });
  return pkiOnce;
}

async function loadError(path: string): Promise<CniError> {
  try {
    await loadCredentials({ kind: "file", path, origin: "test" });
  } catch (error) {
    assert.ok(error instanceof CniError, String(error));
    assert.ok(!error.message.includes(SECRET), `message leaks the secret: ${error.message}`);
    return error;
  }
  assert.fail("expected the kubeconfig to be refused");
}

Deno.test("credentials: a bearer token over TLS verified with the kubeconfig's CA (data and file)", async () => {
  const p = await pki();
  await using server = new FakeApiServer();
  await using front = await startTlsFront(p, { upstream: server.url });
  server.seed(provider("p1", "n1"));
  const ca = await Deno.readTextFile(p.caCert);
  for (
    const cluster of [
      { server: front.url, "certificate-authority-data": base64(ca) },
      // Relative to the kubeconfig's directory, as in kubectl.
      { server: front.url, "certificate-authority": "ca.crt" },
    ]
  ) {
    const path = await kubeconfig(p.dir, cluster, { token: server.token });
    const api = await openKubeApi({ kind: "file", path, origin: "test" }, { retry: FAST_RETRY });
    try {
      const items = await api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) });
      assert.deepEqual(items.map((o) => o.metadata.name), ["p1"]);
    } finally {
      await api.close();
    }
  }
  assert.ok(server.requests.every((r) => r.status === 200));
});

Deno.test("credentials: a client certificate authenticates (files and data); without it the handshake fails", async () => {
  const p = await pki();
  await using server = new FakeApiServer({ authenticatedByTls: true });
  await using front = await startTlsFront(p, { upstream: server.url, requireClientCert: true });
  const ca = { server: front.url, "certificate-authority": p.caCert };
  const users = [
    { "client-certificate": p.clientCert, "client-key": p.clientKey },
    {
      "client-certificate-data": base64(await Deno.readTextFile(p.clientCert)),
      "client-key-data": base64(await Deno.readTextFile(p.clientKey)),
    },
  ];
  for (const user of users) {
    const path = await kubeconfig(p.dir, ca, user);
    const api = await openKubeApi({ kind: "file", path, origin: "test" }, { retry: FAST_RETRY });
    try {
      const vrf = vrfInstance("a", { labels: { "galactic.io/vpc": "4d2" } }) as KubeObject;
      await api.create(BGP_VRF_INSTANCES, vrf, { deadline: startDeadline(5000) });
      assert.equal(
        await api.delete(BGP_VRF_INSTANCES, "a", { deadline: startDeadline(5000) }),
        true,
      );
    } finally {
      await api.close();
    }
  }
  // A token alone is no client certificate: the front refuses the handshake,
  // which no retry fixes (code 101, one attempt).
  const tokenOnly = await kubeconfig(p.dir, ca, { token: server.token });
  const api = await openKubeApi({ kind: "file", path: tokenOnly, origin: "test" }, {
    retry: FAST_RETRY,
  });
  try {
    const error = await api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) }).then(
      () => assert.fail("the handshake should fail"),
      (e) => e,
    );
    assert.ok(error instanceof KubeApiError, String(error));
    assert.equal(error.code, ErrorCode.Kubernetes);
    assert.match(error.message, /unreachable .*CertificateRequired/);
    assert.doesNotMatch(error.message, /attempts/);
  } finally {
    await api.close();
  }
});

Deno.test("credentials: a server certificate from another CA is refused, not retried", async () => {
  const p = await pki();
  await using server = new FakeApiServer();
  await using front = await startTlsFront(p, { upstream: server.url });
  const path = await kubeconfig(p.dir, {
    server: front.url,
    "certificate-authority": p.otherCaCert,
  }, { token: server.token });
  const api = await openKubeApi({ kind: "file", path, origin: "test" }, { retry: FAST_RETRY });
  try {
    const error = await api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) }).then(
      () => assert.fail("the certificate should be refused"),
      (e) => e,
    );
    assert.equal(error.code, ErrorCode.Kubernetes);
    assert.match(error.message, /invalid peer certificate: UnknownIssuer/);
    assert.equal(server.requests.length, 0);
  } finally {
    await api.close();
  }
});

Deno.test("credentials: the in-cluster service account (token file, CA) over TLS; a watch streams", async () => {
  const p = await pki();
  await using server = new FakeApiServer({ rbac: AGENT_RBAC });
  await using front = await startTlsFront(p, { upstream: server.url });
  server.seed(instance("i1", { selector: { matchLabels: { "bgp.miloapis.com/node": "n1" } } }));
  const tokenFile = `${p.dir}/token`;
  await Deno.writeTextFile(tokenFile, `${server.token}\n`);
  const raw = await openRawApi({
    kind: "in-cluster",
    server: front.url,
    tokenFile,
    caFile: p.caCert,
    origin: "in-cluster service account",
  });
  const stop = new AbortController();
  try {
    const path = `/apis/${BGP_INSTANCES.group}/${BGP_INSTANCES.version}/${BGP_INSTANCES.plural}`;
    const response = await raw.get(`${path}?watch=true&timeoutSeconds=30`, stop.signal);
    assert.equal(response.status, 200);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const first = await reader.read();
    assert.match(first.value ?? "", /^\{"type":"ADDED","object":.*"name":"i1"/);
    // The TLS connection dropped mid-stream: the read fails at once.
    front.dropAll();
    await assert.rejects(async () => {
      while (!(await reader.read()).done) { /* drain */ }
    }, /error reading a body from connection/);
  } finally {
    stop.abort();
    await raw.close();
  }
});

Deno.test("credentials: what a CNI node credential cannot use is refused naming the field", async () => {
  const p = await pki();
  const https = { server: "https://10.0.0.1:6443", "certificate-authority": p.caCert };
  const cases: [Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    [https, { exec: { command: "get-token", args: [SECRET] } }, /user "u": "exec" is set/],
    [
      https,
      { "auth-provider": { name: "oidc", config: { "id-token": SECRET } } },
      /"auth-provider"/,
    ],
    [https, { username: "admin", password: SECRET }, /"username" is set: basic authentication/],
    [https, { token: SECRET, as: "admin" }, /"as" is set: impersonation/],
    [
      { ...https, "insecure-skip-tls-verify": true },
      { token: SECRET },
      /"insecure-skip-tls-verify" is not supported for an https server/,
    ],
    [
      { server: "http://10.0.0.1:8080" },
      { token: SECRET },
      /plain http.*"insecure-skip-tls-verify: true"/,
    ],
    [
      { server: `http://admin:${SECRET}@10.0.0.1:8080` },
      { token: "t" },
      /"server" has user info/,
    ],
    [
      { server: `https://admin:${SECRET}@10.0.0.1:6443`, "insecure-skip-tls-verify": true },
      { token: "t" },
      /"server" has user info/,
    ],
    [{ ...https, "proxy-url": "http://proxy:3128" }, { token: SECRET }, /"proxy-url" is set/],
    [{ ...https, "tls-server-name": "api" }, { token: SECRET }, /"tls-server-name" is set/],
    [https, {}, /user "u": has no credentials/],
    [
      https,
      { "client-certificate": p.clientCert, token: SECRET },
      /has "client-certificate" but no "client-key"/,
    ],
    [
      https,
      { "client-certificate-data": `${SECRET}!`, "client-key": p.clientKey },
      /"client-certificate-data" is not base64/,
    ],
    [
      https,
      { "client-certificate-data": base64(SECRET), "client-key": p.clientKey },
      /"client-certificate-data" holds no PEM/,
    ],
    [{ server: "https://10.0.0.1:6443", "certificate-authority": `${p.dir}/missing` }, {
      token: SECRET,
    }, /cluster "c" "certificate-authority" ".*\/missing": no such file/],
    [https, { token: `${SECRET} with spaces` }, /the token is not one line/],
  ];
  for (const [cluster, user, expected] of cases) {
    const error = await loadError(await kubeconfig(p.dir, cluster, user));
    assert.equal(error.code, ErrorCode.InvalidEnvironment, error.message);
    assert.match(error.message, /^failed to load kubeconfig \S+ \(test\): /);
    assert.match(error.message, expected);
  }
});

Deno.test("credentials: files named by the kubeconfig are never quoted, nor the YAML", async () => {
  const p = await pki();
  const notAKey = `${p.dir}/not-a-key`;
  await Deno.writeTextFile(notAKey, `token: ${SECRET}\n`);
  const error = await loadError(
    await kubeconfig(p.dir, { server: "https://10.0.0.1:6443" }, {
      "client-certificate": p.clientCert,
      "client-key": notAKey,
    }),
  );
  assert.match(error.message, /"client-key" holds no PEM/);
  const broken = `${p.dir}/broken`;
  await Deno.writeTextFile(broken, `users:\n- name: u\n  user:\n    token: "${SECRET}\n  - x: [\n`);
  const yaml = await loadError(broken);
  assert.match(yaml.message, /invalid YAML at line \d+/);
  const badPem = await kubeconfig(p.dir, { server: "https://10.0.0.1:6443" }, {
    "client-certificate": p.clientCert,
    "client-key-data": base64(
      `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`,
    ),
  });
  const unusable = await openKubeApi({ kind: "file", path: badPem, origin: "test" }).then(
    () => assert.fail("an unusable key should be refused"),
    (e) => e,
  );
  assert.equal(unusable.code, ErrorCode.InvalidEnvironment);
  assert.match(unusable.message, /not usable PEM/);
  assert.ok(!unusable.message.includes(SECRET));
});

Deno.test("credentials: with token and tokenFile, the file's token is sent; the token only while the file is unreadable (client-go)", async () => {
  await using server = new FakeApiServer();
  const dir = await Deno.makeTempDir({ prefix: "galactic-creds-" });
  try {
    const tokenFile = `${dir}/token`;
    await Deno.writeTextFile(tokenFile, `${server.token}\n`);
    const plain = { server: server.url, "insecure-skip-tls-verify": true };
    const statusWith = async (user: Record<string, unknown>): Promise<number> => {
      const path = await kubeconfig(dir, plain, user);
      const api = await openKubeApi({ kind: "file", path, origin: "test" }, { retry: FAST_RETRY });
      try {
        await api.list(BGP_PROVIDERS, { deadline: startDeadline(5000) });
        return 200;
      } catch (error) {
        assert.ok(error instanceof KubeApiError, String(error));
        return error.status ?? 0;
      } finally {
        await api.close();
      }
    };
    // A stale inline token beside a rotated file: the file wins.
    assert.equal(await statusWith({ token: "stale-inline-token", tokenFile: "token" }), 200);
    // The file cannot be read: the inline token is the fallback, not an error.
    assert.equal(await statusWith({ token: server.token, tokenFile: "missing" }), 200);
    assert.equal(await statusWith({ token: "stale-inline-token", tokenFile: "missing" }), 401);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("credentials: a missing or unknown current context is named, like client-go's 'context was not found'", async () => {
  const p = await pki();
  const base = {
    clusters: [{ name: "c", cluster: { server: "https://10.0.0.1:6443" } }],
    users: [{ name: "u", user: { token: SECRET } }],
    contexts: [
      { name: "x", context: { cluster: "c", user: "u" } },
      { name: "no-cluster", context: { user: "u" } },
      { name: "gone", context: { cluster: "deleted", user: "u" } },
    ],
  };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{}, /: has no "current-context"$/],
    [{ "current-context": "prod" }, /"current-context" "prod": names no context of the file/],
    [{ "current-context": "no-cluster" }, /context "no-cluster": has no "cluster"/],
    [{ "current-context": "gone" }, /context "gone": names cluster "deleted", not in the file/],
    // Two users named "u" (the second with another token): refused, as client-go does.
    [
      { "current-context": "x", users: [...base.users, { name: "u", user: { token: "other" } }] },
      /users: name "u" more than once/,
    ],
  ];
  for (const [extra, expected] of cases) {
    const path = `${p.dir}/kubeconfig-${crypto.randomUUID()}`;
    await Deno.writeTextFile(path, JSON.stringify({ ...base, ...extra }));
    const error = await loadError(path);
    assert.equal(error.code, ErrorCode.InvalidEnvironment, error.message);
    assert.match(error.message, expected);
  }
});

Deno.test("credentials: only the kubeconfig's CA is trusted, not Deno's default roots besides (as client-go)", async () => {
  const p = await pki();
  await using server = new FakeApiServer();
  await using front = await startTlsFront(p, { upstream: server.url });
  const probe = async (ca: string): Promise<Record<string, unknown>> => {
    const path = await kubeconfig(p.dir, { server: front.url, "certificate-authority": ca }, {
      token: server.token,
    });
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--cached-only",
        "--no-prompt",
        "--allow-all",
        "--config",
        new URL("../../deno.json", import.meta.url).pathname,
        new URL("../support/tls_roots_probe.ts", import.meta.url).pathname,
        path,
      ],
      // The server's CA is among the process's default roots (the system store).
      env: { DENO_TLS_CA_STORE: "system", SSL_CERT_FILE: p.caCert },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
    return JSON.parse(new TextDecoder().decode(output.stdout));
  };
  // Control: the server's own CA named by the kubeconfig is accepted, and the
  // process's children still see the operator's DENO_TLS_CA_STORE.
  assert.deepEqual(await probe(p.caCert), { outcome: "accepted", storeAfter: "system" });
  // Another CA named: that the server's CA is among the default roots does not help.
  const refused = await probe(p.otherCaCert);
  assert.equal(refused.outcome, "refused");
  assert.match(String(refused.message), /invalid peer certificate: UnknownIssuer/);
  assert.equal(server.requests.length, 1, "only the control's request reached the server");
});
