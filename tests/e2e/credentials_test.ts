/**
 * The plugin's expiring credential end to end: the refresher issues tokens of
 * galactic-cni through the fake API server's TokenRequest and rewrites the
 * kubeconfig the plugin processes read; the plugin (exec'd as a runtime does,
 * with no agent socket, so it uses that kubeconfig itself) keeps working
 * across rotations, fails clearly once its token expired, and works again
 * after a refresh. The clock is the fake server's, moved by hand: no test
 * waits for real time.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parse } from "yaml";
import {
  type CredentialRefresher,
  type PluginCredentialTarget,
  refreshAt,
  startCredentialRefresher,
} from "../../lib/agent/plugin_credentials.ts";
import { startAgent } from "../../lib/agent/agent.ts";
import { ErrorCode } from "../../lib/cni/errors.ts";
import type { KubeApi } from "../../lib/kube/api.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { openKubeApi } from "../../lib/kube/client.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { cni, NODE, ok, type World, world } from "../support/cni_world.ts";
import { type AgentProcess, startAgentProcess } from "../support/agent_process.ts";
import { FAST_RETRY } from "../support/kube_fixtures.ts";
import { ManualClock, until } from "../support/manual_clock.ts";

const HOUR = 3600_000;
/** Tokens the rotation test goes through. */
const ROTATIONS = 12;

/** The agent's own client (its static token), as its projected token would authenticate it. */
async function agentApi(w: World): Promise<KubeApi> {
  const path = await w.api.writeKubeconfigFile(`${w.dir}/agent-kubeconfig`);
  return await openKubeApi({ kind: "file", path, origin: "test" }, { retry: FAST_RETRY });
}

function target(w: World): PluginCredentialTarget {
  return {
    kubeconfig: w.kubeconfig,
    server: w.api.url,
    namespace: "galactic-system",
    serviceAccount: "galactic-cni",
    lifetimeSeconds: 3600,
  };
}

async function tokenIn(path: string): Promise<string> {
  return parse(await Deno.readTextFile(path)).users[0].user.token;
}

function logSink(): { lines: string[]; log: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  return { lines, log: createLogger({ level: "debug", stderr: (line) => lines.push(line) }) };
}

Deno.test("refresh schedule: a third of the granted lifetime left, up to a twelfth earlier", () => {
  const token = { issuedAt: 0, expiresAt: HOUR };
  assert.equal(refreshAt(token, 0), 2400_000, "60 min token: refreshed at 40 min");
  assert.equal(refreshAt(token, 0.999999) > 2100_000, true);
  assert.equal(refreshAt(token, 0.999999) < 2100_100, true, "at the earliest 35 min");
  // A server that shortened the lifetime to 10 min: refreshed at 6:40.
  assert.equal(refreshAt({ issuedAt: 0, expiresAt: 600_000 }, 0), 400_000);
});

Deno.test("rotation: ADD, CHECK and DEL keep working across refreshes; a reader never sees a torn kubeconfig", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  const api = await agentApi(w);
  const clock = new ManualClock(w.api);
  const { lines, log } = logSink();
  let refresher: CredentialRefresher | undefined;
  let reading = true;
  const reads = { total: 0, bad: [] as string[] };
  try {
    refresher = startCredentialRefresher(api, target(w), {
      log,
      timeoutMs: 5000,
      clock,
      random: () => 0,
    });
    await until(() => refresher!.status().refreshes === 1, "the first token");
    const first = await tokenIn(w.kubeconfig);
    assert.equal(w.api.tokens.state(first), "valid");

    // A plugin-like reader hammering the file while it is replaced.
    const reader = (async () => {
      while (reading) {
        const text = await Deno.readTextFile(w.kubeconfig);
        reads.total++;
        try {
          const token = parse(text).users[0].user.token;
          if (w.api.tokens.state(token) === "unknown") reads.bad.push("a token never issued");
        } catch (error) {
          reads.bad.push(`unparsable (${(error as Error).name}, ${text.length} bytes)`);
        }
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    })();

    const add = ok(await cni(w, "ADD", { config: w.config() }), "ADD on the first token");
    const check = { config: w.config({ prevResult: add.json }) };
    // Plugin processes running CHECK all through the rotations. The clock jumps 40 min per
    // rotation while a real CHECK takes a second, so each CHECK may span one rotation, not
    // two (two would age its token by 80 min, past the hour no real process lives).
    let rotating = true;
    const checks: Awaited<ReturnType<typeof cni>>[] = [];
    const checking = (async () => {
      while (rotating || checks.length === 0) checks.push(await cni(w, "CHECK", check));
    })();
    let previous = first;
    for (let rotation = 2; rotation <= ROTATIONS; rotation++) {
      const seen = { reads: reads.total, checks: checks.length };
      await until(() => reads.total > seen.reads + 3, "the reader between rotations");
      await until(() => checks.length > seen.checks, "a CHECK between rotations");
      await until(() => clock.sleepers === 1, "the refresher asleep");
      clock.advance(2400_000); // 40 min: a third of the hour left
      await until(() => refresher!.status().refreshes === rotation, `rotation ${rotation}`);
      const current = await tokenIn(w.kubeconfig);
      assert.notEqual(current, previous);
      assert.equal(w.api.tokens.state(previous), "valid", "the old token still had 20 min");
      previous = current;
    }
    rotating = false;
    await checking;
    for (const outcome of checks) ok(outcome, "CHECK during the rotations");
    ok(await cni(w, "CHECK", check), "CHECK after the rotations");
    ok(await cni(w, "DEL", { config: w.config() }), "DEL after the rotations");
    assert.equal(w.api.tokens.state(first), "expired", "the first token is long expired");
    reading = false;
    await reader;
    assert.deepEqual(reads.bad, [], `${reads.bad.length} of ${reads.total} reads were torn`);
    assert.ok(reads.total > 3 * ROTATIONS, `the reader ran (${reads.total} reads)`);
    assert.ok(checks.length >= ROTATIONS - 1, `${checks.length} CHECKs ran`);
    assert.equal((await Deno.stat(w.kubeconfig)).mode! & 0o777, 0o600);
    const stray = [...Deno.readDirSync(w.dir)].filter((e) => e.name.includes(".tmp"));
    assert.deepEqual(stray, [], "no temporary files left");
    assert.equal(lines.filter((l) => l.includes("plugin token refreshed")).length, ROTATIONS);
    for (const token of [first, previous]) {
      assert.ok(!lines.some((l) => l.includes(token)), "no token in the log");
    }
  } finally {
    reading = false;
    await refresher?.stop();
    await api.close();
  }
});

