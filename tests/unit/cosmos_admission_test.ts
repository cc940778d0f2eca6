/**
 * The fake API server admits the cosmos kinds exactly as a real API server
 * with the cosmos CRDs would: these objects are our own, each checked
 * against what the CRDs in ../shared/reference/cosmos-d08f786 say.
 */

import assert from "node:assert/strict";
import { FAKE_TOKEN, FakeApiServer, type StoredObject } from "../support/fake_api_server.ts";
import { changedCrds } from "../support/cosmos/crds.ts";
import { condition, instance, provider, vrfInstance } from "../support/kube_fixtures.ts";

const BGP = "/apis/bgp.miloapis.com/v1alpha1";
const VRFS = `${BGP}/bgpvrfinstances`;
const PROVIDERS = "/apis/providers.bgp.miloapis.com/v1alpha1/bgpproviders";

async function call(
  server: FakeApiServer,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: StoredObject }> {
  const response = await fetch(`${server.url}${path}`, {
    method: init.method ?? "GET",
    headers: { authorization: `Bearer ${FAKE_TOKEN}`, "content-type": "application/json" },
    ...(init.body !== undefined && { body: JSON.stringify(init.body) }),
  });
  const text = await response.text();
  let body: StoredObject;
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status: response.status, body };
}

/** A BGPVRFInstance with `spec` fields replaced (undefined removes one). */
function vrfWith(spec: StoredObject, name = "v"): StoredObject {
  const object = vrfInstance(name);
  for (const [key, value] of Object.entries(spec)) {
    if (value === undefined) delete object.spec[key];
    else object.spec[key] = value;
  }
  return object;
}

/** `field reason` of each cause of a 422 (sorted), or [] when it was stored. */
async function causes(server: FakeApiServer, path: string, body: StoredObject): Promise<string[]> {
  const answer = await call(server, path, { method: "POST", body });
  if (answer.status === 201) {
    await call(server, `${path}/${body.metadata.name}`, { method: "DELETE" });
    return [];
  }
  assert.equal(answer.status, 422, JSON.stringify(answer.body));
  return answer.body.details.causes.map((c: StoredObject) => `${c.field} ${c.reason}`).sort();
}

const CEL_SKIPPED = "<nil> FieldValueInvalid";

Deno.test("admission: route distinguishers and targets in ASN:NN or IP:NN form, at most 21 bytes", async () => {
  await using server = new FakeApiServer();
  const valid = ["65000:1", "4294967295:4294967295", "192.0.2.1:100", "1:0", "0:0"];
  for (const value of valid) {
    assert.deepEqual(
      await causes(server, VRFS, vrfWith({ routeDistinguisher: value })),
      [],
      `RD ${value}`,
    );
    assert.deepEqual(
      await causes(server, VRFS, vrfWith({ importRouteTargets: [{ value }] })),
      [],
      `RT ${value}`,
    );
  }
  // The CRD's rule only counts digits: 999.1.1.1 and 99999999999 (11 digits) differ.
  const badFormat = [
    "65000",
    "65000:",
    ":1",
    "65000:x",
    "a:1",
    "65000:1:1",
    "1.2.3:4",
    "12345678901:1",
    "65000 :1",
    "1.2.3.4.5:1",
    "-1:1",
    "fc00::1:1",
  ];
  for (const value of badFormat) {
    assert.deepEqual(
      await causes(server, VRFS, vrfWith({ routeDistinguisher: value })),
      ["spec FieldValueInvalid"],
      `RD ${value}`,
    );
    assert.deepEqual(
      await causes(server, VRFS, vrfWith({ exportRouteTargets: [{ value: "1:1" }, { value }] })),
      ["spec.exportRouteTargets[1] FieldValueInvalid"],
      `RT ${value}`,
    );
  }
  // The rule's pattern lets 999.999.999.999 through: the real server stores it too.
  assert.deepEqual(
    await causes(server, VRFS, vrfWith({ routeDistinguisher: "999.999.999.999:1" })),
    [],
  );
  const tooLong = "123.123.123.123:1234567"; // 23 bytes
  assert.deepEqual(await causes(server, VRFS, vrfWith({ routeDistinguisher: tooLong })), [
    CEL_SKIPPED,
    "spec.routeDistinguisher FieldValueTooLong",
  ]);
  assert.deepEqual(
    await causes(server, VRFS, vrfWith({ importRouteTargets: [{ value: tooLong }] })),
    [
      CEL_SKIPPED,
      "spec.importRouteTargets[0].value FieldValueTooLong",
    ],
  );
  assert.deepEqual(await causes(server, VRFS, vrfWith({ routeDistinguisher: "" })), [
    "spec FieldValueInvalid",
    "spec.routeDistinguisher FieldValueInvalid",
  ]);
  const answer = await call(server, VRFS, {
    method: "POST",
    body: vrfWith({ routeDistinguisher: "65000:x" }),
  });
  assert.deepEqual(answer.body, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: 'BGPVRFInstance.bgp.miloapis.com "v" is invalid: spec: Invalid value: "object": ' +
      "routeDistinguisher must be in ASN:NN or IP:NN format",
    reason: "Invalid",
    details: {
      name: "v",
      group: "bgp.miloapis.com",
      kind: "BGPVRFInstance",
      causes: [{
        reason: "FieldValueInvalid",
        message: 'Invalid value: "object": routeDistinguisher must be in ASN:NN or IP:NN format',
        field: "spec",
      }],
    },
    code: 422,
  });
});

