/**
 * The measuring side, run inside the node's network namespace (the driver
 * starts it with `ip netns exec`), so every process it execs works on that
 * namespace as on a node, and the fake API servers it hosts on 127.0.0.1 are
 * reachable from the plugin and the agent. It sets up the node, runs the
 * scenarios (the substitute's cost in host mode, the pairs, the breakdown),
 * and writes the results whatever failed.
 *
 * @module
 */

import { FakeApiServer } from "../../tests/support/fake_api_server.ts";
import { seedNode } from "../../tests/support/kube_fixtures.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import { runChecked, systemRunner } from "../../lib/iproute2/runner.ts";
import { type AgentCgroup, makeAgentCgroup } from "./agent_cpu.ts";
import { AgentProcess } from "./agent_process.ts";
import { installShim, measureShimCost } from "./ip_shim.ts";
import { loadAverage, machine } from "./machine.ts";
import type { BenchOptions } from "./options.ts";
import { sequentialPairs } from "./pairs.ts";
import { profilePairs } from "./profile.ts";
import type { BenchResults, Mode, Subject } from "./results.ts";
import { API_TIMEOUT_SECONDS, type Node, NODE_NAME, PATH, stateDir } from "./subjects.ts";

/** What the driver hands to the worker (a JSON file). */
export interface WorkerInput {
  readonly options: BenchOptions;
  readonly repo: string;
  /** Scratch directory (the driver removes it). */
  readonly tmp: string;
  /** Prefix of every netns name of this run. */
  readonly prefix: string;
  /** Substitute the VRF steps (host mode). */
  readonly shim: boolean;
  readonly resultsFile: string;
}

/** Injected into every fake API answer: loopback alone would flatter the API path. */
const API_DELAY_MS = 1;

const started = performance.now();
function say(text: string): void {
  console.error(`[bench +${((performance.now() - started) / 1000).toFixed(1)}s] ${text}`);
}

async function startServers(tmp: string): Promise<Pick<Node, "servers" | "kubeconfigs">> {
  const servers = {
    "no-agent": new FakeApiServer(),
    // The agent lists and watches: it gets the agent's ClusterRole (manifests/rbac.yaml).
    agent: new FakeApiServer({ rbac: AGENT_RBAC }),
    fallback: new FakeApiServer(),
  };
  const kubeconfigs = {} as Node["kubeconfigs"];
  for (const [name, server] of Object.entries(servers) as [keyof typeof servers, FakeApiServer][]) {
    seedNode(server, NODE_NAME);
    server.fault({ delayMs: API_DELAY_MS });
    // JSON, as `galactic install` writes it (read without a YAML parser).
    kubeconfigs[name] = await server.writeKubeconfigFile(`${tmp}/kubeconfig-${name}`, {
      json: true,
    });
  }
  return { servers, kubeconfigs };
}

/** Runs the worker; returns its exit code (the results are written even on failure). */
export async function runWorker(inputFile: string): Promise<number> {
  const input = JSON.parse(await Deno.readTextFile(inputFile)) as WorkerInput;
  const { options, repo, tmp, prefix } = input;
  const results: BenchResults = {
    version: 3,
    startedAt: new Date().toISOString(),
    wallMs: 0,
    options,
    machine: await machine(repo),
    vrf: input.shim ? "shim" : "kernel",
    load: { before: await loadAverage() },
    subjects: [],
    profile: [],
    errors: [],
  };
  let agent: AgentProcess | undefined;
  let cgroup: AgentCgroup | undefined;
  let node: Node | undefined;
  try {
    await runChecked(systemRunner(), ["ip", "link", "set", "lo", "up"]);
    node = {
      repo,
      tmp,
      ...(options.compare && { compare: options.compare }),
      ...await startServers(tmp),
      ...(input.shim && { shim: await installShim(`${tmp}/shim`, PATH) }),
    };
    if (node.shim) {
      say("host mode: measuring the VRF substitute's own cost");
      results.shim = await measureShimCost(node.shim, Math.max(5, options.iterations));
      node.shimCost = results.shim.cost;
      node.shimCpuCost = results.shim.cpu;
    }
    const modes: Mode[] = options.agentOnly ? [] : ["no-agent"];
    if (!options.noAgent) {
      say("starting galactic agent");
      cgroup = await makeAgentCgroup(tmp, `${prefix}-agent`);
      const spawned = performance.now();
      agent = await AgentProcess.start(`${repo}/bin/galactic`, {
        socket: `${tmp}/agent.sock`,
        kubeconfig: node.kubeconfigs.agent,
        node: NODE_NAME,
        timeoutSeconds: API_TIMEOUT_SECONDS,
        stateDir: stateDir(node, "agent"),
        path: PATH,
        ...(cgroup && { cgroup: cgroup.dir }),
      });
      node.agent = agent;
      results.agent = {
        startMs: performance.now() - spawned,
        backgroundApi: node.servers.agent.requests.length,
        cpuSource: agent.cpuSource,
      };
      modes.unshift("agent");
    }
    const compare = options.compare && results.agent ? ["compare" as const] : [];
    const subjects: Subject[] = ["go", "floor", ...modes, ...compare];
    results.subjects.push(...await sequentialPairs(node, subjects, { ...options, prefix, say }));
    for (const mode of options.profileRuns > 0 ? [...modes, ...compare] : []) {
      say(`breakdown: ${options.profileRuns} strace'd pairs, ${mode}`);
      results.profile.push(
        ...await profilePairs(node, mode, {
          runs: options.profileRuns,
          prefix,
          errors: results.errors,
        }),
      );
    }
  } catch (error) {
    results.errors.push((error as Error).message);
  } finally {
    if (agent) {
      const peak = await agent.peakRssKb();
      if (results.agent && peak !== undefined) results.agent.peakRssKb = peak;
      if (results.agent) results.agent.removals = await agent.removals();
      await agent.stop();
    }
    await cgroup?.close();
    for (const server of Object.values(node?.servers ?? {})) await server.close().catch(() => {});
    results.load.after = await loadAverage();
    results.wallMs = performance.now() - started;
    await Deno.writeTextFile(input.resultsFile, JSON.stringify(results, null, 1));
  }
  return results.errors.length > 0 ? 1 : 0;
}
