/**
 * GC (CNI 1.1): releases everything this plugin owns on the node for the
 * network that is not in `cni.dev/valid-attachments`: recorded attachments of
 * vanished containers, plugin-named links no record explains, and
 * BGPVRFInstances of this node whose VPC has no attachment left; then passes
 * GC on to host-device (and so its IPAM).
 *
 * @module
 */

import { invalidConfig, wrap } from "../cni/errors.ts";
import { delegateNodeVerb } from "../delegate/node_verbs.ts";
import {
  type Identifier,
  parseAttachment,
  parseInterfaceName,
  parseVpc,
  vpcFromValue,
} from "../ids/mod.ts";
import { ipBatch, parseJsonLines } from "../iproute2/mod.ts";
import {
  attachmentKey,
  type AttachmentRecord,
  type AttachmentStore,
} from "../state/attachments.ts";
import { withLock } from "../state/lock.ts";
import { planAttachment, withAttachmentLock } from "./attachment.ts";
import type { Host, VerbContext } from "./host.ts";
import { teardownAttachment } from "./teardown.ts";

interface ValidAttachment {
  containerID: string;
  ifname: string;
}

/** A release candidate: its identifiers, and the container that owned it (none for a bare link). */
interface Stale {
  readonly ids: { vpc: Identifier; attachment: Identifier };
  readonly owner: string | undefined;
}

function validAttachments(raw: Record<string, unknown>): Set<string> {
  const field = "cni.dev/valid-attachments";
  const value = raw[field] ?? [];
  if (!Array.isArray(value)) {
    throw invalidConfig(field, value, "must be a list of {containerID, ifname}");
  }
  return new Set(value.map((entry: ValidAttachment, i) => {
    if (typeof entry?.containerID !== "string" || typeof entry?.ifname !== "string") {
      throw invalidConfig(`${field}[${i}]`, entry, "must be {containerID, ifname}");
    }
    return `${entry.containerID}/${entry.ifname}`;
  }));
}

function isValid(valid: Set<string>, record: AttachmentRecord): boolean {
  return valid.has(`${record.containerId}/${record.ifname}`);
}

/** GC of the configured network. */
export async function cmdGc(context: VerbContext, host: Host): Promise<void> {
  const { config } = context;
  const valid = validAttachments(config.raw);
  const store = planAttachment(config, context).store;
  await store.ensureDir();
  const { records, orphans } = await snapshot(host, store);
  const stale: Stale[] = [
    ...Object.values(records)
      .filter((r) => r.network === config.name && (r.phase === "removing" || !isValid(valid, r)))
      .map((r) => ({
        ids: { vpc: parseVpc(r.vpc), attachment: parseAttachment(r.attachment) },
        owner: r.containerId,
      })),
    ...orphans.map((ids) => ({ ids, owner: undefined })),
  ];
  for (const attachment of stale) await release(context, host, { attachment, valid });
  await withdrawUnused(context, host, store);
  // As the spec requires of a delegating plugin: host-device and its IPAM
  // release what they hold for attachments not in the list.
  const delegated = await delegateNodeVerb(host.runner, {
    verb: "GC",
    config,
    env: context.env,
    validAttachments: config.raw["cni.dev/valid-attachments"] ?? [],
  }).catch((e) => {
    throw wrap("failed to pass GC to host-device", e);
  });
  if (!delegated.ran) context.log.debug("GC not passed on", { why: delegated.why });
}

/**
 * Kernel links and records together, under the node lock: an ADD creates its
 * VRF and its record inside that lock, so no VRF seen here lacks a record
 * unless it is really orphaned.
 */
async function snapshot(
  host: Host,
  store: AttachmentStore,
): Promise<{
  records: Record<string, AttachmentRecord>;
  orphans: { vpc: Identifier; attachment: Identifier }[];
}> {
  return await withLock(store.nodeLock, async () => {
    const links = parseJsonLines<{ ifname: string }[]>(
      await ipBatch(host.runner, ["link show"], { flags: ["-json"] }),
    ).flat();
    const records = await store.read();
    const orphans = new Map<string, { vpc: Identifier; attachment: Identifier }>();
    for (const { ifname } of links) {
      const parsed = parseInterfaceName(ifname);
      if (!parsed) continue;
      const ids = { vpc: parseVpc(parsed.vpc), attachment: parseAttachment(parsed.attachment) };
      const key = attachmentKey(ids);
      if (!records[key]) orphans.set(key, ids);
    }
    return { records, orphans: [...orphans.values()] };
  }, store.lockOptions);
}

/** Tears one stale attachment down, unless an ADD took it (or made it valid) since the snapshot. */
async function release(
  context: VerbContext,
  host: Host,
  target: { attachment: Stale; valid: Set<string> },
): Promise<void> {
  const { ids, owner } = target.attachment;
  const plan = planAttachment(ids, context);
  await withAttachmentLock(plan, async () => {
    const record = (await plan.store.read())[plan.key];
    if (
      record &&
      (record.containerId !== owner ||
        (record.phase !== "removing" && isValid(target.valid, record)))
    ) return;
    context.log.info("GC releasing attachment", { key: plan.key, owner: owner ?? "(no record)" });
    // host-device's DEL runs as the owning sandbox; a bare link has none.
    const sandbox = record ?? { containerId: context.env.containerId, ifname: "", netns: "" };
    await teardownAttachment(context, host, {
      plan,
      owner: {
        ...context.env,
        containerId: sandbox.containerId,
        ifname: sandbox.ifname,
        netns: sandbox.netns,
      },
    });
  });
}

/** Withdraws this node's BGPVRFInstances whose VPC no longer has an attachment here. */
async function withdrawUnused(
  context: VerbContext,
  host: Host,
  store: AttachmentStore,
): Promise<void> {
  const node = host.nodeName();
  const vpcsInUse = async (): Promise<Set<string>> =>
    new Set(
      Object.values(await store.read()).filter((r) => r.phase !== "removing").map((r) => r.vpcHex),
    );
  const remaining = await vpcsInUse();
  const plane = await host.controlPlane();
  for (const declared of await plane.listNodeVrfs(node)) {
    if (remaining.has(declared.vpcHex)) continue;
    await withLock(store.vpcLock(declared.vpcHex), async () => {
      if ((await vpcsInUse()).has(declared.vpcHex)) return;
      context.log.info("GC withdrawing BGPVRFInstance", { object: declared.name });
      await plane.withdrawVrf({ vpc: vpcFromValue(BigInt(`0x${declared.vpcHex}`)), node });
    }, store.lockOptions);
  }
}
