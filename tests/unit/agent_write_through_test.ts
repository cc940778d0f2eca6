import assert from "node:assert/strict";
import { writeThroughCache } from "../../lib/agent/write_through.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import {
  BGP_INSTANCES,
  BGP_VRF_INSTANCES,
  type KubeApi,
  type KubeObject,
} from "../../lib/kube/api.ts";
import { startInformer } from "../../lib/agent/informer.ts";
import { openRawApi } from "../../lib/kube/client.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";
import { kubeFixture, vrfInstance } from "../support/kube_fixtures.ts";

/** A fresh budget per call: one started at module load runs out under a loaded parallel run. */
function budget(): { deadline: ReturnType<typeof startDeadline> } {
  return { deadline: startDeadline(5000) };
}

function vrf(name: string, resourceVersion: string, rd = "65000:1"): KubeObject {
  return {
    apiVersion: "bgp.miloapis.com/v1alpha1",
    kind: "BGPVRFInstance",
    metadata: { name, resourceVersion, labels: { "app.kubernetes.io/managed-by": "galactic" } },
    spec: { ...vrfInstance(name).spec, routeDistinguisher: rd },
  };
}

/** A server that stores what it is told and stamps a counter as resourceVersion. */
function stubApi(): KubeApi & { failNext: boolean } {
  let version = 100;
  const stamp = (o: KubeObject): KubeObject => ({
    ...o,
    metadata: { ...o.metadata, resourceVersion: String(++version) },
  });
  const stub = {
    failNext: false,
    server: "stub",
    list: () => Promise.resolve([]),
    get: () => Promise.resolve(undefined),
    create: (_r: unknown, o: KubeObject) => {
      if (stub.failNext) return Promise.reject(new Error("refused"));
      return Promise.resolve(stamp(o));
    },
    replace: (_r: unknown, o: KubeObject) => Promise.resolve(stamp(o)),
    delete: () => Promise.resolve(true),
    apiResources: () => Promise.resolve(undefined),
    apiGroups: () => Promise.resolve(new Map()),
    requestToken: () => Promise.reject(new Error("no tokens here")),
    close: () => Promise.resolve(),
  };
  return stub;
}

function names(objects: KubeObject[]): string[] {
  return objects.map((o) => `${o.metadata.name}@${o.metadata.resourceVersion}`).sort();
}

Deno.test("write-through: a created object is listed until the watch shows its resourceVersion", async () => {
  let cached: KubeObject[] = [vrf("other", "7")];
  const cache = writeThroughCache({ list: () => cached }, BGP_VRF_INSTANCES);
  const api = cache.wrap(stubApi());
  const created = await api.create(BGP_VRF_INSTANCES, vrf("a", ""), budget());
  assert.equal(created.metadata.resourceVersion, "101");
  assert.deepEqual(names(cache.list()), ["a@101", "other@7"]);
  assert.equal(cache.pending(), 1);

  // The watch delivers the object: the entry goes, the cache's own copy is listed.
  const fromWatch = vrf("a", "101");
  cached = [...cached, fromWatch];
  assert.equal(cache.pending(), 0);
  assert.ok(cache.list().includes(fromWatch));
  assert.deepEqual(names(cache.list()), ["a@101", "other@7"]);
});

Deno.test("write-through: a replaced object shadows the cache's older version until it catches up", async () => {
  let cached: KubeObject[] = [vrf("a", "5", "65000:1")];
  const cache = writeThroughCache({ list: () => cached }, BGP_VRF_INSTANCES);
  const api = cache.wrap(stubApi());
  await api.replace(BGP_VRF_INSTANCES, vrf("a", "5", "65001:1"), budget());
  assert.deepEqual(names(cache.list()), ["a@101"]);
  assert.equal(cache.list()[0]!.spec?.routeDistinguisher, "65001:1");

  // Another version than ours (opaque: neither older nor newer) keeps the entry.
  cached = [vrf("a", "6", "65000:1")];
  assert.deepEqual(names(cache.list()), ["a@101"]);
  cached = [vrf("a", "101", "65001:1")];
  assert.equal(cache.pending(), 0);
});

