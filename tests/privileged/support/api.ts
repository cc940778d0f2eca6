/**
 * One fake Kubernetes API server (in this test process, on 127.0.0.1 of the
 * root netns) shared by every "node" netns of a suite, reached two ways:
 *
 * - **direct**: the plugin process in a node netns loads the Kubernetes
 *   client itself. The node netns has no route to the root netns, so a relay
 *   process inside it listens on its 127.0.0.1 and forwards each connection
 *   over a unix socket (file system, not netns, bound) to this process, which
 *   forwards it to the server. The kubeconfig of that node names the relay.
 * - **agent**: the node agent (`lib/agent`, what the DaemonSet runs) serves
 *   the plugin processes over a unix socket; it runs here, in-process, and
 *   reaches the server directly. As on a node, it takes the DELs' veth and VRF
 *   removals (issue 17), running `ip`/`iptables` in the node's netns; a suite
 *   checking a node after DEL waits for them first ({@linkcode
 *   ApiWorld.removalsDone}).
 *
 * The test keeps full control of the server (objects, faults, RBAC, hooks).
 *
 * @module
 */

import { FakeApiServer } from "../../support/fake_api_server.ts";
import { seedNode } from "../../support/kube_fixtures.ts";
import type { PendingRemovals } from "../../../lib/agent/removals.ts";
import { DEFAULTS } from "../../../lib/config/mod.ts";
import { type CommandRunner, withTimeout } from "../../../lib/iproute2/runner.ts";
import { AGENT_RBAC } from "../../../lib/kube/agent_rbac.ts";
import { createLogger } from "../../../lib/log/logger.ts";
import type { Netns } from "./kernel.ts";
import { netnsRunner, REPO, tempDir, waitFor } from "./kernel.ts";

/** Inside the lab's TCG VM: the deadlines `attachmentConfig` gives the plugin there. */
const IN_LAB_VM = Deno.env.get("LAB_MODE") === "vm";
/** Longest wait for the agents' pending removals (a lab VM runs fifty at four at a time). */
const REMOVALS_BOUND_MS = IN_LAB_VM ? 600_000 : 60_000;

/** Port the relay listens on inside each node netns. */
export const RELAY_PORT = 6443;

interface Pipe {
  readonly a: Deno.Conn;
  readonly b: Deno.Conn;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/** Copies bytes both ways until either side closes. */
async function splice(a: Deno.Conn, b: Deno.Conn): Promise<void> {
  await Promise.allSettled([a.readable.pipeTo(b.writable), b.readable.pipeTo(a.writable)]);
  closeQuietly(a);
  closeQuietly(b);
}

interface Relay {
  readonly ns: string;
  readonly child: Deno.ChildProcess;
}

interface Agent {
  readonly node: string;
  readonly socket: string;
  /** Its metrics, Prometheus text (calls answered, API requests, verb reports). */
  metrics(): string;
  /** The DEL removals it took and has not finished. */
  readonly removals: PendingRemovals | undefined;
  close(): Promise<void>;
}

/** The node an agent serves: where it takes DELs' removals and how it reaches the kernel. */
export interface AgentNode {
  /** The plugin's state directory on that node (`state_dir`). */
  readonly stateDir: string;
  /** The node's netns: the agent's `ip`/`iptables` run there, as the DaemonSet's on the host. */
  readonly netns: Netns;
  /** Runs the agent's removal commands instead of the node's netns (a failing agent). */
  readonly removalRunner?: CommandRunner;
  /** How often it sweeps `removing` records (default: `galactic agent`'s 60 s; 0: at start only). */
  readonly sweepIntervalMs?: number;
}

/** The shared fake API server and its ways in. */
export class ApiWorld {
  /** The fake API server (objects, faults, RBAC, hooks). */
  readonly server: FakeApiServer;
  /** Scratch directory (kubeconfigs, sockets). */
  readonly dir: string;
  /** Kubeconfig naming the server directly (usable from the root netns only). */
  readonly kubeconfig: string;
  readonly #bridgePath: string;
  readonly #bridge: Deno.Listener;
  readonly #accepting: Promise<void>;
  readonly #pipes = new Set<Pipe>();
  readonly #relays: Relay[] = [];
  readonly #agents: Agent[] = [];

