/**
 * What this node holds: the attachment records of the state directory, each
 * checked against the kernel (its VRF with the recorded table, and its host
 * veth enslaved to that VRF), through the plugin's own command runner and
 * one `ip` process for all records. Shared by the `state`, `status` and
 * `uninstall` commands.
 *
 * @module
 */

import { interfaceNames, parseAttachment, parseInterfaceName, parseVpc } from "../ids/mod.ts";
import { type CommandRunner, inspectLinks, ipBatch, parseJsonLines } from "../iproute2/mod.ts";
import {
  attachmentKey,
  type AttachmentRecord,
  AttachmentStore,
  UNKNOWN_OWNER,
} from "./attachments.ts";
import { currentHolder } from "./lock.ts";

/** One record and what the kernel has of it. */
export interface AttachmentView extends AttachmentRecord {
  /** Store key (`<vpc hex>.<attachment hex>`). */
  readonly key: string;
  /** The kernel objects behind the record. */
  readonly kernel: {
    readonly vrf: string;
    /** The VRF exists with the recorded table. */
    readonly vrfPresent: boolean;
    readonly hostVeth: string;
    /** The host veth exists, enslaved to the VRF. */
    readonly hostVethPresent: boolean;
    readonly ok: boolean;
  };
}

/** A lock some process holds now (a hung holder makes waiters fail with 11). */
export interface HeldLock {
  readonly file: string;
  /** pid, verb and container, and since when. */
  readonly holder: string;
}

/** The node's records, checked, and the locks held right now. */
export interface NodeState {
  readonly stateDir: string;
  readonly attachments: readonly AttachmentView[];
  readonly locks: readonly HeldLock[];
}

/** Reads the records; a missing state directory is an error, not "nothing recorded". */
export async function readNodeState(
  stateDir: string,
  runner: CommandRunner,
): Promise<NodeState> {
  try {
    if (!(await Deno.stat(stateDir)).isDirectory) throw new Error("not a directory");
  } catch (error) {
    const reason = error instanceof Deno.errors.NotFound
      ? "does not exist (no ADD ran on this node with this state_dir)"
      : (error as Error).message;
    throw new Error(`state dir ${stateDir} ${reason}`);
  }
  const records = Object.entries(await new AttachmentStore(stateDir).read());
  const named = records.map(([key, record]) => ({
    key,
    record,
    names: interfaceNames(parseVpc(record.vpc), parseAttachment(record.attachment)),
  }));
  const links = named.length === 0
    ? new Map()
    : await inspectLinks(runner, named.flatMap(({ names }) => [names.vrf, names.host]));
  const attachments = named.map(({ key, record, names }): AttachmentView => {
    const vrf = links.get(names.vrf);
    const host = links.get(names.host);
    const vrfPresent = vrf?.kind === "vrf" && vrf.table === record.table;
    const hostVethPresent = host?.kind === "veth" && host.master === names.vrf;
    return {
      key,
      ...record,
      kernel: {
        vrf: names.vrf,
        vrfPresent,
        hostVeth: names.host,
        hostVethPresent,
        ok: vrfPresent && hostVethPresent,
      },
    };
  });
  return { stateDir, attachments, locks: await heldLocks(stateDir) };
}

/** {@linkcode readNodeState}, or `undefined` when the state directory does not exist (no ADD ran yet). */
export async function readNodeStateIfPresent(
  stateDir: string,
  runner: CommandRunner,
): Promise<NodeState | undefined> {
  try {
    await Deno.stat(stateDir);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  return await readNodeState(stateDir, runner);
}

async function heldLocks(stateDir: string): Promise<HeldLock[]> {
  const held: HeldLock[] = [];
  for await (const entry of Deno.readDir(stateDir)) {
    if (!entry.isFile || !entry.name.endsWith(".lock")) continue;
    const file = `${stateDir}/${entry.name}`;
    const holder = await currentHolder(file);
    if (holder !== undefined) held.push({ file, holder });
  }
  return held.sort((a, b) => a.file.localeCompare(b.file));
}

/** The human form: one line per attachment, with what is missing, then the held locks. */
export function formatNodeState(state: NodeState): string {
  const locks = state.locks.map((l) =>
    `lock ${l.file} held by ${l.holder} (if it hangs, waiters fail with 11 after ` +
    `lock_timeout_seconds: end that process and its lock goes)`
  );
  return [formatAttachments(state), ...locks].join("\n");
}

function formatAttachments(state: NodeState): string {
  if (state.attachments.length === 0) return `no attachments recorded in ${state.stateDir}`;
  return state.attachments.map((a) => {
    const missing = [
      ...(a.kernel.vrfPresent ? [] : [`VRF ${a.kernel.vrf} (table ${a.table})`]),
      ...(a.kernel.hostVethPresent ? [] : [`veth ${a.kernel.hostVeth}`]),
    ];
    const kernel = missing.length === 0 ? "kernel ok" : `MISSING ${missing.join(", ")}`;
    const unfinished = a.phase === undefined
      ? ""
      : a.phase === "adding"
      ? " (ADD unfinished: interrupted or running; the next ADD, DEL or GC of it completes it)"
      : " (DEL unfinished: the node agent's removal pending, or interrupted; the agent's sweep " +
        "or the next ADD, DEL or GC of it completes it)";
    return `vpc ${a.vpc} attachment ${a.attachment} table ${a.table} container ${a.containerId} ` +
      `ifname ${a.ifname} network ${a.network}: ${kernel}${unfinished}`;
  }).join("\n");
}

/**
 * Recovery from a corrupt records file: keeps it aside and records every
 * plugin VRF the kernel has (its table), owner unknown (any container's DEL
 * tears it down; no GC does, since the network is unknown too). Returns the
 * kept file and the rebuilt records.
 */
export async function rebuildRecords(
  stateDir: string,
  runner: CommandRunner,
): Promise<{ kept: string; records: Record<string, AttachmentRecord> }> {
  const listed = parseJsonLines<{ ifname: string }[]>(
    await ipBatch(runner, ["link show"], { flags: ["-json"] }),
  ).flat();
  const vrfNames = listed.map((l) => l.ifname).filter((n) => parseInterfaceName(n)?.role === "V");
  const links = vrfNames.length === 0 ? new Map() : await inspectLinks(runner, vrfNames);
  const records: Record<string, AttachmentRecord> = {};
  for (const name of vrfNames) {
    const link = links.get(name);
    const parsed = parseInterfaceName(name)!;
    if (link?.kind !== "vrf" || link.table === undefined) continue;
    const ids = { vpc: parseVpc(parsed.vpc), attachment: parseAttachment(parsed.attachment) };
    records[attachmentKey(ids)] = {
      network: "",
      vpc: ids.vpc.text,
      attachment: ids.attachment.text,
      vpcHex: ids.vpc.hex,
      containerId: UNKNOWN_OWNER,
      ifname: "",
      netns: "",
      table: link.table,
      node: "",
    };
  }
  const kept = await new AttachmentStore(stateDir).replaceCorrupt(records);
  return { kept, records };
}
