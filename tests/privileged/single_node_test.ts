/**
 * One node, one pod, the whole plugin: `bin/galactic` executed like a CNI
 * runtime executes it (env + config on stdin) inside a "node" netns, with the
 * real `ip`, sysctl, iptables, `host-device` + `static`, and the fake
 * Kubernetes API server. ADD → state on the kernel and in the API → CHECK →
 * drift → CHECK names it → ADD converges → DEL → nothing left → DEL again,
 * with the node agent answering the control-plane calls (as on a node where
 * the DaemonSet runs); then ADDs that fail midway (host-device, API refusal,
 * SRv6 step) leave nothing behind, with the plugin process using its own
 * Kubernetes client (no agent).
 *
 * Needs VRF: ignored (never passed) on a kernel without it; run it through
 * `bash tests/lab/run.sh`.
 */

import assert from "node:assert/strict";
import { ErrorCode } from "../../lib/cni/errors.ts";
import {
  bgpVrfInstanceName,
  interfaceNames,
  parseAttachment,
  parsePrefix,
  parseVpc,
  srv6Endpoint,
} from "../../lib/ids/mod.ts";
import type { CommandRunner } from "../../lib/iproute2/runner.ts";
import { UNREACHABLE_METRIC } from "../../lib/iproute2/vrf.ts";
import { ApiWorld } from "./support/api.ts";
import {
  attachmentConfig,
  expectError,
  expectSuccess,
  invoke,
  type Outcome,
  records,
} from "./support/cni.ts";
import { Ledger, Netns, tempDir, vrfSkipReason, waitFor } from "./support/kernel.ts";

const ledger = new Ledger("single_node_test");
const skip = await vrfSkipReason();
if (skip) ledger.skipped("single-node ADD/CHECK/DEL and failed ADDs", `needs VRF: ${skip}`);

const NODE = "node-a";
const VPC = parseVpc("a1B2c3D"); // > 32 bits: the RD/RT number is its low 32 bits
const ATTACHMENT = parseAttachment("7");
const LOCATOR = "fc00:0:a::/48";
const NAMES = interfaceNames(VPC, ATTACHMENT);
const SID = srv6Endpoint(parsePrefix(LOCATOR)!, { vpc: VPC, attachment: ATTACHMENT });
const OBJECT = bgpVrfInstanceName(VPC, NODE);
const ROUTE_VALUE = `65000:${VPC.value & 0xffffffffn}`;
const FOREIGN_VRF = "gforeign";
const TERMINATIONS = [
  { network: "10.99.0.0/16", via: "10.1.0.2" },
  { network: "fd99::/64", via: "fd01::2" },
  { network: "10.1.0.2/32" },
  { network: "fd01::2/128" },
];

/** Everything one scenario needs; removed in `finally`. */
interface World {
  readonly api: ApiWorld;
  readonly node: Netns;
  readonly pod: Netns;
  readonly stateDir: string;
  /** Direct API access: a kubeconfig naming the relay in the node netns. */
  readonly kubeconfig?: string;
  /** Or the node agent's socket. */
  readonly agentSocket?: string;
}

function config(world: World, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...attachmentConfig({
      name: "tenant-a",
      vpc: "a1B2c3D",
      attachment: "7",
      locator: LOCATOR,
      node: NODE,
      stateDir: world.stateDir,
      ...(world.kubeconfig !== undefined && { kubeconfig: world.kubeconfig }),
      ...(world.agentSocket !== undefined && { agentSocket: world.agentSocket }),
      addresses: ["10.1.0.2/24", "fd01::2/64"],
      terminations: TERMINATIONS,
      mtu: 1400,
    }),
    ...extra,
  };
}

function add(world: World, containerId: string, extra?: Record<string, unknown>): Promise<Outcome> {
  return invoke({
    command: "ADD",
    node: world.node,
    pod: world.pod,
    containerId,
    config: config(world, extra),
  });
}

/**
 * Asserts what a DEL has done by the time it answers, whether or not the
 * node agent took the rest: SRv6 route, BGPVRFInstance, pod interface and
 * FORWARD rules gone.
 */
