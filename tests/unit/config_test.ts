/**
 * Network configuration (SPEC §3): a valid configuration parses to typed
 * values; every invalid value is refused with CNI code 7 (6 for content that
 * is not a JSON object, 1 for an unsupported cniVersion) and a message that
 * names the field and the bad value.
 */

import assert from "node:assert/strict";
import { CniError } from "../../lib/cni/errors.ts";
import {
  decodeConfig,
  DEFAULTS,
  type NetworkConfig,
  parseNetworkConfig,
  parseNodeConfig,
} from "../../lib/config/mod.ts";

/** CNI spec well-known codes (SPEC §2). */
const INCOMPATIBLE_VERSION = 1;
const DECODE_FAILURE = 6;
const INVALID_CONFIG = 7;

/** A minimal valid configuration. */
const BASE: Readonly<Record<string, unknown>> = {
  cniVersion: "1.0.0",
  name: "tenant-a",
  type: "galactic",
  vpc: "jU",
  vpcattachment: "G",
  srv6_locator: "fc00:0:1::/48",
};

/** Marks a key to delete from {@linkcode BASE}. */
const REMOVE = Symbol("remove");

function configWith(patch: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = structuredClone({ ...BASE });
  for (const [key, value] of Object.entries(patch)) {
    if (value === REMOVE) delete out[key];
    else out[key] = value;
  }
  return out;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** Asserts `fn` throws a CniError with `code` whose message names every field and the value. */
function assertCniError(
  fn: () => unknown,
  code: number,
  fields: readonly string[],
  value?: string,
): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof CniError, `expected CniError, got ${error}`);
    assert.equal(error.code, code, `code of: ${error.message}`);
    for (const field of fields) {
      // A whole word: "vpc" must not be satisfied by "vpcattachment".
      assert.match(
        error.message,
        new RegExp(`(^|[^\\w])${escapeRegExp(field)}($|[^\\w])`),
        "names the field",
      );
    }
    if (value !== undefined) {
      assert.ok(
        error.message.includes(value),
        `message ${JSON.stringify(error.message)} shows ${value}`,
      );
    }
    return true;
  });
}

// ---------------------------------------------------------------------------
// Valid configurations

Deno.test("a full valid configuration parses to typed values", () => {
  const input = {
    cniVersion: "1.1.0",
    name: "tenant-a.net_1",
    type: "galactic",
    vpc: "jU",
    vpcattachment: "G",
    srv6_locator: "fc00:0:1::/48",
    mtu: 1400,
    terminations: [
      { network: "10.1.0.0/16", via: "10.0.0.1" },
      { network: "2001:DB8:1::/48" },
      { network: "2001:db8:2::/48", via: "2001:DB8::0001" },
      { network: "192.168.7.0/24" },
    ],
    ipam: {
      type: "static",
      addresses: [{ address: "10.0.0.2/24", gateway: "10.0.0.1" }, { address: "2001:db8::2/64" }],
      routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }, { dst: "2001:db8:ffff::/48" }],
    },
    log_level: "debug",
    vrf_table_min: 2000,
    vrf_table_max: 3000,
    api_timeout_seconds: 5,
    prevResult: { cniVersion: "1.1.0", ips: [] },
  };
  const snapshot = structuredClone(input);
  // The node's settings come from its own file (node_config_test.ts covers it).
  const node = parseNodeConfig(
    JSON.stringify({
      kubeconfig: "/etc/cni/net.d/galactic.d/kubeconfig",
      node_name: "node-a",
      log_file: "/var/log/galactic.log",
      state_dir: "/var/lib/galactic-test",
      agent_socket: "/run/galactic-test/agent.sock",
    }),
    "/etc/cni/net.d/galactic.d/node.json",
  );
  const config: NetworkConfig = parseNetworkConfig(input, node);

  assert.equal(config.cniVersion, "1.1.0");
  assert.equal(config.name, "tenant-a.net_1");
  // jU = 45·62 + 30 = 2820 = 0xb04; G = 16.
  assert.deepEqual(config.vpc, { text: "0000000jU", value: 2820n, hex: "b04" });
  assert.deepEqual(config.attachment, { text: "00G", value: 16n, hex: "10" });
  assert.deepEqual(config.locator, { family: 6, value: 0xfc00_0000_0001n << 80n, length: 48 });
  assert.equal(config.mtu, 1400);
  assert.deepEqual(config.terminations, [
    { network: "10.1.0.0/16", family: 4, via: "10.0.0.1" },
    { network: "2001:db8:1::/48", family: 6 },
    { network: "2001:db8:2::/48", family: 6, via: "2001:db8::1" },
    { network: "192.168.7.0/24", family: 4 },
  ]);
  assert.deepEqual(config.ipam, input.ipam, "ipam is handed on unchanged");
  assert.equal(config.kubeconfig, "/etc/cni/net.d/galactic.d/kubeconfig");
  assert.equal(config.nodeName, "node-a");
  assert.equal(config.logFile, "/var/log/galactic.log");
  assert.equal(config.logLevel, "debug");
  assert.equal(config.stateDir, "/var/lib/galactic-test");
  assert.equal(config.agentSocket, "/run/galactic-test/agent.sock");
  assert.equal(config.vrfTableMin, 2000);
  assert.equal(config.vrfTableMax, 3000);
  assert.equal(config.apiTimeoutSeconds, 5);
  assert.deepEqual(config.raw, snapshot, "raw keeps prevResult and every runtime key");
  assert.deepEqual(input, snapshot, "the input is not mutated");
});

