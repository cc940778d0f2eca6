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
  flushTable,
  inspectLinks,
  interfaceSysctls,
  ipBatch,
  type LinkState,
  listVrfTables,
  lowestFreeTable,
  removeForwardAccept,
  srv6DeleteArgv,
  srv6ReplaceArgv,
  tableHasRoutes,
  terminationLines,
  vethCreateLines,
  vethUpLines,
  VRF_STRICT_MODE,
  vrfDeleteLines,
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

/**
 * Finds or creates the VRF and records this container as the attachment's
 * owner, under the node lock so concurrent ADDs never pick the same table.
 */
async function ensureVrf(
  context: VerbContext,
  host: Host,
  step: { plan: AttachmentPlan; links: Map<string, LinkState>; node: string; undo: Rollback },
): Promise<AttachmentRecord> {
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
  const strict = existing ? true : await enableVrfStrictMode(host.runner);
  let created = false;
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
        // Leftover routes: reuse the table only if no VRF owns it, after a flush.
        if (await tableHasRoutes(host.runner, candidate)) {
          if ((await listVrfTables(host.runner)).has(candidate)) continue;
          await flushTable(host.runner, candidate);
        }
        if (await createVrf(host.runner, { name: vrfName, table: candidate }) === "created") {
          table = candidate;
        }
      }
      created = true;
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
  if (created) {
    undo.push(`vrf ${vrfName}`, async () => {
      await ipBatch(host.runner, vrfDeleteLines({ name: vrfName, table: record.table }), {
        tolerate: ROUTE_GONE,
      });
    });
  } else {
    await ipBatch(host.runner, vrfUpLines({ name: vrfName, table: record.table }));
  }
  context.log.debug("vrf ready", { vrf: vrfName, table: record.table, created });
  return record;
}

/** Creates (or repairs) the veth pair and installs terminations in one `ip` process. */
async function ensureVeth(
  context: VerbContext,
  host: Host,
  step: {
    plan: AttachmentPlan;
    links: Map<string, LinkState>;
    record: AttachmentRecord;
    reowned: boolean;
    undo: Rollback;
  },
): Promise<void> {
  const { names } = step.plan;
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
    ...(rebuild ? [`link del ${names.host}`] : []),
    ...(!hostEnd && guestEnd ? [`link del ${names.guest}`] : []),
    ...(!hostEnd || rebuild ? vethCreateLines(veth) : []),
    ...vethUpLines(veth),
    ...terminationLines(context.config.terminations, {
      table: step.record.table,
      host: names.host,
    }),
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
  const plan = planAttachment(config);
  const node = host.nodeName(context);
  const session = new ControlPlaneSession(host, context);
  const undo = new Rollback(log);
  try {
    return await withAttachmentLock(plan, async () => {
      try {
        const { names } = plan;
        const links = await inspectLinks(host.runner, [names.vrf, names.host, names.guest]);
        const previousOwner = (await plan.store.read())[plan.key]?.containerId;
        const record = await ensureVrf(context, host, { plan, links, node, undo }).catch((e) => {
          throw wrap(`failed to set up VRF ${names.vrf}`, e);
        });
        await ensureVeth(context, host, {
          plan,
          links,
          record,
          reowned: previousOwner !== undefined && previousOwner !== env.containerId,
          undo,
        }).catch((e) => {
          throw wrap(`failed to set up veth ${names.host} and terminations`, e);
        });
        const [rules, sysctls] = await Promise.allSettled([
          ensureForwardAccept(host.runner, names.host),
          writeSysctls(host.runner, {
            ...interfaceSysctls(names.vrf),
            ...interfaceSysctls(names.host),
          }),
        ]);
        // Register the rules' undo even when the sysctls failed alongside them.
        if (rules.status === "fulfilled" && rules.value.length > 0) {
          undo.push("FORWARD rules", () => removeForwardAccept(host.runner, names.host));
        }
        for (const outcome of [rules, sysctls]) {
          if (outcome.status === "rejected") {
            throw wrap(`failed to set sysctls/FORWARD rules for ${names.host}`, outcome.reason);
          }
        }

        // Undo steps go in before their step: a step that fails halfway (a
        // create that landed before a timeout) is rolled back too; both undos
        // treat "already gone" as done.
        const delegateConfig = hostDeviceConfig(context, names.guest);
        undo.push("host-device", async () => {
          await runHostDevice(host.runner, { command: "DEL", env, config: delegateConfig });
        });
        const delegated = await runHostDevice(host.runner, {
          command: "ADD",
          env,
          config: delegateConfig,
        });

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
