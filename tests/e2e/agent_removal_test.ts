/**
 * DEL's last step in the node agent (issue 17): DEL answers once the SID,
 * the BGPVRFInstance, the pod interface and the FORWARD rules are gone, and
 * the agent removes the veth and the VRF after. While that is pending the
 * record stays `removing`: CHECK, ADD and GC must behave, and nothing may
 * leak when the agent dies after taking it.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AgentMetrics } from "../../lib/agent/metrics.ts";
import { PendingRemovals } from "../../lib/agent/removals.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { AttachmentStore } from "../../lib/state/attachments.ts";
import { finishRemoval } from "../../lib/verbs/teardown.ts";
import { startAgentProcess } from "../support/agent_process.ts";
import { reclaimNode } from "../../lib/cli/gc_command.ts";
import { cni, leftovers, NODE, ok, type Outcome, type World, world } from "../support/cni_world.ts";

const KEY = "b04.10";
const VRF = "G0000000jU00GV";
const QUIET = createLogger({ level: "error", stderr: () => {} });

function records(w: World): Promise<Record<string, { containerId: string; phase?: string }>> {
  return new AttachmentStore(`${w.dir}/state`).read();
}

/**
 * ADD then DEL of the world's attachment by `containerId` (DEL gets ADD's
 * result as its prevResult, as a runtime sends it); both must succeed.
 */
async function addThenDel(
  w: World,
  containerId: string,
  env?: Record<string, string>,
): Promise<{ add: Outcome; del: Outcome }> {
  const config = w.config();
  const add = ok(await cni(w, "ADD", { config, containerId, env }), `ADD ${containerId}`);
  const del = ok(
    await cni(w, "DEL", { config: { ...config, prevResult: add.json }, containerId, env }),
    `DEL ${containerId}`,
  );
  return { add, del };
}

/** Polls `probe` until it returns true (bounded; the agent works after the DEL answered). */
async function eventually(what: string, probe: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await probe()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.fail(`still not ${what} after 15 s`);
}

/**
 * An agent that takes every removal and never does it (it died right after
 * answering); every other call it cannot answer, so the plugin goes direct.
 */
function acceptingAndDying(
  w: World,
  options: { answerAfterMs?: number } = {},
): { requests: string[] } & AsyncDisposable {
  const listener = Deno.listen({ transport: "unix", path: `${w.dir}/agent.sock` });
  const requests: string[] = [];
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
        let buffered = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffered += value;
          let newline;
          while ((newline = buffered.indexOf("\n")) >= 0) {
            const request = JSON.parse(buffered.slice(0, newline));
            buffered = buffered.slice(newline + 1);
            if (request.op === "report") continue;
            requests.push(request.op);
            if (request.op === "finishRemoval" && options.answerAfterMs) {
              await new Promise((resolve) => setTimeout(resolve, options.answerAfterMs));
            }
            const response = request.op === "finishRemoval"
              ? { id: request.id, ok: true, value: true }
              : { id: request.id, ok: false, unavailable: true, code: 11, msg: "not ready" };
            await conn.write(new TextEncoder().encode(JSON.stringify(response) + "\n"));
          }
        }
      })().catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch { /* closed by the peer */ }
      });
    }
  })().catch(() => {});
  return {
    requests,
    async [Symbol.asyncDispose](): Promise<void> {
      listener.close();
      await serving;
    },
  };
}

