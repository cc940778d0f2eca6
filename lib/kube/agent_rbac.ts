/**
 * The API access of the node agent (`galactic agent`, the DaemonSet's main
 * container), exactly. The agent caches BGPProviders and BGPInstances for the
 * plugin, so it needs `watch` besides `list`, and it may write
 * BGPVRFInstances on the plugin's behalf with the plugin's own verbs (plus
 * `watch`). The `galactic-agent` ClusterRole in `manifests/` is checked
 * against this list by `tests/deploy`; the plugin's own, smaller identity is
 * `PLUGIN_RBAC` in `rbac.ts`.
 *
 * @module
 */

import type { RbacRule } from "./rbac.ts";
export type { RbacRule } from "./rbac.ts";

/** Rules of the node agent's identity (ServiceAccount `galactic-agent`). */
export const AGENT_RBAC: readonly RbacRule[] = [
  { apiGroup: "providers.bgp.miloapis.com", resource: "bgpproviders", verbs: ["list", "watch"] },
  { apiGroup: "bgp.miloapis.com", resource: "bgpinstances", verbs: ["list", "watch"] },
  {
    apiGroup: "bgp.miloapis.com",
    resource: "bgpvrfinstances",
    verbs: ["get", "list", "watch", "create", "update", "delete"],
  },
];
