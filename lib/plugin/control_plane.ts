/**
 * How the plugin reaches the BGP control plane: through the node agent when
 * one listens, else (or for any call the agent cannot answer) through the
 * Kubernetes client in this process. One session per invocation, opened on
 * first use so a verb that never needs the API never loads the client.
 *
 * @module
 */

import { connectAgent, withFallback } from "../agent/agent_client.ts";
import type { NetworkConfig } from "../config/mod.ts";
import type { BgpControlPlane } from "../kube/control_plane.ts";
import { openDirectControlPlane, type ResolveOptions } from "../kube/mod.ts";

/**
 * Opens the control plane: through the node agent when one listens on
 * `config.agentSocket` (the CNI process then never loads the Kubernetes
 * client), falling back to the in-process client for any call the agent
 * cannot answer; without an agent, the in-process client directly.
 */
export async function openControlPlane(
  config: Pick<NetworkConfig, "kubeconfig" | "apiTimeoutSeconds" | "agentSocket">,
  options: ResolveOptions,
): Promise<BgpControlPlane> {
  const agent = await connectAgent(config.agentSocket, {
    // The agent's own API calls have the same budget; allow for its retries to finish.
    timeoutMs: config.apiTimeoutSeconds * 1000 + 2000,
  });
  if (agent) return withFallback(agent, () => openDirectControlPlane(config, options));
  return await openDirectControlPlane(config, options);
}

/** The control plane of one invocation, opened on first use and closed once. */
export class ControlPlaneSession {
  readonly #open: () => Promise<BgpControlPlane>;
  #plane: Promise<BgpControlPlane> | undefined;

  constructor(open: () => Promise<BgpControlPlane>) {
    this.#open = open;
  }

  get(): Promise<BgpControlPlane> {
    this.#plane ??= this.#open();
    return this.#plane;
  }

  /** Closes it if it was opened (a failed open has nothing to close). */
  async close(): Promise<void> {
    if (!this.#plane) return;
    await (await this.#plane.catch(() => undefined))?.close();
  }
}
