/**
 * Removing an attachment, in the order of SPEC §5: SRv6 ingress route →
 * BGPVRFInstance (withdrawal reaches remote peers before forwarding state
 * goes) → host-device → veth and VRF, the FORWARD rules alongside the
 * withdrawal and host-device; the veth and VRF are done by the node agent
 * after DEL has answered when one takes them. DEL and GC tear down whole
 * attachments as their record describes them (table, node, owner);
 * a failed ADD's rollback undoes its steps with the same removals. Every
 * removal treats "already gone" as done.
 *
 * @module
 */

import type { CniEnv } from "../cni/env.ts";
import { CniError, ErrorCode, wrap } from "../cni/errors.ts";
import { hostDeviceConfig, runHostDevice } from "../delegate/host_device.ts";
import {
  inspectLinks,
  ipBatch,
  LINK_GONE,
  removeForwardAccept,
  ROUTE_GONE,
  srv6DeleteArgv,
  vrfWithMembersDeleteLines,
} from "../iproute2/mod.ts";
import type { CommandRunner } from "../iproute2/runner.ts";
import { type InterfaceNames, interfaceNames, parseAttachment, parseVpc } from "../ids/mod.ts";
import type { Logger } from "../log/logger.ts";
import type { AttachmentStore } from "../state/attachments.ts";
import { withLock } from "../state/lock.ts";
import { type AttachmentPlan, withVpcSiblings } from "./attachment.ts";
import type { Host, VerbContext } from "./host.ts";
import { step, together } from "./steps.ts";

/** host-device's DEL errors that mean "nothing left to release". */
const POD_INTERFACE_GONE =
  /Link not found|failed to open netns|failed to Statfs|no such file or directory/i;

/**
 * Tears down one attachment; call with the attachment lock held. `owner` is
 * the CNI environment host-device's DEL runs with (the sandbox that owns the
 * attachment). The record says which table and node, and goes last, so a
 * teardown killed halfway is finished by the next DEL or GC. The kernel's
 * table wins where the record may not yet name one the VRF is on (an ADD
 * killed before it created the VRF); without a record (a retried DEL, state
 * older than a reboot, a link GC found) the kernel is all there is, and the
 * BGPVRFInstance was declared for this node. A record already `removing`
 * was withdrawn by the DEL that marked it.
 *
 * With `handOff` (DEL of a completed ADD), once the SID, the BGPVRFInstance,
 * the pod interface and the FORWARD rules are gone, the node agent may take
 * the rest (veth, VRF, the record: {@linkcode finishRemoval}) and the runtime
 * gets its answer without waiting for it (issue 17). The record stays
 * `removing`, holding the table, until the agent drops it; without an agent
 * that takes it, the teardown finishes here.
 */
export async function teardownAttachment(
  context: VerbContext,
  host: Host,
  target: { plan: AttachmentPlan; owner: CniEnv; handOff?: boolean },
): Promise<void> {
  const { plan, owner } = target;
  const { names } = plan;
  const record = (await plan.store.read())[plan.key];
  const vrf = record && record.phase !== "adding"
    ? undefined
    : (await inspectLinks(host.runner, [names.vrf])).get(names.vrf);
  const table = vrf?.table ?? (record?.phase === "adding" ? undefined : record?.table);
  // Nothing recorded and no VRF: an earlier DEL already withdrew it.
  const withdraw = (record || vrf) && record?.phase !== "removing";
  // The control plane (the agent's socket) opens while the route goes; only
  // its call has to wait (SPEC §5).
  if (withdraw) host.controlPlane().catch(() => {});

  await step(
    `delete SRv6 ingress route ${plan.endpoint}`,
    () => removeSrv6Ingress(host.runner, plan.endpoint),
  );
  // Once the SID is gone nothing reaches the FORWARD rules (they match by
  // name, and SPEC §5 orders nothing about them): they go while the
  // withdrawal waits on the API, so host-device starts alone after it.
  await together(
    async () => {
      if (withdraw) {
        await step("withdraw the VRF from BGP", () =>
          withdrawIfLast(context, host, {
            plan,
            node: () => record?.node || host.nodeName(),
            forget: true,
          }));
      }
      await releasePodInterface(context, host, { plan, owner });
    },
    () => removeRules(host.runner, names),
  );
  if (
    target.handOff && record && record.phase === undefined && host.handOffRemoval &&
    await host.handOffRemoval({ key: plan.key, containerId: record.containerId, node: record.node })
  ) {
    context.log.info("attachment released; the node agent removes its veth and VRF", {
      table,
      sid: plan.endpoint,
    });
    return;
  }
  await removeLinks(host.runner, { names, table });
  if (record) {
    await step("drop the attachment record", () =>
      plan.store.update((records) => {
        delete records[plan.key];
      }));
  }
  context.log.info("attachment removed", { table, sid: plan.endpoint });
}

/**
 * The veth, the VRF and what it leaves in its table. The VRF's table is this
 * attachment's alone: as a device group it takes the veth and the VRF in one
 * kernel call (terminations route through the host veth: they go with it).
 */
async function removeLinks(
  runner: CommandRunner,
  target: { names: InterfaceNames; table: number | undefined },
): Promise<void> {
  const { names, table } = target;
  const lines = vrfWithMembersDeleteLines({ name: names.vrf, table }, [names.host, names.guest]);
  await step(
    `remove ${names.host} and ${names.vrf}`,
    () => ipBatch(runner, lines, { tolerate: [...ROUTE_GONE, ...LINK_GONE] }),
  );
}

