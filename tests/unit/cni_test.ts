/**
 * The CNI protocol layer (SPEC §2): environment, verb/version rules, result
 * shapes per version, and one invocation end to end with a fake process
 * (the dispatcher, lib/plugin).
 */

import assert from "node:assert/strict";
import {
  CniError,
  formatResult,
  parseCniArgs,
  parseCniEnv,
  parseResult,
  requireVerb,
  type Result,
} from "../../lib/cni/mod.ts";
import { type InvocationIo, runInvocation } from "../../lib/plugin/invocation.ts";
import type { VerbContext, Verbs } from "../../lib/verbs/mod.ts";

const INCOMPATIBLE_VERSION = 1;
const INVALID_ENVIRONMENT = 4;
const IO_FAILURE = 5;
const DECODE_FAILURE = 6;
const INVALID_CONFIG = 7;

const SUPPORTED = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

function assertCniError(fn: () => unknown, code: number, mentions: readonly string[] = []): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof CniError, `expected CniError, got ${error}`);
    assert.equal(error.code, code, error.message);
    for (const text of mentions) {
      assert.ok(error.message.includes(text), `${JSON.stringify(error.message)} mentions ${text}`);
    }
    return true;
  });
}

// ---------------------------------------------------------------------------
// Environment

/** A complete environment for `command`. */
function fullEnv(
  command: string,
  overrides: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "3f1c0a9e5b7d",
    CNI_NETNS: "/var/run/netns/cni-1234",
    CNI_IFNAME: "net1",
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=abc-123",
    CNI_PATH: "/opt/cni/bin:/usr/libexec/cni",
    ...overrides,
  };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  return env;
}

Deno.test("parseCniEnv: a complete ADD environment", () => {
  const env = parseCniEnv(fullEnv("ADD"));
  assert.equal(env.command, "ADD");
  assert.equal(env.containerId, "3f1c0a9e5b7d");
  assert.equal(env.netns, "/var/run/netns/cni-1234");
  assert.equal(env.ifname, "net1");
  assert.deepEqual(env.path, ["/opt/cni/bin", "/usr/libexec/cni"]);
  assert.equal(env.args.get("K8S_POD_NAMESPACE"), "default");
  assert.equal(env.args.get("K8S_POD_NAME"), "web-0");
  assert.equal(env.args.get("K8S_POD_UID"), "abc-123");
});

Deno.test("parseCniEnv: each verb's required variables (code 4 naming the variable)", async (t) => {
  // [verb, variable that must be present]
  const required: [string, string][] = [
    ["ADD", "CNI_CONTAINERID"],
    ["ADD", "CNI_NETNS"],
    ["ADD", "CNI_IFNAME"],
    ["ADD", "CNI_PATH"], // the host-device delegate is found through CNI_PATH (SPEC §6)
    ["DEL", "CNI_CONTAINERID"],
    ["DEL", "CNI_IFNAME"],
    ["CHECK", "CNI_CONTAINERID"],
    ["CHECK", "CNI_NETNS"],
    ["CHECK", "CNI_IFNAME"],
    ["GC", "CNI_PATH"],
  ];
  for (const [verb, variable] of required) {
    await t.step(`${verb} without ${variable}`, () => {
      assertCniError(
        () => parseCniEnv(fullEnv(verb, { [variable]: undefined })),
        INVALID_ENVIRONMENT,
        [variable],
      );
    });
    await t.step(`${verb} with empty ${variable}`, () => {
      assertCniError(() => parseCniEnv(fullEnv(verb, { [variable]: "" })), INVALID_ENVIRONMENT, [
        variable,
      ]);
    });
  }
});

