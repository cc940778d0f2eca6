/**
 * VPC and VPC-attachment identifiers: base62 text with a bounded value.
 *
 * @module
 */

import { decodeBase62, encodeBase62 } from "./base62.ts";

/** Width of a VPC in interface names (9 base62 digits). */
export const VPC_WIDTH = 9;
/** Width of an attachment in interface names (3 base62 digits). */
export const ATTACHMENT_WIDTH = 3;
/** VPC values fit in 48 bits. */
export const VPC_BITS = 48n;
/** Attachment values fit in 16 bits. */
export const ATTACHMENT_BITS = 16n;

/** A parsed identifier: its canonical padded text, value and lowercase hex. */
export interface Identifier {
  /** Canonical base62 text, left-padded with `0` to the fixed width. */
  readonly text: string;
  /** Numeric value. */
  readonly value: bigint;
  /** Lowercase hex of the value without padding (object names, labels). */
  readonly hex: string;
}

function parseIdentifier(text: string, width: number, bits: bigint, what: string): Identifier {
  if (text.length < 1 || text.length > width) {
    throw new RangeError(`${what} must be 1..${width} base62 characters, got ${text.length}`);
  }
  const value = decodeBase62(text);
  if (value >= 1n << bits) {
    throw new RangeError(`${what} value ${value} does not fit in ${bits} bits`);
  }
  return { text: encodeBase62(value, width), value, hex: value.toString(16) };
}

/** Parses a VPC identifier (1..9 base62 chars, value < 2^48). */
export function parseVpc(text: string): Identifier {
  return parseIdentifier(text, VPC_WIDTH, VPC_BITS, "vpc");
}

/** Parses a VPC attachment identifier (1..3 base62 chars, value < 2^16). */
export function parseAttachment(text: string): Identifier {
  return parseIdentifier(text, ATTACHMENT_WIDTH, ATTACHMENT_BITS, "vpcattachment");
}

/** Builds an identifier from a value (used when decoding SIDs and names). */
export function vpcFromValue(value: bigint): Identifier {
  return parseVpc(encodeBase62(value, VPC_WIDTH));
}

/** Builds an attachment identifier from a value. */
export function attachmentFromValue(value: bigint): Identifier {
  return parseAttachment(encodeBase62(value, ATTACHMENT_WIDTH));
}
