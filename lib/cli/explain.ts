/**
 * What the plugin derives for a VPC attachment, for operators debugging one:
 * from flags, or from the attachment's NAD/config (`-f`). The JSON form has
 * every key always (null when the inputs do not allow it) and typed values;
 * what the plugin would refuse is listed under `refused`, and the command
 * then exits non-zero.
 *
 * @module
 */

import type { NetworkConfig } from "../config/mod.ts";
import {
  bgpVrfInstanceName,
  type Identifier,
  interfaceNames,
  type IpPrefix,
  isObjectName,
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

/** Inputs of `galactic explain` (flags). */
export interface ExplainInput {
  /** VPC base62 text. */
  readonly vpc?: string;
  /** Attachment base62 text. */
  readonly attachment?: string;
  /** SRv6 locator prefix. */
  readonly locator?: string;
  /** BGP ASN of the node's BGPInstance. */
  readonly asn?: number;
  /** Kubernetes node name. */
  readonly node?: string;
}

/** An identifier in typed form (value fits a JSON number: < 2^48). */
export interface IdentifierView {
  readonly text: string;
  readonly value: number;
  readonly hex: string;
}

/** Everything derived; keys are stable, null when not derivable from the inputs. */
export interface Explanation {
  readonly vpc: IdentifierView;
  readonly routeNumber: number;
  readonly attachment: IdentifierView | null;
  readonly interfaces:
    | { readonly vrf: string; readonly host: string; readonly guest: string }
    | null;
  readonly srv6Endpoint: string | null;
  readonly routeDistinguisher: string | null;
  readonly routeTarget: string | null;
  readonly bgpVrfInstance: string | null;
  readonly labels: Record<string, string> | null;
  /** What the plugin would refuse, each naming the input. */
  readonly refused: readonly { readonly input: string; readonly reason: string }[];
}

/** Parsed inputs, from flags or a config. */
interface Parsed {
  vpc: Identifier;
  attachment?: Identifier;
  locator?: IpPrefix;
  asn?: number;
  node?: string;
}

function view(id: Identifier): IdentifierView {
  return { text: id.text, value: Number(id.value), hex: id.hex };
}

/** Parses flag inputs; errors name the flag. */
function parseFlags(input: ExplainInput): Parsed {
  if (input.vpc === undefined) throw new Error("--vpc or -f is required");
  const named = <T>(flag: string, value: string, parse: (text: string) => T): T => {
    try {
      return parse(value);
    } catch (error) {
      throw new Error(`--${flag} ${JSON.stringify(value)}: ${(error as Error).message}`);
    }
  };
  const locator = input.locator === undefined ? undefined : named("locator", input.locator, (t) => {
    const prefix = parsePrefix(t);
    if (!prefix || prefix.family !== 6 || prefix.length > 64) {
      throw new Error("must be an IPv6 prefix of length <= 64");
    }
    return prefix;
  });
  return {
    vpc: named("vpc", input.vpc, parseVpc),
    ...(input.attachment !== undefined &&
      { attachment: named("attachment", input.attachment, parseAttachment) }),
    ...(locator && { locator }),
    ...(input.asn !== undefined && { asn: input.asn }),
    ...(input.node !== undefined && { node: nodeFlag(input.node) }),
  };
}

function nodeFlag(text: string): string {
  if (!isObjectName(text)) {
    throw new Error(`--node ${JSON.stringify(text)}: must be a lowercase RFC 1123 subdomain`);
  }
  return text;
}

/** Inputs from a validated config; flags add what a config lacks (ASN, node). */
export function inputsFromConfig(
  config: NetworkConfig,
  flags: { asn?: number; node?: string },
): Parsed {
  const node = flags.node === undefined ? config.nodeName : nodeFlag(flags.node);
  return {
    vpc: config.vpc,
    attachment: config.attachment,
    locator: config.locator,
    ...(flags.asn !== undefined && { asn: flags.asn }),
    ...(node !== undefined && { node }),
  };
}

/** Derives everything the inputs allow. */
export function derive(parsed: Parsed): Explanation {
  const { vpc, attachment, locator, asn, node } = parsed;
  const refused: { input: string; reason: string }[] = [];
  let rd: string | null = null;
  if (asn !== undefined) {
    try {
      rd = routeDistinguisher(asn, vpc);
    } catch (error) {
      refused.push({ input: "asn", reason: (error as Error).message });
    }
  }
  return {
    vpc: view(vpc),
    routeNumber: routeNumber(vpc),
    attachment: attachment ? view(attachment) : null,
    interfaces: attachment ? { ...interfaceNames(vpc, attachment) } : null,
    srv6Endpoint: attachment && locator
      ? `${srv6Endpoint(locator, { vpc, attachment })}/128`
      : null,
    routeDistinguisher: rd,
    routeTarget: rd,
    bgpVrfInstance: node === undefined ? null : bgpVrfInstanceName(vpc, node),
    labels: node === undefined ? null : {
      [LABELS.managedBy]: MANAGER,
      [LABELS.vpc]: vpc.hex,
      [LABELS.node]: nodeLabelValue(node),
      [LABELS.routeTarget]: String(routeNumber(vpc)),
    },
    refused,
  };
}

/** `galactic explain` from flags. */
export function explain(input: ExplainInput): Explanation {
  return derive(parseFlags(input));
}

/** The human form: one aligned `name  value` line per derived value. */
export function formatExplanation(e: Explanation): string {
  const id = (i: IdentifierView): string => `${i.text} (value ${i.value}, hex ${i.hex})`;
  const rows: [string, string | null][] = [
    ["vpc", id(e.vpc)],
    ["route number (low 32 bits)", String(e.routeNumber)],
    ["vpcattachment", e.attachment && id(e.attachment)],
    ["vrf interface", e.interfaces?.vrf ?? null],
    ["host veth", e.interfaces?.host ?? null],
    ["guest veth (before host-device renames it)", e.interfaces?.guest ?? null],
    ["srv6 endpoint (End.DT46)", e.srv6Endpoint],
    ["route distinguisher", e.routeDistinguisher],
    ["route target (import/export)", e.routeTarget],
    ["BGPVRFInstance", e.bgpVrfInstance],
    ["labels", e.labels && Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(",")],
    ...e.refused.map((r): [string, string] => [`refused (${r.input})`, r.reason]),
  ];
  const shown = rows.filter((row): row is [string, string] => row[1] !== null);
  const width = Math.max(...shown.map(([key]) => key.length));
  return shown.map(([key, value]) => `${key.padEnd(width)}  ${value}`).join("\n");
}
