/**
 * ADD, in the order of SPEC §5: VRF → veth → terminations → host-device →
 * Kubernetes → SRv6 ingress → result. Every step converges when repeated.
 * Each step registers its undo before it runs; a failure rolls back what
 * this ADD made and reports the original error. Independent steps share a
 * round (see {@linkcode together}): the FORWARD rules (they match by name)
 * with the VRF and veth, the interface sysctls with host-device (which only
 * touches the guest end), and the BGPVRFInstance (an API call, through the
 * node agent a socket round trip) with host-device (issue 17: the
 * declaration off the critical path); the SRv6 route waits for both.
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
import { attachmentKey, type AttachmentRecord } from "../state/attachments.ts";
import {
  type AttachmentPlan,
  planAttachment,
  withAttachmentLock,
  withVpcSiblings,
} from "./attachment.ts";
import type { Host, VerbContext } from "./host.ts";
import { podOf, requireSamePod } from "./pod_owner.ts";
import { attachmentResult } from "./result.ts";
import { Rollback } from "./rollback.ts";
import { step, together } from "./steps.ts";
import {
  finishRemovalLocked,
  releasePodInterface,
  removeSrv6Ingress,
  withdrawIfLast,
} from "./teardown.ts";

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
      const intent = await recordIntent(add, found);
      const vrf = await setUpDataPlane(add, intent);
      const [delegated, declaration] = await together(
        () => attachPodInterface(add),
        () => declareVrf(add),
      );
      await installSrv6Ingress(add, vrf);
      await recordComplete(add);
      context.log.info("attachment added", {
        table: vrf.table,
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
}

/** What ADD set out to do, recorded before its first side effect. */
interface Intent extends Found {
  /** The record, phase `adding`, with the table reserved for the VRF. */
  readonly record: AttachmentRecord;
  /** A new sandbox took the attachment over: its veth pair is rebuilt. */
  readonly reowned: boolean;
}

async function inspect(add: Adding): Promise<Found> {
  const { host, plan } = add;
  const { names } = plan;
  const recorded = (await plan.store.read())[plan.key];
  if (recorded?.phase === "removing") {
    // A DEL's removal still pending (the node agent's share, or a DEL that
    // was killed): it is finished first, so the attachment starts afresh.
    await step(
      "finish the pending removal of the attachment",
      () =>
        finishRemovalLocked(host.runner, {
          store: plan.store,
          key: plan.key,
          log: add.context.log,
        }),
    );
  } else {
    // Before anything runs: another pod's attachment is refused untouched.
    requireSamePod(recorded, add.context.env);
  }
  // strict_mode fails while the vrf module is not loaded, or while foreign
  // VRFs share a table; either way ensureVrf turns it on after creating a VRF
  // and reports a failure there.
  const [links, strictMode] = await together(
    () => inspectLinks(host.runner, [names.vrf, names.host, names.guest]),
    () => enableVrfStrictMode(host.runner).catch(() => false),
  );
  const vrf = links.get(names.vrf);
  if (vrf && (vrf.kind !== "vrf" || vrf.table === undefined)) {
    throw new CniError(
      ErrorCode.DataPlane,
      `interface ${names.vrf} exists but is not a VRF (kind ${vrf.kind})`,
    );
  }
  return { links, strictMode };
}

/**
 * The intent, under the node lock and before anything changes on the host:
 * this container owns the attachment, whose VRF uses the table reserved here
 * (an existing VRF's, the previous record's, or the lowest one no record
 * holds, so concurrent ADDs never pick the same). A killed ADD thereby leaves
 * a record that the runtime's next ADD or DEL, or GC, finishes or tears down
 * (names derive from the record's key); the phase is cleared only once ADD
 * completed.
 */
async function recordIntent(add: Adding, found: Found): Promise<Intent> {
  const { context, plan, undo } = add;
  const { config, env } = context;
  let previous: { record: AttachmentRecord | undefined } | undefined;
  undo.push("attachment record", async () => {
    if (!previous) return;
    const { record } = previous;
    await plan.store.update((records) => {
      if (record) records[plan.key] = record;
      else delete records[plan.key];
    });
  });
  const record = await step("record the attachment", () =>
    plan.store.update((records) => {
      previous = { record: records[plan.key] };
      const table = found.links.get(plan.names.vrf)?.table ?? previous.record?.table ??
        freeTable(context, { records, skip: new Set() });
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
        ...(podOf(env) && { pod: podOf(env) }),
        phase: "adding",
      };
      records[plan.key] = next;
      return next;
    }));
  const owner = previous?.record?.containerId;
  return { ...found, record, reowned: owner !== undefined && owner !== env.containerId };
}

