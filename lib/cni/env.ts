/**
 * The CNI invocation environment: `CNI_COMMAND`, `CNI_CONTAINERID`,
 * `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`.
 *
 * @module
 */

import { CniError, ErrorCode } from "./errors.ts";

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

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$/;
const IFNAME_FORBIDDEN = /[/:\s]/;

function invalidEnv(name: string, value: string | undefined, why: string): CniError {
  return new CniError(
    ErrorCode.InvalidEnvironment,
    `invalid environment variable ${name}: ${why} (got ${JSON.stringify(value ?? "")})`,
  );
}

/** Parses `K1=V1;K2=V2`; unknown keys are refused unless `IgnoreUnknown` is true. */
export function parseCniArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  if (text.trim() === "") return args;
  for (const pair of text.split(";")) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    if (eq <= 0) throw invalidEnv("CNI_ARGS", text, `"${pair}" is not KEY=VALUE`);
    args.set(pair.slice(0, eq), pair.slice(eq + 1));
  }
  const ignoreUnknown = ["1", "true"].includes((args.get("IgnoreUnknown") ?? "").toLowerCase());
  if (!ignoreUnknown) {
    const unknown = [...args.keys()].filter((key) => !KNOWN_ARGS.has(key));
    if (unknown.length > 0) {
      throw invalidEnv(
        "CNI_ARGS",
        text,
        `unknown key(s) ${unknown.join(", ")} without IgnoreUnknown=1`,
      );
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
  for (const name of REQUIRED[verb]) {
    if (!env[name]) throw invalidEnv(name, env[name], `is required for ${verb}`);
  }
  const containerId = env.CNI_CONTAINERID ?? "";
  if (containerId !== "" && !CONTAINER_ID.test(containerId)) {
    throw invalidEnv("CNI_CONTAINERID", containerId, "must be alphanumeric with . _ -");
  }
  const ifname = env.CNI_IFNAME ?? "";
  if (
    ifname !== "" &&
    (ifname.length > 15 || IFNAME_FORBIDDEN.test(ifname) || ifname === "." || ifname === "..")
  ) {
    throw invalidEnv(
      "CNI_IFNAME",
      ifname,
      "must be a valid interface name of at most 15 characters",
    );
  }
  return {
    command: verb,
    containerId,
    netns: env.CNI_NETNS ?? "",
    ifname,
    args: parseCniArgs(env.CNI_ARGS ?? ""),
    path: (env.CNI_PATH ?? "").split(":").filter((dir) => dir !== ""),
  };
}
