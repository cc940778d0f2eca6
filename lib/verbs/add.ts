/**
 * ADD, in the order of SPEC §5: VRF → veth → terminations → host-device →
 * Kubernetes → SRv6 ingress → result. Every step converges when repeated; a
 * failure rolls back what this ADD created and reports the original error.
 *
 * @module
 */

import { CniError, ErrorCode, wrap } from "../cni/errors.ts";
import type { VerbContext } from "../cni/invocation.ts";
import type { Result } from "../cni/result.ts";
import { delegateVersion, runHostDevice } from "../delegate/host_device.ts";
import {
  createVrf,
  enableVrfStrictMode,
  ensureForwardAccept,
  inspectLinks,
  interfaceSysctls,
  ipBatch,
  type LinkState,
  lowestFreeTable,
  removeForwardAccept,
  srv6DeleteArgv,
  srv6ReplaceArgv,
  terminationLines,
  vethCreateLines,
  vethUpLines,
  VRF_STRICT_MODE,
  vrfDeleteLines,
  vrfIpv4TableLines,
  vrfUpLines,
  writeSysctls,
} from "../iproute2/mod.ts";
import { ROUTE_GONE } from "../iproute2/routes.ts";
import { runChecked } from "../iproute2/runner.ts";
import type { AttachmentRecord } from "../state/attachments.ts";
import {
  type AttachmentPlan,
  planAttachment,
  withAttachmentLock,
  withVpcSiblings,
} from "./attachment.ts";
import { ControlPlaneSession, type Host } from "./host.ts";
import { Rollback } from "./rollback.ts";

/** host-device's configuration for this attachment. */
export function hostDeviceConfig(context: VerbContext, device: string): Record<string, unknown> {
  const { config } = context;
  return {
    cniVersion: delegateVersion(config.cniVersion),
    name: config.name,
    type: "host-device",
    device,
    ...(config.ipam !== undefined && { ipam: config.ipam }),
  };
}

/** The attachment's VRF after {@linkcode ensureVrf}. */
interface VrfOutcome {
  /** The attachment record, with the VRF's table. */
  readonly record: AttachmentRecord;
  /** True when this ADD created the VRF (its IPv4 half is still to do). */
  readonly created: boolean;
}

/**
 * Finds or creates the VRF and records this container as the attachment's
 * owner, under the node lock so concurrent ADDs never pick the same table.
 * `strict` is the outcome of turning on `net.vrf.strict_mode`, started
 * alongside the link inspection; it matters only when a VRF is created.
 */
async function ensureVrf(
  context: VerbContext,
  host: Host,
  step: {
    plan: AttachmentPlan;
    links: Map<string, LinkState>;
    node: string;
    strict: Promise<boolean>;
    undo: Rollback;
  },
): Promise<VrfOutcome> {
  const { config, env } = context;
  const { plan, links, undo } = step;
  const vrfName = plan.names.vrf;
  const existing = links.get(vrfName);
  if (existing && (existing.kind !== "vrf" || existing.table === undefined)) {
    throw new CniError(
      ErrorCode.DataPlane,
      `interface ${vrfName} exists but is not a VRF (kind ${existing.kind})`,
    );
  }
  const strict = existing ? true : await step.strict;
  // Registered before the step: a failure after the kernel accepted the VRF
  // (strict_mode, the record write) must not leave it behind.
  let createdTable: number | undefined;
  undo.push(`vrf ${vrfName}`, async () => {
    if (createdTable === undefined) return;
    await ipBatch(host.runner, vrfDeleteLines({ name: vrfName, table: createdTable }), {
      tolerate: ROUTE_GONE,
    });
  });
  let previous: AttachmentRecord | undefined;
  const record = await plan.store.update(async (records) => {
    previous = records[plan.key];
    let table = existing?.table;
    if (table === undefined) {
      const used = new Set(Object.values(records).map((r) => r.table));
      while (table === undefined) {
        const candidate = lowestFreeTable(used, {
          min: config.vrfTableMin,
          max: config.vrfTableMax,
        });
        if (candidate === undefined) {
          throw new CniError(
            ErrorCode.DataPlane,
            `no free VRF table in ${config.vrfTableMin}..${config.vrfTableMax} (vrf_table_min/vrf_table_max)`,
          );
        }
        used.add(candidate);
        // The kernel arbitrates tables held by VRFs we have no record of.
        if (await createVrf(host.runner, { name: vrfName, table: candidate }) === "created") {
          table = candidate;
        }
      }
      createdTable = table;
      if (!strict) await writeSysctls(host.runner, VRF_STRICT_MODE);
    }
    const next: AttachmentRecord = {
      network: config.name,
      vpc: config.vpc.text,
      attachment: config.attachment.text,
      vpcHex: config.vpc.hex,
      containerId: env.containerId,
      ifname: env.ifname,
      netns: env.netns,
      table,
      node: step.node,
    };
    records[plan.key] = next;
    return next;
  });
  undo.push("attachment record", () =>
    plan.store.update((records) => {
      if (previous) records[plan.key] = previous;
      else delete records[plan.key];
    }));
  const created = createdTable !== undefined;
  context.log.debug("vrf ready", { vrf: vrfName, table: record.table, created });
  return { record, created };
}

