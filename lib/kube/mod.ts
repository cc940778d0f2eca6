/**
 * Entry point of the Kubernetes side, cheap to import: resolving the
 * kubeconfig and node name costs a few `stat`s, and the client library
 * (hundreds of milliseconds, ~115 MB) is loaded only when
 * {@linkcode openControlPlane} is called.
 *
 * @module
 */

import { connectAgent, withFallback } from "../agent/agent_client.ts";
import type { NetworkConfig } from "../config/network_config.ts";
import type { BgpControlPlane } from "./control_plane.ts";
import { resolveKubeconfig, type ResolveOptions } from "./kubeconfig.ts";

export type { BgpControlPlane, DeclaredVrf, VrfDeclaration, VrfKey } from "./control_plane.ts";
export {
  DEFAULT_CONFIG_DIR,
  DEFAULT_SERVICE_ACCOUNT_DIR,
  type KubeconfigSource,
  resolveKubeconfig,
  resolveNodeName,
  type ResolveOptions,
} from "./kubeconfig.ts";

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

/**
 * Resolves the kubeconfig (config field, `KUBECONFIG`, the installer's file,
 * in-cluster) and opens the Kubernetes control plane in this process, each
 * call of which is bounded by `config.apiTimeoutSeconds`. Throws a CNI error
 * when no kubeconfig is found or it cannot be loaded; no request is made yet.
 */
export async function openDirectControlPlane(
  config: Pick<NetworkConfig, "kubeconfig" | "apiTimeoutSeconds">,
  options: ResolveOptions,
): Promise<BgpControlPlane> {
  const source = resolveKubeconfig(config, options);
  const { createKubeControlPlane } = await import("./kube_control_plane.ts");
  return await createKubeControlPlane(source, { timeoutMs: config.apiTimeoutSeconds * 1000 });
}
