/**
 * An in-memory model of one host's network state (links, routes, sysctls,
 * iptables FORWARD rules, network namespaces) with the kernel rules the
 * plugin depends on, and the interpreter of the commands it runs
 * (`ip`, `sysctl`, `iptables`, `ip6tables`). Error texts and exit codes are
 * the ones iproute2 6.1 / procps-ng 4.0 / iptables 1.8.9 print on Linux 6.x.
 *
 * The whole state is plain JSON ({@linkcode KernelState}) so concurrent
 * processes can share it through a locked file (see `store.ts`).
 *
 * @module
 */

import {
  type Address,
  comparePrefixes,
  displayPrefix,
  type Family,
  formatAddress,
  hasHostBits,
  linkLocalFromMac,
  maskPrefix,
  parsePrefix,
  type Prefix,
  prefixContains,
  prefixText,
} from "./addresses.ts";
import { runIp } from "./ip_command.ts";
import { runIptables } from "./iptables_command.ts";
import { runSysctl } from "./sysctl_command.ts";

/** The netns of the host itself (every other netns is named by its path). */
export const HOST_NETNS = "host";

/** Table ids of `ip route ... table main|local|default`. */
export const TABLE_IDS: Readonly<Record<string, number>> = { default: 253, main: 254, local: 255 };

/** Device kinds the model knows. */
export type LinkKind = "loopback" | "veth" | "vrf" | "dummy";

/** One network device. */
export interface LinkRecord {
  /** Interface index (unique across namespaces in this model). */
  ifindex: number;
  /** Current name. */
  name: string;
  /** Device kind. */
  kind: LinkKind;
  /** {@linkcode HOST_NETNS} or the path of a pod netns. */
  netns: string;
  /** Administratively up. */
  up: boolean;
  /** Was up once (qdisc noqueue instead of noop). */
  everUp?: boolean;
  mtu: number;
  /** MAC address. */
  mac: string;
  /** veth peer ifindex. */
  peer?: number;
  /** Master (VRF) ifindex. */
  master?: number;
  /** VRF table. */
  table?: number;
  /** Device group (IFLA_GROUP); absent: 0, "default". */
  group?: number;
  /** IFLA_IFALIAS (host-device keeps the original name here). */
  alias?: string;
  /** Addresses (CIDR) configured inside a pod by IPAM. */
  addresses?: string[];
  /** Has an IPv6 link-local address (kernel adds it once up with carrier). */
  ll?: boolean;
  /** Per-interface sysctls in the host netns, keyed `ipv4/rp_filter`. */
  conf?: Record<string, string>;
}

/** Route types the model knows. */
export type RouteType =
  | "unicast"
  | "unreachable"
  | "blackhole"
  | "prohibit"
  | "local"
  | "multicast"
  | "anycast";

/** A seg6local lightweight tunnel. */
export interface Seg6Local {
  /** `seg6local`. */
  type: "seg6local";
  /** Action, e.g. `End.DT46`. */
  action: string;
  /** VRF table (End.DT4/DT6/DT46 in VRF mode). */
  vrftable?: number;
  /** Lookup table (End.DT6 legacy mode, End.T). */
  table?: number;
}

/** One route as stored. */
export interface RouteRecord {
  netns: string;
  family: Family;
  table: number;
  /** Destination, canonical `addr/len`. */
  dst: string;
  /** Route type. */
  type: RouteType;
  /** Gateway address. */
  gateway?: string;
  /** Output device ifindex. */
  dev?: number;
  /** Next hop declared on-link. */
  onlink?: boolean;
  /** Scope (IPv4; IPv6 routes are always global). */
  scope: "global" | "link" | "host";
  /** Metric (priority). */
  metric: number;
  /** Protocol (`boot` for routes added by `ip`). */
  protocol: string;
  /** Lightweight tunnel. */
  encap?: Seg6Local;
  /** Insertion order. */
  seq: number;
}

/** What a fault injection matches and returns. */
export interface FaultSpec {
  /**
   * Regular expression tested against the command as one line: `ip -6 route
   * replace ...` (for `ip -batch`, each line as `ip <flags> <line>`),
   * `sysctl -q -w k=v`, `iptables -w 5 -A FORWARD ...`, `host-device ADD
   * <device> <ifname>` (also `DEL`, `CHECK`).
   */
  match: string;
  /** Exit code (default: 2 for ip, 1 for others; delegates print it as the CNI error code, default 999). */
  code?: number;
  /** Error text (default `RTNETLINK answers: Invalid argument` / `injected fault`). */
  stderr?: string;
  /** Text printed on stdout instead (delegates: replaces the CNI error JSON). */
  stdout?: string;
  /** How many times it fires (default 1; negative: always). */
  times?: number;
  /** Matches to let through before firing (default 0: the first match fails). */
  after?: number;
  /** Perform the command anyway and then report the failure (a lost reply). */
  apply?: boolean;
}

/** A fault with its counters. */
export interface Fault extends FaultSpec {
  /** Matches seen so far. */
  seen: number;
  /** Times fired so far. */
  fired: number;
}

