/**
 * The fake API server's TokenRequest (`POST
 * /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`) and the
 * authentication of the tokens it issues, held to the real server's
 * contract:
 *
 * - the body is an `authentication.k8s.io/v1` TokenRequest (kind and
 *   apiVersion may be left out, as the real decoder defaults them; others are
 *   400); `spec.expirationSeconds` defaults to 3600, below 600 or above 2^32
 *   is 422 Invalid; empty `spec.audiences` become the server's own; a server
 *   maximum (`--service-account-max-token-expiration`) shortens longer ones;
 * - `metadata.name`/`namespace`, when given, must be the URL's (else 422,
 *   checked first, as the real server does); an unknown ServiceAccount is
 *   404 (before the spec is validated); a `boundObjectRef` of a kind other
 *   than core Pod, Secret or Node is 400, and one of those names objects the
 *   fake does not hold (it keeps no pods), so it is 404 like a missing pod;
 * - the answer (201) carries `status.token` and
 *   `status.expirationTimestamp` (RFC 3339, whole seconds);
 * - an issued token authenticates until it expires (by the fake's clock,
 *   which a test moves with {@linkcode TokenIssuer.advance}) or is revoked,
 *   and only if its audiences include the server's: otherwise 401.
 *
 * Tokens look like service-account JWTs (three base64url parts, unsigned
 * here), so what scans messages for them sees the real shape.
 *
 * @module
 */

/** Audience the fake API server accepts (a real server's default `--api-audiences`). */
export const FAKE_API_AUDIENCE = "https://kubernetes.default.svc.cluster.local";
/** Service accounts the fake knows by default (`namespace/name`). */
export const FAKE_SERVICE_ACCOUNTS: readonly string[] = [
  "galactic-system/galactic-cni",
  "galactic-system/galactic-agent",
];

const MIN_SECONDS = 600;
const MAX_SECONDS = 2 ** 32;
const DEFAULT_SECONDS = 3600;

/** One issued token, as a test may inspect it (never its value). */
export interface IssuedTokenRecord {
  /** `namespace/name` of its ServiceAccount. */
  readonly account: string;
  /** Expiry, ms since the epoch on the fake's clock. */
  readonly expiresAt: number;
  /** Lifetime granted, seconds. */
  readonly seconds: number;
  readonly audiences: readonly string[];
  revoked: boolean;
}

/** The outcome of a token request: a 201 body or an error `Status` to send. */
export type TokenAnswer =
  | { readonly status: 201; readonly body: Record<string, unknown> }
  | {
    readonly status: 400 | 404 | 422;
    readonly reason: string;
    readonly message: string;
    readonly details?: Record<string, unknown>;
  };

/** Issues and authenticates service-account tokens on a clock tests can move. */
export class TokenIssuer {
  readonly #accounts: Set<string>;
  readonly #maxSeconds: number | undefined;
  readonly #tokens = new Map<string, IssuedTokenRecord>();
  #offsetMs = 0;

  constructor(options: { accounts?: readonly string[]; maxSeconds?: number } = {}) {
    this.#accounts = new Set(options.accounts ?? FAKE_SERVICE_ACCOUNTS);
    this.#maxSeconds = options.maxSeconds;
  }

  /** The fake's clock, ms since the epoch. */
  now(): number {
    return Date.now() + this.#offsetMs;
  }

  /** Moves the fake's clock forward (tokens expire by it). */
  advance(ms: number): void {
    this.#offsetMs += ms;
  }

