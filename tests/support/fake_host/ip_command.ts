/**
 * The fake `ip` (iproute2 6.1): global options, `-batch -` (with and without
 * `-force`), `link add|del|set|show` and `route add|replace|del|show|flush`
 * in the forms the plugin uses, with iproute2's texts and exit codes.
 * Anything else fails loudly with `fake ip: unsupported ...` (exit 1).
 *
 * @module
 */

import {
  type Address,
  defaultPrefix,
  type Family,
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
  type RouteType,
  type RouteView,
  type Seg6Local,
  TABLE_IDS,
} from "./kernel.ts";

/** Version line of the emulated iproute2. */
export const IP_VERSION = "ip utility, iproute2-6.1.0, libbpf 1.1.2";

interface Options {
  json: boolean;
  details: boolean;
  family: Family | undefined;
  batch: boolean;
}

/** Outcome of one command (one batch line). */
interface Outcome {
  stdout: string;
  stderr: string;
  /** 0 on success. */
  code: number;
  /** iproute2 called exit(): the whole batch ends with `code`. */
  exit?: boolean;
}

class IpFailure extends Error {
  constructor(readonly text: string, readonly code: number, readonly exit = false) {
    super(text);
  }
}

function unsupported(what: string): IpFailure {
  return new IpFailure(
    `fake ip: unsupported command: ${what} (extend tests/support/fake_host)`,
    1,
    true,
  );
}

function invarg(msg: string, arg: string): IpFailure {
  return new IpFailure(`Error: argument "${arg}" is wrong: ${msg}`, 255, true);
}

function ok(stdout = ""): Outcome {
  return { stdout, stderr: "", code: 0 };
}

/** Splits a batch line like iproute2's makeargs (quotes, `#` comments). */
export function splitBatchLine(line: string): string[] {
  const args: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i]!)) i++;
    if (i >= line.length || line[i] === "#") break;
    let arg = "";
    if (line[i] === '"' || line[i] === "'") {
      const quote = line[i++];
      while (i < line.length && line[i] !== quote) arg += line[i++];
      i++;
    } else {
      while (i < line.length && !/\s/.test(line[i]!)) arg += line[i++];
    }
    args.push(arg);
  }
  return args;
}

/** Runs `ip` with `args` (after the program name) against `kernel`. */
export function runIp(kernel: Kernel, args: readonly string[], stdin: string): CommandResult {
  const options: Options = { json: false, details: false, family: undefined, batch: false };
  const flags: string[] = [];
  let force = false;
  let batchFile: string | undefined;
  const rest = [...args];
  while (rest[0]?.startsWith("-")) {
    const opt = rest.shift()!.replace(/^--/, "-");
    if (opt === "-j" || opt === "-json") options.json = true;
    else if (opt === "-d" || opt === "-details") options.details = true;
    else if (opt === "-4") options.family = 4;
    else if (opt === "-6") options.family = 6;
    else if (opt === "-force") force = true;
    else if (opt === "-b" || opt === "-batch") {
      batchFile = rest.shift();
      continue;
    } else if (opt === "-V" || opt === "-Version") {
      return { code: 0, stdout: `${IP_VERSION}\n`, stderr: "" };
    } else {
      return {
        code: 1,
        stdout: "",
        stderr: `fake ip: unsupported option ${opt} (extend tests/support/fake_host)\n`,
      };
    }
    flags.push(opt);
  }
  if (batchFile !== undefined) {
    if (batchFile !== "-") {
      return {
        code: 1,
        stdout: "",
        stderr: `fake ip: unsupported: -batch ${batchFile} (only stdin)\n`,
      };
    }
    options.batch = true;
    let stdout = "";
    let stderr = "";
    let code = 0;
    const lines = stdin.split("\n");
    if (lines.at(-1) === "") lines.pop();
    for (const [index, line] of lines.entries()) {
      const tokens = splitBatchLine(line);
      if (tokens.length === 0) continue;
      const outcome = runOne(kernel, tokens, options, flags);
      stdout += outcome.stdout;
      stderr += outcome.stderr;
      if (outcome.exit) return { code: outcome.code, stdout, stderr };
      if (outcome.code !== 0) {
        stderr += `Command failed -:${index + 1}\n`;
        code = 1;
        if (!force) break;
      }
    }
    return { code, stdout, stderr };
  }
  if (rest.length === 0) {
    return { code: 1, stdout: "", stderr: "fake ip: unsupported: ip without an object\n" };
  }
  const outcome = runOne(kernel, rest, options, flags);
  return { code: outcome.code, stdout: outcome.stdout, stderr: outcome.stderr };
}

