/**
 * The API server and credentials of a kubeconfig (or of the in-cluster
 * service account), read without the Kubernetes client library: loading
 * `@kubernetes/client-node` cost ~115 MB and 0.3–2 s per process, and a CNI
 * node's credential uses a small subset of the format:
 *
 * - cluster: `server`, `certificate-authority` or `certificate-authority-data`;
 *   `insecure-skip-tls-verify: true` is honoured only as the explicit opt-in
 *   an `http://` server needs, and refused for `https://` (the transport
 *   always verifies the server's certificate);
 * - user: `token`, `tokenFile`, `client-certificate(-data)` with
 *   `client-key(-data)`; with both `token` and `tokenFile`, the file's token
 *   is used whenever the file can be read and `token` only when it cannot
 *   (client-go's documented rule: "the last successfully read value takes
 *   precedence over Token");
 * - anything that would change who we authenticate as or how (`exec`,
 *   `auth-provider`, `username`/`password`, `as`, `tls-server-name`,
 *   `proxy-url`) is refused with an error naming the field, never ignored.
 *
 * Relative paths are relative to the kubeconfig's directory, as in kubectl.
 * No message ever quotes a file's contents or a token: tests plant secrets
 * in them (issue 12).
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";
import type { InClusterConfig, KubeconfigSource } from "./kubeconfig.ts";

/** How requests authenticate. */
export type Auth =
  | { readonly kind: "none" }
  | { readonly kind: "token"; readonly token: string }
  /**
   * A token re-read from this file as it rotates (service account tokens);
   * while the file cannot be read, the last token read from it, else
   * `fallback` (the kubeconfig's `token`, when both are set), is sent.
   */
  | { readonly kind: "tokenFile"; readonly path: string; readonly fallback?: string };

/** What the transport needs to reach and authenticate to the API server. */
export interface Credentials {
  /** API server URL without a trailing slash, e.g. `https://10.0.0.1:6443`. */
  readonly server: string;
  /** PEM CA bundle to verify the server with (else the default roots). */
  readonly caCert?: string;
  /** PEM client certificate chain and key (mutual TLS). */
  readonly clientCert?: { readonly cert: string; readonly key: string };
  readonly auth: Auth;
}

/** Largest kubeconfig read (a real one is a few kilobytes). */
export const MAX_KUBECONFIG_BYTES = 1024 * 1024;
/** Largest certificate, key or token file read. */
export const MAX_CREDENTIAL_FILE_BYTES = 256 * 1024;

/** Fields refused (with what to do instead): each changes how or as whom we authenticate. */
const UNSUPPORTED_USER_FIELDS: Record<string, string> = {
  exec: "exec credential plugins are not supported: give a token, tokenFile or client certificate",
  "auth-provider":
    "auth providers are not supported: give a token, tokenFile or client certificate",
  username: "basic authentication is not supported: give a token or client certificate",
  password: "basic authentication is not supported: give a token or client certificate",
  as: "impersonation is not supported",
  "as-groups": "impersonation is not supported",
  "as-uid": "impersonation is not supported",
  "as-user-extra": "impersonation is not supported",
};
const UNSUPPORTED_CLUSTER_FIELDS: Record<string, string> = {
  "tls-server-name": "a TLS server name other than the server URL's host is not supported",
  "proxy-url": "proxies are not supported",
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * What is wrong, without the kubeconfig's path (the caller adds it) and
 * never with a file's contents.
 */
export class CredentialProblem extends Error {
  /** CNI code: 4 for a wrong or missing setting, 5 for a file that could not be read. */
  readonly code: number;

  constructor(message: string, code: number = ErrorCode.InvalidEnvironment) {
    super(message);
    this.name = "CredentialProblem";
    this.code = code;
  }
}

function invalid(where: string, message: string): CredentialProblem {
  return new CredentialProblem(`${where}: ${message}`);
}

/** Why a file could not be read, without its contents. */
function readProblem(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.IsADirectory) return "is a directory";
  const name = error instanceof Error ? error.name : typeof error;
  return `unreadable (${/^\w{1,40}$/.test(name) ? name : "error"})`;
}

/**
 * Reads a small UTF-8 file; a {@linkcode CredentialProblem} says why not
 * ("no such file", "larger than N bytes", ...), never quoting the contents.
 */
