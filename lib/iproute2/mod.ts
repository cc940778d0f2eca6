/**
 * The host data plane through iproute2, sysctl and iptables.
 *
 * @module
 */

export * from "./runner.ts";
export * from "./batch.ts";
export * from "./links.ts";
export * from "./vrf.ts";
export * from "./veth.ts";
export * from "./routes.ts";
export * from "./sysctl.ts";
export * from "./firewall.ts";
