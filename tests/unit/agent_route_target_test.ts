/**
 * The node agent watches only its own node's BGPVRFInstances, yet route
 * targets stay unique cluster-wide: a collision with another node's object is
 * refused by the check after the write (which rolls the create back), also
 * when two nodes add colliding VPCs at the same moment.
 *
 * @module
 */

import assert from "node:assert/strict";
import { connectAgent } from "../../lib/agent/agent_client.ts";
import { type RunningAgent, startAgent } from "../../lib/agent/agent.ts";
import { CniError, ErrorCode } from "../../lib/cni/errors.ts";
import { vpcFromValue } from "../../lib/ids/mod.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import type { BgpControlPlane, VrfKey } from "../../lib/kube/control_plane.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { type KubeFixture, kubeFixture, seedNode, vrfInstance } from "../support/kube_fixtures.ts";

const VPC = vpcFromValue(1234n); // route target 65000:1234
const TWIN = vpcFromValue(VPC.value + (1n << 32n)); // the same low 32 bits

interface NodeAgent extends AsyncDisposable {
  readonly agent: RunningAgent;
  readonly plane: BgpControlPlane;
}

async function nodeAgent(kube: KubeFixture, node: string): Promise<NodeAgent> {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/agent.sock`;
  const agent = await startAgent({
    socket,
    source: { kind: "file", path: kube.kubeconfig, origin: "test" },
    node,
    timeoutMs: 5000,
    log: createLogger({ level: "error", stderr: () => {} }),
  });
  const plane = (await connectAgent(socket, { timeoutMs: 10_000 }))!;
  return {
    agent,
    plane,
    async [Symbol.asyncDispose](): Promise<void> {
      await plane.close();
      await agent.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function foreign(
  name: string,
  node: string,
  vpcHex: string,
  routeTarget = "1234",
): Record<string, unknown> {
  return vrfInstance(name, {
    node,
    labels: {
      "app.kubernetes.io/managed-by": "galactic",
      "galactic.io/vpc": vpcHex,
      "galactic.io/node": node,
      "galactic.io/route-target": routeTarget,
    },
    routeDistinguisher: `65000:${routeTarget}`,
  });
}

async function refusal(call: Promise<unknown>): Promise<CniError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof CniError, String(error));
    return error;
  }
  assert.fail("the call succeeded");
}

function vrfRequests(kube: KubeFixture): string[] {
  return kube.server.requests.filter((r) => r.resource === "bgpvrfinstances").map((r) => r.path);
}

Deno.test("agent: its BGPVRFInstance list and watch ask for its own node's objects only", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  seedNode(kube.server, "node-a");
  for (let i = 0; i < 20; i++) {
    const hex = (5000 + i).toString(16);
    kube.server.seed(foreign(`galactic-vpc-${hex}-node-x${i}`, `node-x${i}`, hex, `${5000 + i}`));
  }
  await using a = await nodeAgent(kube, "node-a");
  const paths = vrfRequests(kube);
  assert.ok(paths.length >= 2, "listed and watched");
  for (const path of paths) {
    const selector = new URL(path, "http://x").searchParams.get("labelSelector");
    assert.equal(selector, "app.kubernetes.io/managed-by=galactic,galactic.io/node=node-a", path);
  }
  assert.ok(a.agent.ready());

  // A VPC's first declaration: create + the cluster-wide re-check; again: nothing.
  kube.server.resetLog();
  const key: VrfKey = { vpc: VPC, node: "node-a" };
  await a.plane.declareVrf(key);
  const requests = () =>
    kube.server.requests.filter((r) => r.verb !== "watch").map((r) => `${r.verb} ${r.resource}`);
  assert.deepEqual(requests(), ["create bgpvrfinstances", "list bgpvrfinstances"]);
  kube.server.resetLog();
  await a.plane.declareVrf(key);
  assert.deepEqual(requests(), [], "a sibling's declaration: no request");
});

Deno.test("agent: a route target held on another node is refused after the write, rolled back, in 3 requests", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  seedNode(kube.server, "node-a");
  kube.server.seed(foreign(`galactic-vpc-${TWIN.hex}-node-b`, "node-b", TWIN.hex));
  await using a = await nodeAgent(kube, "node-a");
  kube.server.resetLog();
  const key: VrfKey = { vpc: VPC, node: "node-a" };
  const error = await refusal(a.plane.declareVrf(key));
  assert.equal(error.code, ErrorCode.RouteTargetCollision);
  assert.match(error.message, new RegExp(`galactic-vpc-${TWIN.hex}-node-b`));
  assert.deepEqual(
    kube.server.requests.filter((r) => r.verb !== "watch").map((r) => `${r.verb} ${r.resource}`),
    ["create bgpvrfinstances", "list bgpvrfinstances", "delete bgpvrfinstances"],
  );
  assert.deepEqual(
    kube.server.objects("bgpvrfinstances").map((o) => o.metadata.name),
    [`galactic-vpc-${TWIN.hex}-node-b`],
    "only the holder is left",
  );
});

Deno.test("agent: two nodes adding colliding VPCs at the same moment never both succeed", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  seedNode(kube.server, "node-a");
  seedNode(kube.server, "node-b");
  await using a = await nodeAgent(kube, "node-a");
  await using b = await nodeAgent(kube, "node-b");
  // Hold each create until both have arrived: both pass their first look.
  let arrived = 0;
  let bothArrived: () => void = () => {};
  const barrier = new Promise<void>((resolve) => bothArrived = resolve);
  kube.server.onRequest(async (record) => {
    if (record.verb !== "create" || record.resource !== "bgpvrfinstances") return;
    if (++arrived === 2) bothArrived();
    await barrier;
  });
  const results = await Promise.allSettled([
    a.plane.declareVrf({ vpc: VPC, node: "node-a" }),
    b.plane.declareVrf({ vpc: TWIN, node: "node-b" }),
  ]);
  assert.equal(arrived, 2, "both wrote");
  const succeeded = results.filter((r) => r.status === "fulfilled");
  assert.ok(succeeded.length <= 1, "never both");
  for (const result of results) {
    if (result.status === "rejected") {
      assert.equal((result.reason as CniError).code, ErrorCode.RouteTargetCollision);
    }
  }
  const left = kube.server.objects("bgpvrfinstances");
  assert.equal(left.length, succeeded.length, "each refused racer rolled its object back");
});
