/**
 * The plugin's credential on the host: an expiring token of the plugin's
 * ServiceAccount (`galactic-cni`), issued through TokenRequest by the node
 * agent (whose own identity, `galactic-agent`, may create tokens of that one
 * account and nothing else) and written into the host kubeconfig that every
 * plugin process reads (`/etc/cni/net.d/galactic.d/kubeconfig`). It replaces
 * the legacy never-expiring Secret token: a leaked copy of the file stops
 * working within one lifetime.
 *
 * - Who issues: `galactic install` issues the first token before it installs
 *   the plugin binary (so the runtime never finds the plugin without a
 *   working kubeconfig), and the agent issues a fresh one at every start,
 *   before it serves, then keeps it fresh.
 * - When: once a third of the token's lifetime is left (minus up to a
 *   twelfth, jittered, so the nodes of a cluster started together do not
 *   refresh together), measured on the lifetime the server granted (it may
 *   shorten the requested one). A failed request keeps the current token in
 *   place, is logged, and is retried with capped exponential backoff until
 *   one succeeds; the status (expiry, consecutive failures) is on the
 *   agent's `/metrics`.
 * - How: the whole kubeconfig is rendered and replaced atomically (an
 *   unpredictable temporary file created exclusively in the same directory,
 *   mode 0600, fsync, rename, directory fsync), so a plugin reading it
 *   mid-rotation sees the old file or the new one, never part of one, and a
 *   symlink planted at the path is replaced, not followed.
 * - Not bound to a Pod: the API server binds a token only to a pod running as
 *   the token's own ServiceAccount, and the plugin runs on the host, in no
 *   pod (the agent's pod runs as `galactic-agent`); the lifetime is the bound.
 *
 * The token is a secret: it is never logged nor put in an error message.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { renderKubeconfig, writeFileAtomic } from "../install/install.ts";
import type { KubeApi } from "../kube/api.ts";
import { pause, startDeadline } from "../kube/deadline.ts";
import type { Logger } from "../log/logger.ts";

/** Requested lifetime of the plugin's token (the server may shorten it). */
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 3600;
/** The shortest lifetime the API server accepts. */
export const MIN_TOKEN_LIFETIME_SECONDS = 600;
/** Refresh once this fraction of the granted lifetime is left. */
export const REFRESH_WHEN_LEFT = 1 / 3;
/** Up to this fraction of the lifetime earlier, at random (spreads a cluster's nodes). */
const REFRESH_JITTER = 1 / 12;
/** Longest single wait: the schedule is re-checked against the wall clock this often. */
const MAX_SLEEP_MS = 60_000;

/** Retry of a failed token request. */
export interface RefreshBackoff {
  /** Wait before the first retry; doubles per failure. */
  readonly baseMs: number;
  /** Longest wait between retries. */
  readonly maxMs: number;
}

/** 5 s doubling to at most 5 min. */
export const DEFAULT_BACKOFF: RefreshBackoff = { baseMs: 5_000, maxMs: 300_000 };

/** Wall-clock time and waiting (tests substitute a clock they move). */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** The system clock. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: pause,
};

/** Whose token, and the kubeconfig it goes into. */
export interface PluginCredentialTarget {
  /** The host kubeconfig's path, as this process sees it. */
  readonly kubeconfig: string;
  /** API server URL written into it. */
  readonly server: string;
  /** Cluster CA written into it (absent only for a plain-http test server). */
  readonly ca?: Uint8Array;
  /** Namespace of the plugin's ServiceAccount. */
  readonly namespace: string;
  /** The plugin's ServiceAccount. */
  readonly serviceAccount: string;
  /** Requested lifetime, seconds (at least {@linkcode MIN_TOKEN_LIFETIME_SECONDS}). */
  readonly lifetimeSeconds: number;
}

