/**
 * DEL: removes the attachment if this container owns it. A late DEL of an old
 * sandbox must not tear down the state a new sandbox of the same attachment
 * now owns; it succeeds without touching it.
 *
 * @module
 */

import type { VerbContext } from "../cni/invocation.ts";
import { planAttachment, withAttachmentLock } from "./attachment.ts";
import { ControlPlaneSession, type Host } from "./host.ts";
import { teardownAttachment } from "./teardown.ts";

/** DEL of the configured attachment. */
export async function cmdDel(context: VerbContext, host: Host): Promise<void> {
  const plan = planAttachment(context);
  const session = new ControlPlaneSession(host, context);
  try {
    await withAttachmentLock(plan, async () => {
      const record = (await plan.store.read())[plan.key];
      if (record && record.containerId !== context.env.containerId) {
        context.log.info("DEL skipped: the attachment now belongs to another container", {
          owner: record.containerId,
        });
        return;
      }
      await teardownAttachment(context, host, {
        target: { plan, env: context.env, node: record?.node ?? host.nodeName(context) },
        session,
      });
    });
  } finally {
    await session.close();
  }
}