Deno.test("admission: required fields, list bounds and wrong types are refused with their paths", async () => {
  await using server = new FakeApiServer();
  for (
    const field of [
      "instanceRef",
      "providerSelector",
      "routeDistinguisher",
      "importRouteTargets",
      "exportRouteTargets",
    ]
  ) {
    assert.deepEqual(await causes(server, VRFS, vrfWith({ [field]: undefined })), [
      CEL_SKIPPED,
      `spec.${field} FieldValueRequired`,
    ], field);
  }
  assert.deepEqual(await causes(server, VRFS, vrfWith({ importRouteTargets: [] })), [
    "spec.importRouteTargets FieldValueInvalid",
  ]);
  const many = (n: number): StoredObject[] =>
    Array.from({ length: n }, (_, i) => ({ value: `65000:${i}` }));
  assert.deepEqual(await causes(server, VRFS, vrfWith({ exportRouteTargets: many(32) })), []);
  assert.deepEqual(await causes(server, VRFS, vrfWith({ exportRouteTargets: many(33) })), [
    CEL_SKIPPED,
    "spec.exportRouteTargets FieldValueTooMany",
  ]);
  assert.deepEqual(await causes(server, VRFS, vrfWith({ importRouteTargets: [{}] })), [
    CEL_SKIPPED,
    "spec.importRouteTargets[0].value FieldValueRequired",
  ]);
  // The shape earlier builds wrote: instanceRef as {name}.
  assert.deepEqual(await causes(server, VRFS, vrfWith({ instanceRef: { name: "workers" } })), [
    CEL_SKIPPED,
    "spec.instanceRef FieldValueTypeInvalid",
  ]);
  assert.deepEqual(await causes(server, VRFS, vrfWith({ routeDistinguisher: 65000 })), [
    CEL_SKIPPED,
    "spec.routeDistinguisher FieldValueTypeInvalid",
  ]);
  assert.deepEqual(await causes(server, VRFS, vrfWith({ importRouteTargets: { value: "1:1" } })), [
    CEL_SKIPPED,
    "spec.importRouteTargets FieldValueTypeInvalid",
  ]);
  assert.deepEqual(
    await causes(server, VRFS, vrfWith({ providerSelector: { matchLabels: { a: 1 } } })),
    [CEL_SKIPPED, "spec.providerSelector.matchLabels.a FieldValueTypeInvalid"],
  );
  assert.deepEqual(
    await causes(server, VRFS, vrfWith({ providerSelector: { matchExpressions: [{ key: "a" }] } })),
    [CEL_SKIPPED, "spec.providerSelector.matchExpressions[0].operator FieldValueRequired"],
  );
  const typeError = await call(server, VRFS, {
    method: "POST",
    body: vrfWith({ instanceRef: { name: "workers" } }),
  });
  assert.equal(
    typeError.body.details.causes[0].message,
    'Invalid value: "object": spec.instanceRef in body must be of type string: "object"',
  );
});

