/**
 * The plugin's network configuration (stdin JSON, SPEC §3), parsed into typed
 * values. Every invalid value fails with code 7 and names the field.
 *
 * @module
 */

import { CniError, ErrorCode, invalidConfig, truncate } from "../cni/errors.ts";
import { negotiateVersion } from "../cni/version.ts";
import { parseRuntimeRequests, type RuntimeRequests } from "./runtime_requests.ts";
import {
  formatIp,
  formatNetwork,
  type Identifier,
  type IpPrefix,
  parseAttachment,
  parseIp,
  parsePrefix,
  parseVpc,
} from "../ids/mod.ts";
import { NODE_DEFAULTS, type NodeConfig, nodeOverrides } from "./node_config.ts";

/** Log levels, least to most verbose. */
export const LOG_LEVELS = ["error", "warn", "info", "debug"] as const;
/** One of {@linkcode LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Defaults of the optional fields this plugin adds (documented in the README). */
export const DEFAULTS = {
  stateDir: NODE_DEFAULTS.stateDir,
  agentSocket: NODE_DEFAULTS.agentSocket,
  logLevel: "info" as LogLevel,
  vrfTableMin: 1000,
  vrfTableMax: 999_999,
  apiTimeoutSeconds: 10,
  // Deadlines sit well inside the runtime's own (kubelet gives RunPodSandbox
  // 4 min; containerd and Multus inherit it), so a hung step fails the verb
  // with a rollback instead of the runtime killing the plugin mid-way.
  commandTimeoutSeconds: 10,
  delegateTimeoutSeconds: 30,
  lockTimeoutSeconds: 60,
} as const;

/** A prefix reachable through the pod, installed in the VRF table. */
export interface Termination {
  /** Canonical network, e.g. `10.1.0.0/16`. */
  readonly network: string;
  /** Address family of `network`. */
  readonly family: 4 | 6;
  /** Canonical next hop, when set. */
  readonly via?: string;
}

/** A validated network configuration. */
export interface NetworkConfig {
  /** Negotiated spec version. */
  readonly cniVersion: string;
  /** Network name. */
  readonly name: string;
  readonly vpc: Identifier;
  /** VPC attachment identifier. */
  readonly attachment: Identifier;
  /** This node's SRv6 locator. */
  readonly locator: IpPrefix;
  /** MTU of the veth pair, when configured. */
  readonly mtu?: number;
  /** Prefixes routed through the pod. */
  readonly terminations: readonly Termination[];
  /** IPAM section, passed unchanged to host-device. */
  readonly ipam?: Record<string, unknown>;
  /** Explicit kubeconfig path (node configuration). */
  readonly kubeconfig?: string;
  /** Explicit node name (node configuration). */
  readonly nodeName?: string;
  /** Directory holding the lock and attachment records (node configuration). */
  readonly stateDir: string;
  /** Node agent socket. */
  readonly agentSocket: string;
  /** Optional log file (appended). */
  readonly logFile?: string;
  /** Log verbosity. */
  readonly logLevel: LogLevel;
  /** Lowest VRF table id to allocate. */
  readonly vrfTableMin: number;
  /** Highest VRF table id to allocate. */
  readonly vrfTableMax: number;
  /** Overall budget for Kubernetes API calls of one invocation. */
  readonly apiTimeoutSeconds: number;
  /** Deadline of each `ip`, `sysctl`, `iptables` process. */
  readonly commandTimeoutSeconds: number;
  /** Deadline of each host-device (and its IPAM) call. */
  readonly delegateTimeoutSeconds: number;
  /** Longest wait for a node-local lock. */
  readonly lockTimeoutSeconds: number;
  /** Per-pod requests of the runtime (`runtimeConfig`, `args`). */
  readonly runtime: RuntimeRequests;
  /** The configuration as received (prevResult, runtime keys, ...). */
  readonly raw: Readonly<Record<string, unknown>>;
}

const NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
/** A plugin executable's name in `CNI_PATH`: no path separator, at most 255 bytes. */
const PLUGIN_NAME_PATTERN = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,254}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function requireString(raw: Record<string, unknown>, field: string): string {
  const value = raw[field];
  if (value === undefined) throw invalidConfig(field, value, "is required");
  if (typeof value !== "string" || value === "") {
    throw invalidConfig(field, value, "must be a non-empty string");
  }
  return value;
}

function optionalInteger(
  raw: Record<string, unknown>,
  field: string,
  range: { min: number; max: number },
): number | undefined {
  const value = raw[field];
  if (value === undefined) return undefined;
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < range.min || value > range.max
  ) {
    throw invalidConfig(field, value, `must be an integer in ${range.min}..${range.max}`);
  }
  return value;
}

