/**
 * CHECK: compares the attachment's state on the host and in the API with what
 * ADD would have made, and reports every difference at once.
 *
 * @module
 */

import { CniError, ErrorCode, invalidConfig } from "../cni/errors.ts";
import { parseResult, type Result } from "../cni/result.ts";
import type { Termination } from "../config/mod.ts";
import { hostDeviceConfig, runHostDevice } from "../delegate/host_device.ts";
import { formatNetwork, type InterfaceNames, parsePrefix } from "../ids/mod.ts";
import {
  forwardAcceptProblems,
  inspectLinks,
  interfaceSysctls,
  type LinkState,
  readSysctls,
  srv6Route,
  tableRoutes,
  UNREACHABLE_METRIC,
  VRF_STRICT_MODE,
} from "../iproute2/mod.ts";
import type { IpRoute } from "../iproute2/routes.ts";
import type { AttachmentRecord } from "../state/attachments.ts";
import { type AttachmentPlan, planAttachment } from "./attachment.ts";
import type { Host, VerbContext } from "./host.ts";

/**
 * host-device's part of our result: the pod interface it reported (in the
 * sandbox, named `ifname`; a chained result may hold other plugins' pod
 * interfaces too), with the ips of that interface re-indexed to it.
 */
export function delegatePart(result: Result, ifname: string): Result {
  const interfaces = result.interfaces ?? [];
  const ours = interfaces.findIndex((entry) => entry.sandbox && entry.name === ifname);
  return {
    ...result,
    interfaces: ours < 0 ? [] : [interfaces[ours]!],
    ...(result.ips && {
      ips: result.ips.flatMap((ip) => {
        if (ip.interface === undefined) return [ip];
        const { interface: index, ...rest } = ip;
        return index === ours ? [{ ...rest, interface: 0 }] : [];
      }),
    }),
  };
}

function sameTable(value: number | string | undefined, table: number): boolean {
  return value !== undefined && Number(value) === table;
}

/** CHECK of the configured attachment. */
export async function cmdCheck(context: VerbContext, host: Host): Promise<void> {
  const { config, env } = context;
  if (config.raw.prevResult === undefined) {
    throw invalidConfig("prevResult", undefined, "is required for CHECK");
  }
  const prevResult = parseResult(config.raw.prevResult, "prevResult");
  const plan = planAttachment(config, context);
  const { names } = plan;
  const record = await ownedRecord(context, plan);
  const { table } = record;
  const wantedSysctls = {
    ...VRF_STRICT_MODE,
    ...interfaceSysctls(names.vrf),
    ...interfaceSysctls(names.host),
  };
  // Every read in one process round; a failed sysctl read is a difference, not an error.
  const [links, sysctls, ruleProblems, routes, ingress, apiDiffs] = await Promise.all([
    inspectLinks(host.runner, [names.vrf, names.host, names.guest]),
    readSysctls(host.runner, Object.keys(wantedSysctls)).catch((e: Error) => e),
    forwardAcceptProblems(host.runner, names.host),
    tableRoutes(host.runner, table),
    srv6Route(host.runner, plan.endpoint),
    host.controlPlane().then((plane) => plane.verifyVrf({ vpc: config.vpc, node: record.node })),
  ]);
  const problems = [
    ...linkProblems(links, { names, table, mtu: config.mtu }),
    ...(sysctls instanceof Error ? [sysctls.message] : sysctlProblems(sysctls, wantedSysctls)),
    ...ruleProblems,
    ...routeProblems(routes, { terminations: config.terminations, host: names.host, table }),
    ...ingressProblems(ingress, { endpoint: plan.endpoint, table }),
    ...apiDiffs.map((d) => `BGPVRFInstance: ${d}`),
  ];
  if (problems.length > 0) {
    throw new CniError(
      ErrorCode.StateDiverged,
      `CHECK found ${problems.length} difference(s): ${problems.join("; ")}`,
    );
  }
  await runHostDevice(host.runner, {
    command: "CHECK",
    env,
    config: {
      ...hostDeviceConfig(config, names.guest),
      prevResult: delegatePart(prevResult, env.ifname),
    },
    timeoutMs: config.delegateTimeoutSeconds * 1000,
  });
}

