import assert from "node:assert/strict";
import { parseVpc, vpcFromValue } from "../../lib/ids/mod.ts";
import { startDeadline } from "../../lib/kube/deadline.ts";
import { kubeControlPlane } from "../../lib/kube/kube_control_plane.ts";
import { applyMigration, formatMigrationPlan, planMigration } from "../../lib/kube/migrate.ts";
import type { StoredObject } from "../support/fake_api_server.ts";
import { type KubeFixture, kubeFixture, seedNode } from "../support/kube_fixtures.ts";

const NODE = "worker-1";
const OLD_VPC = parseVpc("ju"); // an older plugin named objects from the raw base62 text

function oldObject(
  name: string,
  spec: Record<string, unknown>,
  labels: Record<string, string> = {},
): StoredObject {
  return {
    apiVersion: "bgp.miloapis.com/v1alpha1",
    kind: "BGPVRFInstance",
    metadata: { name, labels },
    spec,
  };
}

function oldSpec(nn: number, node?: string): Record<string, unknown> {
  return {
    instanceRef: "workers",
    providerSelector: {
      matchLabels: node !== undefined
        ? { "bgp.miloapis.com/node": node }
        : { "galactic.io/plane": "overlay" }, // names no node
    },
    routeDistinguisher: "10.0.0.1:1001",
    importRouteTargets: [{ value: `65000:${nn}` }],
    exportRouteTargets: [{ value: `65000:${nn}` }],
  };
}

async function cluster(): Promise<KubeFixture> {
  const kube = await kubeFixture();
  seedNode(kube.server, NODE);
  const nn = Number(OLD_VPC.value);
  // Two attachments of one VPC, per-attachment objects with routerID:table RDs.
  kube.server.seed(oldObject("ju-g", oldSpec(nn, NODE)));
  kube.server.seed(
    oldObject("ju-h", { ...oldSpec(nn, NODE), routeDistinguisher: "10.0.0.1:1002" }),
  );
  // A name that decodes, but to a VPC its route target contradicts.
  kube.server.seed(oldObject("zz-a", oldSpec(7, NODE)));
  // No way to tell the node.
  kube.server.seed(oldObject("k-b", oldSpec(Number(parseVpc("k").value))));
  // Not galactic's: left alone.
  kube.server.seed(oldObject("cosmos-vrf", { ...oldSpec(1), routeDistinguisher: "65000:1" }));
  // Current and correct, and current with a stale RD.
  await kubeControlPlane(kube.api, { timeoutMs: 5000 }).declareVrf({
    vpc: vpcFromValue(10n),
    node: NODE,
  });
  await kubeControlPlane(kube.api, { timeoutMs: 5000 }).declareVrf({
    vpc: vpcFromValue(11n),
    node: NODE,
  });
  const stale = kube.server.object("bgpvrfinstances", "galactic-vpc-b-worker-1")!;
  stale.spec.routeDistinguisher = "10.0.0.1:1003";
  kube.server.seed(stale);
  return kube;
}

