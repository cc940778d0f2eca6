/**
 * {@linkcode KubeApi} over Deno's `fetch` (`http_transport.ts`), with the
 * credentials of the kubeconfig read by `credentials.ts`: no Kubernetes
 * client library (`@kubernetes/client-node` cost ~115 MB and 0.3–2 s of
 * start-up per process).
 *
 * Every call runs under the caller's {@linkcode Deadline}: its signal is put on
 * each request and on the read of its body, so a hung server costs at most
 * the budget; transient failures (connection errors, 429, 5xx) are retried
 * with jittered exponential backoff, honouring `Retry-After`, as long as the
 * next attempt can start before the deadline. Failures become
 * {@linkcode KubeApiError}s (see `api_errors.ts`).
 *
 * @module
 */

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
  qualifiedName,
  type Resource,
  SERVICE_ACCOUNT_TOKENS,
  type TokenRequestSpec,
} from "./api.ts";
import {
  classifyFailure,
  failureToError,
  HttpStatusError,
  isTransient,
  type Operation,
} from "./api_errors.ts";
import { loadCredentials } from "./credentials.ts";
import { type Deadline, remainingMs, sleep } from "./deadline.ts";
import { type HttpTransport, openHttpTransport } from "./http_transport.ts";
import type { KubeconfigSource } from "./kubeconfig.ts";

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

/** Opens a client for the API server named by `source`; no request is made yet. */
export async function openKubeApi(
  source: KubeconfigSource,
  options: ClientOptions = {},
): Promise<KubeApi> {
  const transport = openHttpTransport(await loadCredentials(source));
  return new FetchKubeApi(transport, options.retry ?? DEFAULT_RETRY);
}

function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isList(
  value: unknown,
): value is { items: KubeObject[]; metadata?: { continue?: string } } {
  return isRecord(value) && Array.isArray(value.items);
}

function isObject(value: unknown): value is KubeObject {
  return isRecord(value) && isRecord(value.metadata);
}

/** An answer that is not what the API promises (not retried). */
class UnexpectedAnswer extends Error {}

/** A request: method, path with query, optional JSON body. */
interface Call {
  readonly method: string;
  readonly path: string;
  readonly body?: unknown;
}

function resourcePath(resource: Resource, name?: string): string {
  const base = `/apis/${resource.group}/${resource.version}/${resource.plural}`;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

function withQuery(path: string, query: Record<string, string | number | undefined>): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined) params.set(key, String(value));
  }
  const text = params.toString();
  return text === "" ? path : `${path}?${text}`;
}

class FetchKubeApi implements KubeApi {
  readonly server: string;
  readonly #transport: HttpTransport;
  readonly #retry: RetryPolicy;

  constructor(transport: HttpTransport, retry: RetryPolicy) {
    this.#transport = transport;
    this.#retry = retry;
    this.server = transport.server;
  }

