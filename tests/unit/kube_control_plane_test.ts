import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../../lib/cni/errors.ts";
import { parseVpc, vpcFromValue } from "../../lib/ids/mod.ts";
import type { BgpControlPlane, VrfKey } from "../../lib/kube/control_plane.ts";
import { kubeControlPlane } from "../../lib/kube/kube_control_plane.ts";
import { openDirectControlPlane } from "../../lib/kube/mod.ts";
import type { StoredObject } from "../support/fake_api_server.ts";
import { changedCrds, COSMOS_CRDS, type Crd } from "../support/cosmos/crds.ts";
import {
  condition,
  instance,
  type KubeFixture,
  kubeFixture,
  provider,
  seedNode,
  vrfInstance,
} from "../support/kube_fixtures.ts";

const NODE = "worker-1";
const VPC = vpcFromValue(1234n); // hex 4d2
const KEY: VrfKey = { vpc: VPC, node: NODE };
const NAME = "galactic-vpc-4d2-worker-1";
/** A VPC whose low 32 bits equal VPC's: same route target. */
const TWIN = vpcFromValue(VPC.value + (1n << 32n));

function plane(kube: KubeFixture, timeoutMs = 5000): BgpControlPlane {
  return kubeControlPlane(kube.api, { timeoutMs });
}

async function world(): Promise<KubeFixture> {
  const kube = await kubeFixture();
  seedNode(kube.server, NODE);
  return kube;
}

async function failure(promise: Promise<unknown>): Promise<CniError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof CniError, `expected a CniError, got ${error}`);
    return error;
  }
  assert.fail("expected a failure");
}

function foreignVrf(name: string, vpcHex: string, routeTarget: string): StoredObject {
  return vrfInstance(name, {
    labels: {
      "app.kubernetes.io/managed-by": "galactic",
      "galactic.io/vpc": vpcHex,
      "galactic.io/node": "worker-9",
      "galactic.io/route-target": routeTarget,
    },
    routeDistinguisher: `65000:${routeTarget}`,
  });
}

Deno.test("declare: the first ADD creates the (VPC, node) object in 5 requests", async () => {
  await using kube = await world();
  const declared = await plane(kube).declareVrf(KEY);
  assert.deepEqual(declared, {
    name: NAME,
    instance: "workers",
    asn: 65000,
    routeDistinguisher: "65000:1234",
    routeTarget: "65000:1234",
  });
  const stored = kube.server.object("bgpvrfinstances", NAME)!;
  assert.deepEqual(stored.metadata.labels, {
    "app.kubernetes.io/managed-by": "galactic",
    "galactic.io/vpc": "4d2",
    "galactic.io/node": NODE,
    "galactic.io/route-target": "1234",
  });
  assert.deepEqual(stored.spec, {
    instanceRef: "workers",
    providerSelector: {
      matchLabels: { "galactic.io/plane": "overlay", "bgp.miloapis.com/node": NODE },
    },
    routeDistinguisher: "65000:1234",
    importRouteTargets: [{ value: "65000:1234" }],
    exportRouteTargets: [{ value: "65000:1234" }],
  });
  assert.deepEqual(kube.server.counts(), { list: 4, create: 1 });
});

Deno.test("declare: a repeated ADD with nothing to change writes nothing (3 requests)", async () => {
  await using kube = await world();
  await plane(kube).declareVrf(KEY);
  const before = kube.server.object("bgpvrfinstances", NAME)!;
  kube.server.resetLog();
  await plane(kube).declareVrf(KEY);
  assert.deepEqual(kube.server.counts(), { list: 3 });
  assert.equal(
    kube.server.object("bgpvrfinstances", NAME)!.metadata.resourceVersion,
    before.metadata.resourceVersion,
  );
});

