/**
 * GC and STATUS reach host-device (and through it its IPAM) when it speaks
 * CNI 1.1.0, as the spec requires of a delegating plugin; an older
 * host-device (Debian's stops at 1.0.0) is asked its VERSION and skipped.
 * In process, behind the Host seam, with the fake host's delegate.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type RecordedCommand, summarize } from "../support/fake_host/mod.ts";
import { cniInProcess as cni, ok, type World, world } from "../support/cni_world.ts";

const NODE_CALL = { containerId: "", netns: "", ifname: "" };

async function speak11(w: World): Promise<void> {
  await w.host.update((kernel) => {
    kernel.state.options.delegateVersions.push("1.1.0");
  });
}

function delegateCalls(commands: readonly RecordedCommand[]): RecordedCommand[] {
  return commands.filter((c) => c.argv[0] === "host-device");
}

Deno.test("GC passes the valid attachments and the IPAM config on to host-device", async () => {
  await using w = await world();
  await speak11(w);
  const valid = [{ containerID: "c1", ifname: "net1" }];
  const config = { ...w.config(), "cni.dev/valid-attachments": valid };
  ok(await cni(w, "GC", { config, ...NODE_CALL }), "GC");
  const calls = delegateCalls(await w.host.commands());
  assert.deepEqual(summarize(calls), [
    "host-device VERSION ifname=",
    "host-device GC ifname=",
  ]);
  const sent = JSON.parse(calls[1]!.stdin!);
  assert.equal(sent.cniVersion, "1.1.0");
  assert.deepEqual(sent["cni.dev/valid-attachments"], valid);
  assert.deepEqual(sent.ipam, w.config().ipam);
  assert.equal(calls[1]!.env?.CNI_CONTAINERID, undefined, "GC concerns no container");
});

Deno.test("GC and STATUS skip a host-device that stops at 1.0.0 (asked its VERSION only)", async () => {
  await using w = await world();
  ok(await cni(w, "GC", { config: w.config(), ...NODE_CALL }), "GC");
  ok(await cni(w, "STATUS", { config: w.config(), ...NODE_CALL }), "STATUS");
  assert.deepEqual(summarize(delegateCalls(await w.host.commands())), [
    "host-device VERSION ifname=",
    "host-device VERSION ifname=",
  ]);
});

Deno.test("STATUS asks host-device and reports its failure with code 50", async () => {
  await using w = await world();
  await speak11(w);
  ok(await cni(w, "STATUS", { config: w.config(), ...NODE_CALL }), "STATUS");
  assert.deepEqual(summarize(delegateCalls(await w.host.commands())), [
    "host-device VERSION ifname=",
    "host-device STATUS ifname=",
  ]);
  await w.host.inject({ match: "^host-device STATUS", stderr: "static: IPAM not ready", code: 50 });
  const status = await cni(w, "STATUS", { config: w.config(), ...NODE_CALL });
  assert.equal(status.json?.code, 50, status.stdout);
  assert.match(
    String(status.json?.msg),
    /host-device: host-device STATUS failed: static: IPAM not ready/,
  );
});

Deno.test("a failing delegated GC fails the GC, naming host-device", async () => {
  await using w = await world();
  await speak11(w);
  await w.host.inject({ match: "^host-device GC", stderr: "cannot release", code: 999 });
  const gc = await cni(w, "GC", { config: w.config(), ...NODE_CALL });
  assert.equal(gc.json?.code, 999, gc.stdout);
  assert.match(
    String(gc.json?.msg),
    /failed to pass GC to host-device: host-device GC failed: cannot release/,
  );
});
