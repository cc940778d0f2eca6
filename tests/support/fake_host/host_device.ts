/**
 * The fake `host-device` CNI plugin (containernetworking/plugins, with the
 * `static` IPAM plugin it delegates to), acting on a {@linkcode Kernel}:
 *
 * - ADD moves `device` into `CNI_NETNS` (down, renamed `temp_<ifindex>`,
 *   moved, alias = original name, renamed `CNI_IFNAME`, up), configures the
 *   static addresses and routes there and prints a result in the requested
 *   `cniVersion` (4-space indented, like the Go plugin).
 * - DEL with an empty `CNI_NETNS` succeeds; otherwise it moves `CNI_IFNAME`
 *   back and restores the name from the alias. Like the real plugin it FAILS
 *   with `failed to find "<ifname>": Link not found` when the device is not in
 *   the netns (option `delegateDelMissing: "ok"` relaxes that), and with
 *   `failed to open netns` when the netns is gone.
 * - CHECK needs `prevResult` and verifies interface, sandbox, MAC, addresses
 *   and routes inside the netns.
 *
 * Errors are CNI error JSON on stdout (`code` 999 for plugin errors, as skel
 * wraps plain Go errors), exit 1.
 *
 * @module
 */

import {
  type Address,
  type Family,
  formatAddress,
  maskPrefix,
  parseAddress,
  parsePrefix,
  type Prefix,
  prefixText,
} from "./addresses.ts";
import {
  type CommandResult,
  HOST_NETNS,
  type Kernel,
  KernelError,
  type LinkRecord,
} from "./kernel.ts";

/** The delegates this module emulates. */
export type DelegateName = "host-device" | "static";

class PluginError extends Error {
  constructor(readonly code: number, msg: string, readonly details?: string) {
    super(msg);
  }
}

