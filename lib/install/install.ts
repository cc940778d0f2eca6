/**
 * `galactic install`: puts the plugin on the host (SPEC §8). Run by the
 * DaemonSet's init container with the host's CNI directories mounted, it
 *
 * 1. writes `<configDir>/kubeconfig` (API server URL, CA data and an
 *    expiring token of the plugin's least-privilege ServiceAccount, issued
 *    through TokenRequest by the caller — `lib/agent/plugin_credentials.ts`, which
 *    the node agent then keeps fresh — mode 0600),
 *    `<configDir>/node-name`, which the plugin reads because kubelet runs it
 *    on the host without in-cluster env vars or `NODE_NAME`, and
 *    `<configDir>/node.json`, the node configuration (node name; the paths
 *    keep their defaults) that tenants' network configurations cannot
 *    override (see `lib/config/node_config.ts`);
 * 2. copies delegate plugins (`host-device`, `static`) into the CNI bin dir
 *    when the host lacks them;
 * 3. copies the plugin binary itself to `<cniBinDir>/galactic`, last, so the
 *    runtime never finds the plugin without its configuration.
 *
 * Every file is written to a temporary file in its target directory, chmod'ed,
 * fsync'ed and renamed over the target, so a concurrently running plugin sees
 * either the old or the new file, never half of one (a running executable
 * cannot be overwritten in place either). Files whose content and mode are
 * already right are left alone, which makes the step idempotent.
 *
 * @module
 */

import { basename, join } from "node:path";
import { isObjectName } from "../ids/mod.ts";
import { replaceFile, writeAll } from "../state/atomic_file.ts";
import { notSelfContained } from "./executable.ts";