/**
 * Creates (or repairs) the veth pair and installs terminations, with the
 * VRF's IPv4 half, in one `ip` process.
 */
async function ensureVeth(
  context: VerbContext,
  host: Host,
  step: {
    plan: AttachmentPlan;
    links: Map<string, LinkState>;
    vrf: VrfOutcome;
    reowned: boolean;
    undo: Rollback;
  },
): Promise<void> {
  const { names } = step.plan;
  const { table } = step.vrf.record;
  const veth = {
    host: names.host,
    guest: names.guest,
    vrf: names.vrf,
    ...(context.config.mtu && { mtu: context.config.mtu }),
  };
  const hostEnd = step.links.get(names.host);
  const guestEnd = step.links.get(names.guest);
  // The guest end lives on the host only until host-device moves it. If it is
  // gone, or a new sandbox took the attachment over, the pair is rebuilt so
  // host-device gets a fresh device to move.
  const rebuild = hostEnd !== undefined && (guestEnd === undefined || step.reowned);
  const lines = [
    // A new VRF still needs its IPv4 half (before any IPv4 route goes in); an
    // existing one is brought up and its unreachable defaults repaired.
    ...(step.vrf.created ? vrfIpv4TableLines({ table }) : vrfUpLines({ name: names.vrf, table })),
    ...(rebuild ? [`link del ${names.host}`] : []),
    ...(!hostEnd && guestEnd ? [`link del ${names.guest}`] : []),
    ...(!hostEnd || rebuild ? vethCreateLines(veth) : []),
    ...vethUpLines(veth),
    ...terminationLines(context.config.terminations, { table, host: names.host }),
  ];
  if (!hostEnd || rebuild) {
    step.undo.push(
      `veth ${names.host}`,
      () =>
        ipBatch(host.runner, [`link del ${names.host}`], { tolerate: ROUTE_GONE }).then(() => {}),
    );
  }
  await ipBatch(host.runner, lines);
}

/** Adds the host interfaces to host-device's result (their indices shift the ips'). */
function buildResult(delegate: Result, names: { vrf: string; host: string }): Result {
  const hostInterfaces = [{ name: names.vrf }, { name: names.host }];
  const shift = hostInterfaces.length;
  return {
    ...delegate,
    interfaces: [...hostInterfaces, ...(delegate.interfaces ?? [])],
    ...(delegate.ips && {
      ips: delegate.ips.map((
        ip,
      ) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + shift })),
    }),
  };
}