function runOne(
  kernel: Kernel,
  tokens: string[],
  options: Options,
  flags: readonly string[],
): Outcome {
  const subject = ["ip", ...flags, ...tokens].join(" ");
  const fault = kernel.takeFault(subject);
  if (fault && !fault.apply) return faultOutcome(fault);
  let outcome: Outcome;
  try {
    outcome = dispatch(kernel, tokens, options);
  } catch (error) {
    if (error instanceof IpFailure) {
      outcome = { stdout: "", stderr: `${error.text}\n`, code: error.code, exit: error.exit };
    } else if (error instanceof KernelError) {
      outcome = { stdout: "", stderr: `${error.ipText()}\n`, code: 2 };
    } else throw error;
  }
  return fault ? faultOutcome(fault, outcome.stdout) : outcome;
}

function faultOutcome(
  fault: { code?: number; stderr?: string; stdout?: string },
  stdout = "",
): Outcome {
  const code = fault.code ?? 2;
  const text = fault.stderr ?? "RTNETLINK answers: Invalid argument";
  return {
    stdout: fault.stdout ?? stdout,
    stderr: text.endsWith("\n") || text === "" ? text : `${text}\n`,
    code,
    exit: code === 255,
  };
}

const KNOWN_OBJECTS = [
  "address",
  "addrlabel",
  "maddress",
  "neighbor",
  "neighbour",
  "ntable",
  "rule",
  "netns",
  "nexthop",
  "tunnel",
  "tuntap",
  "monitor",
  "xfrm",
  "mroute",
  "mrule",
  "netconf",
  "vrf",
  "sr",
  "mptcp",
  "ioam",
  "stats",
  "token",
  "tcp_metrics",
  "l2tp",
  "fou",
  "macsec",
  "help",
];

function dispatch(kernel: Kernel, tokens: string[], options: Options): Outcome {
  const [object, ...args] = tokens as [string, ...string[]];
  if (object === "link") return runLink(kernel, args, options);
  if (object === "route") return runRoute(kernel, args, options);
  if (KNOWN_OBJECTS.some((known) => known.startsWith(object)) || object === "r" || object === "l") {
    throw unsupported(`ip ${tokens.join(" ")}`);
  }
  throw new IpFailure(`Object "${object}" is unknown, try "ip help".`, 1);
}

// ------------------------------------------------------------------ link

function checkIfname(name: string, strict: boolean, what: string): void {
  const bad = name === "" || /[\s/]/.test(name) || name.length >= (strict ? 16 : 128);
  if (bad) throw invarg(`"${what}" not a valid ifname`, name);
}

function need(args: readonly string[], i: number): string {
  const value = args[i];
  if (value === undefined) {
    throw new IpFailure(`Command line is not complete. Try option "help"`, 255, true);
  }
  return value;
}

function parseMtu(text: string): number {
  if (!/^\d+$/.test(text)) throw invarg(`Invalid "mtu" value`, text);
  return Number(text);
}

function findLink(kernel: Kernel, name: string): LinkRecord {
  const link = kernel.link(name);
  if (!link) throw new IpFailure(`Cannot find device "${name}"`, 1);
  return link;
}

function runLink(kernel: Kernel, args: string[], options: Options): Outcome {
  const [verb = "show", ...rest] = args;
  if (verb === "add") return linkAdd(kernel, rest);
  if ((verb === "del" || verb === "delete") && rest[0] === "group") {
    // rtnl_group_dellink: every device of the group in one call; none is ENODEV.
    if (rest.length !== 2) throw unsupported(`ip link ${args.join(" ")}`);
    const group = parseGroup(rest[1]!);
    const members = kernel.links().filter((l) => (l.group ?? 0) === group);
    if (members.length === 0) throw new IpFailure("RTNETLINK answers: No such device", 2);
    for (const link of members) {
      if (kernel.linkByIndex(link.ifindex)) kernel.deleteLink(link);
    }
    return ok();
  }
  if (verb === "del" || verb === "delete") {
    const parsed = rest[0] === "dev" ? rest.slice(1) : rest;
    if (parsed.length !== 1) throw unsupported(`ip link ${args.join(" ")}`);
    kernel.deleteLink(findLink(kernel, parsed[0]!));
    return ok();
  }
  if (verb === "set") return linkSet(kernel, rest);
  if (verb === "show" || verb === "list" || verb === "lst") return linkShow(kernel, rest, options);
  if (["help", "xstats", "afstats", "property", "change", "replace"].includes(verb)) {
    throw unsupported(`ip link ${args.join(" ")}`);
  }
  throw new IpFailure(`Command "${verb}" is unknown, try "ip link help".`, 255, true);
}

