/**
 * `galactic uninstall`: takes a node back to before `galactic install` and
 * the plugin's first ADD. It removes the plugin binary, the files the
 * installer wrote, the state directory, the agent socket and, with `force`,
 * the kernel objects of attachments (their VRF, veth pair, SRv6 route and
 * FORWARD rules): the recorded ones, and links of the plugin's naming that no
 * record explains (state lost). Without `force` it refuses while any such
 * object exists: those belong to running pods, whose DELs should remove them.
 * Every step treats "already gone" as done, so a second run reports
 * everything absent and succeeds.
 *
 * Delegates (`host-device`, `static`) stay: other plugins use them and the
 * installer only added them when missing. BGPVRFInstances are cluster
 * objects; the report says how to remove this node's.
 *
 * @module
 */

import { join } from "node:path";
import {
  type InterfaceNames,
  interfaceNames,
  LABELS,
  nodeLabelValue,
  parseAttachment,
  parseInterfaceName,
  parseVpc,
} from "../ids/mod.ts";
import {
  type CommandRunner,
  ipBatch,
  LINK_GONE,
  parseJsonLines,
  removeForwardAccept,
  ROUTE_GONE,
  vrfWithMembersDeleteLines,
} from "../iproute2/mod.ts";
import { readNodeStateIfPresent } from "../state/node_state.ts";
import {
  InstallError,
  isInterruptedWrite,
  KUBECONFIG_FILE_NAME,
  NODE_CONFIG_FILE_NAME,
  NODE_NAME_FILE_NAME,
  PLUGIN_BINARY_NAME,
} from "./install.ts";

/** Files `galactic install` writes into the config dir (only these are removed from it). */
export const INSTALLED_CONFIG_FILES: readonly string[] = [
  KUBECONFIG_FILE_NAME,
  NODE_NAME_FILE_NAME,
  NODE_CONFIG_FILE_NAME,
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
  // A write the installer or the agent's credential refresh did not finish.
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!INSTALLED_CONFIG_FILES.some((name) => isInterruptedWrite(entry.name, name))) continue;
      steps.push(await removePath("unfinished write", join(dir, entry.name)));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
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

/** An attachment's kernel objects to remove: recorded, or found by name without a record. */
interface Leftover {
  /** `<vpc>.<attachment>` (base62 text). */
  readonly key: string;
  readonly names: InterfaceNames;
  readonly table: number | undefined;
  /** Owner container, for recorded attachments. */
  readonly owner: string | undefined;
  /** Some kernel object of it exists. */
  readonly live: boolean;
}

/** Links named like the plugin's, by `<vpc><attachment>` stem, with the VRF's table. */
async function ourLinks(runner: CommandRunner): Promise<Map<string, number | undefined>> {
  const stdout = await ipBatch(runner, ["link show"], { flags: ["-json", "-details"] });
  const links = parseJsonLines<
    { ifname: string; linkinfo?: { info_kind?: string; info_data?: { table?: number } } }[]
  >(stdout).flat();
  const stems = new Map<string, number | undefined>();
  for (const link of links) {
    const parsed = parseInterfaceName(link.ifname);
    if (!parsed) continue;
    const stem = `${parsed.vpc}.${parsed.attachment}`;
    const table = link.linkinfo?.info_kind === "vrf" ? link.linkinfo.info_data?.table : undefined;
    stems.set(stem, table ?? stems.get(stem));
  }
  return stems;
}

/** The recorded attachments plus the links of the plugin's naming that no record explains. */
async function findLeftovers(options: UninstallOptions): Promise<Leftover[]> {
  const recorded = (await readNodeStateIfPresent(options.stateDir, options.runner))?.attachments ??
    [];
  const links = await ourLinks(options.runner);
  const found: Leftover[] = recorded.map((record) => {
    const key = `${record.vpc}.${record.attachment}`;
    return {
      key,
      names: interfaceNames(parseVpc(record.vpc), parseAttachment(record.attachment)),
      table: record.table,
      owner: record.containerId,
      live: links.has(key) || record.kernel.vrfPresent || record.kernel.hostVethPresent,
    };
  });
  for (const [key, table] of links) {
    if (found.some((f) => f.key === key)) continue;
    const [vpc = "", attachment = ""] = key.split(".");
    let names: InterfaceNames;
    try {
      names = interfaceNames(parseVpc(vpc), parseAttachment(attachment));
    } catch {
      continue; // the shape of our names, but a value the plugin never makes
    }
    found.push({ key, names, table, owner: undefined, live: true });
  }
  return found;
}

/** Removes the attachments' kernel objects (VRF, veth pair, SID, FORWARD rules). */
async function removeAttachments(options: UninstallOptions): Promise<{ removed: string[] }> {
  const leftovers = await findLeftovers(options);
  const live = leftovers.filter((l) => l.live);
  if (live.length > 0 && !options.force) {
    throw new InstallError(
      `${live.length} attachment(s) still have kernel objects (${
        live.map((l) => l.owner ? `${l.key} of container ${l.owner}` : `${l.key} (no record)`)
          .join(", ")
      }); delete their pods first, or pass --force to remove them`,
    );
  }
  for (const { names, table } of leftovers) {
    // The SRv6 route and the termination routes go with the host veth and the VRF.
    await ipBatch(
      options.runner,
      vrfWithMembersDeleteLines({ name: names.vrf, table }, [names.host, names.guest]),
      { tolerate: [...ROUTE_GONE, ...LINK_GONE] },
    );
    await removeForwardAccept(options.runner, names.host);
  }
  return { removed: leftovers.map((l) => l.key) };
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