Deno.test("declare: a changed BGPInstance updates the object, keeping others' labels and status", async () => {
  await using kube = await world();
  await plane(kube).declareVrf(KEY);
  const stored = kube.server.object("bgpvrfinstances", NAME)!;
  kube.server.seed({
    ...stored,
    metadata: { ...stored.metadata, labels: { ...stored.metadata.labels, "team": "net" } },
    status: { conditions: [condition("Ready", "True")] },
  });
  kube.server.seed(
    instance("workers", {
      asn: 65001,
      selector: { matchLabels: { "galactic.io/plane": "overlay" } },
    }),
  );
  kube.server.resetLog();
  const declared = await plane(kube).declareVrf(KEY);
  assert.equal(declared.routeDistinguisher, "65001:1234");
  assert.deepEqual(kube.server.counts(), { list: 4, update: 1 });
  const updated = kube.server.object("bgpvrfinstances", NAME)!;
  assert.equal(updated.spec.routeDistinguisher, "65001:1234");
  assert.deepEqual(updated.spec.importRouteTargets, [{ value: "65001:1234" }]);
  assert.equal(updated.metadata.labels.team, "net");
  assert.deepEqual(updated.status, { conditions: [condition("Ready", "True")] });
  assert.equal(updated.metadata.uid, stored.metadata.uid);
});

Deno.test("declare: losing a create race (409 AlreadyExists) converges by get + update", async () => {
  await using kube = await world();
  // Someone else creates the object, with a stale spec, right before our create arrives.
  const remove = kube.server.onRequest((record) => {
    if (record.verb !== "create") return;
    remove();
    kube.server.seed(
      vrfInstance(NAME, {
        labels: { "galactic.io/vpc": "4d2" },
        routeDistinguisher: "1.2.3.4:1001",
      }),
    );
  });
  await plane(kube).declareVrf(KEY);
  assert.deepEqual(kube.server.counts(), { list: 4, create: 1, get: 1, update: 1 });
  assert.deepEqual(kube.server.requests.filter((r) => r.verb !== "list").map((r) => r.status), [
    409,
    200,
    200,
  ]);
  assert.equal(kube.server.object("bgpvrfinstances", NAME)!.spec.routeDistinguisher, "65000:1234");
});

Deno.test("declare: a 409 Conflict on update re-reads and retries", async () => {
  await using kube = await world();
  kube.server.seed(vrfInstance(NAME, {
    labels: { "galactic.io/route-target": "1234", "galactic.io/vpc": "4d2" },
    routeDistinguisher: "1.2.3.4:1001",
    routeTarget: "65000:1234",
  }));
  let bumped = false;
  kube.server.onRequest((record) => {
    if (record.verb !== "update" || bumped) return;
    bumped = true; // a concurrent writer changes the object under us
    const current = kube.server.object("bgpvrfinstances", NAME)!;
    kube.server.seed({
      ...current,
      metadata: { ...current.metadata, annotations: { touched: "yes" } },
    });
  });
  await plane(kube).declareVrf(KEY);
  assert.deepEqual(kube.server.requests.filter((r) => r.verb === "update").map((r) => r.status), [
    409,
    200,
  ]);
  const stored = kube.server.object("bgpvrfinstances", NAME)!;
  assert.equal(stored.spec.routeDistinguisher, "65000:1234");
  assert.deepEqual(stored.metadata.annotations, { touched: "yes" });
});

Deno.test("declare: parallel ADDs of one VPC on one node leave one object", async () => {
  await using kube = await world();
  const [a, b] = await Promise.all([plane(kube).declareVrf(KEY), plane(kube).declareVrf(KEY)]);
  assert.deepEqual(a, b);
  assert.deepEqual(kube.server.objects("bgpvrfinstances").map((o) => o.metadata.name), [NAME]);
});

Deno.test("declare: a route target held by another VPC is refused, naming both VPCs and the object", async () => {
  await using kube = await world();
  kube.server.seed(foreignVrf("galactic-vpc-1000004d2-worker-9", TWIN.hex, "1234"));
  const error = await failure(plane(kube).declareVrf(KEY));
  assert.equal(error.code, ErrorCode.RouteTargetCollision);
  assert.ok(
    error.message.includes(`vpc 00000000jU (4d2)`) ||
      error.message.includes(`vpc ${VPC.text} (4d2)`),
  );
  assert.ok(error.message.includes(`vpc ${TWIN.text} (${TWIN.hex})`), error.message);
  assert.ok(
    error.message.includes("BGPVRFInstance galactic-vpc-1000004d2-worker-9"),
    error.message,
  );
  assert.equal(kube.server.requestCount({ writesOnly: true }), 0, "nothing written");
  assert.equal(kube.server.object("bgpvrfinstances", NAME), undefined);
});