/** Where the runtime looks for CNI plugins (`CNI_PATH`) on a typical host. */
export const DEFAULT_CNI_BIN_DIR = "/opt/cni/bin";
/** The plugin's own directory beside the runtime's CNI network configurations. */
export const DEFAULT_CONFIG_DIR = "/etc/cni/net.d/galactic.d";
/** Where a pod's ServiceAccount token and CA are mounted by default. */
export const DEFAULT_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** File name of the plugin in the CNI bin dir (the NAD's `type`). */
export const PLUGIN_BINARY_NAME = "galactic";
/** File name of the plugin's kubeconfig inside the config dir. */
export const KUBECONFIG_FILE_NAME = "kubeconfig";
/** File name of the node name inside the config dir. */
export const NODE_NAME_FILE_NAME = "node-name";
/** File name of the node configuration inside the config dir. */
export const NODE_CONFIG_FILE_NAME = "node.json";

const BINARY_MODE = 0o755;
const KUBECONFIG_MODE = 0o600;
const NODE_NAME_MODE = 0o644;
const DIR_MODE = 0o755;
const COPY_CHUNK = 1 << 20;
const KUBECONFIG_CLUSTER = "galactic";
const KUBECONFIG_USER = "galactic-cni";

/** What `installPlugin` needs. */
export interface InstallOptions {
  /** The executable to install, usually `Deno.execPath()`. */
  readonly source: string;
  /** CNI bin dir (as mounted in the installer's filesystem). */
  readonly cniBinDir: string;
  /** The plugin's config dir (as mounted in the installer's filesystem). */
  readonly configDir: string;
  /** Kubernetes name of this node, written to `node-name`. */
  readonly nodeName: string;
  /** Directory holding the cluster CA, `ca.crt` (the pod's service account mount). */
  readonly serviceAccountDir: string;
  /**
   * Issues the token for the kubeconfig (called once everything else has been
   * read and checked, before anything is written; the server URL is the
   * kubeconfig's).
   */
  readonly pluginToken: (server: string) => Promise<string>;
  /**
   * API server URL for the kubeconfig; default
   * `https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`.
   */
  readonly server?: string;
  /** Delegate plugin executables to copy into the CNI bin dir under their own names. */
  readonly delegates?: readonly string[];
  /** Replace a delegate the host already has with different content (default: keep the host's). */
  readonly replaceDelegates?: boolean;
  /** Environment lookup for the default server URL; default `Deno.env.get`. */
  readonly env?: (name: string) => string | undefined;
}

/** What happened to one file. */
export type InstallAction =
  /** The file did not exist and was written. */
  | "created"
  /** The file existed with other content or mode and was replaced. */
  | "updated"
  /** The file already had the right content and mode. */
  | "unchanged"
  /** A delegate the host already has (different content) was left in place. */
  | "kept";

/** One file the installer is responsible for. */
export interface InstalledFile {
  /** What the file is. */
  readonly role: "plugin" | "delegate" | "kubeconfig" | "node-name" | "node-config";
  /** Target path. */
  readonly path: string;
  /** What was done. */
  readonly action: InstallAction;
}

/** The outcome of `installPlugin`. */
export interface InstallReport {
  /** API server URL written into the kubeconfig. */
  readonly server: string;
  /** Every file, in the order it was handled. */
  readonly files: readonly InstalledFile[];
  /** True when at least one file was created or updated. */
  readonly changed: boolean;
}

/** An installation step failed; the message names the path or value. */
export class InstallError extends Error {
  /** Builds the error, keeping the underlying failure as `cause`. */
  constructor(message: string, options: { cause?: unknown } = {}) {
    super(message, options);
    this.name = "InstallError";
  }
}

/**
 * Installs the plugin, its delegates, kubeconfig and node name. Everything is
 * read and validated before anything is written.
 */
export async function installPlugin(options: InstallOptions): Promise<InstallReport> {
  const env = options.env ?? ((name: string): string | undefined => Deno.env.get(name));
  const nodeName = options.nodeName.trim();
  if (!isObjectName(nodeName)) {
    throw new InstallError(
      `invalid node name ${
        JSON.stringify(options.nodeName)
      }: must be a lowercase RFC 1123 subdomain`,
    );
  }
  const server = resolveServerUrl(options.server, env);
  const ca = await readCa(join(options.serviceAccountDir, "ca.crt"));
  await requireFile(options.source, "plugin binary");
  const unfit = await notSelfContained(options.source);
  if (unfit) throw new InstallError(`plugin binary ${options.source} is ${unfit}`);
  const delegates = options.delegates ?? [];
  for (const delegate of delegates) {
    await requireFile(delegate, "delegate plugin");
    if (basename(delegate) === PLUGIN_BINARY_NAME) {
      throw new InstallError(`delegate ${delegate} would overwrite the plugin itself`);
    }
  }
  const token = checkToken(await options.pluginToken(server));

  const encoder = new TextEncoder();
  const files: InstalledFile[] = [];
  await ensureDir(options.configDir);
  const kubeconfigPath = join(options.configDir, KUBECONFIG_FILE_NAME);
  files.push({
    role: "kubeconfig",
    path: kubeconfigPath,
    action: await writeFileAtomic(
      kubeconfigPath,
      encoder.encode(renderKubeconfig(server, ca, token)),
      KUBECONFIG_MODE,
    ),
  });
  const nodeNamePath = join(options.configDir, NODE_NAME_FILE_NAME);
  files.push({
    role: "node-name",
    path: nodeNamePath,
    action: await writeFileAtomic(nodeNamePath, encoder.encode(`${nodeName}\n`), NODE_NAME_MODE),
  });
  const nodeConfigPath = join(options.configDir, NODE_CONFIG_FILE_NAME);
  files.push({
    role: "node-config",
    path: nodeConfigPath,
    action: await writeFileAtomic(
      nodeConfigPath,
      encoder.encode(`${JSON.stringify({ node_name: nodeName }, null, 2)}\n`),
      NODE_NAME_MODE,
    ),
  });

  await ensureDir(options.cniBinDir);
  for (const delegate of delegates) {
    const target = join(options.cniBinDir, basename(delegate));
    files.push({
      role: "delegate",
      path: target,
      action: await installDelegate(delegate, target, options.replaceDelegates ?? false),
    });
  }
  const pluginPath = join(options.cniBinDir, PLUGIN_BINARY_NAME);
  files.push({
    role: "plugin",
    path: pluginPath,
    action: await copyFileAtomic(options.source, pluginPath, BINARY_MODE),
  });

  return {
    server,
    files,
    changed: files.some((file) => file.action === "created" || file.action === "updated"),
  };
}

/**
 * The API server URL: `explicit` when given, else built from
 * `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT` (IPv6 hosts bracketed,
 * port 443 when unset).
 */
export function resolveServerUrl(
  explicit: string | undefined,
  env: (name: string) => string | undefined,
): string {
  if (explicit !== undefined && explicit.trim() !== "") {
    const text = explicit.trim();
    let url: URL;
    try {
      url = new URL(text);
    } catch (error) {
      throw new InstallError(`invalid API server URL ${JSON.stringify(text)}`, { cause: error });
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new InstallError(
        `invalid API server URL ${JSON.stringify(text)}: scheme must be https`,
      );
    }
    return text.replace(/\/+$/, "");
  }
  const host = env("KUBERNETES_SERVICE_HOST")?.trim();
  if (!host) {
    throw new InstallError(
      "cannot determine the API server URL: no server given (--server) and KUBERNETES_SERVICE_HOST is not set",
    );
  }
  const port = env("KUBERNETES_SERVICE_PORT")?.trim() || "443";
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new InstallError(
      `invalid KUBERNETES_SERVICE_PORT ${JSON.stringify(port)}: must be 1..65535`,
    );
  }
  const bracketed = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const server = `https://${bracketed}:${port}`;
  try {
    new URL(server);
  } catch (error) {
    throw new InstallError(
      `invalid KUBERNETES_SERVICE_HOST ${JSON.stringify(host)}: ${server} is not a URL`,
      { cause: error },
    );
  }
  return server;
}

