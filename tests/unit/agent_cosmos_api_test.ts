/**
 * The node agent refuses to start against another cosmos API, saying which
 * CRD, what it found and what it needs, instead of serving ADDs that would
 * all fail on a 404 or 422.
 */

import assert from "node:assert/strict";
import { startAgent } from "../../lib/agent/agent.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { changedCrds } from "../support/cosmos/crds.ts";
import { kubeFixture, seedNode } from "../support/kube_fixtures.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";

const NODE = "worker-1";

Deno.test("agent: against a namespaced BGPVRFInstance it does not start, and says why in one sentence", async () => {
  await using kube = await kubeFixture({
    rbac: AGENT_RBAC,
    crds: changedCrds("BGPVRFInstance", (crd) => ({ ...crd, scope: "Namespaced" })),
  });
  seedNode(kube.server, NODE);
  const socket = `${kube.dir}/agent.sock`;
  await assert.rejects(
    startAgent({
      socket,
      source: { kind: "file", path: kube.kubeconfig, origin: "test" },
      node: NODE,
      timeoutMs: 5000,
      log: createLogger({ level: "error" }),
    }),
    (error: Error) => {
      assert.match(
        error.message,
        /^incompatible cosmos API: BGPVRFInstance \(bgpvrfinstances\.bgp\.miloapis\.com\): it is namespaced, galactic needs it cluster-scoped\. galactic needs the cluster-scoped v1alpha1 .* cosmos d08f786 \(compatible through 80a1b50; 9fcbc60 "BGP API v3" and later are not\)/,
      );
      return true;
    },
  );
  assert.deepEqual(kube.server.counts(), { discover: 2 }, "nothing but discovery was asked");
});

Deno.test("agent: against the cosmos API it speaks it starts after two discovery requests", async () => {
  await using kube = await kubeFixture({ rbac: AGENT_RBAC });
  seedNode(kube.server, NODE);
  const agent = await startAgent({
    socket: `${kube.dir}/agent.sock`,
    source: { kind: "file", path: kube.kubeconfig, origin: "test" },
    node: NODE,
    timeoutMs: 5000,
    log: createLogger({ level: "error" }),
  });
  try {
    assert.equal(kube.server.counts().discover, 2);
  } finally {
    await agent.close();
  }
});
