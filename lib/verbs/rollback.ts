/**
 * Undo steps of a failing ADD, run newest first. A failing undo is logged and
 * the others still run: the goal is to leave nothing half-configured, and the
 * error the runtime sees stays the one that made ADD fail.
 *
 * @module
 */

import type { Logger } from "../log/logger.ts";

/** A stack of undo steps. */
export class Rollback {
  readonly #steps: { what: string; undo: () => Promise<void> }[] = [];
  readonly #log: Logger;

  /** A stack logging to `log`. */
  constructor(log: Logger) {
    this.#log = log;
  }

  /** Registers how to undo a step that just succeeded. */
  push(what: string, undo: () => Promise<void>): void {
    this.#steps.push({ what, undo });
  }

  /** Runs every undo step, newest first. */
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
