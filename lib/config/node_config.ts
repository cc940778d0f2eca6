/**
 * The node's own settings: where the plugin keeps state and logs, which agent
 * socket and kubeconfig it trusts, and what this node is called. They belong
 * to whoever administers the node, never to the network configuration: in a
 * Multus cluster a tenant who may create a NetworkAttachmentDefinition writes
 * that configuration, and the plugin runs as root. So these settings come from
 * defaults plus one node configuration file (`node.json`, written by
 * `galactic install`); a network configuration that sets one is refused
 * (code 7, naming the field) unless the node file says
 * `"allow_config_overrides": true`.
 *
 * The file is `$GALACTIC_NODE_CONFIG` when that is set (tests and labs: the
 * runtime's environment is the node's, not a tenant's), else
 * {@linkcode DEFAULT_NODE_CONFIG_PATH}; a missing default file means defaults.
 * Running as root, the file must be owned by root and writable by nobody else.
 *
 * @module
 */

import { CniError, ErrorCode, invalidConfig, show } from "../cni/errors.ts";
import { isObjectName } from "../ids/mod.ts";
import { requireRootOwned } from "../state/ownership.ts";

/** Environment variable naming the node configuration file. */
export const NODE_CONFIG_ENV = "GALACTIC_NODE_CONFIG";
/** Where `galactic install` writes the node configuration. */
export const DEFAULT_NODE_CONFIG_PATH = "/etc/cni/net.d/galactic.d/node.json";
/** The node configuration file is small; anything bigger is refused unread. */
const MAX_NODE_CONFIG_BYTES = 64 * 1024;

/** The settings that belong to the node (network configuration field names). */
export const NODE_FIELDS = [
  "state_dir",
  "log_file",
  "agent_socket",
  "kubeconfig",
  "node_name",
] as const;

/** The node's settings after defaults. */
export interface NodeConfig {
  /** Directory holding the locks and attachment records. */
  readonly stateDir: string;
  /** Node agent socket. */
  readonly agentSocket: string;
  /** Log file (appended), when set. */
  readonly logFile?: string;
  /** Kubeconfig, when set (else the usual lookup: `KUBECONFIG`, installer's file, in-cluster). */
  readonly kubeconfig?: string;
  /** Node name, when set (else `NODE_NAME`, installer's file, host name). */
  readonly nodeName?: string;
  /** Whether a network configuration may set the fields of {@linkcode NODE_FIELDS}. */
  readonly allowConfigOverrides: boolean;
  /** The file these came from, or "defaults" (for messages). */
  readonly origin: string;
}

/** Defaults when no node configuration file exists. */
export const NODE_DEFAULTS: NodeConfig = {
  stateDir: "/var/lib/cni/galactic",
  agentSocket: "/run/galactic/agent.sock",
  allowConfigOverrides: false,
  origin: "defaults",
};

/**
 * An absolute path without `.`/`..` segments or NUL: what a node-owned path
 * setting must be. Returns the reason it is not, or undefined.
 */
export function pathProblem(value: string): string | undefined {
  if (!value.startsWith("/")) return "must be an absolute path";
  if (value.includes("\0")) return "must not contain NUL";
  if (value.split("/").some((segment) => segment === "." || segment === "..")) {
    return "must not contain . or .. segments";
  }
  if (value.length > 1024) return "must be at most 1024 bytes";
  return undefined;
}

function nodeError(path: string, why: string): CniError {
  return new CniError(ErrorCode.IoFailure, `invalid node configuration ${show(path)}: ${why}`);
}

function readBounded(path: string): string | undefined {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw nodeError(path, `cannot open: ${(error as Error).name}`);
  }
  try {
    const info = file.statSync();
    if (!info.isFile) throw nodeError(path, "is not a regular file");
    requireRootOwned(path, info, { what: "node configuration" });
    if (info.size > MAX_NODE_CONFIG_BYTES) {
      throw nodeError(path, `is larger than ${MAX_NODE_CONFIG_BYTES} bytes`);
    }
    const buffer = new Uint8Array(MAX_NODE_CONFIG_BYTES + 1);
    let length = 0;
    for (;;) {
      const n = file.readSync(buffer.subarray(length));
      if (n === null) break;
      length += n;
      if (length > MAX_NODE_CONFIG_BYTES) {
        throw nodeError(path, `is larger than ${MAX_NODE_CONFIG_BYTES} bytes`);
      }
    }
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(0, length));
    } catch {
      throw nodeError(path, "is not UTF-8");
    }
  } finally {
    file.close();
  }
}