Deno.test("parseCniEnv: variables a verb does not need may be absent", async (t) => {
  const optional: [string, string[]][] = [
    ["DEL", ["CNI_NETNS", "CNI_ARGS"]], // DEL after the sandbox is gone has no netns
    ["ADD", ["CNI_ARGS"]],
    ["GC", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"]],
    ["STATUS", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS"]],
    ["VERSION", ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]],
  ];
  for (const [verb, absent] of optional) {
    await t.step(`${verb} without ${absent.join(", ")}`, () => {
      const overrides = Object.fromEntries(absent.map((name) => [name, undefined]));
      const env = parseCniEnv(fullEnv(verb, overrides));
      assert.equal(env.command, verb);
    });
  }
});

Deno.test("parseCniEnv: VERSION ignores the other variables, as libcni sends placeholders", () => {
  // libcni's GetVersionInfo (podman validating a conflist, containerd
  // loading one): NetNS, IfName and Path are the string "dummy".
  const env = parseCniEnv({
    CNI_COMMAND: "VERSION",
    CNI_NETNS: "dummy",
    CNI_IFNAME: "dummy",
    CNI_PATH: "dummy",
    CNI_CONTAINERID: "not a valid id",
    CNI_ARGS: "not-a-pair",
  });
  assert.equal(env.command, "VERSION");
  assert.equal(env.netns, "");
  // The same placeholders still fail the verbs that use them.
  assertCniError(
    () => parseCniEnv(fullEnv("ADD", { CNI_NETNS: "dummy" })),
    INVALID_ENVIRONMENT,
    ["CNI_NETNS"],
  );
});

Deno.test("parseCniEnv: CNI_COMMAND must be a known verb", async (t) => {
  for (const command of [undefined, "", "add", "Add", "DELETE", "INIT", " ADD"]) {
    await t.step(JSON.stringify(command) ?? "unset", () => {
      assertCniError(
        () => parseCniEnv(fullEnv("ADD", { CNI_COMMAND: command })),
        INVALID_ENVIRONMENT,
        ["CNI_COMMAND"],
      );
    });
  }
  for (const command of ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]) {
    await t.step(command, () => assert.equal(parseCniEnv(fullEnv(command)).command, command));
  }
});

Deno.test("parseCniEnv: CNI_IFNAME must be a valid interface name of at most 15 chars", async (t) => {
  await t.step(
    "15 chars accepted",
    () =>
      assert.equal(
        parseCniEnv(fullEnv("ADD", { CNI_IFNAME: "a".repeat(15) })).ifname,
        "a".repeat(15),
      ),
  );
  await t.step(
    "15 bytes of UTF-8 accepted",
    () =>
      assert.equal(
        parseCniEnv(fullEnv("ADD", { CNI_IFNAME: `${"é".repeat(7)}a` })).ifname.length,
        8,
      ),
  );
  const refused = [
    "a".repeat(16),
    "é".repeat(8), // 8 characters, 16 bytes: IFNAMSIZ counts bytes
    "net/1",
    "net 1",
    "net:1",
    "net\t1",
    "net\u00a01", // Go's unicode.IsSpace, as libcni tests
    "net\u00851",
    "net\u20281",
    ".",
    "..",
  ];
  for (const ifname of refused) {
    await t.step(`${JSON.stringify(ifname)} refused`, () => {
      assertCniError(
        () => parseCniEnv(fullEnv("ADD", { CNI_IFNAME: ifname })),
        INVALID_ENVIRONMENT,
        ["CNI_IFNAME"],
      );
    });
  }
});

Deno.test("parseCniEnv: CNI_NETNS must be an absolute path", async (t) => {
  for (const netns of ["netns/c1", "../../proc/1/ns/net", "/".repeat(4097)]) {
    await t.step(JSON.stringify(netns.slice(0, 20)), () => {
      assertCniError(
        () => parseCniEnv(fullEnv("ADD", { CNI_NETNS: netns })),
        INVALID_ENVIRONMENT,
        ["CNI_NETNS"],
      );
    });
  }
  assert.equal(parseCniEnv(fullEnv("DEL", { CNI_NETNS: "" })).netns, "");
});

Deno.test("parseCniEnv: errors echo at most a bounded part of the value", async (t) => {
  const secret = "SECRET-".repeat(2000);
  const cases: Record<string, string>[] = [
    { CNI_CONTAINERID: `bad id ${secret}` },
    { CNI_IFNAME: secret },
    { CNI_NETNS: `x${secret}` },
    { CNI_ARGS: `K8S_POD_NAME=${secret}=x` },
    { CNI_ARGS: `IgnoreUnknown=1;A=${secret}`.repeat(3) },
    { CNI_PATH: `/${secret}`.repeat(3) },
    { CNI_COMMAND: secret },
  ];
  for (const overrides of cases) {
    const name = Object.keys(overrides)[0]!;
    await t.step(name, () => {
      assert.throws(() => parseCniEnv(fullEnv("ADD", overrides)), (error: Error) => {
        assert.ok(error.message.includes(name), error.message);
        assert.ok(error.message.length < 400, `${error.message.length} chars`);
        return true;
      });
    });
  }
});

