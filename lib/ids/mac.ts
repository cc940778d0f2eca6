/**
 * Ethernet MAC addresses a runtime asks for (`runtimeConfig.mac`, Multus'
 * `mac` capability): only a unicast address can be a pod interface's.
 *
 * @module
 */

/** Parses `aa:bb:cc:dd:ee:ff` (any case) into lower case; undefined unless a unicast, non-zero MAC. */
export function parseMac(text: string): string | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(text)) return undefined;
  const mac = text.toLowerCase();
  const first = parseInt(mac.slice(0, 2), 16);
  if ((first & 1) !== 0 || mac === "00:00:00:00:00:00") return undefined;
  return mac;
}
