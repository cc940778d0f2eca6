/**
 * Three "nodes" (network namespaces) joined by an IPv6 underlay of veth
 * links, each with its own SRv6 locator, `seg6_enabled` and `ip sr tunsrc`;
 * five pods attached by the plugin (`bin/galactic` in each node's netns, the
 * node agent answering its control-plane calls) in two VPCs with overlapping
 * address space.
 *
 * The routes the BGP control plane would install are derived from what the
 * plugin produced, never typed in: the BGPVRFInstances' route targets group
 * the VPCs, each node's attachment records give the VRF tables, the ADD
 * results give the pod addresses, and each SID is computed from the node's
 * locator with lib/ids and checked against the End.DT46 route the plugin
 * installed. Then packets (busybox ping) prove: same-VPC pods on different
 * nodes reach each other over IPv4 and IPv6, other-VPC pods do not, and after
 * a DEL on one node traffic to it stops while the rest still flows.
 *
 * Needs VRF: ignored (never passed) on a kernel without it; run it through
 * `bash tests/lab/run.sh`.
 */

import assert from "node:assert/strict";
import { interfaceNames, parseAttachment, parseVpc } from "../../lib/ids/mod.ts";
import { ApiWorld } from "./support/api.ts";
import { attachmentConfig, expectSuccess, invoke, records } from "./support/cni.ts";
import { Ledger, Netns, tempDir, vrfSkipReason } from "./support/kernel.ts";
import {
  buildUnderlay,
  createFabricNodes,
  type FabricNode,
  type FabricPod,
  findBusybox,
  pings,
  reconcile,
} from "./support/srv6_fabric.ts";

const ledger = new Ledger("multi_node_test");
const busybox = await findBusybox();
const skip = (await vrfSkipReason()) ??
  (busybox ? null : "no busybox (apt-get install busybox-static)");
if (skip) ledger.skipped("multi-node SRv6 data path", `needs VRF and busybox: ${skip}`);

/** A node of the fabric. */
type Node = FabricNode;

/** A pod attached by the plugin. */
interface Pod extends FabricPod {
  readonly vpc: string;
  readonly attachment: string;
  readonly node: Node;
  readonly ns: Netns;
  readonly v4: string;
  readonly v6: string;
}

async function expectReach(pairs: [Pod, Pod][], reach: boolean, when: string): Promise<void> {
  const checks = pairs.flatMap(([from, to]) =>
    [to.v4, to.v6].map(async (address) => ({
      what: `${from.id} → ${to.id} ${address}`,
      ok: await pings((argv) => from.ns.exec(argv), address, reach),
    }))
  );
  const results = await Promise.all(checks);
  const wrong = results.filter((r) => r.ok !== reach).map((r) => r.what);
  assert.deepEqual(wrong, [], `${when}: expected ${reach ? "replies" : "no reply"} for ${wrong}`);
  ledger.ran(
    `${when}: ${reach ? "reachable" : "unreachable"} over IPv4 and IPv6: ${
      results.map((r) => r.what).join(", ")
    }`,
  );
}

async function txPackets(ns: Netns, link: string): Promise<number> {
  const [stats] = await ns.ipJson<{ stats64?: { tx?: { packets?: number } } }[]>(
    "-s",
    "link",
    "show",
    "dev",
    link,
  );
  return stats?.stats64?.tx?.packets ?? 0;
}