Deno.test("parseCniEnv: CNI_PATH is split on colons, empty entries dropped", async (t) => {
  const cases: [string, string[]][] = [
    ["/opt/cni/bin", ["/opt/cni/bin"]],
    ["/opt/cni/bin:/usr/lib/cni", ["/opt/cni/bin", "/usr/lib/cni"]],
    ["/a::/b:", ["/a", "/b"]],
    [":/a", ["/a"]],
  ];
  for (const [path, expected] of cases) {
    await t.step(
      path,
      () => assert.deepEqual(parseCniEnv(fullEnv("ADD", { CNI_PATH: path })).path, expected),
    );
  }
});

Deno.test("parseCniArgs: K=V pairs, IgnoreUnknown, unknown keys, malformed pairs", async (t) => {
  const ok: [string, Record<string, string>][] = [
    ["", {}],
    ["K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod", { K8S_POD_NAMESPACE: "ns", K8S_POD_NAME: "pod" }],
    [
      "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=pod;K8S_POD_UID=uid;K8S_POD_INFRA_CONTAINER_ID=abc",
      {
        IgnoreUnknown: "1",
        K8S_POD_NAMESPACE: "ns",
        K8S_POD_NAME: "pod",
        K8S_POD_UID: "uid",
        K8S_POD_INFRA_CONTAINER_ID: "abc",
      },
    ],
    ["IgnoreUnknown=1;FOO=bar", { IgnoreUnknown: "1", FOO: "bar" }],
    ["IgnoreUnknown=true;FOO=bar", { IgnoreUnknown: "true", FOO: "bar" }],
    ["FOO=bar;IgnoreUnknown=1", { FOO: "bar", IgnoreUnknown: "1" }], // order does not matter
    ["K8S_POD_NAME=", { K8S_POD_NAME: "" }],
  ];
  for (const [text, expected] of ok) {
    await t.step(`accepts ${JSON.stringify(text)}`, () => {
      assert.deepEqual(Object.fromEntries(parseCniArgs(text)), expected);
      assert.deepEqual(
        Object.fromEntries(parseCniEnv(fullEnv("ADD", { CNI_ARGS: text })).args),
        expected,
      );
    });
  }
  const bad: [string, string][] = [
    ["FOO=bar", "FOO"],
    ["K8S_POD_NAME=p;FOO=bar", "FOO"],
    ["IgnoreUnknown=0;FOO=bar", "FOO"],
    ["IgnoreUnknown=false;FOO=bar", "FOO"],
    ["K8S_POD_NAME", "K8S_POD_NAME"],
    ["=value", "=value"],
    ["IgnoreUnknown=1;=value", "=value"],
    ["IgnoreUnknown=1;novalue", "novalue"],
    // libcni: every ;-separated piece is exactly one K=V
    ["IgnoreUnknown=1;K8S_POD_NAME=a=b", "K8S_POD_NAME=a=b"],
    ["IgnoreUnknown=1;K8S_POD_NAME=p;", '""'],
    ["IgnoreUnknown=1;;K8S_POD_NAME=p", '""'],
    ["K8S_POD_NAME=p;K8S_POD_NAME=q", "K8S_POD_NAME=q"],
  ];
  for (const [text, mention] of bad) {
    await t.step(`refuses ${JSON.stringify(text)}`, () => {
      assertCniError(() => parseCniArgs(text), INVALID_ENVIRONMENT, ["CNI_ARGS", mention]);
      assertCniError(() => parseCniEnv(fullEnv("ADD", { CNI_ARGS: text })), INVALID_ENVIRONMENT, [
        "CNI_ARGS",
      ]);
    });
  }
});

// ---------------------------------------------------------------------------
// Verbs per version

Deno.test("requireVerb: CHECK from 0.4.0, GC and STATUS from 1.1.0", async (t) => {
  const since: Record<string, string> = {
    ADD: "0.3.0",
    DEL: "0.3.0",
    VERSION: "0.3.0",
    CHECK: "0.4.0",
    GC: "1.1.0",
    STATUS: "1.1.0",
  };
  const order = (v: string): number => SUPPORTED.indexOf(v);
  for (const [verb, first] of Object.entries(since)) {
    for (const version of SUPPORTED) {
      const allowed = order(version) >= order(first);
      await t.step(`${verb} @ ${version}: ${allowed ? "allowed" : "code 1"}`, () => {
        if (allowed) requireVerb(verb, version);
        else {assertCniError(() => requireVerb(verb, version), INCOMPATIBLE_VERSION, [
            verb,
            version,
          ]);}
      });
    }
  }
});

