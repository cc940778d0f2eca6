/**
 * What one network attachment is made of, derived from the configuration,
 * and the locks that guard it.
 *
 * @module
 */

import { type Identifier, type InterfaceNames, interfaceNames, srv6Endpoint } from "../ids/mod.ts";
import { attachmentKey, type AttachmentRecord, AttachmentStore } from "../state/attachments.ts";
import { withLock } from "../state/lock.ts";
import type { VerbContext } from "./host.ts";

/** Names and addresses of one attachment, all derived from its (VPC, attachment). */
export interface AttachmentPlan {
  readonly key: string;
  readonly vpc: Identifier;
  readonly vpcHex: string;
  readonly names: InterfaceNames;
  /** SRv6 ingress SID (no prefix length). */
  readonly endpoint: string;
  readonly store: AttachmentStore;
}

/**
 * Derives an attachment's plan; the identifiers come from the configuration
 * (ADD, CHECK, DEL) or from a record or an interface name (GC). Its store's
 * locks wait at most `lock_timeout_seconds` and name this verb and container
 * as holder.
 */
export function planAttachment(
  ids: { vpc: Identifier; attachment: Identifier },
  context: Pick<VerbContext, "config" | "env">,
): AttachmentPlan {
  const { config, env } = context;
  return {
    key: attachmentKey(ids),
    vpc: ids.vpc,
    vpcHex: ids.vpc.hex,
    names: interfaceNames(ids.vpc, ids.attachment),
    endpoint: srv6Endpoint(config.locator, ids),
    store: new AttachmentStore(config.stateDir, {
      timeoutMs: config.lockTimeoutSeconds * 1000,
      holder: `${env.command} container ${env.containerId}`,
    }),
  };
}

/** Runs `body` holding the attachment's lock (ADD and DEL of one attachment never interleave). */
export async function withAttachmentLock<T>(
  plan: AttachmentPlan,
  body: () => Promise<T>,
): Promise<T> {
  await plan.store.ensureDir();
  return await withLock(plan.store.attachmentLock(plan.key), body, plan.store.lockOptions);
}

/**
 * Under the VPC lock, runs `decide` with the number of *other* attachments of
 * the VPC recorded on the node (those a DEL is removing do not count), then applies `change` to the records once
 * `decide` succeeded. "Is this the VPC's last attachment here?" and the API
 * write or delete that depends on it are thereby atomic with respect to
 * siblings, and a failed API call leaves the record for the retry.
 */
export async function withVpcSiblings<T>(
  plan: AttachmentPlan,
  options: {
    decide: (siblings: number) => Promise<T>;
    change?: (records: Record<string, AttachmentRecord>) => void;
  },
): Promise<T> {
  return await withLock(plan.store.vpcLock(plan.vpcHex), async () => {
    const records = await plan.store.read();
    const siblings = Object.entries(records).filter(([key, r]) =>
      key !== plan.key && r.vpcHex === plan.vpcHex && r.phase !== "removing"
    );
    const value = await options.decide(siblings.length);
    if (options.change) await plan.store.update(options.change);
    return value;
  }, plan.store.lockOptions);
}