Deno.test("expired token: the plugin fails with code 101 naming no token, and works again once refreshed", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  const api = await agentApi(w);
  const clock = new ManualClock(w.api);
  const { log } = logSink();
  try {
    const refresher = startCredentialRefresher(api, target(w), { log, timeoutMs: 5000, clock });
    await until(() => refresher.status().refreshes === 1, "the first token");
    await refresher.stop(); // the agent is gone: nobody refreshes
    const add = ok(await cni(w, "ADD", { config: w.config() }), "ADD before expiry");
    const check = { config: w.config({ prevResult: add.json }) };
    const token = await tokenIn(w.kubeconfig);

    clock.advance(HOUR);
    assert.equal(w.api.tokens.state(token), "expired");
    const refused = await cni(w, "CHECK", check);
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.json?.code, ErrorCode.Kubernetes);
    assert.match(String(refused.json?.msg), /unauthorized/);
    assert.match(String(refused.json?.msg), /expired or wrong token in the kubeconfig/);
    for (const text of [refused.stdout, refused.stderr]) {
      assert.ok(!text.includes(token), "the token must not be in any message");
      assert.ok(!text.includes(token.split(".")[2]!), "nor its signature");
    }

    // The agent is back: a fresh token at once, and the plugin works again.
    const again = startCredentialRefresher(api, target(w), { log, timeoutMs: 5000, clock });
    await until(() => again.status().refreshes === 1, "a fresh token");
    await again.stop();
    ok(await cni(w, "CHECK", check), "CHECK after the refresh");
    ok(await cni(w, "DEL", { config: w.config() }), "DEL after the refresh");
  } finally {
    await api.close();
  }
});