interface LinkArgs {
  name?: string;
  mtu?: number;
  up?: boolean;
  rest: string[];
}

/** iplink_parse: the general arguments before `type`. */
function parseLinkArgs(args: string[], context: string): LinkArgs {
  const out: LinkArgs = { rest: [] };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "mtu") out.mtu = parseMtu(need(args, ++i));
    else if (arg === "name") {
      const name = need(args, ++i);
      checkIfname(name, true, "name");
      out.name = name;
    } else if (arg === "up") out.up = true;
    else if (arg === "dev") {
      const name = need(args, ++i);
      checkIfname(name, false, "dev");
      out.name = name;
    } else if (
      /^[a-z_]+$/.test(arg) &&
      [
        "address",
        "txqueuelen",
        "txqlen",
        "index",
        "link",
        "alias",
        "netns",
        "group",
        "numtxqueues",
        "numrxqueues",
        "broadcast",
        "brd",
        "addrgenmode",
      ].includes(arg)
    ) {
      throw unsupported(`${context} ... ${arg}`);
    } else {
      if (out.name !== undefined) throw unsupported(`${context} (unexpected "${arg}")`);
      checkIfname(arg, false, "dev");
      out.name = arg;
    }
  }
  return out;
}

function parseTable(text: string, what = `"table" value is invalid`): number {
  if (text in TABLE_IDS) return TABLE_IDS[text]!;
  if (!/^\d+$/.test(text) || Number(text) > 0xffffffff) throw invarg(what, text);
  return Number(text);
}

function linkAdd(kernel: Kernel, args: string[]): Outcome {
  const typeAt = args.indexOf("type");
  const general = parseLinkArgs(
    typeAt < 0 ? args : args.slice(0, typeAt),
    `ip link add ${args.join(" ")}`,
  );
  if (typeAt < 0) throw new IpFailure(`Not enough information: "type" argument is required`, 1);
  if (general.name === undefined) {
    throw new IpFailure(`Not enough information: "dev" argument is required.`, 1);
  }
  const kind = args[typeAt + 1];
  const typeArgs = args.slice(typeAt + 2);
  let link: LinkRecord;
  if (kind === "veth") {
    let peer: LinkArgs | undefined;
    if (typeArgs.length > 0) {
      if (typeArgs[0] !== "peer") {
        throw unsupported(`ip link add ... type veth ${typeArgs.join(" ")}`);
      }
      peer = parseLinkArgs(typeArgs.slice(1), `ip link add ... peer ${typeArgs.join(" ")}`);
    }
    link = kernel.addLink({
      name: general.name,
      kind: "veth",
      ...(general.mtu !== undefined && { mtu: general.mtu }),
      ...(peer &&
        {
          peer: {
            ...(peer.name !== undefined && { name: peer.name }),
            ...(peer.mtu !== undefined && { mtu: peer.mtu }),
          },
        }),
    });
    if (peer?.up) kernel.setUp(kernel.linkByIndex(link.peer)!, true);
  } else if (kind === "vrf") {
    let table: number | undefined;
    for (let i = 0; i < typeArgs.length; i++) {
      if (typeArgs[i] === "table") table = parseTable(need(typeArgs, ++i), "invalid table ID\n");
      else throw unsupported(`ip link add ... type vrf ${typeArgs.join(" ")}`);
    }
    link = kernel.addLink({
      name: general.name,
      kind: "vrf",
      ...(general.mtu !== undefined && { mtu: general.mtu }),
      ...(table !== undefined && { table }),
    });
  } else if (kind === "dummy") {
    if (typeArgs.length > 0) throw unsupported(`ip link add ... type dummy ${typeArgs.join(" ")}`);
    link = kernel.addLink({
      name: general.name,
      kind: "dummy",
      ...(general.mtu !== undefined && { mtu: general.mtu }),
    });
  } else {
    throw unsupported(`ip link add ... type ${kind ?? ""}`);
  }
  if (general.up) kernel.setUp(link, true);
  return ok();
}

