/**
 * ADD, in the order of SPEC §5: VRF → veth → terminations → host-device →
 * Kubernetes → SRv6 ingress → result. Every step converges when repeated.
 * Each step registers its undo before it runs; a failure rolls back what
 * this ADD made and reports the original error. Independent steps share a
 * process round (see {@linkcode together}): the FORWARD rules (they match by
 * name) with the VRF and veth, the interface sysctls with host-device (which
 * only touches the guest end).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Result } from "../cni/result.ts";
import { hostDeviceConfig, runHostDevice } from "../delegate/host_device.ts";
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
import type { Host, VerbContext } from "./host.ts";
import { Rollback } from "./rollback.ts";
import { step, together } from "./steps.ts";
import { releasePodInterface, removeSrv6Ingress, withdrawIfLast } from "./teardown.ts";

/** ADD: configures the attachment and returns the result for the runtime. */
export async function cmdAdd(context: VerbContext, host: Host): Promise<Result> {
  const { config, env, log } = context;
  const plan = planAttachment(config, context);
  const { names } = plan;
  const node = host.nodeName();
  const undo = new Rollback(log);
  return await withAttachmentLock(plan, async () => {
    try {
      // strict_mode fails while the vrf module is not loaded, or while
      // foreign VRFs share a table; either way ensureVrf turns it on after
      // creating a VRF and reports a failure there.
      const [links, strictMode] = await together(
        () => inspectLinks(host.runner, [names.vrf, names.host, names.guest]),
        () => enableVrfStrictMode(host.runner).catch(() => false),
      );
      const previousOwner = (await plan.store.read())[plan.key]?.containerId;

      let rulesAdded: string[] = [];
      undo.push("FORWARD rules", async () => {
        if (rulesAdded.length > 0) await removeForwardAccept(host.runner, names.host);
      });
      const [vrf] = await together(
        async () => {
          const vrf = await step(
            `set up VRF ${names.vrf}`,
            () => ensureVrf(context, host, { plan, links, node, strictMode, undo }),
          );
          await step(
            `set up veth ${names.host} and terminations`,
            () =>
              ensureVeth(context, host, {
                plan,
                links,
                vrf,
                reowned: previousOwner !== undefined && previousOwner !== env.containerId,
                undo,
              }),
          );
          return vrf;
        },
        () =>
          step(`add the FORWARD accept rules for ${names.host}`, async () => {
            rulesAdded = await ensureForwardAccept(host.runner, names.host);
          }),
      );

      undo.push("host-device", () => releasePodInterface(context, host, { plan, owner: env }));
      const [, delegated] = await together(
        () =>
          step(
            `set the sysctls of ${names.vrf} and ${names.host}`,
            () =>
              writeSysctls(host.runner, {
                ...interfaceSysctls(names.vrf),
                ...interfaceSysctls(names.host),
              }),
          ),
        () =>
          runHostDevice(host.runner, {
            command: "ADD",
            env,
            config: hostDeviceConfig(config, names.guest),
            timeoutMs: config.delegateTimeoutSeconds * 1000,
          }),
      );

      undo.push("BGPVRFInstance", () => withdrawIfLast(context, host, { plan, node: () => node }));
      const declaration = await withVpcSiblings(plan, {
        decide: async () => await (await host.controlPlane()).declareVrf({ vpc: config.vpc, node }),
      });
      log.debug("vrf declared", { object: declaration.name, rd: declaration.routeDistinguisher });

      undo.push("SRv6 route", () => removeSrv6Ingress(host.runner, plan.endpoint));
      await step(
        `install SRv6 ingress route ${plan.endpoint}`,
        () =>
          runChecked(
            host.runner,
            srv6ReplaceArgv({ endpoint: plan.endpoint, table: vrf.record.table, dev: names.host }),
          ),
      );

      log.info("attachment added", {
        table: vrf.record.table,
        sid: plan.endpoint,
        object: declaration.name,
      });
      return buildResult(delegated ?? {}, names);
    } catch (error) {
      await undo.run();
      throw error;
    }
  });
}

/** The attachment's VRF after {@linkcode ensureVrf}. */
interface VrfOutcome {
  /** The attachment record, with the VRF's table. */
  readonly record: AttachmentRecord;
  /** This ADD created the VRF: its IPv4 half is still to do. */
  readonly created: boolean;
}

/**
 * Finds or creates the VRF and records this container as the attachment's
 * owner, under the node lock so concurrent ADDs never pick the same table.
 */