// ---------------------------------------------------------------------------
// Results

/** A result using every field that exists in 1.1.0. */
function richResult(): Result {
  return {
    interfaces: [
      { name: "G0000000jU00GH", mac: "aa:bb:cc:00:00:01", mtu: 1400 },
      {
        name: "net1",
        mac: "aa:bb:cc:00:00:02",
        mtu: 1400,
        sandbox: "/var/run/netns/cni-1234",
        socketPath: "/run/sock",
        pciID: "0000:00:1f.6",
      },
    ],
    ips: [
      { address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 1 },
      { address: "2001:db8::2/64", interface: 1 },
    ],
    routes: [
      {
        dst: "0.0.0.0/0",
        gw: "10.0.0.1",
        mtu: 1400,
        advmss: 1360,
        priority: 10,
        table: 1000,
        scope: 0,
      },
      { dst: "2001:db8:1::/48" },
    ],
    dns: { nameservers: ["10.0.0.53"] },
  };
}

const INTERFACE_11 = ["mtu", "socketPath", "pciID"];
const ROUTE_11 = ["mtu", "advmss", "priority", "table", "scope"];

Deno.test("formatResult: the shape of each spec version", async (t) => {
  for (const version of SUPPORTED) {
    await t.step(version, () => {
      const input = richResult();
      const out = formatResult(input, version);
      assert.deepEqual(input, richResult(), "input not mutated");
      assert.equal(out.cniVersion, version);
      const legacy = version.startsWith("0.");
      const has11 = version === "1.1.0";

      const ips = out.ips as Record<string, unknown>[];
      assert.equal(ips.length, 2);
      assert.equal(ips[0]!.address, "10.0.0.2/24");
      assert.equal(ips[0]!.gateway, "10.0.0.1");
      assert.equal(ips[0]!.interface, 1);
      assert.equal(ips[1]!.address, "2001:db8::2/64");
      if (legacy) {
        assert.equal(ips[0]!.version, "4");
        assert.equal(ips[1]!.version, "6");
      } else {
        for (const ip of ips) assert.ok(!("version" in ip), "no ips[].version from 1.0.0 on");
      }

      const interfaces = out.interfaces as Record<string, unknown>[];
      assert.deepEqual(interfaces.map((i) => i.name), ["G0000000jU00GH", "net1"]);
      assert.equal(interfaces[1]!.sandbox, "/var/run/netns/cni-1234");
      assert.equal(interfaces[1]!.mac, "aa:bb:cc:00:00:02");
      for (const field of INTERFACE_11) {
        assert.equal(field in interfaces[1]!, has11, `interfaces[].${field} only in 1.1.0`);
      }
      if (has11) {
        assert.equal(interfaces[0]!.mtu, 1400);
        assert.equal(interfaces[1]!.socketPath, "/run/sock");
        assert.equal(interfaces[1]!.pciID, "0000:00:1f.6");
      }

      const routes = out.routes as Record<string, unknown>[];
      assert.equal(routes[0]!.dst, "0.0.0.0/0");
      assert.equal(routes[0]!.gw, "10.0.0.1");
      for (const field of ROUTE_11) {
        assert.equal(field in routes[0]!, has11, `routes[].${field} only in 1.1.0`);
      }
      if (has11) {
        assert.deepEqual(
          {
            mtu: routes[0]!.mtu,
            advmss: routes[0]!.advmss,
            priority: routes[0]!.priority,
            table: routes[0]!.table,
            scope: routes[0]!.scope,
          },
          { mtu: 1400, advmss: 1360, priority: 10, table: 1000, scope: 0 },
        );
      }
      assert.deepEqual(routes[1], { dst: "2001:db8:1::/48" });
      assert.deepEqual(out.dns, { nameservers: ["10.0.0.53"] });
      // What goes on stdout must survive JSON.
      assert.deepEqual(JSON.parse(JSON.stringify(out)), out);
    });
  }
});

