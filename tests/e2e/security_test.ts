/**
 * The plugin runs as root and a tenant writes its network configuration
 * (the NAD) and part of `CNI_ARGS`: process-level checks that no such input
 * makes it touch a path of the tenant's choosing, load another credential, or
 * print file contents.
 */

import assert from "node:assert/strict";
import { cni, ok, world } from "../support/cni_world.ts";

Deno.test("a NAD naming node-owned paths is refused with code 7 and nothing is created there", async () => {
  await using w = await world();
  const target = `${w.dir}/tenant-chosen`;
  const fields: Record<string, unknown> = {
    state_dir: `${target}/state`,
    log_file: `${target}/log`,
    agent_socket: `${target}/agent.sock`,
    kubeconfig: `${w.dir}/node.json`,
    node_name: "other-node",
  };
  for (const [field, value] of Object.entries(fields)) {
    const add = await cni(w, "ADD", { config: w.config({ [field]: value }) });
    assert.equal(add.code, 1, add.stdout);
    assert.equal(add.json?.code, 7, add.stdout);
    assert.match(String(add.json?.msg), new RegExp(`"${field}" is a node setting`));
  }
  await assert.rejects(() => Deno.lstat(target), Deno.errors.NotFound);
  assert.equal(w.api.requests.length, 0, "no API call was made");
  assert.deepEqual((await w.host.kernel()).links.filter((l) => l.name.startsWith("G")), []);
  // The same node, through its own configuration, works.
  ok(await cni(w, "ADD", { config: w.config() }), "ADD");
});

const SECRET = "s3cr3t-TOKEN-4f9a";

/** Asserts `secret` is nowhere the plugin wrote: stdout, stderr, the log file. */
async function assertNotRevealed(
  outcome: { stdout: string; stderr: string },
  logFile: string,
): Promise<void> {
  assert.ok(!outcome.stdout.includes(SECRET), `stdout reveals it: ${outcome.stdout}`);
  assert.ok(!outcome.stderr.includes(SECRET), `stderr reveals it: ${outcome.stderr}`);
  const log = await Deno.readTextFile(logFile).catch(() => "");
  assert.ok(!log.includes(SECRET), `the log reveals it: ${log}`);
}

Deno.test("a kubeconfig that does not parse is named with its line, never quoted", async () => {
  await using w = await world();
  const kubeconfig = `${w.dir}/broken-kubeconfig`;
  await Deno.writeTextFile(
    kubeconfig,
    `apiVersion: v1\nusers:\n- name: u\n  user:\n    token: ${SECRET}: [unclosed\n`,
    { mode: 0o600 },
  );
  const logFile = `${w.dir}/galactic.log`;
  const node = JSON.parse(await Deno.readTextFile(w.nodeConfig));
  await Deno.writeTextFile(
    w.nodeConfig,
    JSON.stringify({ ...node, kubeconfig, log_file: logFile }),
  );
  const add = await cni(w, "ADD", { config: w.config() });
  assert.equal(add.json?.code, 4, add.stdout);
  assert.match(
    String(add.json?.msg),
    new RegExp(`failed to load kubeconfig ${kubeconfig} .*: invalid YAML at line 5 \\(`),
  );
  await assertNotRevealed(add, logFile);
  assert.match(await Deno.readTextFile(logFile), /invalid YAML at line 5/, "the log has the error");
});

Deno.test("oversized or malformed inputs are echoed only in bounded form", async (t) => {
  await using w = await world();
  const logFile = `${w.dir}/galactic.log`;
  const node = JSON.parse(await Deno.readTextFile(w.nodeConfig));
  await Deno.writeTextFile(w.nodeConfig, JSON.stringify({ ...node, log_file: logFile }));
  const long = `${"x".repeat(200)}${SECRET}`;
  const cases: [string, Parameters<typeof cni>[2]][] = [
    ["CNI_ARGS", {
      config: w.config(),
      env: { CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=${long}=` },
    }],
    ["CNI_CONTAINERID", { config: w.config(), containerId: `c ${long}` }],
    ["CNI_IFNAME", { config: w.config(), ifname: long }],
    ["name", { config: w.config({ name: `bad name ${long}` }) }],
    ["vpc", { config: w.config({ vpc: long }) }],
    ["terminations", { config: w.config({ terminations: [{ network: long }] }) }],
    ["ipam.type", { config: w.config({ ipam: { type: `../${long}` } }) }],
  ];
  for (const [field, call] of cases) {
    await t.step(field, async () => {
      const add = await cni(w, "ADD", call);
      assert.notEqual(add.code, 0);
      assert.ok(String(add.json?.msg).includes(field), add.stdout);
      assert.ok(add.stdout.length < 600, `${add.stdout.length} bytes on stdout`);
      await assertNotRevealed(add, logFile);
    });
  }
});

Deno.test("another pod naming a recorded attachment is refused and the owner is untouched", async () => {
  await using w = await world();
  const config = w.config();
  ok(await cni(w, "ADD", { config, containerId: "owner" }), "owner's ADD");
  const dataPlane = async (): Promise<string> => {
    const { links, routes, sysctls, rules } = await w.host.kernel();
    return JSON.stringify({ links, routes, sysctls, rules });
  };
  const kernelBefore = await dataPlane();
  const recordsBefore = await Deno.readTextFile(`${w.dir}/state/attachments.json`);
  const requestsBefore = w.api.requests.length;
  const intruder = {
    config,
    containerId: "intruder",
    env: { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=tenant-b;K8S_POD_NAME=evil" },
  };
  const add = await cni(w, "ADD", intruder);
  assert.equal(add.json?.code, 7, add.stdout);
  assert.match(
    String(add.json?.msg),
    /attachment "0000000jU.00G" is in use by pod "default\/pod-a" \(container "owner"\); pod "tenant-b\/evil" cannot take it over/,
  );
  // The runtime cleans up after a failed ADD: that DEL must not touch the owner either.
  ok(await cni(w, "DEL", intruder), "intruder's DEL");
  assert.equal(await dataPlane(), kernelBefore, "kernel state unchanged");
  assert.equal(await Deno.readTextFile(`${w.dir}/state/attachments.json`), recordsBefore);
  assert.equal(w.api.requests.length, requestsBefore, "no API call");
  // A new sandbox of the owner's pod still takes over (a restarted pod).
  ok(await cni(w, "ADD", { config, containerId: "owner-restarted" }), "same pod's new sandbox");
});