/**
 * The kubeconfig the plugin uses: one cluster, one token user, one context.
 * `ca` is the cluster CA (absent only for a plain-http test server). Written
 * as JSON (valid YAML, kubectl reads it): the plugin then reads it without
 * loading a YAML parser (~18 MB per process without the agent).
 */
export function renderKubeconfig(
  server: string,
  ca: Uint8Array | undefined,
  token: string,
): string {
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{
      name: KUBECONFIG_CLUSTER,
      cluster: {
        server,
        ...(ca && { "certificate-authority-data": encodeBase64(ca) }),
        // Plain http (a test server) has no TLS: the client wants that said explicitly.
        ...(server.startsWith("http://") && { "insecure-skip-tls-verify": true }),
      },
    }],
    users: [{ name: KUBECONFIG_USER, user: { token } }],
    contexts: [{
      name: KUBECONFIG_CLUSTER,
      context: { cluster: KUBECONFIG_CLUSTER, user: KUBECONFIG_USER },
    }],
    "current-context": KUBECONFIG_CLUSTER,
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** A one-line-per-file, human-readable summary of a report. */
export function formatInstallReport(report: InstallReport): string {
  const changed =
    report.files.filter((file) => file.action === "created" || file.action === "updated").length;
  const lines = [
    `galactic install: ${changed} of ${report.files.length} files changed (API server ${report.server})`,
  ];
  for (const file of report.files) {
    lines.push(`  ${file.action.padEnd(9)} ${file.role.padEnd(10)} ${file.path}`);
  }
  return lines.join("\n");
}

function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** The issued token, if it can be a bearer token (never quoted: it is a secret). */
function checkToken(token: string): string {
  if (!/^[\x21-\x7e]{1,16384}$/.test(token)) {
    throw new InstallError("the plugin's token is empty or not a bearer token");
  }
  return token;
}

async function readCa(path: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (error) {
    throw new InstallError(`cannot read the cluster CA ${path}: ${describe(error)}`, {
      cause: error,
    });
  }
  if (!new TextDecoder().decode(bytes).includes("-----BEGIN CERTIFICATE-----")) {
    throw new InstallError(`cluster CA ${path} holds no PEM certificate`);
  }
  return bytes;
}

async function requireFile(path: string, what: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (error) {
    throw new InstallError(`cannot read the ${what} ${path}: ${describe(error)}`, {
      cause: error,
    });
  }
  if (!info.isFile) throw new InstallError(`${what} ${path} is not a regular file`);
}

async function ensureDir(path: string): Promise<void> {
  try {
    await Deno.mkdir(path, { recursive: true, mode: DIR_MODE });
  } catch (error) {
    throw new InstallError(`cannot create directory ${path}: ${describe(error)}`, {
      cause: error,
    });
  }
  const info = await Deno.stat(path);
  if (!info.isDirectory) throw new InstallError(`${path} exists and is not a directory`);
}