async function assertReleased(world: World, when: string): Promise<void> {
  const { node, pod } = world;
  const seg6local = (await node.tableRoutes(6, "all")).filter((r) => r.encap === "seg6local");
  assert.deepEqual(seg6local, [], `${when}: SRv6 routes`);
  assert.equal(world.api.server.object("bgpvrfinstances", OBJECT), undefined, `${when}: object`);
  assert.deepEqual(await pod.linkNames(), ["lo"], `${when}: pod links`);
  assert.deepEqual(await node.forwardRules("iptables"), [], `${when}: iptables FORWARD`);
  assert.deepEqual(await node.forwardRules("ip6tables"), [], `${when}: ip6tables FORWARD`);
}

/** Whether a DEL's log says the node agent took its veth and VRF removal. */
function handedOff(outcome: Outcome): boolean {
  return /the node agent removes its veth and VRF/.test(outcome.stderr);
}

/**
 * Asserts that the node holds nothing of the attachment (the foreign VRF
 * aside), once the node agent has finished the removals DELs handed it.
 */
async function assertNothingLeft(world: World, tables: number[], when: string): Promise<void> {
  const { node, pod } = world;
  await world.api.removalsDone();
  assert.deepEqual(await node.linkNames(), [FOREIGN_VRF, "lo"], `${when}: node links`);
  assert.deepEqual(await pod.linkNames(), ["lo"], `${when}: pod links`);
  for (const table of tables) {
    assert.deepEqual(await node.tableRoutes(4, table), [], `${when}: IPv4 table ${table}`);
    assert.deepEqual(await node.tableRoutes(6, table), [], `${when}: IPv6 table ${table}`);
  }
  const seg6local = (await node.tableRoutes(6, "all")).filter((r) => r.encap === "seg6local");
  assert.deepEqual(seg6local, [], `${when}: SRv6 routes`);
  assert.deepEqual(await node.forwardRules("iptables"), [], `${when}: iptables FORWARD`);
  assert.deepEqual(await node.forwardRules("ip6tables"), [], `${when}: ip6tables FORWARD`);
  for (const name of [NAMES.vrf, NAMES.host]) {
    const gone = await node.exec(["test", "-e", `/proc/sys/net/ipv4/conf/${name}`]);
    assert.notEqual(gone.code, 0, `${when}: sysctl dir of ${name} still there`);
  }
  assert.deepEqual(await records(world.stateDir), {}, `${when}: attachment records`);
  assert.equal(world.api.server.object("bgpvrfinstances", OBJECT), undefined, `${when}: object`);
}

/** Asserts a complete attachment of `owner` and returns its table. */
async function assertAttached(world: World, owner: string, when: string): Promise<number> {
  const { node, pod, api } = world;
  const recorded = Object.values(await records(world.stateDir));
  assert.equal(recorded.length, 1, `${when}: records ${JSON.stringify(recorded)}`);
  assert.equal(recorded[0]?.containerId, owner, `${when}: record owner`);
  assert.equal(recorded[0]?.phase, undefined, `${when}: record phase`);
  const table = recorded[0]?.table as number;
  const vrf = await node.link(NAMES.vrf);
  assert.equal(vrf?.linkinfo?.info_data?.table, table, `${when}: VRF table`);
  assert.ok(vrf?.flags?.includes("UP"), `${when}: VRF down`);
  const host = await node.link(NAMES.host);
  assert.equal(host?.master, NAMES.vrf, `${when}: host veth master`);
  assert.ok(host?.flags?.includes("UP"), `${when}: host veth down`);
  assert.ok((await pod.link("net1"))?.flags?.includes("UP"), `${when}: net1 in the pod`);
  const rule = `-A FORWARD -o ${NAMES.host} -j ACCEPT`;
  assert.deepEqual(await node.forwardRules("iptables"), [rule], `${when}: iptables FORWARD`);
  assert.deepEqual(await node.forwardRules("ip6tables"), [rule], `${when}: ip6tables FORWARD`);
  const [ingress] = await node.ipJson<{ action?: string; vrftable?: string }[]>(
    "-6",
    "-d",
    "route",
    "show",
    `${SID}/128`,
  );
  assert.equal(ingress?.action, "End.DT46", `${when}: SRv6 ingress route`);
  assert.equal(Number(ingress?.vrftable), table, `${when}: SRv6 ingress table`);
  assert.ok(api.server.object("bgpvrfinstances", OBJECT), `${when}: BGPVRFInstance missing`);
  return table;
}