Deno.test("a minimal configuration gets the documented defaults", () => {
  const config = parseNetworkConfig(configWith({}));
  assert.equal(config.cniVersion, "1.0.0");
  assert.deepEqual(config.terminations, []);
  assert.equal(config.mtu, undefined);
  assert.equal(config.ipam, undefined);
  assert.equal(config.kubeconfig, undefined);
  assert.equal(config.nodeName, undefined);
  assert.equal(config.logFile, undefined);
  assert.equal(config.logLevel, DEFAULTS.logLevel);
  assert.equal(config.stateDir, DEFAULTS.stateDir);
  assert.equal(config.agentSocket, DEFAULTS.agentSocket);
  assert.equal(config.vrfTableMin, DEFAULTS.vrfTableMin);
  assert.equal(config.vrfTableMax, DEFAULTS.vrfTableMax);
  assert.equal(config.apiTimeoutSeconds, DEFAULTS.apiTimeoutSeconds);
  // Independent of the chosen numbers, the defaults must respect the SPEC:
  for (const reserved of [0, 253, 254, 255]) {
    assert.ok(
      reserved < config.vrfTableMin || reserved > config.vrfTableMax,
      `default table range must not include ${reserved}`,
    );
  }
  assert.ok(config.vrfTableMin >= 1 && config.vrfTableMin <= config.vrfTableMax);
  assert.ok(config.stateDir.startsWith("/"), "state dir is absolute");
  assert.ok(
    config.apiTimeoutSeconds >= 1 && config.apiTimeoutSeconds <= 60,
    "seconds, not minutes",
  );
  assert.ok(["error", "warn", "info", "debug"].includes(config.logLevel));
});

