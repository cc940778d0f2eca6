/**
 * An SRv6 fabric of "node" netns for the multi-node suites: an IPv6 underlay
 * of veth links between the nodes, and the routes the BGP control plane would
 * install, derived from what the plugin produced (never typed in): the
 * BGPVRFInstances' route targets group the VPCs, each node's attachment
 * records give the VRF tables, the pods' ADD results give their addresses,
 * and each SID is computed from the node's locator with lib/ids and checked
 * against the End.DT46 route the plugin installed.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  interfaceNames,
  LABELS,
  parseAttachment,
  parsePrefix,
  srv6Endpoint,
  vpcFromValue,
} from "../../../lib/ids/mod.ts";
import type { ApiWorld } from "./api.ts";
import { records } from "./cni.ts";
import type { CommandOutput } from "../../../lib/iproute2/runner.ts";
import { Netns, run } from "./kernel.ts";

/** A node: its netns, locator, underlay links and plugin state. */
export interface FabricNode {
  readonly index: number;
  readonly name: string;
  readonly ns: Netns;
  readonly locator: string;
  readonly stateDir: string;
  readonly agentSocket: string;
}

/**
 * `count` nodes `node-1`… in netns `<prefix><i>n`, locator `fc00:0:<i>::/48`,
 * state and agent socket under `scratch`. Each netns is pushed onto `made`
 * as soon as it exists, so the caller's cleanup reaches it if a later one
 * fails.
 */
export async function createFabricNodes(
  prefix: string,
  options: { count: number; scratch: string; made: Netns[] },
): Promise<FabricNode[]> {
  const nodes: FabricNode[] = [];
  for (let index = 1; index <= options.count; index++) {
    const ns = await Netns.create(`${prefix}${index}n`);
    options.made.push(ns);
    nodes.push({
      index,
      name: `node-${index}`,
      ns,
      locator: `fc00:0:${index}::/48`,
      stateDir: `${options.scratch}/state-${index}`,
      agentSocket: `${options.scratch}/agent-${index}.sock`,
    });
  }
  return nodes;
}

/** A pod attached on a node: its CNI_CONTAINERID and (once attached) its ADD result. */
export interface FabricPod {
  readonly id: string;
  result?: Record<string, unknown>;
}

/** One advertised route: what a node's BGP speaker would send for a local attachment. */
interface Advertisement {
  readonly node: FabricNode;
  readonly routeTarget: string;
  readonly sid: string;
  readonly prefixes: string[];
}

/**
 * The pod addresses of a CNI result, without prefix length. A chained
 * result may carry loopback's entries (127.0.0.1, ::1): never advertised.
 */
export function podAddresses(result: Record<string, unknown>): string[] {
  return ((result.ips ?? []) as { address: string }[])
    .map((ip) => ip.address.split("/")[0]!)
    .filter((address) => !address.startsWith("127.") && address !== "::1");
}

/** busybox (static: it runs in any rootfs), or undefined when not installed. */
export async function findBusybox(): Promise<string | undefined> {
  for (const path of ["/bin/busybox", "/usr/bin/busybox"]) {
    if ((await run([path, "true"])).code === 0) return path;
  }
  return undefined;
}

/** Underlay: the address of node `to` on the link between `from` and `to`. */
export function underlayAddress(from: number, to: number): string {
  const [lo, hi] = from < to ? [from, to] : [to, from];
  return `fd00:0:${lo}${hi}::${to}`;
}

/**
 * Node set-up the plugin does not do. Of the global switches, only
 * `net.ipv6.conf.all.forwarding=1` is indispensable (the encapsulated packet
 * is forwarded by the IPv6 stack, which checks the global flag; without it
 * nothing crosses, IPv4 or IPv6); IPv4 forwarding is enabled per interface
 * by the plugin, and End.DT46 decapsulates without `seg6_enabled`, which is
 * set as a real SRv6 node would have it.
 */
export async function buildUnderlay(nodes: readonly FabricNode[]): Promise<void> {
  for (const node of nodes) {
    await node.ns.setSysctl({
      "net.ipv4.ip_forward": "1",
      "net.ipv6.conf.all.forwarding": "1",
      "net.ipv6.conf.all.seg6_enabled": "1",
    });
    await node.ns.ip("addr", "add", `fd00:ff::${node.index}/128`, "dev", "lo");
    await node.ns.ip("sr", "tunsrc", "set", `fd00:ff::${node.index}`);
  }
  for (const a of nodes) {
    for (const b of nodes) {
      if (a.index >= b.index) continue;
      await a.ns.ip(
        ...["link", "add", `ul${b.index}`, "type", "veth", "peer", "name", `ul${a.index}`],
        ...["netns", b.ns.name],
      );
    }
  }
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      const link = `ul${b.index}`;
      await a.ns.ip("link", "set", link, "up");
      await a.ns.ip("addr", "add", `${underlayAddress(b.index, a.index)}/64`, "dev", link, "nodad");
      await a.ns.setSysctl({ [`net.ipv6.conf.${link}.seg6_enabled`]: "1" });
    }
  }
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      const via = underlayAddress(a.index, b.index);
      await a.ns.ip("-6", "route", "add", b.locator, "via", via, "dev", `ul${b.index}`);
      await a.ns.ip(
        "-6",
        "route",
        "add",
        `fd00:ff::${b.index}/128`,
        "via",
        via,
        "dev",
        `ul${b.index}`,
      );
    }
  }
}