  /** Every token issued, oldest first (copies). */
  issued(): IssuedTokenRecord[] {
    return [...this.#tokens.values()].map((record) => ({ ...record }));
  }

  /** What the fake makes of `token`: one it issued (and its state), or unknown. */
  state(token: string): "valid" | "expired" | "revoked" | "unknown" {
    const record = this.#tokens.get(token);
    if (!record) return "unknown";
    if (record.revoked) return "revoked";
    return this.now() >= record.expiresAt ? "expired" : "valid";
  }

  /** Revokes every token of `account` (all when absent), as deleting the ServiceAccount would. */
  revoke(account?: string): number {
    let count = 0;
    for (const record of this.#tokens.values()) {
      if (account !== undefined && record.account !== account) continue;
      if (!record.revoked) count++;
      record.revoked = true;
    }
    return count;
  }

  /** True when `token` is one it issued that the API accepts now. */
  authenticates(token: string): boolean {
    const record = this.#tokens.get(token);
    return record !== undefined && this.state(token) === "valid" &&
      record.audiences.includes(FAKE_API_AUDIENCE);
  }

  /** Answers `POST .../namespaces/{namespace}/serviceaccounts/{name}/token` with `body`. */
  request(namespace: string, name: string, body: unknown): TokenAnswer {
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return badRequest("the body of the request is not a JSON object");
    }
    const request = body as Record<string, unknown>;
    const apiVersion = request.apiVersion ?? "authentication.k8s.io/v1";
    const kind = request.kind ?? "TokenRequest";
    if (apiVersion !== "authentication.k8s.io/v1" || kind !== "TokenRequest") {
      return badRequest(
        `the API version in the data (${apiVersion}) or kind (${kind}) does not match the ` +
          "expected authentication.k8s.io/v1, Kind=TokenRequest",
      );
    }
    const metadata = (request.metadata ?? {}) as Record<string, unknown>;
    for (
      const [field, expected, what] of [["name", name, "name"], [
        "namespace",
        namespace,
        "namespace",
      ]]
    ) {
      const value = metadata[field!];
      if (value !== undefined && value !== "" && value !== expected) {
        return invalid(
          `metadata.${field}: Invalid value: ${JSON.stringify(value)}: must match the service ` +
            `account ${what} if specified`,
          name,
        );
      }
    }
    const account = `${namespace}/${name}`;
    if (!this.#accounts.has(account)) {
      return {
        status: 404,
        reason: "NotFound",
        message: `serviceaccounts ${JSON.stringify(name)} not found`,
        details: { name, kind: "serviceaccounts" },
      };
    }
    const spec = (request.spec ?? {}) as Record<string, unknown>;
    if (typeof spec !== "object" || Array.isArray(spec)) return badRequest("spec: not an object");
    const audiences = spec.audiences ?? [];
    if (!Array.isArray(audiences) || audiences.some((a) => typeof a !== "string")) {
      return badRequest("spec.audiences: expected an array of strings");
    }
    const requested = spec.expirationSeconds ?? DEFAULT_SECONDS;
    if (typeof requested !== "number" || !Number.isInteger(requested)) {
      return badRequest("spec.expirationSeconds: expected an integer");
    }
    if (requested < MIN_SECONDS) {
      return invalid(
        `spec.expirationSeconds: Invalid value: ${requested}: may not specify a duration less than 10 minutes`,
      );
    }
    if (requested > MAX_SECONDS) {
      return invalid(
        `spec.expirationSeconds: Invalid value: ${requested}: may not specify a duration larger than 2^32 seconds`,
      );
    }
    const bound = spec.boundObjectRef as Record<string, unknown> | undefined;
    if (bound !== undefined && bound !== null) {
      const apiVersion = String(bound.apiVersion ?? "");
      if (apiVersion.includes("/") || !["Pod", "Secret", "Node"].includes(String(bound.kind))) {
        const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
        const version = apiVersion.includes("/") ? apiVersion.split("/")[1] : apiVersion;
        return badRequest(
          `cannot bind token to object of type ${group}/${version}, Kind=${
            String(bound.kind ?? "")
          }`,
        );
      }
      const kind = String(bound.kind).toLowerCase();
      return {
        status: 404,
        reason: "NotFound",
        message: `${kind}s ${JSON.stringify(String(bound.name ?? ""))} not found`,
        details: { name: String(bound.name ?? ""), kind: `${kind}s` },
      };
    }
    const seconds = this.#maxSeconds !== undefined && requested > this.#maxSeconds
      ? this.#maxSeconds
      : requested;
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresAt = (issuedAt + seconds) * 1000;
    const granted = audiences.length > 0 ? audiences as string[] : [FAKE_API_AUDIENCE];
    const token = fakeJwt({ sub: `system:serviceaccount:${namespace}:${name}`, issuedAt, seconds });
    this.#tokens.set(token, { account, expiresAt, seconds, audiences: granted, revoked: false });
    return {
      status: 201,
      body: {
        kind: "TokenRequest",
        apiVersion: "authentication.k8s.io/v1",
        metadata: { name, namespace, creationTimestamp: rfc3339(issuedAt * 1000) },
        spec: { audiences: granted, expirationSeconds: seconds },
        status: { token, expirationTimestamp: rfc3339(expiresAt) },
      },
    };
  }
}

function badRequest(message: string): TokenAnswer {
  return { status: 400, reason: "BadRequest", message };
}

/** 422 as the real server words it: the spec's errors name "", metadata's the account. */
function invalid(cause: string, name = ""): TokenAnswer {
  return {
    status: 422,
    reason: "Invalid",
    message: `TokenRequest.authentication.k8s.io ${JSON.stringify(name)} is invalid: ${cause}`,
    details: { name, group: "authentication.k8s.io", kind: "TokenRequest" },
  };
}

function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
}

function base64url(text: string): string {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A token shaped like a service-account JWT, unique by a random `jti`. */
function fakeJwt(claims: { sub: string; issuedAt: number; seconds: number }): string {
  const header = base64url(JSON.stringify({ alg: "RS256", kid: "fake" }));
  const payload = base64url(JSON.stringify({
    aud: [FAKE_API_AUDIENCE],
    exp: claims.issuedAt + claims.seconds,
    iat: claims.issuedAt,
    iss: FAKE_API_AUDIENCE,
    jti: crypto.randomUUID(),
    sub: claims.sub,
  }));
  const signature = base64url(
    String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))),
  );
  return `${header}.${payload}.${signature}`;
}