function pretty(value: unknown): string {
  return `${JSON.stringify(value, null, 4)}\n`;
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function goErr(error: unknown): string {
  return error instanceof KernelError ? error.goText() : (error as Error).message;
}

interface StaticAddress {
  address: Prefix;
  addressText: string;
  gateway?: Address;
}

interface StaticRoute {
  dst: Prefix;
  gw?: Address;
}

interface IpamResult {
  addresses: StaticAddress[];
  routes: StaticRoute[];
  dns: Record<string, unknown>;
}

function cidrAddress(prefix: Prefix): string {
  return `${formatAddress(prefix)}/${prefix.len}`;
}

/** Parses the `static` IPAM section like the plugin's LoadIPAMConfig. */
function loadStatic(ipam: Record<string, unknown>): IpamResult {
  const addresses: StaticAddress[] = [];
  for (const entry of (ipam.addresses as unknown[] | undefined) ?? []) {
    const { address, gateway } = entry as { address?: unknown; gateway?: unknown };
    const text = String(address ?? "");
    const prefix = text.includes("/") ? parsePrefix(text) : undefined;
    if (!prefix) throw new PluginError(999, `invalid CIDR ${text}: invalid CIDR address: ${text}`);
    const gw = gateway === undefined ? undefined : parseAddress(String(gateway));
    if (gateway !== undefined && !gw) {
      throw new PluginError(999, `invalid gateway ${String(gateway)}`);
    }
    addresses.push({
      address: prefix,
      addressText: cidrAddress(prefix),
      ...(gw && { gateway: gw }),
    });
  }
  const routes: StaticRoute[] = [];
  for (const entry of (ipam.routes as unknown[] | undefined) ?? []) {
    const { dst, gw } = entry as { dst?: unknown; gw?: unknown };
    const prefix = parsePrefix(String(dst ?? ""));
    if (!prefix || !String(dst).includes("/")) {
      throw new PluginError(
        999,
        `failed to load netconf: invalid CIDR address: ${String(dst ?? "")}`,
      );
    }
    const gateway = gw === undefined ? undefined : parseAddress(String(gw));
    routes.push({ dst: maskPrefix(prefix), ...(gateway && { gw: gateway }) });
  }
  const dns = (ipam.dns as Record<string, unknown> | undefined) ?? {};
  return { addresses, routes, dns };
}

/**
 * Per-pod addresses as static's LoadIPAMConfig takes them: `CNI_ARGS` `IP`
 * (comma-separated) added to the configured ones, then `args.cni.ips`, then
 * `runtimeConfig.ips`, each replacing what came before. (`GATEWAY` is not
 * emulated.)
 */
function staticOverrides(
  ipam: Record<string, unknown>,
  from: { config: Record<string, unknown>; cniArgs: string },
): Record<string, unknown> {
  if (ipam.type !== "static") return ipam;
  let addresses = [...((ipam.addresses as unknown[] | undefined) ?? [])];
  for (const pair of from.cniArgs.split(";")) {
    if (!pair.startsWith("IP=")) continue;
    addresses = [...addresses, ...pair.slice(3).split(",").map((a) => ({ address: a.trim() }))];
  }
  const argIps = ((from.config.args as { cni?: { ips?: unknown } } | undefined)?.cni?.ips ??
    []) as unknown[];
  if (argIps.length > 0) addresses = argIps.map((address) => ({ address }));
  const runtimeIps = ((from.config.runtimeConfig as { ips?: unknown } | undefined)?.ips ??
    []) as unknown[];
  if (runtimeIps.length > 0) addresses = runtimeIps.map((address) => ({ address }));
  return { ...ipam, addresses };
}

function familyOf(prefix: Prefix | Address): Family {
  return prefix.family;
}

/** Renders a result in the shape of `cniVersion` (0.3.0 … 1.x). */
function formatResult(
  version: string,
  result: {
    interfaces?: Record<string, unknown>[];
    ips?: StaticAddress[];
    ipInterface?: number;
    routes?: StaticRoute[];
    dns?: Record<string, unknown>;
  },
): Record<string, unknown> {
  if (compareVersions(version, "0.3.0") < 0) {
    throw new PluginError(
      999,
      `fake host-device: results for cniVersion ${version} are not emulated`,
    );
  }
  const legacy = compareVersions(version, "1.0.0") < 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (result.interfaces?.length) out.interfaces = result.interfaces;
  if (result.ips?.length) {
    out.ips = result.ips.map((ip) => ({
      ...(legacy && { version: String(familyOf(ip.address)) }),
      ...(result.ipInterface !== undefined && { interface: result.ipInterface }),
      address: ip.addressText,
      ...(ip.gateway && { gateway: formatAddress(ip.gateway) }),
    }));
  }
  if (result.routes?.length) {
    out.routes = result.routes.map((r) => ({
      dst: prefixText(r.dst),
      ...(r.gw && { gw: formatAddress(r.gw) }),
    }));
  }
  out.dns = result.dns ?? {};
  return out;
}

const REQUIRED: Readonly<Record<string, readonly string[]>> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
};

/**
 * Runs the fake `host-device` or `static` plugin with the CNI environment
 * `env` and the network configuration `stdin`.
 */
export function runDelegate(
  kernel: Kernel,
  name: DelegateName,
  env: Readonly<Record<string, string | undefined>>,
  stdin: string,
): CommandResult {
  const command = env.CNI_COMMAND ?? "";
  let config: Record<string, unknown> = {};
  try {
    config = JSON.parse(stdin) as Record<string, unknown>;
  } catch {
    // reported below, after the environment checks, as skel does
  }
  const subject = `${name} ${command} ${
    name === "host-device" ? `${String(config.device ?? "")} ` : ""
  }${env.CNI_IFNAME ?? ""}`;
  const fault = kernel.takeFault(subject);
  if (fault && !fault.apply) return faultResult(fault);
  let result: CommandResult;
  try {
    result = { code: 0, stdout: dispatch(kernel, name, command, env, stdin), stderr: "" };
  } catch (error) {
    if (!(error instanceof PluginError)) throw error;
    const body = {
      code: error.code,
      msg: error.message,
      ...(error.details && { details: error.details }),
    };
    result = { code: 1, stdout: pretty(body), stderr: "" };
  }
  return fault ? faultResult(fault) : result;
}

