/**
 * Running `bin/galactic` the way a CNI runtime does, but inside a "node"
 * netns: `ip netns exec <node> bin/galactic` with the CNI environment and the
 * network configuration on stdin, nothing else.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { CommandOutput } from "../../../lib/iproute2/runner.ts";
import { CNI_PATH, type Netns, REPO, run } from "./kernel.ts";

/** A CNI verb the suites run. */
export type Verb = "ADD" | "DEL" | "CHECK" | "STATUS" | "GC";

/** One plugin invocation. */
export interface Invocation {
  /** The verb. */
  readonly command: Verb;
  /** Node netns the plugin runs in (it acts on the netns it runs in). */
  readonly node: Netns;
  /** `CNI_CONTAINERID`. */
  readonly containerId: string;
  /** Pod netns (`CNI_NETNS`). */
  readonly pod?: Netns;
  /** `CNI_NETNS` of a netns the suite did not create (a runtime's); overrides `pod`. */
  readonly netns?: string;
  /** `CNI_IFNAME` (default net1). */
  readonly ifname?: string;
  /** Network configuration (stdin). */
  readonly config: Record<string, unknown>;
  /** Environment overrides (e.g. PATH and CNI_PATH with wrapped programs first). */
  readonly env?: Record<string, string>;
}

/** What the plugin returned. */
export interface Outcome extends CommandOutput {
  /** stdout parsed as JSON, when it is not empty. */
  readonly json?: Record<string, unknown>;
}