/** The FORWARD accept rules of the host veth (both families). */
async function removeRules(runner: CommandRunner, names: InterfaceNames): Promise<void> {
  await step(
    `remove the FORWARD accept rules for ${names.host}`,
    () => removeForwardAccept(runner, names.host),
  );
}

/**
 * The rest of a DEL handed to the node agent: under the attachment lock, if
 * the record is still `removing` (and, with `owner`, still that container's),
 * removes its veth, VRF and (unless `rulesGone`) FORWARD rules and drops the
 * record. Anything else means an ADD took the attachment over since, or a
 * DEL, GC or an earlier call finished it: nothing is done. Any `removing` record may be finished so:
 * its SID is gone and its BGPVRFInstance withdrawn (or kept for siblings)
 * before the mark, and a pod interface host-device did not release goes with
 * the veth pair. Returns whether it removed the attachment.
 */
export async function finishRemoval(
  runner: CommandRunner,
  target: RemovalTarget,
): Promise<boolean> {
  const { store, key } = target;
  await store.ensureDir();
  return await withLock(
    store.attachmentLock(key),
    () => finishRemovalLocked(runner, target),
    store.lockOptions,
  );
}

/** What {@linkcode finishRemoval} finishes. */
export interface RemovalTarget {
  readonly store: AttachmentStore;
  readonly key: string;
  /** Only if the record is still this container's. */
  readonly owner?: string;
  /** The DEL that handed it off removed the FORWARD rules already. */
  readonly rulesGone?: boolean;
  readonly log: Logger;
}

/** {@linkcode finishRemoval} for a caller already holding the attachment lock (ADD). */
export async function finishRemovalLocked(
  runner: CommandRunner,
  target: RemovalTarget,
): Promise<boolean> {
  const { store, key } = target;
  const record = (await store.read())[key];
  if (
    record?.phase !== "removing" ||
    (target.owner !== undefined && record.containerId !== target.owner)
  ) return false;
  const names = interfaceNames(parseVpc(record.vpc), parseAttachment(record.attachment));
  // A handed-off DEL removed the rules itself (the host's iptables, which
  // the agent's image may not match); another `removing` record may still
  // have them.
  await together(
    () => removeLinks(runner, { names, table: record.table }),
    () => target.rulesGone ? Promise.resolve() : removeRules(runner, names),
  );
  await step("drop the attachment record", () =>
    store.update((records) => {
      if (records[key]?.phase === "removing") delete records[key];
    }));
  target.log.info("attachment removed", { key, table: record.table, vrf: names.vrf });
  return true;
}

/** Deletes the SRv6 ingress route of `endpoint`. */
export async function removeSrv6Ingress(runner: CommandRunner, endpoint: string): Promise<void> {
  const output = await runner.run(srv6DeleteArgv(endpoint));
  if (output.code !== 0 && !ROUTE_GONE.some((p) => p.test(output.stderr))) {
    throw new CniError(ErrorCode.DataPlane, output.stderr.trim());
  }
}

/**
 * Under the VPC lock, withdraws the (VPC, node) BGPVRFInstance unless other
 * attachments of the VPC remain on the node; with `forget`, then marks the
 * attachment's record `removing` (only after the API call succeeded, so a
 * failed withdrawal leaves it counted for the retry): from then on it no
 * longer counts as a sibling, so two DELs of one VPC never both keep the
 * object, and the teardown drops it once everything else is gone.
 */
export async function withdrawIfLast(
  context: VerbContext,
  host: Host,
  target: { plan: AttachmentPlan; node: () => string; forget?: boolean },
): Promise<void> {
  const { plan } = target;
  await withVpcSiblings(plan, {
    decide: async (siblings) => {
      if (siblings > 0) {
        context.log.info("BGPVRFInstance kept: other attachments of the VPC remain on the node", {
          siblings,
        });
        return;
      }
      await (await host.controlPlane()).withdrawVrf({ vpc: plan.vpc, node: target.node() });
    },
    ...(target.forget && {
      change: (records) => {
        const record = records[plan.key];
        if (record) records[plan.key] = { ...record, phase: "removing" };
      },
    }),
  });
}

/**
 * host-device DEL: moves the pod interface back and releases its addresses.
 * A device or pod netns already gone means there is nothing to release; so
 * does an owner with no sandbox (a link GC found with no record: host-device
 * cannot even be asked, and deleting the veth takes the pod end along).
 */
export async function releasePodInterface(
  context: VerbContext,
  host: Host,
  target: { plan: AttachmentPlan; owner: CniEnv },
): Promise<void> {
  if (target.owner.containerId === "" || target.owner.ifname === "") {
    context.log.debug("no sandbox to release the pod interface from");
    return;
  }
  try {
    await runHostDevice(host.runner, {
      command: "DEL",
      env: target.owner,
      config: hostDeviceConfig(context.config, target.plan.names.guest),
      timeoutMs: context.config.delegateTimeoutSeconds * 1000,
    });
  } catch (error) {
    if (!POD_INTERFACE_GONE.test((error as Error).message)) {
      throw wrap("failed to release the pod interface", error);
    }
    context.log.debug("pod interface already gone", { detail: (error as Error).message });
  }
}