function linkSet(kernel: Kernel, args: string[]): Outcome {
  let dev: string | undefined;
  let mtu: number | undefined;
  let up: boolean | undefined;
  let master: LinkRecord | null | undefined;
  let name: string | undefined;
  let alias: string | undefined;
  let address: string | undefined;
  let group: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "up") up = true;
    else if (arg === "down") up = false;
    else if (arg === "mtu") mtu = parseMtu(need(args, ++i));
    else if (arg === "master") {
      const m = need(args, ++i);
      master = kernel.link(m);
      if (!master) throw invarg("Device does not exist\n", m);
    } else if (arg === "nomaster") master = null;
    else if (arg === "name") {
      name = need(args, ++i);
      checkIfname(name, true, "name");
    } else if (arg === "alias") alias = need(args, ++i);
    else if (arg === "address") {
      address = need(args, ++i).toLowerCase();
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(address)) {
        throw invarg(`"${address}" is invalid lladdr.`, address);
      }
    } else if (arg === "group") group = parseGroup(need(args, ++i));
    else if (arg === "dev") dev = need(args, ++i);
    else if (
      [
        "netns",
        "txqueuelen",
        "arp",
        "multicast",
        "promisc",
        "vf",
        "xdp",
        "type",
      ].includes(arg)
    ) {
      throw unsupported(`ip link set ${args.join(" ")}`);
    } else if (dev === undefined) {
      checkIfname(arg, false, "dev");
      dev = arg;
    } else throw unsupported(`ip link set ${args.join(" ")}`);
  }
  if (dev === undefined) {
    throw new IpFailure(`Not enough information: "dev" argument is required.`, 1);
  }
  const link = findLink(kernel, dev);
  // do_setlink order: mtu, name, alias, flags, master. Earlier changes stay when a later one fails.
  if (mtu !== undefined) kernel.setMtu(link, mtu);
  if (name !== undefined) kernel.rename(link, name);
  if (alias !== undefined) link.alias = alias;
  if (address !== undefined) {
    // eth_prepare_mac_addr_change: a multicast or all-zero address is refused.
    if ((parseInt(address.slice(0, 2), 16) & 1) !== 0 || address === "00:00:00:00:00:00") {
      throw new IpFailure("RTNETLINK answers: Cannot assign requested address", 2);
    }
    link.mac = address;
  }
  if (group !== undefined) link.group = group;
  if (up !== undefined) kernel.setUp(link, up);
  if (master !== undefined) kernel.setMaster(link, master ?? undefined);
  return ok();
}

/** A device group: a number, or `default` (0). */
function parseGroup(text: string): number {
  if (text === "default") return 0;
  if (!/^\d+$/.test(text) || Number(text) > 0xffffffff) throw invarg(`Invalid "group" value`, text);
  return Number(text);
}

function linkFlags(kernel: Kernel, link: LinkRecord): string[] {
  const carrier = kernel.carrier(link);
  if (link.kind === "loopback") return ["LOOPBACK", ...(link.up ? ["UP", "LOWER_UP"] : [])];
  if (link.kind === "vrf") return ["NOARP", "MASTER", ...(link.up ? ["UP", "LOWER_UP"] : [])];
  const peer = kernel.linkByIndex(link.peer);
  return [
    ...(link.up && !carrier ? ["NO-CARRIER"] : []),
    "BROADCAST",
    ...(link.kind === "dummy" ? ["NOARP"] : ["MULTICAST"]),
    ...(link.up ? ["UP"] : []),
    ...(carrier ? ["LOWER_UP"] : []),
    ...(peer && peer.netns === link.netns && !peer.up ? ["M-DOWN"] : []),
  ];
}

function operstate(kernel: Kernel, link: LinkRecord): string {
  if (link.kind === "loopback" || link.kind === "dummy") return link.up ? "UNKNOWN" : "DOWN";
  if (!link.up) return "DOWN";
  return kernel.carrier(link) ? "UP" : "LOWERLAYERDOWN";
}

