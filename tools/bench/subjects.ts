/**
 * How each subject is exec'd, the way a container runtime does: CNI
 * environment, config on stdin, nothing inherited.
 *
 * - `go`: Debian's Go host-device + static moving a veth end (created and
 *   deleted untimed around the pair) into the pod netns — the runtime's floor.
 * - `floor`: the minimal Deno plugin (floor_plugin.ts: veth + host-device) on
 *   bin/galactic's Deno binary and flags — this runtime's floor.
 * - `agent` / `no-agent`: bin/galactic with and without the node agent, each
 *   with its own VPC, state dir and fake API server so counts never mix.
 * - `compare`: another checkout's bin/galactic through the same agent, with
 *   its own VPC and state dir (A/B of a change, interleaved).
 *
 * A DEL is over for the bench when the node is clean: a galactic DEL may
 * leave its veth and VRF to the node agent (the agent subject's state dir is
 * the agent's), so after the timed exec the bench waits, untimed, until the
 * subject's record is gone, then checks that its links are, and reads the
 * agent's CPU time spent from the DEL's exec to there.
 *
 * @module
 */

import type { FakeApiServer } from "../../tests/support/fake_api_server.ts";
import { interfaceNames, parseAttachment, parseVpc } from "../../lib/ids/mod.ts";
import { runChecked, systemRunner } from "../../lib/iproute2/runner.ts";
import { AttachmentStore } from "../../lib/state/attachments.ts";
import { type Shim, type ShimCost, shimMs, takeCalls } from "./ip_shim.ts";
import type { Mode, Subject } from "./results.ts";
import { type Timed, timedExec } from "./timed_exec.ts";

export const NODE_NAME = "bench-node";
export const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/** Generous, so a slow (TCG) machine measures time, not timeouts. */
export const API_TIMEOUT_SECONDS = 60;
const CNI_PATH = "/usr/lib/cni";
const IPAM = {
  type: "static",
  addresses: [{ address: "10.1.0.2/24" }],
  routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
};
const VPC: Record<Mode | "compare", string> = { "no-agent": "b1", agent: "b2", compare: "b3" };
const ATTACHMENT = "1";
/** Longest wait for the agent to finish a DEL's removal (TCG in the lab is slow). */
const REMOVAL_BOUND_MS = 60_000;
/** The veth the Go subject hands over, and the one the minimal Deno plugin creates. */
const VETH = { go: ["gbgoH", "gbgoG"], floor: ["gbflH", "gbflG"] } as const;

/** bin/galactic's `deno run` flags (a test keeps them in step with the launcher). */
export function floorArgv(repo: string): string[] {
  return [`${repo}/node_modules/.bin/deno`, "run", "--quiet", "--cached-only", "--no-prompt"]
    .concat(["--allow-run", "--allow-read", "--allow-write", "--allow-env", "--allow-net"])
    .concat(["--allow-sys", "--config", `${repo}/deno.json`])
    .concat([`${repo}/tools/bench/floor_plugin.ts`]);
}

/** One invocation's inputs. */
export interface Call {
  /** Pod netns name. */
  readonly pod: string;
  readonly cid: string;
  /** The ADD result, passed to DEL as a runtime does. */
  readonly prevResult?: unknown;
  readonly rssFile?: string;
  readonly straceFile?: string;
  /** Extra galactic config fields (the profile's debug level). */
  readonly extra?: Record<string, unknown>;
  /** Extra node configuration fields (the profile's log file). */
  readonly nodeExtra?: Record<string, unknown>;
}

/** One finished invocation. */
export interface Invocation {
  readonly out: Timed;
  readonly ok: boolean;
  readonly result?: unknown;
  /** Requests its API server saw meanwhile. */
  readonly api: number;
  /** Requests the agent mode's fallback server saw (must stay 0). */
  readonly fallback: number;
  /** Host mode: what the VRF substitute added, ms. */
  readonly shimMs: number;
  /** Host mode: the CPU time the VRF substitute added, ms. */
  readonly shimCpuMs: number;
  /**
   * Subjects through the agent: its CPU time from the exec until the
   * invocation was done (a DEL: until its removal finished), ms.
   */
  readonly agentCpuMs?: number;
  /** A galactic DEL: from its exit until its record was gone (the agent's share), ms. */
  readonly removalMs?: number;
  /** A galactic DEL that left the node unclean: what remained. */
  readonly unclean?: string;
}