Deno.test("admission: unknown fields are pruned, defaults applied, status and namespace ignored", async () => {
  await using server = new FakeApiServer();
  const body = vrfInstance("v");
  body.spec.routeTarget = "65000:1"; // not a field of the CRD
  body.spec.importRouteTargets[0].community = "x";
  body.spec.providerSelector.matchLabels = { a: "b" };
  body.extra = { x: 1 };
  body.metadata.namespace = "default";
  body.metadata.bogus = "y";
  body.status = { conditions: [condition("Ready", "True")] };
  const created = await call(server, VRFS, { method: "POST", body });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  assert.deepEqual(
    created.body.spec,
    vrfInstance("v", { node: "x" }).spec && {
      ...vrfInstance("v").spec,
      providerSelector: { matchLabels: { a: "b" } },
    },
  );
  assert.equal(created.body.extra, undefined);
  assert.equal(created.body.metadata.namespace, undefined, "cluster-scoped");
  assert.equal(created.body.metadata.bogus, undefined);
  assert.equal(created.body.status, undefined, "status belongs to the status subresource");

  const p = await call(server, PROVIDERS, { method: "POST", body: provider("p", "n") });
  assert.equal(p.status, 403, "the plugin's RBAC cannot create providers");
  const seeded = server.seed({ ...provider("q", "n"), spec: { type: "FRR", frr: {} } });
  assert.deepEqual(seeded.spec, { type: "FRR", frr: { endpoint: "localhost:50051" } });
  const defaulted = server.seed(instance("i", { selector: {} }));
  assert.equal(defaulted.spec.listenPort, 179);
  assert.equal(defaulted.spec.routerIDSource, "Auto");
});

