/**
 * Faults of the node-local state: a corrupt `attachments.json` (every verb
 * refuses it with code 5 and the recovery, `galactic state` shows it, and
 * `state --rebuild` recovers without losing the live attachment), and
 * records of verbs that were killed halfway (phases). The verbs run
 * in-process through the Host seam; a full or read-only state directory
 * needs a real filesystem (tests/e2e/storage_faults_test.ts).
 *
 * @module
 */

import assert from "node:assert/strict";
import { type CliIo, runCli } from "../../lib/cli/cli.ts";
import { holdLock } from "../support/lock_holder.ts";
import {
  cniInProcess as cni,
  leftovers,
  ok,
  type Outcome,
  VRF,
  world,
} from "../support/cni_world.ts";

async function cli(
  args: string[],
  io: Pick<CliIo, "runner">,
): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(args, {
    ...io,
    stdout: (text) => stdout += text,
    stderr: (text) => stderr += text,
    env: {},
  });
  return { code, stdout, stderr };
}

function refused(outcome: Outcome, what: string): string {
  assert.equal(outcome.json?.code, 5, `${what}: ${outcome.stdout}`);
  return String(outcome.json?.msg);
}

Deno.test("a corrupt attachments.json: every verb refuses with 5, state shows it, --rebuild recovers the live attachment", async () => {
  await using w = await world();
  const live = w.config();
  ok(await cni(w, "ADD", { config: live }), "ADD");
  const before = await leftovers(w);
  const file = `${w.dir}/state/attachments.json`;
  const corrupt = '{"version":1,"attachments":{"secret-token-123';
  await Deno.writeTextFile(file, corrupt);

  const other = w.config({
    vpc: "Ab",
    vpcattachment: "1",
    ipam: { type: "static", addresses: [{ address: "10.9.0.2/24" }] },
  });
  for (
    const [verb, call] of [
      ["ADD", { config: other, containerId: "c2" }],
      ["DEL", { config: live }],
      ["GC", { config: { ...live, "cni.dev/valid-attachments": [] }, containerId: "", netns: "" }],
    ] as const
  ) {
    const msg = refused(await cni(w, verb, call), verb);
    assert.match(msg, /state file .*attachments\.json is corrupt \(not valid JSON \(\d+ bytes\)\)/);
    assert.match(msg, /galactic state --rebuild --state-dir /);
    assert.ok(!msg.includes("secret-token"), `${verb} leaks the file's contents: ${msg}`);
  }
  const stored = await leftovers(w).catch(() => []);
  assert.deepEqual(
    stored.filter((l) => !l.startsWith("record")),
    before.filter((l) => !l.startsWith("record")),
    "nothing changed on the host",
  );
  assert.equal(await Deno.readTextFile(file), corrupt, "the file is left as it was");

  const runner = w.host.runner();
  const shown = await cli(["state", "--state-dir", `${w.dir}/state`], { runner });
  assert.equal(shown.code, 1);
  assert.match(shown.stderr, /is corrupt .*galactic state --rebuild/);

  const rebuilt = await cli(["state", "--state-dir", `${w.dir}/state`, "--rebuild", "--json"], {
    runner,
  });
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  const kept = /kept the corrupt file as (\S+);/.exec(rebuilt.stderr)?.[1];
  assert.ok(kept, rebuilt.stderr);
  assert.equal(await Deno.readTextFile(kept), corrupt, "the corrupt file is kept aside");
  const [record, ...rest] = JSON.parse(rebuilt.stdout).attachments;
  assert.equal(rest.length, 0);
  assert.equal(record.kernel.vrf, VRF);
  assert.equal(record.table, 1000);
  assert.equal(record.containerId, "");
  assert.equal(record.kernel.ok, true);

  const again = await cli(["state", "--state-dir", `${w.dir}/state`, "--rebuild"], { runner });
  assert.equal(again.code, 1, "a healthy file is not rebuilt");
  assert.match(again.stderr, /is not corrupt/);

  // GC of any network keeps a record whose network is unknown; the owner's DEL removes it.
  ok(
    await cni(w, "GC", {
      config: { ...live, "cni.dev/valid-attachments": [] },
      containerId: "",
      netns: "",
    }),
    "GC",
  );
  assert.ok((await w.host.kernel()).link(VRF), "GC kept the rebuilt attachment");
  ok(await cni(w, "ADD", { config: other, containerId: "c2" }), "ADD of another attachment");
  assert.equal(
    (await w.host.kernel()).link("G0000000Ab001V")?.table,
    1001,
    "table 1000 stays reserved",
  );
  ok(await cni(w, "DEL", { config: other, containerId: "c2" }), "DEL other");
  ok(await cni(w, "DEL", { config: live }), "DEL by the owner");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("two DELs of one VPC, the first killed after its withdrawal decision: the second withdraws", async () => {
  await using w = await world();
  const first = w.config();
  const second = w.config({
    vpcattachment: "H",
    ipam: { type: "static", addresses: [{ address: "10.9.0.2/24" }] },
  });
  ok(await cni(w, "ADD", { config: first }), "ADD first");
  ok(await cni(w, "ADD", { config: second, containerId: "c2" }), "ADD second");
  // What a DEL killed right after its VPC decision leaves: the record marked removing.
  const file = `${w.dir}/state/attachments.json`;
  const state = JSON.parse(await Deno.readTextFile(file));
  const key = Object.keys(state.attachments).find((k) => k.endsWith(".10"))!;
  state.attachments[key].phase = "removing";
  await Deno.writeTextFile(file, JSON.stringify(state));

  ok(await cni(w, "DEL", { config: second, containerId: "c2" }), "DEL second");
  assert.deepEqual(w.api.objects("bgpvrfinstances"), [], "the object went with the last live one");
  const check = await cni(w, "CHECK", { config: { ...first, prevResult: {} } });
  assert.equal(check.json?.code, 104);
  assert.match(String(check.json?.msg), /DEL did not complete/);
  ok(await cni(w, "DEL", { config: first }), "the runtime's retried DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("a hung VPC lock holder: DEL and a sibling's ADD fail with 11 naming it, no record lost; state shows the holder; once it ends, DEL completes", async () => {
  await using w = await world();
  const live = w.config({ lock_timeout_seconds: 1 });
  ok(await cni(w, "ADD", { config: live }), "ADD");
  const file = `${w.dir}/state/attachments.json`;
  const before = JSON.parse(await Deno.readTextFile(file)).attachments;
  const [record] = Object.values(before) as { vpcHex: string }[];
  const lock = `${w.dir}/state/vpc-${record!.vpcHex}.lock`;
  await using holder = await holdLock(lock, "ADD container c-hung");

  const runner = w.host.runner();
  const shown = await cli(["state", "--state-dir", `${w.dir}/state`], { runner });
  assert.equal(shown.code, 0, shown.stderr);
  assert.ok(
    shown.stdout.includes(`lock ${lock} held by pid ${holder.pid} (ADD container c-hung) since`),
    shown.stdout,
  );
  const json = JSON.parse(
    (await cli(["state", "--state-dir", `${w.dir}/state`, "--json"], {
      runner,
    })).stdout,
  );
  assert.deepEqual(json.locks.map((l: { file: string }) => l.file), [lock]);

  const del = await cni(w, "DEL", { config: live });
  assert.equal(del.json?.code, 11, del.stdout);
  assert.match(
    String(del.json?.msg),
    new RegExp(`waiting for lock ${lock}, held by pid ${holder.pid}`),
  );
  const sibling = w.config({
    lock_timeout_seconds: 1,
    vpcattachment: "H",
    ipam: { type: "static", addresses: [{ address: "10.9.0.2/24" }] },
  });
  const add = await cni(w, "ADD", { config: sibling, containerId: "c2" });
  assert.equal(add.json?.code, 11, add.stdout);
  assert.equal((await w.host.kernel()).link("G0000000jU00HV"), undefined, "the ADD rolled back");
  assert.deepEqual(JSON.parse(await Deno.readTextFile(file)).attachments, before, "records intact");
  assert.ok((await w.host.kernel()).link(VRF), "the live VRF stays");

  await holder.release();
  ok(await cni(w, "DEL", { config: live }), "the runtime's retried DEL");
  assert.deepEqual(await leftovers(w), []);
});
