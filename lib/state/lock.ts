/**
 * Exclusive file locks (flock) shared by every plugin process on the node.
 * Each CNI call is its own process, so an in-process mutex protects nothing.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";

/** A held lock; release it in `finally`. */
export interface HeldLock {
  /** Releases the lock (and closes its file). */
  release(): void;
}

/** Takes an exclusive lock on `path`, creating the file; waits while another process holds it. */
export async function lockFile(path: string): Promise<HeldLock> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (error) {
    throw new CniError(
      ErrorCode.IoFailure,
      `cannot open lock file ${path}: ${(error as Error).message}`,
    );
  }
  await file.lock(true);
  let released = false;
  return {
    release(): void {
      if (released) return;
      released = true;
      // Closing the descriptor drops the flock.
      file.close();
    },
  };
}

/** Runs `body` while holding the lock on `path`. */
export async function withLock<T>(path: string, body: () => Promise<T>): Promise<T> {
  const lock = await lockFile(path);
  try {
    return await body();
  } finally {
    lock.release();
  }
}
