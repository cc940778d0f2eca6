import assert from "node:assert/strict";
import { join } from "node:path";
import { Command } from "commander";
import { parse } from "yaml";
import {
  formatInstallReport,
  type InstallAction,
  InstallError,
  type InstallOptions,
  installPlugin,
  type InstallReport,
  resolveServerUrl,
} from "../../lib/install/mod.ts";
import { registerInstallCommand } from "../../lib/cli/install_command.ts";
import { NODE_DEFAULTS, parseNodeConfig } from "../../lib/config/mod.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { FakeApiServer } from "../support/fake_api_server.ts";

const CA_PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

interface Fixture {
  root: string;
  options: InstallOptions;
  /** What the fixture's TokenRequest stand-in issues next (a string, or an Error it throws). */
  token: { next: string | Error; servers: string[] };
  binDir: string;
  configDir: string;
  saDir: string;
  source: string;
}

/** A temp tree: a fake binary, a ServiceAccount dir, empty host dirs (not created yet). */
async function fixture(overrides: Partial<InstallOptions> = {}): Promise<Fixture> {
  const root = await Deno.makeTempDir({ prefix: "galactic-install-" });
  const saDir = join(root, "sa");
  await Deno.mkdir(saDir);
  await Deno.writeTextFile(join(saDir, "token"), "tok-1\n");
  await Deno.writeTextFile(join(saDir, "ca.crt"), CA_PEM);
  const source = join(root, "galactic-build");
  await Deno.writeFile(source, fakeExecutable(3 * (1 << 20) + 17)); // spans several copy chunks
  const binDir = join(root, "host", "opt", "cni", "bin");
  const configDir = join(root, "host", "etc", "cni", "net.d", "galactic.d");
  const token: Fixture["token"] = { next: "tok-1", servers: [] };
  return {
    root,
    token,
    binDir,
    configDir,
    saDir,
    source,
    options: {
      source,
      cniBinDir: binDir,
      configDir,
      nodeName: "node-a",
      serviceAccountDir: saDir,
      pluginToken: (server) => {
        token.servers.push(server);
        return token.next instanceof Error
          ? Promise.reject(token.next)
          : Promise.resolve(token.next);
      },
      env: envOf({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }),
      ...overrides,
    },
  };
}

function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(bytes.subarray(i, i + 65536));
  return bytes;
}

/** Random bytes behind an ELF header: what the installer accepts as a compiled binary. */
function fakeExecutable(n: number): Uint8Array {
  const bytes = randomBytes(n);
  bytes.set([0x7f, 0x45, 0x4c, 0x46]);
  return bytes;
}

function envOf(values: Record<string, string>): (name: string) => string | undefined {
  return (name) => values[name];
}

function actions(report: InstallReport): Record<string, InstallAction> {
  return Object.fromEntries(report.files.map((file) => [file.role + ":" + file.path, file.action]));
}

