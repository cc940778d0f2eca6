/**
 * {@linkcode BgpControlPlane} over the Kubernetes API. Each call runs under
 * its own deadline (the configured `api_timeout_seconds`), shared by all its
 * requests and retries.
 *
 * API requests per call (lists in one step run in parallel):
 *
 * - `declareVrf`: list providers (by node label) ‖ list instances ‖ list
 *   route-target holders; then, only when the object is missing or differs,
 *   create (or update) + list route-target holders again. First ADD of a VPC
 *   on a node: 5 requests in 3 round trips; steady state: 3 requests in 1
 *   round trip, no write.
 * - `withdrawVrf`: 1 delete.
 * - `verifyVrf`: list providers ‖ list instances ‖ get: 3 requests, 1 round trip.
 * - `listNodeVrfs`: 1 list. `probe`: 3 lists with `limit=1` ‖ 2 discovery gets (the cosmos
 *   API check, plus `/apis` when a group version is missing), 1 round trip.
 *
 * Loaded lazily (it reaches the API client).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { type Identifier, LABELS } from "../ids/mod.ts";
import {
  BGP_INSTANCES,
  BGP_PROVIDERS,
  BGP_VRF_INSTANCES,
  type KubeApi,
  type KubeObject,
  NODE_LABEL,
} from "./api.ts";
import { lookupBgpConfig } from "./bgp_config.ts";
import { checkCosmosApi, IncompatibleCosmosApi } from "./cosmos_api.ts";
import {
  deleteVrfInstance,
  desiredVrfInstance,
  listNodeVrfInstances,
  prefetchRouteTargetHolders,
  readVrfInstance,
  vrfDifferences,
  writeVrfInstance,
} from "./bgp_vrf_instance.ts";
import { openKubeApi, type RetryPolicy } from "./client.ts";
import type { BgpControlPlane, DeclaredVrf, VrfDeclaration, VrfKey } from "./control_plane.ts";
import { type Deadline, startDeadline } from "./deadline.ts";
import type { KubeconfigSource } from "./kubeconfig.ts";

/** Options of the Kubernetes control plane. */
export interface KubeControlPlaneOptions {
  /** Budget of each call, in milliseconds. */
  readonly timeoutMs: number;
  /** Retry policy of the client (default: the client's). */
  readonly retry?: RetryPolicy;
  /**
   * Where the route-target guard's first look comes from (the node agent
   * passes its watch cache of its own node's objects, so a collision with
   * another node's object is found only by the check after the write, which
   * rolls back what it created); default: a list request (cluster-wide). The
   * check after a write always asks the server, cluster-wide.
   */
  readonly routeTargetHolders?: (vpc: Identifier) => KubeObject[];
}

const HEX = /^[0-9a-f]{1,12}$/;

class KubeControlPlane implements BgpControlPlane {
  readonly #api: KubeApi;
  readonly #timeoutMs: number;
  readonly #holders: ((vpc: Identifier) => KubeObject[]) | undefined;

  constructor(api: KubeApi, options: KubeControlPlaneOptions) {
    this.#api = api;
    this.#timeoutMs = options.timeoutMs;
    this.#holders = options.routeTargetHolders;
  }

  #deadline(): Deadline {
    return startDeadline(this.#timeoutMs);
  }

  async declareVrf(key: VrfKey): Promise<VrfDeclaration> {
    const deadline = this.#deadline();
    const holders = this.#holders
      ? Promise.resolve(this.#holders(key.vpc))
      : prefetchRouteTargetHolders(this.#api, key.vpc, deadline);
    const config = await lookupBgpConfig(this.#api, key.node, { deadline });
    const desired = desiredVrfInstance(key, config);
    await writeVrfInstance(this.#api, desired, { key, deadline, holders });
    const spec = desired.spec as {
      routeDistinguisher: string;
      importRouteTargets: { value: string }[];
    };
    return {
      name: desired.metadata.name,
      instance: config.instance,
      asn: config.asn,
      routeDistinguisher: spec.routeDistinguisher,
      routeTarget: spec.importRouteTargets[0]!.value,
    };
  }

  async withdrawVrf(key: VrfKey): Promise<void> {
    await deleteVrfInstance(this.#api, key, this.#deadline());
  }

  async verifyVrf(key: VrfKey): Promise<string[]> {
    const deadline = this.#deadline();
    const [config, existing] = await Promise.all([
      lookupBgpConfig(this.#api, key.node, { deadline }),
      readVrfInstance(this.#api, key, deadline),
    ]);
    return vrfDifferences(existing, desiredVrfInstance(key, config));
  }

  async listNodeVrfs(node: string): Promise<DeclaredVrf[]> {
    const objects = await listNodeVrfInstances(this.#api, node, this.#deadline());
    return objects.flatMap((object: KubeObject) => {
      const vpcHex = object.metadata.labels?.[LABELS.vpc];
      return vpcHex !== undefined && HEX.test(vpcHex)
        ? [{ name: object.metadata.name, vpcHex }]
        : [];
    });
  }

  async probe(node: string): Promise<void> {
    const deadline = this.#deadline();
    const page = { deadline, limit: 1, firstPageOnly: true };
    const unusable = (error: unknown): CniError =>
      error instanceof IncompatibleCosmosApi ? error : new CniError(
        ErrorCode.PluginNotAvailable,
        `Kubernetes API not usable: ${(error as Error).message}`,
        { cause: error },
      );
    // Runs alongside the lists; an incompatible cosmos explains failed lists best.
    const compatibility = checkCosmosApi(this.#api, { deadline }).then(() => undefined, (e) => e);
    let providers: KubeObject[];
    try {
      [providers] = await Promise.all([
        this.#api.list(BGP_PROVIDERS, { ...page, labelSelector: `${NODE_LABEL}=${node}` }),
        this.#api.list(BGP_INSTANCES, page),
        this.#api.list(BGP_VRF_INSTANCES, page),
      ]);
    } catch (error) {
      const incompatible = await compatibility;
      throw unusable(incompatible instanceof IncompatibleCosmosApi ? incompatible : error);
    }
    const failed = await compatibility;
    if (failed !== undefined) throw unusable(failed);
    if (providers.length === 0) {
      throw new CniError(
        ErrorCode.PluginNotAvailable,
        `no BGPProvider is labelled ${NODE_LABEL}=${node}: ADD cannot find this node's BGP speaker`,
      );
    }
  }

  close(): Promise<void> {
    return this.#api.close();
  }
}

/** A control plane over an already opened client (tests pass any {@linkcode KubeApi}). */
export function kubeControlPlane(api: KubeApi, options: KubeControlPlaneOptions): BgpControlPlane {
  return new KubeControlPlane(api, options);
}

/** Opens the client for `source` and returns a control plane over it. */
export async function createKubeControlPlane(
  source: KubeconfigSource,
  options: KubeControlPlaneOptions,
): Promise<BgpControlPlane> {
  const api = await openKubeApi(source, options.retry ? { retry: options.retry } : {});
  return new KubeControlPlane(api, options);
}
