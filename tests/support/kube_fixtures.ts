/**
 * Test fixtures for the Kubernetes side: a fake API server with a kubeconfig
 * on disk, a real client for it, and builders for the objects the plugin
 * reads.
 *
 * @module
 */

import type { KubeApi } from "../../lib/kube/api.ts";
import { openKubeApi, type RetryPolicy } from "../../lib/kube/client.ts";
import { FakeApiServer, type FakeApiServerOptions, type StoredObject } from "./fake_api_server.ts";

/** A fake server, its kubeconfig and a client; dispose with `await using`. */
export interface KubeFixture extends AsyncDisposable {
  /** The fake API server. */
  readonly server: FakeApiServer;
  /** Temporary directory holding `kubeconfig`. */
  readonly dir: string;
  readonly kubeconfig: string;
  /** A real client for the server. */
  readonly api: KubeApi;
}

/** Fast retries so fault tests stay quick. */
export const FAST_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 20, maxDelayMs: 200 };

/** Starts a fake server, writes its kubeconfig and opens a client. */
export async function kubeFixture(
  options: FakeApiServerOptions & { retry?: RetryPolicy } = {},
): Promise<KubeFixture> {
  const server = new FakeApiServer(options);
  const dir = await Deno.makeTempDir({ prefix: "galactic-kube-" });
  const kubeconfig = await server.writeKubeconfig(dir);
  const api = await openKubeApi({ kind: "file", path: kubeconfig, origin: "test" }, {
    retry: options.retry ?? FAST_RETRY,
  });
  return {
    server,
    dir,
    kubeconfig,
    api,
    async [Symbol.asyncDispose](): Promise<void> {
      await api.close();
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** A BGPProvider on `node` with extra labels. */
export function provider(
  name: string,
  node: string,
  labels: Record<string, string> = {},
): StoredObject {
  return {
    apiVersion: "providers.bgp.miloapis.com/v1alpha1",
    kind: "BGPProvider",
    metadata: { name, labels: { "bgp.miloapis.com/node": node, ...labels } },
    spec: { type: "GoBGP", gobgp: { endpoint: "localhost:50051" } },
  };
}

/** A BGPInstance with an ASN and a provider selector. */
export function instance(
  name: string,
  options: { asn?: unknown; selector?: unknown } = {},
): StoredObject {
  return {
    apiVersion: "bgp.miloapis.com/v1alpha1",
    kind: "BGPInstance",
    metadata: { name },
    spec: {
      asNumber: options.asn ?? 65000,
      routerIDSource: "Auto",
      addressFamilies: [{ afi: "L2VPN", safi: "EVPN" }],
      ...(options.selector !== undefined && { providerSelector: options.selector }),
    },
  };
}

/**
 * A valid BGPVRFInstance (every field the CRD requires); RD and route target
 * default to `65000:1`, the provider selector to node `worker-9`.
 */
export function vrfInstance(
  name: string,
  options: {
    labels?: Record<string, string>;
    routeDistinguisher?: string;
    routeTarget?: string;
    node?: string;
  } = {},
): StoredObject {
  const rd = options.routeDistinguisher ?? "65000:1";
  const rt = options.routeTarget ?? rd;
  return {
    apiVersion: "bgp.miloapis.com/v1alpha1",
    kind: "BGPVRFInstance",
    metadata: { name, ...(options.labels && { labels: options.labels }) },
    spec: {
      instanceRef: "workers",
      providerSelector: { matchLabels: { "bgp.miloapis.com/node": options.node ?? "worker-9" } },
      routeDistinguisher: rd,
      importRouteTargets: [{ value: rt }],
      exportRouteTargets: [{ value: rt }],
    },
  };
}

/** A status condition with every field the CRDs' Condition requires. */
export function condition(type: string, status: "True" | "False" | "Unknown"): StoredObject {
  return {
    type,
    status,
    reason: type === "Ready" ? "Reconciled" : "Observed",
    message: "",
    lastTransitionTime: "2026-01-01T00:00:00Z",
  };
}

/** Seeds the usual single-node world: one overlay provider and one instance selecting it. */
export function seedNode(
  server: FakeApiServer,
  node: string,
  options: { asn?: number } = {},
): void {
  server.seed(provider(`${node}-gobgp`, node, { "galactic.io/plane": "overlay" }));
  if (!server.object("bgpinstances", "workers")) {
    server.seed(instance("workers", {
      asn: options.asn ?? 65000,
      selector: { matchLabels: { "galactic.io/plane": "overlay" } },
    }));
  }
}
