/**
 * How a verb runs its steps: one at a time under a name that completes
 * "failed to …" in the error it reports, or several in one process round
 * (independent commands in parallel) without losing which one failed.
 *
 * @module
 */

import { wrap } from "../cni/errors.ts";

/** Runs `run`; its failure becomes "failed to `what`: cause", keeping the CNI code. */
export async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw wrap(`failed to ${what}`, error);
  }
}

/**
 * Runs the functions together and waits for all of them, so nothing is still
 * running when the caller rolls back; then throws the first failure in the
 * order given (each names its step, see {@linkcode step}), or returns every
 * value.
 */
export async function together<T extends readonly unknown[]>(
  ...runs: { [K in keyof T]: () => Promise<T[K]> }
): Promise<T> {
  const outcomes = await Promise.allSettled(runs.map((run) => run()));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (failed) throw failed.reason;
  return outcomes.map((o) => (o as PromiseFulfilledResult<unknown>).value) as unknown as T;
}