/** The running agent, as far as an invocation needs it. */
export interface NodeAgent {
  /** Its CPU time so far (with its children's), ms. */
  cpuMs(): Promise<number | undefined>;
}

/** The node the worker measures on: its API servers, the agent socket, the substitute. */
export interface Node {
  readonly repo: string;
  readonly tmp: string;
  /** One fake API server per mode, plus the one the agent-mode plugin would fall back to. */
  readonly servers: Record<Mode | "fallback", FakeApiServer>;
  readonly kubeconfigs: Record<Mode | "fallback", string>;
  /** The other checkout of `--compare`. */
  readonly compare?: string;
  /** Host mode only. */
  readonly shim?: Shim;
  shimCost?: ShimCost;
  shimCpuCost?: ShimCost;
  /** The node agent, once started. */
  agent?: NodeAgent;
}

/** A galactic subject's state dir (the agent subject's is the agent's `--state-dir`). */
export function stateDir(node: Pick<Node, "tmp">, subject: Mode | "compare"): string {
  return `${node.tmp}/state-${subject}`;
}

const runner = systemRunner();

function galacticConfig(subject: Mode | "compare", call: Call): Record<string, unknown> {
  return {
    cniVersion: "1.0.0",
    name: "bench",
    type: "galactic",
    vpc: VPC[subject],
    vpcattachment: ATTACHMENT,
    srv6_locator: "fc00:0:1::/48",
    mtu: 1400,
    terminations: [{ network: "10.20.0.0/16", via: "10.1.0.2" }, { network: "2001:db8:20::/48" }],
    ipam: IPAM,
    api_timeout_seconds: API_TIMEOUT_SECONDS,
    ...call.extra,
  };
}

/** The node's settings of one galactic call (the node configuration). */
function nodeSettings(node: Node, subject: Mode | "compare", call: Call): Record<string, unknown> {
  const mode = subject === "compare" ? "agent" : subject;
  return {
    // Agent mode: the kubeconfig is the fallback server's, which must see no request.
    kubeconfig: node.kubeconfigs[mode === "agent" ? "fallback" : "no-agent"],
    node_name: NODE_NAME,
    state_dir: stateDir(node, subject),
    agent_socket: `${node.tmp}/${mode === "agent" ? "agent" : "absent"}.sock`,
    ...call.nodeExtra,
  };
}

/**
 * Writes the node configuration of one galactic call, which the plugin finds
 * through `GALACTIC_NODE_CONFIG`. `compare` may be a checkout from before node
 * configurations: it also gets the settings in its network configuration,
 * which this one then allows.
 */
async function nodeConfigFile(
  node: Node,
  subject: Mode | "compare",
  call: Call,
): Promise<string> {
  const settings = {
    ...nodeSettings(node, subject, call),
    ...(subject === "compare" && { allow_config_overrides: true }),
  };
  const path = `${node.tmp}/node-${subject}-${crypto.randomUUID()}.json`;
  await Deno.writeTextFile(path, JSON.stringify(settings), { mode: 0o644 });
  return path;
}

function subjectConfig(node: Node, subject: Subject, call: Call): Record<string, unknown> {
  const base = { cniVersion: "1.0.0", name: "bench", ipam: IPAM };
  const config = subject === "go"
    ? { ...base, type: "host-device", device: VETH.go[1] }
    : subject === "floor"
    ? { ...base, type: "floor", host: VETH.floor[0], guest: VETH.floor[1] }
    : subject === "compare"
    ? { ...galacticConfig(subject, call), ...nodeSettings(node, subject, call) }
    : galacticConfig(subject, call);
  return { ...config, ...(call.prevResult !== undefined && { prevResult: call.prevResult }) };
}

/** Untimed set-up before a subject's ADD: the veth the Go host-device hands over. */
export async function beforePair(subject: Subject): Promise<void> {
  if (subject !== "go") return;
  await runner.run(["ip", "link", "del", VETH.go[0]]);
  await runChecked(runner, ["ip", "link", "add", VETH.go[0], "type", "veth", "peer", VETH.go[1]]);
}

/** Untimed clean-up after a subject's DEL (also after a failure). */
export async function afterPair(subject: Subject): Promise<void> {
  if (subject === "go" || subject === "floor") {
    await runner.run(["ip", "link", "del", VETH[subject][0]]);
  }
}

