/**
 * The operator CLI in-process (`runCli` with a captured io and the fake
 * host's runner): flag validation, `-f` inputs, JSON shapes, exit codes,
 * `state`'s kernel check and `uninstall`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliIo, runCli } from "../../lib/cli/cli.ts";
import type { CommandRunner } from "../../lib/iproute2/mod.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { FakeApiServer } from "../support/fake_api_server.ts";
import { createFakeHost, type FakeHost } from "../support/fake_host/mod.ts";

const NAD = new URL("../../manifests/network-attachment-definition.yaml", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A runner that fails the test if the command reaches the host. */
const NO_HOST: CommandRunner = {
  run: (argv) => Promise.reject(new Error(`unexpected command ${argv.join(" ")}`)),
};

async function cli(
  args: string[],
  runner: CommandRunner = NO_HOST,
  env: Record<string, string> = {},
): Promise<Run> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    runner,
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
    env,
  };
  const code = await runCli(args, io);
  return { code, stdout, stderr };
}

function json(run: Run): Record<string, unknown> {
  return JSON.parse(run.stdout) as Record<string, unknown>;
}

Deno.test("CLI: flag values are validated while parsing, the error names the flag (exit 2)", async () => {
  const cases: [string[], RegExp][] = [
    [["agent", "--log-level", "verbose"], /--log-level.*verbose.*error, warn, info, debug/],
    [["agent", "--timeout", "abc"], /--timeout.*abc.*integer/],
    [["agent", "--timeout", "0"], /--timeout.*'0'.*1\.\.120/],
    [["agent", "--timeout", "1.5"], /--timeout.*1\.5/],
    [["agent", "--socket", "agent.sock"], /--socket.*absolute/],
    [["explain", "--vpc", "jU", "--asn", "65k"], /--asn.*65k/],
    [["state", "--state-dir", "relative"], /--state-dir.*absolute/],
    [["bogus"], /unknown command 'bogus'/],
    [["explain", "--vpc", "jU", "--bogus"], /unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const run = await cli(args);
    assert.equal(run.code, 2, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, message, args.join(" "));
    assert.equal(run.stdout.trim(), "", args.join(" "));
  }
});

Deno.test("CLI: explain names the flag of an invalid value and exits 1", async () => {
  const run = await cli(["explain", "--vpc", "ab-c"]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /--vpc "ab-c"/);
  const locator = await cli(["explain", "--vpc", "jU", "--attachment", "G", "--locator", "10/8"]);
  assert.equal(locator.code, 1);
  assert.match(locator.stderr, /--locator "10\/8": must be an IPv6 prefix/);
  const node = await cli(["explain", "--vpc", "jU", "--node", "Bad_Node"]);
  assert.equal(node.code, 1);
  assert.match(node.stderr, /--node "Bad_Node": must be a lowercase RFC 1123 subdomain/);
  const none = await cli(["explain"]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /--vpc or -f is required/);
});

Deno.test("CLI: explain -f reads the example NAD (YAML) like the plugin reads its config", async () => {
  const run = await cli(["explain", "-f", NAD, "--node", "node-a", "--asn", "65000", "--json"]);
  assert.equal(run.code, 0, run.stderr);
  const document = json(run);
  assert.deepEqual(document.interfaces, {
    vrf: "G0000000jU00GV",
    host: "G0000000jU00GH",
    guest: "G0000000jU00GG",
  });
  assert.equal(document.srv6Endpoint, "fc00:0:1::b04:10/128");
  assert.equal(document.routeDistinguisher, "65000:2820");
  assert.match(String(document.bgpVrfInstance), /node-a/);

  const human = await cli(["explain", "-f", NAD]);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^vrf interface\s+G0000000jU00GV$/m);
  assert.doesNotMatch(human.stdout, /route distinguisher/); // no --asn: not derivable
});

