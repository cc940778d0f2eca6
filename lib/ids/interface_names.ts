/**
 * Kernel interface names of an attachment: `G` + vpc (9) + attachment (3) +
 * role letter = 14 characters, inside IFNAMSIZ (15).
 *
 * @module
 */

import type { Identifier } from "./vpc.ts";

/** The three host-side names of one attachment. */
export interface InterfaceNames {
  /** The VRF device. */
  readonly vrf: string;
  /** Host end of the veth pair, enslaved to the VRF. */
  readonly host: string;
  /** Guest end before host-device moves it into the pod and renames it. */
  readonly guest: string;
}

const PREFIX = "G";
const NAME_PATTERN = /^G([0-9A-Za-z]{9})([0-9A-Za-z]{3})([VHG])$/;

/** Derives the interface names for a VPC attachment. */
export function interfaceNames(vpc: Identifier, attachment: Identifier): InterfaceNames {
  const stem = `${PREFIX}${vpc.text}${attachment.text}`;
  return { vrf: `${stem}V`, host: `${stem}H`, guest: `${stem}G` };
}

/** Splits a name this plugin made into vpc text, attachment text and role; else undefined. */
export function parseInterfaceName(
  name: string,
): { vpc: string; attachment: string; role: "V" | "H" | "G" } | undefined {
  const match = NAME_PATTERN.exec(name);
  if (!match) return undefined;
  return { vpc: match[1]!, attachment: match[2]!, role: match[3] as "V" | "H" | "G" };
}