export async function readBoundedText(path: string, maxBytes: number): Promise<string> {
  let bytes: Uint8Array;
  try {
    using file = await Deno.open(path);
    if ((await file.stat()).size > maxBytes) {
      throw new CredentialProblem(`larger than ${maxBytes} bytes`);
    }
    bytes = new Uint8Array(await new Response(file.readable).arrayBuffer());
  } catch (error) {
    if (error instanceof CredentialProblem) throw error;
    throw new CredentialProblem(
      readProblem(error),
      error instanceof Deno.errors.NotFound ? ErrorCode.InvalidEnvironment : ErrorCode.IoFailure,
    );
  }
  if (bytes.length > maxBytes) throw new CredentialProblem(`larger than ${maxBytes} bytes`);
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new CredentialProblem("not UTF-8 text");
  }
}

/** {@linkcode readBoundedText} of a file a kubeconfig field names; the problem names both. */
async function readReferenced(path: string, where: string): Promise<string> {
  try {
    return await readBoundedText(path, MAX_CREDENTIAL_FILE_BYTES);
  } catch (error) {
    const problem = error as CredentialProblem;
    throw new CredentialProblem(`${where} ${show(path)}: ${problem.message}`, problem.code);
  }
}

/** A bearer token as read from a file or field: one line of visible ASCII. */
export function checkToken(token: string, where: string): string {
  const trimmed = token.trim();
  if (trimmed === "") throw invalid(where, "the token is empty");
  if (!/^[\x21-\x7e]+$/.test(trimmed)) {
    throw invalid(where, "the token is not one line of visible ASCII characters");
  }
  return trimmed;
}

/**
 * Why YAML did not parse, without quoting it: the parser's own message
 * quotes the offending line (a token among them), so only its error code and
 * the line number are kept.
 */
function describeYamlError(error: unknown, text: string): string {
  const e = error as { code?: unknown; pos?: unknown[] };
  const offset = typeof e?.pos?.[0] === "number" ? e.pos[0] : undefined;
  const line = offset === undefined ? "" : ` at line ${text.slice(0, offset).split("\n").length}`;
  const code = typeof e?.code === "string" && /^[A-Z_]{1,40}$/.test(e.code) ? ` (${e.code})` : "";
  return `invalid YAML${line}${code}`;
}

function dirname(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "." : slash === 0 ? "/" : path.slice(0, slash);
}

function resolvePath(base: string, path: string): string {
  return path.startsWith("/") ? path : `${dirname(base)}/${path}`;
}

/** A named entry (`{name, cluster}` or `{name, user}`) of a kubeconfig list. */
function entry(
  config: Record<string, unknown>,
  list: "clusters" | "users" | "contexts",
  name: string,
): Record<string, unknown> | undefined {
  const entries = config[list];
  if (entries === undefined || entries === null) return undefined;
  if (!Array.isArray(entries)) throw invalid(list, "is not a list");
  // client-go refuses a kubeconfig whose list names an entry twice, rather than pick one.
  const names = entries.map((e) => isRecord(e) ? e.name : undefined);
  const twice = names.find((n, i) => n !== undefined && names.indexOf(n) !== i);
  if (twice !== undefined) throw invalid(list, `name ${show(twice)} more than once`);
  const field = list.slice(0, -1);
  const found = entries.find((e) => isRecord(e) && e.name === name);
  if (found === undefined) return undefined;
  const body = (found as Record<string, unknown>)[field];
  if (body === undefined || body === null) return {};
  if (!isRecord(body)) throw invalid(`${field} ${show(name)}`, `"${field}" is not a mapping`);
  return body;
}

function optionalString(
  object: Record<string, unknown>,
  field: string,
  where: string,
): string | undefined {
  const value = object[field];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw invalid(where, `"${field}" is not a string`);
  return value;
}

function decodeBase64(value: string, field: string, where: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(
      Uint8Array.from(atob(value.replace(/\s+/g, "")), (c) => c.charCodeAt(0)),
    );
  } catch {
    throw invalid(where, `"${field}" is not base64 of PEM text`);
  }
}

/** What a PEM field must hold: its BEGIN line, and its name for messages. */
interface PemKind {
  readonly begin: RegExp;
  readonly name: string;
}

const PEM_CERT: PemKind = { begin: /-----BEGIN CERTIFICATE-----/, name: "certificate" };
const PEM_KEY: PemKind = { begin: /-----BEGIN (RSA |EC )?PRIVATE KEY-----/, name: "private key" };

