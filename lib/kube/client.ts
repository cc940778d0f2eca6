/**
 * {@linkcode KubeApi} over `@kubernetes/client-node` 2.x (`CustomObjectsApi`).
 *
 * Loading the library costs a few hundred milliseconds and ~115 MB, so this
 * module imports it dynamically, only when a client is opened; other modules
 * reach this one through `await import()` too.
 *
 * Every call runs under the caller's {@linkcode Deadline}: its signal is put on
 * each request (the library passes it to fetch), so a hung server costs at
 * most the budget; transient failures (connection errors, 429, 5xx) are
 * retried with jittered exponential backoff, honouring `Retry-After`, as long
 * as the next attempt can start before the deadline. Failures become
 * {@linkcode KubeApiError}s (see `api_errors.ts`).
 *
 * @module
 */

import type {
  ApisApi,
  ConfigurationOptions,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  RequestContext,
  ResponseContext,
} from "@kubernetes/client-node";
import { CniError, ErrorCode } from "../cni/errors.ts";
import {
  type ApiResource,
  type CallOptions,
  type DeleteOptions,
  isApiStatus,
  type IssuedToken,
  type KubeApi,
  type KubeObject,
  type ListOptions,
  type Resource,
  SERVICE_ACCOUNT_TOKENS,
  type TokenRequestSpec,
} from "./api.ts";
import { classifyFailure, failureToError, isTransient, type Operation } from "./api_errors.ts";
import { type Deadline, remainingMs, sleep } from "./deadline.ts";
import type { KubeconfigSource } from "./kubeconfig.ts";

type Library = typeof import("@kubernetes/client-node");

/** How transient failures are retried inside a deadline. */
export interface RetryPolicy {
  /** Attempts per request, the first included. */
  readonly maxAttempts: number;
  /** Backoff before the second attempt; doubles after each failure. */
  readonly baseDelayMs: number;
  /** Upper bound of one backoff. */
  readonly maxDelayMs: number;
}

/** Default retry policy: up to 5 attempts, 100 ms doubling to at most 2 s. */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 2000 };

/** Field manager recorded for the plugin's writes. */
export const FIELD_MANAGER = "galactic";

/** Options of {@linkcode openKubeApi}. */
export interface ClientOptions {
  /** Retry policy; default {@linkcode DEFAULT_RETRY}. */
  readonly retry?: RetryPolicy;
}

let library: Promise<Library> | undefined;

/**
 * Imports the client library once. stdout belongs to the CNI protocol, so
 * the console methods that write there point at stderr while it loads.
 */
function loadLibrary(): Promise<Library> {
  library ??= (async () => {
    const saved = { log: console.log, info: console.info, debug: console.debug };
    console.log = console.info = console.debug = console.error;
    try {
      return await import("@kubernetes/client-node");
    } finally {
      Object.assign(console, saved);
    }
  })();
  return library;
}

/** Reasons js-yaml gives are fixed phrases; anything else might quote the file. */
const SAFE_REASON = /^[a-zA-Z ,'-]{1,80}$/;
/** Client-side validation messages that name a key, never a value. */
const SAFE_MESSAGE = /^[\w.\[\]]{1,80} is missing$/;

/**
 * Why a kubeconfig did not load, without its contents: the YAML parser's
 * message quotes the offending lines (a token among them), so only the line
 * number and the parser's fixed reason are kept.
 */
export function describeKubeconfigError(error: unknown): string {
  const e = error as { name?: unknown; reason?: unknown; mark?: { line?: unknown } };
  if (e?.name === "YAMLException") {
    const line = typeof e.mark?.line === "number" ? ` at line ${e.mark.line + 1}` : "";
    const reason = typeof e.reason === "string" && SAFE_REASON.test(e.reason)
      ? ` (${e.reason})`
      : "";
    return `invalid YAML${line}${reason}`;
  }
  const message = error instanceof Error ? error.message : "";
  if (SAFE_MESSAGE.test(message)) return message;
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  const name = error instanceof Error ? error.name : typeof error;
  return `not a usable kubeconfig (${/^\w{1,40}$/.test(name) ? name : "error"})`;
}

function loadConfig(lib: Library, source: KubeconfigSource): KubeConfig {
  const kc = new lib.KubeConfig();
  try {
    if (source.kind === "file") {
      kc.loadFromFile(source.path);
    } else {
      kc.loadFromOptions({
        clusters: [{
          name: "in-cluster",
          server: source.server,
          skipTLSVerify: false,
          ...(source.caFile !== undefined && { caFile: source.caFile }),
        }],
        users: [{
          name: "in-cluster",
          authProvider: { name: "tokenFile", config: { tokenFile: source.tokenFile } },
        }],
        contexts: [{ name: "in-cluster", cluster: "in-cluster", user: "in-cluster" }],
        currentContext: "in-cluster",
      });
    }
  } catch (error) {
    const where = source.kind === "file" ? `${source.path} (${source.origin})` : source.origin;
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `failed to load kubeconfig ${where}: ${describeKubeconfigError(error)}`,
      { cause: error },
    );
  }
  if (!kc.getCurrentCluster()) {
    const where = source.kind === "file" ? source.path : source.origin;
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `kubeconfig ${where} has no current context with a cluster`,
    );
  }
  return kc;
}

