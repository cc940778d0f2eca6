/**
 * `galactic status -f NAD`: is this node healthy for that attachment's
 * network? It runs the plugin's own CNI STATUS verb in-process (ip,
 * host-device, state dir, API reachability and permissions), at CNI 1.1.0
 * whatever the NAD's `cniVersion` (STATUS exists only since 1.1.0, while
 * NADs usually say 1.0.0 for the hosts' host-device), then adds what STATUS
 * does not cover: the node agent socket and the kernel objects behind each
 * attachment record.
 *
 * @module
 */

import { runInvocation } from "../plugin/invocation.ts";
import type { NetworkConfig } from "../config/mod.ts";
import type { CommandRunner } from "../iproute2/mod.ts";
import { readNodeStateIfPresent } from "../state/node_state.ts";

/** The status report; keys are stable. */
export interface NodeStatus {
  readonly network: string;
  /** STATUS passed: an ADD of this network would work now. */
  readonly ready: boolean;
  /** The STATUS error when not ready. */
  readonly error: { readonly code: number; readonly msg: string } | null;
  readonly agent: { readonly socket: string; readonly present: boolean };
  readonly attachments: { readonly recorded: number; readonly missingKernelObjects: number };
  /** Ready, and every recorded attachment has its kernel objects. */
  readonly healthy: boolean;
}

/** What `nodeStatus` needs besides the config. */
export interface StatusOptions {
  /** CNI_PATH for the STATUS check (where host-device is looked up). */
  readonly cniPath: string;
  /** Process environment (kubeconfig and node-name lookups). */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Runner of the kernel checks. */
  readonly runner: CommandRunner;
  /** Sink of the plugin's warnings. */
  readonly stderr: (text: string) => void;
}

async function runStatusVerb(
  raw: Record<string, unknown>,
  options: StatusOptions,
): Promise<NodeStatus["error"]> {
  const { cniVersions: _list, ...rest } = raw;
  const stdin = new TextEncoder().encode(JSON.stringify({ ...rest, cniVersion: "1.1.0" }));
  let stdout = "";
  const code = await runInvocation({
    env: { ...options.env, CNI_COMMAND: "STATUS", CNI_PATH: options.cniPath },
    readStdin: () => Promise.resolve(stdin),
    writeStdout: (text) => stdout += text,
    writeStderr: options.stderr,
  });
  if (code === 0) return null;
  const document = JSON.parse(stdout) as { code?: number; msg?: string };
  return { code: document.code ?? 0, msg: document.msg ?? stdout.trim() };
}

async function socketPresent(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isSocket === true;
  } catch {
    return false;
  }
}

/** Runs every check. */
export async function nodeStatus(
  source: { raw: Record<string, unknown>; config: NetworkConfig },
  options: StatusOptions,
): Promise<NodeStatus> {
  const error = await runStatusVerb(source.raw, options);
  const present = await socketPresent(source.config.agentSocket);
  let attachments = { recorded: 0, missingKernelObjects: 0 };
  // No state dir: nothing recorded (STATUS has reported it if it cannot be created).
  const state = await readNodeStateIfPresent(source.config.stateDir, options.runner);
  if (state) {
    attachments = {
      recorded: state.attachments.length,
      missingKernelObjects: state.attachments.filter((a) => !a.kernel.ok).length,
    };
  }
  return {
    network: source.config.name,
    ready: error === null,
    error,
    agent: { socket: source.config.agentSocket, present },
    attachments,
    healthy: error === null && attachments.missingKernelObjects === 0,
  };
}

/** The human form. */
export function formatNodeStatus(status: NodeStatus): string {
  const rows: [string, string][] = [
    ["network", status.network],
    ["plugin ready", status.error ? `no: ${status.error.msg} (code ${status.error.code})` : "yes"],
    [
      "node agent",
      `${status.agent.socket} ${
        status.agent.present ? "present" : "absent (the plugin goes direct)"
      }`,
    ],
    [
      "attachments",
      `${status.attachments.recorded} recorded, ${status.attachments.missingKernelObjects} ` +
      "missing kernel objects (see galactic state)",
    ],
    ["healthy", status.healthy ? "yes" : "no"],
  ];
  return rows.map(([key, value]) => `${key.padEnd(12)}  ${value}`).join("\n");
}