function checkPem(pem: string, field: string, where: string, kind: PemKind): string {
  if (!kind.begin.test(pem)) throw invalid(where, `"${field}" holds no PEM ${kind.name}`);
  return pem;
}

/** `<field>-data` (base64) or `<field>` (a file), PEM; undefined when neither is set. */
async function pemField(
  object: Record<string, unknown>,
  field: string,
  options: { where: string; kubeconfig: string; kind: PemKind },
): Promise<string | undefined> {
  const { where } = options;
  const data = optionalString(object, `${field}-data`, where);
  const file = optionalString(object, field, where);
  if (data !== undefined && file !== undefined) {
    throw invalid(where, `both "${field}" and "${field}-data" are set`);
  }
  if (data !== undefined) {
    return checkPem(
      decodeBase64(data, `${field}-data`, where),
      `${field}-data`,
      where,
      options.kind,
    );
  }
  if (file === undefined) return undefined;
  const text = await readReferenced(resolvePath(options.kubeconfig, file), `${where} "${field}"`);
  return checkPem(text, field, where, options.kind);
}

function checkServer(server: string | undefined, where: string, skipTls: boolean): string {
  if (server === undefined) throw invalid(where, 'has no "server"');
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw invalid(where, `"server" ${show(server)} is not a URL`);
  }
  if (url.username !== "" || url.password !== "") {
    // Never quoted: user info may carry a password.
    throw invalid(where, '"server" has user info (user:password@): give credentials in the user');
  }
  if (url.protocol === "https:" && skipTls) {
    throw invalid(
      where,
      '"insecure-skip-tls-verify" is not supported for an https server: the server\'s ' +
        'certificate is always verified; give "certificate-authority" or ' +
        '"certificate-authority-data" instead',
    );
  }
  if (url.protocol === "http:" && !skipTls) {
    throw invalid(
      where,
      `"server" ${show(server)} is plain http: credentials would cross the network unencrypted; ` +
        'use https, or set "insecure-skip-tls-verify: true" to accept that explicitly',
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw invalid(where, `"server" ${show(server)} is not an http(s) URL`);
  }
  if (url.search !== "" || url.hash !== "") {
    throw invalid(where, `"server" ${show(url.origin)} has a query or fragment`);
  }
  return server.replace(/\/+$/, "");
}

function refuseUnsupported(
  object: Record<string, unknown>,
  fields: Record<string, string>,
  where: string,
): void {
  for (const [field, why] of Object.entries(fields)) {
    const value = object[field];
    if (value !== undefined && value !== null && value !== "") {
      throw invalid(where, `"${field}" is set: ${why}`);
    }
  }
}

/**
 * Parses a kubeconfig. JSON (which is YAML, and what `galactic install`
 * writes) is read without loading the YAML parser, which costs a plugin
 * process ~18 MB.
 */
async function parseKubeconfig(path: string): Promise<Record<string, unknown>> {
  const text = await readBoundedText(path, MAX_KUBECONFIG_BYTES);
  if (text.trimStart().startsWith("{")) {
    try {
      const value: unknown = JSON.parse(text);
      if (isRecord(value)) return value;
    } catch {
      // YAML flow style, or broken: the YAML parser says which.
    }
  }
  const { parse } = await import("yaml");
  let value: unknown;
  try {
    value = parse(text, { prettyErrors: false, maxAliasCount: 100 });
  } catch (error) {
    throw new CredentialProblem(describeYamlError(error, text));
  }
  if (!isRecord(value)) throw new CredentialProblem("not a YAML mapping");
  return value;
}

