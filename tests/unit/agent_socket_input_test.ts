/**
 * No request on the agent's socket can crash it: undecodable lines end that
 * connection, malformed calls get an error answer, malformed reports are
 * dropped; the agent keeps serving everyone else.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connectAgent } from "../../lib/agent/agent_client.ts";
import { startAgent } from "../../lib/agent/agent.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { kubeFixture, seedNode } from "../support/kube_fixtures.ts";

/** Sends `line` on a fresh connection; the agent's answer line, or undefined when it hung up. */
async function exchange(socket: string, line: string): Promise<string | undefined> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(line + "\n"));
    const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) return text === "" ? undefined : text;
      text += value;
    }
    await reader.cancel();
    return text.trim();
  } finally {
    try {
      conn.close();
    } catch { /* closed by the agent */ }
  }
}

/** Sends a report line (no answer comes) and hangs up. */
async function reportVerbLine(socket: string, line: string): Promise<void> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  await conn.write(new TextEncoder().encode(line + "\n"));
  conn.close();
}

Deno.test("agent: garbage on the socket ends that connection or gets an error, never the agent", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  seedNode(kube.server, "node-a");
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/agent.sock`;
  const agent = await startAgent({
    socket,
    source: { kind: "file", path: kube.kubeconfig, origin: "test" },
    node: "node-a",
    timeoutMs: 5000,
    log: createLogger({ level: "error", stderr: () => {} }),
    healthPort: 0,
  });
  try {
    for (const line of ["not json", "null", "42", "[]", '{"id":"x"}', '"declareVrf"']) {
      assert.equal(await exchange(socket, line), undefined, `${line}: connection ended`);
    }
    const unknown = JSON.parse((await exchange(socket, '{"id":1,"op":"nope","node":"n"}'))!);
    assert.deepEqual([unknown.id, unknown.ok, unknown.code], [1, false, 7]);
    const badVpc = JSON.parse(
      (await exchange(socket, '{"id":2,"op":"declareVrf","node":"node-a","vpc":"!!"}'))!,
    );
    assert.deepEqual([badVpc.id, badVpc.ok], [2, false]);
    const noNode = JSON.parse((await exchange(socket, '{"id":3,"op":"listNodeVrfs"}'))!);
    assert.equal(noNode.id, 3);
    // One connection, lines in order: the valid report last proves the others were read.
    await reportVerbLine(
      socket,
      [
        '{"id":0,"op":"report","verb":"ADD","code":"zero","seconds":1}',
        '{"id":0,"op":"report","verb":"<script>","code":0,"seconds":1}',
        '{"id":0,"op":"report","verb":"ADD","code":0,"seconds":-5}',
        '{"id":0,"op":"report","verb":"DEL","code":0,"seconds":0.1}',
      ].join("\n"),
    );
    let metrics = "";
    for (let i = 0; i < 200 && !metrics.includes('verb="DEL",code="0"} 1'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      metrics = await (await fetch(`${agent.healthUrl}/metrics`)).text();
    }
    const counted = metrics.split("\n").filter((l) =>
      l.startsWith("galactic_cni_operations_total{")
    );
    assert.deepEqual(counted, ['galactic_cni_operations_total{verb="DEL",code="0"} 1']);

    // Everyone else is still served.
    const plane = (await connectAgent(socket, { timeoutMs: 10_000 }))!;
    try {
      await plane.probe("node-a");
      assert.deepEqual(await plane.listNodeVrfs("node-a"), []);
    } finally {
      await plane.close();
    }
    assert.ok(agent.ready());
  } finally {
    await agent.close();
    await Deno.remove(dir, { recursive: true });
  }
});
