/**
 * The evidence the reclaimer acts on, against real network namespaces (as
 * `ip netns` and the runtimes make them: nsfs bind mounts under /run/netns):
 * a live namespace is never "gone"; once deleted its path is; a plain file
 * where a namespace was is "gone" only when this process has the host's
 * mounts. Needs root; any kernel.
 */

import assert from "node:assert/strict";
import { hostView, netnsGone } from "../../lib/verbs/reclaim.ts";
import { must, rootSkipReason, uniqueName } from "./support/kernel.ts";

Deno.test({
  name: "reclaim evidence: a live netns is kept, a deleted one is gone",
  ignore: rootSkipReason() !== null,
  fn: async () => {
    const name = uniqueName("grcl");
    const path = `/run/netns/${name}`;
    await must(["ip", "netns", "add", name]);
    try {
      assert.equal(await netnsGone(path), undefined, "a live namespace");
      const view = await hostView();
      assert.equal(await netnsGone(path, { ...view, hostMounts: true }), undefined, "on nsfs");
    } finally {
      await must(["ip", "netns", "del", name]);
    }
    assert.equal(await netnsGone(path), `netns ${path} no longer exists`);
  },
});
