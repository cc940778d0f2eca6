/**
 * Node-owned settings (lib/config/node_config.ts): paths and identity come
 * from the node configuration file; a network configuration (a tenant's NAD)
 * that sets one is refused with code 7 naming the field, unless the node
 * allows overrides; the file's own errors never quote its contents.
 */

import assert from "node:assert/strict";
import { CniError } from "../../lib/cni/errors.ts";
import {
  loadNodeConfig,
  NODE_CONFIG_ENV,
  NODE_DEFAULTS,
  NODE_FIELDS,
  type NodeConfig,
  parseNetworkConfig,
  parseNodeConfig,
} from "../../lib/config/mod.ts";
import { requireRootOwned } from "../../lib/state/ownership.ts";

const BASE = {
  cniVersion: "1.0.0",
  name: "tenant-a",
  type: "galactic",
  vpc: "jU",
  vpcattachment: "G",
  srv6_locator: "fc00:0:1::/48",
};

const SECRET = "s3cr3t-TOKEN-value";

/** A value a tenant could put in each node-owned field. */
const TENANT_VALUES: Record<typeof NODE_FIELDS[number], string> = {
  state_dir: "/etc",
  log_file: "/etc/shadow",
  agent_socket: "/tmp/evil.sock",
  kubeconfig: "/etc/kubernetes/admin.conf",
  node_name: "other-node",
};

function codeAndMessage(error: unknown): { code: number; message: string } {
  assert.ok(error instanceof CniError, `expected CniError, got ${error}`);
  return { code: error.code, message: error.message };
}