  private constructor(server: FakeApiServer, dir: string, kubeconfig: string) {
    this.server = server;
    this.dir = dir;
    this.kubeconfig = kubeconfig;
    this.#bridgePath = `${dir}/api.sock`;
    this.#bridge = Deno.listen({ transport: "unix", path: this.#bridgePath });
    this.#accepting = this.#accept();
  }

  /**
   * Starts the server (seeded with nothing yet). Its one identity has the
   * plugin's RBAC, or the node agent's (which adds `watch`) with `agent`.
   */
  static async start(options: { agent?: boolean } = {}): Promise<ApiWorld> {
    const server = new FakeApiServer(options.agent ? { rbac: AGENT_RBAC } : {});
    const dir = await tempDir("gapi");
    const kubeconfig = await server.writeKubeconfigFile(`${dir}/kubeconfig`);
    return new ApiWorld(server, dir, kubeconfig);
  }

  async #accept(): Promise<void> {
    const port = Number(new URL(this.server.url).port);
    const tasks = new Set<Promise<void>>();
    try {
      for await (const client of this.#bridge) {
        const task = (async () => {
          let upstream: Deno.Conn;
          try {
            upstream = await Deno.connect({ hostname: "127.0.0.1", port });
          } catch {
            closeQuietly(client);
            return;
          }
          const pipe = { a: client, b: upstream };
          this.#pipes.add(pipe);
          await splice(client, upstream);
          this.#pipes.delete(pipe);
        })().finally(() => tasks.delete(task));
        tasks.add(task);
      }
    } catch { /* listener closed */ }
    await Promise.allSettled(tasks);
  }

  /**
   * Seeds what the plugin looks up for `node`: a BGPProvider labelled with it
   * and (once) the BGPInstance "workers" (ASN 65000) selecting it.
   */
  seedNode(node: string): void {
    seedNode(this.server, node, { asn: 65000 });
  }

