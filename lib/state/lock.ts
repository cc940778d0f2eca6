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
 * Waits in the kernel (a blocking flock) until the lock on `path` is ours;
 * returns the file that holds it, or undefined once `timeoutMs` passed.
 * Never by polling: fifty plugin processes retrying every few milliseconds
 * took the CPU from the holder (on a loaded node, and above all in the
 * emulated lab, where a node-lock holder then needed over a minute for a file
 * update and waiters gave up after 300 s).
 *
 * The wait runs on a second descriptor of the same file (checked by inode):
 * while a blocking lock is in flight, every other operation on its
 * descriptor waits for it, and `opened` must stay readable to name the
 * holder. A wait that times out stays in flight until the holder lets go;
 * its descriptor is closed by then, so the lock it gets is dropped at once.
 */
async function waitForLock(
  path: string,
  opened: Deno.FsFile,
  timeoutMs: number,
): Promise<Deno.FsFile | undefined> {
  const waiter = openNoFollow(path, { read: true, write: true, what: "lock file" });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const [first, second] = await Promise.all([opened.stat(), waiter.stat()]);
    if (first.dev !== second.dev || first.ino !== second.ino) {
      throw new CniError(ErrorCode.IoFailure, `lock file ${path} was replaced while opening it`);
    }
    const timedOut = new Promise<false>((resolve) =>
      timer = setTimeout(() => resolve(false), timeoutMs)
    );
    if (await Promise.race([waiter.lock(true).then(() => true), timedOut])) return waiter;
  } catch (error) {
    waiter.close();
    throw error;
  } finally {
    clearTimeout(timer);
  }
  waiter.close();
  return undefined;
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
  // Uncontended (the common case): taken without a trip through the runtime's
  // thread pool, which costs a CNI call milliseconds per lock on a busy node.
  if (!file.tryLockSync(true)) {
    let holding: Deno.FsFile | undefined;
    try {
      holding = await waitForLock(path, file, timeoutMs);
    } catch (error) {
      file.close();
      throw error;
    }
    if (!holding) {
      const holder = await describeHolder(file);
      file.close();
      throw new CniError(
        ErrorCode.TryAgainLater,
        `timed out after ${timeoutMs / 1000} s waiting for lock ${path}, held by ${holder}`,
      );
    }
    file.close();
    file = holding;
  }
  const record: HolderRecord = {
    pid: Deno.pid,
    ...(options.holder !== undefined && { holder: options.holder }),
    since: new Date().toISOString(),
  };
  // Best effort: the record only improves a waiter's message.
  try {
    file.truncateSync(0);
    file.writeSync(encoder.encode(JSON.stringify(record)));
  } catch { /* advisory */ }
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
