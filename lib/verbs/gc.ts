/**
 * GC (CNI 1.1): releases everything this plugin owns on the node for the
 * network that is not in `cni.dev/valid-attachments`: recorded attachments of
 * vanished containers, plugin-named links no record explains, and
 * BGPVRFInstances of this node whose VPC has no attachment left.
 *
 * @module
 */

import { invalidConfig } from "../cni/errors.ts";
import type { VerbContext } from "../cni/invocation.ts";
import {
  interfaceNames,
  parseAttachment,
  parseInterfaceName,
  parseVpc,
  srv6Endpoint,
  vpcFromValue,
} from "../ids/mod.ts";
import { ipBatch, parseJsonLines } from "../iproute2/mod.ts";
import { attachmentKey } from "../state/attachments.ts";
import { withLock } from "../state/lock.ts";
import { type AttachmentPlan, planAttachment, withAttachmentLock } from "./attachment.ts";
import { ControlPlaneSession, type Host } from "./host.ts";
import { teardownAttachment } from "./teardown.ts";

interface ValidAttachment {
  containerID: string;
  ifname: string;
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

/** GC of the configured network. */
export async function cmdGc(context: VerbContext, host: Host): Promise<void> {
  const { config, log } = context;
  const valid = validAttachments(config.raw);
  const store = planAttachment(context).store;
  await store.ensureDir();
  const node = host.nodeName(context);
  const session = new ControlPlaneSession(host, context);
  try {
    // Snapshot kernel and records together under the node lock: an ADD creates
    // its VRF and its record inside that lock, so no VRF seen here lacks a
    // record unless it is really orphaned.
    const { records, orphans } = await withLock(store.nodeLock, async () => {
      const links = parseJsonLines<{ ifname: string }[]>(
        await ipBatch(host.runner, ["link show"], { flags: ["-json"] }),
      ).flat();
      const records = await store.read();
      const orphans = new Map<string, { vpc: string; attachment: string }>();
      for (const { ifname } of links) {
        const parsed = parseInterfaceName(ifname);
        if (!parsed) continue;
        const ids = { vpc: parseVpc(parsed.vpc), attachment: parseAttachment(parsed.attachment) };
        const key = attachmentKey(ids);
        if (!records[key]) orphans.set(key, parsed);
      }
      return { records, orphans };
    }, store.lockOptions);

    const stale = Object.entries(records).filter(([, r]) =>
      r.network === config.name && !valid.has(`${r.containerId}/${r.ifname}`)
    );
    const targets = [
      ...stale.map(([key, r]) => ({
        key,
        vpc: r.vpc,
        attachment: r.attachment,
        owner: r.containerId,
        ifname: r.ifname,
        netns: r.netns,
        node: r.node,
      })),
      ...[...orphans].map(([key, o]) => ({
        key,
        vpc: o.vpc,
        attachment: o.attachment,
        owner: "",
        ifname: "",
        netns: "",
        node,
      })),
    ];
    for (const target of targets) {
      const vpc = parseVpc(target.vpc);
      const attachment = parseAttachment(target.attachment);
      const plan: AttachmentPlan = {
        key: target.key,
        vpcHex: vpc.hex,
        names: interfaceNames(vpc, attachment),
        endpoint: srv6Endpoint(config.locator, { vpc, attachment }),
        store,
      };
      await withAttachmentLock(plan, async () => {
        const current = (await store.read())[target.key];
        // Re-check under the lock: an ADD may have taken the attachment since the snapshot.
        if (current && current.containerId !== target.owner) return;
        if (current && valid.has(`${current.containerId}/${current.ifname}`)) return;
        log.info("GC releasing attachment", {
          key: target.key,
          owner: target.owner || "(no record)",
        });
        await teardownAttachment(
          { ...context, config: { ...config, vpc, attachment, terminations: [] } },
          host,
          {
            target: {
              plan,
              env: {
                ...context.env,
                containerId: target.owner || context.env.containerId,
                ifname: target.ifname,
                netns: target.netns,
              },
              node: target.node,
            },
            session,
          },
        );
      });
    }

    // Objects of this node whose VPC no longer has any attachment here.
    const remaining = new Set(Object.values(await store.read()).map((r) => r.vpcHex));
    const plane = await session.get();
    for (const declared of await plane.listNodeVrfs(node)) {
      if (remaining.has(declared.vpcHex)) continue;
      await withLock(store.vpcLock(declared.vpcHex), async () => {
        const now = new Set(Object.values(await store.read()).map((r) => r.vpcHex));
        if (now.has(declared.vpcHex)) return;
        log.info("GC withdrawing BGPVRFInstance", { object: declared.name });
        await plane.withdrawVrf({ vpc: vpcFromValue(BigInt(`0x${declared.vpcHex}`)), node });
      }, store.lockOptions);
    }
  } finally {
    await session.close();
  }
}