  /**
   * Starts a relay inside `ns` (127.0.0.1:6443 there → this server) and
   * returns the path of a kubeconfig naming it, for plugin processes in `ns`.
   */
  async relayInto(ns: Netns): Promise<string> {
    const child = new Deno.Command("ip", {
      args: [
        ...["netns", "exec", ns.name, Deno.execPath(), "run", "--quiet", "--no-config"],
        ...["--allow-net", "--allow-read", "--allow-write"],
        `${REPO}/tests/privileged/support/netns_relay.ts`,
        ...["--port", String(RELAY_PORT), "--socket", this.#bridgePath],
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#relays.push({ ns: ns.name, child });
    const reader = child.stdout.getReader();
    let text = "";
    const deadline = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 120_000);
    try {
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`relay in ${ns.name} exited before listening`);
        text += new TextDecoder().decode(value);
      }
    } finally {
      clearTimeout(deadline);
      reader.releaseLock();
    }
    // Nothing else is printed; let the pipe drain in the background.
    child.stdout.pipeTo(new WritableStream()).catch(() => {});
    const url = `http://127.0.0.1:${RELAY_PORT}`;
    const path = `${this.dir}/kubeconfig-${ns.name}`;
    const direct = await Deno.readTextFile(this.kubeconfig);
    await Deno.writeTextFile(path, direct.replace(this.server.url, url), { mode: 0o600 });
    return path;
  }

  /**
   * Starts the node agent for `node` in this process, serving `socket` and
   * taking the DEL removals of `on`'s state directory; resolves once it
   * accepts connections (its caches are synced by then).
   */
  async startAgent(node: string, socket: string, on: AgentNode): Promise<void> {
    const { startAgent } = await import("../../../lib/agent/agent.ts");
    const agent = await startAgent({
      socket,
      source: { kind: "file", path: this.kubeconfig, origin: "test" },
      node,
      // Starved beside 20 plugin processes under the lab's TCG, an API answer
      // can take a minute there.
      timeoutMs: IN_LAB_VM ? 120_000 : 20_000,
      log: createLogger({ level: "warn" }),
      // What `galactic agent` gives it, with the plugin's deadlines of the
      // suites (attachmentConfig).
      removals: {
        stateDir: on.stateDir,
        runner: on.removalRunner ??
          withTimeout(
            netnsRunner(on.netns.name),
            (IN_LAB_VM ? 120 : DEFAULTS.commandTimeoutSeconds) * 1000,
          ),
        lockTimeoutMs: (IN_LAB_VM ? 300 : DEFAULTS.lockTimeoutSeconds) * 1000,
        sweepIntervalMs: on.sweepIntervalMs ?? 60_000,
      },
    });
    this.#agents.push({
      node,
      socket,
      metrics: () => agent.metrics.render({ caches: [], ready: agent.ready() }),
      removals: agent.removals,
      close: () => agent.close(),
    });
    await waitFor(`agent socket ${socket}`, async () => {
      try {
        (await Deno.connect({ transport: "unix", path: socket })).close();
        return true;
      } catch {
        return undefined;
      }
    });
  }

  /**
   * Stops the agent of `node` (it finishes the removals it queued first, as
   * `close` does); a later {@linkcode startAgent} may serve the node again.
   */
  async stopAgent(node: string): Promise<void> {
    const index = this.#agents.findIndex((a) => a.node === node);
    if (index < 0) throw new Error(`no agent for node ${node}`);
    const [agent] = this.#agents.splice(index, 1);
    await agent!.close();
  }

  /**
   * Resolves once every agent has finished the DEL removals it took so far:
   * what a DEL handed off is then done (or failed). Bounded: rejects after
   * {@linkcode REMOVALS_BOUND_MS} naming the nodes still busy.
   */
  async removalsDone(): Promise<void> {
    const busy = new Set(this.#agents.map((a) => a.node));
    const all = Promise.all(this.#agents.map(async (agent) => {
      await agent.removals?.idle();
      busy.delete(agent.node);
    }));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        all,
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () =>
              reject(
                new Error(
                  `the agents of ${[...busy].join(", ")} did not finish their removals within ${
                    REMOVALS_BOUND_MS / 1000
                  } s`,
                ),
              ),
            REMOVALS_BOUND_MS,
          )
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The samples of `metric` the agent of `node` counted, keyed by their
   * labels as printed (e.g. `{op="declareVrf",outcome="ok"}`).
   */
  agentCounts(node: string, metric: string): Record<string, number> {
    const agent = this.#agents.find((a) => a.node === node);
    if (!agent) throw new Error(`no agent for node ${node}`);
    const counts: Record<string, number> = {};
    for (const line of agent.metrics().split("\n")) {
      if (!line.startsWith(`${metric}{`)) continue;
      const space = line.lastIndexOf(" ");
      counts[line.slice(metric.length, space)] = Number(line.slice(space + 1));
    }
    return counts;
  }

  /** Stops agents, relays, the bridge and the server; removes the scratch dir. */
  async close(): Promise<void> {
    for (const agent of this.#agents.splice(0)) {
      await agent.close().catch((e) => console.error(`agent ${agent.node}: ${e}`));
    }
    for (const relay of this.#relays.splice(0)) {
      try {
        relay.child.kill("SIGTERM");
      } catch { /* exited */ }
      await relay.child.status;
    }
    this.#bridge.close();
    for (const pipe of this.#pipes) {
      closeQuietly(pipe.a);
      closeQuietly(pipe.b);
    }
    await this.#accepting;
    await this.server.close();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
