/**
 * CNI error codes (spec 1.1.0 §"Error") and the error type every layer throws
 * so the dispatcher can print one well-formed error object.
 *
 * @module
 */

/** Well-known CNI error codes; 100+ are this plugin's own. */
export const ErrorCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IoFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  /** A host data-plane command (ip, iptables, sysctl) failed. */
  DataPlane: 100,
  /** The Kubernetes API refused the request (RBAC, validation, lookup). */
  Kubernetes: 101,
  /** Refused to write state that would leak routes between VPCs. */
  RouteTargetCollision: 102,
  /** The host-device delegate failed without a CNI error of its own. */
  Delegate: 103,
  /** Local state disagrees with the kernel or the API server (CHECK). */
  StateDiverged: 104,
} as const;

/** A CNI error: `code`, human message `msg`, optional `details`. */
export class CniError extends Error {
  /** CNI error code. */
  readonly code: number;
  /** Extra context for the runtime's logs. */
  readonly details: string | undefined;

  /** Builds an error; `cause` is kept for logs and appended to details. */
  constructor(code: number, msg: string, options: { details?: string; cause?: unknown } = {}) {
    super(msg, { cause: options.cause });
    this.name = "CniError";
    this.code = code;
    this.details = options.details;
  }
}

/** Shorthand for the most common failure: an invalid configuration field. */
export function invalidConfig(field: string, value: unknown, why: string): CniError {
  return new CniError(
    ErrorCode.InvalidConfig,
    `invalid network configuration: field "${field}" ${why} (got ${show(value)})`,
  );
}

/** Longest rendering of one value in a message ({@linkcode show}). */
export const MAX_SHOWN = 120;
/** Longest message of an error document. */
export const MAX_MESSAGE = 2048;

/** `text` cut to `max` characters, an ellipsis marking the cut. */
export function truncate(text: string, max: number = MAX_SHOWN): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Renders a value for an error message without letting it grow unbounded. */
export function show(value: unknown): string {
  let text: string;
  try {
    text = typeof value === "string"
      ? JSON.stringify(value)
      : JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return truncate(text);
}

/**
 * Wraps an error with the operation that failed, keeping its CNI code when it
 * has one (containernetworking/plugins style: "failed to X: cause").
 */
export function wrap(
  operation: string,
  error: unknown,
  code: number = ErrorCode.DataPlane,
): CniError {
  if (error instanceof CniError) {
    return new CniError(error.code, `${operation}: ${error.message}`, {
      details: error.details,
      cause: error,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new CniError(code, `${operation}: ${message}`, { cause: error });
}
