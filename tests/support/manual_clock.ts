/**
 * A clock tests move by hand, shared with the fake API server's token clock:
 * `advance` moves both, so a token the refresher thinks is due for refresh is
 * exactly as old on the server, and no test waits for real time.
 *
 * @module
 */

import type { Clock } from "../../lib/agent/plugin_credentials.ts";
import type { FakeApiServer } from "./fake_api_server.ts";

interface Waiter {
  readonly at: number;
  readonly resolve: () => void;
}

/** The fake server's clock, with sleeps that end when a test advances past them. */
export class ManualClock implements Clock {
  readonly #server: FakeApiServer;
  readonly #waiters = new Set<Waiter>();

  constructor(server: FakeApiServer) {
    this.#server = server;
  }

  now(): number {
    return this.#server.tokens.now();
  }

  sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const waiter: Waiter = {
        at: this.now() + ms,
        resolve: () => {
          this.#waiters.delete(waiter);
          signal.removeEventListener("abort", waiter.resolve);
          resolve();
        },
      };
      this.#waiters.add(waiter);
      signal.addEventListener("abort", waiter.resolve, { once: true });
    });
  }

  /** Moves the server's clock (tokens age) and wakes every sleeper now due. */
  advance(ms: number): void {
    this.#server.tokens.advance(ms);
    for (const waiter of [...this.#waiters]) {
      if (this.now() >= waiter.at) waiter.resolve();
    }
  }

  /** Sleepers waiting now (a refresher between attempts has one). */
  get sleepers(): number {
    return this.#waiters.size;
  }
}

/** Waits until `condition` holds (a wait for another task, not a timing assertion). */
export async function until(
  condition: () => boolean,
  what: string,
  limitMs = 30_000,
): Promise<void> {
  const start = performance.now();
  while (!condition()) {
    if (performance.now() - start > limitMs) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
