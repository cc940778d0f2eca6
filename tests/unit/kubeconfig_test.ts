import assert from "node:assert/strict";
import { ErrorCode } from "../../lib/cni/errors.ts";
import { resolveKubeconfig, resolveNodeName } from "../../lib/kube/kubeconfig.ts";

async function withDirs(
  test: (dirs: { config: string; account: string; root: string }) => Promise<void> | void,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "galactic-kubeconfig-" });
  const dirs = { root, config: `${root}/galactic.d`, account: `${root}/serviceaccount` };
  await Deno.mkdir(dirs.config);
  await Deno.mkdir(dirs.account);
  try {
    await test(dirs);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function codeOf(error: unknown): number | undefined {
  return (error as { code?: number }).code;
}

Deno.test("kubeconfig: the node configuration's wins and must exist", () =>
  withDirs(async ({ root, config }) => {
    await Deno.writeTextFile(`${root}/explicit`, "");
    await Deno.writeTextFile(`${config}/kubeconfig`, "");
    const env = { KUBECONFIG: `${config}/kubeconfig` };
    assert.deepEqual(
      resolveKubeconfig({ kubeconfig: `${root}/explicit` }, { env, configDir: config }),
      {
        kind: "file",
        path: `${root}/explicit`,
        origin: 'node configuration "kubeconfig"',
      },
    );
    assert.throws(
      () => resolveKubeconfig({ kubeconfig: `${root}/missing` }, { env, configDir: config }),
      (error: Error) =>
        codeOf(error) === ErrorCode.IoFailure && error.message.includes(`${root}/missing`),
    );
  }));

Deno.test("kubeconfig: env KUBECONFIG (first existing entry) before the installer's file", () =>
  withDirs(async ({ root, config }) => {
    await Deno.writeTextFile(`${root}/from-env`, "");
    await Deno.writeTextFile(`${config}/kubeconfig`, "");
    const env = { KUBECONFIG: `${root}/nope:${root}/from-env` };
    const source = resolveKubeconfig({}, { env, configDir: config });
    assert.deepEqual(source, { kind: "file", path: `${root}/from-env`, origin: "env KUBECONFIG" });
    const fallback = resolveKubeconfig({}, {
      env: { KUBECONFIG: `${root}/nope` },
      configDir: config,
    });
    assert.equal(fallback.kind === "file" && fallback.path, `${config}/kubeconfig`);
  }));

Deno.test("kubeconfig: ~/.kube/config only for operator commands, after KUBECONFIG", () =>
  withDirs(async ({ root, config }) => {
    await Deno.mkdir(`${root}/.kube`);
    await Deno.writeTextFile(`${root}/.kube/config`, "");
    await Deno.writeTextFile(`${config}/kubeconfig`, "");
    const env = { HOME: root };
    const operator = resolveKubeconfig({}, { env, configDir: config, homeConfig: true });
    assert.equal(operator.kind === "file" && operator.path, `${root}/.kube/config`);
    const plugin = resolveKubeconfig({}, { env, configDir: config });
    assert.equal(plugin.kind === "file" && plugin.path, `${config}/kubeconfig`);
  }));

Deno.test("kubeconfig: in-cluster service account when nothing else exists", () =>
  withDirs(async ({ config, account }) => {
    await Deno.writeTextFile(`${account}/token`, "t");
    await Deno.writeTextFile(`${account}/ca.crt`, "c");
    const env = { KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "6443" };
    assert.deepEqual(
      resolveKubeconfig({}, { env, configDir: config, serviceAccountDir: account }),
      {
        kind: "in-cluster",
        server: "https://[fd00::1]:6443",
        tokenFile: `${account}/token`,
        caFile: `${account}/ca.crt`,
        origin: "in-cluster service account",
      },
    );
  }));

Deno.test("kubeconfig: nothing found lists everything tried (code 4)", () =>
  withDirs(({ config, account }) => {
    const env = { KUBECONFIG: "/nonexistent/kc", KUBERNETES_SERVICE_HOST: "10.0.0.1" };
    assert.throws(
      () => resolveKubeconfig({}, { env, configDir: config, serviceAccountDir: account }),
      (error: Error) => {
        assert.equal(codeOf(error), ErrorCode.InvalidEnvironment);
        assert.match(error.message, /no kubeconfig/);
        assert.match(error.message, /node configuration "kubeconfig" \(unset\)/);
        assert.match(error.message, /env KUBECONFIG="\/nonexistent\/kc" \(no such file\)/);
        assert.ok(error.message.includes(`${config}/kubeconfig (no such file)`));
        assert.ok(
          error.message.includes(`in-cluster service account (${account}/token: no such file)`),
        );
        return true;
      },
    );
    assert.throws(
      () => resolveKubeconfig({}, { env: {}, configDir: config, serviceAccountDir: account }),
      /KUBERNETES_SERVICE_HOST unset/,
    );
  }));

Deno.test("node name: config field, then NODE_NAME, then the installer's file, then the host name", () =>
  withDirs(async ({ config }) => {
    const hostname = (): string => "Worker-1.Example.COM";
    await Deno.writeTextFile(`${config}/node-name`, "from-file\n");
    const options = { env: { NODE_NAME: "from-env" }, configDir: config, hostname };
    assert.equal(resolveNodeName({ nodeName: "from-config" }, options), "from-config");
    assert.equal(resolveNodeName({}, options), "from-env");
    assert.equal(resolveNodeName({}, { ...options, env: {} }), "from-file");
    await Deno.remove(`${config}/node-name`);
    assert.equal(resolveNodeName({}, { ...options, env: {} }), "worker-1.example.com");
  }));

Deno.test("node name: an invalid value is an error naming its source", () =>
  withDirs(async ({ config }) => {
    assert.throws(
      () => resolveNodeName({}, { env: { NODE_NAME: "Bad_Name" }, configDir: config }),
      (error: Error) =>
        codeOf(error) === ErrorCode.InvalidEnvironment &&
        /"Bad_Name" from env NODE_NAME/.test(error.message),
    );
    await Deno.writeTextFile(`${config}/node-name`, "under_score");
    assert.throws(
      () => resolveNodeName({}, { env: {}, configDir: config }),
      /from .*node-name is not/,
    );
    await Deno.remove(`${config}/node-name`);
    assert.throws(
      () => resolveNodeName({}, { env: {}, configDir: config, hostname: () => "host_name" }),
      /"host_name" from the host name/,
    );
  }));