/** ADD: configures the attachment and returns the result for the runtime. */
export async function cmdAdd(context: VerbContext, host: Host): Promise<Result> {
  const { config, env, log } = context;
  const plan = planAttachment(context);
  const node = host.nodeName(context);
  const session = new ControlPlaneSession(host, context);
  const undo = new Rollback(log);
  try {
    return await withAttachmentLock(plan, async () => {
      try {
        const { names } = plan;
        // Independent steps share a process round: strict_mode with the link
        // inspection (ensureVrf waits for it only when it creates a VRF), the
        // FORWARD rules (they match by name) with the VRF and veth, the
        // interface sysctls with host-device (which only touches the guest
        // end). Each undo is registered before its step starts.
        const strict = enableVrfStrictMode(host.runner);
        strict.catch(() => {}); // awaited by ensureVrf when it matters
        const rules = ensureForwardAccept(host.runner, names.host);
        const rulesAdded = rules.catch(() => []);
        undo.push("FORWARD rules", async () => {
          if ((await rulesAdded).length > 0) await removeForwardAccept(host.runner, names.host);
        });
        const links = await inspectLinks(host.runner, [names.vrf, names.host, names.guest]);
        const previousOwner = (await plan.store.read())[plan.key]?.containerId;
        const vrf = await ensureVrf(context, host, { plan, links, node, strict, undo }).catch(
          (e) => {
            throw wrap(`failed to set up VRF ${names.vrf}`, e);
          },
        );
        const { record } = vrf;
        await ensureVeth(context, host, {
          plan,
          links,
          vrf,
          reowned: previousOwner !== undefined && previousOwner !== env.containerId,
          undo,
        }).catch((e) => {
          throw wrap(`failed to set up veth ${names.host} and terminations`, e);
        });
        await rules.catch((e) => {
          throw wrap(`failed to add the FORWARD accept rules for ${names.host}`, e);
        });

        // Undo steps go in before their step: a step that fails halfway (a
        // create that landed before a timeout) is rolled back too; both undos
        // treat "already gone" as done.
        const delegateConfig = hostDeviceConfig(context, names.guest);
        undo.push("host-device", async () => {
          await runHostDevice(host.runner, {
            command: "DEL",
            env,
            config: delegateConfig,
            timeoutMs: config.delegateTimeoutSeconds * 1000,
          });
        });
        const [sysctls, delegate] = await Promise.allSettled([
          writeSysctls(host.runner, {
            ...interfaceSysctls(names.vrf),
            ...interfaceSysctls(names.host),
          }),
          runHostDevice(host.runner, {
            command: "ADD",
            env,
            config: delegateConfig,
            timeoutMs: config.delegateTimeoutSeconds * 1000,
          }),
        ]);
        if (sysctls.status === "rejected") {
          throw wrap(`failed to set the sysctls of ${names.vrf} and ${names.host}`, sysctls.reason);
        }
        if (delegate.status === "rejected") throw delegate.reason;
        const delegated = delegate.value;

        const key = { vpc: config.vpc, node };
        undo.push("BGPVRFInstance", () =>
          withVpcSiblings(plan, {
            decide: async (siblings) => {
              if (siblings === 0) await (await session.get()).withdrawVrf(key);
            },
          }));
        const declaration = await withVpcSiblings(plan, {
          decide: async () => await (await session.get()).declareVrf(key),
        });
        log.debug("vrf declared", { object: declaration.name, rd: declaration.routeDistinguisher });

        await runChecked(
          host.runner,
          srv6ReplaceArgv({ endpoint: plan.endpoint, table: record.table, dev: names.host }),
        )
          .catch((e) => {
            throw wrap(`failed to install SRv6 ingress route ${plan.endpoint}`, e);
          });
        undo.push(
          "SRv6 route",
          () => host.runner.run(srv6DeleteArgv(plan.endpoint)).then(() => {}),
        );

        log.info("attachment added", {
          table: record.table,
          sid: plan.endpoint,
          object: declaration.name,
        });
        return buildResult(delegated ?? {}, names);
      } catch (error) {
        await undo.run();
        throw error;
      }
    });
  } finally {
    await session.close();
  }
}