/**
 * A node, a pod and the fake API server, reached by the plugin process
 * through its own Kubernetes client (`direct`) or through the node agent.
 */
async function withWorld(
  via: "direct" | "agent",
  body: (world: World) => Promise<void>,
): Promise<void> {
  const api = await ApiWorld.start({ agent: via === "agent" });
  const made: Netns[] = [];
  const scratch = await tempDir("gsn");
  try {
    const node = await Netns.create("gsnnode");
    made.push(node);
    const pod = await Netns.create("gsnpod");
    made.push(pod);
    api.seedNode(NODE);
    const stateDir = `${scratch}/state`;
    const access = via === "direct"
      ? { kubeconfig: await api.relayInto(node) }
      : { agentSocket: `${scratch}/agent.sock` };
    if (access.agentSocket) {
      await api.startAgent(NODE, access.agentSocket, { stateDir, netns: node });
    }
    // A node is not empty: a foreign VRF holds table 1000 (down, so its table
    // is empty) and stale routes sit in table 1001 without any VRF.
    await node.ip("link", "add", FOREIGN_VRF, "type", "vrf", "table", "1000");
    await node.ip("route", "add", "10.250.0.0/16", "dev", "lo", "table", "1001");
    await node.ip("-6", "route", "add", "fd00:dead::/64", "dev", "lo", "table", "1001");
    await body({ api, node, pod, stateDir, ...access });
  } finally {
    await api.close();
    for (const ns of made) await ns.delete();
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name:
    "single node: ADD, state on kernel and API, CHECK, drift, re-ADD, DEL, DEL again (needs VRF)",
  ignore: skip !== null,
  // The in-process node agent keeps watch connections until closed in finally.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withWorld("agent", async (world) => {
      const { node, pod, api } = world;
      const owner = "sandbox-1";

      // ---- ADD
      const result = expectSuccess(await add(world, owner), "ADD");
      assert.ok(result, "ADD printed no result");
      assert.equal(result.cniVersion, "1.1.0");
      const interfaces = result.interfaces as { name: string; sandbox?: string; mac?: string }[];
      const podIndex = interfaces.findIndex((i) => i.name === "net1");
      assert.ok(podIndex >= 0, JSON.stringify(result));
      assert.equal(interfaces[podIndex]?.sandbox, pod.path);
      assert.deepEqual(interfaces.slice(0, 2).map((i) => i.name), [NAMES.vrf, NAMES.host]);
      const ips = result.ips as { address: string; interface?: number }[];
      assert.deepEqual(ips.map((ip) => ip.address).sort(), ["10.1.0.2/24", "fd01::2/64"]);
      assert.ok(ips.every((ip) => ip.interface === podIndex), JSON.stringify(ips));
      ledger.ran(
        "ADD result (cniVersion 1.1.0): interfaces [VRF, host veth, net1 with sandbox = pod netns]; ips = host-device's 10.1.0.2/24 and fd01::2/64 pointing at net1",
      );

      const record = Object.values(await records(world.stateDir));
      assert.equal(record.length, 1);
      assert.equal(record[0]?.containerId, owner);
      const table = record[0]?.table as number;
      assert.equal(table, 1001, "table 1000 belongs to a foreign VRF, 1001 was free after a flush");
      const vrf = await node.link(NAMES.vrf);
      assert.equal(vrf?.linkinfo?.info_kind, "vrf");
      assert.equal(vrf?.linkinfo?.info_data?.table, table);
      assert.ok(vrf?.flags?.includes("UP"));
      ledger.ran(
        "VRF G…V exists, UP, kind vrf, table = the recorded one (1001: 1000 skipped as held by a foreign VRF)",
      );

      for (const family of [4, 6] as const) {
        const routes = await node.tableRoutes(family, table);
        assert.ok(
          !routes.some((r) => r.dst === "10.250.0.0/16" || r.dst === "fd00:dead::/64"),
          `stale routes survived in table ${table}: ${JSON.stringify(routes)}`,
        );
        const unreachable = routes.filter((r) => r.type === "unreachable" && r.dst === "default");
        assert.equal(unreachable.length, 1, `IPv${family} unreachable default`);
        assert.equal(unreachable[0]?.metric, UNREACHABLE_METRIC);
      }
      ledger.ran(
        "table flushed before use (stale v4/v6 routes gone); unreachable default v4+v6 at metric 4278198272",
      );

      const host = await node.link(NAMES.host);
      assert.equal(host?.linkinfo?.info_kind, "veth");
      assert.equal(host?.master, NAMES.vrf);
      assert.ok(host?.flags?.includes("UP"));
      assert.equal(host?.mtu, 1400);
      assert.equal(await node.link(NAMES.guest), undefined, "guest end still on the node");
      const net1 = await pod.link("net1");
      assert.equal(net1?.mtu, 1400);
      assert.ok(net1?.flags?.includes("UP"));
      const podAddresses = await pod.ipJson<
        { addr_info: { local: string; prefixlen: number }[] }[]
      >(
        "addr",
        "show",
        "dev",
        "net1",
      );
      const local = podAddresses[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
      assert.ok(local.includes("10.1.0.2/24") && local.includes("fd01::2/64"), local.join(" "));
      ledger.ran(
        "host veth enslaved to the VRF, UP, MTU 1400; guest end moved: pod has net1 (UP, MTU 1400) with 10.1.0.2/24 and fd01::2/64",
      );

      const wanted: Record<string, string> = { "net.vrf.strict_mode": "1" };
      for (const dev of [NAMES.vrf, NAMES.host]) {
        Object.assign(wanted, {
          [`net.ipv4.conf.${dev}.rp_filter`]: "0",
          [`net.ipv4.conf.${dev}.forwarding`]: "1",
          [`net.ipv6.conf.${dev}.forwarding`]: "1",
          [`net.ipv4.conf.${dev}.proxy_arp`]: "1",
          [`net.ipv6.conf.${dev}.proxy_ndp`]: "1",
        });
      }
      for (const [key, value] of Object.entries(wanted)) {
        assert.equal(await node.sysctl(key), value, key);
      }
      ledger.ran(
        "sysctls on VRF and host veth: rp_filter=0, ipv4+ipv6 forwarding=1, proxy_arp=1, proxy_ndp=1; net.vrf.strict_mode=1",
      );

      const rule = `-A FORWARD -o ${NAMES.host} -j ACCEPT`;
      assert.deepEqual(await node.forwardRules("iptables"), [rule]);
      assert.deepEqual(await node.forwardRules("ip6tables"), [rule]);
      ledger.ran("FORWARD accept -o G…H in iptables and ip6tables");

      const v4 = await node.tableRoutes(4, table);
      const v6 = await node.tableRoutes(6, table);
      const via4 = v4.find((r) => r.dst === "10.99.0.0/16");
      assert.equal(via4?.gateway, "10.1.0.2");
      assert.equal(via4?.dev, NAMES.host);
      assert.ok(via4?.flags?.includes("onlink"));
      assert.equal(v6.find((r) => r.dst === "fd99::/64")?.gateway, "fd01::2");
      assert.equal(v4.find((r) => r.dst === "10.1.0.2")?.dev, NAMES.host);
      assert.equal(v6.find((r) => r.dst === "fd01::2")?.dev, NAMES.host);
      ledger.ran(
        "terminations in the VRF table: 10.99.0.0/16 via 10.1.0.2 onlink, fd99::/64 via fd01::2, 10.1.0.2/32 and fd01::2/128 dev G…H",
      );

      const [ingress] = await node.ipJson<
        { dst: string; encap?: string; action?: string; vrftable?: string; dev?: string }[]
      >("-6", "-d", "route", "show", `${SID}/128`);
      assert.equal(ingress?.dst, SID);
      assert.equal(ingress?.encap, "seg6local");
      assert.equal(ingress?.action, "End.DT46");
      assert.equal(Number(ingress?.vrftable), table);
      assert.equal(ingress?.dev, NAMES.host);
      ledger.ran(`SRv6 ingress ${SID}/128: seg6local End.DT46 vrftable ${table} dev G…H`);

      const object = api.server.object("bgpvrfinstances", OBJECT);
      assert.ok(object, `BGPVRFInstance ${OBJECT} missing`);
      assert.equal(object.spec.routeDistinguisher, ROUTE_VALUE);
      assert.deepEqual(object.spec.importRouteTargets, [{ value: ROUTE_VALUE }]);
      assert.deepEqual(object.spec.exportRouteTargets, [{ value: ROUTE_VALUE }]);
      assert.equal(object.spec.instanceRef, "workers");
      assert.equal(
        object.spec.providerSelector?.matchLabels?.["bgp.miloapis.com/node"],
        NODE,
        JSON.stringify(object.spec.providerSelector),
      );
      assert.equal(object.metadata.labels?.["galactic.io/vpc"], VPC.hex);
      ledger.ran(
        `BGPVRFInstance ${OBJECT}: RD = import RT = export RT = ${ROUTE_VALUE} (ASN:low32(vpc)), instanceRef workers, providerSelector with the node label`,
      );

      // ---- CHECK (the runtime passes the cached result of the last ADD)
      let prevResult = result;
      const check = (): Promise<Outcome> =>
        invoke({
          command: "CHECK",
          node,
          pod,
          containerId: owner,
          config: config(world, { prevResult }),
        });
      const checked = await check();
      expectSuccess(checked, "CHECK");
      assert.equal(checked.stdout, "");
      ledger.ran("CHECK on the fresh ADD state: exit 0, empty stdout");

      // ---- a late DEL of another sandbox leaves the owner's state alone
      expectSuccess(
        await invoke({
          command: "DEL",
          node,
          pod,
          containerId: "old-sandbox",
          config: config(world),
        }),
        "DEL by another container",
      );
      assert.ok(await node.link(NAMES.vrf), "another container's DEL removed the VRF");
      assert.equal(Object.values(await records(world.stateDir))[0]?.containerId, owner);
      assert.ok(api.server.object("bgpvrfinstances", OBJECT));
      ledger.ran("DEL by another container ID: exit 0, VRF, record and object untouched");

      // ---- drift
      await node.ip("route", "del", "10.99.0.0/16", "table", String(table));
      await node.setSysctl({ [`net.ipv4.conf.${NAMES.host}.rp_filter`]: "1" });
      await node.mustExec([
        "iptables",
        "-w",
        "5",
        "-D",
        "FORWARD",
        "-o",
        NAMES.host,
        "-j",
        "ACCEPT",
      ]);
      const drift = expectError(await check(), "CHECK after drift");
      assert.equal(drift.code, ErrorCode.StateDiverged, drift.msg);
      assert.match(drift.msg, /termination 10\.99\.0\.0\/16/);
      assert.match(drift.msg, /rp_filter is 1/);
      assert.match(drift.msg, new RegExp(`iptables FORWARD -o ${NAMES.host}`));
      assert.doesNotMatch(drift.msg, /ip6tables/);
      ledger.ran(`CHECK after drift → code 104 naming all three: ${drift.msg}`);

      // ---- ADD again converges
      const again = expectSuccess(await add(world, owner), "second ADD");
      assert.ok(again, "second ADD printed no result");
      assert.deepEqual(
        (again.ips as { address: string }[]).map((ip) => ip.address).sort(),
        ["10.1.0.2/24", "fd01::2/64"],
      );
      const mac = (r: Record<string, unknown>) =>
        (r.interfaces as { name: string; mac?: string }[]).find((i) => i.name === "net1")?.mac;
      // A repeated ADD rebuilds the veth pair (the guest end is in the pod, not
      // on the node), so the pod interface is new: record what happened.
      ledger.note(
        `second ADD of the same container: pod interface MAC ${mac(result)} → ${mac(again)}`,
      );
      prevResult = again;
      expectSuccess(await check(), "CHECK after second ADD");
      assert.equal(Object.values(await records(world.stateDir))[0]?.table, table);
      ledger.ran("ADD again repairs the drift (same table); CHECK with its result passes");

      // ---- DEL
      const deleted = await invoke({
        command: "DEL",
        node,
        pod,
        containerId: owner,
        config: config(world, { prevResult }),
      });
      expectSuccess(deleted, "DEL");
      assert.equal(deleted.stdout, "");
      await assertReleased(world, "when DEL answered");
      ledger.ran(
        `DEL: exit 0 (${
          handedOff(deleted) ? "the node agent took the veth and VRF" : "removed it all itself"
        }); at once: SRv6 route, BGPVRFInstance, FORWARD rules (v4+v6) gone, pod has only lo`,
      );
      await assertNothingLeft(world, [table], "after DEL");
      ledger.ran(
        "DEL, once the agent's removals are done: VRF, veths, table routes, SRv6 route, FORWARD rules (v4+v6), sysctl dirs, record, BGPVRFInstance all gone; pod has only lo",
      );

      expectSuccess(
        await invoke({ command: "DEL", node, pod, containerId: owner, config: config(world) }),
        "DEL again",
      );
      await assertNothingLeft(world, [table], "after the second DEL");
      ledger.ran("DEL again: exit 0, still nothing");
    }),
});