Deno.test("CLI: -f takes a conflist and a JSON NAD, and refuses files without exactly one galactic config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "galactic-cli-" });
  try {
    const plugin = { type: "galactic", vpc: "Z", vpcattachment: "1", srv6_locator: "fd00:1::/64" };
    const conflist = join(dir, "net.conflist");
    await Deno.writeTextFile(
      conflist,
      JSON.stringify({
        cniVersion: "1.0.0",
        name: "net",
        plugins: [plugin, { type: "tuning" }],
      }),
    );
    const fromList = await cli(["explain", "-f", conflist, "--json"]);
    assert.equal(fromList.code, 0, fromList.stderr);
    assert.equal((json(fromList).interfaces as { vrf: string }).vrf, "G00000000Z001V");

    const nadJson = join(dir, "nad.json");
    const config = { cniVersion: "1.0.0", name: "n", ...plugin, vpc: "Y" };
    await Deno.writeTextFile(
      nadJson,
      JSON.stringify({
        apiVersion: "k8s.cni.cncf.io/v1",
        kind: "NetworkAttachmentDefinition",
        metadata: { name: "n" },
        spec: { config: JSON.stringify(config) },
      }),
    );
    const fromNad = await cli(["explain", "-f", nadJson, "--json"]);
    assert.equal(fromNad.code, 0, fromNad.stderr);
    assert.equal((json(fromNad).vpc as { text: string }).text, "00000000Y");

    const two = join(dir, "two.yaml");
    const nad = await Deno.readTextFile(NAD);
    await Deno.writeTextFile(two, `${nad}\n---\n${nad}`);
    const ambiguous = await cli(["explain", "-f", two]);
    assert.equal(ambiguous.code, 1);
    assert.match(ambiguous.stderr, /holds 2 galactic network configurations/);

    const bad = join(dir, "bad.json");
    await Deno.writeTextFile(bad, JSON.stringify({ ...config, vpc: "no-no" }));
    const invalid = await cli(["explain", "-f", bad]);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /bad\.json: .*vpc/);

    const both = await cli(["explain", "-f", bad, "--vpc", "jU"]);
    assert.equal(both.code, 1);
    assert.match(both.stderr, /drop --vpc/);

    const missing = await cli(["explain", "-f", join(dir, "nope.yaml")]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read -f .*nope\.yaml/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A state dir with two records (jU.G and jU.H); only jU.G's VRF and veth exist in `host`. */
async function nodeWithRecords(host: FakeHost, dir: string): Promise<string> {
  const stateDir = join(dir, "state");
  await Deno.mkdir(stateDir);
  const record = (attachment: string, hex: string, table: number): [string, unknown] => [
    `b04.${hex}`,
    {
      network: "tenant-a",
      vpc: "0000000jU",
      attachment,
      vpcHex: "b04",
      containerId: `c-${attachment}`,
      ifname: "net1",
      netns: "/var/run/netns/x",
      table,
      node: "node-a",
    },
  ];
  await Deno.writeTextFile(
    join(stateDir, "attachments.json"),
    JSON.stringify({
      version: 1,
      attachments: Object.fromEntries([record("00G", "10", 1000), record("00H", "11", 1001)]),
    }),
  );
  for (
    const argv of [
      ["ip", "link", "add", "G0000000jU00GV", "type", "vrf", "table", "1000"],
      ["ip", "link", "add", "G0000000jU00GH", "type", "veth", "peer", "name", "G0000000jU00GG"],
      ["ip", "link", "set", "G0000000jU00GH", "master", "G0000000jU00GV"],
      ["iptables", "-A", "FORWARD", "-o", "G0000000jU00GH", "-j", "ACCEPT"],
      ["ip6tables", "-A", "FORWARD", "-o", "G0000000jU00GH", "-j", "ACCEPT"],
    ]
  ) {
    const out = await host.run(argv);
    assert.equal(out.code, 0, `${argv.join(" ")}: ${out.stderr}`);
  }
  return stateDir;
}

Deno.test("CLI: state checks each record's VRF and veth through the runner; a missing dir is an error", async () => {
  await using host = await createFakeHost();
  const dir = await Deno.makeTempDir({ prefix: "galactic-cli-" });
  try {
    const missing = await cli(["state", "--state-dir", join(dir, "nope")], host.runner());
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /state dir .*nope does not exist/);
    assert.equal(missing.stdout, "");

    const stateDir = await nodeWithRecords(host, dir);
    const run = await cli(["state", "--state-dir", stateDir, "--json"], host.runner());
    assert.equal(run.code, 0, run.stderr);
    const document = json(run) as {
      stateDir: string;
      attachments: { key: string; table: number; kernel: Record<string, unknown> }[];
    };
    assert.equal(document.stateDir, stateDir);
    assert.deepEqual(
      document.attachments.map((a) => [a.key, a.table, a.kernel]),
      [
        ["b04.10", 1000, {
          vrf: "G0000000jU00GV",
          vrfPresent: true,
          hostVeth: "G0000000jU00GH",
          hostVethPresent: true,
          ok: true,
        }],
        ["b04.11", 1001, {
          vrf: "G0000000jU00HV",
          vrfPresent: false,
          hostVeth: "G0000000jU00HH",
          hostVethPresent: false,
          ok: false,
        }],
      ],
    );
    // One ip process for all records.
    const ips = (await host.commands()).filter((c) =>
      c.argv[0] === "ip" && c.argv.includes("-json")
    );
    assert.equal(ips.length, 1);

    const human = await cli(["state", "--state-dir", stateDir], host.runner());
    assert.match(human.stdout, /attachment 00G .*: kernel ok$/m);
    assert.match(
      human.stdout,
      /attachment 00H .*: MISSING VRF G0000000jU00HV \(table 1001\), veth/m,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: status -f reports not ready with the STATUS error, typed, and exits 1", async () => {
  const dir = await Deno.makeTempDir({ prefix: "galactic-cli-" });
  try {
    const config = join(dir, "net.json");
    await Deno.writeTextFile(
      config,
      JSON.stringify({
        cniVersion: "1.0.0", // STATUS needs 1.1.0: the command asks at 1.1.0 regardless
        name: "tenant-a",
        type: "galactic",
        vpc: "jU",
        vpcattachment: "G",
        srv6_locator: "fc00:0:1::/48",
        api_timeout_seconds: 1,
      }),
    );
    // The node's own settings, where the plugin and the CLI both find them.
    const nodeConfig = join(dir, "node.json");
    await Deno.writeTextFile(
      nodeConfig,
      JSON.stringify({
        kubeconfig: join(dir, "no-kubeconfig"),
        node_name: "node-a",
        state_dir: join(dir, "state"),
        agent_socket: join(dir, "agent.sock"),
      }),
    );
    const run = await cli(
      ["status", "-f", config, "--cni-path", join(dir, "empty"), "--json"],
      NO_HOST,
      { GALACTIC_NODE_CONFIG: nodeConfig },
    );
    assert.equal(run.code, 1, run.stderr);
    const document = json(run) as Record<string, unknown> & {
      error: { code: number; msg: string };
    };
    assert.deepEqual(Object.keys(document).sort(), [
      "agent",
      "attachments",
      "error",
      "healthy",
      "network",
      "ready",
    ]);
    assert.equal(document.network, "tenant-a");
    assert.equal(document.ready, false);
    assert.equal(document.healthy, false);
    assert.equal(document.error.code, 50);
    assert.match(document.error.msg, /host-device/);
    assert.match(document.error.msg, /no-kubeconfig/);
    assert.deepEqual(document.agent, { socket: join(dir, "agent.sock"), present: false });
    assert.deepEqual(document.attachments, { recorded: 0, missingKernelObjects: 0 });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: uninstall refuses while attachments have kernel objects (recorded or not), --force removes everything, a rerun is a no-op", async () => {
  await using host = await createFakeHost();
  const dir = await Deno.makeTempDir({ prefix: "galactic-cli-" });
  try {
    const stateDir = await nodeWithRecords(host, dir);
    const binDir = join(dir, "bin");
    const configDir = join(dir, "galactic.d");
    await Deno.mkdir(binDir);
    await Deno.mkdir(configDir);
    for (const file of [join(binDir, "galactic"), join(binDir, "host-device")]) {
      await Deno.writeTextFile(file, "binary");
    }
    for (const file of ["kubeconfig", "node-name", "node.json"]) {
      await Deno.writeTextFile(join(configDir, file), "x");
    }
    const socket = join(dir, "agent.sock");
    await Deno.writeTextFile(socket, "");
    const args = [
      "uninstall",
      "--cni-bin-dir",
      binDir,
      "--config-dir",
      configDir,
      "--state-dir",
      stateDir,
      "--agent-socket",
      socket,
      "--json",
    ];

    // A VRF of the plugin's naming that no record explains (its state was lost).
    await host.run(["ip", "link", "add", "G00000000Z001V", "type", "vrf", "table", "1005"]);

    const refused = await cli(args, host.runner());
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /2 attachment\(s\) still have kernel objects \(0000000jU\.00G of container c-00G, 00000000Z\.001 \(no record\)\).*--force/,
    );
    assert.ok(await exists(join(binDir, "galactic")), "nothing removed when refused");
    assert.ok(await exists(join(stateDir, "attachments.json")));

    const forced = await cli([...args, "--force"], host.runner());
    assert.equal(forced.code, 0, forced.stderr);
    const report = json(forced) as {
      steps: { what: string; action: string }[];
      attachmentsRemoved: string[];
    };
    assert.deepEqual(report.attachmentsRemoved, [
      "0000000jU.00G",
      "0000000jU.00H",
      "00000000Z.001",
    ]);
    assert.deepEqual(
      report.steps.map((s) => [s.what, s.action]),
      [
        ["plugin", "removed"],
        ["kubeconfig", "removed"],
        ["node-name", "removed"],
        ["node.json", "removed"],
        ["config dir", "removed"],
        ["state dir", "removed"],
        ["agent socket", "removed"],
      ],
    );
    const links = await host.run(["ip", "-json", "link", "show"]);
    assert.doesNotMatch(links.stdout, /"G[0-9A-Za-z]{12}[VHG]"/);
    for (const tool of ["iptables", "ip6tables"]) {
      assert.doesNotMatch((await host.run([tool, "-S", "FORWARD"])).stdout, /G0000000jU/);
    }
    assert.ok(await exists(join(binDir, "host-device")), "delegates stay");

    const again = await cli(args, host.runner());
    assert.equal(again.code, 0, again.stderr);
    assert.ok(
      (json(again) as { steps: { action: string }[] }).steps.every((s) => s.action === "absent"),
      again.stdout,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: uninstall keeps a config dir holding files the installer did not write", async () => {
  await using host = await createFakeHost();
  const dir = await Deno.makeTempDir({ prefix: "galactic-cli-" });
  try {
    const configDir = join(dir, "galactic.d");
    await Deno.mkdir(configDir);
    await Deno.writeTextFile(join(configDir, "kubeconfig"), "x");
    await Deno.writeTextFile(join(configDir, "mine.conf"), "operator's");
    const args = [
      "uninstall",
      "--cni-bin-dir",
      join(dir, "bin"),
      "--config-dir",
      configDir,
      "--state-dir",
      join(dir, "state"),
      "--agent-socket",
      join(dir, "agent.sock"),
    ];
    const run = await cli(args, host.runner());
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /kept\s+config dir .*mine\.conf/);
    assert.ok(await exists(join(configDir, "mine.conf")));
    assert.ok(!(await exists(join(configDir, "kubeconfig"))));

    // A credential refresh killed before its rename leaves its temporary file: that one goes;
    // a look-alike the writer never makes stays.
    await Deno.remove(join(configDir, "mine.conf"));
    const unfinished = `.kubeconfig.tmp-${"0a".repeat(12)}`;
    await Deno.writeTextFile(join(configDir, unfinished), "token");
    await Deno.writeTextFile(join(configDir, ".kubeconfig.tmp-operator"), "x");
    const again = await cli(args, host.runner());
    assert.equal(again.code, 0, again.stderr);
    assert.ok(!(await exists(join(configDir, unfinished))), again.stdout);
    assert.match(again.stdout, /kept\s+config dir .*: \.kubeconfig\.tmp-operator\)$/m);
    await Deno.remove(join(configDir, ".kubeconfig.tmp-operator"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI: install --json reports typed actions, and uninstall removes what install wrote", async () => {
  await using host = await createFakeHost();
  await using api = new FakeApiServer({ rbac: AGENT_RBAC });
  const dir = await Deno.makeTempDir({ prefix: "galactic-cli-" });
  try {
    const sa = join(dir, "sa");
    await Deno.mkdir(sa);
    // The pod's identity, which requests the plugin's token.
    const podKubeconfig = await api.writeKubeconfigFile(join(dir, "pod-kubeconfig"));
    await Deno.writeTextFile(
      join(sa, "ca.crt"),
      "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
    );
    const source = join(dir, "galactic-build");
    await Deno.writeFile(source, new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 1, 2, 3]));
    const binDir = join(dir, "bin");
    const configDir = join(dir, "galactic.d");
    const dirs = ["--cni-bin-dir", binDir, "--config-dir", configDir];
    const install = await cli([
      "install",
      ...dirs,
      "--node-name",
      "node-a",
      "--service-account-dir",
      sa,
      "--server",
      api.url,
      "--kubeconfig",
      podKubeconfig,
      "--source",
      source,
      "--json",
    ]);
    assert.equal(install.code, 0, install.stderr);
    const report = json(install) as { server: string; changed: boolean; files: unknown[] };
    assert.equal(report.server, api.url);
    assert.equal(report.changed, true);
    assert.deepEqual(
      new Set(report.files.map((f) => (f as { role: string; action: string }).action)),
      new Set(["created"]),
    );

    const removed = await cli([
      "uninstall",
      ...dirs,
      "--state-dir",
      join(dir, "state"),
      "--agent-socket",
      join(dir, "agent.sock"),
    ], host.runner());
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual([...Deno.readDirSync(binDir)], []);
    assert.ok(!(await exists(configDir)), "the config dir held only the installer's files");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
