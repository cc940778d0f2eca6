/**
 * What the demo's fake API server holds before the first ADD: the node's
 * BGPProvider and the BGPInstance selecting it, shaped as the cosmos CRDs
 * require (tests/unit/cosmos_round_trip_test.ts admits them).
 *
 * @module
 */

/** The seed objects for `node`. */
export function demoSeed(node: string): Record<string, unknown>[] {
  return [
    {
      apiVersion: "providers.bgp.miloapis.com/v1alpha1",
      kind: "BGPProvider",
      metadata: {
        name: `${node}-gobgp`,
        labels: { "bgp.miloapis.com/node": node, "galactic.io/plane": "overlay" },
      },
      spec: { type: "GoBGP", gobgp: { endpoint: "localhost:50051" } },
    },
    {
      apiVersion: "bgp.miloapis.com/v1alpha1",
      kind: "BGPInstance",
      metadata: { name: "workers" },
      spec: {
        asNumber: 65000,
        routerIDSource: "Auto",
        addressFamilies: [{ afi: "L2VPN", safi: "EVPN" }],
        providerSelector: { matchLabels: { "galactic.io/plane": "overlay" } },
      },
    },
  ];
}