  /** One attempt: the answer's JSON, or an {@linkcode HttpStatusError}. */
  async #send(call: Call, signal: AbortSignal): Promise<unknown> {
    const response = await this.#transport.fetch(call.path, {
      method: call.method,
      ...(call.body !== undefined && { body: call.body }),
      signal,
    });
    const text = await response.text();
    if (!response.ok) throw new HttpStatusError(response.status, text, response.headers);
    // A DELETE may answer 200 without a body; callers that need an object check for one.
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new UnexpectedAnswer(`HTTP ${response.status} answer is not JSON`);
    }
  }

  async #call(
    operation: Omit<Operation, "server">,
    deadline: Deadline,
    call: Call,
  ): Promise<unknown> {
    const op = { ...operation, server: this.server };
    for (let attempt = 1;; attempt++) {
      try {
        return await this.#send(call, deadline.signal);
      } catch (error) {
        if (error instanceof CniError) throw error;
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

  /** {@linkcode #call} of a request answered by one object. */
  async #object(
    operation: Omit<Operation, "server">,
    deadline: Deadline,
    call: Call,
  ): Promise<KubeObject> {
    const answer = await this.#call(operation, deadline, call);
    if (!isObject(answer)) {
      throw failureToError(
        { kind: "other", message: "the answer is not an object with metadata" },
        { operation: { ...operation, server: this.server }, attempts: 1, budgetMs: 0 },
      );
    }
    return answer;
  }

  async list(resource: Resource, options: ListOptions): Promise<KubeObject[]> {
    const items: KubeObject[] = [];
    let token: string | undefined;
    do {
      let page: unknown;
      try {
        page = await this.#call({ verb: "list", resource }, options.deadline, {
          method: "GET",
          path: withQuery(resourcePath(resource), {
            labelSelector: options.labelSelector,
            limit: options.limit,
            continue: token,
          }),
        });
      } catch (error) {
        // A continue token compacted away (410 Expired) between pages: list
        // again in one piece, as client-go's pager does (FullListIfExpired).
        if (token === undefined || !isApiStatus(error, 410)) throw error;
        return await this.list(resource, {
          deadline: options.deadline,
          ...(options.labelSelector !== undefined && { labelSelector: options.labelSelector }),
        });
      }
      if (!isList(page)) {
        throw new CniError(
          ErrorCode.Kubernetes,
          `list ${qualifiedName(resource)} on ${this.server} returned no items list`,
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
      return await this.#object({ verb: "get", resource, name }, options.deadline, {
        method: "GET",
        path: resourcePath(resource, name),
      });
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  async create(resource: Resource, object: KubeObject, options: CallOptions): Promise<KubeObject> {
    return await this.#object(
      { verb: "create", resource, name: object.metadata.name },
      options.deadline,
      {
        method: "POST",
        path: withQuery(resourcePath(resource), { fieldManager: FIELD_MANAGER }),
        body: object,
      },
    );
  }

  async replace(resource: Resource, object: KubeObject, options: CallOptions): Promise<KubeObject> {
    const name = object.metadata.name;
    return await this.#object({ verb: "update", resource, name }, options.deadline, {
      method: "PUT",
      path: withQuery(resourcePath(resource, name), { fieldManager: FIELD_MANAGER }),
      body: object,
    });
  }

  async delete(resource: Resource, name: string, options: DeleteOptions): Promise<boolean> {
    try {
      await this.#call({ verb: "delete", resource, name }, options.deadline, {
        method: "DELETE",
        path: resourcePath(resource, name),
        ...(options.uid !== undefined && {
          body: {
            apiVersion: "v1",
            kind: "DeleteOptions",
            preconditions: { uid: options.uid },
          },
        }),
      });
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
    let list: unknown;
    try {
      list = await this.#call({ verb: "get", resource: DISCOVERY, path }, options.deadline, {
        method: "GET",
        path,
      });
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
    const resources = isRecord(list) && Array.isArray(list.resources) ? list.resources : undefined;
    if (resources === undefined || !resources.every(isRecord)) {
      throw discoveryError(path, this.server, "an APIResourceList");
    }
    return resources.map((r) => ({
      name: String(r.name),
      kind: String(r.kind),
      namespaced: r.namespaced === true,
    }));
  }

  async apiGroups(options: CallOptions): Promise<Map<string, string[]>> {
    const path = "/apis";
    const list = await this.#call({ verb: "get", resource: DISCOVERY, path }, options.deadline, {
      method: "GET",
      path,
    });
    const groups = isRecord(list) && Array.isArray(list.groups) ? list.groups : undefined;
    if (groups === undefined || !groups.every((g) => isRecord(g) && Array.isArray(g.versions))) {
      throw discoveryError(path, this.server, "an APIGroupList");
    }
    return new Map(
      groups.map((g) => [
        String(g.name),
        (g.versions as unknown[]).map((v) => String(isRecord(v) ? v.version : v)),
      ]),
    );
  }

  async requestToken(
    namespace: string,
    serviceAccount: string,
    spec: TokenRequestSpec,
    options: CallOptions,
  ): Promise<IssuedToken> {
    const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/` +
      `${encodeURIComponent(serviceAccount)}/token`;
    const answer = await this.#call(
      { verb: "create", resource: SERVICE_ACCOUNT_TOKENS, name: serviceAccount },
      options.deadline,
      {
        method: "POST",
        path,
        body: {
          apiVersion: "authentication.k8s.io/v1",
          kind: "TokenRequest",
          spec: {
            expirationSeconds: spec.expirationSeconds,
            audiences: [...(spec.audiences ?? [])],
          },
        },
      },
    );
    const status = isRecord(answer) && isRecord(answer.status) ? answer.status : undefined;
    return issuedToken(status, `${namespace}/${serviceAccount}`, this.server);
  }

  close(): Promise<void> {
    this.#transport.close();
    return Promise.resolve();
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
  const expirationTimestamp = expiry instanceof Date
    ? expiry
    : new Date(typeof expiry === "string" ? expiry : Number.NaN);
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

function discoveryError(path: string, server: string, expected: string): CniError {
  return new CniError(ErrorCode.Kubernetes, `get ${path} on ${server} returned no ${expected}`);
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
 * answer itself.
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
  const transport = openHttpTransport(await loadCredentials(source));
  return {
    server: transport.server,
    get: (path, signal) => transport.fetch(path, { signal }),
    close(): Promise<void> {
      transport.close();
      return Promise.resolve();
    },
  };
}
