/**
 * Reclaiming attachments whose sandbox is gone, without a runtime GC. Multus
 * passes GC only to a cluster's default network, never to NAD networks, so
 * a lost DEL (node crash, runtime bug) would leave an attachment's VRF, veth,
 * SID and BGPVRFInstance forever. The node agent runs this periodically and
 * `galactic gc` on demand.
 *
 * Evidence that a sandbox is gone, read from the recorded netns path (a
 * runtime keeps it, an nsfs bind mount under `/run/netns` or
 * `/var/run/netns`, or `/proc/<pid>/ns/net`, for as long as the sandbox
 * lives, and unmounts and removes it when the sandbox goes):
 *
 * - the path no longer exists, while its directory does (a directory this
 *   process cannot see is no evidence); for a `/proc/<pid>/…` path only when
 *   this process sees the host's PID namespace;
 * - the path exists but is not on nsfs (the leftover mount point of a removed
 *   namespace) — only when this process runs in the host's mount namespace,
 *   since a container without mount propagation sees live namespaces' mount
 *   points as plain files too.
 *
 * Anything else, including a path reused by another live namespace, is no
 * evidence: a runtime GC or DEL still releases those.
 *
 * A live attachment is never touched: the decision is made again under the
 * attachment lock, against the record as it is then (an ADD in flight holds
 * that lock and re-owns the record before releasing it).
 *
 * @module
 */

import type { CniEnv } from "../cni/env.ts";
import { NODE_DEFAULTS, type NodeConfig, parseNetworkConfig } from "../config/mod.ts";
import type { Logger } from "../log/logger.ts";
import { type AttachmentRecord, AttachmentStore } from "../state/attachments.ts";
import { planAttachment, withAttachmentLock } from "./attachment.ts";
import type { Host, VerbContext } from "./host.ts";
import { teardownAttachment } from "./teardown.ts";

/** Why the sandbox of `netns` is gone, or undefined while it may be alive. */
export type SandboxProbe = (netns: string) => Promise<string | undefined>;

/** The inode of the initial PID namespace (PROC_PID_INIT_INO), the same on every kernel. */
const INITIAL_PID_NS = 0xEFFFFFFC;

async function inode(path: string): Promise<number | null | undefined> {
  try {
    return (await Deno.stat(path)).ino;
  } catch {
    return undefined;
  }
}

/** What this process can tell about namespaces (computed once per round). */
export interface HostView {
  /** /proc shows the host's processes. */
  readonly hostPids: boolean;
  /** Mounts are the host's (a missing nsfs mount is really missing). */
  readonly hostMounts: boolean;
}

/** This process's view: initial PID namespace, and the mount namespace of the host's init. */
export async function hostView(): Promise<HostView> {
  const hostPids = await inode("/proc/self/ns/pid") === INITIAL_PID_NS;
  const [self, init] = await Promise.all([inode("/proc/self/ns/mnt"), inode("/proc/1/ns/mnt")]);
  return { hostPids, hostMounts: hostPids && self !== undefined && self === init };
}

/** The real probe (see the module's evidence rules). */
export async function netnsGone(
  netns: string,
  view?: HostView,
): Promise<string | undefined> {
  if (!netns.startsWith("/")) return undefined;
  const seen = view ?? await hostView();
  const proc = netns.startsWith("/proc/");
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(netns);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return undefined;
    if (proc) return seen.hostPids ? `netns ${netns} no longer exists (process gone)` : undefined;
    const dir = netns.slice(0, netns.lastIndexOf("/")) || "/";
    const dirExists = await Deno.stat(dir).then((d) => d.isDirectory, () => false);
    return dirExists ? `netns ${netns} no longer exists` : undefined;
  }
  // Every namespace file lives on the one nsfs; our own tells its device.
  const nsfs = await Deno.stat("/proc/self/ns/net");
  if (info.dev === nsfs.dev || !seen.hostMounts) return undefined;
  return `${netns} is no longer a network namespace (not on nsfs)`;
}

