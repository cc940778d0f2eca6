/**
 * What the plugin derives for a VPC attachment, for operators debugging one.
 *
 * @module
 */

import {
  bgpVrfInstanceName,
  interfaceNames,
  LABELS,
  MANAGER,
  nodeLabelValue,
  parseAttachment,
  parsePrefix,
  parseVpc,
  routeDistinguisher,
  routeNumber,
  srv6Endpoint,
} from "../ids/mod.ts";

/** Inputs of `galactic explain`. */
export interface ExplainInput {
  /** VPC base62 text. */
  readonly vpc: string;
  /** Attachment base62 text. */
  readonly attachment?: string;
  /** SRv6 locator prefix. */
  readonly locator?: string;
  /** BGP ASN of the node's BGPInstance. */
  readonly asn?: number;
  /** Kubernetes node name. */
  readonly node?: string;
}

/** Everything derived, as printable key/value pairs (errors are values, not exceptions). */
export function explain(input: ExplainInput): Record<string, string> {
  const out: Record<string, string> = {};
  const vpc = parseVpc(input.vpc);
  out["vpc"] = `${vpc.text} (value ${vpc.value}, hex ${vpc.hex})`;
  out["route number (low 32 bits)"] = String(routeNumber(vpc));
  if (input.attachment !== undefined) {
    const attachment = parseAttachment(input.attachment);
    out["vpcattachment"] = `${attachment.text} (value ${attachment.value}, hex ${attachment.hex})`;
    const names = interfaceNames(vpc, attachment);
    out["vrf interface"] = names.vrf;
    out["host veth"] = names.host;
    out["guest veth (before host-device renames it)"] = names.guest;
    if (input.locator !== undefined) {
      const locator = parsePrefix(input.locator);
      if (!locator || locator.family !== 6 || locator.length > 64) {
        throw new RangeError(`--locator ${input.locator} is not an IPv6 prefix of length <= 64`);
      }
      out["srv6 endpoint (End.DT46)"] = `${srv6Endpoint(locator, { vpc, attachment })}/128`;
    }
  }
  if (input.asn !== undefined) {
    try {
      out["route distinguisher"] = routeDistinguisher(input.asn, vpc);
      out["route target (import/export)"] = out["route distinguisher"];
    } catch (error) {
      out["route distinguisher"] = `refused: ${(error as Error).message}`;
    }
  }
  if (input.node !== undefined) {
    out["BGPVRFInstance"] = bgpVrfInstanceName(vpc, input.node);
    out["labels"] = [
      `${LABELS.managedBy}=${MANAGER}`,
      `${LABELS.vpc}=${vpc.hex}`,
      `${LABELS.node}=${nodeLabelValue(input.node)}`,
      `${LABELS.routeTarget}=${routeNumber(vpc)}`,
    ].join(",");
  }
  return out;
}