function faultResult(fault: { code?: number; stderr?: string; stdout?: string }): CommandResult {
  return {
    code: 1,
    stdout: fault.stdout ??
      pretty({ code: fault.code ?? 999, msg: fault.stderr ?? "injected fault" }),
    stderr: "",
  };
}

function dispatch(
  kernel: Kernel,
  name: DelegateName,
  command: string,
  env: Readonly<Record<string, string | undefined>>,
  stdin: string,
): string {
  const versions = kernel.state.options.delegateVersions;
  if (command === "VERSION") {
    return pretty({ cniVersion: versions.at(-1), supportedVersions: versions });
  }
  if (command === "") throw new PluginError(4, "required env variables [CNI_COMMAND] missing");
  const required = REQUIRED[command];
  if (!required) throw new PluginError(4, `unknown CNI_COMMAND: ${command}`);
  const missing = required.filter((key) => (env[key] ?? "") === "");
  if (missing.length > 0) {
    throw new PluginError(4, `required env variables [${missing.join(",")}] missing`);
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(stdin) as Record<string, unknown>;
  } catch (error) {
    throw new PluginError(6, `decoding version from network config: ${(error as Error).message}`);
  }
  const version = typeof config.cniVersion === "string" && config.cniVersion !== ""
    ? config.cniVersion
    : "0.1.0";
  if (!versions.includes(version)) {
    throw new PluginError(
      1,
      "incompatible CNI versions",
      `config is "${version}", plugin supports [${versions.map((v) => `"${v}"`).join(" ")}]`,
    );
  }
  if (command === "CHECK" && compareVersions(version, "0.4.0") < 0) {
    throw new PluginError(1, "config version does not allow CHECK");
  }
  if ((command === "GC" || command === "STATUS") && compareVersions(version, "1.1.0") < 0) {
    throw new PluginError(1, `config version does not allow ${command}`);
  }
  const ipam = staticOverrides((config.ipam as Record<string, unknown> | undefined) ?? {}, {
    config,
    cniArgs: env.CNI_ARGS ?? "",
  });
  const ipamType = typeof ipam.type === "string" ? ipam.type : "";
  if (name === "static") return runStatic(command, version, ipam);
  // As upstream (1.5+): STATUS asks the IPAM plugin; GC has no state of its
  // own to release (a static IPAM neither). Both only need IPAM found.
  if (command === "GC" || command === "STATUS") {
    if (ipamType !== "") findIpam(ipamType, env.CNI_PATH ?? "");
    return "";
  }
  const device = typeof config.device === "string" ? config.device : "";
  if (device === "" && !config.hwaddr && !config.kernelpath && !config.pciBusID) {
    throw new PluginError(999, `specify either "device", "hwaddr", "kernelpath" or "pciBusID"`);
  }
  if (device === "") throw new PluginError(999, 'fake host-device: only "device" is emulated');
  const netns = env.CNI_NETNS ?? "";
  const ifname = env.CNI_IFNAME!;
  if (command === "DEL" && netns === "") return "";
  if (!kernel.netnsExists(netns)) {
    throw new PluginError(
      999,
      `failed to open netns "${netns}": failed to Statfs "${netns}": no such file or directory`,
    );
  }
  const cniPath = env.CNI_PATH ?? "";
  if (command === "ADD") {
    return add(kernel, { device, netns, ifname, version, ipam, ipamType, cniPath });
  }
  if (command === "DEL") {
    // The real plugin moves the device out first, then calls IPAM DEL.
    del(kernel, { netns, ifname });
    if (ipamType !== "") findIpam(ipamType, cniPath);
    return "";
  }
  if (ipamType !== "") findIpam(ipamType, cniPath);
  check(kernel, { netns, ifname, config, ipam, ipamType });
  return "";
}

function findIpam(type: string, cniPath: string): void {
  const dirs = cniPath.split(":").filter((d) => d !== "");
  for (const dir of dirs) {
    try {
      if (Deno.statSync(`${dir}/${type}`).isFile) {
        if (type !== "static") {
          throw new PluginError(999, `fake host-device: IPAM type "${type}" is not emulated`);
        }
        return;
      }
    } catch (error) {
      if (error instanceof PluginError) throw error;
    }
  }
  throw new PluginError(999, `failed to find plugin "${type}" in path [${dirs.join(" ")}]`);
}