Deno.test("migrate: plans replacements, updates and reports what it cannot decode", async () => {
  await using kube = await cluster();
  const plan = await planMigration(kube.api, { deadline: startDeadline(5000) });
  const target = `galactic-vpc-${OLD_VPC.hex}-${NODE}`;
  assert.deepEqual(plan.entries.map((e) => [e.current, e.action, e.desired.metadata.name]), [
    ["galactic-vpc-a-worker-1", "none", "galactic-vpc-a-worker-1"],
    ["galactic-vpc-b-worker-1", "update", "galactic-vpc-b-worker-1"],
    ["ju-g", "replace", target],
    ["ju-h", "replace", target],
  ]);
  const jug = plan.entries.find((e) => e.current === "ju-g")!;
  assert.ok(jug.differences.includes(`name ju-g -> ${target}`));
  assert.ok(
    jug.differences.includes(
      `spec.routeDistinguisher is "10.0.0.1:1001", want "65000:${OLD_VPC.value}"`,
    ),
  );
  assert.deepEqual(plan.unmigratable.map((u) => u.name), ["k-b", "zz-a"]);
  assert.match(plan.unmigratable[0]!.reason, /no galactic\.io\/node label/);
  assert.match(plan.unmigratable[1]!.reason, /route target number 7 is not that VPC's/);
  const text = formatMigrationPlan(plan);
  assert.match(text, /^OBJECT\s+VPC\s+NODE\s+ACTION\s+TARGET\s+DIFFERENCES$/m);
  assert.match(
    text,
    new RegExp(
      `^ju-g\\s+${OLD_VPC.text} \\(${OLD_VPC.hex}\\)\\s+worker-1\\s+replace\\s+${target}`,
      "m",
    ),
  );
  assert.match(text, /cannot migrate automatically/);
  assert.equal(kube.server.requestCount({ writesOnly: true }), 2, "planning wrote nothing");
});

Deno.test("migrate: apply writes the per-(VPC, node) objects and deletes the stale ones", async () => {
  await using kube = await cluster();
  const plan = await planMigration(kube.api, { deadline: startDeadline(5000) });
  const outcomes = await applyMigration(kube.api, plan, { timeoutMs: 5000 });
  assert.deepEqual(outcomes.map((o) => [o.entry.current, o.written, o.deletedStale, o.error]), [
    ["galactic-vpc-b-worker-1", "updated", undefined, undefined],
    ["ju-g", "created", true, undefined],
    ["ju-h", "unchanged", true, undefined],
  ]);
  assert.deepEqual(kube.server.objects("bgpvrfinstances").map((o) => o.metadata.name), [
    "cosmos-vrf",
    "galactic-vpc-a-worker-1",
    "galactic-vpc-b-worker-1",
    `galactic-vpc-${OLD_VPC.hex}-${NODE}`,
    "k-b",
    "zz-a",
  ]);
  const again = await planMigration(kube.api, { deadline: startDeadline(5000) });
  assert.ok(again.entries.every((e) => e.action === "none"));
});

Deno.test("migrate: converges an object-form instanceRef written by earlier builds to the string", async () => {
  await using kube = await kubeFixture();
  seedNode(kube.server, NODE);
  const key = { vpc: vpcFromValue(12n), node: NODE };
  await kubeControlPlane(kube.api, { timeoutMs: 5000 }).declareVrf(key);
  const name = "galactic-vpc-c-worker-1";
  const stored = kube.server.object("bgpvrfinstances", name)!;
  stored.spec.instanceRef = { name: "workers" };
  kube.server.seed(stored, { unchecked: "refused by a real server; treated as drift anyway" });
  const plan = await planMigration(kube.api, { deadline: startDeadline(5000) });
  assert.deepEqual(plan.entries.map((e) => [e.current, e.action, e.differences]), [
    [name, "update", [
      'spec.instanceRef is {"name":"workers"}, want "workers" (wrong shape: object where the CRD has string)',
    ]],
  ]);
  const outcomes = await applyMigration(kube.api, plan, { timeoutMs: 5000 });
  assert.deepEqual(outcomes.map((o) => [o.entry.current, o.written, o.error]), [
    [name, "updated", undefined],
  ]);
  assert.equal(kube.server.object("bgpvrfinstances", name)!.spec.instanceRef, "workers");
});

Deno.test("galactic migrate: the CLI reports, then applies, against a server over HTTP", async () => {
  await using kube = await cluster();
  const run = async (
    ...args: string[]
  ): Promise<{ code: number; stdout: string; stderr: string }> => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("../../main.ts", import.meta.url).pathname,
        "migrate",
        ...args,
      ],
      // A HOME without ~/.kube/config, but the usual Deno cache.
      env: {
        HOME: kube.dir,
        DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
      },
      clearEnv: true,
    }).output();
    const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);
    return { code: output.code, stdout: decode(output.stdout), stderr: decode(output.stderr) };
  };
  const report = await run("--kubeconfig", kube.kubeconfig);
  assert.equal(report.code, 0, report.stderr);
  assert.match(report.stdout, /^ju-g\s+/m);
  assert.match(report.stdout, /3 object\(s\) to migrate; run again with --apply/);
  assert.ok(kube.server.object("bgpvrfinstances", "ju-g"), "a report changes nothing");

  const json = await run("--kubeconfig", kube.kubeconfig, "--json");
  assert.equal(json.code, 0, json.stderr);
  const document = JSON.parse(json.stdout);
  assert.deepEqual(Object.keys(document).sort(), ["entries", "outcomes", "unmigratable"]);
  assert.equal(document.outcomes, null);
  const pending = (document.entries as { current: string; action: string; vpc: string }[])
    .filter((e) => e.action !== "none");
  assert.deepEqual(pending.map((e) => e.current).sort(), [
    "galactic-vpc-b-worker-1",
    "ju-g",
    "ju-h",
  ]);
  assert.ok(pending.every((e) => typeof e.vpc === "string"), json.stdout);

  const applied = await run("--kubeconfig", kube.kubeconfig, "--apply");
  assert.equal(applied.code, 0, applied.stderr);
  assert.match(applied.stdout, /galactic-vpc-\w+-worker-1 created; stale ju-g deleted/);
  assert.equal(kube.server.object("bgpvrfinstances", "ju-g"), undefined);
});
