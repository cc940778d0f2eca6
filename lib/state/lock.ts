/**
 * Exclusive file locks (flock) shared by every plugin process on the node.
 * Each CNI call is its own process, so an in-process mutex protects nothing.
 *
 * A wait is bounded: a holder that hangs (or a stopped process) must not
 * hold every later verb of the attachment, or of the node, until the runtime
 * kills it. The holder writes who it is into the lock file, so a waiter that
 * gives up can name it.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { openNoFollow } from "./no_follow.ts";

/** A held lock; release it in `finally`. */
export interface HeldLock {
  /** Releases the lock (and closes its file). */
  release(): void;
}

/** How to wait for a lock, and who takes it. */
export interface LockOptions {
  /** Longest wait in milliseconds (default {@linkcode DEFAULT_LOCK_TIMEOUT_MS}). */
  readonly timeoutMs?: number;
  /** Who takes it, for a waiter's error, e.g. `ADD container 4f2c…` (the pid is added). */
  readonly holder?: string;
}

/** Default longest wait for a lock. */
export const DEFAULT_LOCK_TIMEOUT_MS = 60_000;

/** Polling pauses while the lock is busy: short first (locks are usually held briefly). */
const FIRST_PAUSE_MS = 2;
const LONGEST_PAUSE_MS = 25;

const encoder = new TextEncoder();

/** What a holder writes into the lock file. */
interface HolderRecord {
  pid: number;
  holder?: string;
  since: string;
}

/**
 * Describes the current holder from its record in the lock file, read through
 * the descriptor already opened (never the path again: it could be swapped).
 */
async function describeHolder(file: Deno.FsFile): Promise<string> {
  let record: HolderRecord;
  try {
    await file.seek(0, Deno.SeekMode.Start);
    const buffer = new Uint8Array(1024);
    const n = await file.read(buffer);
    record = JSON.parse(new TextDecoder().decode(buffer.subarray(0, n ?? 0))) as HolderRecord;
  } catch {
    return "a holder that left no record";
  }
  if (typeof record?.pid !== "number") return "a holder that left no record";
  const who = typeof record.holder === "string" ? ` (${record.holder.slice(0, 200)})` : "";
  return `pid ${record.pid}${who} since ${String(record.since).slice(0, 40)}`;
}

/**
 * Takes an exclusive lock on `path`, creating the file; waits while another
 * process holds it, up to `options.timeoutMs`, then fails with code 11
 * naming the lock and its holder.
 */
export async function lockFile(path: string, options: LockOptions = {}): Promise<HeldLock> {
  let file: Deno.FsFile;
  try {
    // Never through a symlink: a planted one would make root create or lock a file elsewhere.
    file = openNoFollow(path, { read: true, write: true, create: true, what: "lock file" });
  } catch (error) {
    if (error instanceof CniError) throw error;
    throw new CniError(
      ErrorCode.IoFailure,
      `cannot open lock file ${path}: ${(error as Error).message}`,
    );
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let pause = FIRST_PAUSE_MS;
  while (!(await file.tryLock(true))) {
    const left = deadline - Date.now();
    if (left <= 0) {
      const holder = await describeHolder(file);
      file.close();
      throw new CniError(
        ErrorCode.TryAgainLater,
        `timed out after ${timeoutMs / 1000} s waiting for lock ${path}, held by ${holder}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
    pause = Math.min(pause * 2, LONGEST_PAUSE_MS);
  }
  const record: HolderRecord = {
    pid: Deno.pid,
    ...(options.holder !== undefined && { holder: options.holder }),
    since: new Date().toISOString(),
  };
  // Best effort: the record only improves a waiter's message.
  await file.truncate(0).then(() => file.write(encoder.encode(JSON.stringify(record)))).catch(
    () => {},
  );
  let released = false;
  return {
    release(): void {
      if (released) return;
      released = true;
      try {
        file.truncateSync(0);
      } catch { /* the record is advisory */ }
      // Closing the descriptor drops the flock.
      file.close();
    },
  };
}

/**
 * Who holds the lock on `path` right now, or undefined when nobody does (or
 * the file does not exist). Probes without waiting; a free lock is taken and
 * dropped at once.
 */
export async function currentHolder(path: string): Promise<string | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    if (await file.tryLock(true)) return undefined;
    return await describeHolder(file);
  } finally {
    file.close();
  }
}

/** Runs `body` while holding the lock on `path`. */
export async function withLock<T>(
  path: string,
  body: () => Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  const lock = await lockFile(path, options);
  try {
    return await body();
  } finally {
    lock.release();
  }
}
