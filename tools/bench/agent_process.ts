/**
 * The node agent as the bench runs it: started from bin/galactic, ready when
 * its socket appears and it has gone idle (its watches digested), and its
 * peak resident memory read from /proc before it is stopped.
 *
 * It takes the removals of the agent subject's state dir, as on a node (a
 * DEL hands it the veth and the VRF), in its own cgroup when there is one
 * (`agent_cpu.ts`: its CPU time, children included). Its PATH has no VRF
 * substitute: what it runs (`link del`, `route del … table T`, `iptables -D`)
 * has nothing to substitute, and so nothing of it lands in the substitute's
 * calls file of the plugin it ran after. Reclaim is off: it would tear down
 * the bench's attachments, whose pods the fake API server does not know.
 *
 * @module
 */

import { agentCpuMs } from "./agent_cpu.ts";

/** The agent's /metrics port, on the node netns's loopback. */
const HEALTH_PORT = 9765;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A running `galactic agent`. */
export class AgentProcess {
  readonly #child: Deno.ChildProcess;
  #stderr = "";
  readonly #drained: Promise<void>;
  #exited = false;
  readonly #cgroup: string | undefined;

  private constructor(child: Deno.ChildProcess, cgroup: string | undefined) {
    this.#child = child;
    this.#cgroup = cgroup;
    child.status.then(() => this.#exited = true);
    this.#drained = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.#stderr = (this.#stderr + decoder.decode(chunk)).slice(-4000);
      }
    })().catch(() => {});
  }

  /** Starts the agent and waits until it serves `socket` and is idle; throws with its stderr. */
  static async start(
    launcher: string,
    options: {
      socket: string;
      kubeconfig: string;
      node: string;
      timeoutSeconds: number;
      stateDir: string;
      /** The PATH it runs `ip` and `iptables` from. */
      path: string;
      /** A cgroup to start it in (`agent_cpu.ts`). */
      cgroup?: string;
    },
  ): Promise<AgentProcess> {
    const args = ["agent", "--socket", options.socket, "--kubeconfig", options.kubeconfig]
      .concat(["--node", options.node, "--timeout", String(options.timeoutSeconds)])
      .concat(["--state-dir", options.stateDir, "--reclaim-interval", "0"])
      .concat(["--health-port", String(HEALTH_PORT)]);
    // In the cgroup from its first instruction: a shell moves itself, then execs the launcher.
    const argv = options.cgroup === undefined
      ? [launcher, ...args]
      : ["/bin/sh", "-c", 'echo $$ >"$0/cgroup.procs" && exec "$@"', options.cgroup, launcher]
        .concat(args);
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      env: { PATH: options.path },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const agent = new AgentProcess(child, options.cgroup);
    const deadline = performance.now() + 120_000;
    while (!agent.#exited && performance.now() < deadline) {
      if ((await Deno.lstat(options.socket).catch(() => undefined))?.isSocket) {
        await agent.#settle();
        return agent;
      }
      await sleep(50);
    }
    await agent.stop();
    const tail = agent.#stderr.trim().split("\n").slice(-8).join("\n");
    throw new Error(`galactic agent did not come up: ${tail}`);
  }

  /** Waits until the agent uses under 5% of a CPU over a second (ticks of 10 ms). */
  async #settle(): Promise<void> {
    const deadline = performance.now() + 60_000;
    let last = await this.#cpuTicks();
    while (performance.now() < deadline) {
      await sleep(1000);
      const now = await this.#cpuTicks();
      if (now === undefined || last === undefined || now - last <= 5) return;
      last = now;
    }
  }

  async #cpuTicks(): Promise<number | undefined> {
    const stat = await Deno.readTextFile(`/proc/${this.#child.pid}/stat`).catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    return Number.isFinite(ticks) ? ticks : undefined;
  }

  /** Where {@linkcode cpuMs} reads from. */
  get cpuSource(): "cgroup" | "proc" {
    return this.#cgroup === undefined ? "proc" : "cgroup";
  }

  /** The agent's CPU time so far (with its children's), ms. */
  cpuMs(): Promise<number | undefined> {
    return agentCpuMs({ pid: this.#child.pid, ...(this.#cgroup && { cgroup: this.#cgroup }) });
  }

  /** Its `galactic_agent_removals_total` by outcome (empty when /metrics does not answer). */
  async removals(): Promise<Record<string, number>> {
    const text = await fetch(`http://127.0.0.1:${HEALTH_PORT}/metrics`)
      .then((response) => response.text()).catch(() => "");
    return parseRemovals(text);
  }

  /** VmHWM: the agent's peak RSS so far, KiB. */
  async peakRssKb(): Promise<number | undefined> {
    const status = await Deno.readTextFile(`/proc/${this.#child.pid}/status`).catch(() => "");
    const match = /^VmHWM:\s*(\d+)\s*kB/m.exec(status);
    return match ? Number(match[1]) : undefined;
  }

  async stop(): Promise<void> {
    const kill = (signal: Deno.Signal): void => {
      try {
        this.#child.kill(signal);
      } catch { /* gone */ }
    };
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), 20_000);
    await this.#child.status;
    clearTimeout(timer);
    await this.#drained;
  }
}

/** `galactic_agent_removals_total{outcome="…"} n` lines of a /metrics text, by outcome. */
export function parseRemovals(metrics: string): Record<string, number> {
  const counts: Record<string, number> = {};
  const line = /^galactic_agent_removals_total\{outcome="(\w+)"\} (\d+)$/gm;
  for (const [, outcome, n] of metrics.matchAll(line)) {
    counts[outcome!] = Number(n);
  }
  return counts;
}