async function ensureVrf(
  context: VerbContext,
  host: Host,
  input: {
    plan: AttachmentPlan;
    links: Map<string, LinkState>;
    node: string;
    strictMode: boolean;
    undo: Rollback;
  },
): Promise<VrfOutcome> {
  const { config, env } = context;
  const { plan, undo } = input;
  const vrfName = plan.names.vrf;
  const existing = input.links.get(vrfName);
  if (existing && (existing.kind !== "vrf" || existing.table === undefined)) {
    throw new CniError(
      ErrorCode.DataPlane,
      `interface ${vrfName} exists but is not a VRF (kind ${existing.kind})`,
    );
  }
  let createdTable: number | undefined;
  undo.push(`vrf ${vrfName}`, async () => {
    if (createdTable === undefined) return;
    await ipBatch(host.runner, vrfDeleteLines({ name: vrfName, table: createdTable }), {
      tolerate: ROUTE_GONE,
    });
  });
  let previous: { record: AttachmentRecord | undefined } | undefined;
  undo.push("attachment record", async () => {
    if (!previous) return;
    const { record } = previous;
    await plan.store.update((records) => {
      if (record) records[plan.key] = record;
      else delete records[plan.key];
    });
  });
  const record = await plan.store.update(async (records) => {
    previous = { record: records[plan.key] };
    let table = existing?.table;
    if (table === undefined) {
      table = await createVrfOnFreeTable(context, host, { name: vrfName, records });
      createdTable = table;
      // A failure from here on leaves a VRF the undo above removes.
      if (!input.strictMode) await writeSysctls(host.runner, VRF_STRICT_MODE);
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
      node: input.node,
    };
    records[plan.key] = next;
    return next;
  });
  const created = createdTable !== undefined;
  context.log.debug("vrf ready", { vrf: vrfName, table: record.table, created });
  return { record, created };
}

/**
 * Creates the VRF on the lowest table no record holds; the kernel arbitrates
 * tables held by VRFs we have no record of (strict_mode refuses them).
 */
async function createVrfOnFreeTable(
  context: VerbContext,
  host: Host,
  vrf: { name: string; records: Record<string, AttachmentRecord> },
): Promise<number> {
  const { vrfTableMin: min, vrfTableMax: max } = context.config;
  const used = new Set(Object.values(vrf.records).map((r) => r.table));
  for (;;) {
    const table = lowestFreeTable(used, { min, max });
    if (table === undefined) {
      throw new CniError(
        ErrorCode.DataPlane,
        `no free VRF table in ${min}..${max} (vrf_table_min/vrf_table_max)`,
      );
    }
    used.add(table);
    if (await createVrf(host.runner, { name: vrf.name, table }) === "created") return table;
  }
}

/**
 * Creates (or repairs) the veth pair and installs terminations, with the
 * VRF's IPv4 half, in one `ip` process.
 */
async function ensureVeth(
  context: VerbContext,
  host: Host,
  input: {
    plan: AttachmentPlan;
    links: Map<string, LinkState>;
    vrf: VrfOutcome;
    reowned: boolean;
    undo: Rollback;
  },
): Promise<void> {
  const { names } = input.plan;
  const { table } = input.vrf.record;
  const veth = {
    host: names.host,
    guest: names.guest,
    vrf: names.vrf,
    ...(context.config.mtu && { mtu: context.config.mtu }),
  };
  const hostEnd = input.links.get(names.host);
  const guestEnd = input.links.get(names.guest);
  // The guest end lives on the host only until host-device moves it. If it is
  // gone, or a new sandbox took the attachment over, the pair is rebuilt so
  // host-device gets a fresh device to move.
  const rebuild = hostEnd !== undefined && (guestEnd === undefined || input.reowned);
  const lines = [
    // A new VRF still needs its IPv4 half (before any IPv4 route goes in); an
    // existing one is brought up and its unreachable defaults repaired.
    ...(input.vrf.created ? vrfIpv4TableLines({ table }) : vrfUpLines({ name: names.vrf, table })),
    ...(rebuild ? [`link del ${names.host}`] : []),
    ...(!hostEnd && guestEnd ? [`link del ${names.guest}`] : []),
    ...(!hostEnd || rebuild ? vethCreateLines(veth) : []),
    ...vethUpLines(veth),
    ...terminationLines(context.config.terminations, { table, host: names.host }),
  ];
  if (!hostEnd || rebuild) {
    input.undo.push(`veth ${names.host}`, async () => {
      await ipBatch(host.runner, [`link del ${names.host}`], { tolerate: ROUTE_GONE });
    });
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