/** `ip -json [-details] link show` object of one device. */
export function linkJson(
  kernel: Kernel,
  link: LinkRecord,
  details: boolean,
): Record<string, unknown> {
  const peer = kernel.linkByIndex(link.peer);
  const master = kernel.linkByIndex(link.master);
  const out: Record<string, unknown> = { ifindex: link.ifindex };
  if (peer && peer.netns === link.netns) out.link = peer.name;
  else if (peer) out.link_index = peer.ifindex;
  out.ifname = link.name;
  out.flags = linkFlags(kernel, link);
  out.mtu = link.mtu;
  out.qdisc = link.everUp ? "noqueue" : "noop";
  if (master) out.master = master.name;
  out.operstate = operstate(kernel, link);
  out.linkmode = "DEFAULT";
  out.group = link.group ? String(link.group) : "default";
  out.txqlen = 1000;
  out.link_type = link.kind === "loopback" ? "loopback" : "ether";
  out.address = link.mac;
  out.broadcast = link.kind === "loopback" ? "00:00:00:00:00:00" : "ff:ff:ff:ff:ff:ff";
  if (peer && peer.netns !== link.netns) out.link_netnsid = 0;
  if (details) {
    out.promiscuity = 0;
    out.allmulti = 0;
    out.min_mtu = link.kind === "vrf" ? 1280 : link.kind === "loopback" ? 0 : 68;
    out.max_mtu = link.kind === "vrf" ? 65575 : link.kind === "loopback" ? 0 : 65535;
    if (link.kind !== "loopback") {
      out.linkinfo = {
        info_kind: link.kind,
        ...(link.kind === "vrf" && { info_data: { table: link.table } }),
        ...(master?.kind === "vrf" &&
          { info_slave_kind: "vrf", info_slave_data: { table: master.table } }),
      };
    }
    out.inet6_addr_gen_mode = link.kind === "loopback" ? "eui64" : "eui64";
    out.num_tx_queues = 1;
    out.num_rx_queues = 1;
    out.gso_max_size = 65536;
    out.gso_max_segs = 65535;
    out.tso_max_size = 524280;
    out.tso_max_segs = 65535;
    out.gro_max_size = 65536;
  }
  if (link.alias !== undefined) out.ifalias = link.alias;
  return out;
}

function linkText(kernel: Kernel, link: LinkRecord, details: boolean): string {
  const j = linkJson(kernel, link, details);
  const peer = kernel.linkByIndex(link.peer);
  const at = peer ? `@${peer.netns === link.netns ? peer.name : `if${peer.ifindex}`}` : "";
  const master = j.master === undefined ? "" : ` master ${j.master}`;
  let text =
    `${link.ifindex}: ${link.name}${at}: <${
      (j.flags as string[]).join(",")
    }> mtu ${link.mtu} qdisc ${j.qdisc}${master}` +
    ` state ${j.operstate} mode DEFAULT group default qlen 1000\n` +
    `    link/${j.link_type} ${j.address} brd ${j.broadcast}${
      peer && peer.netns !== link.netns ? " link-netnsid 0" : ""
    }\n`;
  if (details && link.kind !== "loopback") {
    text += `    ${link.kind}${link.kind === "vrf" ? ` table ${link.table}` : ""} \n`;
  }
  return text;
}

function linkShow(kernel: Kernel, args: string[], options: Options): Outcome {
  let dev: string | undefined;
  let kind: string | undefined;
  let master: LinkRecord | undefined;
  let upOnly = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "dev") dev = need(args, ++i);
    else if (arg === "type") kind = need(args, ++i);
    else if (arg === "master") {
      const m = need(args, ++i);
      master = kernel.link(m);
      if (!master) throw invarg("Device does not exist\n", m);
    } else if (arg === "up") upOnly = true;
    else if (["group", "vrf", "nomaster", "label"].includes(arg)) {
      throw unsupported(`ip link show ${args.join(" ")}`);
    } else if (dev === undefined) dev = arg;
    else throw unsupported(`ip link show ${args.join(" ")}`);
  }
  let links: LinkRecord[];
  if (dev !== undefined) {
    const link = kernel.link(dev);
    if (!link) throw new IpFailure(`Device "${dev}" does not exist.`, 1);
    links = [link];
  } else links = kernel.links();
  links = links.filter((l) =>
    (kind === undefined || l.kind === kind ||
      (kind === "vrf_slave" && kernel.linkByIndex(l.master)?.kind === "vrf")) &&
    (master === undefined || l.master === master.ifindex) && (!upOnly || l.up)
  );
  if (options.json) {
    return ok(`${JSON.stringify(links.map((l) => linkJson(kernel, l, options.details)))}\n`);
  }
  return ok(links.map((l) => linkText(kernel, l, options.details)).join(""));
}