/** ADD completed: the record loses its `adding` phase. */
async function recordComplete(add: Adding): Promise<void> {
  const { context, plan } = add;
  await step("record the attachment as complete", () =>
    plan.store.update((records) => {
      const { phase: _, ...record } = records[plan.key] ?? {} as AttachmentRecord;
      if (record.containerId === context.env.containerId) records[plan.key] = record;
    }));
}

/** VRF → veth and terminations, with the FORWARD rules (they match by name) alongside. */
async function setUpDataPlane(add: Adding, intent: Intent): Promise<VrfOutcome> {
  const { host, undo } = add;
  const { names } = add.plan;
  let rulesAdded: string[] = [];
  undo.push("FORWARD rules", async () => {
    if (rulesAdded.length > 0) await removeForwardAccept(host.runner, names.host);
  });
  const [vrf] = await together(
    async () => {
      const vrf = await step(`set up VRF ${names.vrf}`, () => ensureVrf(add, intent));
      await step(`set up veth ${names.host} and terminations`, () => ensureVeth(add, intent, vrf));
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
 * {@linkcode declareVrf} runs beside it (issue 17: the API round trip off the
 * critical path); SPEC §5's other order holds: the SRv6 route comes after
 * both.
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

/**
 * After the pod interface and the declaration, so remote traffic arrives only
 * once everything behind the SID is in place (SPEC §5).
 */
async function installSrv6Ingress(add: Adding, vrf: VrfOutcome): Promise<void> {
  const { host, plan } = add;
  add.undo.push("SRv6 route", () => removeSrv6Ingress(host.runner, plan.endpoint));
  await step(
    `install SRv6 ingress route ${plan.endpoint}`,
    () =>
      runChecked(
        host.runner,
        srv6ReplaceArgv({ endpoint: plan.endpoint, table: vrf.table, dev: plan.names.host }),
      ),
  );
}

/** The attachment's VRF after {@linkcode ensureVrf}. */
interface VrfOutcome {
  readonly table: number;
  /** This ADD created the VRF: its IPv4 half is still to do. */
  readonly created: boolean;
}

/**
 * Creates the VRF on the reserved table unless it exists. The kernel
 * arbitrates tables held by VRFs we have no record of (strict_mode refuses
 * them): the record then moves to the next free table *before* the next
 * try, so it never names a table our VRF is not on.
 */
async function ensureVrf(add: Adding, intent: Intent): Promise<VrfOutcome> {
  const { context, host, plan, undo } = add;
  const vrfName = plan.names.vrf;
  const existing = intent.links.get(vrfName)?.table;
  if (existing !== undefined) return { table: existing, created: false };
  const created: { table?: number } = {};
  undo.push(`vrf ${vrfName}`, async () => {
    if (created.table === undefined) return;
    await ipBatch(host.runner, vrfDeleteLines({ name: vrfName, table: created.table }), {
      tolerate: ROUTE_GONE,
    });
  });
  const refused = new Set<number>();
  let table = intent.record.table;
  while (await createVrf(host.runner, { name: vrfName, table }) === "table-in-use") {
    refused.add(table);
    table = await plan.store.update((records) => {
      const next = freeTable(context, { records, skip: refused });
      records[plan.key] = { ...records[plan.key]!, table: next };
      return next;
    });
  }
  created.table = table;
  // A failure from here on leaves a VRF the undo above removes.
  if (!intent.strictMode) await writeSysctls(host.runner, VRF_STRICT_MODE);
  context.log.debug("vrf created", { vrf: vrfName, table });
  return { table, created: true };
}

/** The lowest table in range that no record (but `records[own]`) holds and `skip` lacks. */
function freeTable(
  context: VerbContext,
  from: { records: Record<string, AttachmentRecord>; skip: ReadonlySet<number> },
): number {
  const { vrfTableMin: min, vrfTableMax: max } = context.config;
  const own = attachmentKey(context.config);
  const used = new Set(from.skip);
  for (const [key, record] of Object.entries(from.records)) {
    if (key !== own) used.add(record.table);
  }
  const table = lowestFreeTable(used, { min, max });
  if (table === undefined) {
    throw new CniError(
      ErrorCode.DataPlane,
      `no free VRF table in ${min}..${max} (vrf_table_min/vrf_table_max)`,
    );
  }
  return table;
}

/**
 * Creates (or repairs) the veth pair and installs terminations, with the
 * VRF's IPv4 half, in one `ip` process.
 */
async function ensureVeth(add: Adding, found: Intent, vrf: VrfOutcome): Promise<void> {
  const { context, host } = add;
  const { names } = add.plan;
  const { table } = vrf;
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
