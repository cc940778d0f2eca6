/**
 * The CNI invocation environment: `CNI_COMMAND`, `CNI_CONTAINERID`,
 * `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`. Validated at least as
 * strictly as libcni (`pkg/utils` and `types.LoadArgs`): the plugin runs as
 * root and part of `CNI_ARGS` comes from whoever created the pod. Every error
 * is code 4, names the variable, and shows a bounded value.
 *
 * @module
 */

import { CniError, ErrorCode, show } from "./errors.ts";

/** Verbs of the CNI protocol. */
export const COMMANDS = ["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"] as const;
/** One of {@linkcode COMMANDS}. */
export type Command = typeof COMMANDS[number];

/** A parsed CNI environment. Fields a verb does not need may be empty. */
export interface CniEnv {
  /** The verb. */
  readonly command: Command;
  /** Container (sandbox) id. */
  readonly containerId: string;
  /** Path of the pod's network namespace. */
  readonly netns: string;
  /** Interface name inside the pod. */
  readonly ifname: string;
  /** `CNI_ARGS` key/value pairs. */
  readonly args: ReadonlyMap<string, string>;
  /** Directories searched for delegate plugins. */
  readonly path: readonly string[];
}

/** Keys of `CNI_ARGS` the plugin understands (the Kubernetes runtime's set). */
const KNOWN_ARGS = new Set([
  "IgnoreUnknown",
  "K8S_POD_NAMESPACE",
  "K8S_POD_NAME",
  "K8S_POD_INFRA_CONTAINER_ID",
  "K8S_POD_UID",
  // Per-pod requests, as the reference plugins read them: IP and GATEWAY
  // reach static IPAM through host-device's environment; MAC sets the pod end.
  "IP",
  "GATEWAY",
  "MAC",
]);

/** Which variables each verb needs (CNI spec "Parameters"). */
const REQUIRED: Record<Command, readonly string[]> = {
  ADD: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  DEL: ["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
  CHECK: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"],
  GC: ["CNI_PATH"],
  STATUS: ["CNI_PATH"],
  VERSION: [],
};

/** libcni's container id (and network name) rule. */
const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
/** IFNAMSIZ - 1, in bytes. */
const MAX_IFNAME_BYTES = 15;
/** '/', ':' and what Go's `unicode.IsSpace` calls whitespace (libcni's test). */
const IFNAME_FORBIDDEN =
  /[/:\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;
/** Longest `CNI_ARGS` and `CNI_PATH` accepted (runtimes send a few hundred bytes). */
const MAX_LIST_BYTES = 16 * 1024;
/** Longest `CNI_NETNS` path accepted (PATH_MAX). */
const MAX_PATH_BYTES = 4096;

function invalidEnv(name: string, value: string | undefined, why: string): CniError {
  return new CniError(
    ErrorCode.InvalidEnvironment,
    `invalid environment variable ${name}: ${why} (got ${show(value ?? "")})`,
  );
}

function byteLength(text: string): number {
  return new TextEncoder().encode(text).length;
}

/**
 * Why `name` is not a valid interface name (libcni `ValidateInterfaceName`:
 * non-empty, at most 15 bytes, not `.` or `..`, no `/`, `:` or whitespace),
 * or undefined when it is.
 */
export function interfaceNameProblem(name: string): string | undefined {
  if (name === "") return "is empty";
  if (byteLength(name) > MAX_IFNAME_BYTES) return `is longer than ${MAX_IFNAME_BYTES} bytes`;
  if (name === "." || name === "..") return "must not be . or ..";
  if (IFNAME_FORBIDDEN.test(name)) return "must not contain /, : or whitespace";
  return undefined;
}

/**
 * Parses `K1=V1;K2=V2` as libcni does: every `;`-separated pair is exactly
 * one `K=V` (so no empty pair and no second `=`); unknown keys are refused
 * unless `IgnoreUnknown` is true.
 */
export function parseCniArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  if (text === "") return args;
  if (byteLength(text) > MAX_LIST_BYTES) {
    throw invalidEnv("CNI_ARGS", text, `is longer than ${MAX_LIST_BYTES} bytes`);
  }
  for (const pair of text.split(";")) {
    const kv = pair.split("=");
    if (kv.length !== 2) throw invalidEnv("CNI_ARGS", pair, "has a pair that is not KEY=VALUE");
    const [key, value] = kv as [string, string];
    if (key === "") throw invalidEnv("CNI_ARGS", pair, "has a pair with an empty key");
    if (args.has(key)) throw invalidEnv("CNI_ARGS", pair, "repeats a key");
    args.set(key, value);
  }
  const ignoreUnknown = ["1", "true"].includes((args.get("IgnoreUnknown") ?? "").toLowerCase());
  if (!ignoreUnknown) {
    const unknown = [...args.keys()].filter((key) => !KNOWN_ARGS.has(key));
    if (unknown.length > 0) {
      throw invalidEnv("CNI_ARGS", unknown.join(", "), "has unknown keys without IgnoreUnknown=1");
    }
  }
  return args;
}

/** Parses and validates the environment of one invocation. */
export function parseCniEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = env.CNI_COMMAND ?? "";
  if (!(COMMANDS as readonly string[]).includes(command)) {
    throw invalidEnv("CNI_COMMAND", command, `must be one of ${COMMANDS.join(", ")}`);
  }
  const verb = command as Command;
  // VERSION reads CNI_COMMAND alone. libcni (podman's config validation,
  // containerd) fills the rest with placeholders (CNI_NETNS=dummy, a
  // relative path) that must not fail it.
  if (verb === "VERSION") {
    return { command: verb, containerId: "", netns: "", ifname: "", args: new Map(), path: [] };
  }
  for (const name of REQUIRED[verb]) {
    if (!env[name]) throw invalidEnv(name, env[name], `is required for ${verb}`);
  }
  const containerId = env.CNI_CONTAINERID ?? "";
  if (containerId !== "" && !CONTAINER_ID.test(containerId)) {
    throw invalidEnv("CNI_CONTAINERID", containerId, "must be alphanumeric with . _ -");
  }
  const ifname = env.CNI_IFNAME ?? "";
  const ifnameProblem = ifname === "" ? undefined : interfaceNameProblem(ifname);
  if (ifnameProblem !== undefined) throw invalidEnv("CNI_IFNAME", ifname, ifnameProblem);
  const netns = env.CNI_NETNS ?? "";
  if (netns !== "" && (!netns.startsWith("/") || byteLength(netns) > MAX_PATH_BYTES)) {
    throw invalidEnv(
      "CNI_NETNS",
      netns,
      `must be an absolute path of at most ${MAX_PATH_BYTES} bytes`,
    );
  }
  const cniPath = env.CNI_PATH ?? "";
  if (byteLength(cniPath) > MAX_LIST_BYTES) {
    throw invalidEnv("CNI_PATH", cniPath, `is longer than ${MAX_LIST_BYTES} bytes`);
  }
  return {
    command: verb,
    containerId,
    netns,
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ""),
    path: cniPath.split(":").filter((dir) => dir !== ""),
  };
}
