/**
 * The operator CLI against a node the plugin really configured (fake host,
 * fake API server, `bin/galactic` as a process): `status -f` and `state`
 * after an ADD, and after the kernel lost the attachment's VRF.
 */

import assert from "node:assert/strict";
import { cni, LAUNCHER, NODE, ok, VRF, type World, world } from "../support/cni_world.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function galactic(w: World, args: string[]): Promise<Run> {
  const out = await new Deno.Command(LAUNCHER, {
    args,
    clearEnv: true,
    // The node configuration the plugin reads, as on a node galactic install set up.
    env: {
      ...w.host.env,
      HOME: Deno.env.get("HOME") ?? "/root",
      GALACTIC_NODE_CONFIG: w.nodeConfig,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("status -f NAD and state after an ADD: healthy, then the lost VRF shows and status exits 1", async () => {
  await using w = await world();
  // A NAD as an operator has it, with the shipped cniVersion 1.0.0 (STATUS needs 1.1.0).
  const config = w.config({ cniVersion: "1.0.0" });
  const nad = `${w.dir}/nad.yaml`;
  await Deno.writeTextFile(
    nad,
    [
      "apiVersion: k8s.cni.cncf.io/v1",
      "kind: NetworkAttachmentDefinition",
      "metadata:",
      "  name: tenant-a",
      "spec:",
      `  config: '${JSON.stringify(config)}'`,
      "",
    ].join("\n"),
  );
  ok(await cni(w, "ADD", { config }), "ADD");
  const statusArgs = ["status", "-f", nad, "--cni-path", w.host.cniDir, "--json"];

  const healthy = await galactic(w, statusArgs);
  assert.equal(healthy.code, 0, healthy.stdout + healthy.stderr);
  assert.deepEqual(JSON.parse(healthy.stdout), {
    network: "tenant-a",
    ready: true,
    error: null,
    agent: { socket: `${w.dir}/agent.sock`, present: false },
    attachments: { recorded: 1, missingKernelObjects: 0 },
    healthy: true,
  });

  assert.equal((await w.host.run(["ip", "link", "del", VRF])).code, 0);
  const state = await galactic(w, ["state", "--state-dir", `${w.dir}/state`, "--json"]);
  assert.equal(state.code, 0, state.stderr);
  const [record] = JSON.parse(state.stdout).attachments;
  assert.equal(record.node, NODE);
  assert.equal(record.containerId, "c1");
  assert.equal(record.kernel.vrfPresent, false);
  assert.equal(record.kernel.ok, false);

  const unhealthy = await galactic(w, statusArgs);
  assert.equal(unhealthy.code, 1, unhealthy.stderr);
  const document = JSON.parse(unhealthy.stdout);
  assert.equal(document.ready, true);
  assert.deepEqual(document.attachments, { recorded: 1, missingKernelObjects: 1 });
  assert.equal(document.healthy, false);
});