Deno.test("parseResult reads a 0.4.0 delegate output", () => {
  const output = {
    cniVersion: "0.4.0",
    interfaces: [{ name: "net1", mac: "aa:bb:cc:00:00:02", sandbox: "/var/run/netns/x" }],
    ips: [
      { version: "4", address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 },
      { version: "6", address: "2001:db8::2/64", interface: 0 },
    ],
    routes: [{ dst: "0.0.0.0/0", gw: "10.0.0.1" }],
    dns: {},
  };
  const result = parseResult(output, "host-device");
  assert.deepEqual(result.interfaces, output.interfaces);
  assert.deepEqual(result.ips, [
    { address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 },
    { address: "2001:db8::2/64", interface: 0 },
  ]);
  assert.deepEqual(result.routes, output.routes);
  // Back to 0.4.0 it is the same document; to 1.0.0 it loses ips[].version.
  assert.deepEqual(formatResult(result, "0.4.0"), output);
  const v1 = formatResult(result, "1.0.0");
  assert.deepEqual(v1.ips, result.ips);
});

Deno.test("parseResult reads a 1.0.0 delegate output and round trips", () => {
  const output = {
    cniVersion: "1.0.0",
    interfaces: [{ name: "net1", mac: "aa:bb:cc:00:00:02", sandbox: "/var/run/netns/x" }],
    ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 }],
    routes: [{ dst: "10.9.0.0/16", gw: "10.0.0.1" }],
    dns: { nameservers: ["10.0.0.53"], search: ["svc.cluster.local"] },
  };
  const result = parseResult(output, "host-device");
  assert.deepEqual(formatResult(result, "1.0.0"), output);
});

Deno.test("parseResult refuses what is not a result (code 6)", async (t) => {
  const cases: [string, unknown][] = [
    ["string", "result"],
    ["null", null],
    ["array", []],
    ["ip without prefix length", { ips: [{ address: "10.0.0.2" }] }],
    ["ip not an object", { ips: ["10.0.0.2/24"] }],
    ["ip address garbage", { ips: [{ address: "bad/24" }] }],
  ];
  for (const [label, value] of cases) {
    await t.step(
      label,
      () => assertCniError(() => parseResult(value, "host-device"), DECODE_FAILURE),
    );
  }
});

// ---------------------------------------------------------------------------
// One invocation end to end, with a fake process

const CONFIG = {
  cniVersion: "1.1.0",
  name: "tenant-a",
  type: "galactic",
  vpc: "jU",
  vpcattachment: "G",
  srv6_locator: "fc00:0:1::/48",
  log_level: "debug",
};

interface FakeProcess {
  io: InvocationIo;
  stdout: string[];
  stderr: string[];
}

function fakeProcess(
  env: Record<string, string | undefined>,
  stdin: string | Uint8Array,
): FakeProcess {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const bytes = typeof stdin === "string" ? new TextEncoder().encode(stdin) : stdin;
  return {
    stdout,
    stderr,
    io: {
      env,
      readStdin: () => Promise.resolve(bytes),
      writeStdout: (text) => stdout.push(text),
      writeStderr: (text) => stderr.push(text),
    },
  };
}

interface StubVerbs {
  verbs: Verbs;
  calls: { verb: string; context: VerbContext }[];
}

const ADD_RESULT: Result = {
  interfaces: [{
    name: "net1",
    mac: "aa:bb:cc:00:00:02",
    sandbox: "/var/run/netns/cni-1234",
    mtu: 1400,
  }],
  ips: [{ address: "10.0.0.2/24", gateway: "10.0.0.1", interface: 0 }, {
    address: "2001:db8::2/64",
    interface: 0,
  }],
  routes: [{ dst: "10.9.0.0/16", gw: "10.0.0.1", table: 1000 }],
};

function stubVerbs(behaviour: (verb: string, context: VerbContext) => void = () => {}): StubVerbs {
  const calls: { verb: string; context: VerbContext }[] = [];
  const run = (verb: string) => (context: VerbContext): Promise<void> => {
    calls.push({ verb, context });
    context.log.info(`stub ${verb} running`);
    behaviour(verb, context);
    return Promise.resolve();
  };
  return {
    calls,
    verbs: {
      add: async (context) => {
        await run("ADD")(context);
        return structuredClone(ADD_RESULT);
      },
      del: run("DEL"),
      check: run("CHECK"),
      gc: run("GC"),
      status: run("STATUS"),
    },
  };
}

/** Exactly one write on stdout, and it is one JSON value. */
function onlyDocument(process: FakeProcess): Record<string, unknown> {
  assert.equal(process.stdout.length, 1, `one stdout write, got ${JSON.stringify(process.stdout)}`);
  const document = JSON.parse(process.stdout[0]!);
  assert.equal(typeof document, "object");
  assert.ok(document !== null && !Array.isArray(document));
  return document;
}

