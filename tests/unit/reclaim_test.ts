/**
 * Reclaiming attachments whose sandbox is gone, without a runtime GC: what
 * counts as evidence, the teardown (as GC's), and that a live attachment is
 * never touched, including when an ADD of a new sandbox races the reclaim.
 * In process over the fake host, whose pod netns are plain files (so these
 * tests probe "the file is gone"; the nsfs rules are tested on their own).
 *
 * @module
 */

import assert from "node:assert/strict";
import { createLogger } from "../../lib/log/logger.ts";
import { netnsGone, reclaimStale, type SandboxProbe } from "../../lib/verbs/reclaim.ts";
import { reclaimNode } from "../../lib/cli/gc_command.ts";
import { runCli } from "../../lib/cli/cli.ts";
import { reclaimPeriodically } from "../../lib/cli/agent_command.ts";
import {
  cniInProcess as cni,
  leftovers,
  NODE,
  ok,
  type World,
  world,
} from "../support/cni_world.ts";

const fileGone: SandboxProbe = (netns) =>
  Deno.stat(netns).then(() => undefined, () => `netns ${netns} no longer exists`);

function reclaim(w: World, probe: SandboxProbe = fileGone): ReturnType<typeof reclaimNode> {
  return reclaimNode({
    stateDir: `${w.dir}/state`,
    cniPath: [w.host.cniDir],
    kubeconfig: w.kubeconfig,
    nodeName: NODE,
    apiTimeoutSeconds: 3,
    runner: w.host.runner(),
    env: {},
    log: createLogger({ level: "error", stderr: () => {} }),
    probe,
  });
}

const other = {
  vpc: "Ab",
  vpcattachment: "1",
  ipam: { type: "static", addresses: [{ address: "10.9.0.2/24" }] },
};

Deno.test("an attachment whose netns is gone is torn down like GC; a live one is kept", async () => {
  await using w = await world();
  const gone = await w.host.netns("c1");
  ok(await cni(w, "ADD", { config: w.config(), containerId: "c1", netns: gone }), "ADD c1");
  const live = await w.host.netns("c2");
  const add2 = ok(
    await cni(w, "ADD", { config: w.config(other), containerId: "c2", netns: live }),
    "ADD c2",
  );
  await w.host.deleteNetns(gone);

  const reclaimed = await reclaim(w);
  assert.deepEqual(reclaimed.map((r) => [r.containerId, r.reason, r.error]), [
    ["c1", `netns ${gone} no longer exists`, undefined],
  ]);
  ok(
    await cni(w, "CHECK", {
      config: { ...w.config(other), prevResult: add2.json },
      containerId: "c2",
      netns: live,
    }),
    "CHECK of the live attachment",
  );
  assert.deepEqual(await reclaim(w), [], "a second round finds nothing");
  ok(await cni(w, "DEL", { config: w.config(other), containerId: "c2", netns: live }), "DEL c2");
  assert.deepEqual(await leftovers(w), [], "c1's VRF, veth, SID, rules, object and record went");
});

Deno.test("an ADD that re-owns the attachment between the scan and the lock is left alone", async () => {
  await using w = await world();
  const old = await w.host.netns("c-old");
  ok(await cni(w, "ADD", { config: w.config(), containerId: "c-old", netns: old }), "ADD old");
  await w.host.deleteNetns(old);
  const fresh = await w.host.netns("c-new");
  let added: Record<string, unknown> | undefined;
  // The scan sees c-old's sandbox gone; before the reclaim takes the lock, a
  // new sandbox's ADD of the same attachment completes.
  const probe: SandboxProbe = async (netns) => {
    if (!added) {
      added = ok(
        await cni(w, "ADD", { config: w.config(), containerId: "c-new", netns: fresh }),
        "ADD new",
      ).json;
    }
    return await fileGone(netns);
  };
  assert.deepEqual(await reclaim(w, probe), []);
  ok(
    await cni(w, "CHECK", {
      config: { ...w.config(), prevResult: added },
      containerId: "c-new",
      netns: fresh,
    }),
    "CHECK of the new sandbox",
  );
});

Deno.test("a reclaim racing an ADD in flight never breaks the new sandbox's attachment", async () => {
  await using w = await world();
  const old = await w.host.netns("c-old");
  ok(await cni(w, "ADD", { config: w.config(), containerId: "c-old", netns: old }), "ADD old");
  await w.host.deleteNetns(old);
  const fresh = await w.host.netns("c-new");
  // Whichever takes the attachment lock first: the reclaim removes c-old's
  // state before the ADD rebuilds it, or sees c-new's record and stops.
  const [add] = await Promise.all([
    cni(w, "ADD", { config: w.config(), containerId: "c-new", netns: fresh }),
    reclaim(w),
  ]);
  ok(add, "ADD new");
  ok(
    await cni(w, "CHECK", {
      config: { ...w.config(), prevResult: add.json },
      containerId: "c-new",
      netns: fresh,
    }),
    "CHECK of the new sandbox",
  );
});