Deno.test("boundary values that are valid are accepted", async (t) => {
  const cases: [string, Record<string, unknown>, (c: NetworkConfig) => void][] = [
    [
      "largest vpc 2^48-1",
      { vpc: "1HvWXNAa7" },
      (c) => assert.equal(c.vpc.value, (1n << 48n) - 1n),
    ],
    ["9-char vpc with leading zeros", { vpc: "00000000A" }, (c) => assert.equal(c.vpc.value, 10n)],
    ["lowercase vpc differs from uppercase", { vpc: "a" }, (c) => assert.equal(c.vpc.value, 36n)],
    [
      "largest attachment 2^16-1",
      { vpcattachment: "H31" },
      (c) => assert.equal(c.attachment.value, 65535n),
    ],
    ["locator /64", { srv6_locator: "fc00:0:1:2::/64" }, (c) => assert.equal(c.locator.length, 64)],
    ["locator /16", { srv6_locator: "fc00::/16" }, (c) => assert.equal(c.locator.length, 16)],
    ["mtu 68", { mtu: 68 }, (c) => assert.equal(c.mtu, 68)],
    ["mtu 65535", { mtu: 65535 }, (c) => assert.equal(c.mtu, 65535)],
    ["mtu 9000", { mtu: 9000 }, (c) => assert.equal(c.mtu, 9000)],
    ["empty terminations", { terminations: [] }, (c) => assert.deepEqual(c.terminations, [])],
    [
      "default route termination",
      { terminations: [{ network: "0.0.0.0/0", via: "10.0.0.1" }, { network: "::/0" }] },
      (c) => assert.deepEqual(c.terminations.map((x) => x.network), ["0.0.0.0/0", "::/0"]),
    ],
    [
      "same network in both families is not a duplicate",
      { terminations: [{ network: "10.0.0.0/8" }, { network: "::a00:0/104" }] },
      (c) => assert.equal(c.terminations.length, 2),
    ],
    [
      "ipam of another type passes",
      { ipam: { type: "host-local", subnet: "10.0.0.0/24" } },
      (c) => assert.deepEqual(c.ipam, { type: "host-local", subnet: "10.0.0.0/24" }),
    ],
    ["static ipam with no routes", {
      ipam: { type: "static", addresses: [{ address: "10.0.0.2/24" }] },
    }, (c) => assert.equal(c.ipam?.type, "static")],
    ["log level error", { log_level: "error" }, (c) => assert.equal(c.logLevel, "error")],
    ["log level warn", { log_level: "warn" }, (c) => assert.equal(c.logLevel, "warn")],
    ["log level info", { log_level: "info" }, (c) => assert.equal(c.logLevel, "info")],
    [
      "table range 1..252",
      { vrf_table_min: 1, vrf_table_max: 252 },
      (c) => assert.equal(c.vrfTableMax, 252),
    ],
    [
      "table range 250..300 (allocator skips 253-255)",
      { vrf_table_min: 250, vrf_table_max: 300 },
      (c) => assert.equal(c.vrfTableMin, 250),
    ],
    [
      "table range 256..256",
      { vrf_table_min: 256, vrf_table_max: 256 },
      (c) => assert.equal(c.vrfTableMin, 256),
    ],
    ["api timeout 1", { api_timeout_seconds: 1 }, (c) => assert.equal(c.apiTimeoutSeconds, 1)],
    [
      "deadlines",
      { command_timeout_seconds: 2, delegate_timeout_seconds: 120, lock_timeout_seconds: 300 },
      (c) =>
        assert.deepEqual(
          [c.commandTimeoutSeconds, c.delegateTimeoutSeconds, c.lockTimeoutSeconds],
          [2, 120, 300],
        ),
    ],
    [
      "unknown extra keys are kept in raw",
      { runtimeConfig: { foo: 1 }, args: { x: 1 } },
      (c) => assert.deepEqual(c.raw.args, { x: 1 }),
    ],
  ];
  for (const [label, patch, check] of cases) {
    await t.step(label, () => check(parseNetworkConfig(configWith(patch))));
  }
});

// ---------------------------------------------------------------------------
// Invalid configurations

interface InvalidCase {
  /** Step name. */
  label: string;
  /** Changes to BASE ({@linkcode REMOVE} deletes a key). */
  patch: Record<string, unknown>;
  /** Field names (whole words) the message must contain. */
  fields: readonly string[];
  /** Text of the bad value the message must contain (omitted for missing fields). */
  value?: string;
  /** Expected code, default 7. */
  code?: number;
}