Deno.test("declare: a colliding object appearing during the write rolls back what was created", async () => {
  await using kube = await world();
  kube.server.onRequest((record) => {
    if (record.verb === "create" && record.resource === "bgpvrfinstances") {
      kube.server.seed(foreignVrf("galactic-vpc-1000004d2-worker-9", TWIN.hex, "1234"));
    }
  });
  const error = await failure(plane(kube).declareVrf(KEY));
  assert.equal(error.code, ErrorCode.RouteTargetCollision);
  assert.ok(error.message.includes(TWIN.text));
  assert.equal(
    kube.server.object("bgpvrfinstances", NAME),
    undefined,
    "our object was deleted again",
  );
  assert.ok(
    kube.server.object("bgpvrfinstances", "galactic-vpc-1000004d2-worker-9"),
    "theirs stays",
  );
  const deletes = kube.server.requests.filter((r) => r.verb === "delete");
  assert.deepEqual(deletes.map((r) => [r.name, r.status]), [[NAME, 200]]);
});

Deno.test("declare: an RD no BGP type can carry is refused before anything is written", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p1", NODE));
  kube.server.seed(instance("workers", { asn: 4200000000, selector: {} }));
  const error = await failure(plane(kube).declareVrf({ vpc: parseVpc("ZZZZZ"), node: NODE }));
  assert.equal(error.code, ErrorCode.Kubernetes);
  assert.match(error.message, /cannot encode route distinguisher 4200000000:/);
  assert.equal(kube.server.requestCount({ writesOnly: true }), 0);
});

Deno.test("declare: lookup errors surface unchanged", async () => {
  await using kube = await kubeFixture();
  const error = await failure(plane(kube).declareVrf(KEY));
  assert.match(error.message, /no BGPProvider is labelled bgp\.miloapis\.com\/node=worker-1/);
});

Deno.test("declare: transient faults inside the budget are absorbed", async () => {
  await using kube = await world();
  kube.server.fault({ verb: "list", resource: "bgpinstances", status: 503, times: 2 });
  kube.server.fault({ verb: "create", reset: true, times: 1 });
  await plane(kube).declareVrf(KEY);
  assert.ok(kube.server.object("bgpvrfinstances", NAME));
});

Deno.test("declare: a slow server fails the whole call within the budget, code 11", async () => {
  await using kube = await world();
  kube.server.fault({ verb: "create", delayMs: 5000 });
  const started = performance.now();
  const error = await failure(plane(kube, 1000).declareVrf(KEY));
  const elapsed = performance.now() - started;
  assert.equal(error.code, ErrorCode.TryAgainLater);
  assert.ok(elapsed < 1500, `took ${elapsed} ms`);
  assert.ok(error.message.includes(kube.server.url));
});

Deno.test("withdraw: deletes the object in 1 request; absent is success", async () => {
  await using kube = await world();
  await plane(kube).declareVrf(KEY);
  kube.server.resetLog();
  await plane(kube).withdrawVrf(KEY);
  assert.deepEqual(kube.server.counts(), { delete: 1 });
  assert.equal(kube.server.object("bgpvrfinstances", NAME), undefined);
  await plane(kube).withdrawVrf(KEY);
  assert.deepEqual(kube.server.requests.map((r) => r.status), [200, 404]);
});

Deno.test("withdraw: a forbidden delete is an error naming the verb", async () => {
  await using kube = await world();
  kube.server.deny("delete", "bgpvrfinstances");
  const error = await failure(plane(kube).withdrawVrf(KEY));
  assert.match(error.message, /^forbidden: needs "delete" on bgpvrfinstances\.bgp\.miloapis\.com/);
});

