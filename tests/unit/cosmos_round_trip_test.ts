/**
 * Write–read round trip: what the plugin writes comes back from a server
 * held to the cosmos CRDs exactly as sent. A field the server would prune
 * (unknown to the CRD) or default differently would make the stored object
 * differ from the sent one, and CHECK would then see drift after every ADD.
 * Also: every seed the repo's tools put into the fake is a valid object.
 */

import assert from "node:assert/strict";
import { parseVpc, vpcFromValue } from "../../lib/ids/mod.ts";
import { BGP_VRF_INSTANCES, type KubeObject } from "../../lib/kube/api.ts";
import { selectBgpConfig } from "../../lib/kube/bgp_config.ts";
import { desiredVrfInstance, vrfDifferences } from "../../lib/kube/bgp_vrf_instance.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";
import { kubeControlPlane } from "../../lib/kube/kube_control_plane.ts";
import { applyMigration, planMigration } from "../../lib/kube/migrate.ts";
import { demoSeed } from "../../tools/demo_seed.ts";
import { FakeApiServer, type StoredObject } from "../support/fake_api_server.ts";
import { admit, describeErrors, servedVersion } from "../support/cosmos/admission.ts";
import { crdOfKind } from "../support/cosmos/crds.ts";
import { instance, kubeFixture, provider, seedNode } from "../support/kube_fixtures.ts";

const NODE = "worker-1";

/** The fields a server adds to every object; everything else must come back as sent. */
function withoutServerFields(object: KubeObject | StoredObject): StoredObject {
  const { uid: _u, resourceVersion: _r, generation: _g, creationTimestamp: _c, ...metadata } =
    object.metadata;
  return { ...object, metadata };
}

const SELECTORS: [string, StoredObject][] = [
  ["matchLabels", { matchLabels: { "galactic.io/plane": "overlay" } }],
  ["empty (selects every provider)", {}],
  ["matchExpressions of every operator", {
    matchExpressions: [
      { key: "galactic.io/plane", operator: "In", values: ["overlay", "edge"] },
      { key: "galactic.io/role", operator: "NotIn", values: ["route-reflector"] },
      { key: "bgp.miloapis.com/node", operator: "Exists" },
      { key: "galactic.io/drain", operator: "DoesNotExist" },
    ],
  }],
];

for (const [what, selector] of SELECTORS) {
  Deno.test(`round trip: the BGPVRFInstance ADD writes reads back as sent (instance selector: ${what})`, async () => {
    await using kube = await kubeFixture();
    kube.server.seed(provider(`${NODE}-gobgp`, NODE, { "galactic.io/plane": "overlay" }));
    kube.server.seed(instance("workers", { asn: 4200000000, selector }));
    const key = { vpc: parseVpc("jU"), node: NODE };
    const config = selectBgpConfig(NODE, {
      providers: kube.server.objects("bgpproviders") as KubeObject[],
      instances: kube.server.objects("bgpinstances") as KubeObject[],
    });
    const sent = desiredVrfInstance(key, config);
    const declared = await kubeControlPlane(kube.api, { timeoutMs: 5000 }).declareVrf(key);
    const read = await kube.api.get(BGP_VRF_INSTANCES, declared.name, {
      deadline: startDeadline(5000),
    });
    assert.ok(read);
    assert.deepEqual(withoutServerFields(read), sent);
    assert.deepEqual(vrfDifferences(read, sent), [], "CHECK sees no drift right after ADD");
  });
}

Deno.test("round trip: an update (changed ASN) and a migration read back as sent", async () => {
  await using kube = await kubeFixture();
  seedNode(kube.server, NODE);
  const plane = kubeControlPlane(kube.api, { timeoutMs: 5000 });
  const key = { vpc: vpcFromValue(77n), node: NODE };
  await plane.declareVrf(key);
  kube.server.seed({
    ...instance("workers", {
      asn: 65010,
      selector: { matchLabels: { "galactic.io/plane": "overlay" } },
    }),
  });
  const declared = await plane.declareVrf(key);
  const config = selectBgpConfig(NODE, {
    providers: kube.server.objects("bgpproviders") as KubeObject[],
    instances: kube.server.objects("bgpinstances") as KubeObject[],
  });
  const sent = desiredVrfInstance(key, config);
  const stored = kube.server.object("bgpvrfinstances", declared.name)!;
  assert.deepEqual(withoutServerFields(stored).spec, sent.spec);
  assert.deepEqual(stored.metadata.labels, sent.metadata.labels);

  // An object in the earlier {name} form, migrated: the stored result is what migrate sent.
  stored.spec.instanceRef = { name: "workers" };
  kube.server.seed(stored, { unchecked: "the form earlier builds wrote" });
  const plan = await planMigration(kube.api, { deadline: startDeadline(5000) });
  const [outcome] = await applyMigration(kube.api, plan, { timeoutMs: 5000 });
  assert.equal(outcome?.written, "updated");
  const migrated = kube.server.object("bgpvrfinstances", declared.name)!;
  assert.deepEqual(withoutServerFields(migrated).spec, outcome!.entry.desired.spec);
});

Deno.test("seeds: the demo's, the bench's and the test fixtures' objects are valid cosmos objects", async () => {
  /** The server's errors for `object`, plus every field of it the server would prune. */
  const admitted = (object: StoredObject): string[] => {
    const crd = crdOfKind(object.kind);
    const version = servedVersion(crd, object.apiVersion.split("/")[1])!;
    const { object: stored, errors } = admit(crd, version, object);
    const pruned: string[] = [];
    const kept = (sent: unknown, got: unknown, path: string): void => {
      if (typeof sent !== "object" || sent === null) return;
      for (const [key, value] of Object.entries(sent)) {
        const there = (got as Record<string, unknown> | undefined)?.[key];
        if (there === undefined) pruned.push(`${path}${key} pruned`);
        else kept(value, there, `${path}${key}.`);
      }
    };
    kept(object, stored, "");
    return [...describeErrors(errors), ...pruned];
  };
  for (const object of demoSeed("demo-node")) {
    assert.deepEqual(admitted(object as StoredObject), [], `demo seed ${JSON.stringify(object)}`);
  }
  // The bench seeds through these fixtures (seedNode, instance with a selector).
  const fixtures = [
    provider("p", NODE, { "galactic.io/plane": "overlay" }),
    instance("bench-extra-0", {
      asn: 65100,
      selector: { matchLabels: { "galactic.io/plane": "bench-unused-0" } },
    }),
    instance("workers", { selector: {} }),
  ];
  for (const object of fixtures) {
    assert.deepEqual(admitted(object), [], `fixture ${object.kind} ${object.metadata.name}`);
  }
  await using server = new FakeApiServer();
  seedNode(server, NODE); // throws when the fake would refuse an object
  assert.equal(server.objects("bgpproviders").length, 1);
});