/** Execs `subject`'s `verb` and measures it. */
export async function invoke(
  node: Node,
  subject: Subject,
  verb: "ADD" | "DEL",
  call: Call,
): Promise<Invocation> {
  const galactic = subject !== "go" && subject !== "floor";
  const argv = subject === "go"
    ? [`${CNI_PATH}/host-device`]
    : subject === "floor"
    ? floorArgv(node.repo)
    : [`${subject === "compare" ? node.compare : node.repo}/bin/galactic`];
  const env = {
    PATH: galactic && node.shim ? `${node.shim.dir}:${PATH}` : PATH,
    CNI_COMMAND: verb,
    CNI_CONTAINERID: call.cid,
    CNI_NETNS: `/run/netns/${call.pod}`,
    CNI_IFNAME: "net1",
    CNI_PATH,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${call.pod}`,
  };
  const nodeConfig = galactic ? await nodeConfigFile(node, subject, call) : undefined;
  const server = galactic ? node.servers[subject === "compare" ? "agent" : subject] : undefined;
  const agent = subject === "agent" || subject === "compare" ? node.agent : undefined;
  const agentMark = await agent?.cpuMs();
  const mark = server?.requests.length ?? 0;
  const fallbackMark = node.servers.fallback.requests.length;
  const out = await timedExec(argv, {
    env: { ...env, ...(nodeConfig !== undefined && { GALACTIC_NODE_CONFIG: nodeConfig }) },
    stdin: JSON.stringify(subjectConfig(node, subject, call)),
    ...(call.rssFile && { rssFile: call.rssFile }),
    ...(call.straceFile && { straceFile: call.straceFile }),
  }).finally(() => nodeConfig !== undefined && Deno.remove(nodeConfig).catch(() => {}));
  let result: unknown;
  try {
    result = JSON.parse(out.stdout);
  } catch { /* no result */ }
  const exited = out.startedAt - performance.timeOrigin + out.ms;
  const deleted = subject !== "go" && subject !== "floor" && verb === "DEL" && out.code === 0
    ? subject
    : undefined;
  const done = deleted && await removalDone(node, deleted, { cid: call.cid, exited });
  const agentNow = agentMark === undefined ? undefined : await agent?.cpuMs();
  const unclean = deleted && done && (done.unclean ?? await leftLinks(deleted));
  const calls = node.shim ? await takeCalls(node.shim) : undefined;
  return {
    out,
    ok: out.code === 0,
    result,
    api: (server?.requests.length ?? 0) - mark,
    fallback: node.servers.fallback.requests.length - fallbackMark,
    shimMs: calls && node.shimCost && galactic ? shimMs(calls, node.shimCost) : 0,
    shimCpuMs: calls && node.shimCpuCost && galactic ? shimMs(calls, node.shimCpuCost) : 0,
    ...(agentNow !== undefined && { agentCpuMs: agentNow - agentMark! }),
    ...(done && { removalMs: done.ms }),
    ...(unclean && { unclean }),
  };
}

/**
 * Waits (bounded) until no record of `cid` is left in `subject`'s state dir:
 * the DEL's removal is finished, by the DEL itself or by the agent. Returns
 * the wait from the DEL's exit, ms, and what is wrong if it never ended.
 */
async function removalDone(
  node: Node,
  subject: Mode | "compare",
  del: { cid: string; exited: number },
): Promise<{ ms: number; unclean?: string }> {
  const store = new AttachmentStore(stateDir(node, subject));
  for (;;) {
    const records = await store.read();
    const ms = performance.now() - del.exited;
    if (!Object.values(records).some((r) => r.containerId === del.cid)) return { ms };
    if (ms > REMOVAL_BOUND_MS) {
      return { ms, unclean: `its record still there ${REMOVAL_BOUND_MS / 1000} s after the DEL` };
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** The subject's host-side links still on the node after its removal, as text; else undefined. */
async function leftLinks(subject: Mode | "compare"): Promise<string | undefined> {
  const names = interfaceNames(parseVpc(VPC[subject]), parseAttachment(ATTACHMENT));
  const out = await runChecked(runner, ["ip", "-j", "link", "show"]);
  const present = new Set((JSON.parse(out) as { ifname: string }[]).map((l) => l.ifname));
  const left = [names.vrf, names.host].filter((name) => present.has(name));
  return left.length > 0 ? `links left after the removal: ${left.join(", ")}` : undefined;
}
