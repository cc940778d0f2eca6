/**
 * Real container runtimes drive the plugin: Debian 12's podman 4.3 (CNI
 * backend) and containerd 1.6 (CRI plugin, driven over its gRPC socket as
 * the kubelet does) each run a pod on a galactic network whose conflist
 * chains `[loopback, galactic]`, on "node-1" of a two-node SRv6 fabric
 * (support/srv6_fabric.ts); node-2 holds a peer pod of the same VPC and one
 * of another VPC, attached by the plugin directly.
 *
 * For each runtime: the addresses the runtime reports are the ones of our
 * result; our result keeps loopback's entries first (prevResult handled);
 * the pod reaches its VPC peer and not the other VPC; CHECK, which no
 * runtime sends, is driven with the runtime's cached result and passes,
 * then fails once the SID route is gone; stop/start/remove go through DEL
 * (containerd's RemovePodSandbox sends a second DEL with an empty CNI_NETNS
 * and no prevResult) and leave node-1 as it was before the pod: no link,
 * route, FORWARD rule, record or BGPVRFInstance left. What each runtime sent
 * is recorded by the galactic wrapper in the runtime's plugin dir
 * (support/runtime_plugins.ts) and asserted, not assumed.
 *
 * Needs VRF, busybox-static, podman, containerd and runc: ignored (naming the
 * reason) where any is missing; run it through `bash tests/lab/run.sh`.
 */

import assert from "node:assert/strict";
import { LABELS } from "../../lib/ids/mod.ts";
import { ApiWorld } from "./support/api.ts";
import {
  attachmentConfig,
  expectError,
  expectSuccess,
  invoke,
  records,
  splitNodeConfig,
} from "./support/cni.ts";
import { Containerd, containerdSkipReason } from "./support/containerd.ts";
import { Ledger, must, Netns, run, tempDir, vrfSkipReason } from "./support/kernel.ts";
import { busyboxRootfs, ensureCgroupMount, Podman, podmanSkipReason } from "./support/podman.ts";
import { describeCall, type RecordedCall, RecordingPluginDir } from "./support/runtime_plugins.ts";
import {
  buildUnderlay,
  createFabricNodes,
  type FabricNode,
  type FabricPod,
  findBusybox,
  pings,
  podAddresses,
  reconcile,
} from "./support/srv6_fabric.ts";

const ledger = new Ledger("runtimes_test");
const IN_LAB_VM = Deno.env.get("LAB_MODE") === "vm";
const busybox = await findBusybox();
const skip = (await vrfSkipReason()) ??
  (busybox ? null : "no busybox (apt-get install busybox-static)");
const podmanSkip = skip ?? await podmanSkipReason();
// The sandbox image is built with podman.
const containerdSkip = skip ?? (await containerdSkipReason()) ?? podmanSkip;
if (podmanSkip) ledger.skipped("podman 4.3 (CNI backend) drives galactic", podmanSkip);
if (containerdSkip) ledger.skipped("containerd 1.6 (CRI) drives galactic", containerdSkip);

/** The interface name both runtimes give the pod (CNI_IFNAME). */
const IFNAME = "eth0";
/** Where libcni (both runtimes) caches each attachment's result. */
const CNI_CACHE = "/var/lib/cni/results";
/** The MAC a runtime asks for (locally administered). */
const POD_MAC = "0a:58:0a:1e:00:01";

/** A pod of the fabric with its addresses (the static IPAM's, before the prefix). */
interface Pod extends FabricPod {
  readonly vpc: string;
  readonly attachment: string;
  readonly v4: string;
  readonly v6: string;
}

/** The shared world: API server, node agents, two nodes, peers on node-2. */
interface World {
  readonly api: ApiWorld;
  readonly scratch: string;
  readonly nodes: [FabricNode, FabricNode];
  readonly peers: { same: Pod; other: Pod };
  readonly rootfs: string;
  installed: Map<string, string[]>;
}

function galacticConfig(
  node: FabricNode,
  pod: Pod,
  options: { addresses?: string[] } = {},
): Record<string, unknown> {
  return attachmentConfig({
    name: `g${pod.vpc.toLowerCase()}${pod.attachment}`,
    vpc: pod.vpc,
    attachment: pod.attachment,
    locator: node.locator,
    node: node.name,
    stateDir: node.stateDir,
    agentSocket: node.agentSocket,
    addresses: options.addresses ?? [`${pod.v4}/24`, `${pod.v6}/64`],
    terminations: [{ network: `${pod.v4}/32` }, { network: `${pod.v6}/128` }],
  });
}

