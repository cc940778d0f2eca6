/**
 * The API access the CNI plugin needs, exactly (SPEC §7). This list is the one
 * source of truth: the Kubernetes client only calls these, and the ClusterRole
 * in `manifests/` is checked against it by `tests/deploy`.
 *
 * @module
 */

/** One RBAC rule, shaped like a ClusterRole `rules[]` entry. */
export interface RbacRule {
  /** API group of the resource. */
  readonly apiGroup: string;
  /** Plural resource name. */
  readonly resource: string;
  /** Verbs the plugin calls on it. */
  readonly verbs: readonly string[];
  /** Only these objects (RBAC `resourceNames`); absent: every object. */
  readonly resourceNames?: readonly string[];
  /** Only in this namespace (a Role, not the ClusterRole); absent: cluster-wide. */
  readonly namespace?: string;
}

/** Least-privilege rules of the CNI plugin's identity. */
export const PLUGIN_RBAC: readonly RbacRule[] = [
  { apiGroup: "providers.bgp.miloapis.com", resource: "bgpproviders", verbs: ["list"] },
  { apiGroup: "bgp.miloapis.com", resource: "bgpinstances", verbs: ["list"] },
  {
    apiGroup: "bgp.miloapis.com",
    resource: "bgpvrfinstances",
    verbs: ["get", "list", "create", "update", "delete"],
  },
];
