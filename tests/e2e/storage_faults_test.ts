/**
 * A full, then read-only, state directory, on a real filesystem: a 64 KiB
 * tmpfs mounted over the state dir in a private mount namespace (`unshare
 * -m`, so nothing outside sees it and it vanishes with the namespace); the
 * plugin runs inside it through `nsenter`. A simulated ENOSPC would only
 * test our simulation of it: this gets the kernel's own errors on the
 * plugin's own writes, temp-file and rename included. Root only (mounts);
 * skipped, saying so, otherwise.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cni, ok, type Outcome, type World, world } from "../support/cni_world.ts";

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(argv[0]!, { args: argv.slice(1), stdin: "null" }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

const canMount = Deno.uid() === 0 &&
  (await run(["unshare", "-m", "--propagation", "private", "true"]).catch(() => ({ code: 1 })))
      .code === 0;
if (!canMount) console.warn("storage_faults_test: skipped (needs root and unshare -m)");

/** A private mount namespace whose state dir is a small tmpfs holding a copy of the state. */
async function smallStateDir(
  w: World,
): Promise<{ via: string[]; sh(script: string): Promise<string> } & AsyncDisposable> {
  const state = `${w.dir}/state`;
  const copy = `${w.dir}/state-copy`;
  await Deno.mkdir(copy);
  const child = new Deno.Command("unshare", {
    args: [
      "-m",
      "--propagation",
      "private",
      "sh",
      "-c",
      `cp -a "$1/." "$2/" && mount -t tmpfs -o size=64k,mode=700 galactic-test "$1" && ` +
      `cp -a "$2/." "$1/" && echo ready && exec sleep 600`,
      "sh",
      state,
      copy,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  assert.equal((await reader.read()).value?.trim(), "ready");
  const via = ["nsenter", "-t", String(child.pid), "-m", "--"];
  return {
    via,
    sh: async (script: string): Promise<string> => {
      const out = await run([...via, "sh", "-c", script, "sh", state]);
      return out.stdout;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      child.kill("SIGKILL");
      await reader.cancel();
      await child.status;
    },
  };
}

function failedWith(outcome: Outcome, code: number, message: RegExp): void {
  assert.equal(outcome.json?.code, code, outcome.stdout);
  assert.match(String(outcome.json?.msg), message);
}

Deno.test({
  name: "a full state dir fails ADD and DEL with 5 and keeps every record; freed, DEL completes; " +
    "read-only, every verb fails with 5",
  ignore: !canMount,
  async fn(): Promise<void> {
    await using w = await world();
    const live = w.config();
    ok(await cni(w, "ADD", { config: live }), "ADD before the fault");
    await using ns = await smallStateDir(w);
    const records = (): Promise<string> => ns.sh('cat "$1/attachments.json"');
    const before = JSON.parse(await records()).attachments;
    assert.equal(Object.keys(before).length, 1);

    await ns.sh('dd if=/dev/zero of="$1/fill" bs=4k 2>/dev/null; true');
    const other = w.config({
      vpc: "Ab",
      vpcattachment: "1",
      ipam: { type: "static", addresses: [{ address: "10.9.0.2/24" }] },
    });
    const add = await cni(w, "ADD", { config: other, containerId: "c2" }, ns.via);
    failedWith(
      add,
      5,
      /failed to record the attachment: cannot write .*attachments\.json: No space left on device/,
    );
    assert.equal((await w.host.kernel()).link("G0000000Ab001V"), undefined, "nothing created");
    assert.deepEqual(JSON.parse(await records()).attachments, before, "records intact");

    const del = await cni(w, "DEL", { config: live }, ns.via);
    failedWith(del, 5, /No space left on device/);
    assert.deepEqual(
      Object.keys(JSON.parse(await records()).attachments),
      Object.keys(before),
      "the live attachment's record survives the failed DEL",
    );

    await ns.sh('rm "$1/fill"');
    ok(await cni(w, "DEL", { config: live }, ns.via), "the runtime's retried DEL");
    assert.deepEqual(JSON.parse(await records()).attachments, {});
    assert.equal((await w.host.kernel()).link("G0000000jU00GV"), undefined);
    assert.deepEqual(w.api.objects("bgpvrfinstances"), []);
    assert.equal(await ns.sh('ls "$1" | grep -c tmp; true'), "0\n", "no temp file left");

    ok(await cni(w, "ADD", { config: live }, ns.via), "ADD on the freed dir");
    await ns.sh('mount -o remount,ro "$1"');
    for (const verb of ["ADD", "DEL"]) {
      const outcome = await cni(w, verb, { config: verb === "ADD" ? other : live }, ns.via);
      failedWith(outcome, 5, /Read-only file system/);
    }
    assert.ok((await w.host.kernel()).link("G0000000jU00GV"), "the live attachment stays");
    assert.equal(Object.keys(JSON.parse(await records()).attachments).length, 1);
  },
});