function assertErrorDocument(
  document: Record<string, unknown>,
  code: number,
  cniVersion: string,
): void {
  assert.equal(document.code, code, `error document ${JSON.stringify(document)}`);
  assert.equal(document.cniVersion, cniVersion);
  assert.equal(typeof document.msg, "string");
  assert.ok((document.msg as string).length > 0);
  for (const key of Object.keys(document)) {
    assert.ok(["cniVersion", "code", "msg", "details"].includes(key), `unexpected key ${key}`);
  }
  if ("details" in document) assert.equal(typeof document.details, "string");
}

Deno.test("runInvocation ADD: one result document in the config's version, exit 0", async (t) => {
  for (const version of SUPPORTED) {
    await t.step(version, async () => {
      const process = fakeProcess(
        fullEnv("ADD"),
        JSON.stringify({ ...CONFIG, cniVersion: version }),
      );
      const stub = stubVerbs();
      const code = await runInvocation(process.io, {
        loadVerbs: () => Promise.resolve(stub.verbs),
      });
      assert.equal(code, 0);
      const document = onlyDocument(process);
      assert.equal(document.cniVersion, version);
      const ips = document.ips as Record<string, unknown>[];
      assert.deepEqual(ips.map((ip) => ip.address), ["10.0.0.2/24", "2001:db8::2/64"]);
      if (version.startsWith("0.")) assert.deepEqual(ips.map((ip) => ip.version), ["4", "6"]);
      else assert.ok(ips.every((ip) => !("version" in ip)));
      const routes = document.routes as Record<string, unknown>[];
      assert.equal("table" in routes[0]!, version === "1.1.0");
      assert.deepEqual(stub.calls.map((c) => c.verb), ["ADD"]);
      // Logs went to stderr, not stdout.
      assert.ok(process.stderr.join("").includes("stub ADD running"));
      assert.ok(!process.stdout.join("").includes("stub ADD running"));
    });
  }
});

Deno.test("runInvocation passes the parsed env and config to the verb", async () => {
  const process = fakeProcess(fullEnv("ADD"), JSON.stringify(CONFIG));
  const stub = stubVerbs();
  assert.equal(
    await runInvocation(process.io, { loadVerbs: () => Promise.resolve(stub.verbs) }),
    0,
  );
  const context = stub.calls[0]!.context;
  assert.equal(context.env.containerId, "3f1c0a9e5b7d");
  assert.equal(context.env.ifname, "net1");
  assert.deepEqual(context.env.path, ["/opt/cni/bin", "/usr/libexec/cni"]);
  assert.equal(context.config.vpc.value, 2820n);
  assert.equal(context.config.attachment.value, 16n);
});

Deno.test("runInvocation DEL/CHECK/GC/STATUS: nothing on stdout on success, exit 0", async (t) => {
  for (const verb of ["DEL", "CHECK", "GC", "STATUS"]) {
    await t.step(verb, async () => {
      const process = fakeProcess(fullEnv(verb), JSON.stringify(CONFIG));
      const stub = stubVerbs();
      assert.equal(
        await runInvocation(process.io, { loadVerbs: () => Promise.resolve(stub.verbs) }),
        0,
      );
      assert.deepEqual(process.stdout, []);
      assert.deepEqual(stub.calls.map((c) => c.verb), [verb]);
    });
  }
});

Deno.test("runInvocation VERSION: supported versions, no verbs loaded", async (t) => {
  const cases: [string, string | Uint8Array, string][] = [
    ["empty stdin", new Uint8Array(), "1.1.0"],
    ["whitespace stdin", "  \n", "1.1.0"],
    ["cniVersion 0.4.0", '{"cniVersion":"0.4.0"}', "0.4.0"],
    ["cniVersion 1.0.0", '{"cniVersion":"1.0.0"}', "1.0.0"],
    ["full config", JSON.stringify({ ...CONFIG, cniVersion: "0.3.1" }), "0.3.1"],
  ];
  for (const [label, stdin, version] of cases) {
    await t.step(label, async () => {
      const process = fakeProcess({ CNI_COMMAND: "VERSION" }, stdin);
      let loaded = false;
      const code = await runInvocation(process.io, {
        loadVerbs: () => {
          loaded = true;
          return Promise.reject(new Error("VERSION must not load the verbs"));
        },
      });
      assert.equal(code, 0);
      assert.equal(loaded, false);
      const document = onlyDocument(process);
      assert.deepEqual(Object.keys(document).sort(), ["cniVersion", "supportedVersions"]);
      assert.equal(document.cniVersion, version);
      assert.deepEqual(document.supportedVersions, SUPPORTED);
    });
  }
});