Deno.test("netns evidence: missing in a visible directory, never a live namespace or an unseen directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await netnsGone("/proc/self/ns/net"), undefined, "a live namespace");
    assert.equal(
      await netnsGone(`${dir}/cni-1234`),
      `netns ${dir}/cni-1234 no longer exists`,
    );
    assert.equal(await netnsGone(`${dir}/absent/cni-1234`), undefined, "directory not visible");
    assert.equal(await netnsGone(""), undefined);
    await Deno.writeTextFile(`${dir}/cni-5678`, "");
    const view = { hostPids: true, hostMounts: true };
    assert.equal(
      await netnsGone(`${dir}/cni-5678`, view),
      `${dir}/cni-5678 is no longer a network namespace (not on nsfs)`,
    );
    assert.equal(
      await netnsGone(`${dir}/cni-5678`, { hostPids: true, hostMounts: false }),
      undefined,
      "without the host's mounts a plain file may hide a live mount",
    );
    assert.equal(
      await netnsGone("/proc/999999999/ns/net", { hostPids: false, hostMounts: false }),
      undefined,
      "another PID namespace's /proc says nothing",
    );
    assert.match(
      String(await netnsGone("/proc/999999999/ns/net", view)),
      /no longer exists \(process gone\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("records without a locator (older galactic) are not reclaimed", async () => {
  await using w = await world();
  const gone = await w.host.netns("c1");
  ok(await cni(w, "ADD", { config: w.config(), containerId: "c1", netns: gone }), "ADD");
  const path = `${w.dir}/state/attachments.json`;
  const state = JSON.parse(await Deno.readTextFile(path));
  for (const record of Object.values(state.attachments)) {
    delete (record as Record<string, unknown>).locator;
  }
  await Deno.writeTextFile(path, JSON.stringify(state));
  await w.host.deleteNetns(gone);
  assert.deepEqual(await reclaim(w), []);
  assert.ok((await leftovers(w)).length > 0);
});

// Keeps reclaimStale's own default probe exercised on a store with nothing to do.
Deno.test("reclaimStale over an empty state directory does nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const host = {
      runner: { run: () => Promise.reject(new Error("no command expected")) },
      controlPlane: () => Promise.reject(new Error("no API expected")),
      nodeName: () => NODE,
    };
    const log = createLogger({ level: "error", stderr: () => {} });
    assert.deepEqual(await reclaimStale(host, { stateDir: dir, cniPath: [], log }), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("galactic gc reclaims a vanished sandbox's attachment and reports it", async () => {
  await using w = await world();
  const gone = await w.host.netns("c1");
  ok(await cni(w, "ADD", { config: w.config(), containerId: "c1", netns: gone }), "ADD");
  await w.host.deleteNetns(gone);
  const run = async (args: string[]): Promise<{ code: number; stdout: string }> => {
    let stdout = "";
    const code = await runCli(args, {
      runner: w.host.runner(),
      stdout: (text) => stdout += text,
      stderr: () => {},
      env: {},
    });
    return { code, stdout };
  };
  const flags = [
    "--state-dir",
    `${w.dir}/state`,
    "--cni-path",
    w.host.cniDir,
    "--kubeconfig",
    w.kubeconfig,
    "--node",
    NODE,
  ];
  // The real evidence: the netns path is gone from a directory this process sees.
  const first = await run(["gc", ...flags, "--json"]);
  assert.equal(first.code, 0, first.stdout);
  assert.deepEqual(
    JSON.parse(first.stdout).reclaimed.map((r: { containerId: string }) => r.containerId),
    ["c1"],
  );
  assert.deepEqual(await leftovers(w), []);
  const second = await run(["gc", ...flags]);
  assert.deepEqual(second, {
    code: 0,
    stdout: "nothing to reclaim: every recorded sandbox is alive\n",
  });
});

Deno.test("the agent's reclaim loop logs a failed round and runs the next", async () => {
  let calls = 0;
  let secondRan!: () => void;
  const second = new Promise<void>((resolve) => secondRan = resolve);
  const lines: string[] = [];
  const loop = reclaimPeriodically(1, () => {
    calls++;
    if (calls === 1) return Promise.reject(new Error("API down"));
    secondRan();
    return Promise.resolve([]);
  }, createLogger({ level: "info", stderr: (line) => lines.push(line) }));
  await second;
  await loop.stop();
  assert.ok(
    lines.some((l) => l.includes("reclaim round failed") && l.includes("API down")),
    lines.join(""),
  );
});