async function withFile(
  text: string,
  body: (path: string) => void | Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "galactic-node-config-" });
  try {
    const path = `${dir}/node.json`;
    await Deno.writeTextFile(path, text, { mode: 0o644 });
    await body(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const ALLOWING: NodeConfig = { ...NODE_DEFAULTS, allowConfigOverrides: true, origin: "test" };

Deno.test("a network configuration setting a node-owned field is refused with code 7 naming it", async (t) => {
  for (const field of NODE_FIELDS) {
    await t.step(field, () => {
      assert.throws(() => parseNetworkConfig({ ...BASE, [field]: TENANT_VALUES[field] }), (e) => {
        const { code, message } = codeAndMessage(e);
        assert.equal(code, 7);
        assert.match(message, new RegExp(`"${field}" is a node setting`));
        assert.match(message, /node configuration \(defaults\)/);
        return true;
      });
    });
  }
});

Deno.test("node-owned values come from the node configuration", () => {
  const node = parseNodeConfig(
    JSON.stringify({
      state_dir: "/var/lib/g",
      log_file: "/var/log/g.log",
      agent_socket: "/run/g/agent.sock",
      kubeconfig: "/etc/g/kubeconfig",
      node_name: `${"a".repeat(63)}.${"b".repeat(63)}.${"c".repeat(63)}.${"d".repeat(61)}`,
    }),
    "/etc/g/node.json",
  );
  const config = parseNetworkConfig(BASE, node);
  assert.equal(config.stateDir, "/var/lib/g");
  assert.equal(config.logFile, "/var/log/g.log");
  assert.equal(config.agentSocket, "/run/g/agent.sock");
  assert.equal(config.kubeconfig, "/etc/g/kubeconfig");
  assert.equal(config.nodeName?.length, 253);
  assert.equal(node.allowConfigOverrides, false);
});

Deno.test("with allow_config_overrides the network configuration may set them, still validated", async (t) => {
  const config = parseNetworkConfig(
    { ...BASE, state_dir: "/srv/state", node_name: "n1" },
    ALLOWING,
  );
  assert.equal(config.stateDir, "/srv/state");
  assert.equal(config.nodeName, "n1");
  const invalid: [string, unknown][] = [
    ["state_dir", "var/lib/galactic"],
    ["state_dir", "/var/lib/../../etc"],
    ["state_dir", "/var/./lib"],
    ["log_file", "galactic.log"],
    ["log_file", ""],
    ["agent_socket", 5],
    ["kubeconfig", "kubeconfig"],
    ["node_name", "Node-A"],
    ["node_name", "node_a"],
    ["node_name", "node-"],
  ];
  for (const [field, value] of invalid) {
    await t.step(`${field} ${JSON.stringify(value)}`, () => {
      assert.throws(() => parseNetworkConfig({ ...BASE, [field]: value }, ALLOWING), (e) => {
        const { code, message } = codeAndMessage(e);
        assert.equal(code, 7);
        assert.ok(message.includes(`"${field}"`), message);
        return true;
      });
    });
  }
});

Deno.test("loadNodeConfig reads the file named by GALACTIC_NODE_CONFIG", () =>
  withFile(JSON.stringify({ state_dir: "/srv/g", allow_config_overrides: true }), (path) => {
    const node = loadNodeConfig({ [NODE_CONFIG_ENV]: path });
    assert.equal(node.stateDir, "/srv/g");
    assert.equal(node.agentSocket, NODE_DEFAULTS.agentSocket);
    assert.equal(node.allowConfigOverrides, true);
    assert.equal(node.origin, path);
  }));

Deno.test("a named node configuration that is missing or relative is an error", () => {
  assert.throws(() => loadNodeConfig({ [NODE_CONFIG_ENV]: "/nonexistent/node.json" }), (e) => {
    const { code, message } = codeAndMessage(e);
    assert.equal(code, 5);
    assert.match(message, /\/nonexistent\/node\.json.*no such file/);
    return true;
  });
  assert.throws(() => loadNodeConfig({ [NODE_CONFIG_ENV]: "node.json" }), (e) => {
    const { code, message } = codeAndMessage(e);
    assert.equal(code, 4);
    assert.match(message, /GALACTIC_NODE_CONFIG: must be an absolute path/);
    return true;
  });
});

Deno.test("node configuration errors name the file and field, never its contents", async (t) => {
  const cases: [string, string, RegExp][] = [
    ["not JSON", `{"kubeconfig": "/x", token: ${SECRET}`, /is not valid JSON$/],
    ["not an object", JSON.stringify([SECRET]), /must be a JSON object$/],
    ["unknown field", JSON.stringify({ [SECRET.slice(0, 6)]: SECRET }), /unknown field "s3cr3t"$/],
    ["bad path", JSON.stringify({ state_dir: `/a/../${SECRET}` }), /field "state_dir" must not/],
    ["bad flag", JSON.stringify({ allow_config_overrides: SECRET }), /allow_config_overrides/],
    ["oversized", `{"node_name": "${SECRET.repeat(10_000)}"}`, /larger than 65536 bytes$/],
  ];
  for (const [label, text, expected] of cases) {
    await t.step(label, () =>
      withFile(text, (path) => {
        assert.throws(() => loadNodeConfig({ [NODE_CONFIG_ENV]: path }), (e) => {
          const { code, message } = codeAndMessage(e);
          assert.equal(code, 5);
          assert.ok(message.includes(path), message);
          assert.match(message, expected);
          assert.ok(!message.includes(SECRET), `secret leaked: ${message}`);
          return true;
        });
      }));
  }
});

Deno.test("running as root, files others own or may write are refused", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const info = await Deno.stat(dir);
    const mine = { ...info, uid: 0, mode: 0o40755 };
    requireRootOwned(dir, mine, { what: "state dir", uid: 0 });
    assert.throws(
      () => requireRootOwned(dir, { ...mine, uid: 1000 }, { what: "state dir", uid: 0 }),
      /refusing state dir .*: owned by uid 1000, not root/,
    );
    assert.throws(
      () => requireRootOwned(dir, { ...mine, mode: 0o40777 }, { what: "state dir", uid: 0 }),
      /writable by group or others \(mode 0777\)/,
    );
    assert.throws(
      () => requireRootOwned(dir, { ...mine, mode: 0o40775 }, { what: "state dir", uid: 0 }),
      /writable by group or others/,
    );
    // Unprivileged processes cannot be tricked into using root's authority.
    requireRootOwned(dir, { ...mine, uid: 1000, mode: 0o40777 }, { what: "x", uid: 1000 });
  } finally {
    await Deno.remove(dir);
  }
});