Deno.test("admission: BGPProvider, BGPInstance and BGPPeer rules", async () => {
  await using server = new FakeApiServer();
  const refused = (object: StoredObject): string => {
    try {
      server.seed(object);
    } catch (error) {
      return (error as Error).message;
    }
    return "stored";
  };
  const p = provider("p", "n");
  assert.equal(refused(p), "stored");
  assert.match(refused({ ...p, spec: {} }), /spec\.type: Required value/);
  assert.match(
    refused({ ...p, spec: { type: "Bird", gobgp: {} } }),
    /spec\.type: Unsupported value: "Bird": supported values: "FRR", "GoBGP"/,
  );
  assert.match(
    refused({ ...p, spec: { type: "GoBGP", gobgp: {}, frr: {} } }),
    /exactly one of frr or gobgp must be set/,
  );
  assert.match(
    refused({ ...p, spec: { type: "FRR", gobgp: {} } }),
    /type must match the set daemon block/,
  );
  const i = instance("i", { selector: {} });
  assert.equal(refused(i), "stored");
  assert.match(
    refused({ ...i, spec: { ...i.spec, routerIDSource: "Manual" } }),
    /routerID is required when routerIDSource is Manual/,
  );
  assert.equal(
    refused({ ...i, spec: { ...i.spec, routerIDSource: "Manual", routerID: "10.0.0.1" } }),
    "stored",
  );
  assert.match(
    refused({ ...i, spec: { ...i.spec, routerID: "10.0.0.01" } }),
    /spec\.routerID: Invalid value: "10\.0\.0\.01": spec\.routerID in body must be of type ipv4/,
  );
  assert.match(
    refused({ ...i, spec: { ...i.spec, asNumber: 0 } }),
    /spec\.asNumber: Invalid value: 0: spec\.asNumber in body should be greater than or equal to 1/,
  );
  assert.match(
    refused({ ...i, spec: { ...i.spec, asNumber: 4294967296 } }),
    /should be less than or equal to 4294967295/,
  );
  assert.match(
    refused({ ...i, spec: { ...i.spec, addressFamilies: [{ afi: "L2VPN", safi: "Flowspec" }] } }),
    /spec\.addressFamilies\[0\]\.safi: Unsupported value: "Flowspec"/,
  );
  const peer = {
    apiVersion: "bgp.miloapis.com/v1alpha1",
    kind: "BGPPeer",
    metadata: { name: "peer" },
    spec: { instanceRef: "overlay", address: "2001:db8::1", asNumber: 65000, providerRef: "p" },
  };
  assert.equal(refused(peer), "stored");
  assert.match(
    refused({ ...peer, spec: { ...peer.spec, address: "10.0.0.1" } }),
    /\[spec\.address: Invalid value: "10\.0\.0\.1": spec\.address in body must be of type ipv6: "10\.0\.0\.1", <nil>: /,
  );
  for (const address of ["fc00::1", "2001:db8:1:2::2", "::ffff:10.0.0.1", "1:2:3:4:5:6:7:8"]) {
    assert.equal(refused({ ...peer, spec: { ...peer.spec, address } }), "stored", address);
  }
  for (const address of ["fc00::1%eth0", "1:2:3:4:5:6:7:8:9", "fc00:::1", "2001:db8::/64", ""]) {
    assert.match(refused({ ...peer, spec: { ...peer.spec, address } }), /must be of type ipv6/);
  }
  assert.match(
    refused({ ...peer, spec: { ...peer.spec, providerSelector: {} } }),
    /exactly one of providerRef or providerSelector must be set/,
  );
  assert.match(
    refused({ ...peer, spec: { ...peer.spec, ebgpMultihop: 2, ttlSecurity: 1 } }),
    /ebgpMultihop and ttlSecurity are mutually exclusive/,
  );
  assert.match(
    refused({
      ...peer,
      spec: { instanceRef: "overlay", peerAddress: "2001:db8::1", peerASN: 65000 },
    }),
    /\[spec\.address: Required value, spec\.asNumber: Required value, <nil>/,
  );
  const status = (conditions: StoredObject[]): StoredObject => ({
    ...p,
    metadata: { name: "s" },
    status: { conditions },
  });
  assert.equal(refused(status([condition("Ready", "True")])), "stored");
  assert.match(
    refused(status([condition("Ready", "True"), condition("Ready", "False")])),
    /status\.conditions\[1\]: Duplicate value: \{"type":"Ready"\}/,
  );
  assert.match(
    refused(status([{ type: "Ready", status: "Maybe" }])),
    /status\.conditions\[0\]\.lastTransitionTime: Required value/,
  );
});

Deno.test("admission: cluster scope: namespaced paths are not served", async () => {
  await using server = new FakeApiServer();
  const namespaced = await call(server, `${BGP}/namespaces/default/bgpvrfinstances`, {
    method: "POST",
    body: vrfInstance("v"),
  });
  assert.equal(namespaced.status, 404);
  assert.equal(namespaced.body.reason, "NotFound");
  assert.equal(namespaced.body.message, "the server could not find the requested resource");
  assert.equal((await call(server, `${BGP}/namespaces/default/bgpvrfinstances/v`)).status, 404);
  assert.equal(server.objects("bgpvrfinstances").length, 0);
});

Deno.test("discovery: the fake serves the API groups of the CRDs it holds", async () => {
  await using server = new FakeApiServer();
  const list = await call(server, BGP);
  assert.equal(list.body.kind, "APIResourceList");
  assert.equal(list.body.groupVersion, "bgp.miloapis.com/v1alpha1");
  assert.deepEqual(
    list.body.resources.map((r: StoredObject) => [r.name, r.kind, r.namespaced]),
    [
      ["bgpinstances", "BGPInstance", false],
      ["bgpinstances/status", "BGPInstance", false],
      ["bgppeers", "BGPPeer", false],
      ["bgppeers/status", "BGPPeer", false],
      ["bgpvrfinstances", "BGPVRFInstance", false],
      ["bgpvrfinstances/status", "BGPVRFInstance", false],
    ],
  );
  const groups = await call(server, "/apis");
  assert.deepEqual(groups.body.groups.map((g: StoredObject) => g.name), [
    "bgp.miloapis.com",
    "providers.bgp.miloapis.com",
  ]);
  assert.equal((await call(server, "/apis/bgp.miloapis.com/v1")).status, 404);

  await using other = new FakeApiServer({
    crds: changedCrds("BGPVRFInstance", (crd) => ({ ...crd, scope: "Namespaced" })),
  });
  const changed = await call(other, BGP);
  assert.equal(
    changed.body.resources.find((r: StoredObject) => r.name === "bgpvrfinstances").namespaced,
    true,
  );
  await using without = new FakeApiServer({
    crds: changedCrds("BGPProvider", () => undefined),
  });
  assert.equal((await call(without, "/apis/providers.bgp.miloapis.com/v1alpha1")).status, 404);
});
