/**
 * The plugin's side of the node agent (`lib/agent/agent_client.ts`) against a
 * small fake agent on a unix socket: what is answered by the agent, what
 * falls back to the in-process client (the agent went away: hung up, spoke
 * garbage, answered another request), and what must not fall back (a CNI
 * error the agent answered — repeating it would repeat a refused write — or a
 * call the agent did not answer in time).
 *
 * @module
 */

import assert from "node:assert/strict";
import { AgentUnavailable, connectAgent, withFallback } from "../../lib/agent/agent_client.ts";
import { type AgentRequest, readLines } from "../../lib/agent/protocol.ts";
import { CniError, ErrorCode } from "../../lib/cni/errors.ts";
import { parseVpc } from "../../lib/ids/mod.ts";
import type {
  BgpControlPlane,
  DeclaredVrf,
  VrfDeclaration,
  VrfKey,
} from "../../lib/kube/control_plane.ts";

const NODE = "node-a";
const KEY: VrfKey = { vpc: parseVpc("jU"), node: NODE };
const OTHER_KEY: VrfKey = { vpc: parseVpc("k7"), node: NODE };
/** The VPCs' wire text (canonical, padded). */
const JU = KEY.vpc.text;
const K7 = OTHER_KEY.vpc.text;

function declaration(name: string): VrfDeclaration {
  return {
    name,
    instance: "workers",
    asn: 65000,
    routeDistinguisher: "65000:2820",
    routeTarget: "65000:2820",
  };
}

// ---- the fake agent ----------------------------------------------------------

/** What the fake agent's behaviour can do with the connection a request came on. */
interface Peer {
  /** Sends one line (a JSON document, or anything). */
  send(line: string): Promise<void>;
  /** Sends a response object as one JSON line. */
  answer(response: Record<string, unknown>): Promise<void>;
  /** Closes the connection (the agent died). */
  hangUp(): void;
}

/** Called for each request; answering is up to it (it may also never answer). */
type Behaviour = (request: AgentRequest, peer: Peer) => void | Promise<void>;

interface FakeAgent extends AsyncDisposable {
  readonly path: string;
  /** Every request received, in order. */
  readonly requests: AgentRequest[];
  /** Connections accepted. */
  readonly connections: number;
}

/** Answers every request with `value` (the normal agent). */
const answerWith = (value: unknown): Behaviour => (request, peer) =>
  peer.answer({ id: request.id, ok: true, value });

