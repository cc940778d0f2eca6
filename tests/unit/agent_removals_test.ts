/**
 * What the node agent takes of a DEL (issue 17): only a removal in its own
 * state directory, of a record that is `removing` and the named container's;
 * whatever it takes it does from the record, never from the request.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AgentMetrics } from "../../lib/agent/metrics.ts";
import { PendingRemovals } from "../../lib/agent/removals.ts";
import type { CommandOutput, CommandRunner, RunOptions } from "../../lib/iproute2/runner.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { type AttachmentRecord, AttachmentStore } from "../../lib/state/attachments.ts";

const QUIET = createLogger({ level: "error", stderr: () => {} });

function record(containerId: string, table: number, phase?: "removing"): AttachmentRecord {
  return {
    network: "tenant-a",
    vpc: "0000000jU",
    attachment: "00G",
    vpcHex: "b04",
    containerId,
    ifname: "net1",
    netns: "/run/netns/x",
    table,
    node: "node-1",
    ...(phase && { phase }),
  };
}

/** Records every command (and its batch input) and succeeds. */
function recordingRunner(): CommandRunner & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    run(argv: readonly string[], options: RunOptions = {}): Promise<CommandOutput> {
      calls.push([...argv, ...(options.stdin ? [`<< ${options.stdin.trim()}`] : [])].join(" "));
      return Promise.resolve({ code: 0, stdout: "", stderr: "" });
    },
  };
}

Deno.test("the agent takes only removals of its state dir, of a removing record of the named container", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const stateDir = `${dir}/state`;
    const store = new AttachmentStore(stateDir);
    await store.update((records) => {
      records["b04.10"] = record("c1", 1000, "removing");
      records["b04.11"] = { ...record("c2", 1001), attachment: "00H" };
    });
    const runner = recordingRunner();
    const metrics = new AgentMetrics();
    const removals = new PendingRemovals(
      { stateDir, runner, lockTimeoutMs: 5000, sweepIntervalMs: 0 },
      { log: QUIET, metrics },
    );
    const take = (request: Partial<{ stateDir: string; key: string; container: string }>) =>
      removals.take({ stateDir, key: "b04.10", container: "c1", ...request });

    assert.equal(await take({ stateDir: `${dir}/other` }), false, "another state dir");
    assert.equal(await take({ key: "../b04.10" }), false, "not a record key");
    assert.equal(await take({ key: "b04.12" }), false, "no such record");
    assert.equal(await take({ key: "b04.11", container: "c2" }), false, "a live attachment");
    assert.equal(await take({ container: "c9" }), false, "another container's");
    await removals.idle();
    assert.equal(runner.calls.length, 0, "nothing ran for a refused request");

    assert.equal(await take({}), true);
    await removals.close();
    const batch = runner.calls.find((c) => c.startsWith("ip -force -batch -"));
    assert.match(batch ?? "", /link del group 1000/, "the recorded table's device group");
    assert.ok(
      !runner.calls.some((c) => c.startsWith("iptables")),
      "the handed-off DEL removed the FORWARD rules itself",
    );
    assert.deepEqual(
      Object.keys(await store.read()),
      ["b04.11"],
      "the record dropped, the other kept",
    );
    assert.match(
      metrics.render({ caches: [], ready: true }),
      /galactic_agent_removals_total\{outcome="removed"\} 1\n/,
    );
    assert.equal(await take({}), false, "after close");

    // A removing record nobody handed off (a killed DEL): the sweep removes its rules too.
    await store.update((records) => {
      records["b04.12"] = { ...record("c3", 1002, "removing"), attachment: "00I" };
    });
    const sweeping = new PendingRemovals(
      { stateDir, runner, lockTimeoutMs: 5000, sweepIntervalMs: 0 },
      { log: QUIET, metrics },
    );
    sweeping.start();
    await sweeping.close();
    assert.ok(
      runner.calls.includes("iptables -w 5 -D FORWARD -o G0000000jU00IH -j ACCEPT"),
      runner.calls.join("\n"),
    );
    assert.deepEqual(Object.keys(await store.read()), ["b04.11"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
