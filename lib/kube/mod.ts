/**
 * Entry point of the Kubernetes side, cheap to import: resolving the
 * kubeconfig and node name costs a few `stat`s, and the API client (the
 * kubeconfig's YAML parser, the HTTP transport) is loaded only when
 * {@linkcode openDirectControlPlane} is called.
 *
 * @module
 */

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