/**
 * The conflist a runtime reads: loopback, then galactic (its network part;
 * the node's part is in the node configuration file the wrapper names).
 * cniVersion 1.0.0: the newest both runtimes' libcni (1.1) speaks.
 */
async function chainedConflist(
  node: FabricNode,
  pod: Pod,
  options: { addresses?: string[]; capabilities?: Record<string, boolean> } = {},
): Promise<{ conflist: Record<string, unknown>; nodeConfig: string }> {
  const { network, nodeConfigPath } = await splitNodeConfig(
    galacticConfig(node, pod, options),
  );
  const { cniVersion: _version, name, ...plugin } = network;
  if (options.capabilities) plugin.capabilities = options.capabilities;
  return {
    conflist: { cniVersion: "1.0.0", name, plugins: [{ type: "loopback" }, plugin] },
    nodeConfig: nodeConfigPath,
  };
}

/** Everything of a node's network the plugin could leave behind, as comparable lines. */
async function footprint(node: FabricNode): Promise<string[]> {
  const lines = (await node.ns.linkNames()).map((name) => `link ${name}`);
  for (const family of [4, 6] as const) {
    for (const route of await node.ns.tableRoutes(family, "all")) {
      const { dst, table, type, dev, encap, action } = route;
      lines.push(`route -${family} ${JSON.stringify({ dst, table, type, dev, encap, action })}`);
    }
  }
  for (const tool of ["iptables", "ip6tables"] as const) {
    lines.push(...(await node.ns.forwardRules(tool)).map((rule) => `${tool} ${rule}`));
  }
  return lines.sort();
}

/**
 * node-1 is as it was before the pod, once the node agents have finished the
 * removals DELs handed them: nothing of the attachment left, locally or in the API.
 */
async function expectClean(world: World, baseline: string[], when: string): Promise<void> {
  const [node] = world.nodes;
  await world.api.removalsDone();
  assert.deepEqual(await footprint(node), baseline, `${when}: node-1 differs from before the pod`);
  assert.deepEqual(await records(node.stateDir), {}, `${when}: attachment records left`);
  const objects = world.api.server.objects("bgpvrfinstances")
    .filter((o) => o.metadata.labels?.[LABELS.node] === node.name);
  assert.deepEqual(objects.map((o) => o.metadata.name), [], `${when}: BGPVRFInstance left`);
}

/** The SID routes (seg6local) of a node: `[dst, table]`. */
async function sidRoutes(node: FabricNode): Promise<[string, string][]> {
  const routes = await node.ns.tableRoutes(6, "all");
  return routes.filter((r) => r.encap === "seg6local").map((
    r,
  ) => [r.dst, String(r.table ?? "main")]);
}

/** libcni's cache entry for an attachment. */
interface CacheEntry {
  readonly config: string;
  readonly cniArgs?: [string, string][];
  /** The runtime's capability arguments (`runtimeConfig` of the plugins that declare them). */
  readonly capabilityArgs?: Record<string, unknown>;
  readonly result: Record<string, unknown>;
}

/** libcni's injectRuntimeConfig: the capability arguments the plugin declares. */
function runtimeConfigOf(
  plugin: Record<string, unknown>,
  args: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  const declared = (plugin.capabilities ?? {}) as Record<string, unknown>;
  const config = Object.fromEntries(
    Object.entries(args ?? {}).filter(([capability]) => declared[capability] === true),
  );
  return Object.keys(config).length > 0 ? config : undefined;
}

async function cachedResult(network: string, containerId: string): Promise<CacheEntry> {
  const path = `${CNI_CACHE}/${network}-${containerId}-${IFNAME}`;
  return JSON.parse(await Deno.readTextFile(path)) as CacheEntry;
}

/**
 * CHECK the way libcni would run it for galactic: its plugin entry from the
 * cached conflist, the cached result as prevResult, the cached CNI_ARGS and
 * the cached capability arguments as runtimeConfig.
 */