interface FailureCase {
  label: string;
  env: Record<string, string | undefined>;
  stdin: string | Uint8Array;
  /** The verbs throw this (when they run). */
  throws?: unknown;
  code: number;
  /** cniVersion of the error document. */
  cniVersion: string;
  /** Text the message must contain. */
  mentions?: string[];
  /** Whether the verb may be reached. */
  verbRuns: boolean;
}

const FAILURES: FailureCase[] = [
  {
    label: "verb throws CniError 101: code preserved",
    env: fullEnv("ADD"),
    stdin: JSON.stringify(CONFIG),
    throws: new CniError(101, "BGPInstance lookup failed for node node-a"),
    code: 101,
    cniVersion: "1.1.0",
    mentions: ["BGPInstance lookup failed for node node-a"],
    verbRuns: true,
  },
  {
    label: "verb throws CniError 11 in a 0.4.0 config: the error uses 0.4.0",
    env: fullEnv("DEL"),
    stdin: JSON.stringify({ ...CONFIG, cniVersion: "0.4.0" }),
    throws: new CniError(11, "API server unreachable"),
    code: 11,
    cniVersion: "0.4.0",
    mentions: ["API server unreachable"],
    verbRuns: true,
  },
  {
    label: "verb throws a plain Error: code 5 internal error",
    env: fullEnv("ADD"),
    stdin: JSON.stringify(CONFIG),
    throws: new Error("boom"),
    code: IO_FAILURE,
    cniVersion: "1.1.0",
    mentions: ["internal error", "boom"],
    verbRuns: true,
  },
  {
    label: "verb throws a non-Error value: code 5",
    env: fullEnv("CHECK"),
    stdin: JSON.stringify(CONFIG),
    throws: "a string",
    code: IO_FAILURE,
    cniVersion: "1.1.0",
    mentions: ["internal error"],
    verbRuns: true,
  },
  {
    label: "malformed JSON: code 6",
    env: fullEnv("ADD"),
    stdin: "{not json",
    code: DECODE_FAILURE,
    cniVersion: "1.1.0",
    verbRuns: false,
  },
  {
    label: "empty stdin for ADD: code 6",
    env: fullEnv("ADD"),
    stdin: new Uint8Array(),
    code: DECODE_FAILURE,
    cniVersion: "1.1.0",
    verbRuns: false,
  },
  {
    label: "invalid config field: code 7 naming it",
    env: fullEnv("ADD"),
    stdin: JSON.stringify({ ...CONFIG, cniVersion: "1.0.0", mtu: 0 }),
    code: INVALID_CONFIG,
    cniVersion: "1.0.0",
    mentions: ["mtu"],
    verbRuns: false,
  },
  {
    label: "unsupported cniVersion: code 1",
    env: fullEnv("ADD"),
    stdin: JSON.stringify({ ...CONFIG, cniVersion: "0.2.0" }),
    code: INCOMPATIBLE_VERSION,
    cniVersion: "1.1.0",
    mentions: ["0.2.0"],
    verbRuns: false,
  },
  {
    label: "CHECK with 0.3.1: code 1",
    env: fullEnv("CHECK"),
    stdin: JSON.stringify({ ...CONFIG, cniVersion: "0.3.1" }),
    code: INCOMPATIBLE_VERSION,
    cniVersion: "0.3.1",
    mentions: ["CHECK"],
    verbRuns: false,
  },
  {
    label: "GC with 1.0.0: code 1",
    env: fullEnv("GC"),
    stdin: JSON.stringify({ ...CONFIG, cniVersion: "1.0.0" }),
    code: INCOMPATIBLE_VERSION,
    cniVersion: "1.0.0",
    mentions: ["GC"],
    verbRuns: false,
  },
  {
    label: "STATUS with 0.4.0: code 1",
    env: fullEnv("STATUS"),
    stdin: JSON.stringify({ ...CONFIG, cniVersion: "0.4.0" }),
    code: INCOMPATIBLE_VERSION,
    cniVersion: "0.4.0",
    mentions: ["STATUS"],
    verbRuns: false,
  },
  {
    label: "missing CNI_CONTAINERID: code 4",
    env: fullEnv("ADD", { CNI_CONTAINERID: undefined }),
    stdin: JSON.stringify(CONFIG),
    code: INVALID_ENVIRONMENT,
    cniVersion: "1.1.0",
    mentions: ["CNI_CONTAINERID"],
    verbRuns: false,
  },
  {
    label: "unknown CNI_COMMAND: code 4",
    env: fullEnv("FROB"),
    stdin: JSON.stringify(CONFIG),
    code: INVALID_ENVIRONMENT,
    cniVersion: "1.1.0",
    mentions: ["CNI_COMMAND"],
    verbRuns: false,
  },
];