Deno.test("through the agent, DEL answers before the veth and VRF go; the agent removes them, retrying a failure", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  await using agent = await startAgentProcess(w, {
    args: ["--state-dir", `${w.dir}/state`, "--removal-sweep-interval", "1"],
    env: w.host.env,
  });
  const config = w.config();
  const add = ok(await cni(w, "ADD", { config, containerId: "c1" }), "ADD");
  // The device group's deletion fails for as long as the fault stays: a DEL
  // that ran it itself would fail.
  await w.host.inject({ match: "link del group 1000", times: -1, stderr: "injected: busy" });

  ok(
    await cni(w, "DEL", { config: { ...config, prevResult: add.json }, containerId: "c1" }),
    "DEL",
  );
  const waiting = (await leftovers(w)).filter((l) => !l.startsWith("sysctl")).sort();
  assert.deepEqual(
    waiting,
    [
      `link ${VRF}`,
      "link G0000000jU00GH",
      "link G0000000jU00GG",
      // The VRF's table goes with it: its unreachable defaults and terminations.
      "route 0.0.0.0/0 table 1000",
      "route ::/0 table 1000",
      "route 10.20.0.0/16 table 1000",
      "route 10.30.0.7/32 table 1000",
      "route 2001:db8:20::/48 table 1000",
      `record ${KEY}`,
    ].sort(),
    "SID, object and rules gone with the DEL; veth, VRF and record wait for the agent",
  );
  assert.equal((await records(w))[KEY]?.phase, "removing");
  await eventually(
    "failed once in the agent",
    async () =>
      /galactic_agent_removals_total\{outcome="failed"\} [1-9]/.test(
        await (await fetch(`${agent.health}/metrics`)).text(),
      ),
  );
  assert.equal((await records(w))[KEY]?.phase, "removing", "a failed removal keeps the record");

  await w.host.update((kernel) => void (kernel.state.faults.length = 0));
  await eventually("removed by the next sweep", async () => (await leftovers(w)).length === 0);
  const metrics = await (await fetch(`${agent.health}/metrics`)).text();
  assert.match(metrics, /galactic_agent_removals_total\{outcome="removed"\} 1\n/);
});

Deno.test("through the agent, DEL leaves nothing once the agent is done, and no DEL process ran the device batch", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  await using agent = await startAgentProcess(w, {
    args: ["--state-dir", `${w.dir}/state`],
    env: w.host.env,
  });
  const config = w.config();
  const add = ok(await cni(w, "ADD", { config, containerId: "c1" }), "ADD");
  const afterAdd = (await w.host.commands()).length;
  const del = ok(
    await cni(w, "DEL", { config: { ...config, prevResult: add.json }, containerId: "c1" }),
    "DEL",
  );
  assert.match(del.stderr, /node agent removes its veth and VRF/);
  await eventually("clean", async () => (await leftovers(w)).length === 0);
  const batches = (await w.host.commands()).slice(afterAdd).filter((c) =>
    c.argv.join(" ") === "ip -force -batch -"
  );
  assert.equal(batches.length, 1, "one device batch, the agent's");
  // The hand-off carried the DEL's report: counted once, with its duration.
  const metrics = await (await fetch(`${agent.health}/metrics`)).text();
  assert.match(metrics, /galactic_cni_operations_total\{verb="DEL",code="0"\} 1\n/);
  assert.match(metrics, /galactic_cni_operation_duration_seconds_count\{verb="DEL"\} 1\n/);
  assert.match(metrics, /galactic_cni_operations_total\{verb="ADD",code="0"\} 1\n/);
});