function checkFromCache(
  world: World,
  entry: CacheEntry,
  call: { containerId: string; netns: string },
): ReturnType<typeof invoke> {
  const [node] = world.nodes;
  const conflist = JSON.parse(atob(entry.config)) as {
    cniVersion: string;
    name: string;
    plugins: Record<string, unknown>[];
  };
  const plugin = conflist.plugins.find((p) => p.type === "galactic");
  assert.ok(plugin, "the cached conflist has no galactic entry");
  const runtimeConfig = runtimeConfigOf(plugin, entry.capabilityArgs);
  return invoke({
    command: "CHECK",
    node: node.ns,
    containerId: call.containerId,
    netns: call.netns,
    ifname: IFNAME,
    config: {
      ...plugin,
      cniVersion: conflist.cniVersion,
      name: conflist.name,
      prevResult: entry.result,
      ...(runtimeConfig && { runtimeConfig }),
      // The node's part, as the wrapper passes it (see splitNodeConfig).
      node_name: node.name,
      state_dir: node.stateDir,
      agent_socket: node.agentSocket,
    },
    env: { CNI_ARGS: (entry.cniArgs ?? []).map(([k, v]) => `${k}=${v}`).join(";") },
  });
}

/** Asserts the chaining contract on one recorded ADD and returns galactic's result. */
function expectChainedAdd(call: RecordedCall | undefined, what: string): Record<string, unknown> {
  assert.ok(call, `${what}: the runtime sent no ADD`);
  assert.equal(call.command, "ADD", `${what}: ${describeCall(call)}`);
  assert.equal(call.code, 0, `${what}: ADD failed: ${JSON.stringify(call.output)}`);
  const prev = call.config?.prevResult as
    | { interfaces: { name: string }[]; ips: unknown[] }
    | undefined;
  assert.ok(prev, `${what}: ADD came without loopback's prevResult`);
  assert.equal(prev.interfaces[0]?.name, "lo", `${what}: prevResult is not loopback's`);
  const result = call.output as { interfaces: unknown[]; ips: unknown[] };
  assert.deepEqual(
    result.interfaces.slice(0, prev.interfaces.length),
    prev.interfaces,
    `${what}: loopback's interfaces are not first in our result`,
  );
  assert.deepEqual(
    result.ips.slice(0, prev.ips.length),
    prev.ips,
    `${what}: loopback's ips are not first in our result`,
  );
  return call.output!;
}

/** The pod's interface has the MAC the runtime asked for, in the kernel and in our result. */
async function expectPodMac(result: Record<string, unknown>, sandbox: string): Promise<void> {
  const interfaces = result.interfaces as { name: string; mac?: string; sandbox?: string }[];
  const pod = interfaces.find((i) => i.name === IFNAME && i.sandbox);
  assert.equal(pod?.mac, POD_MAC, `our result's ${IFNAME}: ${JSON.stringify(pod)}`);
  const [link] = JSON.parse(
    await must(["nsenter", `--net=${sandbox}`, "ip", "-json", "link", "show", IFNAME]),
  ) as { address: string }[];
  assert.equal(link?.address, POD_MAC, `${IFNAME} in the pod`);
}

/** busybox ping from inside a runtime's netns, to both addresses of `to`. */
async function expectReach(
  sandbox: string,
  to: Pod,
  reach: boolean,
): Promise<string[]> {
  const from = (argv: readonly string[]) => run(["nsenter", `--net=${sandbox}`, ...argv]);
  const results = await Promise.all(
    [to.v4, to.v6].map(async (address) => ({ address, ok: await pings(from, address, reach) })),
  );
  const wrong = results.filter((r) => r.ok !== reach).map((r) => r.address);
  assert.deepEqual(wrong, [], `expected ${reach ? "replies" : "no reply"} from ${wrong}`);
  return results.map((r) => `${to.vpc}/${to.attachment} ${r.address}`);
}

/** Fabric routes for the runtime's pod, then reach to the VPC peer and not the other VPC. */
async function expectVpcIsolation(world: World, pod: Pod, sandbox: string): Promise<string> {
  const { same, other } = world.peers;
  world.installed = await reconcile(
    world.api,
    world.nodes,
    [same, other, pod],
    world.installed,
  );
  const [reached, isolated] = await Promise.all([
    expectReach(sandbox, same, true),
    expectReach(sandbox, other, false),
  ]);
  return `reaches ${reached.join(", ")} on node-2; not ${isolated.join(", ")}`;
}

/**
 * The control plane's answer to a DEL: withdraws the routes it installed
 * for the runtime's pod (those in the pod's VRF table that go through the
 * underlay outlive the VRF).
 */
async function withdraw(world: World): Promise<void> {
  const { same, other } = world.peers;
  world.installed = await reconcile(world.api, world.nodes, [same, other], world.installed);
}

