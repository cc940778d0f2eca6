/**
 * CHECK: compares the attachment's state on the host and in the API with what
 * ADD would have made, and reports every difference at once.
 *
 * @module
 */

import { CniError, ErrorCode, invalidConfig } from "../cni/errors.ts";
import type { VerbContext } from "../cni/invocation.ts";
import { parseResult, type Result } from "../cni/result.ts";
import { runHostDevice } from "../delegate/host_device.ts";
import { formatNetwork, parsePrefix } from "../ids/mod.ts";
import {
  forwardAcceptProblems,
  inspectLinks,
  interfaceSysctls,
  readSysctls,
  srv6Route,
  tableRoutes,
  UNREACHABLE_METRIC,
  VRF_STRICT_MODE,
} from "../iproute2/mod.ts";
import type { IpRoute } from "../iproute2/routes.ts";
import { hostDeviceConfig } from "./add.ts";
import { planAttachment } from "./attachment.ts";
import { ControlPlaneSession, type Host } from "./host.ts";

/**
 * host-device's part of our result: the interfaces it reported (those inside
 * the sandbox), with ip indices mapped back to them.
 */
export function delegatePart(result: Result): Result {
  const interfaces = result.interfaces ?? [];
  const kept = interfaces.flatMap((entry, i) => (entry.sandbox ? [i] : []));
  const index = new Map(kept.map((old, i) => [old, i]));
  return {
    ...result,
    interfaces: kept.map((i) => interfaces[i]!),
    ...(result.ips && {
      ips: result.ips.map((ip) => {
        if (ip.interface === undefined) return ip;
        const { interface: old, ...rest } = ip;
        const mapped = index.get(old);
        return mapped === undefined ? rest : { ...rest, interface: mapped };
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
  const plan = planAttachment(context);
  const { names } = plan;
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
      `attachment ${names.host} belongs to container ${record.containerId}, not ${env.containerId}`,
    );
  }
  const session = new ControlPlaneSession(host, context);
  const wantedSysctls = {
    ...VRF_STRICT_MODE,
    ...interfaceSysctls(names.vrf),
    ...interfaceSysctls(names.host),
  };
  try {
    const [links, sysctls, ruleProblems, routes, ingress, apiDiffs] = await Promise.all([
      inspectLinks(host.runner, [names.vrf, names.host, names.guest]),
      readSysctls(host.runner, Object.keys(wantedSysctls)).catch((e: Error) => e),
      forwardAcceptProblems(host.runner, names.host),
      tableRoutes(host.runner, record.table),
      srv6Route(host.runner, plan.endpoint),
      session.get().then((plane) => plane.verifyVrf({ vpc: config.vpc, node: record.node })),
    ]);
    const problems: string[] = [];
    const vrf = links.get(names.vrf);
    if (!vrf) problems.push(`VRF ${names.vrf} is missing`);
    else {
      if (vrf.kind !== "vrf") problems.push(`${names.vrf} is a ${vrf.kind}, not a VRF`);
      if (vrf.table !== record.table) {
        problems.push(`VRF ${names.vrf} uses table ${vrf.table}, expected ${record.table}`);
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
      if (config.mtu !== undefined && hostEnd.mtu !== config.mtu) {
        problems.push(`${names.host} has MTU ${hostEnd.mtu}, expected ${config.mtu}`);
      }
    }
    // host-device renamed the guest end to CNI_IFNAME inside the pod; its CHECK looks there.
    if (links.has(names.guest)) {
      problems.push(`guest end ${names.guest} is still on the host, not in the pod`);
    }
    if (sysctls instanceof Error) problems.push(sysctls.message);
    else {
      for (const [key, want] of Object.entries(wantedSysctls)) {
        if (sysctls[key] !== want) {
          problems.push(`sysctl ${key} is ${sysctls[key]}, expected ${want}`);
        }
      }
    }
    problems.push(...ruleProblems);
    problems.push(
      ...routeProblems(routes, {
        terminations: config.terminations,
        host: names.host,
        table: record.table,
      }),
    );
    if (!ingress) problems.push(`SRv6 ingress route ${plan.endpoint}/128 is missing`);
    else if (ingress.action !== "End.DT46" || !sameTable(ingress.vrftable, record.table)) {
      problems.push(
        `SRv6 route ${plan.endpoint}/128 is ${ingress.action} table ${
          ingress.vrftable ?? ingress.table
        }, expected End.DT46 vrftable ${record.table}`,
      );
    }
    problems.push(...apiDiffs.map((d) => `BGPVRFInstance: ${d}`));
    if (problems.length > 0) {
      throw new CniError(
        ErrorCode.StateDiverged,
        `CHECK found ${problems.length} difference(s): ${problems.join("; ")}`,
      );
    }
    await runHostDevice(host.runner, {
      command: "CHECK",
      env,
      config: { ...hostDeviceConfig(context, names.guest), prevResult: delegatePart(prevResult) },
      timeoutMs: config.delegateTimeoutSeconds * 1000,
    });
  } finally {
    await session.close();
  }
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
  want: { terminations: VerbContext["config"]["terminations"]; host: string; table: number },
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
