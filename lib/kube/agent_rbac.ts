/**
 * The API access of the node agent (`galactic agent`, the DaemonSet's main
 * container), exactly. The agent caches BGPProviders and BGPInstances for the
 * plugin, so it needs `watch` besides `list`, and it may write
 * BGPVRFInstances on the plugin's behalf with the plugin's own verbs (plus
 * `watch`). It also issues the plugin's expiring token (TokenRequest,
 * `lib/agent/plugin_credentials.ts`): `create` on `serviceaccounts/token` of exactly
 * the `galactic-cni` ServiceAccount, in galactic's namespace only (a Role, not
 * the ClusterRole: a ClusterRole would reach a `galactic-cni` account in any
 * namespace). The `galactic-agent` ClusterRole and Role in `manifests/` are
 * checked against this list by `tests/deploy`; the plugin's own, smaller
 * identity is `PLUGIN_RBAC` in `rbac.ts`.
 *
 * @module
 */

import type { RbacRule } from "./rbac.ts";
export type { RbacRule } from "./rbac.ts";

/** The namespace of galactic's node components and ServiceAccounts (`manifests/`). */
export const GALACTIC_NAMESPACE = "galactic-system";
/** The plugin's ServiceAccount, whose tokens the agent issues. */
export const PLUGIN_SERVICE_ACCOUNT = "galactic-cni";

/** Rules of the node agent's identity (ServiceAccount `galactic-agent`). */
export const AGENT_RBAC: readonly RbacRule[] = [
  { apiGroup: "providers.bgp.miloapis.com", resource: "bgpproviders", verbs: ["list", "watch"] },
  { apiGroup: "bgp.miloapis.com", resource: "bgpinstances", verbs: ["list", "watch"] },
  {
    apiGroup: "bgp.miloapis.com",
    resource: "bgpvrfinstances",
    verbs: ["get", "list", "watch", "create", "update", "delete"],
  },
  {
    apiGroup: "",
    resource: "serviceaccounts/token",
    verbs: ["create"],
    resourceNames: [PLUGIN_SERVICE_ACCOUNT],
    namespace: GALACTIC_NAMESPACE,
  },
];