Deno.test("verify: no differences after ADD; edits and absence are reported", async () => {
  await using kube = await world();
  assert.deepEqual(await plane(kube).verifyVrf(KEY), [`BGPVRFInstance ${NAME} does not exist`]);
  await plane(kube).declareVrf(KEY);
  kube.server.resetLog();
  assert.deepEqual(await plane(kube).verifyVrf(KEY), []);
  assert.deepEqual(kube.server.counts(), { list: 2, get: 1 });
  const stored = kube.server.object("bgpvrfinstances", NAME)!;
  stored.spec.routeDistinguisher = "65000:9";
  delete stored.metadata.labels["galactic.io/vpc"];
  kube.server.seed(stored);
  assert.deepEqual(await plane(kube).verifyVrf(KEY), [
    'spec.routeDistinguisher is "65000:9", want "65000:1234"',
    'label galactic.io/vpc is undefined, want "4d2"',
  ]);
});

Deno.test("verify: an instanceRef in the object form of earlier builds is drift (the CRD has a string)", async () => {
  await using kube = await world();
  await plane(kube).declareVrf(KEY);
  const stored = kube.server.object("bgpvrfinstances", NAME)!;
  // Earlier builds wrote {name}; a real API server refuses that, but such an
  // object may exist from a lenient path.
  stored.spec.instanceRef = { name: "workers" };
  kube.server.seed(stored, { unchecked: "the object form a real server refuses" });
  assert.deepEqual(await plane(kube).verifyVrf(KEY), [
    'spec.instanceRef is {"name":"workers"}, want "workers" (wrong shape: object where the CRD has string)',
  ]);
  kube.server.resetLog();
  await plane(kube).declareVrf(KEY);
  assert.equal(kube.server.object("bgpvrfinstances", NAME)!.spec.instanceRef, "workers");
  assert.deepEqual(kube.server.counts(), { list: 4, update: 1 }, "ADD repairs it in place");
  assert.deepEqual(await plane(kube).verifyVrf(KEY), []);
});

Deno.test("listNodeVrfs: the node's objects written by the plugin, by label", async () => {
  await using kube = await world();
  await plane(kube).declareVrf(KEY);
  await plane(kube).declareVrf({ vpc: parseVpc("A"), node: NODE });
  kube.server.seed(foreignVrf("other-node", "99", "153"));
  kube.server.seed({
    ...foreignVrf("unmanaged", "98", "152"),
    metadata: { name: "unmanaged", labels: {} },
  });
  kube.server.resetLog();
  const listed = await plane(kube).listNodeVrfs(NODE);
  assert.deepEqual(listed, [{ name: "galactic-vpc-4d2-worker-1", vpcHex: "4d2" }, {
    name: "galactic-vpc-a-worker-1",
    vpcHex: "a",
  }]);
  assert.deepEqual(kube.server.counts(), { list: 1 });
});

Deno.test("probe: three limit=1 lists and two discovery gets; unreachable, forbidden or no provider is code 50", async () => {
  await using kube = await world();
  await plane(kube).probe(NODE);
  assert.deepEqual(kube.server.counts(), { list: 3, discover: 2 });
  assert.ok(
    kube.server.requests.filter((r) => r.verb === "list").every((r) => r.path.includes("limit=1")),
  );
  assert.deepEqual(
    kube.server.requests.filter((r) => r.verb === "discover").map((r) => r.path).sort(),
    ["/apis/bgp.miloapis.com/v1alpha1", "/apis/providers.bgp.miloapis.com/v1alpha1"],
  );

  const missing = await failure(plane(kube).probe("worker-2"));
  assert.equal(missing.code, ErrorCode.PluginNotAvailable);
  assert.match(missing.message, /no BGPProvider is labelled bgp\.miloapis\.com\/node=worker-2/);

  kube.server.deny("list", "bgpinstances");
  const forbidden = await failure(plane(kube).probe(NODE));
  assert.equal(forbidden.code, ErrorCode.PluginNotAvailable);
  assert.match(forbidden.message, /forbidden: needs "list" on bgpinstances\.bgp\.miloapis\.com/);

  kube.server.resetRbac();
  kube.server.fault({ reset: true });
  const down = await failure(plane(kube).probe(NODE));
  assert.equal(down.code, ErrorCode.PluginNotAvailable);
  assert.match(down.message, /unreachable/);
});

/** STATUS's probe against a cluster whose cosmos CRDs are `crds`. */
async function probeWith(crds: Crd[]): Promise<CniError> {
  await using kube = await kubeFixture({ crds });
  if (crds.some((c) => c.names.kind === "BGPProvider" && c.scope === "Cluster")) {
    kube.server.seed(provider("p1", NODE));
  }
  return await failure(plane(kube).probe(NODE));
}