/** Breaks the attachment (removes its SID route) and expects CHECK to report it. */
async function expectCheckCatchesMissingSid(
  world: World,
  check: () => ReturnType<typeof invoke>,
): Promise<string> {
  const [node] = world.nodes;
  const sids = await sidRoutes(node);
  assert.equal(sids.length, 1, `node-1 SID routes: ${JSON.stringify(sids)}`);
  const [[sid, table]] = sids as [[string, string]];
  await node.ns.ip("-6", "route", "del", sid, "table", table);
  const error = expectError(await check(), "CHECK after the SID route was deleted");
  assert.equal(error.code, 104, error.msg);
  assert.match(error.msg, new RegExp(`SRv6 ingress route ${sid}/128 is missing`));
  return `CHECK after deleting SID route ${sid}: code 104, "${error.msg}"`;
}

function verbsOf(calls: RecordedCall[]): string {
  return calls.map(describeCall).join(", ");
}

async function setUpWorld(): Promise<World & { made: Netns[] }> {
  const api = await ApiWorld.start({ agent: true });
  const scratch = await tempDir("grt");
  const made: Netns[] = [];
  const nodes = await createFabricNodes("grt", { count: 2, scratch, made });
  const [, n2] = nodes as [FabricNode, FabricNode];
  await buildUnderlay(nodes);
  for (const node of nodes) api.seedNode(node.name);
  await Promise.all(
    nodes.map((node) =>
      api.startAgent(node.name, node.agentSocket, { stateDir: node.stateDir, netns: node.ns })
    ),
  );

  const same: Pod = { id: "peer-ant", vpc: "Ant", attachment: "2", v4: "10.30.0.2", v6: "fd30::2" };
  const other: Pod = {
    id: "peer-bee",
    vpc: "Bee",
    attachment: "2",
    v4: "10.30.0.12",
    v6: "fd30::12",
  };
  await Promise.all([same, other].map(async (pod) => {
    const ns = await Netns.create(`grtp${pod.vpc.toLowerCase()}`);
    made.push(ns);
    const result = expectSuccess(
      await invoke({
        command: "ADD",
        node: n2.ns,
        pod: ns,
        containerId: pod.id,
        config: galacticConfig(n2, pod),
      }),
      `ADD ${pod.id}`,
    );
    pod.result = result;
  }));
  const rootfs = `${scratch}/rootfs`;
  await busyboxRootfs(rootfs, busybox!);
  await ensureCgroupMount();
  return {
    api,
    scratch,
    nodes: nodes as [FabricNode, FabricNode],
    peers: { same, other },
    rootfs,
    installed: new Map(),
    made,
  };
}