Deno.test({
  name: "single node: DELs handed to the node agent: an ADD of a new sandbox at once; an agent " +
    "that fails its removals, CHECK and ADD meanwhile, the next agent's start sweep (needs VRF)",
  ignore: skip !== null,
  // The in-process node agent keeps watch connections until closed in finally.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () =>
    withWorld("agent", async (world) => {
      const { node, pod, api } = world;
      const del = (containerId: string): Promise<Outcome> =>
        invoke({ command: "DEL", node, pod, containerId, config: config(world) });
      const check = (containerId: string, prevResult: Record<string, unknown>) =>
        invoke({ command: "CHECK", node, pod, containerId, config: config(world, { prevResult }) });
      const removals = () => api.agentCounts(NODE, "galactic_agent_removals_total");

      // ---- DEL, then at once an ADD of the same attachment by a new sandbox
      expectSuccess(await add(world, "pod-1"), "ADD pod-1");
      const first = await del("pod-1");
      expectSuccess(first, "DEL pod-1");
      const second = expectSuccess(await add(world, "pod-2"), "ADD pod-2 right after DEL pod-1");
      assert.ok(second, "ADD pod-2 printed no result");
      // pod-1's removal, if the agent still had it queued, must spare pod-2's attachment.
      await api.removalsDone();
      let table = await assertAttached(world, "pod-2", "ADD right after DEL, agent idle");
      expectSuccess(await check("pod-2", second), "CHECK pod-2");
      const raced = removals();
      assert.equal(raced['{outcome="failed"}'], undefined, JSON.stringify(raced));
      ledger.ran(
        `ADD of a new sandbox right after DEL of the old (${
          handedOff(first) ? "handed to the agent" : "not handed off"
        }; agent removals ${
          JSON.stringify(raced)
        }: removed = the agent finished first, skipped = the ADD did): complete attachment of pod-2 once the agent is idle, CHECK passes`,
      );
      expectSuccess(await del("pod-2"), "DEL pod-2");
      await assertNothingLeft(world, [table], "after DEL pod-2");
      ledger.ran("DEL pod-2, agent idle: nothing left");

      // ---- an agent that accepts removals and never carries them out: as
      // far as the node is concerned, one that died right after accepting.
      const socket = world.agentSocket!;
      await api.stopAgent(NODE);
      const dead: CommandRunner = {
        run: () => Promise.reject(new Error("the agent died before removing anything")),
      };
      await api.startAgent(NODE, socket, {
        stateDir: world.stateDir,
        netns: node,
        removalRunner: dead,
        // One attempt per removal, so its count is exact.
        sweepIntervalMs: 0,
      });
      const third = expectSuccess(await add(world, "pod-3"), "ADD pod-3");
      assert.ok(third, "ADD pod-3 printed no result");
      const handed = await del("pod-3");
      expectSuccess(handed, "DEL pod-3");
      assert.ok(
        handedOff(handed),
        `DEL pod-3 did not hand its removal to the agent:\n${handed.stderr}`,
      );
      await api.removalsDone();
      assert.deepEqual(removals(), { '{outcome="failed"}': 1 });
      await assertReleased(world, "DEL pod-3 taken by a failing agent");
      assert.ok(await node.link(NAMES.vrf), "the VRF went although the agent removed nothing");
      const pending = Object.values(await records(world.stateDir));
      assert.deepEqual(pending.map((r) => [r.containerId, r.phase]), [["pod-3", "removing"]]);
      const unfinished = expectError(await check("pod-3", third), "CHECK pod-3 while pending");
      assert.equal(unfinished.code, ErrorCode.StateDiverged, unfinished.msg);
      assert.match(unfinished.msg, /DEL did not complete/);
      ledger.ran(
        `agent failing its removals: DEL pod-3 exit 0, SRv6 route/object/pod interface/FORWARD rules gone, VRF and veth pending, record removing; CHECK → ${unfinished.code}: ${unfinished.msg}`,
      );

      const fourth = expectSuccess(await add(world, "pod-4"), "ADD pod-4 over a pending removal");
      assert.ok(fourth, "ADD pod-4 printed no result");
      table = await assertAttached(world, "pod-4", "ADD over a pending removal");
      expectSuccess(await check("pod-4", fourth), "CHECK pod-4");
      ledger.ran(
        "ADD of a new sandbox over the pending removal: finishes it first, complete attachment, CHECK passes",
      );

      // ---- the next agent finishes what the failed one left, at its start
      const last = await del("pod-4");
      expectSuccess(last, "DEL pod-4");
      assert.ok(handedOff(last), `DEL pod-4 did not hand its removal off:\n${last.stderr}`);
      await api.removalsDone();
      assert.deepEqual(removals(), { '{outcome="failed"}': 2 });
      await api.stopAgent(NODE);
      assert.ok(await node.link(NAMES.vrf), "the VRF went although no agent removed it");
      await api.startAgent(NODE, socket, { stateDir: world.stateDir, netns: node });
      await waitFor(
        "the new agent's start sweep to drop the removing record",
        async () => Object.keys(await records(world.stateDir)).length === 0 || undefined,
        { timeoutMs: 120_000 },
      );
      await assertNothingLeft(world, [table], "after the new agent's start sweep");
      assert.deepEqual(removals(), { '{outcome="removed"}': 1 });
      ledger.ran(
        "DEL pod-4 taken by the failing agent, agent replaced: the new agent's start sweep removes the veth and VRF and drops the record; nothing left",
      );
    }),
});