async function userAuth(
  user: Record<string, unknown>,
  options: { where: string; kubeconfig: string },
): Promise<{ auth: Auth; clientCert?: { cert: string; key: string } }> {
  const { where, kubeconfig } = options;
  refuseUnsupported(user, UNSUPPORTED_USER_FIELDS, where);
  const token = optionalString(user, "token", where);
  const tokenFile = optionalString(user, "tokenFile", where);
  const cert = await pemField(user, "client-certificate", { where, kubeconfig, kind: PEM_CERT });
  const key = await pemField(user, "client-key", { where, kubeconfig, kind: PEM_KEY });
  if ((cert === undefined) !== (key === undefined)) {
    throw invalid(
      where,
      cert === undefined
        ? 'has "client-key" but no "client-certificate"'
        : 'has "client-certificate" but no "client-key"',
    );
  }
  const clientCert = cert !== undefined && key !== undefined ? { cert, key } : undefined;
  const fixed = token === undefined ? undefined : checkToken(token, `${where} "token"`);
  const auth: Auth = tokenFile !== undefined
    ? {
      kind: "tokenFile",
      path: resolvePath(kubeconfig, tokenFile),
      ...(fixed !== undefined && { fallback: fixed }),
    }
    : fixed !== undefined
    ? { kind: "token", token: fixed }
    : { kind: "none" };
  if (auth.kind === "none" && clientCert === undefined) {
    throw invalid(where, 'has no credentials: give "token", "tokenFile" or a client certificate');
  }
  return { auth, ...(clientCert && { clientCert }) };
}

/**
 * The current context and its cluster, each named in the error when missing
 * (client-go: `context was not found for specified context: X`).
 */
function currentContext(config: Record<string, unknown>): {
  contextName: string;
  context: Record<string, unknown>;
  clusterName: string;
  cluster: Record<string, unknown>;
} {
  const contextName = config["current-context"];
  if (typeof contextName !== "string" || contextName === "") {
    throw new CredentialProblem('has no "current-context"');
  }
  const context = entry(config, "contexts", contextName);
  if (context === undefined) {
    throw invalid(`"current-context" ${show(contextName)}`, "names no context of the file");
  }
  const clusterName = context.cluster;
  if (typeof clusterName !== "string" || clusterName === "") {
    throw invalid(`context ${show(contextName)}`, 'has no "cluster"');
  }
  const cluster = entry(config, "clusters", clusterName);
  if (cluster === undefined) {
    throw invalid(
      `context ${show(contextName)}`,
      `names cluster ${show(clusterName)}, not in the file`,
    );
  }
  return { contextName, context, clusterName, cluster };
}

async function fromKubeconfig(path: string): Promise<Credentials> {
  const config = await parseKubeconfig(path);
  const { contextName, context, clusterName, cluster } = currentContext(config);
  const clusterWhere = `cluster ${show(clusterName)}`;
  refuseUnsupported(cluster, UNSUPPORTED_CLUSTER_FIELDS, clusterWhere);
  const skip = cluster["insecure-skip-tls-verify"];
  if (skip !== undefined && typeof skip !== "boolean") {
    throw invalid(clusterWhere, '"insecure-skip-tls-verify" is not a boolean');
  }
  const server = checkServer(optionalString(cluster, "server", clusterWhere), clusterWhere, !!skip);
  const caCert = await pemField(cluster, "certificate-authority", {
    where: clusterWhere,
    kubeconfig: path,
    kind: PEM_CERT,
  });
  const userName = typeof context.user === "string" ? context.user : undefined;
  const user = userName === undefined ? undefined : entry(config, "users", userName);
  if (user === undefined) {
    throw invalid(`context ${show(contextName)}`, "names no user of the file");
  }
  const { auth, clientCert } = await userAuth(user, {
    where: `user ${show(userName)}`,
    kubeconfig: path,
  });
  return { server, ...(caCert && { caCert }), ...(clientCert && { clientCert }), auth };
}

/**
 * Reads the server and credentials `source` names. Throws a CNI error (code
 * 4, or 5 for a file that could not be read) naming the file and the field
 * at fault.
 */
export async function loadCredentials(source: KubeconfigSource): Promise<Credentials> {
  const where = source.kind === "file" ? `${source.path} (${source.origin})` : source.origin;
  try {
    return source.kind === "file" ? await fromKubeconfig(source.path) : await inCluster(source);
  } catch (error) {
    if (!(error instanceof CredentialProblem)) throw error;
    throw new CniError(error.code, `failed to load kubeconfig ${where}: ${error.message}`);
  }
}

async function inCluster(source: InClusterConfig): Promise<Credentials> {
  const caCert = source.caFile === undefined
    ? undefined
    : checkPem(await readReferenced(source.caFile, "CA"), "ca.crt", "CA", PEM_CERT);
  return {
    server: checkServer(source.server, "server", false),
    ...(caCert && { caCert }),
    auth: { kind: "tokenFile", path: source.tokenFile },
  };
}