function actionOf(report: InstallReport, role: string): InstallAction | undefined {
  return report.files.find((file) => file.role === role)?.action;
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

async function modeOf(path: string): Promise<number> {
  const info = await Deno.stat(path);
  return (info.mode ?? 0) & 0o7777;
}

async function cleanup(f: Fixture): Promise<void> {
  await Deno.remove(f.root, { recursive: true });
}

Deno.test("fresh install writes binary, kubeconfig and node-name and creates directories", async () => {
  const f = await fixture();
  try {
    const report = await installPlugin(f.options);
    assert.equal(report.changed, true);
    assert.equal(report.server, "https://10.96.0.1:443");
    assert.deepEqual(report.files.map((file) => [file.role, file.action]), [
      ["kubeconfig", "created"],
      ["node-name", "created"],
      ["node-config", "created"],
      ["plugin", "created"],
    ]);
    assert.deepEqual(
      await Deno.readFile(join(f.binDir, "galactic")),
      await Deno.readFile(f.source),
    );
    assert.equal(await Deno.readTextFile(join(f.configDir, "node-name")), "node-a\n");
    // The node configuration the plugin reads (paths keep their defaults).
    const node = parseNodeConfig(
      await Deno.readTextFile(join(f.configDir, "node.json")),
      join(f.configDir, "node.json"),
    );
    assert.equal(node.nodeName, "node-a");
    assert.equal(node.allowConfigOverrides, false);
    assert.equal(node.stateDir, NODE_DEFAULTS.stateDir);

    // JSON, so the plugin reads it without loading a YAML parser.
    const kubeconfig = JSON.parse(await Deno.readTextFile(join(f.configDir, "kubeconfig")));
    assert.equal(kubeconfig.kind, "Config");
    assert.equal(kubeconfig["current-context"], "galactic");
    assert.equal(kubeconfig.clusters[0].cluster.server, "https://10.96.0.1:443");
    assert.equal(atob(kubeconfig.clusters[0].cluster["certificate-authority-data"]), CA_PEM);
    assert.equal(kubeconfig.users[0].user.token, "tok-1");
    assert.deepEqual(kubeconfig.contexts[0].context, {
      cluster: kubeconfig.clusters[0].name,
      user: kubeconfig.users[0].name,
    });
    assert.match(formatInstallReport(report), /4 of 4 files changed/);
  } finally {
    await cleanup(f);
  }
});

Deno.test("second run changes nothing and leaves the files untouched", async () => {
  const f = await fixture();
  try {
    await installPlugin(f.options);
    const before = await Promise.all(
      [join(f.binDir, "galactic"), join(f.configDir, "kubeconfig"), join(f.configDir, "node-name")]
        .map((path) => Deno.stat(path)),
    );
    const report = await installPlugin(f.options);
    assert.equal(report.changed, false);
    assert.ok(report.files.every((file) => file.action === "unchanged"), JSON.stringify(report));
    const after = await Promise.all(
      [join(f.binDir, "galactic"), join(f.configDir, "kubeconfig"), join(f.configDir, "node-name")]
        .map((path) => Deno.stat(path)),
    );
    assert.deepEqual(after.map((info) => info.ino), before.map((info) => info.ino));
    assert.match(formatInstallReport(report), /0 of 4 files changed/);
  } finally {
    await cleanup(f);
  }
});

Deno.test("a rotated token rewrites only the kubeconfig", async () => {
  const f = await fixture();
  try {
    await installPlugin(f.options);
    f.token.next = "tok-2";
    const report = await installPlugin(f.options);
    assert.equal(actionOf(report, "kubeconfig"), "updated");
    assert.equal(actionOf(report, "node-name"), "unchanged");
    assert.equal(actionOf(report, "plugin"), "unchanged");
    const kubeconfig = parse(await Deno.readTextFile(join(f.configDir, "kubeconfig")));
    assert.equal(kubeconfig.users[0].user.token, "tok-2");
  } finally {
    await cleanup(f);
  }
});

Deno.test("a new binary and a new node name are rewritten", async () => {
  const f = await fixture();
  try {
    await installPlugin(f.options);
    await Deno.writeFile(f.source, fakeExecutable(1000));
    const report = await installPlugin({ ...f.options, nodeName: "node-b" });
    assert.equal(actionOf(report, "plugin"), "updated");
    assert.equal(actionOf(report, "node-name"), "updated");
    assert.equal(actionOf(report, "node-config"), "updated");
    assert.equal(actionOf(report, "kubeconfig"), "unchanged");
    assert.deepEqual(
      await Deno.readFile(join(f.binDir, "galactic")),
      await Deno.readFile(f.source),
    );
    assert.equal(await Deno.readTextFile(join(f.configDir, "node-name")), "node-b\n");
  } finally {
    await cleanup(f);
  }
});

Deno.test("file modes: binary 0755, kubeconfig 0600, node-name 0644; wrong modes are repaired", async () => {
  const f = await fixture();
  try {
    await installPlugin(f.options);
    assert.equal(await modeOf(join(f.binDir, "galactic")), 0o755);
    assert.equal(await modeOf(join(f.configDir, "kubeconfig")), 0o600);
    assert.equal(await modeOf(join(f.configDir, "node-name")), 0o644);
    assert.equal(await modeOf(join(f.configDir, "node.json")), 0o644);

    await Deno.chmod(join(f.configDir, "kubeconfig"), 0o644);
    await Deno.chmod(join(f.binDir, "galactic"), 0o644);
    const report = await installPlugin(f.options);
    assert.equal(actionOf(report, "kubeconfig"), "updated");
    assert.equal(actionOf(report, "plugin"), "updated");
    assert.equal(await modeOf(join(f.configDir, "kubeconfig")), 0o600);
    assert.equal(await modeOf(join(f.binDir, "galactic")), 0o755);
  } finally {
    await cleanup(f);
  }
});

Deno.test("no temporary files are left behind, after success or a failed rename", async () => {
  const f = await fixture();
  try {
    await installPlugin(f.options);
    f.token.next = "tok-2";
    await installPlugin(f.options);
    assert.deepEqual(await listDir(f.binDir), ["galactic"]);
    assert.deepEqual(await listDir(f.configDir), ["kubeconfig", "node-name", "node.json"]);

    // A directory where the binary should go makes the final rename fail.
    await Deno.remove(join(f.binDir, "galactic"));
    await Deno.mkdir(join(f.binDir, "galactic", "blocker"), { recursive: true });
    await assert.rejects(
      () => installPlugin(f.options),
      (error: unknown) =>
        error instanceof InstallError && error.message.includes(join(f.binDir, "galactic")),
    );
    assert.deepEqual(await listDir(f.binDir), ["galactic"]);
  } finally {
    await cleanup(f);
  }
});

Deno.test("a failed token request fails the install and writes nothing", async () => {
  const f = await fixture();
  try {
    f.token.next = new Error("token request refused");
    await assert.rejects(() => installPlugin(f.options), /token request refused/);
    await assert.rejects(() => Deno.stat(join(f.root, "host")), Deno.errors.NotFound);
    assert.deepEqual(
      f.token.servers,
      ["https://10.96.0.1:443"],
      "asked for the kubeconfig's server",
    );
  } finally {
    await cleanup(f);
  }
});

Deno.test("an unusable token, a missing CA or a missing source fail naming the path", async () => {
  const f = await fixture();
  try {
    for (const token of ["", "two words", "x".repeat(20_000)]) {
      f.token.next = token;
      await assert.rejects(
        () => installPlugin(f.options),
        (error: unknown) =>
          error instanceof InstallError && /not a bearer token/.test(error.message) &&
          (token === "" || !error.message.includes(token)),
      );
    }
    await assert.rejects(() => Deno.stat(join(f.root, "host")), Deno.errors.NotFound);
    f.token.next = "tok";
    await Deno.remove(join(f.saDir, "ca.crt"));
    await assert.rejects(() => installPlugin(f.options), /cluster CA .*sa\/ca\.crt/);
    await Deno.writeTextFile(join(f.saDir, "ca.crt"), CA_PEM);
    await assert.rejects(
      () => installPlugin({ ...f.options, source: join(f.root, "nope") }),
      /plugin binary .*\/nope/,
    );
  } finally {
    await cleanup(f);
  }
});

Deno.test("an invalid node name is refused", async () => {
  const f = await fixture({ nodeName: "Node_A" });
  try {
    await assert.rejects(() => installPlugin(f.options), /invalid node name "Node_A"/);
  } finally {
    await cleanup(f);
  }
});

Deno.test("server URL: explicit wins, IPv6 service host is bracketed, neither fails", () => {
  assert.equal(
    resolveServerUrl(
      undefined,
      envOf({ KUBERNETES_SERVICE_HOST: "fd00:10:96::1", KUBERNETES_SERVICE_PORT: "443" }),
    ),
    "https://[fd00:10:96::1]:443",
  );
  assert.equal(
    resolveServerUrl(
      undefined,
      envOf({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "6443" }),
    ),
    "https://10.96.0.1:6443",
  );
  assert.equal(
    resolveServerUrl(undefined, envOf({ KUBERNETES_SERVICE_HOST: "10.96.0.1" })),
    "https://10.96.0.1:443",
  );
  assert.equal(
    resolveServerUrl(
      "https://api.example.test:6443/",
      envOf({ KUBERNETES_SERVICE_HOST: "10.96.0.1" }),
    ),
    "https://api.example.test:6443",
  );
  assert.throws(() => resolveServerUrl(undefined, envOf({})), /KUBERNETES_SERVICE_HOST is not set/);
  assert.throws(
    () => resolveServerUrl("not a url", envOf({})),
    /invalid API server URL "not a url"/,
  );
  assert.throws(
    () =>
      resolveServerUrl(
        undefined,
        envOf({ KUBERNETES_SERVICE_HOST: "h", KUBERNETES_SERVICE_PORT: "99999" }),
      ),
    /KUBERNETES_SERVICE_PORT "99999"/,
  );
});

Deno.test("IPv6 service host ends up bracketed in the written kubeconfig", async () => {
  const f = await fixture({
    env: envOf({ KUBERNETES_SERVICE_HOST: "fd00:10:96::1", KUBERNETES_SERVICE_PORT: "443" }),
  });
  try {
    const report = await installPlugin(f.options);
    assert.equal(report.server, "https://[fd00:10:96::1]:443");
    const kubeconfig = parse(await Deno.readTextFile(join(f.configDir, "kubeconfig")));
    assert.equal(kubeconfig.clusters[0].cluster.server, "https://[fd00:10:96::1]:443");
  } finally {
    await cleanup(f);
  }
});

Deno.test("delegates are installed when absent, kept when the host has its own, replaced on request", async () => {
  const f = await fixture();
  try {
    const delegateDir = join(f.root, "delegates");
    await Deno.mkdir(delegateDir);
    const hostDevice = join(delegateDir, "host-device");
    const staticIpam = join(delegateDir, "static");
    await Deno.writeTextFile(hostDevice, "#!/bin/sh\necho host-device\n");
    await Deno.writeTextFile(staticIpam, "#!/bin/sh\necho static\n");
    await Deno.mkdir(f.binDir, { recursive: true });
    await Deno.writeTextFile(join(f.binDir, "static"), "host's own static");

    const options = { ...f.options, delegates: [hostDevice, staticIpam] };
    let report = await installPlugin(options);
    assert.deepEqual(actions(report), {
      [`kubeconfig:${join(f.configDir, "kubeconfig")}`]: "created",
      [`node-name:${join(f.configDir, "node-name")}`]: "created",
      [`node-config:${join(f.configDir, "node.json")}`]: "created",
      [`delegate:${join(f.binDir, "host-device")}`]: "created",
      [`delegate:${join(f.binDir, "static")}`]: "kept",
      [`plugin:${join(f.binDir, "galactic")}`]: "created",
    });
    assert.equal(await modeOf(join(f.binDir, "host-device")), 0o755);
    assert.equal(await Deno.readTextFile(join(f.binDir, "static")), "host's own static");

    report = await installPlugin(options);
    assert.equal(report.changed, false);
    assert.equal(report.files.find((file) => file.path.endsWith("/static"))?.action, "kept");

    report = await installPlugin({ ...options, replaceDelegates: true });
    assert.equal(report.files.find((file) => file.path.endsWith("/static"))?.action, "updated");
    assert.equal(await Deno.readTextFile(join(f.binDir, "static")), "#!/bin/sh\necho static\n");
    assert.deepEqual(await listDir(f.binDir), ["galactic", "host-device", "static"]);

    await assert.rejects(
      () => installPlugin({ ...options, delegates: [join(delegateDir, "bridge")] }),
      /delegate plugin .*delegates\/bridge/,
    );
  } finally {
    await cleanup(f);
  }
});

function program(): Command {
  const root = new Command("galactic").exitOverride();
  root.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerInstallCommand(root);
  root.commands.forEach((command) => command.exitOverride());
  return root;
}

Deno.test("CLI: galactic install defines the documented flags and defaults", () => {
  const install = program().commands.find((command) => command.name() === "install");
  assert.ok(install);
  const flags = Object.fromEntries(install.options.map((option) => [option.long, option]));
  assert.deepEqual(Object.keys(flags).sort(), [
    "--cni-bin-dir",
    "--config-dir",
    "--delegate",
    "--json",
    "--kubeconfig",
    "--node-name",
    "--plugin-service-account",
    "--plugin-token-lifetime",
    "--replace-delegates",
    "--server",
    "--service-account-dir",
    "--source",
    "--timeout",
  ]);
  assert.deepEqual(flags["--plugin-service-account"]?.defaultValue, {
    namespace: "galactic-system",
    name: "galactic-cni",
  });
  assert.equal(flags["--plugin-token-lifetime"]?.defaultValue, 3600);
  assert.equal(flags["--cni-bin-dir"]?.defaultValue, "/opt/cni/bin");
  assert.equal(flags["--config-dir"]?.defaultValue, "/etc/cni/net.d/galactic.d");
  assert.equal(
    flags["--service-account-dir"]?.defaultValue,
    "/var/run/secrets/kubernetes.io/serviceaccount",
  );
  assert.equal(flags["--node-name"]?.envVar, "NODE_NAME");
  assert.equal(flags["--node-name"]?.mandatory, true);
});

Deno.test("CLI: galactic install writes a kubeconfig with a fresh expiring token of galactic-cni, issued as this pod", async () => {
  const f = await fixture();
  await using api = new FakeApiServer({ rbac: AGENT_RBAC });
  try {
    // The pod's own (agent) identity; in a pod, its projected service account token.
    const podKubeconfig = await api.writeKubeconfigFile(join(f.root, "pod-kubeconfig"));
    const delegate = join(f.root, "host-device");
    await Deno.writeTextFile(delegate, "hd");
    const args = [
      "install",
      "--cni-bin-dir",
      f.binDir,
      "--config-dir",
      f.configDir,
      "--node-name",
      "node-cli",
      "--service-account-dir",
      f.saDir,
      "--server",
      api.url,
      "--source",
      f.source,
      "--delegate",
      delegate,
      "--plugin-token-lifetime",
      "1800",
      "--kubeconfig",
      podKubeconfig,
    ];
    await program().parseAsync(args, { from: "user" });
    assert.equal(await Deno.readTextFile(join(f.configDir, "node-name")), "node-cli\n");
    assert.deepEqual(await listDir(f.binDir), ["galactic", "host-device"]);
    const kubeconfig = parse(await Deno.readTextFile(join(f.configDir, "kubeconfig")));
    assert.equal(kubeconfig.clusters[0].cluster.server, api.url);
    const token = kubeconfig.users[0].user.token;
    assert.equal(api.tokens.state(token), "valid", "an issued token, not the pod's own");
    assert.deepEqual(
      api.tokens.issued().map((t) => [t.account, t.seconds]),
      [["galactic-system/galactic-cni", 1800]],
    );
    assert.equal((await Deno.stat(join(f.configDir, "kubeconfig"))).mode! & 0o777, 0o600);

    // A second start gets a new token (the old one is left to expire).
    await program().parseAsync(args, { from: "user" });
    const again = parse(await Deno.readTextFile(join(f.configDir, "kubeconfig")));
    assert.notEqual(again.users[0].user.token, token);
    assert.equal(api.tokens.issued().length, 2);

    // Refused (here: the pod's account may not create tokens): the install
    // fails, the message has no token, the kubeconfig in place is untouched.
    api.deny("create", "serviceaccounts/token");
    const before = await Deno.readTextFile(join(f.configDir, "kubeconfig"));
    const error = await program().parseAsync(args, { from: "user" }).then(
      () => assert.fail("a refused token request must fail the install"),
      (e: unknown) => e as Error,
    );
    assert.match(error.message, /forbidden.*serviceaccounts\/token/);
    assert.ok(!error.message.includes(api.token) && !error.message.includes(token));
    assert.equal(await Deno.readTextFile(join(f.configDir, "kubeconfig")), before);
  } finally {
    await cleanup(f);
  }
});

Deno.test("a source that is not a self-contained executable is refused before anything is written", async () => {
  const launcher = new URL("../../bin/galactic", import.meta.url).pathname;
  const f = await fixture();
  try {
    const empty = join(f.root, "empty");
    await Deno.writeFile(empty, new Uint8Array());
    for (const [source, kind] of [[launcher, /script/], [empty, /not an ELF/]] as const) {
      await assert.rejects(
        () => installPlugin({ ...f.options, source }),
        (error: unknown) =>
          error instanceof InstallError && error.message.includes(source) &&
          kind.test(error.message) && error.message.includes("deno task compile"),
      );
    }
    assert.equal(await statOrNull(f.binDir), null);
    assert.equal(await statOrNull(f.configDir), null);
  } finally {
    await cleanup(f);
  }
});

async function statOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.stat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}
