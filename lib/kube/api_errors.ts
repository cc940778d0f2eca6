/**
 * Turning what a request to the API server failed with into a decision
 * (retry or not) and a CNI error that says what failed, against which
 * server, and what to do about it. Pure functions.
 *
 * The client (`client.ts`) throws {@linkcode HttpStatusError} for non-2xx
 * answers; Deno's fetch throws `TypeError("fetch failed")` with the cause as
 * text (`... client error (Connect): tcp connect error: Connection refused`,
 * `invalid peer certificate: UnknownIssuer`, `received fatal alert: ...`)
 * before an answer, `TypeError("error reading a body from connection")` when
 * the connection dies mid-body, or the abort signal's reason.
 *
 * @module
 */

import { COSMOS_API } from "./cosmos_api.ts";
import { ErrorCode } from "../cni/errors.ts";
import { KubeApiError, qualifiedName, type Resource } from "./api.ts";

/** What an API call was doing, for messages. */
export interface Operation {
  /** RBAC verb: get, list, create, update, patch, delete. */
  readonly verb: string;
  readonly resource: Resource;
  /** Object name, for calls on one object. */
  readonly name?: string;
  /** API server URL. */
  readonly server: string;
  /** Discovery calls: the path asked for, named instead of the resource. */
  readonly path?: string;
}

/** The server answered with a non-2xx status. */
export interface HttpFailure {
  readonly kind: "http";
  /** HTTP status. */
  readonly status: number;
  /** `Status.reason`, when the body was a Status. */
  readonly reason?: string;
  /** `Status.message`, or the body text. */
  readonly message?: string;
  /** Delay the server asked for (`Retry-After`), in milliseconds. */
  readonly retryAfterMs?: number;
}

/** No answer: connection refused/reset, DNS, TLS, ... */
export interface NetworkFailure {
  readonly kind: "network";
  /** The cause chain as text, e.g. `fetch failed: connect ECONNREFUSED 127.0.0.1:6443`. */
  readonly message: string;
  /** False for failures a retry cannot fix (bad certificates). */
  readonly transient: boolean;
}

/** The operation's deadline expired. */
export interface TimeoutFailure {
  readonly kind: "timeout";
}

/** Anything else (a bug, or an answer that is not what the API promises). */
export interface OtherFailure {
  readonly kind: "other";
  /** The error text. */
  readonly message: string;
}

/** A classified failure. */
export type Failure = HttpFailure | NetworkFailure | TimeoutFailure | OtherFailure;

/** A non-2xx answer: its status, body text and headers. */
export class HttpStatusError extends Error {
  /** HTTP status. */
  readonly status: number;
  /** The response body as text (a `Status` object from a real API server). */
  readonly body: string;
  readonly headers: Headers;

  constructor(status: number, body: string, headers: Headers) {
    super(`HTTP ${status}`);
    this.name = "HttpStatusError";
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

/** Error codes of sockets (in a cause chain) that a retry may fix. */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EHOSTDOWN",
  "EAI_AGAIN",
  "ENOTFOUND",
]);
const PERMANENT_TLS =
  /CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|HOSTNAME|ALTNAME|peer certificate|fatal alert|UnknownIssuer|NotValidForName/i;
/** What Deno's fetch says when the connection failed or died (no code, only text). */
const CONNECTION_FAILED =
  /fetch failed|error reading a body|connection (closed|reset|refused)|broken pipe|os error|dns error|tcp connect/i;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** HTTP-date (RFC 9110 5.6.7): IMF-fixdate and RFC 850 (both in GMT), or asctime (UTC). */
const HTTP_DATE = /^[A-Za-z]{3,9}, \d\d[ -][A-Za-z]{3}[ -](\d{4}|\d\d) \d\d:\d\d:\d\d GMT$/;
const ASCTIME = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$/;

/**
 * Parses `Retry-After` (delta seconds or an HTTP-date) into milliseconds;
 * anything else (`1.5`, `-1`, which `Date.parse` would take for dates in the
 * past and so retry at once) is ignored, and the backoff applies.
 */
export function parseRetryAfter(
  value: string | undefined,
  now: number = Date.now(),
): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const date = HTTP_DATE.test(text)
    ? Date.parse(text)
    : ASCTIME.test(text)
    ? Date.parse(`${text} GMT`)
    : Number.NaN;
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

function parseBody(body: unknown): { reason?: string; message?: string } {
  let value = body;
  if (typeof body === "string") {
    try {
      value = JSON.parse(body);
    } catch {
      const text = body.trim();
      return text ? { message: text.length > 300 ? `${text.slice(0, 297)}...` : text } : {};
    }
  }
  if (!isRecord(value)) return {};
  return {
    ...(typeof value.reason === "string" && value.reason !== "" && { reason: value.reason }),
    ...(typeof value.message === "string" && value.message !== "" && { message: value.message }),
  };
}

/** Cause chain of an error as one line, skipping repeats. */
export function describeCause(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    const text = current instanceof Error ? current.message : String(current);
    if (text && !parts.includes(text)) parts.push(text);
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(": ") || "unknown error";
}

function causeCodes(error: unknown): string[] {
  const codes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; isRecord(current) && depth < 5; depth++) {
    if (typeof current.code === "string") codes.push(current.code);
    current = current.cause;
  }
  return codes;
}