/** Opens a client for the API server named by `source`. */
export async function openKubeApi(
  source: KubeconfigSource,
  options: ClientOptions = {},
): Promise<KubeApi> {
  const lib = await loadLibrary();
  const kc = loadConfig(lib, source);
  return new CustomObjectsClient(lib, kc, options.retry ?? DEFAULT_RETRY);
}

/** Something undici-shaped that can be closed. */
interface Closable {
  close(): Promise<void>;
}

function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function isList(
  value: unknown,
): value is { items: KubeObject[]; metadata?: { continue?: string } } {
  return typeof value === "object" && value !== null &&
    Array.isArray((value as { items?: unknown }).items);
}

class CustomObjectsClient implements KubeApi {
  readonly server: string;
  readonly #lib: Library;
  readonly #api: CustomObjectsApi;
  readonly #apis: ApisApi;
  readonly #core: CoreV1Api;
  readonly #retry: RetryPolicy;
  /** One TLS agent for every request (the library makes one per request). */
  #dispatcher: Closable | undefined;
  #closed = false;

  constructor(lib: Library, kc: KubeConfig, retry: RetryPolicy) {
    this.#lib = lib;
    this.#api = kc.makeApiClient(lib.CustomObjectsApi);
    this.#apis = kc.makeApiClient(lib.ApisApi);
    this.#core = kc.makeApiClient(lib.CoreV1Api);
    this.#retry = retry;
    this.server = kc.getCurrentCluster()!.server;
  }