/** Options of a new kernel. */
export interface KernelOptions {
  /** `vrf` module loaded (net.vrf.strict_mode exists). Default true. */
  vrfModuleLoaded?: boolean;
  /** Initial net.vrf.strict_mode. Default false. */
  strictMode?: boolean;
  /** Extra host devices (dummy), e.g. an uplink `eth0`. */
  links?: readonly string[];
  /** Global sysctl overrides, keys in dotted or slash form. */
  sysctls?: Readonly<Record<string, string>>;
  /** CNI versions the fake host-device accepts. Default 0.1.0 … 1.0.0. */
  delegateVersions?: readonly string[];
  /** What host-device DEL does when CNI_IFNAME is not in the netns: `error` (real) or `ok`. */
  delegateDelMissing?: "error" | "ok";
  /** Treat any netns path as existing unless deleted (default true). */
  autoNetns?: boolean;
}

/** The shared, serialisable state. */
export interface KernelState {
  /** Format version. */
  version: 1;
  /** Next interface index. */
  nextIfindex: number;
  /** Next route sequence number. */
  nextSeq: number;
  /** Next MAC suffix. */
  nextMac: number;
  /** Devices of every netns. */
  links: LinkRecord[];
  /** Routes of every netns. */
  routes: RouteRecord[];
  /** FIB tables that exist in the host netns, per family. */
  tables: { v4: number[]; v6: number[] };
  /** Global sysctls of the host netns (slash paths under /proc/sys). */
  sysctls: Record<string, string>;
  /** iptables / ip6tables filter table: chain → rule specs. */
  xtables: { iptables: Record<string, string[][]>; ip6tables: Record<string, string[][]> };
  /** Netns paths created or deleted explicitly. */
  netns: Record<string, "present" | "deleted">;
  /** Loaded modules. */
  modules: { vrf: boolean };
  /** Injected faults. */
  faults: Fault[];
  /** Behaviour switches. */
  options: {
    autoNetns: boolean;
    delegateVersions: string[];
    delegateDelMissing: "error" | "ok";
  };
}

/** Output of one command. */
export interface CommandResult {
  code: number;
  /** Standard output. */
  stdout: string;
  /** Standard error. */
  stderr: string;
}

/** errno names the model raises, with their strerror text. */
export const STRERROR = {
  EEXIST: "File exists",
  EINVAL: "Invalid argument",
  ENODEV: "No such device",
  ESRCH: "No such process",
  EOPNOTSUPP: "Operation not supported",
  EBUSY: "Device or resource busy",
  ENETDOWN: "Network is down",
  EHOSTUNREACH: "No route to host",
  EPERM: "Operation not permitted",
  ENOENT: "No such file or directory",
  ENETUNREACH: "Network is unreachable",
} as const;

export type Errno = keyof typeof STRERROR;

/** A netlink failure: errno plus the kernel's extended-ack message, if any. */
export class KernelError extends Error {
  readonly errno: Errno;
  /** NL_SET_ERR_MSG text (without the final period). */
  readonly extack: string | undefined;

  /** A failure with `errno` and optional extack text. */
  constructor(errno: Errno, extack?: string) {
    super(extack ?? STRERROR[errno]);
    this.name = "KernelError";
    this.errno = errno;
    this.extack = extack;
  }

  /** How iproute2 prints it. */
  ipText(): string {
    return this.extack === undefined
      ? `RTNETLINK answers: ${STRERROR[this.errno]}`
      : `Error: ${this.extack}.`;
  }

  /** How Go's syscall.Errno prints it (host-device messages). */
  goText(): string {
    return STRERROR[this.errno].toLowerCase();
  }
}

/** A link as tests see it (names instead of indices). */
export interface LinkView {
  /** Index. */
  readonly ifindex: number;
  readonly name: string;
  readonly kind: LinkKind;
  readonly netns: string;
  /** Administratively up. */
  readonly up: boolean;
  /** Has carrier (veth: both ends up). */
  readonly carrier: boolean;
  readonly mtu: number;
  readonly mac: string;
  readonly master?: string;
  /** Peer name (veth). */
  readonly peer?: string;
  /** Peer netns (veth). */
  readonly peerNetns?: string;
  /** VRF table. */
  readonly table?: number;
  readonly alias?: string;
  /** Pod addresses. */
  readonly addresses: readonly string[];
}

/** A route as tests see it. */
export interface RouteView {
  readonly netns: string;
  readonly family: Family;
  readonly table: number;
  /** Canonical destination (`10.0.0.0/16`, `::/0`). */
  readonly dst: string;
  /** Destination as `ip route` prints it (`default`, host routes without length). */
  readonly display: string;
  readonly type: RouteType;
  readonly gateway?: string;
  /** Device name (IPv6 reject routes: `lo`). */
  readonly dev?: string;
  /** on-link next hop. */
  readonly onlink: boolean;
  readonly scope: "global" | "link" | "host";
  readonly metric: number;
  /** Protocol (`kernel` for routes the kernel derives from links). */
  readonly protocol: string;
  /** seg6local encap. */
  readonly encap?: Seg6Local;
  /** The device has no carrier. */
  readonly linkdown: boolean;
  /** @internal parsed destination */
  readonly prefix: Prefix;
  /** @internal insertion order */
  readonly seq: number;
}