const INVALID: readonly InvalidCase[] = [
  // name
  { label: "name missing", patch: { name: REMOVE }, fields: ["name"] },
  { label: "name empty", patch: { name: "" }, fields: ["name"], value: '""' },
  { label: "name not a string", patch: { name: 42 }, fields: ["name"], value: "42" },
  { label: "name with a space", patch: { name: "bad name" }, fields: ["name"], value: "bad name" },
  { label: "name starting with -", patch: { name: "-lead" }, fields: ["name"], value: "-lead" },
  // type
  { label: "type missing", patch: { type: REMOVE }, fields: ["type"] },
  { label: "type bridge", patch: { type: "bridge" }, fields: ["type"], value: "bridge" },
  { label: "type wrong case", patch: { type: "Galactic" }, fields: ["type"], value: "Galactic" },
  // vpc
  { label: "vpc missing", patch: { vpc: REMOVE }, fields: ["vpc"] },
  { label: "vpc empty", patch: { vpc: "" }, fields: ["vpc"], value: '""' },
  { label: "vpc 10 chars", patch: { vpc: "0123456789" }, fields: ["vpc"], value: "0123456789" },
  { label: "vpc bad char", patch: { vpc: "ab-c" }, fields: ["vpc"], value: "ab-c" },
  { label: "vpc 2^48", patch: { vpc: "1HvWXNAa8" }, fields: ["vpc"], value: "1HvWXNAa8" },
  { label: "vpc 62^9-1", patch: { vpc: "zzzzzzzzz" }, fields: ["vpc"], value: "zzzzzzzzz" },
  { label: "vpc a number", patch: { vpc: 2820 }, fields: ["vpc"], value: "2820" },
  // vpcattachment
  { label: "vpcattachment missing", patch: { vpcattachment: REMOVE }, fields: ["vpcattachment"] },
  {
    label: "vpcattachment empty",
    patch: { vpcattachment: "" },
    fields: ["vpcattachment"],
    value: '""',
  },
  {
    label: "vpcattachment 4 chars",
    patch: { vpcattachment: "abcd" },
    fields: ["vpcattachment"],
    value: "abcd",
  },
  {
    label: "vpcattachment bad char",
    patch: { vpcattachment: "a_" },
    fields: ["vpcattachment"],
    value: "a_",
  },
  {
    label: "vpcattachment 2^16",
    patch: { vpcattachment: "H32" },
    fields: ["vpcattachment"],
    value: "H32",
  },
  {
    label: "vpcattachment a number",
    patch: { vpcattachment: 16 },
    fields: ["vpcattachment"],
    value: "16",
  },
  // srv6_locator
  { label: "srv6_locator missing", patch: { srv6_locator: REMOVE }, fields: ["srv6_locator"] },
  {
    label: "srv6_locator IPv4",
    patch: { srv6_locator: "10.0.0.0/8" },
    fields: ["srv6_locator"],
    value: "10.0.0.0/8",
  },
  {
    label: "srv6_locator /65",
    patch: { srv6_locator: "fc00::/65" },
    fields: ["srv6_locator"],
    value: "fc00::/65",
  },
  {
    label: "srv6_locator /128",
    patch: { srv6_locator: "fc00::1/128" },
    fields: ["srv6_locator"],
    value: "fc00::1/128",
  },
  {
    label: "srv6_locator garbage",
    patch: { srv6_locator: "garbage" },
    fields: ["srv6_locator"],
    value: "garbage",
  },
  {
    label: "srv6_locator without length",
    patch: { srv6_locator: "fc00::" },
    fields: ["srv6_locator"],
    value: "fc00::",
  },
  {
    label: "srv6_locator a number",
    patch: { srv6_locator: 48 },
    fields: ["srv6_locator"],
    value: "48",
  },
  // mtu
  { label: "mtu 0", patch: { mtu: 0 }, fields: ["mtu"], value: "0" },
  { label: "mtu negative", patch: { mtu: -1 }, fields: ["mtu"], value: "-1" },
  { label: "mtu 70000", patch: { mtu: 70000 }, fields: ["mtu"], value: "70000" },
  { label: "mtu 1.5", patch: { mtu: 1.5 }, fields: ["mtu"], value: "1.5" },
  { label: "mtu string", patch: { mtu: "1500" }, fields: ["mtu"], value: '"1500"' },
  { label: "mtu boolean", patch: { mtu: true }, fields: ["mtu"], value: "true" },
  // terminations
  {
    label: "terminations a string",
    patch: { terminations: "10.0.0.0/8" },
    fields: ["terminations"],
    value: "10.0.0.0/8",
  },
  {
    label: "terminations an object",
    patch: { terminations: { network: "10.0.0.0/8" } },
    fields: ["terminations"],
    value: "10.0.0.0/8",
  },
  {
    label: "termination entry a number",
    patch: { terminations: [5] },
    fields: ["terminations"],
    value: "5",
  },
  {
    label: "termination entry a string",
    patch: { terminations: ["10.0.0.0/8"] },
    fields: ["terminations"],
    value: "10.0.0.0/8",
  },
  {
    label: "termination without network",
    patch: { terminations: [{}] },
    fields: ["terminations", "network"],
  },
  {
    label: "termination network garbage",
    patch: { terminations: [{ network: "garbage" }] },
    fields: ["terminations", "network"],
    value: "garbage",
  },
  {
    label: "termination network not a string",
    patch: { terminations: [{ network: 10 }] },
    fields: ["terminations", "network"],
    value: "10",
  },
  {
    label: "termination network /33",
    patch: { terminations: [{ network: "10.0.0.0/33" }] },
    fields: ["terminations", "network"],
    value: "10.0.0.0/33",
  },
  {
    label: "termination network without length",
    patch: { terminations: [{ network: "10.0.0.0" }] },
    fields: ["terminations", "network"],
    value: "10.0.0.0",
  },
  {
    label: "termination network with IPv4 host bits",
    patch: { terminations: [{ network: "10.0.0.1/24" }] },
    fields: ["terminations", "network"],
    value: "10.0.0.1/24",
  },
  {
    label: "termination network with IPv6 host bits",
    patch: { terminations: [{ network: "2001:db8::1/64" }] },
    fields: ["terminations", "network"],
    value: "2001:db8::1/64",
  },
  {
    label: "second termination invalid",
    patch: { terminations: [{ network: "10.0.0.0/24" }, { network: "10.0.1.0/16" }] },
    fields: ["terminations", "network"],
    value: "10.0.1.0/16",
  },
  {
    label: "duplicate termination",
    patch: {
      terminations: [{ network: "10.0.0.0/24" }, { network: "10.0.0.0/24", via: "10.0.0.1" }],
    },
    fields: ["terminations", "network"],
    value: "10.0.0.0/24",
  },
  {
    label: "duplicate termination in another spelling",
    patch: { terminations: [{ network: "2001:db8::/32" }, { network: "2001:DB8:0::/32" }] },
    fields: ["terminations", "network"],
    value: "2001:DB8:0::/32",
  },
  {
    label: "termination via IPv6 for an IPv4 network",
    patch: { terminations: [{ network: "10.0.0.0/24", via: "fe80::1" }] },
    fields: ["terminations", "via"],
    value: "fe80::1",
  },
  {
    label: "termination via IPv4 for an IPv6 network",
    patch: { terminations: [{ network: "2001:db8::/32", via: "10.0.0.1" }] },
    fields: ["terminations", "via"],
    value: "10.0.0.1",
  },
  {
    label: "termination via garbage",
    patch: { terminations: [{ network: "10.0.0.0/24", via: "garbage" }] },
    fields: ["terminations", "via"],
    value: "garbage",
  },
  {
    label: "termination via a prefix",
    patch: { terminations: [{ network: "10.0.0.0/24", via: "10.0.0.1/32" }] },
    fields: ["terminations", "via"],
    value: "10.0.0.1/32",
  },
  {
    label: "termination via a number",
    patch: { terminations: [{ network: "10.0.0.0/24", via: 5 }] },
    fields: ["terminations", "via"],
    value: "5",
  },
  // ipam
  { label: "ipam a string", patch: { ipam: "static" }, fields: ["ipam"], value: "static" },
  { label: "ipam a list", patch: { ipam: [] }, fields: ["ipam"], value: "[]" },
  { label: "ipam without type", patch: { ipam: {} }, fields: ["ipam", "type"] },
  {
    label: "ipam type empty",
    patch: { ipam: { type: "" } },
    fields: ["ipam", "type"],
    value: '""',
  },
  {
    label: "ipam type a number",
    patch: { ipam: { type: 1 } },
    fields: ["ipam", "type"],
    value: "1",
  },
  {
    label: "static addresses not a list",
    patch: { ipam: { type: "static", addresses: "10.0.0.2/24" } },
    fields: ["ipam", "addresses"],
    value: "10.0.0.2/24",
  },
  {
    label: "static address without prefix length",
    patch: { ipam: { type: "static", addresses: [{ address: "10.0.0.2" }] } },
    fields: ["ipam", "address"],
    value: "10.0.0.2",
  },
  {
    label: "static address garbage",
    patch: { ipam: { type: "static", addresses: [{ address: "bad/24" }] } },
    fields: ["ipam", "address"],
    value: "bad/24",
  },
  {
    label: "static address entry without address",
    patch: { ipam: { type: "static", addresses: [{}] } },
    fields: ["ipam", "address"],
  },
  {
    // The static plugin unmarshals each entry into a struct {address, gateway}:
    // a bare string passes nothing but fails later inside the delegate.
    label: "static address entry a bare string (static needs {address})",
    patch: { ipam: { type: "static", addresses: ["10.0.0.2/24"] } },
    fields: ["ipam", "addresses"],
    value: "10.0.0.2/24",
  },
  {
    label: "static routes not a list",
    patch: { ipam: { type: "static", routes: "x" } },
    fields: ["ipam", "routes"],
    value: "x",
  },
  {
    label: "static route entry a number",
    patch: { ipam: { type: "static", routes: [5] } },
    fields: ["ipam", "routes"],
    value: "5",
  },
  {
    label: "static route without dst",
    patch: { ipam: { type: "static", routes: [{ gw: "10.0.0.1" }] } },
    fields: ["ipam", "dst"],
  },
  {
    label: "static route dst garbage",
    patch: { ipam: { type: "static", routes: [{ dst: "bad" }] } },
    fields: ["ipam", "dst"],
    value: "bad",
  },
  {
    label: "static route gw garbage",
    patch: { ipam: { type: "static", routes: [{ dst: "0.0.0.0/0", gw: "bad" }] } },
    fields: ["ipam", "gw"],
    value: "bad",
  },
  // logging
  {
    label: "log_level unknown",
    patch: { log_level: "verbose" },
    fields: ["log_level"],
    value: "verbose",
  },
  { label: "log_level a number", patch: { log_level: 3 }, fields: ["log_level"], value: "3" },
  // VRF table range
  {
    label: "vrf_table_min > vrf_table_max",
    patch: { vrf_table_min: 5000, vrf_table_max: 4000 },
    fields: ["vrf_table_min"],
    value: "5000",
  },
  {
    label: "table range only 253..255",
    patch: { vrf_table_min: 253, vrf_table_max: 255 },
    fields: ["vrf_table_min"],
    value: "253",
  },
  {
    label: "table range only 254",
    patch: { vrf_table_min: 254, vrf_table_max: 254 },
    fields: ["vrf_table_min"],
    value: "254",
  },
  { label: "vrf_table_min 0", patch: { vrf_table_min: 0 }, fields: ["vrf_table_min"], value: "0" },
  {
    label: "vrf_table_min 1.5",
    patch: { vrf_table_min: 1.5 },
    fields: ["vrf_table_min"],
    value: "1.5",
  },
  {
    label: "vrf_table_min string",
    patch: { vrf_table_min: "1000" },
    fields: ["vrf_table_min"],
    value: '"1000"',
  },
  {
    label: "vrf_table_max above 2^32-1",
    patch: { vrf_table_max: 4294967296 },
    fields: ["vrf_table_max"],
    value: "4294967296",
  },
  // API timeout
  {
    label: "api_timeout_seconds 0",
    patch: { api_timeout_seconds: 0 },
    fields: ["api_timeout_seconds"],
    value: "0",
  },
  {
    label: "api_timeout_seconds -1",
    patch: { api_timeout_seconds: -1 },
    fields: ["api_timeout_seconds"],
    value: "-1",
  },
  {
    label: "api_timeout_seconds 1.5",
    patch: { api_timeout_seconds: 1.5 },
    fields: ["api_timeout_seconds"],
    value: "1.5",
  },
  {
    label: "api_timeout_seconds string",
    patch: { api_timeout_seconds: "10" },
    fields: ["api_timeout_seconds"],
    value: '"10"',
  },
  {
    label: "api_timeout_seconds an hour (seconds, not minutes)",
    patch: { api_timeout_seconds: 3600 },
    fields: ["api_timeout_seconds"],
    value: "3600",
  },
  // Deadlines
  ...(["command_timeout_seconds", "delegate_timeout_seconds", "lock_timeout_seconds"] as const)
    .flatMap((field) => [
      { label: `${field} 0`, patch: { [field]: 0 }, fields: [field], value: "0" },
      { label: `${field} 1.5`, patch: { [field]: 1.5 }, fields: [field], value: "1.5" },
      { label: `${field} an hour`, patch: { [field]: 3600 }, fields: [field], value: "3600" },
    ]),
  // cniVersion
  {
    label: "cniVersion unsupported old",
    patch: { cniVersion: "0.2.0" },
    fields: ["cniVersion"],
    value: "0.2.0",
    code: INCOMPATIBLE_VERSION,
  },
  {
    label: "cniVersion unsupported new",
    patch: { cniVersion: "2.0.0" },
    fields: ["cniVersion"],
    value: "2.0.0",
    code: INCOMPATIBLE_VERSION,
  },
  {
    label: "cniVersion not semver",
    patch: { cniVersion: "1.1" },
    fields: ["cniVersion"],
    value: "1.1",
    code: INCOMPATIBLE_VERSION,
  },
  { label: "cniVersion a number", patch: { cniVersion: 1 }, fields: ["cniVersion"], value: "1" },
  {
    label: "cniVersion and cniVersions missing",
    patch: { cniVersion: REMOVE },
    fields: ["cniVersion"],
  },
  {
    label: "cniVersions without a common version",
    patch: { cniVersion: REMOVE, cniVersions: ["0.2.0", "9.9.9"] },
    fields: ["cniVersions"],
    value: "9.9.9",
    code: INCOMPATIBLE_VERSION,
  },
  {
    label: "cniVersions empty",
    patch: { cniVersion: REMOVE, cniVersions: [] },
    fields: ["cniVersions"],
    code: INCOMPATIBLE_VERSION,
  },
];

