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

import type { CniEnv } from "../cni/env.ts";
import { CniError, ErrorCode } from "../cni/errors.ts";
import { formatIp } from "../ids/mod.ts";
import { parseResult, type Result } from "../cni/result.ts";
import { delegateCniArgs, refuseDeviceId, requestedMac } from "../config/mod.ts";
import type { VrfDeclaration } from "../kube/control_plane.ts";
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
import { attachmentResult } from "./result.ts";
import { Rollback } from "./rollback.ts";
import { step, together } from "./steps.ts";
import { releasePodInterface, removeSrv6Ingress, withdrawIfLast } from "./teardown.ts";

/** ADD: configures the attachment and returns the result for the runtime. */
export async function cmdAdd(context: VerbContext, host: Host): Promise<Result> {
  const { config, env } = context;
  refuseDeviceId(config.runtime);
  const previous = config.raw.prevResult === undefined
    ? undefined
    : parseResult(config.raw.prevResult, "prevResult");
  const mac = requestedMac(config.runtime, env.args);
  const delegateEnv = { ...env, args: delegateCniArgs(env.args, config.ipam) };
  const plan = planAttachment(config, context);
  const add: Adding = {
    context,
    host,
    plan,
    node: host.nodeName(),
    ...(mac && { mac }),
    delegateEnv,
    undo: new Rollback(context.log),
  };
  return await withAttachmentLock(plan, async () => {
    try {
      const found = await inspect(add);
      const vrf = await setUpDataPlane(add, found);
      const delegated = await attachPodInterface(add);
      const declaration = await declareVrf(add);
      await installSrv6Ingress(add, vrf);
      context.log.info("attachment added", {
        table: vrf.record.table,
        sid: plan.endpoint,
        object: declaration.name,
      });
      return attachmentResult(delegated ?? {}, {
        names: plan.names,
        ...(previous && { previous }),
      });
    } catch (error) {
      await add.undo.run();
      throw error;
    }
  });
}

/** One ADD in progress: what every step needs, and the undo stack. */
interface Adding {
  readonly context: VerbContext;
  readonly host: Host;
  readonly plan: AttachmentPlan;
  /** The node the BGPVRFInstance is declared for. */
  readonly node: string;
  /** MAC the runtime asked for the pod interface (host-device keeps it when moving the end). */
  readonly mac?: string;
  /** host-device ADD's environment: `CNI_ARGS` `IP` in the CIDR form static needs. */
  readonly delegateEnv: CniEnv;
  readonly undo: Rollback;
}

/** What the host has of the attachment before ADD changes anything. */
interface Found {
  readonly links: Map<string, LinkState>;
  /** False: `net.vrf.strict_mode` is still to be turned on once a VRF exists. */
  readonly strictMode: boolean;
  /** A new sandbox took the attachment over: its veth pair is rebuilt. */
  readonly reowned: boolean;
}

async function inspect(add: Adding): Promise<Found> {
  const { host, plan } = add;
  const { names } = plan;
  // strict_mode fails while the vrf module is not loaded, or while foreign
  // VRFs share a table; either way ensureVrf turns it on after creating a VRF
  // and reports a failure there.
  const [links, strictMode] = await together(
    () => inspectLinks(host.runner, [names.vrf, names.host, names.guest]),
    () => enableVrfStrictMode(host.runner).catch(() => false),
  );
  const previousOwner = (await plan.store.read())[plan.key]?.containerId;
  const reowned = previousOwner !== undefined && previousOwner !== add.context.env.containerId;
  return { links, strictMode, reowned };
}

/** VRF → veth and terminations, with the FORWARD rules (they match by name) alongside. */
async function setUpDataPlane(add: Adding, found: Found): Promise<VrfOutcome> {
  const { host, undo } = add;
  const { names } = add.plan;
  let rulesAdded: string[] = [];
  undo.push("FORWARD rules", async () => {
    if (rulesAdded.length > 0) await removeForwardAccept(host.runner, names.host);
  });
  const [vrf] = await together(
    async () => {
      const vrf = await step(`set up VRF ${names.vrf}`, () => ensureVrf(add, found));
      await step(`set up veth ${names.host} and terminations`, () => ensureVeth(add, found, vrf));
      return vrf;
    },
    () =>
      step(`add the FORWARD accept rules for ${names.host}`, async () => {
        rulesAdded = await ensureForwardAccept(host.runner, names.host);
      }),
  );
  return vrf;
}