async function podmanDrives(world: World): Promise<void> {
  const [node] = world.nodes;
  const pod: Pod = { id: "", vpc: "Ant", attachment: "1", v4: "10.30.0.1", v6: "fd30::1" };
  const dir = `${world.scratch}/podman`;
  // Runtime config: the NAD's static addresses are .99; the runtime asks for the pod's own
  // (`--ip`/`--ip6`, which podman 4.3 sends as runtimeConfig.ips without a prefix length) and a
  // MAC (`--mac-address`, sent as CNI_ARGS MAC): the pod must get what the runtime asked for.
  const { conflist, nodeConfig } = await chainedConflist(node, pod, {
    addresses: ["10.30.0.99/24", "fd30::99/64"],
    capabilities: { ips: true, mac: true },
  });
  const requests = ["--ip", pod.v4, "--ip6", pod.v6, "--mac-address", POD_MAC];
  const network = conflist.name as string;
  const plugins = await RecordingPluginDir.create(`${dir}/cni`, { nodeConfig });
  const podman = await Podman.create(dir, { node: node.ns, pluginDir: plugins.dir });
  await podman.addNetwork(conflist);
  const baseline = await footprint(node);
  const name = "gpod";
  let removed = false;
  try {
    const id = await podman.run(name, { network, rootfs: world.rootfs, args: requests });
    const added = (await plugins.calls()).at(-1);
    const result = expectChainedAdd(added, "podman run");
    assert.equal(added!.containerId, id);
    assert.equal(added!.ifname, IFNAME);
    assert.equal(added!.args.K8S_POD_NAME, name);
    assert.deepEqual(
      (added!.config?.runtimeConfig as { ips?: string[] } | undefined)?.ips?.toSorted(),
      [pod.v4, pod.v6].toSorted(),
      `podman sent no runtimeConfig.ips: ${JSON.stringify(added!.config?.runtimeConfig)}`,
    );
    assert.equal(added!.args.MAC, POD_MAC, "podman sent no CNI_ARGS MAC");
    let view = await podman.inspect(name, network);
    await expectPodMac(result, view.sandbox);
    assert.deepEqual(
      [...view.addresses].sort(),
      [`${pod.v4}/24`, `${pod.v6}/64`].sort(),
      `podman inspect: ${view.addresses}`,
    );
    assert.deepEqual(
      podAddresses(result).sort(),
      view.addresses.map((a) => a.split("/")[0]).sort(),
      "podman reports addresses other than our result's",
    );
    assert.equal(added!.netns, view.sandbox);
    ledger.ran(
      `podman run: ADD with loopback's prevResult (CNI_ARGS ${
        JSON.stringify(added!.args)
      }, runtimeConfig ${
        JSON.stringify(added!.config?.runtimeConfig)
      }); our result keeps lo first; podman inspect shows ${
        view.addresses.join(", ")
      } (asked for, not the NAD's .99), ${IFNAME} has ${POD_MAC}`,
    );

    const podOnNode: Pod = { ...pod, id, result };
    ledger.ran(`podman pod ${await expectVpcIsolation(world, podOnNode, view.sandbox)}`);

    const check = async () =>
      checkFromCache(world, await cachedResult(network, id), {
        containerId: id,
        netns: view.sandbox,
      });
    expectSuccess(await check(), "CHECK with podman's cached result");
    ledger.ran(
      `CHECK with podman's cached result (${CNI_CACHE}/${network}-<id>-${IFNAME}): passes`,
    );

    await podman.must("stop", "-t", "0", name);
    const stopped = (await plugins.calls()).at(-1)!;
    assert.equal(stopped.command, "DEL", `podman stop sent ${describeCall(stopped)}`);
    assert.equal(stopped.code, 0, JSON.stringify(stopped.output));
    assert.ok(stopped.config?.prevResult, "podman stop: DEL without prevResult");
    await withdraw(world);
    await expectClean(world, baseline, "after podman stop");
    ledger.ran(`podman stop: ${describeCall(stopped)}; node-1 back to its baseline`);

    await podman.must("start", name);
    const restarted = (await plugins.calls()).at(-1);
    const again = expectChainedAdd(restarted, "podman start");
    view = await podman.inspect(name, network);
    assert.deepEqual(
      podAddresses(again).sort(),
      view.addresses.map((a) => a.split("/")[0]).sort(),
    );
    ledger.ran(`podman start: ADD again; podman inspect shows ${view.addresses.join(", ")}`);

    ledger.ran(await expectCheckCatchesMissingSid(world, check));

    await podman.must("rm", "-f", "-t", "0", name);
    removed = true;
    const calls = await plugins.calls();
    const last = calls.at(-1)!;
    assert.equal(last.command, "DEL", `podman rm sent ${describeCall(last)}`);
    assert.equal(last.code, 0, JSON.stringify(last.output));
    await expectClean(world, baseline, "after podman rm");
    assert.ok(!calls.some((c) => c.command === "CHECK"), "podman sent CHECK");
    const versions = (await plugins.calls({ all: true })).filter((c) => c.command === "VERSION");
    ledger.ran(
      `podman rm: DEL even with the SID route gone; node-1 clean. podman sent ${versions.length} VERSION and: ${
        verbsOf(calls)
      }`,
    );
  } finally {
    if (!removed) await podman.exec("rm", "-f", "-t", "0", name);
  }
}

