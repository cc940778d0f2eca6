/**
 * Which BGPInstance serves a node (SPEC §7 "Lookup on ADD"): list the
 * BGPProviders labelled with the node (server-side selector), list the
 * BGPInstances, keep those whose `spec.providerSelector` matches at least one
 * of those providers. Exactly one must remain.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import {
  BGP_INSTANCES,
  BGP_PROVIDERS,
  type CallOptions,
  type KubeApi,
  type KubeObject,
  NODE_LABEL,
} from "./api.ts";
import {
  InvalidSelectorError,
  type LabelSelector,
  labelSelectorMatcher,
  parseLabelSelector,
} from "./label_selector.ts";

/** What a node's BGPVRFInstances take from its BGPInstance. */
export interface BgpConfig {
  /** BGPInstance name (the BGPVRFInstance's `spec.instanceRef`, a string in the CRD). */
  readonly instance: string;
  /** Its `spec.asNumber`. */
  readonly asn: number;
  /** Its `spec.providerSelector` plus `bgp.miloapis.com/node: <node>` in `matchLabels`. */
  readonly providerSelector: LabelSelector;
}

const MAX_ASN = 0xffffffff;

function fail(message: string): CniError {
  return new CniError(ErrorCode.Kubernetes, message);
}

function names(objects: readonly KubeObject[]): string {
  return objects.map((o) => o.metadata.name).sort().join(", ");
}

function labelsOf(object: KubeObject): Record<string, string> {
  return object.metadata.labels ?? {};
}

/**
 * Picks the node's BGPInstance among `instances`, given the BGPProviders
 * labelled with the node. Pure; throws a CNI error (code 101) naming the
 * node when none matches, every candidate when several do, and the instance
 * when its selector is invalid.
 */
export function selectBgpConfig(
  node: string,
  found: { providers: readonly KubeObject[]; instances: readonly KubeObject[] },
): BgpConfig {
  const providers = found.providers.filter((p) => labelsOf(p)[NODE_LABEL] === node);
  if (providers.length === 0) {
    throw fail(
      `no BGPProvider is labelled ${NODE_LABEL}=${node}: is a BGP speaker running on node ${node}?`,
    );
  }
  const matching = found.instances.filter((instance) => {
    let matches;
    try {
      matches = labelSelectorMatcher(instance.spec?.providerSelector);
    } catch (error) {
      if (!(error instanceof InvalidSelectorError)) throw error;
      const name = JSON.stringify(instance.metadata.name);
      throw fail(`BGPInstance ${name} has an invalid spec.providerSelector: ${error.message}`);
    }
    return providers.some((provider) => matches(labelsOf(provider)));
  });
  if (matching.length === 0) {
    throw fail(
      `no BGPInstance selects a BGPProvider of node ${node} (providers: ${names(providers)}; ` +
        `instances: ${names(found.instances) || "none"})`,
    );
  }
  if (matching.length > 1) {
    const candidates = names(matching);
    throw fail(
      `ambiguous BGP configuration for node ${node}: BGPInstances ${candidates} all select its ` +
        `providers (${names(providers)}); narrow their spec.providerSelector so exactly one does`,
    );
  }
  const instance = matching[0]!;
  const asn = instance.spec?.asNumber;
  if (typeof asn !== "number" || !Number.isInteger(asn) || asn < 1 || asn > MAX_ASN) {
    throw fail(
      `BGPInstance ${JSON.stringify(instance.metadata.name)} has no valid spec.asNumber ` +
        `(want an integer in 1..${MAX_ASN}, got ${JSON.stringify(asn)})`,
    );
  }
  const selector = parseLabelSelector(instance.spec?.providerSelector);
  return {
    instance: instance.metadata.name,
    asn,
    providerSelector: {
      ...selector,
      matchLabels: { ...selector.matchLabels, [NODE_LABEL]: node },
    },
  };
}

/** Looks up the node's BGP configuration (2 list requests, in parallel). */
export async function lookupBgpConfig(
  api: KubeApi,
  node: string,
  options: CallOptions,
): Promise<BgpConfig> {
  const [providers, instances] = await Promise.all([
    api.list(BGP_PROVIDERS, { deadline: options.deadline, labelSelector: `${NODE_LABEL}=${node}` }),
    api.list(BGP_INSTANCES, { deadline: options.deadline }),
  ]);
  return selectBgpConfig(node, { providers, instances });
}