function identifier(
  raw: Record<string, unknown>,
  field: string,
  parse: (text: string) => Identifier,
): Identifier {
  const text = requireString(raw, field);
  try {
    return parse(text);
  } catch (error) {
    throw invalidConfig(field, text, `is not a valid identifier: ${(error as Error).message}`);
  }
}

function locator(raw: Record<string, unknown>): IpPrefix {
  const text = requireString(raw, "srv6_locator");
  const prefix = parsePrefix(text);
  if (!prefix || prefix.family !== 6) {
    throw invalidConfig("srv6_locator", text, "must be an IPv6 prefix such as fc00:0:1::/48");
  }
  if (prefix.length > 64) {
    throw invalidConfig("srv6_locator", text, "must have a prefix length <= 64");
  }
  return prefix;
}

function network(text: unknown, field: string): IpPrefix {
  if (typeof text !== "string") throw invalidConfig(field, text, "must be a CIDR string");
  const prefix = parsePrefix(text);
  if (!prefix) throw invalidConfig(field, text, "is not a valid CIDR prefix");
  if (formatNetwork(prefix) !== `${formatIp(prefix)}/${prefix.length}`) {
    throw invalidConfig(field, text, `has host bits set (did you mean ${formatNetwork(prefix)}?)`);
  }
  return prefix;
}

function terminations(raw: Record<string, unknown>): Termination[] {
  const value = raw.terminations;
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw invalidConfig("terminations", value, "must be a list");
  const seen = new Set<string>();
  return value.map((entry, i) => {
    const field = `terminations[${i}]`;
    if (!isRecord(entry)) throw invalidConfig(field, entry, "must be an object {network, via?}");
    const prefix = network(entry.network, `${field}.network`);
    const canonical = formatNetwork(prefix);
    if (seen.has(canonical)) {
      throw invalidConfig(`${field}.network`, entry.network, "is listed twice");
    }
    seen.add(canonical);
    if (entry.via === undefined) return { network: canonical, family: prefix.family };
    const via = typeof entry.via === "string" ? parseIp(entry.via) : undefined;
    if (!via) throw invalidConfig(`${field}.via`, entry.via, "is not an IP address");
    if (via.family !== prefix.family) {
      throw invalidConfig(
        `${field}.via`,
        entry.via,
        `must be an IPv${prefix.family} address like its network`,
      );
    }
    return { network: canonical, family: prefix.family, via: formatIp(via) };
  });
}

function ipam(raw: Record<string, unknown>): Record<string, unknown> | undefined {
  const value = raw.ipam;
  if (value === undefined) return undefined;
  if (!isRecord(value)) throw invalidConfig("ipam", value, "must be an object");
  if (typeof value.type !== "string" || value.type === "") {
    throw invalidConfig("ipam.type", value.type, "must be a non-empty string");
  }
  // host-device runs it from CNI_PATH as root: a plugin name, never a path.
  if (!PLUGIN_NAME_PATTERN.test(value.type)) {
    throw invalidConfig("ipam.type", value.type, "must be a plugin name (letters, digits, _ . -)");
  }
  if (value.type !== "static") return value;
  // The static plugin's own errors are terse; catch the common mistakes here.
  const addresses = value.addresses ?? [];
  if (!Array.isArray(addresses)) throw invalidConfig("ipam.addresses", addresses, "must be a list");
  addresses.forEach((entry, i) => {
    // The static plugin wants objects: a bare string would only fail later, inside host-device.
    if (!isRecord(entry)) {
      throw invalidConfig(`ipam.addresses[${i}]`, entry, "must be an object {address}");
    }
    const address = entry.address;
    if (typeof address !== "string" || !parsePrefix(address)) {
      throw invalidConfig(
        `ipam.addresses[${i}].address`,
        address,
        "must be an address with prefix length, e.g. 10.0.0.2/24",
      );
    }
  });
  const routes = value.routes ?? [];
  if (!Array.isArray(routes)) throw invalidConfig("ipam.routes", routes, "must be a list");
  routes.forEach((entry, i) => {
    if (!isRecord(entry)) {
      throw invalidConfig(`ipam.routes[${i}]`, entry, "must be an object {dst, gw?}");
    }
    if (typeof entry.dst !== "string" || !parsePrefix(entry.dst)) {
      throw invalidConfig(`ipam.routes[${i}].dst`, entry.dst, "must be a CIDR prefix");
    }
    if (entry.gw !== undefined && (typeof entry.gw !== "string" || !parseIp(entry.gw))) {
      throw invalidConfig(`ipam.routes[${i}].gw`, entry.gw, "must be an IP address");
    }
  });
  return value;
}