// ----------------------------------------------------------------- route

const ROUTE_TYPES = [
  "unicast",
  "local",
  "broadcast",
  "multicast",
  "throw",
  "unreachable",
  "prohibit",
  "blackhole",
  "nat",
  "anycast",
];

interface RouteArgs {
  type?: RouteType;
  prefix?: Prefix;
  prefixText?: string;
  gateway?: Address;
  dev?: LinkRecord;
  onlink: boolean;
  scope?: "global" | "link" | "host";
  metric?: number;
  table?: number;
  tableAll?: boolean;
  protocol?: string;
  encap?: Seg6Local;
  family: Family | undefined;
}

function familyName(family: Family | undefined): string {
  return family === 4 ? "inet" : family === 6 ? "inet6" : "any valid";
}

function parseRoutePrefix(text: string, family: Family | undefined): Prefix | "default" {
  if (text === "default" || text === "all" || text === "any") return "default";
  const prefix = parsePrefix(text);
  if (!prefix || (family !== undefined && prefix.family !== family)) {
    throw new IpFailure(
      `Error: ${familyName(family)} prefix is expected rather than "${text}".`,
      1,
    );
  }
  return prefix;
}

function parseRouteArgs(kernel: Kernel, args: string[], options: Options, verb: string): RouteArgs {
  const out: RouteArgs = { onlink: false, family: options.family };
  let dst: Prefix | "default" | undefined;
  const lookups: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "via") {
      let text = need(args, ++i);
      if (text === "inet" || text === "inet6") text = need(args, ++i);
      const address = parseAddress(text);
      const family = out.family ??
        (dst !== undefined && dst !== "default" ? dst.family : undefined);
      if (!address || (family !== undefined && address.family !== family)) {
        throw new IpFailure(
          `Error: ${familyName(family)} address is expected rather than "${text}".`,
          1,
        );
      }
      out.gateway = address;
      out.family ??= address.family;
    } else if (arg === "dev" || arg === "oif") lookups.push(need(args, ++i));
    else if (arg === "onlink") out.onlink = true;
    else if (arg === "scope") {
      const scope = need(args, ++i);
      if (scope !== "global" && scope !== "link" && scope !== "host") {
        throw unsupported(`ip route ${verb} ... scope ${scope}`);
      }
      out.scope = scope;
    } else if (arg === "metric" || arg === "priority" || arg === "preference") {
      const value = need(args, ++i);
      if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) {
        throw invarg(`"metric" value is invalid\n`, value);
      }
      out.metric = Number(value);
    } else if (arg === "table") {
      const value = need(args, ++i);
      if (value === "all" && verb === "show") out.tableAll = true;
      else out.table = parseTable(value, `"table" value is invalid\n`);
    } else if (arg === "proto" || arg === "protocol") {
      const value = need(args, ++i);
      if (!["boot", "static", "kernel"].includes(value)) {
        throw unsupported(`ip route ${verb} ... proto ${value}`);
      }
      out.protocol = value;
    } else if (arg === "encap") {
      const kind = need(args, ++i);
      if (kind !== "seg6local") throw unsupported(`ip route ${verb} ... encap ${kind}`);
      const encap: Seg6Local = { type: "seg6local", action: "" };
      while (i + 1 < args.length && ["action", "vrftable", "table"].includes(args[i + 1]!)) {
        const key = args[++i]!;
        const value = need(args, ++i);
        if (key === "action") encap.action = value;
        else if (key === "vrftable") {
          encap.vrftable = parseTable(value, `"vrftable" value is invalid\n`);
        } else encap.table = parseTable(value, `"table" value is invalid\n`);
      }
      if (
        !/^End(\.(X|T|DX2|DX4|DX6|DT4|DT6|DT46|B6|B6\.Encaps|BM|S|AS|AM|BPF))?$/.test(encap.action)
      ) {
        throw new IpFailure(
          `Error: argument "${encap.action}" is wrong: "action" value is invalid\n`,
          255,
          true,
        );
      }
      out.encap = encap;
    } else if (arg === "exact" || arg === "to") {
      continue;
    } else if (ROUTE_TYPES.includes(arg) && dst === undefined) {
      if (!["unicast", "unreachable", "blackhole", "prohibit"].includes(arg)) {
        throw unsupported(`ip route ${verb} ${args.join(" ")}`);
      }
      out.type = arg as RouteType;
    } else if (
      dst === undefined && (!/^[a-z]+$/.test(arg) || ["default", "all", "any"].includes(arg))
    ) {
      dst = parseRoutePrefix(arg, out.family);
      out.prefixText = arg;
      if (dst !== "default") out.family ??= dst.family;
    } else {
      throw unsupported(`ip route ${verb} ${args.join(" ")}`);
    }
  }
  for (const name of lookups) out.dev = findLink(kernel, name);
  out.family ??= options.family;
  if (dst !== undefined) out.prefix = dst === "default" ? defaultPrefix(out.family ?? 4) : dst;
  return out;
}