/** Environment every plugin process gets besides the CNI variables. */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  // DENO_DIR: the lab VM points it at an overlay of the host's cache.
  for (const name of ["PATH", "HOME", "DENO_DIR", "NO_COLOR"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Inside the lab's TCG VM (`tests/lab/run.sh` exports LAB_MODE=vm to the job). */
const IN_LAB_VM = Deno.env.get("LAB_MODE") === "vm";

/** The settings that belong to the node, not to the network configuration. */
const NODE_FIELDS = ["state_dir", "agent_socket", "kubeconfig", "node_name", "log_file"];

/**
 * The suites describe a node and an attachment in one object
 * ({@linkcode attachmentConfig}); as on a real node, the node's part goes to
 * the plugin as its node configuration (a file named by
 * `GALACTIC_NODE_CONFIG`, beside the state dir) and only the rest on stdin.
 */
export async function splitNodeConfig(
  config: Record<string, unknown>,
): Promise<{ network: Record<string, unknown>; nodeConfigPath: string }> {
  const network = { ...config };
  const node: Record<string, unknown> = {};
  for (const field of NODE_FIELDS) {
    if (network[field] === undefined) continue;
    node[field] = network[field];
    delete network[field];
  }
  assert.equal(typeof node.state_dir, "string", "the suites always name a state dir");
  const nodeConfigPath = `${node.state_dir}.node.json`;
  const temp = `${nodeConfigPath}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(temp, JSON.stringify(node), { mode: 0o644 });
  await Deno.rename(temp, nodeConfigPath);
  return { network, nodeConfigPath };
}

/** Runs bin/galactic once in the node netns. */
export async function invoke(call: Invocation): Promise<Outcome> {
  const { network, nodeConfigPath } = await splitNodeConfig(call.config);
  const env: Record<string, string> = {
    ...baseEnv(),
    CNI_COMMAND: call.command,
    CNI_CONTAINERID: call.containerId,
    CNI_NETNS: call.netns ?? call.pod?.path ?? "",
    CNI_IFNAME: call.ifname ?? "net1",
    CNI_PATH,
    CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=${call.containerId}`,
    GALACTIC_NODE_CONFIG: nodeConfigPath,
    ...call.env,
  };
  const started = performance.now();
  const output = await run(["ip", "netns", "exec", call.node.name, `${REPO}/bin/galactic`], {
    stdin: JSON.stringify(network),
    env,
    clearEnv: true,
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.error(
    `  galactic ${call.command} ${call.containerId}: exit ${output.code} in ${seconds} s`,
  );
  // At once, not only in the assertion that fails after every process is
  // done: a lab run of fifty processes takes many minutes to get there.
  if (output.code !== 0) {
    console.error(`    stdout: ${output.stdout.trim().slice(0, 600)}`);
    console.error(`    stderr (end): ${output.stderr.trim().slice(-1500)}`);
  }
  let json: Record<string, unknown> | undefined;
  if (output.stdout.trim() !== "") {
    try {
      json = JSON.parse(output.stdout);
    } catch (error) {
      assert.fail(
        `${call.command}: stdout is not one JSON document (${(error as Error).message}):\n` +
          `${output.stdout}\n--- stderr:\n${output.stderr}`,
      );
    }
  }
  return { ...output, ...(json && { json }) };
}

/** Asserts success (exit 0); ADD returns its result, the other verbs print nothing. */
export function expectSuccess(outcome: Outcome, what: string): Record<string, unknown> | undefined {
  assert.equal(
    outcome.code,
    0,
    `${what} failed: ${outcome.stdout.trim()}\n--- stderr:\n${outcome.stderr.trim()}`,
  );
  return outcome.json;
}

/** Asserts a CNI error document and returns it. */
export function expectError(outcome: Outcome, what: string): { code: number; msg: string } {
  assert.notEqual(outcome.code, 0, `${what} unexpectedly succeeded: ${outcome.stdout}`);
  const document = outcome.json;
  assert.ok(document, `${what}: no error document on stdout; stderr:\n${outcome.stderr}`);
  assert.equal(typeof document.code, "number", JSON.stringify(document));
  assert.equal(typeof document.msg, "string", JSON.stringify(document));
  return { code: document.code as number, msg: document.msg as string };
}

/** The attachment-specific part of a configuration. */
export interface AttachmentOptions {
  /** Network name. */
  readonly name?: string;
  /** VPC (base62). */
  readonly vpc: string;
  /** Attachment (base62). */
  readonly attachment: string;
  /** This node's SRv6 locator. */
  readonly locator: string;
  /** Node name (config field `node_name`). */
  readonly node: string;
  /** State directory. */
  readonly stateDir: string;
  /** Kubeconfig (direct API access) … */
  readonly kubeconfig?: string;
  /** … and/or the node agent's socket. */
  readonly agentSocket?: string;
  /** Pod addresses for the static IPAM. */
  readonly addresses?: readonly string[];
  /** IPAM section (overrides `addresses`). */
  readonly ipam?: Record<string, unknown>;
  readonly terminations?: readonly { network: string; via?: string }[];
  /** veth MTU. */
  readonly mtu?: number;
  /** Lowest VRF table. */
  readonly tableMin?: number;
  /** API budget. */
  readonly apiTimeoutSeconds?: number;
}

/** A galactic network configuration for one attachment, with its node's settings (see `invoke`). */
export function attachmentConfig(options: AttachmentOptions): Record<string, unknown> {
  return {
    cniVersion: "1.1.0",
    name: options.name ?? "tenant",
    type: "galactic",
    vpc: options.vpc,
    vpcattachment: options.attachment,
    srv6_locator: options.locator,
    ...(options.mtu !== undefined && { mtu: options.mtu }),
    node_name: options.node,
    state_dir: options.stateDir,
    // Unused path when the agent answers: the CNI process then never needs it.
    agent_socket: options.agentSocket ?? `${options.stateDir}/no-agent.sock`,
    ...(options.kubeconfig !== undefined && { kubeconfig: options.kubeconfig }),
    log_level: "info",
    vrf_table_min: options.tableMin ?? 1000,
    // The deadlines' defaults are sized for hardware. The lab VM emulates its
    // CPU (TCG, 10-100x slower): there 20 plugins at once (and the in-process
    // API server and node agent beside them) wait on each other's locks, on
    // iptables and on the API for minutes, which is what the suites test.
    api_timeout_seconds: options.apiTimeoutSeconds ?? (IN_LAB_VM ? 120 : 20),
    ...(IN_LAB_VM && {
      command_timeout_seconds: 120,
      delegate_timeout_seconds: 120,
      lock_timeout_seconds: 300,
    }),
    ...(options.terminations && { terminations: options.terminations }),
    ...((options.ipam || options.addresses) && {
      ipam: options.ipam ?? {
        type: "static",
        addresses: options.addresses!.map((address) => ({ address })),
      },
    }),
  };
}

/** The attachment records the plugin keeps in its state dir ({} when none). */
export async function records(stateDir: string): Promise<Record<string, Record<string, unknown>>> {
  try {
    const state = JSON.parse(await Deno.readTextFile(`${stateDir}/attachments.json`));
    return state.attachments ?? {};
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return {};
    throw error;
  }
}
