/**
 * The node agent as the bench runs it: started from bin/galactic, ready when
 * its socket appears and it has gone idle (its watches digested), and its
 * peak resident memory read from /proc before it is stopped.
 *
 * @module
 */

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A running `galactic agent`. */
export class AgentProcess {
  readonly #child: Deno.ChildProcess;
  #stderr = "";
  readonly #drained: Promise<void>;
  #exited = false;

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
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
    options: { socket: string; kubeconfig: string; node: string; timeoutSeconds: number },
  ): Promise<AgentProcess> {
    const child = new Deno.Command(launcher, {
      args: ["agent", "--socket", options.socket, "--kubeconfig", options.kubeconfig]
        .concat(["--node", options.node, "--timeout", String(options.timeoutSeconds)]),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const agent = new AgentProcess(child);
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