  /** Per-request options: the deadline's signal and a shared dispatcher. */
  #requestOptions(signal: AbortSignal): ConfigurationOptions {
    const { Observable } = this.#lib;
    return {
      middleware: [{
        pre: (context: RequestContext) => {
          context.setSignal(signal);
          this.#shareDispatcher(context);
          return new Observable(Promise.resolve(context));
        },
        post: (response: ResponseContext) => new Observable(Promise.resolve(response)),
      }],
      middlewareMergeStrategy: "append",
    };
  }

  /**
   * The library creates a new undici Agent (so a new TLS connection) for every
   * request to an https server; keep the first and reuse it, so one
   * invocation's requests share one connection.
   */
  #shareDispatcher(context: RequestContext): void {
    const dispatcher = context.getDispatcher() as unknown as Closable | undefined;
    if (dispatcher === undefined) return;
    if (this.#dispatcher === undefined) {
      this.#dispatcher = dispatcher;
    } else if (dispatcher !== this.#dispatcher) {
      context.setDispatcher(
        this.#dispatcher as unknown as Parameters<RequestContext["setDispatcher"]>[0],
      );
      void dispatcher.close().catch(() => {});
    }
  }

  async #call<T>(
    operation: Omit<Operation, "server">,
    deadline: Deadline,
    send: (options: ConfigurationOptions) => Promise<T>,
  ): Promise<T> {
    const op = { ...operation, server: this.server };
    for (let attempt = 1;; attempt++) {
      try {
        return await send(this.#requestOptions(deadline.signal));
      } catch (error) {
        const failure = classifyFailure(error, deadline.signal);
        const context = {
          operation: op,
          attempts: attempt,
          budgetMs: deadline.budgetMs,
          cause: error,
        };
        if (!isTransient(failure) || attempt >= this.#retry.maxAttempts) {
          throw failureToError(failure, context);
        }
        const delay = failure.kind === "http" && failure.retryAfterMs !== undefined
          ? failure.retryAfterMs
          : backoffMs(this.#retry, attempt);
        if (delay >= remainingMs(deadline)) throw failureToError(failure, context);
        try {
          await sleep(delay, deadline.signal);
        } catch {
          throw failureToError({ kind: "timeout" }, context);
        }
      }
    }
  }

  async list(resource: Resource, options: ListOptions): Promise<KubeObject[]> {
    const items: KubeObject[] = [];
    let token: string | undefined;
    do {
      const page: unknown = await this.#call(
        { verb: "list", resource },
        options.deadline,
        (request) =>
          this.#api.listClusterCustomObject({
            group: resource.group,
            version: resource.version,
            plural: resource.plural,
            ...(options.labelSelector !== undefined && { labelSelector: options.labelSelector }),
            ...(options.limit !== undefined && { limit: options.limit }),
            ...(token !== undefined && { _continue: token }),
          }, request),
      );
      if (!isList(page)) {
        throw new CniError(
          ErrorCode.Kubernetes,
          `list ${resource.plural}.${resource.group} on ${this.server} returned no items list`,
        );
      }
      items.push(...page.items);
      token = page.metadata?.continue || undefined;
    } while (token !== undefined && !options.firstPageOnly);
    return items;
  }

  async get(
    resource: Resource,
    name: string,
    options: CallOptions,
  ): Promise<KubeObject | undefined> {
    try {
      return await this.#call(
        { verb: "get", resource, name },
        options.deadline,
        (request) => this.#api.getClusterCustomObject({ ...ref(resource), name }, request),
      ) as KubeObject;
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  async create(resource: Resource, object: KubeObject, options: CallOptions): Promise<KubeObject> {
    return await this.#call(
      { verb: "create", resource, name: object.metadata.name },
      options.deadline,
      (request) =>
        this.#api.createClusterCustomObject({
          ...ref(resource),
          body: object,
          fieldManager: FIELD_MANAGER,
        }, request),
    ) as KubeObject;
  }

  async replace(resource: Resource, object: KubeObject, options: CallOptions): Promise<KubeObject> {
    const name = object.metadata.name;
    return await this.#call(
      { verb: "update", resource, name },
      options.deadline,
      (request) =>
        this.#api.replaceClusterCustomObject(
          { ...ref(resource), name, body: object, fieldManager: FIELD_MANAGER },
          request,
        ),
    ) as KubeObject;
  }

  async delete(resource: Resource, name: string, options: DeleteOptions): Promise<boolean> {
    try {
      await this.#call(
        { verb: "delete", resource, name },
        options.deadline,
        (request) =>
          this.#api.deleteClusterCustomObject({
            ...ref(resource),
            name,
            ...(options.uid !== undefined && { body: { preconditions: { uid: options.uid } } }),
          }, request),
      );
      return true;
    } catch (error) {
      if (isApiStatus(error, 404)) return false;
      throw error;
    }
  }

  async apiResources(
    group: string,
    version: string,
    options: CallOptions,
  ): Promise<ApiResource[] | undefined> {
    const path = `/apis/${group}/${version}`;
    try {
      const list = await this.#call(
        { verb: "get", resource: DISCOVERY, path },
        options.deadline,
        (request) => this.#api.getAPIResources({ group, version }, request),
      );
      return (list.resources ?? []).map((r) => ({
        name: r.name,
        kind: r.kind,
        namespaced: r.namespaced,
      }));
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  async apiGroups(options: CallOptions): Promise<Map<string, string[]>> {
    const list = await this.#call(
      { verb: "get", resource: DISCOVERY, path: "/apis" },
      options.deadline,
      (request) => this.#apis.getAPIVersions(request),
    );
    return new Map(list.groups.map((g) => [g.name, g.versions.map((v) => v.version)]));
  }

  async requestToken(
    namespace: string,
    serviceAccount: string,
    spec: TokenRequestSpec,
    options: CallOptions,
  ): Promise<IssuedToken> {
    const answer = await this.#call(
      { verb: "create", resource: SERVICE_ACCOUNT_TOKENS, name: serviceAccount },
      options.deadline,
      (request) =>
        this.#core.createNamespacedServiceAccountToken({
          namespace,
          name: serviceAccount,
          body: {
            apiVersion: "authentication.k8s.io/v1",
            kind: "TokenRequest",
            spec: {
              expirationSeconds: spec.expirationSeconds,
              audiences: [...(spec.audiences ?? [])],
            },
          },
        }, request),
    );
    return issuedToken(answer.status, `${namespace}/${serviceAccount}`, this.server);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#dispatcher?.close().catch(() => {});
  }
}

