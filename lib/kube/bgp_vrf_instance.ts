/**
 * The BGPVRFInstance of a (VPC, node) (SPEC §7): one object shared by every
 * attachment of the VPC on the node, named `galactic-vpc-<hex>-<node>`,
 * labelled so GC and the route-target guard find it by label.
 *
 * Writing converges by create-or-update: create; on 409 AlreadyExists read
 * the object and PUT the merged object with its resourceVersion, re-reading
 * on 409 Conflict (a bounded number of times). An object that already says
 * what this plugin would write is left alone (no write at all).
 *
 * The route-target guard runs around the write: before it, the objects
 * carrying the same `galactic.io/route-target` label are listed and any of
 * another VPC refuses the write; after it, the list is repeated, and if a
 * colliding object appeared meanwhile, an object this call created is deleted
 * again (by uid) and the call fails: both racers fail closed rather than
 * both succeeding.
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";
import type { VrfKey } from "./control_plane.ts";
import {
  bgpVrfInstanceName,
  type Identifier,
  LABELS,
  MANAGER,
  nodeLabelValue,
  routeDistinguisher,
  routeNumber,
  routeTarget,
  vpcFromValue,
} from "../ids/mod.ts";
import {
  apiVersion,
  BGP_VRF_INSTANCES,
  isApiStatus,
  type KubeApi,
  type KubeObject,
} from "./api.ts";
import type { BgpConfig } from "./bgp_config.ts";
import { type Deadline, startDeadline } from "./deadline.ts";
import { equalitySelector } from "./label_selector.ts";

/** How many conflicting writes (409) a converging write absorbs before giving up. */
export const MAX_WRITE_CONFLICTS = 5;

/** What a converging write did. */
export type WriteAction = "created" | "updated" | "unchanged";

/** Result of {@linkcode writeVrfInstance}. */
export interface WriteResult {
  /** The object as stored. */
  readonly object: KubeObject;
  /** What the call did. */
  readonly action: WriteAction;
}

/**
 * The object this plugin writes for `key` under `config`. Throws a CNI error
 * (code 101) when the ASN and VPC give an RD no BGP type can carry.
 */
export function desiredVrfInstance(key: VrfKey, config: BgpConfig): KubeObject {
  let rd: string;
  let rt: string;
  try {
    rd = routeDistinguisher(config.asn, key.vpc);
    rt = routeTarget(config.asn, key.vpc);
  } catch (error) {
    const instance = JSON.stringify(config.instance);
    const why = (error as Error).message;
    throw new CniError(
      ErrorCode.Kubernetes,
      `cannot declare vpc ${key.vpc.text} on BGPInstance ${instance}: ${why}`,
      { cause: error },
    );
  }
  return {
    apiVersion: apiVersion(BGP_VRF_INSTANCES),
    kind: BGP_VRF_INSTANCES.kind,
    metadata: {
      name: bgpVrfInstanceName(key.vpc, key.node),
      labels: vrfLabels(key),
    },
    spec: {
      instanceRef: config.instance,
      providerSelector: config.providerSelector,
      routeDistinguisher: rd,
      importRouteTargets: [{ value: rt }],
      exportRouteTargets: [{ value: rt }],
    },
  };
}

