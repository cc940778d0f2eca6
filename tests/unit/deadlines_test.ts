/**
 * The runner's and the lock's deadlines, without root: a command that forks
 * and hangs is killed with its whole process group; a lock held by another
 * process fails the wait with code 11 naming the lock and its holder; a
 * waiter sleeps in the kernel until then (fifty pollers starved the holder).
 *
 * @module
 */

import assert from "node:assert/strict";
import { CniError, ErrorCode } from "../../lib/cni/errors.ts";
import { systemRunner, withTimeout } from "../../lib/iproute2/runner.ts";
import { lockFile } from "../../lib/state/lock.ts";
import { holdLock } from "../support/lock_holder.ts";

/** Dead: gone from /proc, or a zombie waiting for its reaper. */
async function dead(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

Deno.test("a hung command is killed with its process group and fails with 11 naming it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pidFile = `${dir}/grandchild`;
    const argv = ["sh", "-c", `sleep 600 & echo $! > ${pidFile}; wait`];
    const error = await withTimeout(systemRunner(), 300).run(argv).then(
      () => assert.fail("the command returned"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof CniError);
    assert.equal(error.code, ErrorCode.TryAgainLater);
    assert.match(error.message, /^sh -c .*sleep 600.* did not finish within 300 ms; killed it$/);
    // The output pipes closed, so every process holding them has exited.
    const grandchild = Number(await Deno.readTextFile(pidFile));
    assert.ok(await dead(grandchild), `sleep ${grandchild} survived`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a command's own deadline overrides the runner's", async () => {
  const runner = withTimeout(systemRunner(), 60_000);
  const error = await runner.run(["sleep", "600"], { timeoutMs: 200 }).catch((e) => e);
  assert.ok(error instanceof CniError && error.code === ErrorCode.TryAgainLater, String(error));
  const quick = await runner.run(["sh", "-c", "echo hi"]);
  assert.deepEqual([quick.code, quick.stdout], [0, "hi\n"]);
});

Deno.test("a lock held by another process fails the wait with 11 naming the lock and its holder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/attachment-x.lock`;
    await using holder = await holdLock(path, "ADD container c-holder");
    const error = await lockFile(path, { timeoutMs: 100 }).catch((e) => e);
    assert.ok(error instanceof CniError, String(error));
    assert.equal(error.code, ErrorCode.TryAgainLater);
    assert.ok(
      error.message.includes(
        `waiting for lock ${path}, held by pid ${holder.pid} (ADD container c-holder) since `,
      ),
      error.message,
    );
    await holder.release();
    const lock = await lockFile(path, { timeoutMs: 100, holder: "test" });
    lock.release();
    assert.equal(await Deno.readTextFile(path), "", "the record goes with the lock");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** `/proc/locks` lines of flock waiters blocked in the kernel on the file with inode `ino`. */
async function blockedWaiters(ino: number): Promise<string[]> {
  const locks = await Deno.readTextFile("/proc/locks");
  return locks.split("\n").filter((line) =>
    new RegExp(`->\\s+FLOCK\\s+ADVISORY\\s+WRITE\\s+\\d+\\s+[0-9a-f]+:[0-9a-f]+:${ino}\\s`).test(
      line,
    )
  );
}

Deno.test("a waiter sleeps in the kernel's flock queue (no polling), and takes the lock when the holder ends", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/node.lock`;
    await using holder = await holdLock(path, "ADD container c-holder");
    const ino = (await Deno.stat(path)).ino!;
    const waiting = lockFile(path, { timeoutMs: 60_000, holder: "ADD container c-waiter" });
    // A polling waiter (tryLock, pause, again) never shows up as blocked.
    let blocked: string[] = [];
    for (let i = 0; i < 400 && blocked.length === 0; i++) {
      blocked = await blockedWaiters(ino);
      if (blocked.length === 0) await new Promise((resolve) => setTimeout(resolve, 25));
    }
    assert.equal(blocked.length, 1, "one waiter blocked in flock on the lock file");
    assert.match(blocked[0]!, new RegExp(`WRITE\\s+${Deno.pid}\\s`), blocked[0]!);
    await holder.release();
    const lock = await waiting;
    const record = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual([record.pid, record.holder], [Deno.pid, "ADD container c-waiter"]);
    lock.release();
    assert.deepEqual(await blockedWaiters(ino), []);
    assert.equal(await Deno.readTextFile(path), "", "the record goes with the lock");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a lock taken without contention records its holder", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/node.lock`;
    const lock = await lockFile(path, { holder: "GC container gc-1" });
    const record = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual([record.pid, record.holder], [Deno.pid, "GC container gc-1"]);
    lock.release();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