/** The attachment's record, if this container owns it (code 3 otherwise). */
async function ownedRecord(context: VerbContext, plan: AttachmentPlan): Promise<AttachmentRecord> {
  const { config, env } = context;
  const record = (await plan.store.read())[plan.key];
  if (!record) {
    throw new CniError(
      ErrorCode.UnknownContainer,
      `no state for vpc ${config.vpc.text} attachment ${config.attachment.text}: ADD did not run or DEL already did`,
    );
  }
  if (record.containerId !== env.containerId) {
    throw new CniError(
      ErrorCode.UnknownContainer,
      `attachment ${plan.names.host} belongs to container ${record.containerId}, not ${env.containerId}`,
    );
  }
  if (record.phase) {
    throw new CniError(
      ErrorCode.StateDiverged,
      `attachment ${plan.names.host}: ${
        record.phase === "adding"
          ? "ADD did not complete (interrupted, or still running)"
          : "DEL did not complete (the node agent's removal pending, interrupted, or still running)"
      }`,
    );
  }
  return record;
}

function linkProblems(
  links: Map<string, LinkState>,
  want: { names: InterfaceNames; table: number; mtu: number | undefined },
): string[] {
  const { names, table } = want;
  const problems: string[] = [];
  const vrf = links.get(names.vrf);
  if (!vrf) problems.push(`VRF ${names.vrf} is missing`);
  else {
    if (vrf.kind !== "vrf") problems.push(`${names.vrf} is a ${vrf.kind}, not a VRF`);
    if (vrf.table !== table) {
      problems.push(`VRF ${names.vrf} uses table ${vrf.table}, expected ${table}`);
    }
    if (!vrf.up) problems.push(`VRF ${names.vrf} is down`);
  }
  const hostEnd = links.get(names.host);
  if (!hostEnd) problems.push(`host veth ${names.host} is missing`);
  else {
    if (hostEnd.master !== names.vrf) {
      problems.push(
        `${names.host} is enslaved to ${hostEnd.master ?? "nothing"}, expected ${names.vrf}`,
      );
    }
    if (!hostEnd.up) problems.push(`${names.host} is down`);
    if (want.mtu !== undefined && hostEnd.mtu !== want.mtu) {
      problems.push(`${names.host} has MTU ${hostEnd.mtu}, expected ${want.mtu}`);
    }
  }
  // host-device renamed the guest end to CNI_IFNAME inside the pod; its CHECK looks there.
  if (links.has(names.guest)) {
    problems.push(`guest end ${names.guest} is still on the host, not in the pod`);
  }
  return problems;
}

function sysctlProblems(found: Record<string, string>, wanted: Record<string, string>): string[] {
  return Object.entries(wanted).flatMap(([key, want]) =>
    found[key] === want ? [] : [`sysctl ${key} is ${found[key]}, expected ${want}`]
  );
}

function ingressProblems(
  ingress: IpRoute | undefined,
  want: { endpoint: string; table: number },
): string[] {
  if (!ingress) return [`SRv6 ingress route ${want.endpoint}/128 is missing`];
  if (ingress.action === "End.DT46" && sameTable(ingress.vrftable, want.table)) return [];
  return [
    `SRv6 route ${want.endpoint}/128 is ${ingress.action} table ${
      ingress.vrftable ?? ingress.table
    }, expected End.DT46 vrftable ${want.table}`,
  ];
}

/** `ip` prints host routes without a length and /0 as "default"; canonicalise both. */
function routeNetwork(dst: string, family: 4 | 6): string | undefined {
  const text = dst === "default"
    ? (family === 4 ? "0.0.0.0/0" : "::/0")
    : dst.includes("/")
    ? dst
    : `${dst}/${family === 4 ? 32 : 128}`;
  const prefix = parsePrefix(text);
  return prefix ? formatNetwork(prefix) : undefined;
}

function routeProblems(
  routes: IpRoute[],
  want: { terminations: readonly Termination[]; host: string; table: number },
): string[] {
  const problems: string[] = [];
  for (const t of want.terminations) {
    const found = routes.find((r) =>
      r.type !== "unreachable" && routeNetwork(r.dst, t.family) === t.network
    );
    if (!found) problems.push(`termination ${t.network} is missing from table ${want.table}`);
    else if (found.dev !== want.host || (t.via !== undefined && found.gateway !== t.via)) {
      problems.push(
        `termination ${t.network} goes via ${found.gateway ?? "-"} dev ${found.dev}, expected ${
          t.via ?? "-"
        } dev ${want.host}`,
      );
    }
  }
  const unreachable = routes.filter((r) => r.type === "unreachable" && r.dst === "default").length;
  if (unreachable < 2) {
    problems.push(
      `table ${want.table} lacks its unreachable default routes (metric ${UNREACHABLE_METRIC})`,
    );
  }
  return problems;
}
