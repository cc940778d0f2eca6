/**
 * Deadlines through the process entry point: a hung delegate, a hung `ip`
 * and a lock held by another process each fail the verb with code 11, name
 * what hung, and (for ADD) leave nothing behind. Deadlines are 1 s here; the
 * assertions are about what the error names, never about how long it took.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseAttachment, parseVpc } from "../../lib/ids/mod.ts";
import { attachmentKey } from "../../lib/state/attachments.ts";
import { cni, leftovers, ok, type World, world } from "../support/cni_world.ts";
import { holdLock } from "../support/lock_holder.ts";

/** A directory whose `name` runs `hang` when `when` (a shell test) holds, else execs `real`. */
async function hangingShim(
  w: World,
  shim: { name: string; when: string; real: string },
): Promise<string> {
  const dir = `${w.dir}/shim-${shim.name}`;
  await Deno.mkdir(dir);
  // `sleep` is a child of the shell: only a kill of the process group ends both.
  const script = [
    "#!/bin/sh",
    `if ${shim.when}; then sleep 600; fi`,
    `exec ${shim.real} "$@"`,
    "",
  ].join("\n");
  await Deno.writeTextFile(`${dir}/${shim.name}`, script, { mode: 0o755 });
  return dir;
}

function message(outcome: { json: Record<string, unknown> | undefined }): string {
  return String(outcome.json?.msg ?? "");
}

Deno.test("a hung host-device is killed at delegate_timeout_seconds and the ADD rolls back", async () => {
  await using w = await world();
  const shim = await hangingShim(w, {
    name: "host-device",
    when: `[ "$CNI_COMMAND" = ADD ]`,
    real: `${w.host.cniDir}/host-device`,
  });
  const add = await cni(w, "ADD", {
    config: w.config({ delegate_timeout_seconds: 1 }),
    env: { CNI_PATH: `${shim}:${w.host.cniDir}` },
  });
  assert.equal(add.code, 1, add.stdout);
  assert.equal(add.json?.code, 11, add.stdout);
  assert.match(message(add), /host-device ADD failed: .*host-device did not finish within 1 s/);
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("a hung ip is killed at command_timeout_seconds and the ADD rolls back", async () => {
  await using w = await world();
  const shim = await hangingShim(w, {
    name: "ip",
    when: `case "$*" in *seg6local*) true ;; *) false ;; esac`,
    real: `${w.host.binDir}/ip`,
  });
  // Every other command gets the same deadline: 3 s, as the fake programs are
  // Deno processes, and this ADD loads the API client beside its sysctls.
  const add = await cni(w, "ADD", {
    config: w.config({ command_timeout_seconds: 3 }),
    env: { PATH: `${shim}:${w.host.env.PATH}` },
  });
  assert.equal(add.code, 1, add.stdout);
  assert.equal(add.json?.code, 11, add.stdout);
  assert.match(
    message(add),
    /failed to install SRv6 ingress route .*: ip -6 route replace .* did not finish within 3 s/,
  );
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("an attachment lock held by another process fails the ADD with 11 naming lock and holder", async () => {
  await using w = await world();
  const config = w.config({ lock_timeout_seconds: 1 });
  const key = attachmentKey({ vpc: parseVpc("jU"), attachment: parseAttachment("G") });
  const path = `${w.dir}/state/attachment-${key}.lock`;
  await Deno.mkdir(`${w.dir}/state`, { recursive: true });
  await using holder = await holdLock(path, "DEL container c-old");
  const add = await cni(w, "ADD", { config });
  assert.equal(add.code, 1, add.stdout);
  assert.equal(add.json?.code, 11, add.stdout);
  assert.ok(
    message(add).includes(
      `waiting for lock ${path}, held by pid ${holder.pid} (DEL container c-old)`,
    ),
    message(add),
  );
  assert.deepEqual(await leftovers(w), []);

  await holder.release();
  ok(await cni(w, "ADD", { config }), "ADD once the lock is free");
});
