/**
 * The veth pair of an attachment: host end enslaved to the VRF, guest end
 * handed to host-device.
 *
 * @module
 */

/** Names and settings of a veth pair. */
export interface VethSpec {
  /** Host end. */
  readonly host: string;
  /** Guest end (pre-move name). */
  readonly guest: string;
  /** VRF the host end joins. */
  readonly vrf: string;
  /** MTU of both ends, when configured. */
  readonly mtu?: number;
  /** MAC of the guest end (the pod interface), when the runtime asked for one. */
  readonly mac?: string;
}

/** Lines that create the pair. */
export function vethCreateLines(veth: VethSpec): string[] {
  const mtu = veth.mtu === undefined ? "" : ` mtu ${veth.mtu}`;
  return [`link add ${veth.host}${mtu} type veth peer name ${veth.guest}${mtu}`];
}

/** Lines that enslave and raise both ends; safe to repeat. */
export function vethUpLines(veth: VethSpec): string[] {
  const mtu = veth.mtu === undefined ? "" : ` mtu ${veth.mtu}`;
  return [
    `link set ${veth.host}${mtu} master ${veth.vrf} up`,
    `link set ${veth.guest}${mtu}${veth.mac === undefined ? "" : ` address ${veth.mac}`} up`,
  ];
}