Deno.test("TokenRequest failing: the old token stays, the failure is logged, retried with backoff and on /metrics", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  const agentKubeconfig = await w.api.writeKubeconfigFile(`${w.dir}/agent-kubeconfig`);
  const clock = new ManualClock(w.api);
  const { lines, log } = logSink();
  const agent = await startAgent({
    // Not the socket the node configuration names: the plugin goes direct, on the kubeconfig.
    socket: `${w.dir}/elsewhere.sock`,
    source: { kind: "file", path: agentKubeconfig, origin: "test" },
    node: NODE,
    timeoutMs: 3000,
    log,
    healthPort: 0,
    pluginCredentials: {
      kubeconfig: w.kubeconfig,
      namespace: "galactic-system",
      serviceAccount: "galactic-cni",
      lifetimeSeconds: 3600,
      clock,
      random: () => 0,
      // Long against the real seconds that pass meanwhile (the clock is the server's, which runs too).
      backoff: { baseMs: 600_000, maxMs: 2_400_000 },
    },
  });
  const metrics = async (): Promise<string> =>
    await (await fetch(`${agent.healthUrl}/metrics`)).text();
  try {
    const status = () => agent.credentials!.status();
    assert.equal(status().refreshes, 0, "the token issued at start is not a refresh");
    const first = await tokenIn(w.kubeconfig);
    assert.equal(w.api.tokens.state(first), "valid", "issued before the agent served");
    assert.match(
      await metrics(),
      new RegExp(
        `galactic_agent_plugin_token_expiry_timestamp_seconds ${
          Math.floor(status().expiresAt! / 1000)
        }\\n`,
      ),
    );

    w.api.fault({ verb: "create", resource: "serviceaccounts/token", status: 403 });
    await until(() => clock.sleepers === 1, "the refresher asleep");
    clock.advance(2400_000);
    await until(() => status().consecutiveFailures === 1, "the first failure");
    assert.equal(await tokenIn(w.kubeconfig), first, "the old token stays in place");
    assert.match(await metrics(), /galactic_agent_plugin_token_refresh_failures 1\n/);
    assert.match(
      await metrics(),
      /galactic_agent_api_requests_total\{verb="create",resource="serviceaccounts\/token",outcome="error"\} 1/,
    );
    const warned = lines.filter((l) => l.includes("plugin token refresh failed"));
    assert.equal(warned.length, 1);
    assert.match(warned[0]!, /forbidden/);
    assert.match(warned[0]!, /retryInSeconds=300/);

    // Retries back off (300 s, 600 s, 1200 s with this jitter): none before the delay.
    await until(() => clock.sleepers === 1, "waiting to retry");
    clock.advance(240_000);
    await until(() => clock.sleepers === 1, "still waiting");
    assert.equal(status().consecutiveFailures, 1, "no retry before the backoff");
    clock.advance(70_000);
    await until(() => status().consecutiveFailures === 2, "the second failure");
    await until(() => clock.sleepers === 1, "waiting to retry");
    clock.advance(600_000);
    await until(() => status().consecutiveFailures === 3, "the third failure");
    assert.ok(lines.some((l) => l.includes("retryInSeconds=1200")));
    assert.equal(await tokenIn(w.kubeconfig), first);
    ok(await cni(w, "ADD", { config: w.config() }), "ADD on the old token while refreshes fail");

    // Past expiry the log says so (an error, not a warning).
    await until(() => clock.sleepers === 1, "waiting to retry");
    clock.advance(HOUR);
    await until(() => status().consecutiveFailures === 4, "a failure after expiry");
    assert.ok(lines.some((l) => l.includes("the token in place has expired")));

    w.api.clearFaults();
    await until(() => clock.sleepers === 1, "waiting to retry");
    clock.advance(2_400_000);
    await until(() => status().consecutiveFailures === 0, "recovered");
    assert.equal(status().refreshes, 1);
    const fresh = await tokenIn(w.kubeconfig);
    assert.notEqual(fresh, first);
    assert.equal(w.api.tokens.state(fresh), "valid");
    assert.match(await metrics(), /galactic_agent_plugin_token_refresh_failures 0\n/);
    for (const token of [first, fresh]) {
      assert.ok(!lines.some((l) => l.includes(token)), "no token in the log");
    }
  } finally {
    await agent.close();
  }
});

/** `galactic agent` as a process, with --plugin-kubeconfig. */
function agentProcess(w: World, kubeconfig: string): Promise<AgentProcess> {
  return startAgentProcess(w, {
    kubeconfig,
    args: ["--plugin-kubeconfig", w.kubeconfig, "--plugin-token-lifetime", "1200"],
  });
}

Deno.test("agent restart: `galactic agent --plugin-kubeconfig` issues a fresh token at every start; the plugin keeps working", async () => {
  await using w = await world({ rbac: AGENT_RBAC });
  const agentKubeconfig = await w.api.writeKubeconfigFile(`${w.dir}/agent-kubeconfig`);
  const first = await agentProcess(w, agentKubeconfig);
  const firstLog = await first.stop();
  const t1 = await tokenIn(w.kubeconfig);
  assert.equal(w.api.tokens.state(t1), "valid");
  assert.deepEqual(
    w.api.tokens.issued().map((t) => [t.account, t.seconds]),
    [["galactic-system/galactic-cni", 1200]],
  );
  assert.match(firstLog, /plugin token issued/);
  assert.ok(!firstLog.includes(t1), "no token in the agent's log");
  // Agent down: the plugin goes direct, on the token the agent wrote.
  const add = ok(await cni(w, "ADD", { config: w.config() }), "ADD with the agent stopped");

  const second = await agentProcess(w, agentKubeconfig);
  const t2 = await tokenIn(w.kubeconfig);
  assert.notEqual(t2, t1, "a fresh token at start");
  assert.equal(w.api.tokens.issued().length, 2);
  ok(
    await cni(w, "CHECK", { config: w.config({ prevResult: add.json }) }),
    "CHECK with the agent serving",
  );
  await second.stop();
  // Every token so far revoked: what works after the next start is its fresh one.
  w.api.tokens.revoke();
  const third = await agentProcess(w, agentKubeconfig);
  await third.stop();
  ok(await cni(w, "DEL", { config: w.config() }), "DEL on the token of the third start");
});