function stringField(
  raw: Record<string, unknown>,
  field: string,
  check: (value: string) => string | undefined,
): string | undefined {
  const value = raw[field];
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value === "") return "must be a non-empty string";
  return check(value);
}

/** Validates one node-owned field's value (node file or an allowed override); reason or undefined. */
export function nodeFieldProblem(
  field: typeof NODE_FIELDS[number],
  value: string,
): string | undefined {
  if (field === "node_name") {
    return isObjectName(value)
      ? undefined
      : "must be a lowercase RFC 1123 subdomain (a Kubernetes node name)";
  }
  return pathProblem(value);
}

/** Parses the text of a node configuration file (named `path` in messages). */
export function parseNodeConfig(text: string, path: string): NodeConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // The parser's message quotes the text: never echo file contents.
    throw nodeError(path, "is not valid JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw nodeError(path, "must be a JSON object");
  }
  const record = raw as Record<string, unknown>;
  const known = new Set<string>([...NODE_FIELDS, "allow_config_overrides"]);
  const unknown = Object.keys(record).find((key) => !known.has(key));
  if (unknown !== undefined) throw nodeError(path, `unknown field ${show(unknown)}`);
  const values: Record<string, string> = {};
  for (const field of NODE_FIELDS) {
    const problem = stringField(record, field, (value) => nodeFieldProblem(field, value));
    if (problem !== undefined) throw nodeError(path, `field "${field}" ${problem}`);
    if (record[field] !== undefined) values[field] = record[field] as string;
  }
  const allow = record.allow_config_overrides ?? false;
  if (typeof allow !== "boolean") {
    throw nodeError(path, `field "allow_config_overrides" must be true or false`);
  }
  return {
    stateDir: values.state_dir ?? NODE_DEFAULTS.stateDir,
    agentSocket: values.agent_socket ?? NODE_DEFAULTS.agentSocket,
    ...(values.log_file !== undefined && { logFile: values.log_file }),
    ...(values.kubeconfig !== undefined && { kubeconfig: values.kubeconfig }),
    ...(values.node_name !== undefined && { nodeName: values.node_name }),
    allowConfigOverrides: allow,
    origin: path,
  };
}

/** Loads the node configuration named by the environment (see the module documentation). */
export function loadNodeConfig(env: Readonly<Record<string, string | undefined>>): NodeConfig {
  const named = env[NODE_CONFIG_ENV];
  if (named !== undefined && named !== "") {
    const problem = pathProblem(named);
    if (problem !== undefined) {
      throw new CniError(
        ErrorCode.InvalidEnvironment,
        `invalid environment variable ${NODE_CONFIG_ENV}: ${problem} (got ${show(named)})`,
      );
    }
    const text = readBounded(named);
    if (text === undefined) throw nodeError(named, "no such file");
    return parseNodeConfig(text, named);
  }
  const text = readBounded(DEFAULT_NODE_CONFIG_PATH);
  return text === undefined ? NODE_DEFAULTS : parseNodeConfig(text, DEFAULT_NODE_CONFIG_PATH);
}

/**
 * The node-owned fields a network configuration sets: refused (code 7) unless
 * the node allows overrides, then validated like the node file's own values.
 */
export function nodeOverrides(
  raw: Record<string, unknown>,
  node: NodeConfig,
): Partial<Record<typeof NODE_FIELDS[number], string>> {
  const overrides: Partial<Record<typeof NODE_FIELDS[number], string>> = {};
  for (const field of NODE_FIELDS) {
    const value = raw[field];
    if (value === undefined) continue;
    if (!node.allowConfigOverrides) {
      throw invalidConfig(
        field,
        value,
        `is a node setting: set it in the node configuration (${node.origin}), ` +
          "not in the network configuration",
      );
    }
    if (typeof value !== "string" || value === "") {
      throw invalidConfig(field, value, "must be a non-empty string");
    }
    const problem = nodeFieldProblem(field, value);
    if (problem !== undefined) throw invalidConfig(field, value, problem);
    overrides[field] = value;
  }
  return overrides;
}
