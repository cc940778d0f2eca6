/**
 * Filesystem safety of the root plugin's own files (lib/state, lib/log): no
 * lock, record or log file is opened through a planted symlink, record writes
 * go through an unpredictable temporary file, a state dir others may write
 * is refused, and a corrupt record file is not quoted back.
 */

import assert from "node:assert/strict";
import { CniError } from "../../lib/cni/errors.ts";
import { createLogger } from "../../lib/log/logger.ts";
import { AttachmentStore } from "../../lib/state/attachments.ts";
import { lockFile } from "../../lib/state/lock.ts";

const SECRET = "s3cr3t-TOKEN-value";

async function withDirs(
  body: (d: { state: string; outside: string }) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "galactic-state-safety-" });
  try {
    const state = `${root}/state`;
    const outside = `${root}/outside`;
    await Deno.mkdir(state, { mode: 0o700 });
    await Deno.mkdir(outside);
    await body({ state, outside });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

function isRefusal(pattern: RegExp): (error: unknown) => boolean {
  return (error: unknown) => {
    assert.ok(error instanceof CniError, String(error));
    assert.equal(error.code, 5);
    assert.match(error.message, pattern);
    return true;
  };
}

Deno.test("a lock file planted as a symlink is refused; nothing is created or changed through it", () =>
  withDirs(async ({ state, outside }) => {
    const store = new AttachmentStore(state);
    // Dangling: following it would create the target.
    await Deno.symlink(`${outside}/created`, store.nodeLock);
    await assert.rejects(() => lockFile(store.nodeLock), isRefusal(/symbolic link/));
    await assert.rejects(() => Deno.lstat(`${outside}/created`), Deno.errors.NotFound);
    // Existing target: left alone.
    await Deno.writeTextFile(`${outside}/existing`, "keep");
    await Deno.symlink(`${outside}/existing`, store.vpcLock("b04"));
    await assert.rejects(() => lockFile(store.vpcLock("b04")), isRefusal(/symbolic link/));
    assert.equal(await Deno.readTextFile(`${outside}/existing`), "keep");
  }));

Deno.test("an attachments.json planted as a symlink is neither read nor written through", () =>
  withDirs(async ({ state, outside }) => {
    const target = `${outside}/records`;
    await Deno.writeTextFile(target, JSON.stringify({ version: 1, attachments: {} }));
    await Deno.symlink(target, `${state}/attachments.json`);
    const store = new AttachmentStore(state);
    await assert.rejects(() => store.read(), isRefusal(/symbolic link/));
    await assert.rejects(
      () => store.update((r) => void (r.x = {} as never)),
      isRefusal(/symbolic/),
    );
    assert.equal(
      await Deno.readTextFile(target),
      JSON.stringify({ version: 1, attachments: {} }),
    );
  }));

Deno.test("record writes use an unpredictable temporary file, synced and renamed", () =>
  withDirs(async ({ state, outside }) => {
    // The old, predictable name: a link there must not receive the records.
    await Deno.symlink(`${outside}/stolen`, `${state}/attachments.json.${Deno.pid}.tmp`);
    const store = new AttachmentStore(state);
    await store.update((records) => {
      records["b04.10"] = {
        network: "n",
        vpc: "0000000jU",
        attachment: "00G",
        vpcHex: "b04",
        containerId: "c1",
        ifname: "net1",
        netns: "/var/run/netns/c1",
        table: 1000,
        node: "node-a",
      };
    });
    await assert.rejects(() => Deno.lstat(`${outside}/stolen`), Deno.errors.NotFound);
    assert.deepEqual(Object.keys(await store.read()), ["b04.10"]);
    const left = [...Deno.readDirSync(state)].map((e) => e.name).filter((n) => n.endsWith(".tmp"));
    assert.deepEqual(left, [`attachments.json.${Deno.pid}.tmp`], "only the planted link");
  }));

Deno.test("a corrupt attachments.json is reported without its contents", () =>
  withDirs(async ({ state }) => {
    await Deno.writeTextFile(`${state}/attachments.json`, `{"attachments": ${SECRET}`);
    await assert.rejects(() => new AttachmentStore(state).read(), (error: Error) => {
      assert.match(error.message, /attachments\.json is corrupt \(not valid JSON/);
      assert.ok(!error.message.includes(SECRET), error.message);
      return true;
    });
  }));

Deno.test("a state dir that is a symlink is refused", () =>
  withDirs(async ({ state, outside }) => {
    await Deno.symlink(outside, `${state}/linked`);
    await assert.rejects(
      () => new AttachmentStore(`${state}/linked`).ensureDir(),
      isRefusal(/not a directory/),
    );
  }));

Deno.test({
  name: "running as root, a state dir others may write is refused",
  ignore: Deno.uid() !== 0,
  fn: () =>
    withDirs(async ({ state }) => {
      await Deno.chmod(state, 0o777);
      await assert.rejects(
        () => new AttachmentStore(state).ensureDir(),
        isRefusal(/refusing state dir .*writable by group or others \(mode 0777\)/),
      );
      await Deno.chmod(state, 0o700);
      await new AttachmentStore(state).ensureDir();
    }),
});

Deno.test("a log file planted as a symlink is not written; the logger falls back to stderr", () =>
  withDirs(async ({ state, outside }) => {
    await Deno.writeTextFile(`${outside}/victim`, "keep");
    await Deno.symlink(`${outside}/victim`, `${state}/galactic.log`);
    const lines: string[] = [];
    const log = createLogger({
      file: `${state}/galactic.log`,
      level: "debug",
      stderr: (line) => lines.push(line),
    });
    log.info("hello");
    assert.equal(await Deno.readTextFile(`${outside}/victim`), "keep");
    assert.match(lines[0] ?? "", /refusing log file .*symbolic link/);
    assert.match(lines[1] ?? "", /hello/);
  }));