/** Decodes stdin bytes to a JSON object; code 6 when it is not one. */
export function decodeConfig(bytes: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    // The parser's message quotes the input; keep it short.
    throw new CniError(
      ErrorCode.DecodeFailure,
      `failed to decode network configuration from stdin: ${truncate((error as Error).message)}`,
    );
  }
  if (!isRecord(value)) {
    throw new CniError(
      ErrorCode.DecodeFailure,
      "failed to decode network configuration from stdin: not a JSON object",
    );
  }
  return value;
}

/**
 * Parses and validates a network configuration object. The node-owned
 * settings (paths, node name) come from `node`; the configuration may set them
 * only when `node` allows overrides.
 */
export function parseNetworkConfig(
  input: unknown,
  node: NodeConfig = NODE_DEFAULTS,
): NetworkConfig {
  if (!isRecord(input)) {
    throw new CniError(ErrorCode.DecodeFailure, "network configuration must be a JSON object");
  }
  const raw = input;
  const cniVersion = negotiateVersion(raw);
  const name = requireString(raw, "name");
  if (!NAME_PATTERN.test(name)) {
    throw invalidConfig("name", name, "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*");
  }
  const type = requireString(raw, "type");
  if (type !== "galactic") throw invalidConfig("type", type, `must be "galactic"`);

  const logLevel = raw.log_level ?? DEFAULTS.logLevel;
  if (!(LOG_LEVELS as readonly unknown[]).includes(logLevel)) {
    throw invalidConfig("log_level", logLevel, `must be one of ${LOG_LEVELS.join(", ")}`);
  }
  const overrides = nodeOverrides(raw, node);
  const tableRange = { min: 1, max: 0xffffffff };
  const vrfTableMin = optionalInteger(raw, "vrf_table_min", tableRange) ?? DEFAULTS.vrfTableMin;
  const vrfTableMax = optionalInteger(raw, "vrf_table_max", tableRange) ?? DEFAULTS.vrfTableMax;
  if (vrfTableMin > vrfTableMax) {
    throw invalidConfig(
      "vrf_table_min",
      vrfTableMin,
      `must not exceed vrf_table_max (${vrfTableMax})`,
    );
  }
  if (vrfTableMin >= 253 && vrfTableMax <= 255) {
    throw invalidConfig(
      "vrf_table_min",
      vrfTableMin,
      "range holds only the kernel's reserved tables 253-255",
    );
  }
  const mtu = optionalInteger(raw, "mtu", { min: 68, max: 65535 });
  const kubeconfig = overrides.kubeconfig ?? node.kubeconfig;
  const nodeName = overrides.node_name ?? node.nodeName;
  const logFile = overrides.log_file ?? node.logFile;

  return {
    cniVersion,
    name,
    vpc: identifier(raw, "vpc", parseVpc),
    attachment: identifier(raw, "vpcattachment", parseAttachment),
    locator: locator(raw),
    ...(mtu !== undefined && { mtu }),
    terminations: terminations(raw),
    ...optionalEntry("ipam", ipam(raw)),
    ...optionalEntry("kubeconfig", kubeconfig),
    ...optionalEntry("nodeName", nodeName),
    stateDir: overrides.state_dir ?? node.stateDir,
    agentSocket: overrides.agent_socket ?? node.agentSocket,
    ...optionalEntry("logFile", logFile),
    logLevel: logLevel as LogLevel,
    vrfTableMin,
    vrfTableMax,
    apiTimeoutSeconds: optionalInteger(raw, "api_timeout_seconds", { min: 1, max: 120 }) ??
      DEFAULTS.apiTimeoutSeconds,
    commandTimeoutSeconds: optionalInteger(raw, "command_timeout_seconds", { min: 1, max: 120 }) ??
      DEFAULTS.commandTimeoutSeconds,
    delegateTimeoutSeconds:
      optionalInteger(raw, "delegate_timeout_seconds", { min: 1, max: 120 }) ??
        DEFAULTS.delegateTimeoutSeconds,
    lockTimeoutSeconds: optionalInteger(raw, "lock_timeout_seconds", { min: 1, max: 300 }) ??
      DEFAULTS.lockTimeoutSeconds,
    runtime: parseRuntimeRequests(raw),
    raw,
  };
}

function optionalEntry<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
}