Deno.test("every invalid value is refused with its code, field and value", async (t) => {
  for (const c of INVALID) {
    await t.step(c.label, () => {
      assertCniError(
        () => parseNetworkConfig(configWith(c.patch)),
        c.code ?? INVALID_CONFIG,
        c.fields,
        c.value,
      );
    });
  }
});

// ---------------------------------------------------------------------------
// cniVersion negotiation

Deno.test("cniVersion: every supported version is accepted as is", async (t) => {
  for (const version of ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]) {
    await t.step(
      version,
      () =>
        assert.equal(parseNetworkConfig(configWith({ cniVersion: version })).cniVersion, version),
    );
  }
});

Deno.test("cniVersions: the newest version both sides support is picked", async (t) => {
  const cases: [unknown[], string][] = [
    [["0.4.0", "1.0.0"], "1.0.0"],
    [["1.0.0", "0.4.0"], "1.0.0"],
    [["1.1.0", "0.3.1", "2.0.0"], "1.1.0"],
    [["2.0.0", "1.0.0", "0.4.0", "0.3.1"], "1.0.0"],
    [["0.3.0", "0.3.1"], "0.3.1"],
    [["0.3.1", 5, null, "1.0.0"], "1.0.0"],
    [["0.2.0", "0.4.0"], "0.4.0"],
    [["1.1.0"], "1.1.0"],
  ];
  for (const [versions, expected] of cases) {
    await t.step(`${JSON.stringify(versions)} → ${expected}`, () => {
      const config = parseNetworkConfig(configWith({ cniVersion: REMOVE, cniVersions: versions }));
      assert.equal(config.cniVersion, expected);
    });
  }
});