/**
 * The BGP control plane, emulated: advertises every local attachment of each
 * (VPC, node) BGPVRFInstance with the object's export route target, and
 * imports into each VRF the other nodes' advertisements whose route target
 * the VRF's object imports. Returns the routes it installed, by node and
 * table; `installed` from a previous round is withdrawn where no longer
 * wanted.
 */
export async function reconcile(
  api: ApiWorld,
  nodes: readonly FabricNode[],
  pods: readonly FabricPod[],
  installed: Map<string, string[]>,
): Promise<Map<string, string[]>> {
  const objects = api.server.objects("bgpvrfinstances");
  const advertisements: Advertisement[] = [];
  // Local VRFs per node: record → (table, names, import RTs).
  const vrfs: { node: FabricNode; table: number; vrf: string; host: string; imports: string[] }[] =
    [];
  for (const node of nodes) {
    // A record a DEL is removing (its SID gone, withdrawn; the node agent
    // removes the rest) is advertised no more.
    const local = Object.values(await records(node.stateDir)).filter((r) => r.phase !== "removing");
    for (const object of objects) {
      const labels = object.metadata.labels ?? {};
      if (labels[LABELS.node] !== node.name) continue;
      const vpc = vpcFromValue(BigInt(`0x${labels[LABELS.vpc]}`));
      const exports = (object.spec.exportRouteTargets as { value: string }[]).map((t) => t.value);
      const imports = (object.spec.importRouteTargets as { value: string }[]).map((t) => t.value);
      for (const record of local.filter((r) => r.vpcHex === vpc.hex)) {
        const attachment = parseAttachment(record.attachment as string);
        const sid = srv6Endpoint(parsePrefix(node.locator)!, { vpc, attachment });
        const table = record.table as number;
        // The SID advertised must be the one the plugin installed.
        const [route] = await node.ns.ipJson<{ action?: string; vrftable?: string }[]>(
          "-6",
          "-d",
          "route",
          "show",
          `${sid}/128`,
        );
        assert.equal(route?.action, "End.DT46", `${node.name}: no End.DT46 at ${sid}`);
        assert.equal(Number(route?.vrftable), table, `${node.name}: ${sid} decapsulates elsewhere`);
        const pod = pods.find((p) => p.result && p.id === record.containerId);
        assert.ok(pod, `${node.name}: record of unknown container ${record.containerId}`);
        const prefixes = podAddresses(pod.result!).map((address) =>
          `${address}/${address.includes(":") ? 128 : 32}`
        );
        for (const rt of exports) advertisements.push({ node, routeTarget: rt, sid, prefixes });
        const names = interfaceNames(vpc, attachment);
        vrfs.push({ node, table, vrf: names.vrf, host: names.host, imports });
      }
    }
  }

  const wanted = new Map<string, string[]>();
  for (const vrf of vrfs) {
    const key = `${vrf.node.name}/${vrf.table}`;
    const lines: string[] = [];
    for (const adv of advertisements) {
      if (adv.node === vrf.node || !vrf.imports.includes(adv.routeTarget)) continue;
      const link = `ul${adv.node.index}`;
      // The outer lookup of a packet encapsulated on its way out of a VRF
      // happens in the VRF's table on this kernel (6.1), where the plugin's
      // unreachable ::/0 would drop it: the SID is leaked into the table,
      // through the underlay.
      lines.push(
        `-6 route replace ${adv.sid}/128 via ${
          underlayAddress(vrf.node.index, adv.node.index)
        } dev ${link} table ${vrf.table}`,
      );
      for (const prefix of adv.prefixes) {
        const family = prefix.includes(":") ? "-6" : "-4";
        lines.push(
          `${family} route replace ${prefix} encap seg6 mode encap segs ${adv.sid} dev ${vrf.vrf} table ${vrf.table}`,
        );
        // IPv6 pods resolve their peers by NDP: the host end answers for them.
        if (family === "-6") {
          lines.push(`-6 neigh replace proxy ${prefix.split("/")[0]} dev ${vrf.host}`);
        }
      }
    }
    wanted.set(key, lines);
  }
  for (const [key, lines] of installed) {
    const [nodeName] = key.split("/");
    const node = nodes.find((n) => n.name === nodeName)!;
    const keep = new Set(wanted.get(key) ?? []);
    for (const line of lines) {
      if (keep.has(line)) continue;
      const argv = line.split(" ");
      const del = argv.map((word) => (word === "replace" ? "del" : word));
      // A withdrawn route's VRF may be gone already (its table with it).
      await run(["ip", "-n", node.ns.name, ...del]);
    }
  }
  for (const [key, lines] of wanted) {
    const [nodeName] = key.split("/");
    const node = nodes.find((n) => n.name === nodeName)!;
    for (const line of lines) await node.ns.ip(...line.split(" "));
  }
  return wanted;
}

/**
 * True when busybox ping, run through `exec` (inside the sender's netns),
 * gets at least one echo reply from `to`. A path expected to work gets a
 * second, longer try (a loaded VM can lose the first ARP/NDP exchange); a
 * broken path fails both.
 */
export async function pings(
  exec: (argv: readonly string[]) => Promise<CommandOutput>,
  to: string,
  expected: boolean,
): Promise<boolean> {
  const busybox = await findBusybox();
  assert.ok(busybox, "no busybox (apt-get install busybox-static)");
  const family = to.includes(":") ? ["-6"] : [];
  for (const count of expected ? ["3", "6"] : ["3"]) {
    const out = await exec([busybox, "ping", ...family, "-c", count, "-W", "2", to]);
    if (out.code === 0) return true;
  }
  return false;
}