function tableName(table: number): string {
  const named = Object.entries(TABLE_IDS).find(([, id]) => id === table);
  return named ? named[0] : String(table);
}

/** `ip -json route show` object of one route. */
export function routeJson(
  route: RouteView,
  details: boolean,
  showTable: boolean,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (route.type !== "unicast" || details) out.type = route.type;
  out.dst = route.display;
  if (route.encap) {
    out.encap = route.encap.type;
    out.action = route.encap.action;
    if (route.encap.table !== undefined) out.table = tableName(route.encap.table);
    if (route.encap.vrftable !== undefined) out.vrftable = tableName(route.encap.vrftable);
  }
  if (route.gateway !== undefined) out.gateway = route.gateway;
  if (route.dev !== undefined) out.dev = route.dev;
  if (showTable && (route.table !== 254 || details)) out.table = tableName(route.table);
  if (route.protocol !== "boot" || details) out.protocol = route.protocol;
  if (route.family === 4 && (route.scope !== "global" || details)) out.scope = route.scope;
  if (route.family === 6 && details) out.scope = "global";
  if (route.family === 6 || route.metric !== 0) out.metric = route.metric;
  out.flags = [...(route.onlink ? ["onlink"] : []), ...(route.linkdown ? ["linkdown"] : [])];
  if (route.family === 6) out.pref = "medium";
  return out;
}

function routeText(route: RouteView, details: boolean, showTable: boolean): string {
  const j = routeJson(route, details, showTable);
  let text = "";
  if (j.type !== undefined) text += `${j.type} `;
  text += `${j.dst} `;
  if (route.encap) {
    text += ` encap ${route.encap.type} action ${route.encap.action} `;
    if (j.table !== undefined && route.encap.table !== undefined) text += `table ${j.table} `;
    if (j.vrftable !== undefined) text += `vrftable ${j.vrftable} `;
  }
  if (j.gateway !== undefined) text += `via ${j.gateway} `;
  if (j.dev !== undefined) text += `dev ${j.dev} `;
  if (showTable && (route.table !== 254 || details)) text += `table ${tableName(route.table)} `;
  if (j.protocol !== undefined) text += `proto ${j.protocol} `;
  if (j.scope !== undefined) text += `scope ${j.scope} `;
  if (j.metric !== undefined) text += `metric ${j.metric} `;
  for (const flag of j.flags as string[]) text += `${flag} `;
  if (route.family === 6) text += "pref medium";
  return `${text}\n`;
}

function runRoute(kernel: Kernel, args: string[], options: Options): Outcome {
  const [verb = "show", ...rest] = args;
  if (verb === "add" || verb === "replace") return routeModify(kernel, rest, options, verb);
  if (verb === "del" || verb === "delete") return routeDelete(kernel, rest, options);
  if (verb === "show" || verb === "list" || verb === "lst") return routeShow(kernel, rest, options);
  if (verb === "flush") return routeFlush(kernel, rest, options);
  if (
    ["append", "change", "prepend", "get", "save", "restore", "showdump", "test", "help"].includes(
      verb,
    )
  ) {
    throw unsupported(`ip route ${args.join(" ")}`);
  }
  throw new IpFailure(`Command "${verb}" is unknown, try "ip route help".`, 255, true);
}

