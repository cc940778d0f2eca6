/**
 * Overall time budgets for Kubernetes API operations. One control-plane call
 * (declare, withdraw, ...) gets one deadline; every request and retry of that
 * call shares its abort signal, so the call as a whole cannot outlive it.
 *
 * The signal comes from `AbortSignal.timeout`, whose timer does not keep the
 * process alive, so a finished CNI invocation exits at once.
 *
 * @module
 */

/** A point in time after which an operation must give up. */
export interface Deadline {
  /** Total budget in milliseconds, as given to {@linkcode startDeadline}. */
  readonly budgetMs: number;
  /** `performance.now()` value at which the budget runs out. */
  readonly expiresAt: number;
  /** Aborted (with a `TimeoutError`) when the budget runs out. */
  readonly signal: AbortSignal;
}

/** Starts a deadline `budgetMs` from now. */
export function startDeadline(budgetMs: number): Deadline {
  if (!Number.isFinite(budgetMs) || budgetMs <= 0) {
    throw new RangeError(
      `deadline budget must be a positive number of milliseconds, got ${budgetMs}`,
    );
  }
  return {
    budgetMs,
    expiresAt: performance.now() + budgetMs,
    signal: AbortSignal.timeout(budgetMs),
  };
}

/** Milliseconds left before `deadline` expires (0 when it has). */
export function remainingMs(deadline: Deadline): number {
  return Math.max(0, deadline.expiresAt - performance.now());
}

/**
 * Waits `ms`, or rejects with the signal's reason as soon as `signal` aborts.
 * The timer is cleared on abort, so nothing lingers.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Waits `ms`, or less when `signal` aborts, and never rejects: the pause of a
 * loop that checks for its stop itself (the informer's backoff, the agent's
 * credential refresh, a fake server's injected delay).
 */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return sleep(ms, signal).catch(() => {});
}