/**
 * host-device moves the guest end into the pod and runs IPAM; the host
 * interfaces' sysctls go alongside (host-device only touches the guest end).
 */
async function attachPodInterface(add: Adding): Promise<Result | undefined> {
  const { context, host, plan } = add;
  const { config, env } = context;
  const { names } = plan;
  add.undo.push("host-device", () => releasePodInterface(context, host, { plan, owner: env }));
  const [, delegated] = await together(
    () =>
      step(`set the sysctls of ${names.vrf} and ${names.host}`, () =>
        writeSysctls(host.runner, {
          ...interfaceSysctls(names.vrf),
          ...interfaceSysctls(names.host),
        })),
    () =>
      runHostDevice(host.runner, {
        command: "ADD",
        env: add.delegateEnv,
        config: hostDeviceConfig(config, names.guest),
        timeoutMs: config.delegateTimeoutSeconds * 1000,
      }),
  );
  return delegated;
}

/** The (VPC, node) BGPVRFInstance, decided under the VPC lock with its siblings. */
async function declareVrf(add: Adding): Promise<VrfDeclaration> {
  const { context, host, plan, node } = add;
  add.undo.push("BGPVRFInstance", () => withdrawIfLast(context, host, { plan, node: () => node }));
  const declaration = await withVpcSiblings(plan, {
    decide: async () =>
      await (await host.controlPlane()).declareVrf({ vpc: context.config.vpc, node }),
  });
  context.log.debug("vrf declared", {
    object: declaration.name,
    rd: declaration.routeDistinguisher,
  });
  return declaration;
}

/** Last, so remote traffic arrives only once everything behind the SID is in place. */
async function installSrv6Ingress(add: Adding, vrf: VrfOutcome): Promise<void> {
  const { host, plan } = add;
  add.undo.push("SRv6 route", () => removeSrv6Ingress(host.runner, plan.endpoint));
  await step(
    `install SRv6 ingress route ${plan.endpoint}`,
    () =>
      runChecked(
        host.runner,
        srv6ReplaceArgv({ endpoint: plan.endpoint, table: vrf.record.table, dev: plan.names.host }),
      ),
  );
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
async function ensureVrf(add: Adding, found: Found): Promise<VrfOutcome> {
  const { context, host, plan, undo } = add;
  const { config, env } = context;
  const vrfName = plan.names.vrf;
  const existing = found.links.get(vrfName);
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
      if (!found.strictMode) await writeSysctls(host.runner, VRF_STRICT_MODE);
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
      node: add.node,
      locator: `${formatIp(config.locator)}/${config.locator.length}`,
      ...(config.ipam !== undefined && { ipam: config.ipam }),
      cniVersion: config.cniVersion,
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
async function ensureVeth(add: Adding, found: Found, vrf: VrfOutcome): Promise<void> {
  const { context, host } = add;
  const { names } = add.plan;
  const { table } = vrf.record;
  const veth = {
    host: names.host,
    guest: names.guest,
    vrf: names.vrf,
    ...(context.config.mtu && { mtu: context.config.mtu }),
    ...(add.mac && { mac: add.mac }),
  };
  const hostEnd = found.links.get(names.host);
  const guestEnd = found.links.get(names.guest);
  // The guest end lives on the host only until host-device moves it. If it is
  // gone, or a new sandbox took the attachment over, the pair is rebuilt so
  // host-device gets a fresh device to move.
  const rebuild = hostEnd !== undefined && (guestEnd === undefined || found.reowned);
  const lines = [
    // A new VRF still needs its IPv4 half (before any IPv4 route goes in); an
    // existing one is brought up and its unreachable defaults repaired.
    ...(vrf.created ? vrfIpv4TableLines({ table }) : vrfUpLines({ name: names.vrf, table })),
    ...(rebuild ? [`link del ${names.host}`] : []),
    ...(!hostEnd && guestEnd ? [`link del ${names.guest}`] : []),
    ...(!hostEnd || rebuild ? vethCreateLines(veth) : []),
    ...vethUpLines(veth),
    ...terminationLines(context.config.terminations, { table, host: names.host }),
  ];
  if (!hostEnd || rebuild) {
    add.undo.push(`veth ${names.host}`, async () => {
      await ipBatch(host.runner, [`link del ${names.host}`], { tolerate: ROUTE_GONE });
    });
  }
  await ipBatch(host.runner, lines);
}
