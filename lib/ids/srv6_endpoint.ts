/**
 * The attachment's SRv6 ingress SID: the locator's first 64 bits, then
 * 64 bits of `(vpc << 16) | attachment`.
 *
 * @module
 */

import { formatIPv6, type IpPrefix, parseIp } from "./ip.ts";
import { attachmentFromValue, type Identifier, vpcFromValue } from "./vpc.ts";

const LOW64 = (1n << 64n) - 1n;

/** Encodes the /128 endpoint address (canonical text, no prefix length). */
export function srv6Endpoint(
  locator: IpPrefix,
  ids: { vpc: Identifier; attachment: Identifier },
): string {
  if (locator.family !== 6 || locator.length > 64) {
    throw new RangeError(`SRv6 locator must be an IPv6 prefix of length <= 64`);
  }
  const high = (locator.value >> 64n) << 64n;
  return formatIPv6(high | (((ids.vpc.value << 16n) | ids.attachment.value) & LOW64));
}

/** Decodes an endpoint back to its VPC and attachment; throws on a non-IPv6 address. */
export function decodeSrv6Endpoint(address: string): { vpc: Identifier; attachment: Identifier } {
  const parsed = parseIp(address.replace(/\/128$/, ""));
  if (!parsed || parsed.family !== 6) throw new RangeError(`"${address}" is not an IPv6 address`);
  const low = parsed.value & LOW64;
  return { vpc: vpcFromValue(low >> 16n), attachment: attachmentFromValue(low & 0xffffn) };
}