/** A token in place: when it was issued and when it expires (ms since the epoch). */
export interface PluginToken {
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** What the refresher reports (metrics, tests). */
export interface CredentialStatus {
  /** Expiry of the token in place, when this process wrote one. */
  readonly expiresAt: number | undefined;
  /** Token requests failed since the last success. */
  readonly consecutiveFailures: number;
  /** Tokens written since start. */
  readonly refreshes: number;
}

/**
 * Requests a token of the plugin's ServiceAccount (the string itself: the
 * caller writes it, e.g. `galactic install` into its kubeconfig).
 */
export async function requestPluginToken(
  api: KubeApi,
  target: Omit<PluginCredentialTarget, "kubeconfig" | "server" | "ca">,
  options: { timeoutMs: number; clock?: Clock },
): Promise<PluginToken & { token: string }> {
  const clock = options.clock ?? SYSTEM_CLOCK;
  const issuedAt = clock.now();
  const issued = await api.requestToken(target.namespace, target.serviceAccount, {
    expirationSeconds: target.lifetimeSeconds,
  }, { deadline: startDeadline(options.timeoutMs) });
  const expiresAt = issued.expirationTimestamp.getTime();
  if (expiresAt <= issuedAt) {
    throw new CniError(
      ErrorCode.Kubernetes,
      `token of ServiceAccount ${target.namespace}/${target.serviceAccount} from ${api.server} ` +
        `expired on arrival (expirationTimestamp ${issued.expirationTimestamp.toISOString()}; ` +
        "is this node's clock right?)",
    );
  }
  return { token: issued.token, issuedAt, expiresAt };
}

/** Issues a fresh token and replaces the plugin's kubeconfig with it, atomically. */
export async function issuePluginKubeconfig(
  api: KubeApi,
  target: PluginCredentialTarget,
  options: { timeoutMs: number; clock?: Clock },
): Promise<PluginToken> {
  const { token, issuedAt, expiresAt } = await requestPluginToken(api, target, options);
  await writeFileAtomic(
    target.kubeconfig,
    new TextEncoder().encode(renderKubeconfig(target.server, target.ca, token)),
    0o600,
  );
  return { issuedAt, expiresAt };
}

/** When to refresh `current`, ms since the epoch (`random` in [0, 1)). */
export function refreshAt(current: PluginToken, random: number): number {
  const lifetime = current.expiresAt - current.issuedAt;
  return current.expiresAt - lifetime * REFRESH_WHEN_LEFT - lifetime * REFRESH_JITTER * random;
}

/** Wait before retry number `failures` (1: the first), jittered to 50–100 %. */
export function retryDelayMs(backoff: RefreshBackoff, failures: number, random: number): number {
  const ceiling = Math.min(backoff.maxMs, backoff.baseMs * 2 ** (failures - 1));
  return ceiling / 2 + (ceiling / 2) * random;
}

/** A running refresher. */
export interface CredentialRefresher {
  /** Its state now. */
  status(): CredentialStatus;
  /** Stops it (waits for a request in flight). */
  stop(): Promise<void>;
}

/** Options of {@linkcode startCredentialRefresher}. */
export interface RefresherOptions {
  readonly log: Logger;
  /** Budget of one token request. */
  readonly timeoutMs: number;
  /** The token already in place, if this process wrote one (else it issues one at once). */
  readonly current?: PluginToken;
  /** Failures before `current` was written (the agent's start). */
  readonly failures?: number;
  readonly backoff?: RefreshBackoff;
  readonly clock?: Clock;
  /** Uniform in [0, 1); default `Math.random`. */
  readonly random?: () => number;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Keeps the plugin's kubeconfig fresh until stopped: sleeps until the
 * refresh time of the token in place, issues a new one and writes it; a
 * failure is logged (what failed, when the token in place expires, when it
 * retries) and retried with backoff while the old token stays in place.
 */
export function startCredentialRefresher(
  api: KubeApi,
  target: PluginCredentialTarget,
  options: RefresherOptions,
): CredentialRefresher {
  const clock = options.clock ?? SYSTEM_CLOCK;
  const random = options.random ?? Math.random;
  const backoff = options.backoff ?? DEFAULT_BACKOFF;
  const { log } = options;
  const stopping = new AbortController();
  let current = options.current;
  let failures = options.failures ?? 0;
  let refreshes = 0;
  let retryDue = failures > 0 ? clock.now() + retryDelayMs(backoff, failures, random()) : 0;

  const nextAttempt = (): number =>
    failures > 0 ? retryDue : current === undefined ? clock.now() : refreshAt(current, random());

  const loop = (async () => {
    while (!stopping.signal.aborted) {
      const due = nextAttempt();
      // Short sleeps, re-checked against the wall clock (a suspended host wakes late).
      while (!stopping.signal.aborted && clock.now() < due) {
        await clock.sleep(Math.min(due - clock.now(), MAX_SLEEP_MS), stopping.signal);
      }
      if (stopping.signal.aborted) return;
      try {
        current = await issuePluginKubeconfig(api, target, { timeoutMs: options.timeoutMs, clock });
        failures = 0;
        refreshes++;
        log.info("plugin token refreshed", {
          kubeconfig: target.kubeconfig,
          expires: iso(current.expiresAt),
          refreshBy: iso(refreshAt(current, 0)),
        });
      } catch (error) {
        failures++;
        const delay = retryDelayMs(backoff, failures, random());
        retryDue = clock.now() + delay;
        const left = current === undefined ? undefined : current.expiresAt - clock.now();
        const fields = {
          kubeconfig: target.kubeconfig,
          error: (error as Error).message,
          failures,
          retryInSeconds: Math.round(delay / 1000),
          ...(current !== undefined && { expires: iso(current.expiresAt) }),
        };
        if (left !== undefined && left <= 0) {
          log.error("plugin token refresh failed and the token in place has expired", fields);
        } else {
          log.warn(
            "plugin token refresh failed; the token in place stays until it expires",
            fields,
          );
        }
      }
    }
  })();

  return {
    status: () => ({ expiresAt: current?.expiresAt, consecutiveFailures: failures, refreshes }),
    async stop(): Promise<void> {
      stopping.abort();
      await loop;
    },
  };
}
