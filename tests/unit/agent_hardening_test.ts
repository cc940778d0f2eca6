/**
 * Node agent hardening (lib/agent/agent.ts): its socket lives in a private
 * directory, it answers only for its own node, and oversized, malformed or
 * idle clients are disconnected without any API write.
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent/agent.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { FakeApiServer } from "../support/fake_api_server.ts";
import { seedNode } from "../support/kube_fixtures.ts";

const NODE = "node-a";

interface Served extends AsyncDisposable {
  readonly api: FakeApiServer;
  readonly socket: string;
  readonly dir: string;
}

async function served(options: { socketDirMode?: number } = {}): Promise<Served> {
  const api = new FakeApiServer({ rbac: AGENT_RBAC });
  seedNode(api, NODE);
  const dir = await Deno.makeTempDir({ prefix: "galactic-agent-hardening-" });
  const kubeconfig = await api.writeKubeconfig(dir);
  if (options.socketDirMode !== undefined) {
    await Deno.mkdir(`${dir}/run`);
    await Deno.chmod(`${dir}/run`, options.socketDirMode);
  }
  const socket = `${dir}/run/agent.sock`;
  const agent = await startAgent({
    socket,
    source: { kind: "file", path: kubeconfig, origin: "test" },
    node: NODE,
    timeoutMs: 5000,
    log: createLogger({ stderr: () => {}, level: "error" }),
    idleTimeoutMs: 300,
  });
  return {
    api,
    socket,
    dir,
    async [Symbol.asyncDispose](): Promise<void> {
      await agent.close();
      await api.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Sends `text` and reads until the agent answers a line or hangs up. */
async function exchange(socket: string, text: string): Promise<string | undefined> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  try {
    await conn.write(new TextEncoder().encode(text)).catch(() => 0);
    let received = "";
    const buffer = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buffer).catch(() => null);
      if (n === null) return received === "" ? undefined : received;
      received += new TextDecoder().decode(buffer.subarray(0, n));
      if (received.endsWith("\n")) return received;
    }
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

function writes(api: FakeApiServer): string[] {
  return api.requests.filter((r) => ["create", "update", "patch", "delete"].includes(r.verb))
    .map((r) => `${r.verb} ${r.resource}`);
}

Deno.test("the agent's socket is created in a directory only it may enter (0700)", async () => {
  await using fresh = await served();
  assert.equal((await Deno.stat(`${fresh.dir}/run`)).mode! & 0o777, 0o700);
  assert.ok((await Deno.lstat(fresh.socket)).isSocket);
  // An existing, wider directory is made private before the socket exists.
  await using widened = await served({ socketDirMode: 0o755 });
  assert.equal((await Deno.stat(`${widened.dir}/run`)).mode! & 0o777, 0o700);
});

Deno.test("the agent answers only for its own node: another node's write or delete is refused", async () => {
  await using agent = await served();
  for (const op of ["declareVrf", "withdrawVrf", "listNodeVrfs", "probe"]) {
    const line = await exchange(
      agent.socket,
      `${JSON.stringify({ id: 7, op, node: "node-b", vpc: "jU" })}\n`,
    );
    const response = JSON.parse(line ?? "null");
    assert.equal(response?.ok, false, `${op}: ${line}`);
    assert.equal(response.code, 7);
    assert.match(response.msg, /node agent of "node-a" does not act for node "node-b"/);
  }
  assert.deepEqual(writes(agent.api), []);
  // Its own node works.
  const own = JSON.parse(
    (await exchange(agent.socket, `${JSON.stringify({ id: 8, op: "probe", node: NODE })}\n`))!,
  );
  assert.equal(own.ok, true, JSON.stringify(own));
});

Deno.test("oversized, malformed and idle clients are disconnected without an API write", async (t) => {
  await using agent = await served();
  const hostile: [string, string][] = [
    ["an endless line", "x".repeat(100_000)],
    [
      "an oversized request",
      `${
        JSON.stringify({ id: 1, op: "declareVrf", node: NODE, vpc: "jU", pad: "x".repeat(10_000) })
      }\n`,
    ],
    ["not JSON", "{declareVrf\n"],
    ["no id", `${JSON.stringify({ op: "declareVrf", node: NODE, vpc: "jU" })}\n`],
    ["nothing at all (idle)", ""],
  ];
  for (const [label, text] of hostile) {
    await t.step(label, async () => {
      assert.equal(await exchange(agent.socket, text), undefined, "hung up without an answer");
    });
  }
  const notANode = JSON.parse(
    (await exchange(
      agent.socket,
      `${JSON.stringify({ id: 3, op: "declareVrf", node: [NODE], vpc: "jU" })}\n`,
    ))!,
  );
  assert.equal(notANode.ok, false);
  assert.match(notANode.msg, /does not act for node \["node-a"\]/);
  const unknown = JSON.parse(
    (await exchange(agent.socket, `${JSON.stringify({ id: 2, op: "deleteAll", node: NODE })}\n`))!,
  );
  assert.equal(unknown.ok, false);
  assert.match(unknown.msg, /unknown call "deleteAll"/);
  assert.deepEqual(writes(agent.api), []);
});
