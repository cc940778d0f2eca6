/**
 * Another process holding one of the plugin's locks (through the plugin's own
 * lock code, so it leaves the same holder record), for tests of lock waits.
 *
 * @module
 */

const LOCK_MODULE = new URL("../../lib/state/lock.ts", import.meta.url).href;

/** A lock held by a child process until `release()` (or disposal). */
export interface HeldByOther extends AsyncDisposable {
  /** The holder's pid. */
  readonly pid: number;
  /** Ends the holder (which drops the lock). */
  release(): Promise<void>;
}

/** Starts a process that takes the lock on `path` as `holder` and keeps it. */
export async function holdLock(path: string, holder: string): Promise<HeldByOther> {
  const script = `
    import { lockFile } from ${JSON.stringify(LOCK_MODULE)};
    await lockFile(${JSON.stringify(path)}, { holder: ${JSON.stringify(holder)} });
    console.log("locked");
    await new Promise(() => setInterval(() => {}, 60_000));
  `;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", "--quiet", script],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("locked")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`lock holder exited before taking ${path}`);
    seen += value;
  }
  reader.releaseLock();
  let ended = false;
  const release = async (): Promise<void> => {
    if (ended) return;
    ended = true;
    child.kill("SIGKILL");
    await child.status;
    await child.stdout.cancel().catch(() => {});
  };
  return { pid: child.pid, release, [Symbol.asyncDispose]: release };
}