Deno.test("write-through: a deleted object is hidden until the watch no longer lists it", async () => {
  let cached: KubeObject[] = [vrf("a", "5"), vrf("b", "6")];
  const cache = writeThroughCache({ list: () => cached }, BGP_VRF_INSTANCES);
  const api = cache.wrap(stubApi());
  assert.equal(await api.delete(BGP_VRF_INSTANCES, "a", budget()), true);
  assert.deepEqual(names(cache.list()), ["b@6"]);

  // Re-created by this process before the deletion's event arrived: the new object shows.
  await api.create(BGP_VRF_INSTANCES, vrf("a", ""), budget());
  assert.deepEqual(names(cache.list()), ["a@101", "b@6"]);
  await api.delete(BGP_VRF_INSTANCES, "a", budget());
  assert.deepEqual(names(cache.list()), ["b@6"]);

  cached = [vrf("b", "6")];
  assert.equal(cache.pending(), 0);
  assert.deepEqual(names(cache.list()), ["b@6"]);
});

Deno.test("write-through: an entry the watch never confirms expires after the bounded time", async () => {
  let clock = 0;
  const cached: KubeObject[] = [vrf("gone", "3")];
  const cache = writeThroughCache({ list: () => cached }, BGP_VRF_INSTANCES, {
    ttlMs: 30_000,
    now: () => clock,
  });
  const api = cache.wrap(stubApi());
  await api.create(BGP_VRF_INSTANCES, vrf("a", ""), budget());
  await api.delete(BGP_VRF_INSTANCES, "gone", budget());
  clock = 29_999;
  assert.deepEqual(names(cache.list()), ["a@101"]);
  assert.equal(cache.pending(), 2);
  clock = 30_000;
  assert.deepEqual(names(cache.list()), ["gone@3"], "the cache's view again");
  assert.equal(cache.pending(), 0);
});

Deno.test("write-through: failed writes and other resources are not remembered", async () => {
  const cache = writeThroughCache({ list: () => [] }, BGP_VRF_INSTANCES);
  const stub = stubApi();
  const api = cache.wrap(stub);
  stub.failNext = true;
  await assert.rejects(api.create(BGP_VRF_INSTANCES, vrf("a", ""), budget()), /refused/);
  stub.failNext = false;
  await api.create(BGP_INSTANCES, { metadata: { name: "workers" } }, budget());
  await api.delete(BGP_INSTANCES, "workers", budget());
  assert.equal(cache.pending(), 0);
  assert.deepEqual(cache.list(), []);
});

Deno.test("write-through over a real informer: own writes show while the fake holds watch events", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  const errors: string[] = [];
  const raw = await openRawApi({ kind: "file", path: kube.kubeconfig, origin: "test" });
  const informer = startInformer(raw, {
    resource: BGP_VRF_INSTANCES,
    log: createLogger({ level: "warn", stderr: (line) => errors.push(line) }),
  });
  await informer.firstSync();
  try {
    const cache = writeThroughCache(informer, BGP_VRF_INSTANCES);
    const api = cache.wrap(kube.api);
    const release = kube.server.holdWatches();
    const created = await api.create(BGP_VRF_INSTANCES, vrf("galactic-vpc-1-n", ""), {
      ...budget(),
    });
    const resourceVersion = created.metadata.resourceVersion;
    // Give a (wrongly) unheld event time to arrive: the informer must still lack it.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(kube.server.heldWatchEvents, 1);
    assert.deepEqual(informer.list(), [], "the informer has not seen the create");
    assert.deepEqual(names(cache.list()), [`galactic-vpc-1-n@${resourceVersion}`]);

    release();
    for (let i = 0; i < 100 && cache.pending() > 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(cache.pending(), 0, "dropped once the watch delivered the same version");
    assert.deepEqual(names(informer.list()), [`galactic-vpc-1-n@${resourceVersion}`]);
    assert.deepEqual(errors, []);
  } finally {
    await informer.stop();
    await raw.close();
  }
});