function runStatic(command: string, version: string, ipam: Record<string, unknown>): string {
  const loaded = loadStatic(ipam);
  if (command === "ADD") {
    return pretty(
      formatResult(version, { ips: loaded.addresses, routes: loaded.routes, dns: loaded.dns }),
    );
  }
  return "";
}

function add(
  kernel: Kernel,
  call: {
    device: string;
    netns: string;
    ifname: string;
    version: string;
    ipam: Record<string, unknown>;
    ipamType: string;
    cniPath: string;
  },
): string {
  const hostDev = kernel.link(call.device);
  if (!hostDev) throw new PluginError(999, "failed to find host device: Link not found");
  const wasUp = hostDev.up;
  kernel.setUp(hostDev, false);
  const temp = `temp_${hostDev.ifindex}`;
  try {
    kernel.rename(hostDev, temp);
  } catch (error) {
    if (wasUp) kernel.setUp(hostDev, true);
    throw new PluginError(
      999,
      `failed to rename device "${call.device}" to temporary name: failed to rename device "${call.device}" to "${temp}": ${
        goErr(error)
      }`,
    );
  }
  try {
    kernel.moveLink(hostDev, call.netns);
  } catch (error) {
    kernel.rename(hostDev, call.device);
    if (wasUp) kernel.setUp(hostDev, true);
    throw new PluginError(
      999,
      `failed to move link failed to move "${temp}" to container ns: ${goErr(error)}`,
    );
  }
  hostDev.alias = call.device;
  try {
    kernel.rename(hostDev, call.ifname);
  } catch (error) {
    delete hostDev.alias;
    kernel.moveLink(hostDev, HOST_NETNS);
    kernel.rename(hostDev, call.device);
    if (wasUp) kernel.setUp(hostDev, true);
    throw new PluginError(
      999,
      `failed to move link failed to rename device "${temp}" to "${call.ifname}": ${goErr(error)}`,
    );
  }
  kernel.setUp(hostDev, true);
  const interfaces = [{ name: hostDev.name, mac: hostDev.mac, sandbox: call.netns }];
  if (call.ipamType === "") return pretty(formatResult(call.version, { interfaces }));
  // IPAM runs after the move; when it fails the device stays in the pod (as upstream).
  findIpam(call.ipamType, call.cniPath);
  const loaded = loadStatic(call.ipam);
  if (loaded.addresses.length === 0) {
    throw new PluginError(999, "IPAM plugin returned missing IP config");
  }
  configureIface(kernel, hostDev, call.ifname, loaded);
  return pretty(
    formatResult(call.version, {
      interfaces,
      ips: loaded.addresses,
      ipInterface: 0,
      routes: loaded.routes,
      dns: loaded.dns,
    }),
  );
}

function configureIface(kernel: Kernel, link: LinkRecord, ifname: string, ipam: IpamResult): void {
  kernel.setUp(link, true);
  for (const ip of ipam.addresses) {
    link.addresses ??= [];
    if (link.addresses.includes(ip.addressText)) {
      throw new PluginError(
        999,
        `failed to add IP addr {Version:${familyOf(ip.address)} Interface:0xc000 Address:{IP:${
          formatAddress(ip.address)
        } Mask:${ip.address.len}} Gateway:${
          ip.gateway ? formatAddress(ip.gateway) : "<nil>"
        }} to "${ifname}": file exists`,
      );
    }
    link.addresses.push(ip.addressText);
  }
  for (const route of ipam.routes) {
    const gw = route.gw ??
      ipam.addresses.find((a) => a.address.family === route.dst.family)?.gateway;
    try {
      kernel.addPodRoute(link.netns, route.dst, gw, link);
    } catch (error) {
      throw new PluginError(
        999,
        `failed to add route '${prefixText(route.dst)} via ${
          gw ? formatAddress(gw) : "<nil>"
        } dev ${ifname}': ${goErr(error)}`,
      );
    }
  }
}