Deno.test({
  name: "single node: ADDs failing midway leave nothing behind, without an agent (needs VRF)",
  ignore: skip !== null,
  fn: () =>
    withWorld("direct", async (world) => {
      const { node, api } = world;
      const tables = [1001, 1002];

      // host-device fails: its IPAM plugin does not exist (it has already
      // moved the device into the pod when IPAM runs).
      const ipam = expectError(
        await add(world, "fail-ipam", { ipam: { type: "no-such-ipam" } }),
        "ADD with a missing IPAM plugin",
      );
      assert.match(ipam.msg, /no-such-ipam/);
      await assertNothingLeft(world, tables, "after host-device failed");
      ledger.ran(`failed ADD (host-device: ${ipam.msg}) → nothing left`);

      // The API server refuses the BGPVRFInstance.
      api.server.deny("create", "bgpvrfinstances");
      try {
        const refused = expectError(await add(world, "fail-api"), "ADD refused by the API");
        assert.match(refused.msg, /forbidden|Forbidden|bgpvrfinstances/);
        await assertNothingLeft(world, tables, "after the API refused");
        ledger.ran(
          `failed ADD (API refused create, code ${refused.code}: ${refused.msg}) → nothing left`,
        );
      } finally {
        api.server.resetRbac();
      }

      // The last step (SRv6 ingress) fails: while the object is being created,
      // net.vrf.strict_mode is turned off, which End.DT46 vrftable requires.
      const stop = api.server.onRequest(async (request) => {
        if (request.verb === "create" && request.resource === "bgpvrfinstances") {
          await node.setSysctl({ "net.vrf.strict_mode": "0" });
        }
      });
      try {
        api.server.resetLog();
        const srv6 = expectError(await add(world, "fail-srv6"), "ADD whose SRv6 step fails");
        assert.equal(srv6.code, ErrorCode.DataPlane, srv6.msg);
        assert.match(srv6.msg, /SRv6 ingress route/);
        assert.ok(
          api.server.requests.some((r) => r.verb === "create" && r.status === 201),
          "the object was never created: the failure was not after the API step",
        );
        assert.ok(
          api.server.requests.some((r) => r.verb === "delete" && r.name === OBJECT),
          "rollback did not delete the BGPVRFInstance",
        );
        await assertNothingLeft(world, tables, "after the SRv6 step failed");
        ledger.ran(
          `failed ADD at the SRv6 step (${srv6.msg}) → BGPVRFInstance created then deleted by rollback; nothing left`,
        );
      } finally {
        stop();
      }
    }),
});
