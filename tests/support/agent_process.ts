/**
 * `galactic agent` as a process of its own, through the launcher, as the
 * DaemonSet runs it: for the e2e tests of the agent and of its credential
 * refresh. Ready once it logs that it serves (its caches are filled and its
 * first plugin token, if any, written before that).
 *
 * @module
 */

import { LAUNCHER, NODE, type World } from "./cni_world.ts";
import { denoDir } from "./fake_host/mod.ts";

/** A running agent process. */
export interface AgentProcess extends AsyncDisposable {
  /** Its health endpoint (`--health-port 0`: a free port). */
  readonly health: string;
  /** SIGTERM: the agent closes its connections and removes its socket; resolves to its log. */
  stop(): Promise<string>;
  /** SIGKILL: the agent dies at once, leaving its socket file behind; resolves to its log. */
  kill(): Promise<string>;
}

/** Starts the agent of `w`'s node on `<w.dir>/agent.sock`; `args` are appended to its flags. */
export async function startAgentProcess(
  w: World,
  options: {
    kubeconfig?: string;
    args?: readonly string[];
    /** Added to its environment (e.g. the fake host's, for the removals it runs). */
    env?: Readonly<Record<string, string>>;
  } = {},
): Promise<AgentProcess> {
  const child = new Deno.Command(LAUNCHER, {
    args: [
      "agent",
      "--socket",
      `${w.dir}/agent.sock`,
      "--kubeconfig",
      options.kubeconfig ?? w.kubeconfig,
      "--node",
      NODE,
      "--timeout",
      "3",
      "--health-port",
      "0",
      ...options.args ?? [],
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? "/root",
      DENO_DIR: denoDir(),
      ...options.env,
    },
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let log = "";
  while (!log.includes("agent serving")) {
    const { value, done } = await stderr.read();
    if (done) throw new Error(`agent exited early:\n${log}`);
    log += value;
  }
  const health = log.match(/health=(http:\/\/127\.0\.0\.1:\d+)/)?.[1];
  if (health === undefined) throw new Error(`agent logged no health endpoint:\n${log}`);
  const drain = (async () => {
    for (;;) {
      const { value, done } = await stderr.read();
      if (done) return;
      log += value;
    }
  })();
  let stopped = false;
  const end = (signal: Deno.Signal) => async (): Promise<string> => {
    if (!stopped) {
      stopped = true;
      child.kill(signal);
      await child.status;
      await drain;
    }
    return log;
  };
  const stop = end("SIGTERM");
  return {
    health,
    stop,
    kill: end("SIGKILL"),
    [Symbol.asyncDispose]: async () => void await stop(),
  };
}
