/**
 * Kubernetes object names and labels for what the plugin writes. base62 has
 * uppercase letters and names must be lowercase, so names carry the lowercase
 * hex of the VPC value, never the base62 text (lowercasing it would merge
 * `A` and `a`).
 *
 * @module
 */

import type { Identifier } from "./vpc.ts";

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
const MAX_NAME = 253;
const MAX_LABEL_VALUE = 63;
const NAME_PREFIX = "galactic-vpc-";

/** Label keys the plugin sets on every BGPVRFInstance it writes. */
export const LABELS = {
  managedBy: "app.kubernetes.io/managed-by",
  vpc: "galactic.io/vpc",
  node: "galactic.io/node",
  routeTarget: "galactic.io/route-target",
} as const;

/** Value of the managed-by label. */
export const MANAGER = "galactic";

/** True when `name` is a valid RFC 1123 subdomain (object name). */
export function isObjectName(name: string): boolean {
  return name.length <= MAX_NAME && SUBDOMAIN.test(name);
}

/** True when `value` is a valid label value. */
export function isLabelValue(value: string): boolean {
  return value.length <= MAX_LABEL_VALUE && LABEL_VALUE.test(value);
}

/** FNV-1a 64: a short stable digest, enough to keep long names unique. */
function digest(text: string): string {
  let hash = 0xcbf29ce484222325n;
  for (const byte of new TextEncoder().encode(text)) {
    hash = ((hash ^ BigInt(byte)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash.toString(16).padStart(16, "0");
}

/**
 * Name of the BGPVRFInstance of (VPC, node): `galactic-vpc-<hex>-<node>`.
 * Valid for every input: a node part that would overflow 253 characters is
 * replaced by its digest.
 */
export function bgpVrfInstanceName(vpc: Identifier, node: string): string {
  if (!isObjectName(node)) {
    throw new RangeError(`node name ${JSON.stringify(node)} is not an RFC 1123 subdomain`);
  }
  const name = `${NAME_PREFIX}${vpc.hex}-${node}`;
  return name.length <= MAX_NAME ? name : `${NAME_PREFIX}${vpc.hex}-${digest(node)}`;
}

/** Label value identifying a node: the name itself when it fits, else a digest. */
export function nodeLabelValue(node: string): string {
  return isLabelValue(node) ? node : digest(node);
}