Deno.test("runInvocation failures: one error document {cniVersion, code, msg}, exit ≠ 0", async (t) => {
  for (const c of FAILURES) {
    await t.step(c.label, async () => {
      const process = fakeProcess(c.env, c.stdin);
      const stub = stubVerbs(() => {
        if (c.throws !== undefined) throw c.throws;
      });
      const code = await runInvocation(process.io, {
        loadVerbs: () => Promise.resolve(stub.verbs),
      });
      assert.notEqual(code, 0);
      const document = onlyDocument(process);
      assertErrorDocument(document, c.code, c.cniVersion);
      for (const text of c.mentions ?? []) {
        assert.ok(
          (document.msg as string).includes(text),
          `${JSON.stringify(document.msg)} mentions ${text}`,
        );
      }
      if (!c.verbRuns) assert.deepEqual(stub.calls, [], "the verb must not run");
    });
  }
});

Deno.test("runInvocation keeps a CniError's details", async () => {
  const process = fakeProcess(fullEnv("ADD"), JSON.stringify(CONFIG));
  const stub = stubVerbs(() => {
    throw new CniError(100, "ip link add failed", { details: "RTNETLINK answers: File exists" });
  });
  assert.notEqual(
    await runInvocation(process.io, { loadVerbs: () => Promise.resolve(stub.verbs) }),
    0,
  );
  const document = onlyDocument(process);
  assertErrorDocument(document, 100, "1.1.0");
  assert.equal(document.details, "RTNETLINK answers: File exists");
});

Deno.test("runInvocation: failing to load the verbs is still one error document", async () => {
  const process = fakeProcess(fullEnv("ADD"), JSON.stringify(CONFIG));
  const code = await runInvocation(process.io, {
    loadVerbs: () => Promise.reject(new Error("module not found")),
  });
  assert.notEqual(code, 0);
  assertErrorDocument(onlyDocument(process), IO_FAILURE, "1.1.0");
});

Deno.test("runInvocation: verb logs and error logs never reach stdout", async () => {
  const process = fakeProcess(fullEnv("ADD"), JSON.stringify(CONFIG));
  const stub = stubVerbs((_verb, context) => {
    context.log.debug("debug line");
    context.log.warn("warn line");
    context.log.error("error line");
    throw new CniError(104, "diverged");
  });
  await runInvocation(process.io, { loadVerbs: () => Promise.resolve(stub.verbs) });
  const stderr = process.stderr.join("");
  for (const line of ["debug line", "warn line", "error line"]) {
    assert.ok(stderr.includes(line), `stderr has ${line}`);
  }
  assertErrorDocument(onlyDocument(process), 104, "1.1.0");
});

Deno.test("runInvocation: the verb's host has one control-plane session; its open failure is the verb's error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const config = JSON.stringify(CONFIG);
    // The node's settings, where the plugin reads them.
    const nodeConfig = `${dir}/node.json`;
    await Deno.writeTextFile(
      nodeConfig,
      JSON.stringify({
        kubeconfig: `${dir}/missing.kubeconfig`,
        agent_socket: `${dir}/no-agent.sock`,
      }),
    );
    const stub = stubVerbs();
    let sameSession = false;
    const verbs: Verbs = {
      ...stub.verbs,
      del: async (_context, host) => {
        const first = host.controlPlane();
        sameSession = host.controlPlane() === first;
        await first;
      },
    };
    const process = fakeProcess({ ...fullEnv("DEL"), GALACTIC_NODE_CONFIG: nodeConfig }, config);
    assert.equal(await runInvocation(process.io, { loadVerbs: () => Promise.resolve(verbs) }), 1);
    assert.ok(sameSession, "a second call returns the session opened by the first");
    const document = onlyDocument(process);
    assert.match(String(document.msg), /missing\.kubeconfig/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