async function startFakeAgent(
  behaviour: Behaviour,
  options: { hangUpOnAccept?: boolean } = {},
): Promise<FakeAgent> {
  const dir = await Deno.makeTempDir({ prefix: "galactic-agent-client-" });
  const path = `${dir}/agent.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const requests: AgentRequest[] = [];
  const open = new Set<Deno.Conn>();
  const serving = new Set<Promise<void>>();
  let connections = 0;

  const close = (conn: Deno.Conn): void => {
    open.delete(conn);
    try {
      conn.close();
    } catch { /* already closed */ }
  };

  async function serve(conn: Deno.Conn): Promise<void> {
    if (options.hangUpOnAccept) return close(conn);
    const writer = conn.writable.getWriter();
    let hungUp = false;
    const peer: Peer = {
      send: (line) => writer.write(new TextEncoder().encode(line + "\n")),
      answer: (response) => peer.send(JSON.stringify(response)),
      hangUp: () => {
        hungUp = true;
        close(conn);
      },
    };
    try {
      for await (const line of readLines(conn.readable)) {
        const request = JSON.parse(line) as AgentRequest;
        requests.push(request);
        await behaviour(request, peer);
        if (hungUp) break;
      }
    } catch {
      /* connection closed under the read */
    } finally {
      close(conn);
    }
  }

  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        connections++;
        open.add(conn);
        const task = serve(conn).finally(() => serving.delete(task));
        serving.add(task);
      }
    } catch { /* listener closed */ }
  })();

  return {
    path,
    requests,
    get connections() {
      return connections;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      listener.close();
      await accepting;
      for (const conn of [...open]) close(conn);
      await Promise.allSettled([...serving]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

// ---- the recording fallback ----------------------------------------------------

/** The in-process client's stand-in: records calls, answers with recognisable values. */
interface RecordingPlane extends BgpControlPlane {
  readonly calls: string[];
  closed: boolean;
}

function recordingPlane(): RecordingPlane {
  const calls: string[] = [];
  const plane: RecordingPlane = {
    calls,
    closed: false,
    declareVrf(key: VrfKey): Promise<VrfDeclaration> {
      calls.push(`declareVrf ${key.vpc.text}`);
      return Promise.resolve(declaration(`fallback-${key.vpc.text}`));
    },
    withdrawVrf(key: VrfKey): Promise<void> {
      calls.push(`withdrawVrf ${key.vpc.text}`);
      return Promise.resolve();
    },
    verifyVrf(key: VrfKey): Promise<string[]> {
      calls.push(`verifyVrf ${key.vpc.text}`);
      return Promise.resolve([]);
    },
    listNodeVrfs(node: string): Promise<DeclaredVrf[]> {
      calls.push(`listNodeVrfs ${node}`);
      return Promise.resolve([{ name: "fallback-vrf", vpcHex: "b04" }]);
    },
    probe(node: string): Promise<void> {
      calls.push(`probe ${node}`);
      return Promise.resolve();
    },
    close(): Promise<void> {
      plane.closed = true;
      return Promise.resolve();
    },
  };
  return plane;
}

/** Counts the calls that reach `plane` (the agent connection) through `withFallback`. */
function counting(plane: BgpControlPlane): BgpControlPlane & { readonly invoked: string[] } {
  const invoked: string[] = [];
  return {
    invoked,
    declareVrf: (key) => (invoked.push("declareVrf"), plane.declareVrf(key)),
    withdrawVrf: (key) => (invoked.push("withdrawVrf"), plane.withdrawVrf(key)),
    verifyVrf: (key) => (invoked.push("verifyVrf"), plane.verifyVrf(key)),
    listNodeVrfs: (node) => (invoked.push("listNodeVrfs"), plane.listNodeVrfs(node)),
    probe: (node) => (invoked.push("probe"), plane.probe(node)),
    close: () => plane.close(),
  };
}

interface Session extends AsyncDisposable {
  /** What the CNI process uses: the agent, with the fallback behind it. */
  readonly plane: BgpControlPlane;
  /** Calls that went to the agent connection. */
  readonly agentCalls: string[];
  readonly fallback: RecordingPlane;
  /** How many times the fallback was opened. */
  readonly opens: () => number;
}

/** `connectAgent` + `withFallback` as `openControlPlane` wires them. */
async function session(agent: FakeAgent, timeoutMs = 5000): Promise<Session> {
  const primary = await connectAgent(agent.path, { timeoutMs });
  assert.ok(primary, "an agent listens: connectAgent returns a plane");
  const agentSide = counting(primary);
  const fallback = recordingPlane();
  let opens = 0;
  const plane = withFallback(agentSide, () => {
    opens++;
    return Promise.resolve(fallback);
  });
  return {
    plane,
    agentCalls: agentSide.invoked,
    fallback,
    opens: () => opens,
    [Symbol.asyncDispose]: () => plane.close(),
  };
}

/** Fails instead of hanging when `promise` does not settle within `ms`. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, hung]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once `done()` holds (polling; bounded). */
async function until(done: () => boolean, ms = 3000): Promise<void> {
  for (const start = Date.now(); !done();) {
    if (Date.now() - start > ms) throw new Error(`condition not met after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function isCniError(code: number, message: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(error instanceof CniError, `a CniError, got ${error}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  };
}

// ---- tests -----------------------------------------------------------------------

Deno.test("agent client: the agent's answers are returned, and the fallback is never opened", async () => {
  await using agent = await startFakeAgent((request, peer) => {
    const values: Record<string, unknown> = {
      declareVrf: declaration(`agent-${request.vpc}`),
      withdrawVrf: null,
      verifyVrf: ["spec.routeDistinguisher differs"],
      listNodeVrfs: [{ name: "agent-vrf", vpcHex: "b04" }],
      probe: null,
    };
    return peer.answer({ id: request.id, ok: true, value: values[request.op] });
  });
  await using s = await session(agent);

  assert.deepEqual(await s.plane.declareVrf(KEY), declaration(`agent-${JU}`));
  await s.plane.withdrawVrf(KEY);
  assert.deepEqual(await s.plane.verifyVrf(KEY), ["spec.routeDistinguisher differs"]);
  assert.deepEqual(await s.plane.listNodeVrfs(NODE), [{ name: "agent-vrf", vpcHex: "b04" }]);
  await s.plane.probe(NODE);

  assert.deepEqual(
    agent.requests,
    [
      { id: 1, op: "declareVrf", node: NODE, vpc: JU },
      { id: 2, op: "withdrawVrf", node: NODE, vpc: JU },
      { id: 3, op: "verifyVrf", node: NODE, vpc: JU },
      { id: 4, op: "listNodeVrfs", node: NODE },
      { id: 5, op: "probe", node: NODE },
    ],
    "one connection, ids in order",
  );
  assert.equal(agent.connections, 1);
  assert.equal(s.opens(), 0, "fallback never opened");
  assert.deepEqual(s.fallback.calls, []);
});

Deno.test("agent client: the agent reads a call and hangs up (dies mid-call): AgentUnavailable", async () => {
  await using agent = await startFakeAgent((_request, peer) => peer.hangUp());
  const plane = await connectAgent(agent.path, { timeoutMs: 5000 });
  assert.ok(plane);
  try {
    await assert.rejects(
      within(3000, plane.declareVrf(KEY), "declareVrf"),
      (error) => error instanceof AgentUnavailable && /closed the connection/.test(error.message),
    );
    // The connection stays dead: the next call is AgentUnavailable too, not a hang.
    await assert.rejects(within(3000, plane.probe(NODE), "probe"), AgentUnavailable);
  } finally {
    await plane.close();
  }
  assert.equal(agent.requests.length, 1);
});

Deno.test("agent client: the agent dies mid-call: that call and every later one go to the fallback, opened once, no reconnect", async () => {
  await using agent = await startFakeAgent((_request, peer) => peer.hangUp());
  const s = await session(agent);

  assert.deepEqual(
    await within(3000, s.plane.declareVrf(KEY), "declareVrf"),
    declaration(`fallback-${JU}`),
    "the interrupted call is answered by the fallback",
  );
  assert.deepEqual(await s.plane.listNodeVrfs(NODE), [{ name: "fallback-vrf", vpcHex: "b04" }]);
  await s.plane.withdrawVrf(KEY);

  assert.deepEqual(s.fallback.calls, [
    `declareVrf ${JU}`,
    "listNodeVrfs node-a",
    `withdrawVrf ${JU}`,
  ]);
  assert.equal(s.opens(), 1, "fallback opened at most once");
  assert.deepEqual(s.agentCalls, ["declareVrf"], "once gone, the agent is not asked again");
  assert.equal(agent.requests.length, 1);
  assert.equal(agent.connections, 1, "no reconnect within the session");

  await s.plane.close();
  assert.equal(s.fallback.closed, true, "close() closes the opened fallback");
});

Deno.test("agent client: the agent dies between connect and the first call: the call goes to the fallback", async () => {
  await using agent = await startFakeAgent(answerWith(null), { hangUpOnAccept: true });
  await using s = await session(agent);
  // Let the agent's close arrive before the call is written.
  await until(() => agent.connections === 1);

  assert.deepEqual(
    await within(3000, s.plane.declareVrf(KEY), "declareVrf"),
    declaration(`fallback-${JU}`),
  );
  assert.deepEqual(agent.requests, []);
  assert.equal(s.opens(), 1);
});

Deno.test("agent client: two calls in flight when the agent dies: both answered by the fallback, opened once", async () => {
  await using agent = await startFakeAgent((_request, peer) => peer.hangUp());
  await using s = await session(agent);

  const [declared, listed] = await within(
    3000,
    Promise.all([s.plane.declareVrf(KEY), s.plane.listNodeVrfs(NODE)]),
    "calls in flight",
  );
  assert.deepEqual(declared, declaration(`fallback-${JU}`));
  assert.deepEqual(listed, [{ name: "fallback-vrf", vpcHex: "b04" }]);
  assert.deepEqual(s.fallback.calls.sort(), [`declareVrf ${JU}`, "listNodeVrfs node-a"]);
  assert.equal(s.opens(), 1);
});

for (
  const { code, msg } of [
    {
      code: ErrorCode.Kubernetes,
      msg: 'bgpvrfinstances.bgp.miloapis.com is forbidden: User "x" cannot create resource',
    },
    {
      code: ErrorCode.RouteTargetCollision,
      msg: `route target 65000:2820 of VPC ${JU} is already held by VPC ${K7}`,
    },
  ]
) {
  Deno.test(`agent client: a CNI error the agent answers (${code}) propagates with its code; no fallback`, async () => {
    await using agent = await startFakeAgent((request, peer) =>
      request.op === "declareVrf"
        ? peer.answer({ id: request.id, ok: false, code, msg })
        : peer.answer({ id: request.id, ok: true, value: [] })
    );
    await using s = await session(agent);

    await assert.rejects(
      s.plane.declareVrf(KEY),
      (error) => {
        assert.ok(error instanceof CniError, `a CniError, got ${error}`);
        assert.equal(error.code, code);
        assert.equal(error.message, msg);
        return true;
      },
    );
    assert.equal(s.opens(), 0, "a refused write is not repeated on the fallback");
    assert.deepEqual(s.fallback.calls, []);
    // The agent is still in use for the next call.
    assert.deepEqual(await s.plane.listNodeVrfs(NODE), []);
    assert.deepEqual(s.agentCalls, ["declareVrf", "listNodeVrfs"]);
    assert.equal(s.opens(), 0);
  });
}

Deno.test("agent client: a malformed answer line means the agent is unusable: fallback", async () => {
  await using agent = await startFakeAgent((request, peer) =>
    peer.send(`{"id":${request.id},"ok":tru`)
  );
  await using s = await session(agent);

  assert.deepEqual(await s.plane.declareVrf(KEY), declaration(`fallback-${JU}`));
  assert.deepEqual(s.fallback.calls, [`declareVrf ${JU}`]);
  assert.equal(s.opens(), 1);
  await s.plane.probe(NODE);
  assert.deepEqual(s.agentCalls, ["declareVrf"], "not asked again after garbage");
});

Deno.test("agent client: an answer to another request id is not taken: fallback", async () => {
  await using agent = await startFakeAgent((request, peer) =>
    peer.answer({ id: request.id + 7, ok: true, value: declaration("agent-wrong-id") })
  );
  await using s = await session(agent);

  assert.deepEqual(await s.plane.declareVrf(KEY), declaration(`fallback-${JU}`));
  assert.equal(s.opens(), 1);

  // Directly: the mismatch is AgentUnavailable, naming both ids.
  const plane = await connectAgent(agent.path, { timeoutMs: 5000 });
  assert.ok(plane);
  try {
    await assert.rejects(
      plane.declareVrf(KEY),
      (error) =>
        error instanceof AgentUnavailable && /answered request 8, not 1/.test(error.message),
    );
  } finally {
    await plane.close();
  }
});

Deno.test("agent client: an agent that never answers: the call fails with CNI error 11 within the timeout, no fallback", async () => {
  await using agent = await startFakeAgent(() => {/* never answers */});
  await using s = await session(agent, 150);

  await assert.rejects(
    within(3000, s.plane.declareVrf(KEY), "declareVrf against a silent agent"),
    isCniError(ErrorCode.TryAgainLater, /did not answer declareVrf within 150 ms/),
  );
  assert.equal(s.opens(), 0, "a timed-out call (its write may still land) is not repeated");
  assert.deepEqual(agent.requests.map((r) => r.op), ["declareVrf"]);
});

Deno.test("agent client: a late answer to a timed-out call is discarded; the next call gets its own answer", async () => {
  // The real agent answers a connection's requests in order, so a late answer
  // to call 1 comes before the answer to call 2. The timed-out call's pending
  // read takes it (the connection's lines are read in call order), and call 2
  // reads its own answer; were the late line read by call 2, the id check
  // would make it AgentUnavailable (fallback). Either way never the answer
  // to another VPC's call.
  await using agent = await startFakeAgent(async (request, peer) => {
    if (request.id === 1) return; // answered only later, after the client gave up
    await peer.answer({ id: 1, ok: true, value: declaration(`agent-late-answer-for-${JU}`) });
    await peer.answer({ id: request.id, ok: true, value: declaration(`agent-${request.vpc}`) });
  });
  await using s = await session(agent, 150);

  await assert.rejects(
    within(3000, s.plane.declareVrf(KEY), "first call"),
    isCniError(ErrorCode.TryAgainLater, /did not answer/),
  );
  const second = await within(3000, s.plane.declareVrf(OTHER_KEY), "second call");
  assert.notEqual(second.name, `agent-late-answer-for-${JU}`, "another VPC's answer");
  assert.deepEqual(second, declaration(`agent-${K7}`), "its own answer, from the agent");
  assert.equal(s.opens(), 0);
  assert.deepEqual(agent.requests.map((r) => [r.id, r.vpc]), [[1, JU], [2, K7]]);
});

Deno.test("agent client: no agent listening (no file, stale regular file, dead agent's socket): connectAgent returns undefined", async () => {
  const dir = await Deno.makeTempDir({ prefix: "galactic-agent-client-" });
  try {
    assert.equal(await connectAgent(`${dir}/absent.sock`, { timeoutMs: 1000 }), undefined);

    await Deno.writeTextFile(`${dir}/file.sock`, "");
    assert.equal(await connectAgent(`${dir}/file.sock`, { timeoutMs: 1000 }), undefined);

    // A socket file left by an agent killed with SIGKILL (nobody unlinked it).
    const dead = `${dir}/dead.sock`;
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${JSON.stringify(dead)} }); console.log("up");` +
        "setInterval(() => {}, 1000);",
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.equal((await reader.read()).value?.trim(), "up");
    child.kill("SIGKILL");
    await child.status;
    while (!(await reader.read()).done) { /* drain */ }
    assert.ok((await Deno.lstat(dead)).isSocket, "the dead agent's socket file remains");
    assert.equal(await connectAgent(dead, { timeoutMs: 1000 }), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