/** A read-only view of the host for assertions. */
export interface KernelSnapshot {
  /** Devices of every netns. */
  readonly links: readonly LinkView[];
  /** Routes of every netns (including kernel-derived IPv6 link-local ones). */
  readonly routes: readonly RouteView[];
  /** Every sysctl of the host netns, dotted keys (`net.ipv4.conf.X.rp_filter`). */
  readonly sysctls: Readonly<Record<string, string>>;
  /** FORWARD rules and others in `iptables -S` form, per tool. */
  readonly rules: { readonly iptables: readonly string[]; readonly ip6tables: readonly string[] };
  /** Faults with their counters. */
  readonly faults: readonly Fault[];
  /** The raw state. */
  readonly state: KernelState;
  /** A link by name (host netns unless `netns` is given). */
  link(name: string, netns?: string): LinkView | undefined;
  /** Routes of a table in the host netns (family 4, 6 or both); kernel-derived ones unless `userOnly`. */
  table(
    table: number | "main" | "local",
    options?: { family?: Family; userOnly?: boolean },
  ): RouteView[];
}

const PER_LINK_DEFAULTS = {
  ipv4: ["forwarding", "rp_filter", "proxy_arp", "accept_local", "arp_ignore"],
  ipv6: ["forwarding", "proxy_ndp", "disable_ipv6", "accept_ra", "seg6_enabled"],
} as const;

function initialSysctls(): Record<string, string> {
  const values: Record<string, string> = {
    "net/ipv4/ip_forward": "1",
    "net/ipv6/seg6_flowlabel": "0",
  };
  const v4: Record<string, string> = {
    forwarding: "1",
    rp_filter: "2",
    proxy_arp: "0",
    accept_local: "0",
    arp_ignore: "0",
  };
  const v6: Record<string, string> = {
    forwarding: "1",
    proxy_ndp: "0",
    disable_ipv6: "0",
    accept_ra: "1",
    seg6_enabled: "0",
  };
  for (const scope of ["all", "default"]) {
    for (const [k, v] of Object.entries(v4)) {
      values[`net/ipv4/conf/${scope}/${k}`] = scope === "all" && k === "rp_filter" ? "0" : v;
    }
    for (const [k, v] of Object.entries(v6)) values[`net/ipv6/conf/${scope}/${k}`] = v;
  }
  return values;
}

/** `net.vrf.strict_mode` ↔ `net/vrf/strict_mode`: the path under /proc/sys. */
export function sysctlPath(key: string): string {
  return key.includes("/") ? key.replace(/^\/+/, "") : key.replaceAll(".", "/");
}

/** `net/ipv4/conf/X/rp_filter` → `net.ipv4.conf.X.rp_filter` (as sysctl prints it). */
export function sysctlDisplay(path: string): string {
  return path.split("/").map((part) => part.replaceAll(".", "/")).join(".");
}

const VALID_NAME = /^[^\s/:]{1,15}$/;

/** The host network model. Mutations validate like the kernel and throw {@linkcode KernelError}. */
export class Kernel {
  /** The state (mutated in place). */
  readonly state: KernelState;

  /** Wraps an existing state. */
  constructor(state: KernelState) {
    this.state = state;
  }

  /** A fresh host: `lo`, optional extra devices, default sysctls, empty FORWARD chains. */
  static create(options: KernelOptions = {}): Kernel {
    const state: KernelState = {
      version: 1,
      nextIfindex: 1,
      nextSeq: 1,
      nextMac: 1,
      links: [],
      routes: [],
      tables: { v4: [254, 255], v6: [254, 255] },
      sysctls: initialSysctls(),
      xtables: {
        iptables: { INPUT: [], FORWARD: [], OUTPUT: [] },
        ip6tables: { INPUT: [], FORWARD: [], OUTPUT: [] },
      },
      netns: {},
      modules: { vrf: false },
      faults: [],
      options: {
        autoNetns: options.autoNetns ?? true,
        delegateVersions: [
          ...(options.delegateVersions ?? ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"]),
        ],
        delegateDelMissing: options.delegateDelMissing ?? "error",
      },
    };
    const kernel = new Kernel(state);
    state.links.push({
      ifindex: state.nextIfindex++,
      name: "lo",
      kind: "loopback",
      netns: HOST_NETNS,
      up: true,
      everUp: true,
      mtu: 65536,
      mac: "00:00:00:00:00:00",
      conf: kernel.#defaultConf(),
    });
    if (options.vrfModuleLoaded ?? true) kernel.#loadVrfModule();
    if (options.strictMode) state.sysctls["net/vrf/strict_mode"] = "1";
    for (const name of options.links ?? []) {
      const link = kernel.addLink({ name, kind: "dummy" });
      kernel.setUp(link, true);
    }
    for (const [key, value] of Object.entries(options.sysctls ?? {})) {
      state.sysctls[sysctlPath(key)] = value;
    }
    return kernel;
  }

  /** Parses a state file's text. */
  static fromJson(text: string): Kernel {
    return new Kernel(JSON.parse(text) as KernelState);
  }

  /** Serialises the state. */
  toJson(): string {
    return JSON.stringify(this.state);
  }

  // ---------------------------------------------------------------- links

  /** Links of a netns, by ifindex. */
  links(netns: string = HOST_NETNS): LinkRecord[] {
    return this.state.links.filter((l) => l.netns === netns).sort((a, b) => a.ifindex - b.ifindex);
  }

  link(name: string, netns: string = HOST_NETNS): LinkRecord | undefined {
    return this.state.links.find((l) => l.name === name && l.netns === netns);
  }

  linkByIndex(ifindex: number | undefined): LinkRecord | undefined {
    return ifindex === undefined ? undefined : this.state.links.find((l) => l.ifindex === ifindex);
  }

  /** Carrier: loopback, VRF and dummy devices have it when up; a veth when both ends are up. */
  carrier(link: LinkRecord): boolean {
    if (!link.up) return false;
    if (link.kind !== "veth") return true;
    return this.linkByIndex(link.peer)?.up ?? false;
  }

  #defaultConf(): Record<string, string> {
    const conf: Record<string, string> = {};
    for (const family of ["ipv4", "ipv6"] as const) {
      for (const key of PER_LINK_DEFAULTS[family]) {
        conf[`${family}/${key}`] = this.state.sysctls[`net/${family}/conf/default/${key}`] ?? "0";
      }
    }
    return conf;
  }