Deno.test({
  name: "multi node: pods of two VPCs on three nodes over SRv6: reach, isolation, DEL (needs VRF)",
  ignore: skip !== null,
  // The in-process node agents keep watch connections until closed in finally.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const api = await ApiWorld.start({ agent: true });
    const scratch = await tempDir("gmn");
    const made: Netns[] = [];
    try {
      const nodes: Node[] = await createFabricNodes("gmn", { count: 3, scratch, made });
      await buildUnderlay(nodes);
      ledger.ran(
        "underlay: 3 node netns in a full mesh of IPv6 veth links; locators fc00:0:{1,2,3}::/48 routed over it; seg6_enabled on all + links; ip sr tunsrc per node",
      );

      const [n1, n2, n3] = nodes as [Node, Node, Node];
      const spec = [
        { id: "a1", vpc: "Ant", attachment: "1", node: n1, host: 1 },
        { id: "a2", vpc: "Ant", attachment: "2", node: n2, host: 2 },
        { id: "a3", vpc: "Ant", attachment: "3", node: n3, host: 3 },
        { id: "b1", vpc: "Bee", attachment: "1", node: n1, host: 11 },
        { id: "b3", vpc: "Bee", attachment: "3", node: n3, host: 13 },
      ];
      const pods: Pod[] = [];
      for (const s of spec) {
        const ns = await Netns.create(`gmnp${s.id}`);
        made.push(ns);
        pods.push({ ...s, ns, v4: `10.30.0.${s.host}`, v6: `fd30::${s.host}` });
      }
      const [a1, a2, a3, b1, b3] = pods as [Pod, Pod, Pod, Pod, Pod];

      for (const node of nodes) api.seedNode(node.name);
      await Promise.all(
        nodes.map((node) =>
          api.startAgent(node.name, node.agentSocket, { stateDir: node.stateDir, netns: node.ns })
        ),
      );

      const configOf = (pod: Pod): Record<string, unknown> =>
        attachmentConfig({
          name: "tenants",
          vpc: pod.vpc,
          attachment: pod.attachment,
          locator: pod.node.locator,
          node: pod.node.name,
          stateDir: pod.node.stateDir,
          agentSocket: pod.node.agentSocket,
          addresses: [`${pod.v4}/24`, `${pod.v6}/64`],
          terminations: [{ network: `${pod.v4}/32` }, { network: `${pod.v6}/128` }],
        });
      await Promise.all(pods.map(async (pod) => {
        const result = expectSuccess(
          await invoke({
            command: "ADD",
            node: pod.node.ns,
            pod: pod.ns,
            containerId: pod.id,
            config: configOf(pod),
          }),
          `ADD ${pod.id}`,
        );
        assert.ok(result);
        pod.result = result;
      }));
      ledger.ran(
        "ADD of 5 attachments (VPC Ant on node-1/2/3, VPC Bee on node-1/3), concurrently, through the node agents",
      );

      const objects = api.server.objects("bgpvrfinstances");
      assert.equal(objects.length, 5, objects.map((o) => o.metadata.name).join(" "));
      const rts = new Set(objects.map((o) => o.spec.exportRouteTargets[0].value));
      assert.equal(rts.size, 2, `route targets ${[...rts]}`);
      const rtOf = (vpc: string) => `65000:${parseVpc(vpc).value & 0xffffffffn}`;
      assert.deepEqual([...rts].sort(), [rtOf("Ant"), rtOf("Bee")].sort());
      ledger.ran(
        `one BGPVRFInstance per (VPC, node): 5 objects, 2 route targets (${[...rts].join(", ")})`,
      );

      let installed = await reconcile(api, nodes, pods, new Map());
      const routeCount = [...installed.values()].reduce((n, lines) => n + lines.length, 0);
      ledger.ran(
        `control plane emulated from the objects' RTs, the records' tables, the ADD results' IPs and lib/ids SIDs (each matched to the plugin's End.DT46 route): ${routeCount} routes/proxy entries installed`,
      );

      const before = await txPackets(n1.ns, "ul2");
      await expectReach([[a1, a2], [a1, a3], [a2, a3], [b1, b3]], true, "same VPC across nodes");
      assert.ok((await txPackets(n1.ns, "ul2")) > before, "nothing left node-1 towards node-2");
      ledger.ran("node-1's underlay link to node-2 carried the traffic (tx packets grew)");
      await expectReach([[b1, a2], [b1, a3], [a1, b3], [a1, b1]], false, "other VPC");

      // DEL of a3 on node-3: the (Ant, node-3) object goes (its last Ant
      // attachment there); Bee on node-3 stays.
      expectSuccess(
        await invoke({
          command: "DEL",
          node: n3.ns,
          pod: a3.ns,
          containerId: a3.id,
          config: { ...configOf(a3), prevResult: a3.result },
        }),
        "DEL a3",
      );
      const names = api.server.objects("bgpvrfinstances").map((o) => o.metadata.name);
      assert.equal(names.length, 4, names.join(" "));
      assert.ok(!names.some((n) => n === `galactic-vpc-${parseVpc("Ant").hex}-node-3`));
      assert.ok(names.some((n) => n === `galactic-vpc-${parseVpc("Bee").hex}-node-3`));
      ledger.ran("DEL a3: (Ant, node-3) BGPVRFInstance deleted, (Bee, node-3) kept");
      await api.removalsDone();
      const a3Names = interfaceNames(parseVpc(a3.vpc), parseAttachment(a3.attachment));
      const n3Links = await n3.ns.linkNames();
      assert.ok(
        !n3Links.includes(a3Names.vrf) && !n3Links.includes(a3Names.host),
        `node-3 links: ${n3Links}`,
      );
      const n3Records = Object.values(await records(n3.stateDir)).map((r) => r.containerId);
      assert.deepEqual(n3Records, [b3.id]);
      ledger.ran(
        "DEL a3, node agent idle: its VRF, host veth and record gone from node-3; b3's kept",
      );

      // Before the control plane withdraws anything, traffic to a3 already
      // stops: node-3 no longer decapsulates its SID.
      await expectReach([[a1, a3], [a2, a3]], false, "to the deleted pod, before withdrawal");
      await expectReach([[a1, a2], [b1, b3]], true, "the others, after DEL on node-3");

      installed = await reconcile(api, nodes, pods.filter((p) => p !== a3), installed);
      for (const node of [n1, n2]) {
        const all = await node.ns.tableRoutes(4, "all");
        assert.ok(!all.some((r) => r.dst === a3.v4), `${node.name} still routes to a3`);
      }
      ledger.ran("after withdrawal, node-1 and node-2 have no route to a3 left");
      await expectReach([[a1, a2], [b1, b3]], true, "the others, after withdrawal");
    } finally {
      await api.close();
      for (const ns of made) await ns.delete();
      await Deno.remove(scratch, { recursive: true }).catch(() => {});
    }
  },
});
