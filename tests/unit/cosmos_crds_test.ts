/**
 * The CRD data the fake API server validates against is the cosmos CRDs'
 * own (generated, not written by hand), and the test-only machinery that
 * uses it never reaches the plugin.
 */

import assert from "node:assert/strict";
import {
  COSMOS_COMMIT,
  DATA_FILE,
  generateCrdData,
  REFERENCE_DIR,
} from "../support/cosmos/generate_crds.ts";
import { COSMOS_CRDS, COSMOS_SOURCE } from "../support/cosmos/crds.ts";

async function referencePresent(): Promise<boolean> {
  try {
    return (await Deno.stat(REFERENCE_DIR)).isDirectory;
  } catch {
    return false;
  }
}

Deno.test({
  name: "cosmos CRD data: crds.json is exactly what the generator derives from the reference CRDs",
  ignore: !await referencePresent(),
  async fn(): Promise<void> {
    const committed = JSON.parse(await Deno.readTextFile(DATA_FILE));
    assert.deepEqual(committed, await generateCrdData());
  },
});

Deno.test("cosmos CRD data: the pinned commit, four cluster-scoped kinds, no upstream prose", async () => {
  assert.equal(COSMOS_SOURCE.commit, COSMOS_COMMIT);
  assert.deepEqual(
    COSMOS_CRDS.map((c) => [c.names.kind, c.group, c.scope, c.versions.map((v) => v.name)]),
    [
      ["BGPInstance", "bgp.miloapis.com", "Cluster", ["v1alpha1"]],
      ["BGPPeer", "bgp.miloapis.com", "Cluster", ["v1alpha1"]],
      ["BGPVRFInstance", "bgp.miloapis.com", "Cluster", ["v1alpha1"]],
      ["BGPProvider", "providers.bgp.miloapis.com", "Cluster", ["v1alpha1"]],
    ],
  );
  assert.ok(!(await Deno.readTextFile(DATA_FILE)).includes('"description"'));
});

interface ModuleInfo {
  specifier: string;
  dependencies?: { code?: { specifier: string } }[];
}

Deno.test("cosmos CRD data: neither the CEL library nor the test support is reachable from the plugin", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL("../../main.ts", import.meta.url).pathname],
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0);
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: ModuleInfo[] };
  // Every module, dynamic imports included.
  const all = graph.modules.flatMap((m) => [
    m.specifier,
    ...(m.dependencies ?? []).flatMap((d) => d.code ? [d.code.specifier] : []),
  ]);
  assert.ok(all.some((s) => s.includes("/lib/kube/")), "the graph was read");
  const offenders = all.filter((s) =>
    s.includes("cel-js") || s.includes("ajv") || s.includes("/tests/")
  );
  assert.deepEqual([...new Set(offenders)], []);
});

/** The schema node at `path` (dot-separated; `[]` steps into list items). */
function schemaAt(kind: string, path: string): Record<string, unknown> | undefined {
  const crd = COSMOS_CRDS.find((c) => c.names.kind === kind)!;
  let node: unknown = crd.versions[0]!.schema;
  for (const step of path.split(".")) {
    const n = node as { properties?: Record<string, unknown>; items?: unknown } | undefined;
    node = step === "[]" ? n?.items : n?.properties?.[step];
  }
  return node as Record<string, unknown> | undefined;
}

Deno.test("cosmos CRD data: every field the plugin writes or reads has the type the plugin assumes", () => {
  const expected: [string, string, Record<string, unknown>][] = [
    // Written (BGPVRFInstance, lib/kube/bgp_vrf_instance.ts) and read back by CHECK and migrate.
    ["BGPVRFInstance", "spec.instanceRef", { type: "string" }],
    ["BGPVRFInstance", "spec.routeDistinguisher", { type: "string", maxLength: 21 }],
    ["BGPVRFInstance", "spec.importRouteTargets", { type: "array", minItems: 1, maxItems: 32 }],
    ["BGPVRFInstance", "spec.importRouteTargets.[].value", { type: "string", maxLength: 21 }],
    ["BGPVRFInstance", "spec.exportRouteTargets.[].value", { type: "string", maxLength: 21 }],
    ["BGPVRFInstance", "spec.providerSelector", { type: "object" }],
    ["BGPVRFInstance", "spec.providerSelector.matchLabels", { type: "object" }],
    ["BGPVRFInstance", "spec.providerSelector.matchExpressions.[].values", { type: "array" }],
    // Read (BGPInstance, lib/kube/bgp_config.ts): the ASN bounds are the plugin's MAX_ASN.
    ["BGPInstance", "spec.asNumber", { type: "integer", minimum: 1, maximum: 4294967295 }],
    ["BGPInstance", "spec.providerSelector.matchLabels", { type: "object" }],
    ["BGPInstance", "spec.providerSelector.matchExpressions.[].operator", { type: "string" }],
  ];
  for (const [kind, path, facts] of expected) {
    const node = schemaAt(kind, path);
    assert.ok(node, `${kind} has no ${path}`);
    for (const [key, value] of Object.entries(facts)) {
      assert.deepEqual(node[key], value, `${kind} ${path}.${key}`);
    }
  }
  const vrfRequired = schemaAt("BGPVRFInstance", "spec")!.required;
  assert.deepEqual(vrfRequired, [
    "exportRouteTargets",
    "importRouteTargets",
    "instanceRef",
    "providerSelector",
    "routeDistinguisher",
  ], "the plugin writes every required field (and only fields of the CRD: round-trip test)");
  // BGPProvider: the plugin reads only its metadata (the node label), never its spec.
  assert.deepEqual(schemaAt("BGPProvider", "spec")!.required, ["type"]);
});