function routeModify(
  kernel: Kernel,
  args: string[],
  options: Options,
  verb: "add" | "replace",
): Outcome {
  const parsed = parseRouteArgs(kernel, args, options, verb);
  if (!parsed.prefix) {
    throw new IpFailure(
      `Error: either "to" is duplicate, or "${args.at(-1) ?? ""}" is a garbage.`,
      255,
      true,
    );
  }
  const family = parsed.family ?? 4;
  if (parsed.encap && family !== 6) {
    throw unsupported(`ip route ${verb} ${args.join(" ")} (seg6local needs IPv6)`);
  }
  kernel.addRoute({
    family,
    table: parsed.table ?? 254,
    prefix: parsed.prefix,
    type: parsed.type ?? "unicast",
    ...(parsed.gateway && { gateway: parsed.gateway }),
    ...(parsed.dev && { dev: parsed.dev }),
    onlink: parsed.onlink,
    ...(parsed.scope && { scope: parsed.scope }),
    ...(parsed.metric !== undefined && { metric: parsed.metric }),
    ...(parsed.protocol && { protocol: parsed.protocol }),
    ...(parsed.encap && { encap: parsed.encap }),
  }, verb);
  return ok();
}

function routeDelete(kernel: Kernel, args: string[], options: Options): Outcome {
  const parsed = parseRouteArgs(kernel, args, options, "del");
  if (!parsed.prefix) throw unsupported(`ip route del ${args.join(" ")} (without a destination)`);
  kernel.deleteRoute({
    family: parsed.family ?? 4,
    table: parsed.table ?? 254,
    prefix: parsed.prefix,
    ...(parsed.type && { type: parsed.type }),
    ...(parsed.gateway && { gateway: parsed.gateway }),
    ...(parsed.dev && { dev: parsed.dev }),
    ...(parsed.metric !== undefined && { metric: parsed.metric }),
    ...(parsed.protocol && { protocol: parsed.protocol }),
  });
  return ok();
}

function routeShow(kernel: Kernel, args: string[], options: Options): Outcome {
  const parsed = parseRouteArgs(kernel, args, options, "show");
  if (
    parsed.gateway || parsed.encap || parsed.onlink || parsed.metric !== undefined || parsed.scope
  ) {
    throw unsupported(`ip route show ${args.join(" ")}`);
  }
  // Dumps are of one family: -4/-6, else inet.
  const family = options.family ?? 4;
  const table = parsed.tableAll ? undefined : parsed.table ?? 254;
  // Only a strict dump (not -batch) is refused for a table the kernel never created.
  if (!options.batch && table !== undefined && !kernel.tableExists(family, table)) {
    return {
      stdout: options.json ? "[" : "",
      stderr: `Error: ipv${family}: FIB table does not exist.\nDump terminated\n`,
      code: 2,
    };
  }
  let routes = kernel.routes({ netns: HOST_NETNS, family, ...(table !== undefined && { table }) });
  if (parsed.prefix) {
    if (parsed.prefix.family !== family) routes = [];
    const exact = prefixText(maskPrefix(parsed.prefix));
    routes = routes.filter((r) => r.dst === exact);
  }
  if (parsed.dev) routes = routes.filter((r) => r.dev === parsed.dev!.name);
  if (parsed.type) routes = routes.filter((r) => r.type === parsed.type);
  if (parsed.protocol) routes = routes.filter((r) => r.protocol === parsed.protocol);
  const showTable = table === undefined;
  if (options.json) {
    return ok(`${JSON.stringify(routes.map((r) => routeJson(r, options.details, showTable)))}\n`);
  }
  return ok(routes.map((r) => routeText(r, options.details, showTable)).join(""));
}

function routeFlush(kernel: Kernel, args: string[], options: Options): Outcome {
  if (args.length !== 2 || args[0] !== "table") {
    throw unsupported(`ip route flush ${args.join(" ")}`);
  }
  const table = parseTable(args[1]!, `"table" value is invalid\n`);
  const family = options.family ?? 4;
  if (!kernel.tableExists(family, table)) {
    if (options.batch) return ok();
    return {
      stdout: "",
      stderr: `Error: ipv${family}: FIB table does not exist.\nFlush terminated\n`,
      code: 2,
    };
  }
  kernel.flushTable(family, table);
  return ok();
}
