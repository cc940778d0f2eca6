/**
 * A node for verb tests: the fake host (fake `ip`, `sysctl`, `iptables`,
 * `host-device`), the fake API server seeded with this node's BGPProvider and
 * BGPInstance, a kubeconfig, a state dir, the node configuration naming them
 * (`node.json`, passed through `GALACTIC_NODE_CONFIG` as a lab would), and
 * two ways to call the plugin:
 * {@linkcode cni} execs `bin/galactic` the way a CNI runtime does;
 * {@linkcode cniInProcess} runs the same dispatcher in this process with the
 * fake host's runner (no Deno start per call, the real Kubernetes client over
 * HTTP).
 *
 * @module
 */

import assert from "node:assert/strict";
import { createFakeHost, type FakeHost } from "./fake_host/mod.ts";
import { FakeApiServer, type FakeApiServerOptions } from "./fake_api_server.ts";
import { seedNode } from "./kube_fixtures.ts";
import { runInvocation } from "../../lib/plugin/invocation.ts";
import type { CommandRunner } from "../../lib/iproute2/runner.ts";

/** The plugin launcher. */
export const LAUNCHER = new URL("../../bin/galactic", import.meta.url).pathname;
export const NODE = "node-a";
export const VRF = "G0000000jU00GV";
export const HOST_END = "G0000000jU00GH";
export const GUEST_END = "G0000000jU00GG";
// jU = 45*62 + 30 = 2820; G = 16; SID = locator's first 64 bits + (2820 << 16 | 16).
export const SID = "fc00:0:1::b04:10";
export const RD = "65000:2820";

/** A test node. */
export interface World extends AsyncDisposable {
  host: FakeHost;
  api: FakeApiServer;
  dir: string;
  kubeconfig: string;
  /** The node configuration file (state dir, agent socket, kubeconfig, node name). */
  nodeConfig: string;
  config(overrides?: Record<string, unknown>): Record<string, unknown>;
}

/** Creates a test node. */
export async function world(options: FakeApiServerOptions = {}): Promise<World> {
  const host = await createFakeHost();
  const api = new FakeApiServer(options);
  seedNode(api, NODE);
  const dir = await Deno.makeTempDir({ prefix: "galactic-e2e-" });
  const kubeconfig = await api.writeKubeconfig(dir);
  const nodeConfig = `${dir}/node.json`;
  await Deno.writeTextFile(
    nodeConfig,
    JSON.stringify({
      kubeconfig,
      node_name: NODE,
      state_dir: `${dir}/state`,
      agent_socket: `${dir}/agent.sock`,
    }),
    { mode: 0o644 },
  );
  return {
    host,
    api,
    dir,
    kubeconfig,
    nodeConfig,
    config: (overrides = {}) => ({
      cniVersion: "1.1.0",
      name: "tenant-a",
      type: "galactic",
      vpc: "jU",
      vpcattachment: "G",
      srv6_locator: "fc00:0:1::/48",
      mtu: 1400,
      terminations: [
        { network: "10.20.0.0/16", via: "10.1.0.2" },
        { network: "10.30.0.7/32" },
        { network: "2001:db8:20::/48" },
      ],
      ipam: {
        type: "static",
        addresses: [{ address: "10.1.0.2/24" }, { address: "2001:db8:1::2/64" }],
        routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
      },
      api_timeout_seconds: 3,
      log_level: "debug",
      ...overrides,
    }),
    async [Symbol.asyncDispose](): Promise<void> {
      await api.close();
      await host.cleanup();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** One plugin call. */
export interface Invocation {
  containerId?: string;
  ifname?: string;
  netns?: string;
  config: Record<string, unknown>;
  env?: Record<string, string>;
}

/** What the plugin printed and returned. */
export interface Outcome {
  code: number;
  json: Record<string, unknown> | undefined;
  stdout: string;
  stderr: string;
}

async function runtimeEnv(
  w: World,
  command: string,
  call: Invocation,
): Promise<Record<string, string>> {
  return {
    ...w.host.env,
    HOME: Deno.env.get("HOME") ?? "/root",
    CNI_COMMAND: command,
    CNI_CONTAINERID: call.containerId ?? "c1",
    CNI_NETNS: call.netns ?? await w.host.netns(call.containerId ?? "c1"),
    CNI_IFNAME: call.ifname ?? "net1",
    CNI_PATH: w.host.cniDir,
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod-a",
    GALACTIC_NODE_CONFIG: w.nodeConfig,
    ...call.env,
  };
}

function outcome(code: number, stdout: string, stderr: string): Outcome {
  return {
    code,
    stdout,
    stderr,
    json: stdout.trim() === "" ? undefined : JSON.parse(stdout),
  };
}

/**
 * Execs the plugin like a runtime; `via` is a command line the launcher is
 * appended to (e.g. `nsenter -t PID -m --` to run it in a mount namespace).
 */
export async function cni(
  w: World,
  command: string,
  call: Invocation,
  via: readonly string[] = [],
): Promise<Outcome> {
  const [program = LAUNCHER, ...args] = [...via, LAUNCHER];
  const child = new Deno.Command(program, {
    args,
    clearEnv: true,
    env: await runtimeEnv(w, command, call),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(JSON.stringify(call.config)));
  await writer.close();
  const out = await child.output();
  const decoder = new TextDecoder();
  return outcome(out.code, decoder.decode(out.stdout), decoder.decode(out.stderr));
}

/**
 * Runs the plugin's dispatcher in this process, commands going to the fake
 * host's runner (or to `runner`, e.g. one wrapping it).
 */
export async function cniInProcess(
  w: World,
  command: string,
  call: Invocation,
  runner: CommandRunner = w.host.runner(),
): Promise<Outcome> {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const code = await runInvocation({
    env: await runtimeEnv(w, command, call),
    readStdin: () => Promise.resolve(new TextEncoder().encode(JSON.stringify(call.config))),
    writeStdout: (text) => stdout.push(text),
    writeStderr: (text) => stderr.push(text),
  }, { runner });
  return outcome(code, stdout.join(""), stderr.join(""));
}

/** Asserts success and returns the outcome. */
export function ok(outcome: Outcome, what: string): Outcome {
  assert.equal(outcome.code, 0, `${what} failed: ${outcome.stdout}\n${outcome.stderr}`);
  return outcome;
}

/** Everything of ours left on the fake host and in the API, for "nothing left behind". */
export async function leftovers(w: World): Promise<string[]> {
  const kernel = await w.host.kernel();
  const found: string[] = [];
  for (const link of kernel.links) {
    if (/^G[0-9A-Za-z]{12}[VHG]$/.test(link.name)) found.push(`link ${link.name}`);
  }
  for (const route of kernel.routes) {
    if (route.table >= 1000 && route.table < 1_000_000 && route.protocol !== "kernel") {
      found.push(`route ${route.dst} table ${route.table}`);
    }
    if (route.encap) found.push(`seg6local ${route.dst}`);
  }
  for (const rule of [...kernel.rules.iptables, ...kernel.rules.ip6tables]) {
    if (rule.includes("-o G")) found.push(`rule ${rule}`);
  }
  for (const key of Object.keys(kernel.sysctls)) {
    if (/\.G[0-9A-Za-z]{12}[VH]\./.test(key)) found.push(`sysctl ${key}`);
  }
  for (const o of w.api.objects("bgpvrfinstances")) found.push(`object ${o.metadata.name}`);
  try {
    const state = JSON.parse(await Deno.readTextFile(`${w.dir}/state/attachments.json`));
    for (const key of Object.keys(state.attachments)) found.push(`record ${key}`);
  } catch { /* no state file */ }
  return found;
}