function del(kernel: Kernel, call: { netns: string; ifname: string }): void {
  const dev = kernel.link(call.ifname, call.netns);
  if (!dev) {
    if (kernel.state.options.delegateDelMissing === "ok") return;
    throw new PluginError(999, `failed to find "${call.ifname}": Link not found`);
  }
  const wasUp = dev.up;
  kernel.setUp(dev, false);
  const temp = `temp_${dev.ifindex}`;
  try {
    kernel.rename(dev, temp);
    kernel.moveLink(dev, HOST_NETNS);
  } catch (error) {
    if (dev.netns !== call.netns) kernel.moveLink(dev, call.netns);
    if (dev.name !== call.ifname) kernel.rename(dev, call.ifname);
    if (wasUp) kernel.setUp(dev, true);
    throw new PluginError(999, `failed to move "${temp}" to host netns: ${goErr(error)}`);
  }
  try {
    kernel.rename(dev, dev.alias ?? "");
  } catch (error) {
    kernel.moveLink(dev, call.netns);
    kernel.rename(dev, call.ifname);
    if (wasUp) kernel.setUp(dev, true);
    throw new PluginError(
      999,
      `failed to restore "${temp}" to original name "${dev.alias ?? ""}": ${goErr(error)}`,
    );
  }
}

interface PrevInterface {
  name?: string;
  mac?: string;
  sandbox?: string;
}

function check(
  kernel: Kernel,
  call: {
    netns: string;
    ifname: string;
    config: Record<string, unknown>;
    ipam: Record<string, unknown>;
    ipamType: string;
  },
): void {
  const prev = call.config.prevResult as
    | {
      interfaces?: PrevInterface[];
      ips?: { address?: string; gateway?: string }[];
      routes?: { dst?: string; gw?: string }[];
    }
    | undefined;
  if (call.ipamType !== "") {
    if (prev === undefined) throw new PluginError(999, "Required prevResult missing");
    for (const configured of loadStatic(call.ipam).addresses) {
      for (const ip of prev.ips ?? []) {
        const address = parsePrefix(ip.address ?? "");
        if (!address || formatAddress(address) !== formatAddress(configured.address)) continue;
        if (configured.gateway && formatAddress(configured.gateway) !== ip.gateway) {
          throw new PluginError(
            999,
            `static: Failed to match addr ${formatAddress(address)} on interface ${call.ifname}`,
          );
        }
        break;
      }
    }
  }
  if (prev === undefined) throw new PluginError(999, "Required prevResult missing");
  const intf = (prev.interfaces ?? []).find((i) =>
    i.name === call.ifname && i.sandbox === call.netns
  );
  if (!intf) {
    throw new PluginError(
      999,
      `Sandbox in prevResult  doesn't match configured netns: ${call.netns}`,
    );
  }
  const link = kernel.link(call.ifname, call.netns);
  if (!link) {
    throw new PluginError(999, `Container Interface name in prevResult: ${call.ifname} not found`);
  }
  if (intf.mac && intf.mac !== link.mac) {
    throw new PluginError(
      999,
      `Interface ${call.ifname} Mac ${intf.mac} doesn't match container Mac: ${link.mac}`,
    );
  }
  for (const ip of prev.ips ?? []) {
    const address = parsePrefix(ip.address ?? "");
    if (!address || !(link.addresses ?? []).includes(cidrAddress(address))) {
      throw new PluginError(
        999,
        `Failed to match addr ${ip.address ?? ""} on interface ${call.ifname}`,
      );
    }
  }
  const podRoutes = kernel.routes({ netns: call.netns });
  for (const route of prev.routes ?? []) {
    const dst = parsePrefix(route.dst ?? "");
    const found = dst &&
      podRoutes.some((r) =>
        r.dst === prefixText(maskPrefix(dst)) && (route.gw === undefined || r.gateway === route.gw)
      );
    if (!found) {
      throw new PluginError(
        999,
        `Expected Route {Dst: ${route.dst ?? ""}, GW: ${
          route.gw ?? "<nil>"
        }} not found in route table`,
      );
    }
  }
}