async function statOrUndefined(path: string): Promise<Deno.FileInfo | undefined> {
  try {
    return await Deno.lstat(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw new InstallError(`cannot inspect ${path}: ${describe(error)}`, { cause: error });
  }
}

function modeOf(info: Deno.FileInfo): number | undefined {
  return info.mode === null ? undefined : info.mode & 0o7777;
}

/**
 * Writes `data` to `path` atomically unless it already holds exactly that: a
 * reader sees the old file or the new one, never part of one, and a symlink
 * planted at `path` is replaced, never followed.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array,
  mode: number,
): Promise<InstallAction> {
  const existing = await statOrUndefined(path);
  if (existing?.isFile && modeOf(existing) === mode && existing.size === data.length) {
    const current = await Deno.readFile(path).catch((error) => {
      throw new InstallError(`cannot read ${path}: ${describe(error)}`, { cause: error });
    });
    if (equalBytes(current, data)) return "unchanged";
  }
  await replaceAtomically(path, mode, async (file) => {
    await writeAll(file, data);
  });
  return existing ? "updated" : "created";
}

/** Copies `source` to `target` atomically unless `target` already has its content and `mode`. */
async function copyFileAtomic(
  source: string,
  target: string,
  mode: number,
): Promise<InstallAction> {
  const existing = await statOrUndefined(target);
  if (existing?.isFile && modeOf(existing) === mode && await sameContent(source, target)) {
    return "unchanged";
  }
  await replaceAtomically(target, mode, async (file) => {
    await copyInto(source, file);
  });
  return existing ? "updated" : "created";
}

async function installDelegate(
  source: string,
  target: string,
  replace: boolean,
): Promise<InstallAction> {
  const existing = await statOrUndefined(target);
  if (existing && !replace && !(existing.isFile && await sameContent(source, target))) {
    return "kept";
  }
  return await copyFileAtomic(source, target, BINARY_MODE);
}

/** Temporary name of {@linkcode replaceAtomically}'s write of `name`. */
function temporaryName(name: string, random: string): string {
  return `.${name}.tmp-${random}`;
}

/**
 * Whether `entry` of a config dir is a write of `name` that was interrupted
 * (the writer killed between creating its temporary file and the rename).
 */
export function isInterruptedWrite(entry: string, name: string): boolean {
  const prefix = temporaryName(name, "");
  return entry.startsWith(prefix) && /^[0-9a-f]{24}$/.test(entry.slice(prefix.length));
}

/**
 * Replaces `path` through a temporary file beside it (see
 * `lib/state/atomic_file.ts`), fsyncing the directory too; errors name `path`.
 */
async function replaceAtomically(
  path: string,
  mode: number,
  fill: (file: Deno.FsFile) => Promise<void>,
): Promise<void> {
  try {
    await replaceFile(path, fill, {
      mode,
      temporaryName: (random) => temporaryName(basename(path), random),
      syncDir: true,
    });
  } catch (error) {
    throw new InstallError(`cannot write ${path}: ${describe(error)}`, { cause: error });
  }
}

async function copyInto(source: string, target: Deno.FsFile): Promise<void> {
  const input = await Deno.open(source, { read: true });
  try {
    const buffer = new Uint8Array(COPY_CHUNK);
    for (;;) {
      const n = await input.read(buffer);
      if (n === null) break;
      await writeAll(target, buffer.subarray(0, n));
    }
  } finally {
    input.close();
  }
}

/** True when both files have identical bytes (streamed; binaries are large). */
async function sameContent(a: string, b: string): Promise<boolean> {
  const [infoA, infoB] = await Promise.all([Deno.stat(a), Deno.stat(b)]);
  if (infoA.size !== infoB.size) return false;
  if (infoA.dev === infoB.dev && infoA.ino !== null && infoA.ino === infoB.ino) return true;
  const fileA = await Deno.open(a, { read: true });
  try {
    const fileB = await Deno.open(b, { read: true });
    try {
      const bufA = new Uint8Array(COPY_CHUNK);
      const bufB = new Uint8Array(COPY_CHUNK);
      for (;;) {
        const n = await readFull(fileA, bufA);
        const m = await readFull(fileB, bufB);
        if (n !== m) return false;
        if (n === 0) return true;
        if (!equalBytes(bufA.subarray(0, n), bufB.subarray(0, m))) return false;
      }
    } finally {
      fileB.close();
    }
  } finally {
    fileA.close();
  }
}

async function readFull(file: Deno.FsFile, buffer: Uint8Array): Promise<number> {
  let filled = 0;
  while (filled < buffer.length) {
    const n = await file.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return filled;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
