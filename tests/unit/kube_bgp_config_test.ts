import assert from "node:assert/strict";
import { ErrorCode } from "../../lib/cni/errors.ts";
import { lookupBgpConfig } from "../../lib/kube/bgp_config.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";
import { instance, type KubeFixture, kubeFixture, provider } from "../support/kube_fixtures.ts";

const NODE = "worker-1";

function lookup(kube: KubeFixture, node = NODE): ReturnType<typeof lookupBgpConfig> {
  return lookupBgpConfig(kube.api, node, { deadline: startDeadline(5000) });
}

async function lookupError(kube: KubeFixture, node = NODE): Promise<Error & { code?: number }> {
  try {
    await lookup(kube, node);
  } catch (error) {
    return error as Error & { code?: number };
  }
  assert.fail("lookup should fail");
}

Deno.test("bgp lookup: one instance selecting the node's provider", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p1", NODE, { "galactic.io/plane": "overlay" }));
  kube.server.seed(provider("p2", "worker-2", { "galactic.io/plane": "overlay" }));
  kube.server.seed(instance("workers", {
    asn: 65010,
    selector: {
      matchLabels: { "galactic.io/plane": "overlay" },
      matchExpressions: [{ key: "tier", operator: "DoesNotExist" }],
    },
  }));
  assert.deepEqual(await lookup(kube), {
    instance: "workers",
    asn: 65010,
    providerSelector: {
      matchLabels: { "galactic.io/plane": "overlay", "bgp.miloapis.com/node": NODE },
      matchExpressions: [{ key: "tier", operator: "DoesNotExist" }],
    },
  });
  const providerList = kube.server.requests.find((r) => r.resource === "bgpproviders")!;
  assert.match(providerList.path, /labelSelector=bgp\.miloapis\.com%2Fnode%3Dworker-1/);
  assert.deepEqual(kube.server.counts(), { list: 2 });
});

Deno.test("bgp lookup: no provider on the node is an error naming the node", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p2", "worker-2"));
  kube.server.seed(instance("workers", { selector: {} }));
  const error = await lookupError(kube);
  assert.equal(error.code, ErrorCode.Kubernetes);
  assert.match(error.message, /no BGPProvider is labelled bgp\.miloapis\.com\/node=worker-1/);
});

Deno.test("bgp lookup: no instance selecting the node's providers is an error naming the node", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p1", NODE, { "galactic.io/plane": "underlay" }));
  kube.server.seed(provider("p2", "worker-2", { "galactic.io/plane": "overlay" }));
  kube.server.seed(
    instance("overlay", { selector: { matchLabels: { "galactic.io/plane": "overlay" } } }),
  );
  kube.server.seed( // selects nothing of this node
    instance("unselective", { selector: { matchLabels: { "galactic.io/plane": "none" } } }),
  );
  const error = await lookupError(kube);
  assert.match(
    error.message,
    /no BGPInstance selects a BGPProvider of node worker-1 \(providers: p1; /,
  );
  assert.match(error.message, /instances: overlay, unselective/);

  kube.server.remove("bgpinstances", "overlay");
  kube.server.remove("bgpinstances", "unselective");
  assert.match((await lookupError(kube)).message, /instances: none/);
});

Deno.test("bgp lookup: instances that match nothing of this node are ignored", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p1", NODE, { "galactic.io/plane": "overlay" }));
  kube.server.seed(
    instance("underlay", { selector: { matchLabels: { "galactic.io/plane": "underlay" } } }),
  );
  kube.server.seed(instance("rr", { selector: { matchLabels: { role: "route-reflector" } } }));
  kube.server.seed(
    instance("overlay", { selector: { matchLabels: { "galactic.io/plane": "overlay" } } }),
  );
  assert.equal((await lookup(kube)).instance, "overlay");
});

Deno.test("bgp lookup: several matching instances are ambiguous, all named", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p1", NODE, { "galactic.io/plane": "overlay" }));
  kube.server.seed(instance("b-all", { selector: {} }));
  kube.server.seed(
    instance("a-overlay", { selector: { matchLabels: { "galactic.io/plane": "overlay" } } }),
  );
  kube.server.seed(
    instance("c-other", { selector: { matchLabels: { "galactic.io/plane": "other" } } }),
  );
  const error = await lookupError(kube);
  assert.equal(error.code, ErrorCode.Kubernetes);
  assert.match(
    error.message,
    /^ambiguous BGP configuration for node worker-1: BGPInstances a-overlay, b-all all select/,
  );
});

Deno.test("bgp lookup: an invalid selector is an error naming the instance", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p1", NODE));
  kube.server.seed(instance("broken", {
    selector: { matchExpressions: [{ key: "galactic.io/plane", operator: "In", values: [] }] },
  }));
  const error = await lookupError(kube);
  assert.match(
    error.message,
    /BGPInstance "broken" has an invalid spec\.providerSelector: .*needs at least one value/,
  );
});

Deno.test("bgp lookup: each matchExpressions operator selects as Kubernetes does", async () => {
  const cases: { selector: unknown; labels: Record<string, string>; selects: boolean }[] = [
    {
      selector: { matchExpressions: [{ key: "plane", operator: "In", values: ["a", "b"] }] },
      labels: { plane: "b" },
      selects: true,
    },
    {
      selector: { matchExpressions: [{ key: "plane", operator: "In", values: ["a"] }] },
      labels: {},
      selects: false,
    },
    {
      selector: { matchExpressions: [{ key: "plane", operator: "NotIn", values: ["a"] }] },
      labels: {},
      selects: true,
    },
    {
      selector: { matchExpressions: [{ key: "plane", operator: "NotIn", values: ["a"] }] },
      labels: { plane: "a" },
      selects: false,
    },
    {
      selector: { matchExpressions: [{ key: "plane", operator: "Exists" }] },
      labels: { plane: "x" },
      selects: true,
    },
    {
      selector: { matchExpressions: [{ key: "plane", operator: "Exists" }] },
      labels: {},
      selects: false,
    },
    {
      selector: { matchExpressions: [{ key: "plane", operator: "DoesNotExist" }] },
      labels: {},
      selects: true,
    },
    {
      selector: { matchExpressions: [{ key: "plane", operator: "DoesNotExist" }] },
      labels: { plane: "x" },
      selects: false,
    },
  ];
  for (const { selector, labels, selects } of cases) {
    await using kube = await kubeFixture();
    kube.server.seed(provider("p1", NODE, labels));
    kube.server.seed(instance("candidate", { selector }));
    const what = `${JSON.stringify(selector)} on ${JSON.stringify(labels)}`;
    if (selects) assert.equal((await lookup(kube)).instance, "candidate", what);
    else assert.match((await lookupError(kube)).message, /no BGPInstance selects/, what);
  }
});

Deno.test("bgp lookup: an instance without a usable asNumber is an error naming it", async () => {
  await using kube = await kubeFixture();
  kube.server.seed(provider("p1", NODE));
  kube.server.seed(instance("workers", { selector: {}, asn: "65000" }), {
    unchecked: "a string asNumber a real server refuses: the plugin still must not trust it",
  });
  assert.match(
    (await lookupError(kube)).message,
    /BGPInstance "workers" has no valid spec\.asNumber .*got "65000"/,
  );
});
