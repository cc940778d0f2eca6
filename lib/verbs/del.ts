/**
 * DEL: removes the attachment if this container owns it. A late DEL of an old
 * sandbox must not tear down the state a new sandbox of the same attachment
 * now owns; it succeeds without touching it. A record rebuilt from the kernel
 * (owner unknown) is any container's to delete. Through the node agent, DEL
 * answers once the SID, the BGPVRFInstance, the pod interface and the
 * FORWARD rules are gone; the agent removes the veth and the VRF after.
 *
 * @module
 */

import { UNKNOWN_OWNER } from "../state/attachments.ts";
import { planAttachment, withAttachmentLock } from "./attachment.ts";
import type { Host, VerbContext } from "./host.ts";
import { teardownAttachment } from "./teardown.ts";

/** DEL of the configured attachment. */
export async function cmdDel(context: VerbContext, host: Host): Promise<void> {
  const { config, env, log } = context;
  const plan = planAttachment(config, context);
  await withAttachmentLock(plan, async () => {
    const record = (await plan.store.read())[plan.key];
    if (record && record.containerId !== env.containerId && record.containerId !== UNKNOWN_OWNER) {
      log.info("DEL skipped: the attachment now belongs to another container", {
        owner: record.containerId,
      });
      return;
    }
    await teardownAttachment(context, host, { plan, owner: env, handOff: true });
  });
}
