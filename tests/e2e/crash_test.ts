/**
 * Crash consistency at the process level: the plugin is killed with SIGKILL
 * after each host command of an ADD and of a DEL (the fake host's armed
 * crash, see `crashAfter`), then the runtime's next calls run (ADD again
 * then DEL, or DEL alone, the DEL with an empty netns and no prevResult as a
 * runtime may send it). The node must converge to exactly what a clean run
 * leaves: the fingerprint of everything the plugin owns (links, routes,
 * SIDs, FORWARD rules, interface sysctls, records, BGPVRFInstances, the pod
 * interface) is compared with the clean run's. A live attachment of another
 * VPC sits on the node throughout and must never be touched.
 *
 * Every step is swept when GALACTIC_CRASH_SWEEP=all (`deno task test:crash`,
 * its own CI stage: some 100 plugin processes); `deno task test` takes one
 * step each where most is half-done: ADD killed once its VRF exists (nothing
 * else of it yet), DEL killed once host-device released the pod end.
 *
 * @module
 */

import assert from "node:assert/strict";
import { HOST_NETNS } from "../support/fake_host/kernel.ts";
import { summarize } from "../support/fake_host/mod.ts";
import { cni, leftovers, ok, type Outcome, type World, world } from "../support/cni_world.ts";

const FULL = Deno.env.get("GALACTIC_CRASH_SWEEP") === "all";

/** The attachment under test, in a VPC of its own (its BGPVRFInstance comes and goes). */
function target(w: World): Record<string, unknown> {
  return w.config({ vpc: "kW", vpcattachment: "3" });
}

/** The live attachment (VPC jU) that no crash may disturb. */
function live(w: World): Record<string, unknown> {
  return w.config({
    ipam: { type: "static", addresses: [{ address: "10.9.0.2/24" }] },
    terminations: [{ network: "10.90.0.0/16" }],
  });
}

/** GC of the network as a runtime sends it once the killed sandbox is gone (only "live" valid). */
function gcOf(w: World): { config: Record<string, unknown>; containerId: string; netns: string } {
  return {
    config: { ...live(w), "cni.dev/valid-attachments": [{ containerID: "live", ifname: "net1" }] },
    containerId: "",
    netns: "",
  };
}

/** Everything the plugin owns on the node, pod interfaces included, sorted. */
async function fingerprint(w: World): Promise<string[]> {
  const kernel = await w.host.kernel();
  const pods = kernel.links
    .filter((l) => l.netns !== HOST_NETNS && l.name !== "lo")
    .map((l) => `pod ${l.netns.slice(l.netns.lastIndexOf("/") + 1)} ${l.name} ${l.addresses}`);
  return [...await leftovers(w), ...pods].sort();
}

/**
 * Checks the verb died unanswered, then waits for the children it left: a
 * killed plugin's other commands of the same round (they run in sessions of
 * their own) finish on their own, and the runtime's next call comes only
 * after its backoff. Racing them is another fault than the one swept here.
 */
async function killed(w: World, outcome: Outcome, what: string): Promise<void> {
  assert.notEqual(outcome.code, 0, `${what} was not killed: ${outcome.stdout}`);
  assert.equal(outcome.stdout, "", `${what} printed a result before dying`);
  await w.host.settled();
}

/** Steps to sweep: all of 1..log.length, or (default run) those right after `picks`. */
function steps(log: string[], picks: RegExp[]): number[] {
  if (FULL) return log.map((_, i) => i + 1);
  return picks.map((pick) => {
    const i = log.findIndex((line) => pick.test(line));
    assert.ok(i >= 0, `no command matching ${pick} in:\n${log.join("\n")}`);
    return i + 1;
  });
}

/** A node with the live attachment, and the fingerprints of a clean ADD and DEL of the target. */
async function node(): Promise<
  { w: World; bare: string[]; added: string[]; addLog: string[]; delLog: string[] }
> {
  const w = await world();
  ok(await cni(w, "ADD", { containerId: "live", config: live(w) }), "live ADD");
  const bare = await fingerprint(w);
  await w.host.clearLog();
  ok(await cni(w, "ADD", { config: target(w) }), "clean ADD");
  const addLog = summarize(await w.host.commands());
  const added = await fingerprint(w);
  await w.host.clearLog();
  ok(await cni(w, "DEL", { config: target(w) }), "clean DEL");
  const delLog = summarize(await w.host.commands());
  assert.deepEqual(await fingerprint(w), bare, "clean DEL leaves the node as before");
  return { w, bare, added, addLog, delLog };
}

Deno.test("SIGKILL at each step of ADD: ADD again then DEL, or DEL alone, converge", async () => {
  const { w, bare, added, addLog } = await node();
  await using _ = w;
  for (const n of steps(addLog, [/link add \S+ type vrf/])) {
    await w.host.crashAfter(n);
    await killed(w, await cni(w, "ADD", { config: target(w) }), `ADD killed after step ${n}`);
    ok(await cni(w, "ADD", { config: target(w) }), `ADD after a crash at step ${n}`);
    assert.deepEqual(await fingerprint(w), added, `ADD again after a crash at step ${n}`);
    ok(await cni(w, "DEL", { config: target(w) }), `DEL after ADD again (step ${n})`);
    assert.deepEqual(await fingerprint(w), bare, `DEL after ADD again (step ${n})`);

    await w.host.crashAfter(n);
    await killed(w, await cni(w, "ADD", { config: target(w) }), `ADD killed after step ${n}`);
    ok(
      await cni(w, "DEL", { config: target(w), netns: "" }),
      `DEL (empty netns) after a crash at step ${n}`,
    );
    assert.deepEqual(await fingerprint(w), bare, `DEL alone after a crash at step ${n}`);

    await w.host.crashAfter(n);
    await killed(w, await cni(w, "ADD", { config: target(w) }), `ADD killed after step ${n}`);
    ok(await cni(w, "GC", gcOf(w)), `GC after a crash at step ${n}`);
    assert.deepEqual(await fingerprint(w), bare, `GC after a crash at step ${n}`);
  }
});

Deno.test("SIGKILL at each step of DEL: DEL again converges", async () => {
  const { w, bare, delLog } = await node();
  await using _ = w;
  for (const n of steps(delLog, [/^host-device DEL/])) {
    ok(await cni(w, "ADD", { config: target(w) }), `ADD before DEL crash ${n}`);
    await w.host.crashAfter(n);
    await killed(w, await cni(w, "DEL", { config: target(w) }), `DEL killed after step ${n}`);
    ok(await cni(w, "DEL", { config: target(w) }), `DEL after a crash at step ${n}`);
    assert.deepEqual(await fingerprint(w), bare, `DEL again after a crash at step ${n}`);
  }
});