async function containerdDrives(world: World): Promise<void> {
  const [node] = world.nodes;
  const pod: Pod = { id: "", vpc: "Ant", attachment: "3", v4: "10.30.0.3", v6: "fd30::3" };
  const dir = `${world.scratch}/containerd`;
  const { conflist, nodeConfig } = await chainedConflist(node, pod);
  const network = conflist.name as string;
  const plugins = await RecordingPluginDir.create(`${dir}/cni`, { nodeConfig });
  const networkDir = `${dir}/net.d`;
  await Deno.mkdir(networkDir, { recursive: true });
  await Deno.writeTextFile(`${networkDir}/10-${network}.conflist`, JSON.stringify(conflist));
  const podman = await Podman.create(`${world.scratch}/cimg`, {
    node: node.ns,
    pluginDir: plugins.dir,
  });
  const baseline = await footprint(node);
  const containerd = await Containerd.start(dir, {
    node: node.ns,
    pluginDir: plugins.dir,
    networkDir,
    deadlineMs: IN_LAB_VM ? 600_000 : 120_000,
  });
  try {
    await containerd.importSandboxImage(podman, world.rootfs);
    const name = "gcri";
    const id = await containerd.runPod(name);
    const added = (await plugins.calls()).at(-1);
    const result = expectChainedAdd(added, "RunPodSandbox");
    const status = await containerd.status(id);
    assert.equal(status.state, "SANDBOX_READY");
    assert.equal(added!.containerId, id);
    assert.equal(added!.netns, status.netns);
    assert.equal(added!.args.K8S_POD_NAME, name);
    assert.equal(added!.args.K8S_POD_NAMESPACE, "default");
    assert.deepEqual([...status.ips].sort(), [pod.v4, pod.v6].sort(), `CRI IPs ${status.ips}`);
    assert.deepEqual([...status.ips].sort(), podAddresses(result).sort());
    ledger.ran(
      `RunPodSandbox: ADD with loopback's prevResult (CNI_ARGS ${
        JSON.stringify(added!.args)
      }); our result keeps lo first; PodSandboxStatus IPs ${status.ips.join(", ")}`,
    );

    const podOnNode: Pod = { ...pod, id, result };
    ledger.ran(`CRI pod ${await expectVpcIsolation(world, podOnNode, status.netns)}`);

    const check = async () =>
      checkFromCache(world, await cachedResult(network, id), {
        containerId: id,
        netns: status.netns,
      });
    expectSuccess(await check(), "CHECK with containerd's cached result");
    ledger.ran(`CHECK with containerd's cached result: passes`);
    ledger.ran(await expectCheckCatchesMissingSid(world, check));

    await containerd.stopPod(id);
    const stopped = (await plugins.calls()).at(-1)!;
    assert.equal(stopped.command, "DEL", `StopPodSandbox sent ${describeCall(stopped)}`);
    assert.equal(stopped.code, 0, JSON.stringify(stopped.output));
    assert.equal(stopped.netns, status.netns);
    assert.ok(stopped.config?.prevResult, "StopPodSandbox: DEL without prevResult");
    await withdraw(world);
    await expectClean(world, baseline, "after StopPodSandbox");
    ledger.ran(`StopPodSandbox: ${describeCall(stopped)}; node-1 back to its baseline`);

    await containerd.removePod(id);
    const calls = await plugins.calls();
    const removed = calls.at(-1)!;
    assert.notEqual(removed, stopped);
    assert.equal(removed.command, "DEL", `RemovePodSandbox sent ${describeCall(removed)}`);
    assert.equal(removed.netns, "", "RemovePodSandbox: DEL with a netns");
    assert.equal(removed.config?.prevResult, undefined, "RemovePodSandbox: DEL with prevResult");
    assert.equal(removed.code, 0, JSON.stringify(removed.output));
    await expectClean(world, baseline, "after RemovePodSandbox");
    assert.ok(!calls.some((c) => c.command === "CHECK"), "containerd sent CHECK");
    ledger.ran(
      `RemovePodSandbox: second ${describeCall(removed)}; node-1 clean. containerd sent: ${
        verbsOf(calls)
      }`,
    );
  } finally {
    await containerd.close();
  }
}

Deno.test({
  name: "real runtimes: podman (CNI) and containerd (CRI) run pods on a galactic network " +
    "(needs VRF, busybox-static, podman, containerd, runc)",
  ignore: podmanSkip !== null && containerdSkip !== null,
  // The in-process node agents keep watch connections until closed in finally.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const world = await setUpWorld();
    try {
      ledger.ran(
        "fabric: node-1 (runtimes) and node-2 (peers Ant/2 and Bee/2, ADD by the plugin) over SRv6",
      );
      await t.step({
        name: `podman 4.3, CNI backend${podmanSkip ? ` (skipped: ${podmanSkip})` : ""}`,
        ignore: podmanSkip !== null,
        fn: () => podmanDrives(world),
      });
      await t.step({
        name: `containerd 1.6, CRI${containerdSkip ? ` (skipped: ${containerdSkip})` : ""}`,
        ignore: containerdSkip !== null,
        fn: () => containerdDrives(world),
      });
    } finally {
      await world.api.close();
      for (const ns of world.made) await ns.delete();
      await must(["rm", "-rf", world.scratch]).catch(() => {});
    }
  },
});