/** One attachment reclaimed, or that failed to be. */
export interface Reclaimed {
  readonly key: string;
  readonly containerId: string;
  readonly netns: string;
  readonly reason: string;
  /** Set when the teardown failed (the record stays for the next round). */
  readonly error?: string;
}

/** Where to look and how to reach what a teardown needs. */
export interface ReclaimOptions {
  readonly stateDir: string;
  /** Directories holding host-device (its DEL returns the pod's interface). */
  readonly cniPath: readonly string[];
  readonly log: Logger;
  /** Default {@linkcode netnsGone}. */
  readonly probe?: SandboxProbe;
  /** Configuration fields a record does not carry (kubeconfig, timeouts), as in a network config. */
  readonly settings?: Readonly<Record<string, unknown>>;
}

/** The DEL context of a recorded attachment, rebuilt from what ADD recorded. */
function recordContext(
  record: AttachmentRecord & { locator: string },
  options: ReclaimOptions,
): VerbContext {
  // The operator's own settings: the node's part goes where the plugin reads it.
  const { kubeconfig, node_name, ...settings } = options.settings ?? {};
  const node: NodeConfig = {
    ...NODE_DEFAULTS,
    stateDir: options.stateDir,
    ...(typeof kubeconfig === "string" && { kubeconfig }),
    ...(typeof node_name === "string" && { nodeName: node_name }),
    origin: "the reclaim's settings",
  };
  const config = parseNetworkConfig({
    ...settings,
    cniVersion: record.cniVersion ?? "1.0.0",
    name: record.network,
    type: "galactic",
    vpc: record.vpc,
    vpcattachment: record.attachment,
    srv6_locator: record.locator,
    ...(record.ipam && { ipam: record.ipam }),
  }, node);
  const env: CniEnv = {
    command: "DEL",
    containerId: record.containerId,
    netns: record.netns,
    ifname: record.ifname,
    args: new Map(),
    path: options.cniPath,
  };
  const log = options.log.with({ container: record.containerId, vpc: record.vpc });
  return { env, config, log };
}

/**
 * Finds recorded attachments whose sandbox is gone and tears each down as
 * GC does (SID, BGPVRFInstance if last, host-device DEL, veth, VRF, FORWARD
 * rules, record), logging each. A failure is logged and returned; the others
 * go on.
 */
export async function reclaimStale(host: Host, options: ReclaimOptions): Promise<Reclaimed[]> {
  const view = options.probe ? undefined : await hostView();
  const probe = options.probe ?? ((netns: string) => netnsGone(netns, view));
  const records = await new AttachmentStore(options.stateDir).read();
  const reclaimed: Reclaimed[] = [];
  for (const [key, seen] of Object.entries(records)) {
    if (await probe(seen.netns) === undefined) continue;
    if (seen.locator === undefined) {
      options.log.warn("cannot reclaim: the record predates recorded locators", { key });
      continue;
    }
    const entry = { key, containerId: seen.containerId, netns: seen.netns };
    try {
      const context = recordContext({ ...seen, locator: seen.locator }, options);
      const plan = planAttachment(context.config, context);
      const reason = await withAttachmentLock(plan, async () => {
        const now = (await plan.store.read())[key];
        // An ADD (new sandbox) or a DEL got there first.
        if (!now || now.containerId !== seen.containerId || now.netns !== seen.netns) return;
        const reason = await probe(now.netns);
        if (reason === undefined) return;
        context.log.info("reclaiming the attachment of a vanished sandbox", { key, reason });
        await teardownAttachment(context, host, { plan, owner: context.env });
        return reason;
      });
      if (reason !== undefined) reclaimed.push({ ...entry, reason });
    } catch (error) {
      const message = (error as Error).message;
      options.log.error("reclaim failed", { key, error: message });
      reclaimed.push({ ...entry, reason: "sandbox gone", error: message });
    }
  }
  return reclaimed;
}