/** Labels of the (VPC, node) object: managed-by, VPC hex, node, route-target number. */
export function vrfLabels(key: VrfKey): Record<string, string> {
  return {
    [LABELS.managedBy]: MANAGER,
    [LABELS.vpc]: key.vpc.hex,
    [LABELS.node]: nodeLabelValue(key.node),
    [LABELS.routeTarget]: String(routeNumber(key.vpc)),
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonType(value: unknown): string {
  return Array.isArray(value) ? "array" : value === null ? "null" : typeof value;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a).filter((k) => a[k] !== undefined);
    const otherKeys = Object.keys(b).filter((k) => b[k] !== undefined);
    return keys.length === otherKeys.length && keys.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

/**
 * Where `existing` differs from `desired` in what this plugin owns (every
 * field of `desired.spec`, every label of `desired`); empty when equal.
 * Fields and labels others added are not differences.
 */
export function vrfDifferences(existing: KubeObject | undefined, desired: KubeObject): string[] {
  if (!existing) return [`BGPVRFInstance ${desired.metadata.name} does not exist`];
  const differences: string[] = [];
  for (const [field, want] of Object.entries(desired.spec ?? {})) {
    const have = existing.spec?.[field];
    if (deepEqual(have, want)) continue;
    const shape = have !== undefined && jsonType(have) !== jsonType(want)
      ? ` (wrong shape: ${jsonType(have)} where the CRD has ${jsonType(want)})`
      : "";
    differences.push(`spec.${field} is ${show(have)}, want ${show(want)}${shape}`);
  }
  const labels = existing.metadata.labels ?? {};
  for (const [key, want] of Object.entries(desired.metadata.labels ?? {})) {
    if (labels[key] !== want) {
      differences.push(`label ${key} is ${show(labels[key])}, want ${show(want)}`);
    }
  }
  return differences;
}

/** `existing` with what this plugin owns replaced by `desired` (others' fields kept). */
function merged(existing: KubeObject, desired: KubeObject): KubeObject {
  return {
    ...existing,
    metadata: {
      ...existing.metadata,
      labels: { ...existing.metadata.labels, ...desired.metadata.labels },
    },
    spec: { ...existing.spec, ...desired.spec },
  };
}

/** Text for a VPC known only by its hex label. */
function describeVpcHex(hex: string | undefined): string {
  if (hex === undefined || !/^[0-9a-f]{1,12}$/.test(hex)) {
    return `an unknown vpc (label ${LABELS.vpc}=${show(hex)})`;
  }
  try {
    return `vpc ${vpcFromValue(BigInt(`0x${hex}`)).text} (${hex})`;
  } catch {
    return `vpc hex ${hex}`;
  }
}

/** Objects in `holders` that belong to another VPC than `vpc`. */
function collisions(holders: readonly KubeObject[], vpc: Identifier): KubeObject[] {
  return holders.filter((o) => o.metadata.labels?.[LABELS.vpc] !== vpc.hex);
}

function collisionError(
  key: VrfKey,
  desired: KubeObject,
  colliding: readonly KubeObject[],
): CniError {
  const rt = (desired.spec?.importRouteTargets as { value: string }[] | undefined)?.[0]?.value;
  const holders = colliding
    .map((o) =>
      `BGPVRFInstance ${o.metadata.name} of ${describeVpcHex(o.metadata.labels?.[LABELS.vpc])}`
    )
    .join(", ");
  const label = `${LABELS.routeTarget}=${routeNumber(key.vpc)}`;
  return new CniError(
    ErrorCode.RouteTargetCollision,
    `route target ${rt} of vpc ${key.vpc.text} (${key.vpc.hex}) is already used by ${holders} ` +
      `(${label}: both VPCs share the low 32 bits); refusing to write BGPVRFInstance ` +
      `${desired.metadata.name}, which would import each VPC's routes into the other's VRF`,
  );
}

/** The BGPVRFInstances carrying the VPC's route-target label (any VPC). */
function listRouteTargetHolders(
  api: KubeApi,
  vpc: Identifier,
  deadline: Deadline,
): Promise<KubeObject[]> {
  return api.list(BGP_VRF_INSTANCES, {
    deadline,
    labelSelector: equalitySelector({ [LABELS.routeTarget]: String(routeNumber(vpc)) }),
  });
}

/**
 * Creates or updates `desired` until the stored object matches it; `known` is
 * the stored object if the caller already read it (undefined: assume absent).
 */
async function converge(
  api: KubeApi,
  desired: KubeObject,
  options: { known: KubeObject | undefined; deadline: Deadline },
): Promise<WriteResult> {
  const { deadline } = options;
  const name = desired.metadata.name;
  let current = options.known;
  for (let conflicts = 0; conflicts <= MAX_WRITE_CONFLICTS; conflicts++) {
    if (current === undefined) {
      try {
        return {
          object: await api.create(BGP_VRF_INSTANCES, desired, { deadline }),
          action: "created",
        };
      } catch (error) {
        if (!isApiStatus(error, 409)) throw error;
      }
    } else if (vrfDifferences(current, desired).length === 0) {
      return { object: current, action: "unchanged" };
    } else {
      try {
        return {
          object: await api.replace(BGP_VRF_INSTANCES, merged(current, desired), { deadline }),
          action: "updated",
        };
      } catch (error) {
        if (!isApiStatus(error, 409) && !isApiStatus(error, 404)) throw error;
      }
    }
    current = await api.get(BGP_VRF_INSTANCES, name, { deadline });
  }
  const attempts = MAX_WRITE_CONFLICTS + 1;
  throw new CniError(
    ErrorCode.TryAgainLater,
    `BGPVRFInstance ${name} kept changing under this write (${attempts} conflicting attempts); giving up`,
  );
}

/**
 * Writes the (VPC, node) BGPVRFInstance `desired` for `key`, guarded against
 * route-target collisions (see the module documentation). Requests: 1 list
 * when the object is already right; else list + create (or update) + list.
 * A rollback of a created object runs under its own fresh deadline.
 */
export async function writeVrfInstance(
  api: KubeApi,
  desired: KubeObject,
  options: { key: VrfKey; deadline: Deadline; holders?: Promise<KubeObject[]> },
): Promise<WriteResult> {
  const { key, deadline } = options;
  const before = await (options.holders ?? listRouteTargetHolders(api, key.vpc, deadline));
  const colliding = collisions(before, key.vpc);
  if (colliding.length > 0) throw collisionError(key, desired, colliding);
  const known = before.find((o) => o.metadata.name === desired.metadata.name);
  if (known && vrfDifferences(known, desired).length === 0) {
    return { object: known, action: "unchanged" };
  }

  const result = await converge(api, desired, { known, deadline });
  const raced = collisions(await listRouteTargetHolders(api, key.vpc, deadline), key.vpc);
  if (raced.length === 0) return result;

  const error = collisionError(key, desired, raced);
  if (result.action !== "created") throw error;
  try {
    await api.delete(BGP_VRF_INSTANCES, desired.metadata.name, {
      deadline: startDeadline(deadline.budgetMs),
      ...(result.object.metadata.uid !== undefined && { uid: result.object.metadata.uid }),
    });
  } catch (rollback) {
    const why = (rollback as Error).message;
    throw new CniError(
      error.code,
      `${error.message}; deleting the just-created ${desired.metadata.name} again failed too: ${why}`,
      { cause: rollback },
    );
  }
  throw error;
}

/** Starts listing the route-target holders of `vpc` (to overlap with other lookups). */
export function prefetchRouteTargetHolders(
  api: KubeApi,
  vpc: Identifier,
  deadline: Deadline,
): Promise<KubeObject[]> {
  const holders = listRouteTargetHolders(api, vpc, deadline);
  holders.catch(() => {}); // awaited later; keep an early failure from being unhandled
  return holders;
}

/** Reads the (VPC, node) object; undefined when absent. */
export function readVrfInstance(
  api: KubeApi,
  key: VrfKey,
  deadline: Deadline,
): Promise<KubeObject | undefined> {
  return api.get(BGP_VRF_INSTANCES, bgpVrfInstanceName(key.vpc, key.node), { deadline });
}

/** Deletes the (VPC, node) object; false when it was already gone. */
export function deleteVrfInstance(api: KubeApi, key: VrfKey, deadline: Deadline): Promise<boolean> {
  return api.delete(BGP_VRF_INSTANCES, bgpVrfInstanceName(key.vpc, key.node), { deadline });
}

/** Every BGPVRFInstance this plugin wrote for `node` (by label). */
export function listNodeVrfInstances(
  api: KubeApi,
  node: string,
  deadline: Deadline,
): Promise<KubeObject[]> {
  return api.list(BGP_VRF_INSTANCES, {
    deadline,
    labelSelector: equalitySelector({
      [LABELS.managedBy]: MANAGER,
      [LABELS.node]: nodeLabelValue(node),
    }),
  });
}