const NEEDS = "galactic needs the cluster-scoped v1alpha1 BGPVRFInstance, BGPInstance and " +
  'BGPProvider CRDs of cosmos d08f786 (compatible through 80a1b50; 9fcbc60 "BGP API v3" and ' +
  "later are not), see docs/deployment.md";

Deno.test("probe: an incompatible cosmos is one sentence naming the CRD, what was found and what is needed", async () => {
  const namespaced = await probeWith(
    changedCrds("BGPVRFInstance", (crd) => ({ ...crd, scope: "Namespaced" })),
  );
  assert.equal(namespaced.code, ErrorCode.PluginNotAvailable);
  assert.equal(
    namespaced.message,
    "incompatible cosmos API: BGPVRFInstance (bgpvrfinstances.bgp.miloapis.com): it is " +
      `namespaced, galactic needs it cluster-scoped. ${NEEDS}`,
  );

  const noProviders = await probeWith(changedCrds("BGPProvider", () => undefined));
  assert.equal(
    noProviders.message,
    "incompatible cosmos API: BGPProvider (bgpproviders.providers.bgp.miloapis.com): the API " +
      `server serves no providers.bgp.miloapis.com API at all (CRD not installed). ${NEEDS}`,
  );

  // cosmos "BGP API v3": no BGPInstance/BGPProvider, a namespaced BGPVRFInstance.
  const v3 = changedCrds(
    "BGPVRFInstance",
    (crd) => ({ ...crd, scope: "Namespaced" }),
    changedCrds("BGPInstance", () => undefined, changedCrds("BGPProvider", () => undefined)),
  );
  const apiV3 = await probeWith(v3);
  assert.match(
    apiV3.message,
    /^incompatible cosmos API: BGPVRFInstance \(bgpvrfinstances\.bgp\.miloapis\.com\): it is namespaced, galactic needs it cluster-scoped; BGPInstance \(bgpinstances\.bgp\.miloapis\.com\): bgp\.miloapis\.com\/v1alpha1 has no bgpinstances \(it serves BGPPeer, BGPVRFInstance\); BGPProvider .*CRD not installed\)\. galactic needs/,
  );

  const otherVersion = await probeWith(
    ["BGPVRFInstance", "BGPInstance", "BGPPeer"].reduce(
      (crds, kind) =>
        changedCrds(kind, (crd) => ({
          ...crd,
          versions: crd.versions.map((v) => ({ ...v, name: "v1beta1" })),
        }), crds),
      [...COSMOS_CRDS],
    ),
  );
  assert.match(
    otherVersion.message,
    /^incompatible cosmos API: BGPVRFInstance \(bgpvrfinstances\.bgp\.miloapis\.com\): the API server serves bgp\.miloapis\.com only as v1beta1, not v1alpha1; BGPInstance .* only as v1beta1, not v1alpha1\. galactic needs/,
  );
});

Deno.test("openDirectControlPlane: resolves the kubeconfig from the environment and bounds calls", async () => {
  await using kube = await world();
  const opened = await openDirectControlPlane({ apiTimeoutSeconds: 1 }, {
    env: { KUBECONFIG: kube.kubeconfig },
    configDir: `${kube.dir}/none`,
  });
  try {
    assert.equal((await opened.declareVrf(KEY)).name, NAME);
    kube.server.fault({ delayMs: 5000 });
    const started = performance.now();
    const error = await failure(opened.withdrawVrf(KEY));
    assert.equal(error.code, ErrorCode.TryAgainLater);
    assert.ok(performance.now() - started < 1500);
  } finally {
    await opened.close();
    await opened.close();
  }
});

Deno.test("openDirectControlPlane: no kubeconfig anywhere is a CNI error listing what was tried", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      openDirectControlPlane({ apiTimeoutSeconds: 1 }, {
        env: {},
        configDir: dir,
        serviceAccountDir: dir,
      }),
      (error: CniError) =>
        error.code === ErrorCode.InvalidEnvironment && error.message.includes(`${dir}/kubeconfig`),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