/** Classifies what a client call threw; `signal` is the operation's deadline signal. */
export function classifyFailure(error: unknown, signal: AbortSignal): Failure {
  if (error instanceof HttpStatusError) {
    const retryAfterMs = parseRetryAfter(error.headers.get("retry-after") ?? undefined);
    return {
      kind: "http",
      status: error.status,
      ...parseBody(error.body),
      ...(retryAfterMs !== undefined && { retryAfterMs }),
    };
  }
  if (signal.aborted) return { kind: "timeout" };
  const codes = causeCodes(error);
  const message = describeCause(error);
  if (codes.some((code) => TRANSIENT_CODES.has(code))) {
    return { kind: "network", message, transient: true };
  }
  if (codes.some((code) => PERMANENT_TLS.test(code)) || PERMANENT_TLS.test(message)) {
    return { kind: "network", message, transient: false };
  }
  // Deno: "fetch failed" before an answer, "error reading a body from
  // connection" when it dies mid-body; both are connection failures.
  if (error instanceof TypeError && CONNECTION_FAILED.test(message)) {
    return { kind: "network", message, transient: true };
  }
  return { kind: "other", message };
}

/** True when retrying (within the deadline) may succeed. */
export function isTransient(failure: Failure): boolean {
  switch (failure.kind) {
    case "http":
      return failure.status === 429 || failure.status >= 500;
    case "network":
      return failure.transient;
    case "timeout":
    case "other":
      return false;
  }
}

function target(operation: Operation): string {
  if (operation.path !== undefined) return operation.path;
  const resource = qualifiedName(operation.resource);
  return operation.name === undefined ? resource : `${resource} ${JSON.stringify(operation.name)}`;
}

function attemptsText(attempts: number): string {
  return attempts > 1 ? ` (${attempts} attempts)` : "";
}

/**
 * Maps a final failure to a CNI error: unreachable, timed out, 5xx and 429
 * are code 11 (try again later); 401/403/422 and other refusals are code 101
 * naming what is missing or invalid.
 */
export function failureToError(
  failure: Failure,
  context: { operation: Operation; attempts: number; budgetMs: number; cause?: unknown },
): KubeApiError {
  const { operation, attempts } = context;
  const what = `${operation.verb} ${target(operation)}`;
  const server = operation.server;
  const options = { cause: context.cause };
  const tries = attemptsText(attempts);
  switch (failure.kind) {
    case "timeout": {
      const budget = `${context.budgetMs / 1000}s`;
      return new KubeApiError(
        ErrorCode.TryAgainLater,
        `Kubernetes API server ${server} did not complete ${what} within ${budget}${tries}: deadline exceeded`,
        options,
      );
    }
    case "network":
      return new KubeApiError(
        failure.transient ? ErrorCode.TryAgainLater : ErrorCode.Kubernetes,
        `Kubernetes API server ${server} unreachable for ${what}${tries}: ${failure.message}`,
        options,
      );
    case "other":
      return new KubeApiError(
        ErrorCode.Kubernetes,
        `${what} on ${server} failed: ${failure.message}`,
        options,
      );
    case "http":
      return httpError(failure, { what, operation, attempts, cause: context.cause });
  }
}

/**
 * Where the missing permission belongs: a token is issued under the agent's
 * namespaced Role (exactly the plugin's account); everything else is granted
 * by the ClusterRole of whoever calls (the plugin's or the agent's).
 */
function rbacHint(operation: Operation): string {
  return operation.resource.plural === "serviceaccounts/token"
    ? `check the caller's Role: create on serviceaccounts/token with resourceNames ` +
      `[${operation.name ?? ""}] in the account's namespace`
    : "check the ClusterRole of the kubeconfig's identity (the plugin's or the agent's)";
}

function httpError(
  failure: HttpFailure,
  context: { what: string; operation: Operation; attempts: number; cause?: unknown },
): KubeApiError {
  const { status, reason } = failure;
  const { what, operation } = context;
  const server = operation.server;
  const said = failure.message ? `: ${failure.message}` : "";
  const options = { status, ...(reason !== undefined && { reason }), cause: context.cause };
  if (status === 429 || status >= 500) {
    const label = status === 429
      ? "throttled"
      : `failed with HTTP ${status}${reason ? ` ${reason}` : ""}`;
    const tries = attemptsText(context.attempts);
    const asked = failure.retryAfterMs === undefined
      ? ""
      : ` (asked to retry after ${failure.retryAfterMs / 1000}s)`;
    return new KubeApiError(
      ErrorCode.TryAgainLater,
      `Kubernetes API server ${server} ${label} on ${what}${tries}${said}${asked}`,
      options,
    );
  }
  if (status === 401) {
    return new KubeApiError(
      ErrorCode.Kubernetes,
      `unauthorized: Kubernetes API server ${server} rejected the plugin's credentials on ${what} ` +
        `(expired or wrong token in the kubeconfig?)${said}`,
      options,
    );
  }
  if (status === 403) {
    return new KubeApiError(
      ErrorCode.Kubernetes,
      `forbidden: needs "${operation.verb}" on ${qualifiedName(operation.resource)} ` +
        `(${rbacHint(operation)})${said}`,
      options,
    );
  }
  if (status === 422) {
    return new KubeApiError(
      ErrorCode.Kubernetes,
      `${what} rejected as invalid${said || ` (HTTP 422)`}`,
      options,
    );
  }
  if (status === 404) {
    const hint = operation.name === undefined
      ? ` (the server does not serve ${
        qualifiedName(operation.resource)
      }/${operation.resource.version}: ` +
        `are the CRDs of cosmos ${COSMOS_API.commit}..${COSMOS_API.compatibleThrough} installed?)`
      : "";
    return new KubeApiError(ErrorCode.Kubernetes, `${what}: not found${hint}${said}`, options);
  }
  if (status === 409) {
    return new KubeApiError(ErrorCode.Kubernetes, `${what}: conflict${said}`, options);
  }
  return new KubeApiError(
    ErrorCode.Kubernetes,
    `${what} on ${server} failed with HTTP ${status}${reason ? ` ${reason}` : ""}${said}`,
    options,
  );
}
