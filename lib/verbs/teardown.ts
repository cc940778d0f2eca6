/**
 * Removing an attachment, shared by DEL and GC, in the order of SPEC §5:
 * SRv6 ingress route → BGPVRFInstance (withdrawal reaches remote peers before
 * forwarding state goes) → host-device → terminations → veth → VRF. Every
 * step treats "already gone" as done.
 *
 * @module
 */

import type { CniEnv } from "../cni/env.ts";
import { wrap } from "../cni/errors.ts";
import type { VerbContext } from "../cni/invocation.ts";
import { runHostDevice } from "../delegate/host_device.ts";
import {
  inspectLinks,
  ipBatch,
  removeForwardAccept,
  ROUTE_GONE,
  srv6DeleteArgv,
  terminationDeleteLines,
  vrfDeleteLines,
} from "../iproute2/mod.ts";
import { hostDeviceConfig } from "./add.ts";
import { type AttachmentPlan, withVpcSiblings } from "./attachment.ts";
import type { ControlPlaneSession, Host } from "./host.ts";

/** host-device's DEL errors that mean "nothing left to release". */
const POD_INTERFACE_GONE =
  /Link not found|failed to open netns|failed to Statfs|no such file or directory/i;

/** Whose state is being removed. */
export interface TeardownTarget {
  /** The attachment. */
  readonly plan: AttachmentPlan;
  /** CNI env for the host-device DEL (the owner's container, netns, ifname). */
  readonly env: CniEnv;
  /** Node the BGPVRFInstance was declared for. */
  readonly node: string;
}

/** Tears down one attachment. Call with the attachment lock held. */
export async function teardownAttachment(
  context: VerbContext,
  host: Host,
  step: { target: TeardownTarget; session: ControlPlaneSession },
): Promise<void> {
  const { config, log } = context;
  const { plan, env, node } = step.target;
  const { names } = plan;
  const record = (await plan.store.read())[plan.key];
  // Without a record (a retried DEL, or state older than a reboot) the kernel still knows the table.
  const vrf = record ? undefined : (await inspectLinks(host.runner, [names.vrf])).get(names.vrf);
  const table = record?.table ?? vrf?.table;

  const sid = await host.runner.run(srv6DeleteArgv(plan.endpoint));
  if (sid.code !== 0 && !ROUTE_GONE.some((p) => p.test(sid.stderr))) {
    throw wrap(
      `failed to delete SRv6 ingress route ${plan.endpoint}`,
      new Error(sid.stderr.trim()),
    );
  }

  await withVpcSiblings(plan, {
    change: (records) => {
      delete records[plan.key];
    },
    decide: async (siblings) => {
      // Nothing recorded and no VRF: an earlier DEL already withdrew it.
      if (!record && !vrf) return;
      if (siblings > 0) {
        log.info("BGPVRFInstance kept: other attachments of the VPC remain on the node", {
          siblings,
        });
        return;
      }
      await (await step.session.get()).withdrawVrf({ vpc: config.vpc, node: record?.node ?? node });
    },
  }).catch((e) => {
    throw wrap("failed to withdraw the VRF from BGP", e);
  });

  await runHostDevice(host.runner, {
    command: "DEL",
    env,
    config: hostDeviceConfig(context, names.guest),
    timeoutMs: config.delegateTimeoutSeconds * 1000,
  })
    .catch((e: Error) => {
      // host-device fails when the device or the pod netns is already gone; for DEL that is done.
      if (POD_INTERFACE_GONE.test(e.message)) {
        log.debug("pod interface already gone", { detail: e.message });
      } else throw wrap("failed to release the pod interface", e);
    });

  const lines = [
    ...(table === undefined ? [] : terminationDeleteLines(config.terminations, table)),
    `link del ${names.host}`,
    `link del ${names.guest}`,
    ...vrfDeleteLines({ name: names.vrf, table }),
  ];
  // The FORWARD rules match by name: they go in the same process round.
  const [links, rules] = await Promise.allSettled([
    ipBatch(host.runner, lines, { tolerate: [...ROUTE_GONE, /^Device .* does not exist/] }),
    removeForwardAccept(host.runner, names.host),
  ]);
  if (links.status === "rejected") {
    throw wrap(`failed to remove ${names.host} and ${names.vrf}`, links.reason);
  }
  if (rules.status === "rejected") {
    throw wrap(`failed to remove the FORWARD accept rules for ${names.host}`, rules.reason);
  }
  log.info("attachment removed", { table, sid: plan.endpoint });
}