/**
 * The status of a TokenRequest answer, checked: a server that answers 201
 * without a usable token or expiry is an error (never a token of "").
 */
export function issuedToken(
  status: { token?: unknown; expirationTimestamp?: unknown } | undefined,
  account: string,
  server: string,
): IssuedToken {
  const token = status?.token;
  const expiry = status?.expirationTimestamp;
  const expirationTimestamp = expiry instanceof Date ? expiry : new Date(String(expiry));
  if (typeof token !== "string" || !/^[\x21-\x7e]{1,16384}$/.test(token)) {
    throw new CniError(
      ErrorCode.Kubernetes,
      `token request for ServiceAccount ${account} on ${server} returned no usable token`,
    );
  }
  if (Number.isNaN(expirationTimestamp.getTime())) {
    throw new CniError(
      ErrorCode.Kubernetes,
      `token request for ServiceAccount ${account} on ${server} returned no expirationTimestamp`,
    );
  }
  return { token, expirationTimestamp };
}

/** Stands for discovery calls in error messages (their `path` is named instead). */
const DISCOVERY: Resource = { group: "", version: "", plural: "", kind: "" };

function ref(resource: Resource): { group: string; version: string; plural: string } {
  return { group: resource.group, version: resource.version, plural: resource.plural };
}

/** An answer of {@linkcode RawApi.get}: status and the body, unparsed. */
export interface RawResponse {
  /** HTTP status. */
  readonly status: number;
  /** The body as bytes (a watch stream keeps it open). */
  readonly body: ReadableStream<Uint8Array> | null;
  /** The whole body as text. */
  text(): Promise<string>;
}

/**
 * Plain GETs with the kubeconfig's credentials, for the node agent's
 * list+watch loop (`lib/agent/informer.ts`), which parses and checks every
 * answer itself instead of trusting the library's informer with them.
 */
export interface RawApi {
  /** API server URL. */
  readonly server: string;
  /** GETs `path` (with its query) on the server; aborting `signal` ends the request or stream. */
  get(path: string, signal: AbortSignal): Promise<RawResponse>;
  /** Releases the connection. */
  close(): Promise<void>;
}

/** Opens a {@linkcode RawApi} for the API server named by `source`. */
export async function openRawApi(source: KubeconfigSource): Promise<RawApi> {
  const lib = await loadLibrary();
  const kc = loadConfig(lib, source);
  const { Agent, fetch } = await import("undici");
  const server = kc.getCurrentCluster()!.server;
  // The library gives https requests a TLS-configured dispatcher; plain http
  // gets a pool of its own (not undici's global one, which close() cannot reach).
  let shared: Closable | undefined;
  return {
    server,
    async get(path: string, signal: AbortSignal): Promise<RawResponse> {
      const context = new lib.RequestContext(server + path, lib.HttpMethod.GET);
      await kc.applySecurityAuthentication(context);
      const dispatcher = context.getDispatcher() as unknown as Closable | undefined;
      if (shared === undefined) shared = dispatcher ?? new Agent();
      else if (dispatcher !== undefined) void dispatcher.close().catch(() => {});
      const response = await fetch(server + path, {
        headers: context.getHeaders(),
        signal,
        dispatcher: shared as never,
      });
      return response as unknown as RawResponse;
    },
    async close(): Promise<void> {
      await (shared as { destroy?: () => Promise<void> } | undefined)?.destroy?.().catch(() => {});
    },
  };
}
