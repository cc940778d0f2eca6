/**
 * Route distinguisher and route target of a VPC: `ASN:NN` with NN the low 32
 * bits of the VPC value. Stable and equal on every node of the VPC.
 *
 * @module
 */

import type { Identifier } from "./vpc.ts";

const MAX_U16 = 0xffff;
const MAX_U32 = 0xffffffff;

/** The low 32 bits of the VPC value: the shared NN of its RD and RT. */
export function routeNumber(vpc: Identifier): number {
  return Number(vpc.value & 0xffffffffn);
}

/**
 * Formats the RD/RT value `ASN:NN`. A 2-byte ASN uses Type 0 (4-byte NN); a
 * 4-byte ASN uses Type 2, which carries only a 16-bit NN. Anything that no
 * type can carry is refused rather than emitted.
 */
export function routeDistinguisher(asn: number, vpc: Identifier): string {
  if (!Number.isSafeInteger(asn) || asn < 1 || asn > MAX_U32) {
    throw new RangeError(`BGP ASN ${asn} is not in 1..${MAX_U32}`);
  }
  const nn = routeNumber(vpc);
  if (asn > MAX_U16 && nn > MAX_U16) {
    throw new RangeError(
      `cannot encode route distinguisher ${asn}:${nn} for vpc ${vpc.text}: a 4-byte ASN ` +
        `(Type 2) carries only a 16-bit number (<= ${MAX_U16}), and Type 0 only a 2-byte ASN`,
    );
  }
  return `${asn}:${nn}`;
}

/** Route target of the VPC: the same value as its route distinguisher. */
export function routeTarget(asn: number, vpc: Identifier): string {
  return routeDistinguisher(asn, vpc);
}