Deno.test("cniVersion set by the runtime wins over cniVersions", () => {
  const config = parseNetworkConfig(
    configWith({ cniVersion: "0.4.0", cniVersions: ["1.1.0", "1.0.0"] }),
  );
  assert.equal(config.cniVersion, "0.4.0");
});

// ---------------------------------------------------------------------------
// Decoding stdin

Deno.test("decodeConfig refuses content that is not a JSON object with code 6", async (t) => {
  const encoder = new TextEncoder();
  const cases: [string, Uint8Array][] = [
    ["empty", new Uint8Array()],
    ["not JSON", encoder.encode("not json")],
    ["truncated", encoder.encode('{"name": "a"')],
    ["trailing garbage", encoder.encode('{"name": "a"} x')],
    ["array", encoder.encode("[1, 2]")],
    ["null", encoder.encode("null")],
    ["number", encoder.encode("42")],
    ["string", encoder.encode('"galactic"')],
    ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
  ];
  for (const [label, bytes] of cases) {
    await t.step(label, () => assertCniError(() => decodeConfig(bytes), DECODE_FAILURE, []));
  }
});

Deno.test("decodeConfig returns the object of valid JSON", () => {
  const bytes = new TextEncoder().encode(`\n  ${JSON.stringify(BASE)}\n`);
  assert.deepEqual(decodeConfig(bytes), BASE);
  const unicode = new TextEncoder().encode('{"name":"réseau"}');
  assert.deepEqual(decodeConfig(unicode), { name: "réseau" });
});

Deno.test("parseNetworkConfig refuses values that are not objects with code 6", async (t) => {
  for (const value of [null, undefined, [], [BASE], "config", 5, true]) {
    await t.step(JSON.stringify(value) ?? "undefined", () => {
      assertCniError(() => parseNetworkConfig(value), DECODE_FAILURE, []);
    });
  }
});

Deno.test("decodeConfig + parseNetworkConfig on realistic stdin", () => {
  const stdin = new TextEncoder().encode(JSON.stringify({
    ...BASE,
    cniVersion: "0.4.0",
    prevResult: { cniVersion: "0.4.0", interfaces: [], ips: [] },
  }));
  const config = parseNetworkConfig(decodeConfig(stdin));
  assert.equal(config.cniVersion, "0.4.0");
  assert.equal(config.vpc.value, 2820n);
  assert.deepEqual(config.raw.prevResult, { cniVersion: "0.4.0", interfaces: [], ips: [] });
});