Deno.test("a removal the agent took and never did: CHECK reports it, ADD of the attachment finishes it first, a late removal leaves the new one alone", async () => {
  await using w = await world();
  await using dying = acceptingAndDying(w);
  const config = w.config();
  const { add } = await addThenDel(w, "c1");
  assert.ok(dying.requests.includes("finishRemoval"), "the DEL handed its removal off");
  assert.equal((await records(w))[KEY]?.phase, "removing");
  assert.ok((await w.host.kernel()).links.some((l) => l.name === VRF), "the VRF waits");

  const check = await cni(w, "CHECK", {
    config: { ...config, prevResult: add.json },
    containerId: "c1",
  });
  assert.equal(check.code, 1);
  assert.equal(check.json?.code, 104);
  assert.match(String(check.json?.msg), /DEL did not complete/);

  // The pod's new sandbox: the pending removal is finished, then a fresh ADD.
  const again = ok(await cni(w, "ADD", { config, containerId: "c2" }), "ADD c2");
  const recorded = (await records(w))[KEY];
  assert.equal(recorded?.containerId, "c2");
  assert.equal(recorded?.phase, undefined);
  ok(
    await cni(w, "CHECK", { config: { ...config, prevResult: again.json }, containerId: "c2" }),
    "CHECK c2",
  );

  // The agent's queued removal of c1 running late (a restarted agent's sweep would not
  // even queue it): it must not touch c2's attachment.
  const store = new AttachmentStore(`${w.dir}/state`);
  assert.equal(
    await finishRemoval(w.host.runner(), { store, key: KEY, owner: "c1", log: QUIET }),
    false,
  );
  ok(
    await cni(w, "CHECK", { config: { ...config, prevResult: again.json }, containerId: "c2" }),
    "CHECK c2 after the late removal",
  );

  // c2's DEL is taken and never done either; a restarted agent's first sweep finishes it.
  ok(
    await cni(w, "DEL", { config: { ...config, prevResult: again.json }, containerId: "c2" }),
    "DEL c2",
  );
  assert.equal((await records(w))[KEY]?.phase, "removing");
  const restarted = new PendingRemovals({
    stateDir: `${w.dir}/state`,
    runner: w.host.runner(),
    lockTimeoutMs: 5000,
    sweepIntervalMs: 0,
  }, { log: QUIET, metrics: new AgentMetrics() });
  restarted.start();
  await restarted.close();
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("a pending removal: GC finishes it; another pod's ADD of the attachment is no longer refused", async () => {
  await using w = await world();
  await using _dying = acceptingAndDying(w);
  const gc = { config: { ...w.config(), "cni.dev/valid-attachments": [] } };
  await addThenDel(w, "c1");
  assert.equal((await records(w))[KEY]?.phase, "removing", "pending");
  ok(await cni(w, "GC", gc), "GC");
  assert.deepEqual(await leftovers(w), [], "GC finished the pending removal");

  await addThenDel(w, "c2");
  assert.equal((await records(w))[KEY]?.phase, "removing", "pending");
  // Pod B names the same attachment while pod A's removal is pending: as after a
  // completed DEL, it may have it (the SID and object are gone; the rest is finished first).
  const podB = { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-b" };
  const other = ok(
    await cni(w, "ADD", { config: w.config(), containerId: "c3", env: podB }),
    "ADD by pod-b",
  );
  assert.equal((await records(w))[KEY]?.containerId, "c3");
  ok(
    await cni(w, "DEL", {
      config: { ...w.config(), prevResult: other.json },
      containerId: "c3",
      env: podB,
    }),
    "DEL c3",
  );
  ok(await cni(w, "GC", gc), "GC");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("a pending removal with the agent gone for good: `galactic gc`'s reclaim finishes it once the netns is gone", async () => {
  await using w = await world();
  await using _dying = acceptingAndDying(w);
  await addThenDel(w, "c1");
  assert.equal((await records(w))[KEY]?.phase, "removing", "pending");
  await w.host.deleteNetns(await w.host.netns("c1"));
  w.api.resetLog();
  const reclaimed = await reclaimNode({
    stateDir: `${w.dir}/state`,
    cniPath: [w.host.cniDir],
    kubeconfig: w.kubeconfig,
    nodeName: NODE,
    apiTimeoutSeconds: 3,
    runner: w.host.runner(),
    env: {},
    log: QUIET,
  });
  assert.deepEqual(reclaimed.map((r) => [r.key, r.error]), [[KEY, undefined]]);
  assert.deepEqual(await leftovers(w), []);
  assert.deepEqual(w.api.requests, [], "a removing record was withdrawn by its DEL: no API call");
});

Deno.test("a DEL waits for a busy agent's answer as long as for any agent call, not a second", async () => {
  await using w = await world();
  // api_timeout_seconds 3 in the test config: the agent's calls may take 5 s.
  await using _slow = acceptingAndDying(w, { answerAfterMs: 1500 });
  await addThenDel(w, "c1");
  assert.equal((await records(w))[KEY]?.phase, "removing", "handed off, not removed by the DEL");
});
