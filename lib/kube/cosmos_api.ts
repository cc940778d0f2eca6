/**
 * Which cosmos API galactic speaks, and whether a cluster serves it. The
 * plugin writes BGPVRFInstance and reads BGPInstance and BGPProvider exactly
 * as the CRDs of cosmos commit d08f786 define them (served unchanged up to
 * 80a1b50); cosmos 9fcbc60 ("BGP API v3") and later are a different API
 * (BGPRouter, a namespaced BGPVRFInstance, no BGPInstance/BGPProvider).
 *
 * {@linkcode checkCosmosApi} asks API discovery (no RBAC needed) for the two
 * group versions and says in one sentence per kind what is wrong, instead
 * of letting the first ADD fail on a 404 or 422. STATUS and the node agent's
 * start run it; ADD does not (no extra request on the hot path).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import {
  type ApiResource,
  BGP_INSTANCES,
  BGP_PROVIDERS,
  BGP_VRF_INSTANCES,
  type CallOptions,
  type KubeApi,
  qualifiedName,
  type Resource,
} from "./api.ts";

/** The cosmos commits whose API this build speaks. */
export const COSMOS_API = {
  /** The commit the CRDs were taken from. */
  commit: "d08f786",
  /** The newest commit known to serve the same API. */
  compatibleThrough: "80a1b50",
  /** The first commit of the incompatible "BGP API v3". */
  incompatibleFrom: "9fcbc60",
} as const;

/** The kinds the plugin uses, each needed cluster-scoped at its group version. */
export const COSMOS_RESOURCES: readonly Resource[] = [
  BGP_VRF_INSTANCES,
  BGP_INSTANCES,
  BGP_PROVIDERS,
];

/** What discovery found: each group version's resources (undefined: not served), the groups' versions. */
export interface Discovered {
  readonly groupVersions: ReadonlyMap<string, readonly ApiResource[] | undefined>;
  /** Served versions per group; only fetched when a group version is missing. */
  readonly groups?: ReadonlyMap<string, readonly string[]>;
}

function groupVersion(resource: Resource): string {
  return `${resource.group}/${resource.version}`;
}

/** What is wrong with one kind, as a clause naming the CRD and what was found; undefined when fine. */
function problem(resource: Resource, found: Discovered): string | undefined {
  const crd = `${resource.kind} (${qualifiedName(resource)})`;
  const gv = groupVersion(resource);
  const resources = found.groupVersions.get(gv);
  if (resources === undefined) {
    const versions = found.groups?.get(resource.group);
    return versions === undefined || versions.length === 0
      ? `${crd}: the API server serves no ${resource.group} API at all (CRD not installed)`
      : `${crd}: the API server serves ${resource.group} only as ${
        versions.join(", ")
      }, not ${resource.version}`;
  }
  const served = resources.find((r) => r.name === resource.plural);
  if (!served) {
    const others = resources.filter((r) => !r.name.includes("/")).map((r) => r.kind).sort();
    return `${crd}: ${gv} has no ${resource.plural} (it serves ${others.join(", ") || "nothing"})`;
  }
  if (served.namespaced) return `${crd}: it is namespaced, galactic needs it cluster-scoped`;
  return undefined;
}

/** The cluster serves another cosmos API than this build speaks (code 50). */
export class IncompatibleCosmosApi extends CniError {
  constructor(problems: readonly string[]) {
    super(ErrorCode.PluginNotAvailable, incompatibleCosmosMessage(problems));
    this.name = "IncompatibleCosmosApi";
  }
}

/** The problems discovery shows, one clause per kind; empty when the API is the one galactic speaks. */
export function cosmosApiProblems(found: Discovered): string[] {
  return COSMOS_RESOURCES.flatMap((r) => problem(r, found) ?? []);
}

/** The sentence STATUS and the agent report for `problems`. */
export function incompatibleCosmosMessage(problems: readonly string[]): string {
  return `incompatible cosmos API: ${problems.join("; ")}. galactic needs the cluster-scoped ` +
    `v1alpha1 BGPVRFInstance, BGPInstance and BGPProvider CRDs of cosmos ${COSMOS_API.commit} ` +
    `(compatible through ${COSMOS_API.compatibleThrough}; ${COSMOS_API.incompatibleFrom} ` +
    `"BGP API v3" and later are not), see docs/deployment.md`;
}

/**
 * Asks discovery (2 requests in parallel, a third only when a group version
 * is missing) and throws {@linkcode IncompatibleCosmosApi} when the cluster
 * does not serve the cosmos API galactic speaks (API failures as they come).
 */
export async function checkCosmosApi(api: KubeApi, options: CallOptions): Promise<void> {
  const gvs = [...new Set(COSMOS_RESOURCES.map(groupVersion))];
  const lists = await Promise.all(gvs.map((gv) => {
    const [group, version] = gv.split("/") as [string, string];
    return api.apiResources(group, version, options);
  }));
  const groupVersions = new Map(gvs.map((gv, i) => [gv, lists[i]]));
  const groups = lists.some((l) => l === undefined) ? await api.apiGroups(options) : undefined;
  const problems = cosmosApiProblems({ groupVersions, ...(groups && { groups }) });
  if (problems.length > 0) {
    throw new IncompatibleCosmosApi(problems);
  }
}
