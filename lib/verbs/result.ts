/**
 * ADD's result: a previous plugin's result (`prevResult`, when galactic runs
 * chained in a conflist) passed through as the spec requires, then the two
 * host interfaces, then host-device's. Every `ips[].interface` index is
 * shifted to point at the same interface in the merged list.
 *
 * @module
 */

import type { Result, ResultIp } from "../cni/result.ts";

function shifted(ips: readonly ResultIp[], by: number): ResultIp[] {
  return ips.map((
    ip,
  ) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + by }));
}

/** The result of one attachment, after whatever `previous` reported. */
export function attachmentResult(
  delegate: Result,
  options: { names: { vrf: string; host: string }; previous?: Result },
): Result {
  const previous = options.previous ?? {};
  const interfaces = [
    ...(previous.interfaces ?? []),
    { name: options.names.vrf },
    { name: options.names.host },
  ];
  const ips = [...(previous.ips ?? []), ...shifted(delegate.ips ?? [], interfaces.length)];
  const routes = [...(previous.routes ?? []), ...(delegate.routes ?? [])];
  // host-device reports its config's (often empty) dns; a previous plugin's wins over an empty one.
  const dns = Object.keys(delegate.dns ?? {}).length > 0
    ? delegate.dns
    : previous.dns ?? delegate.dns;
  return {
    interfaces: [...interfaces, ...(delegate.interfaces ?? [])],
    ...(ips.length > 0 && { ips }),
    ...(routes.length > 0 && { routes }),
    ...(dns !== undefined && { dns }),
  };
}
