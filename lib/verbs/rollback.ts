/**
 * Undo steps of a failing ADD, run newest first. Each undo is registered
 * *before* its step runs: a step can fail halfway (a create the kernel or the
 * API accepted before a timeout), and its undo must still run. A failing undo
 * is logged and the others still run: the goal is to leave nothing
 * half-configured, and the error the runtime sees stays the one that made ADD
 * fail.
 *
 * @module
 */

import type { Logger } from "../log/logger.ts";

/** A stack of undo steps. */
export class Rollback {
  readonly #steps: { what: string; undo: () => Promise<void> }[] = [];
  readonly #log: Logger;

  constructor(log: Logger) {
    this.#log = log;
  }

  /**
   * Registers the undo of the step about to run. It runs whether the step
   * succeeded, failed halfway or never started, so it removes only what the
   * step reports having made, and treats "already gone" as done.
   */
  push(what: string, undo: () => Promise<void>): void {
    this.#steps.push({ what, undo });
  }

  /** Runs every undo, newest first. */
  async run(): Promise<void> {
    for (const step of this.#steps.reverse()) {
      try {
        await step.undo();
        this.#log.info("rolled back", { step: step.what });
      } catch (error) {
        this.#log.error("rollback step failed", {
          step: step.what,
          error: (error as Error).message,
        });
      }
    }
    this.#steps.length = 0;
  }
}
