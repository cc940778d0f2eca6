/**
 * `galactic uninstall`: takes a node back to before `galactic install` and
 * the plugin's first ADD. It removes the plugin binary, the files the
 * installer wrote, the state directory, the agent socket and, with `force`,
 * the kernel objects of attachments still recorded (their VRF, veth pair,
 * SRv6 route and FORWARD rules). Without `force` it refuses while recorded
 * attachments still have kernel objects: those belong to running pods, whose
 * DELs should remove them. Every step treats "already gone" as done, so a
 * second run reports everything absent and succeeds.
 *
 * Delegates (`host-device`, `static`) stay: other plugins use them and the
 * installer only added them when missing. BGPVRFInstances are cluster
 * objects; the report says how to remove this node's.
 *
 * @module
 */

import { join } from "node:path";
import { interfaceNames, LABELS, nodeLabelValue, parseAttachment, parseVpc } from "../ids/mod.ts";
import {
  type CommandRunner,
  ipBatch,
  removeForwardAccept,
  ROUTE_GONE,
  vrfDeleteLines,
} from "../iproute2/mod.ts";
import { readNodeState } from "../state/node_state.ts";
import {
  InstallError,
  KUBECONFIG_FILE_NAME,
  NODE_NAME_FILE_NAME,
  PLUGIN_BINARY_NAME,
} from "./install.ts";

/** Files `galactic install` writes into the config dir (only these are removed from it). */
export const INSTALLED_CONFIG_FILES: readonly string[] = [
  KUBECONFIG_FILE_NAME,
  NODE_NAME_FILE_NAME,
];

/** Where the node's pieces are. */
export interface UninstallOptions {
  readonly cniBinDir: string;
  readonly configDir: string;
  readonly stateDir: string;
  readonly agentSocket: string;
  /** Also remove the kernel objects of attachments still recorded. */
  readonly force: boolean;
  /** Runner of the kernel clean-up. */
  readonly runner: CommandRunner;
}

/** What happened to one piece. */
export interface UninstallStep {
  readonly what: string;
  readonly path: string;
  readonly action: "removed" | "absent" | "kept";
  readonly note?: string;
}

/** The outcome of `uninstall`. */
export interface UninstallReport {
  readonly steps: readonly UninstallStep[];
  /** Attachments whose kernel objects were removed (with `force`). */
  readonly attachmentsRemoved: readonly string[];
}

async function removePath(
  what: string,
  path: string,
  options: { recursive?: boolean } = {},
): Promise<UninstallStep> {
  try {
    await Deno.remove(path, options);
    return { what, path, action: "removed" };
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return { what, path, action: "absent" };
    throw new InstallError(`cannot remove ${what} ${path}: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Removes the installer's files, then the config dir if nothing else is in it. */
async function removeConfigDir(dir: string): Promise<UninstallStep[]> {
  const steps: UninstallStep[] = [];
  for (const name of INSTALLED_CONFIG_FILES) {
    steps.push(await removePath(name, join(dir, name)));
  }
  try {
    await Deno.remove(dir);
    steps.push({ what: "config dir", path: dir, action: "removed" });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      steps.push({ what: "config dir", path: dir, action: "absent" });
    } else {
      const left: string[] = [];
      for await (const entry of Deno.readDir(dir)) left.push(entry.name);
      steps.push({
        what: "config dir",
        path: dir,
        action: "kept",
        note: `holds files galactic install did not write: ${left.sort().join(", ")}`,
      });
    }
  }
  return steps;
}

/** Removes the kernel objects of recorded attachments (VRF, veth pair, SID, FORWARD rules). */
async function removeAttachments(
  options: UninstallOptions,
): Promise<{ removed: string[] }> {
  const state = await readNodeState(options.stateDir, options.runner).catch(() => undefined);
  const live = state?.attachments.filter((a) => a.kernel.vrfPresent || a.kernel.hostVethPresent) ??
    [];
  if (live.length > 0 && !options.force) {
    throw new InstallError(
      `${live.length} recorded attachment(s) still have kernel objects (${
        live.map((a) => `${a.vpc}.${a.attachment} of container ${a.containerId}`).join(", ")
      }); delete their pods first, or pass --force to remove them`,
    );
  }
  const removed: string[] = [];
  for (const record of state?.attachments ?? []) {
    const names = interfaceNames(parseVpc(record.vpc), parseAttachment(record.attachment));
    // The SRv6 route and the termination routes go with the host veth and the VRF.
    await ipBatch(options.runner, [
      `link del ${names.host}`,
      `link del ${names.guest}`,
      ...vrfDeleteLines({ name: names.vrf, table: record.table }),
    ], { tolerate: [...ROUTE_GONE, /^Device .* does not exist/] });
    await removeForwardAccept(options.runner, names.host);
    removed.push(`${record.vpc}.${record.attachment}`);
  }
  return { removed };
}

/** Uninstalls galactic from this node; safe to repeat. */
export async function uninstall(options: UninstallOptions): Promise<UninstallReport> {
  const { removed } = await removeAttachments(options);
  const steps = [
    // The binary first: the runtime stops finding the plugin before its state goes.
    await removePath("plugin", join(options.cniBinDir, PLUGIN_BINARY_NAME)),
    ...await removeConfigDir(options.configDir),
    await removePath("state dir", options.stateDir, { recursive: true }),
    await removePath("agent socket", options.agentSocket),
  ];
  return { steps, attachmentsRemoved: removed };
}

/** The human form of the report. */
export function formatUninstallReport(report: UninstallReport, node?: string): string {
  const lines = report.steps.map((s) =>
    `  ${s.action.padEnd(7)}  ${s.what} ${s.path}${s.note ? ` (${s.note})` : ""}`
  );
  const removed = report.attachmentsRemoved.length;
  return [
    `galactic uninstall: ${report.steps.filter((s) => s.action === "removed").length} removed, ` +
    `${removed} attachment(s) torn down`,
    ...lines,
    "  kept     delegates host-device and static (other plugins may use them)",
    `  cluster  remove this node's BGPVRFInstances with: kubectl delete bgpvrfinstances -l ` +
    `${LABELS.node}=${node === undefined ? "<node>" : nodeLabelValue(node)}`,
  ].join("\n");
}