  #loadVrfModule(): void {
    if (this.state.modules.vrf) return;
    this.state.modules.vrf = true;
    this.state.sysctls["net/vrf/strict_mode"] ??= "0";
  }

  #nextMac(): string {
    const n = this.state.nextMac++;
    return `02:fa:ce:${((n >> 16) & 0xff).toString(16).padStart(2, "0")}:${
      ((n >> 8) & 0xff).toString(16).padStart(2, "0")
    }:${(n & 0xff).toString(16).padStart(2, "0")}`;
  }

  #checkNewName(name: string, netns: string): void {
    if (
      !VALID_NAME.test(name) || name === "." || name === ".." || name === "all" ||
      name === "default"
    ) {
      throw new KernelError("EINVAL");
    }
    if (this.link(name, netns)) throw new KernelError("EEXIST");
  }

  #mtuRange(kind: LinkKind): [number, number] {
    if (kind === "vrf") return [1280, 65575];
    if (kind === "loopback") return [0, 65536];
    return [68, 65535];
  }

  /** `ip link add`: creates a veth pair, a VRF or a dummy device (down). Returns the named device. */
  addLink(spec: {
    name: string;
    kind: Exclude<LinkKind, "loopback">;
    mtu?: number;
    table?: number;
    peer?: { name?: string; mtu?: number };
    netns?: string;
  }): LinkRecord {
    const netns = spec.netns ?? HOST_NETNS;
    if (spec.name.length > 15) {
      throw new KernelError("EINVAL", "Attribute failed policy validation");
    }
    this.#checkNewName(spec.name, netns);
    const [min, max] = this.#mtuRange(spec.kind);
    for (const mtu of [spec.mtu, spec.peer?.mtu]) {
      if (mtu !== undefined && (mtu < min || mtu > max)) throw new KernelError("EINVAL");
    }
    const make = (name: string, kind: LinkKind, mtu: number): LinkRecord => ({
      ifindex: this.state.nextIfindex++,
      name,
      kind,
      netns,
      up: false,
      mtu,
      mac: this.#nextMac(),
      ...(netns === HOST_NETNS && { conf: this.#defaultConf() }),
    });
    if (spec.kind === "veth") {
      let peerName = spec.peer?.name;
      if (peerName === undefined) {
        for (let i = 0; peerName === undefined; i++) {
          if (!this.link(`veth${i}`, netns)) peerName = `veth${i}`;
        }
      }
      if (peerName === spec.name) throw new KernelError("EEXIST");
      this.#checkNewName(peerName, netns);
      // The kernel registers the peer first: it gets the lower index.
      const peer = make(peerName, "veth", spec.peer?.mtu ?? 1500);
      const link = make(spec.name, "veth", spec.mtu ?? 1500);
      peer.peer = link.ifindex;
      link.peer = peer.ifindex;
      this.state.links.push(peer, link);
      return link;
    }
    if (spec.kind === "vrf") {
      if (spec.table === undefined) throw new KernelError("EINVAL", "VRF table id is missing");
      if (spec.table === 0) throw new KernelError("EINVAL", "Invalid VRF table id");
      this.#loadVrfModule();
      if (
        this.state.sysctls["net/vrf/strict_mode"] === "1" &&
        this.links(netns).some((l) => l.kind === "vrf" && l.table === spec.table)
      ) {
        throw new KernelError("EBUSY", "Table is used by another VRF");
      }
      const link = make(spec.name, "vrf", spec.mtu ?? 65575);
      link.table = spec.table;
      this.state.links.push(link);
      if (netns === HOST_NETNS) {
        for (const key of ["v4", "v6"] as const) {
          if (!this.state.tables[key].includes(spec.table)) this.state.tables[key].push(spec.table);
        }
      }
      return link;
    }
    const link = make(spec.name, spec.kind, spec.mtu ?? 1500);
    this.state.links.push(link);
    return link;
  }

  #flushRoutesVia(link: LinkRecord): void {
    this.state.routes = this.state.routes.filter((r) =>
      !(r.netns === link.netns && r.dev === link.ifindex)
    );
  }

  #refreshLinkLocal(): void {
    for (const link of this.state.links) {
      if (!link.up) delete link.ll;
      else if ((link.kind === "veth" || link.kind === "dummy") && this.carrier(link)) {
        link.ll = true;
      }
    }
  }

  /** `ip link del`: a veth takes its peer along; a VRF releases its slaves; routes via the device go. */
  deleteLink(link: LinkRecord): void {
    if (link.kind === "loopback") throw new KernelError("EOPNOTSUPP");
    const doomed = [link, ...(link.kind === "veth" ? [this.linkByIndex(link.peer)] : [])]
      .filter((l): l is LinkRecord => l !== undefined);
    for (const dead of doomed) {
      for (const slave of this.state.links.filter((l) => l.master === dead.ifindex)) {
        this.#release(slave);
      }
      this.#flushRoutesVia(dead);
    }
    const gone = new Set(doomed.map((l) => l.ifindex));
    this.state.links = this.state.links.filter((l) => !gone.has(l.ifindex));
    this.#refreshLinkLocal();
  }

  #release(slave: LinkRecord): void {
    delete slave.master;
    // vrf_del_slave cycles the device: routes through it are flushed.
    if (slave.up) this.#flushRoutesVia(slave);
  }

  /** Changes the MTU. */
  setMtu(link: LinkRecord, mtu: number): void {
    const [min, max] = this.#mtuRange(link.kind);
    if (mtu < min) throw new KernelError("EINVAL", "mtu less than device minimum");
    if (mtu > max) throw new KernelError("EINVAL", "mtu greater than device maximum");
    link.mtu = mtu;
  }

  /** Brings a device up or down; down flushes the routes through it (both families). */
  setUp(link: LinkRecord, up: boolean): void {
    if (up && !link.up) {
      link.up = true;
      link.everUp = true;
    } else if (!up && link.up) {
      link.up = false;
      this.#flushRoutesVia(link);
    }
    this.#refreshLinkLocal();
  }

  /** Enslaves to a VRF (`undefined`: nomaster). Only VRFs accept slaves. */
  setMaster(link: LinkRecord, master: LinkRecord | undefined): void {
    if (master === undefined) {
      if (link.master !== undefined) this.#release(link);
      return;
    }
    if (master.kind !== "vrf" || master.netns !== link.netns) throw new KernelError("EOPNOTSUPP");
    if (master.ifindex === link.ifindex) throw new KernelError("EINVAL");
    if (link.master === master.ifindex) return;
    if (link.master !== undefined) delete link.master;
    link.master = master.ifindex;
    // vrf_add_slave cycles an up device to move its routes across tables.
    if (link.up) this.#flushRoutesVia(link);
  }

  /** Renames a device (it must be down, like a veth in the kernel). */
  rename(link: LinkRecord, name: string): void {
    if (link.name === name) return;
    if (name.length > 15) throw new KernelError("EINVAL", "Attribute failed policy validation");
    this.#checkNewName(name, link.netns);
    if (link.up) throw new KernelError("EBUSY");
    link.name = name;
  }

  /** Moves a device to another netns (down, routes flushed, master released, sysctls reset). */
  moveLink(link: LinkRecord, netns: string): void {
    if (link.netns === netns) return;
    if (this.link(link.name, netns)) throw new KernelError("EEXIST");
    if (link.kind === "vrf" || link.kind === "loopback") throw new KernelError("EINVAL");
    if (link.master !== undefined) this.#release(link);
    this.setUp(link, false);
    this.#flushRoutesVia(link);
    link.netns = netns;
    delete link.addresses;
    if (netns === HOST_NETNS) link.conf = this.#defaultConf();
    else delete link.conf;
    this.#refreshLinkLocal();
  }

  // --------------------------------------------------------------- netns

  /** True when a netns path exists. */
  netnsExists(path: string): boolean {
    if (path === HOST_NETNS) return true;
    const known = this.state.netns[path];
    return known === "present" || (known === undefined && this.state.options.autoNetns);
  }

  /** Registers a netns path. */
  createNetns(path: string): void {
    this.state.netns[path] = "present";
  }

  /** Deletes a netns: its devices are destroyed (a veth takes its host peer along). */
  deleteNetns(path: string): void {
    this.state.netns[path] = "deleted";
    for (const link of this.links(path)) {
      if (this.state.links.includes(link)) {
        if (link.kind === "loopback") this.state.links = this.state.links.filter((l) => l !== link);
        else this.deleteLink(link);
      }
    }
    this.state.routes = this.state.routes.filter((r) => r.netns !== path);
  }

  // --------------------------------------------------------------- routes

  /** True when the FIB table exists in the host netns. */
  tableExists(family: Family, table: number): boolean {
    return this.state.tables[family === 4 ? "v4" : "v6"].includes(table);
  }

  #touchTable(netns: string, family: Family, table: number): void {
    if (netns !== HOST_NETNS) return;
    const list = this.state.tables[family === 4 ? "v4" : "v6"];
    if (!list.includes(table)) list.push(table);
  }

  #view(route: RouteRecord): RouteView {
    const prefix = parsePrefix(route.dst)!;
    const dev = this.linkByIndex(route.dev);
    const reject = route.type === "unreachable" || route.type === "blackhole" ||
      route.type === "prohibit";
    return {
      netns: route.netns,
      family: route.family,
      table: route.table,
      dst: route.dst,
      display: displayPrefix(prefix),
      type: route.type,
      ...(route.gateway !== undefined && { gateway: route.gateway }),
      ...(dev ? { dev: dev.name } : reject && route.family === 6 ? { dev: "lo" } : {}),
      onlink: route.onlink ?? false,
      scope: route.scope,
      metric: route.metric,
      protocol: route.protocol,
      ...(route.encap && { encap: route.encap }),
      linkdown: dev !== undefined && !this.carrier(dev),
      prefix,
      seq: route.seq,
    };
  }

  #derivedRoutes(netns: string): RouteRecord[] {
    const out: RouteRecord[] = [];
    for (const link of this.links(netns)) {
      if (!link.ll) continue;
      const vrf = this.linkByIndex(link.master);
      const main = vrf?.table ?? 254;
      const local = vrf?.table ?? 255;
      const base = {
        netns,
        family: 6 as const,
        protocol: "kernel",
        scope: "global" as const,
        dev: link.ifindex,
        seq: 0,
      };
      out.push({ ...base, table: main, dst: "fe80::/64", type: "unicast", metric: 256 });
      out.push({
        ...base,
        table: local,
        dst: `${linkLocalFromMac(link.mac)}/128`,
        type: "local",
        metric: 0,
      });
      if (link.conf?.["ipv6/forwarding"] === "1") {
        out.push({ ...base, table: local, dst: "fe80::/128", type: "anycast", metric: 0 });
      }
      out.push({ ...base, table: local, dst: "ff00::/8", type: "multicast", metric: 256 });
    }
    return out;
  }

  /**
   * Routes in dump order: stored ones plus those the kernel derives from
   * links (IPv6 link-local, local, anycast and multicast routes of every
   * device that came up with carrier, in its VRF's table or main/local).
   */
  routes(filter: { netns?: string; family?: Family; table?: number } = {}): RouteView[] {
    const netns = filter.netns ?? HOST_NETNS;
    const all = [
      ...this.state.routes.filter((r) => r.netns === netns),
      ...this.#derivedRoutes(netns),
    ];
    return all
      .filter((r) =>
        (filter.family === undefined || r.family === filter.family) &&
        (filter.table === undefined || r.table === filter.table)
      )
      .map((r) => this.#view(r))
      .sort((a, b) =>
        a.family - b.family || a.table - b.table || comparePrefixes(a.prefix, b.prefix) ||
        a.metric - b.metric ||
        b.seq - a.seq
      );
  }

  #gatewayReachable(
    family: Family,
    table: number,
    gateway: Address,
    dev: LinkRecord | undefined,
    netns: string,
  ): boolean {
    if (family === 6 && gateway.bytes[0] === 0xfe && (gateway.bytes[1]! & 0xc0) === 0x80) {
      return true;
    }
    return this.routes({ netns, family, table }).some((r) =>
      r.type === "unicast" && r.gateway === undefined && r.dev !== undefined &&
      (dev === undefined || r.dev === dev.name) && prefixContains(r.prefix, gateway)
    );
  }

  /**
   * `ip route add|replace`. A route's identity is (table, family, dst,
   * metric): add of an existing one is EEXIST, replace overwrites it.
   */
  addRoute(
    spec: {
      netns?: string;
      family: Family;
      table: number;
      prefix: Prefix;
      type: RouteType;
      gateway?: Address;
      dev?: LinkRecord;
      onlink?: boolean;
      scope?: "global" | "link" | "host";
      metric?: number;
      protocol?: string;
      encap?: Seg6Local;
    },
    mode: "add" | "replace",
  ): void {
    const netns = spec.netns ?? HOST_NETNS;
    const { family, dev } = spec;
    const reject = spec.type === "unreachable" || spec.type === "blackhole" ||
      spec.type === "prohibit";
    if (family === 4 && hasHostBits(spec.prefix)) {
      throw new KernelError("EINVAL", "Invalid prefix for given prefix length");
    }
    const prefix = maskPrefix(spec.prefix);
    if (reject) {
      if (family === 4 && (dev || spec.gateway)) {
        throw new KernelError(
          "EINVAL",
          "Gateway, device and multipath can not be specified for this route type",
        );
      }
    } else {
      if (spec.onlink && !dev) {
        throw new KernelError("EINVAL", "Nexthop device required for onlink");
      }
      if (!dev && !spec.gateway) throw new KernelError("ENODEV");
      if (dev && !dev.up) {
        throw new KernelError(
          "ENETDOWN",
          family === 4 && !spec.gateway
            ? "Device for nexthop is not up"
            : "Nexthop device is not up",
        );
      }
      if (
        spec.gateway && !spec.onlink &&
        !this.#gatewayReachable(family, spec.table, spec.gateway, dev, netns)
      ) {
        throw family === 4
          ? new KernelError("EINVAL", "Nexthop has invalid gateway")
          : new KernelError("EHOSTUNREACH");
      }
      if (spec.encap) this.#checkSeg6Local(spec.encap);
    }
    const metric = spec.metric ?? (family === 4 ? 0 : 1024);
    const route: RouteRecord = {
      netns,
      family,
      table: spec.table,
      dst: prefixText(prefix),
      type: spec.type,
      ...(spec.gateway && { gateway: formatAddress(spec.gateway) }),
      ...(dev && !(reject && family === 6) && { dev: dev.ifindex }),
      ...(spec.onlink && { onlink: true }),
      scope: family === 6 ? "global" : spec.scope ?? (reject || spec.gateway ? "global" : "link"),
      metric,
      protocol: spec.protocol ?? "boot",
      ...(spec.encap && { encap: spec.encap }),
      seq: this.state.nextSeq++,
    };
    const index = this.state.routes.findIndex((r) =>
      r.netns === netns && r.family === family && r.table === spec.table && r.dst === route.dst &&
      r.metric === metric
    );
    if (index >= 0 && mode === "add") throw new KernelError("EEXIST");
    if (index >= 0) this.state.routes[index] = route;
    else this.state.routes.push(route);
    this.#touchTable(netns, family, spec.table);
  }

  #checkSeg6Local(encap: Seg6Local): void {
    if (encap.vrftable === undefined) return;
    if (!this.state.modules.vrf) throw new KernelError("EINVAL");
    if (this.state.sysctls["net/vrf/strict_mode"] !== "1") {
      throw new KernelError("EPERM", "Strict mode for VRF is disabled");
    }
    if (!this.links().some((l) => l.kind === "vrf" && l.table === encap.vrftable)) {
      throw new KernelError("ENODEV", "Table has no associated VRF device");
    }
  }

  /**
   * `ip route del`: the first route of the table with that destination whose
   * given attributes match (unspecified ones are wildcards).
   */
  deleteRoute(filter: {
    netns?: string;
    family: Family;
    table: number;
    prefix: Prefix;
    type?: RouteType;
    gateway?: Address;
    dev?: LinkRecord;
    metric?: number;
    protocol?: string;
  }): void {
    const netns = filter.netns ?? HOST_NETNS;
    if (netns === HOST_NETNS && !this.tableExists(filter.family, filter.table)) {
      throw new KernelError("ESRCH", "FIB table does not exist");
    }
    const dst = prefixText(maskPrefix(filter.prefix));
    const candidates = this.state.routes
      .filter((r) =>
        r.netns === netns && r.family === filter.family && r.table === filter.table && r.dst === dst
      )
      .sort((a, b) => a.metric - b.metric || a.seq - b.seq);
    const found = candidates.find((r) =>
      (filter.family === 6 || filter.type === undefined || r.type === filter.type) &&
      (filter.gateway === undefined || r.gateway === formatAddress(filter.gateway)) &&
      (filter.dev === undefined || r.dev === filter.dev.ifindex) &&
      (filter.metric === undefined || r.metric === filter.metric) &&
      (filter.protocol === undefined || r.protocol === filter.protocol)
    );
    if (!found) throw new KernelError("ESRCH");
    this.state.routes = this.state.routes.filter((r) => r !== found);
  }

  /** Removes every stored route of a table and family (host netns). */
  flushTable(family: Family, table: number): void {
    this.state.routes = this.state.routes.filter((r) =>
      !(r.netns === HOST_NETNS && r.family === family && r.table === table)
    );
  }

  /** Adds a route inside a pod netns (IPAM); EEXIST when present. */
  addPodRoute(netns: string, dst: Prefix, gateway: Address | undefined, dev: LinkRecord): void {
    const family = dst.family;
    const route: RouteRecord = {
      netns,
      family,
      table: 254,
      dst: prefixText(maskPrefix(dst)),
      type: "unicast",
      ...(gateway && { gateway: formatAddress(gateway) }),
      dev: dev.ifindex,
      scope: gateway ? "global" : "link",
      metric: family === 4 ? 0 : 1024,
      protocol: "boot",
      seq: this.state.nextSeq++,
    };
    if (
      this.state.routes.some((r) =>
        r.netns === netns && r.family === family && r.dst === route.dst && r.metric === route.metric
      )
    ) {
      throw new KernelError("EEXIST");
    }
    this.state.routes.push(route);
  }

  // -------------------------------------------------------------- sysctls

  #linkSysctl(path: string): { link: LinkRecord; key: string } | "not-link" | undefined {
    const m = /^net\/(ipv4|ipv6)\/conf\/([^/]+)\/([^/]+)$/.exec(path);
    if (!m || m[2] === "all" || m[2] === "default") return "not-link";
    const link = this.link(m[2]!);
    const key = `${m[1]}/${m[3]}`;
    if (!link?.conf || !(key in link.conf)) return undefined;
    return { link, key };
  }

  /** Reads a sysctl of the host netns; undefined when the file does not exist. */
  readSysctl(path: string): string | undefined {
    const found = this.#linkSysctl(path);
    if (found === "not-link") return this.state.sysctls[path];
    return found?.link.conf?.[found.key];
  }

  /** Writes a sysctl like the kernel's proc handlers (integers; strict_mode 0/1, EBUSY on shared tables). */
  writeSysctl(path: string, value: string): "ok" | Errno {
    const found = this.#linkSysctl(path);
    if (found === undefined || (found === "not-link" && !(path in this.state.sysctls))) {
      return "ENOENT";
    }
    const text = value.trim();
    if (!/^-?\d+$/.test(text)) return "EINVAL";
    const number = String(Number(text));
    if (found !== "not-link") {
      found.link.conf![found.key] = number;
      return "ok";
    }
    if (path === "net/vrf/strict_mode") {
      if (number !== "0" && number !== "1") return "EINVAL";
      if (number === "1") {
        const tables = this.links().filter((l) => l.kind === "vrf").map((l) => l.table);
        if (new Set(tables).size !== tables.length) return "EBUSY";
      }
    }
    this.state.sysctls[path] = number;
    // Writing all/forwarding (or ip_forward) sets every device's forwarding.
    const forwarding = /^net\/(ipv4|ipv6)\/conf\/all\/forwarding$/.exec(path)?.[1] ??
      (path === "net/ipv4/ip_forward" ? "ipv4" : undefined);
    if (forwarding) {
      if (forwarding === "ipv4") {
        this.state.sysctls["net/ipv4/ip_forward"] = number;
        this.state.sysctls["net/ipv4/conf/all/forwarding"] = number;
      }
      for (const link of this.links()) {
        if (link.conf) link.conf[`${forwarding}/forwarding`] = number;
      }
    }
    return "ok";
  }

  /** Every sysctl of the host netns, dotted keys, sorted. */
  sysctls(): Record<string, string> {
    const entries: [string, string][] = Object.entries(this.state.sysctls);
    for (const link of this.links()) {
      for (const [key, value] of Object.entries(link.conf ?? {})) {
        const [family, name] = key.split("/") as [string, string];
        entries.push([`net/${family}/conf/${link.name}/${name}`, value]);
      }
    }
    return Object.fromEntries(
      entries.map(([k, v]) => [sysctlDisplay(k), v] as const).sort(([a], [b]) => a < b ? -1 : 1),
    );
  }

  // ---------------------------------------------------------------- faults

  /** Counts `subject` against the faults; returns the one that fires now, if any. */
  takeFault(subject: string): Fault | undefined {
    let firing: Fault | undefined;
    for (const fault of this.state.faults) {
      if (!new RegExp(fault.match).test(subject)) continue;
      fault.seen++;
      const times = fault.times ?? 1;
      if (!firing && fault.seen > (fault.after ?? 0) && (times < 0 || fault.fired < times)) {
        fault.fired++;
        firing = fault;
      }
    }
    return firing;
  }

  /** Adds a fault. */
  inject(spec: FaultSpec): void {
    new RegExp(spec.match); // reject invalid patterns early
    this.state.faults.push({ ...spec, seen: 0, fired: 0 });
  }

  // ------------------------------------------------------------- commands

  /**
   * Runs `ip`, `sysctl`, `iptables` or `ip6tables` (argv[0], any directory)
   * with `stdin`. Forms the fake does not implement fail loudly
   * (`fake ip: unsupported ...`), never silently.
   */
  execute(argv: readonly string[], stdin = ""): CommandResult {
    const [program = "", ...args] = argv;
    const name = program.slice(program.lastIndexOf("/") + 1);
    switch (name) {
      case "ip":
        return runIp(this, args, stdin);
      case "sysctl":
        return runSysctl(this, args);
      case "iptables":
      case "ip6tables":
        return runIptables(this, name, args);
      default:
        return { code: 127, stdout: "", stderr: `fake host: ${name}: command not found\n` };
    }
  }

  // ------------------------------------------------------------- snapshot

  /** A read-only copy for assertions. */
  snapshot(): KernelSnapshot {
    const state = structuredClone(this.state);
    const kernel = new Kernel(state);
    const links: LinkView[] = state.links.slice().sort((a, b) => a.ifindex - b.ifindex).map((l) => {
      const peer = kernel.linkByIndex(l.peer);
      const master = kernel.linkByIndex(l.master);
      return {
        ifindex: l.ifindex,
        name: l.name,
        kind: l.kind,
        netns: l.netns,
        up: l.up,
        carrier: kernel.carrier(l),
        mtu: l.mtu,
        mac: l.mac,
        ...(master && { master: master.name }),
        ...(peer && { peer: peer.name, peerNetns: peer.netns }),
        ...(l.table !== undefined && { table: l.table }),
        ...(l.alias !== undefined && { alias: l.alias }),
        addresses: l.addresses ?? [],
      };
    });
    const namespaces = [
      ...new Set([
        HOST_NETNS,
        ...state.links.map((l) => l.netns),
        ...state.routes.map((r) => r.netns),
      ]),
    ];
    const routes = namespaces.flatMap((netns) => kernel.routes({ netns }));
    const rules = {
      iptables: xtablesRules(state.xtables.iptables),
      ip6tables: xtablesRules(state.xtables.ip6tables),
    };
    return {
      links,
      routes,
      sysctls: kernel.sysctls(),
      rules,
      faults: state.faults,
      state,
      link(name: string, netns: string = HOST_NETNS): LinkView | undefined {
        return links.find((l) => l.name === name && l.netns === netns);
      },
      table(
        table: number | "main" | "local",
        options: { family?: Family; userOnly?: boolean } = {},
      ): RouteView[] {
        const id = typeof table === "number" ? table : TABLE_IDS[table]!;
        return routes.filter((r) =>
          r.netns === HOST_NETNS && r.table === id &&
          (options.family === undefined || r.family === options.family) &&
          !(options.userOnly && r.protocol === "kernel")
        );
      },
    };
  }
}

/** `iptables -S` lines of a filter table. */
export function xtablesRules(chains: Record<string, string[][]>): string[] {
  const builtin = ["INPUT", "FORWARD", "OUTPUT"];
  const lines = builtin.filter((c) => c in chains).map((c) => `-P ${c} ACCEPT`);
  for (const chain of Object.keys(chains).filter((c) => !builtin.includes(c))) {
    lines.push(`-N ${chain}`);
  }
  for (const [chain, rules] of Object.entries(chains)) {
    for (const rule of rules) lines.push(`-A ${chain} ${rule.join(" ")}`);
  }
  return lines;
}
