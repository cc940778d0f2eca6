/**
 * The verbs' step helpers: a failure names its step and keeps its CNI code;
 * steps run together are all settled before the first failure (in the order
 * given, not the order of failing) is thrown.
 */

import assert from "node:assert/strict";
import { CniError } from "../../lib/cni/errors.ts";
import { step, together } from "../../lib/verbs/steps.ts";

Deno.test("step: a failure reads 'failed to <step>: cause' and keeps the CNI code", async () => {
  await assert.rejects(
    step("set up VRF Gx", () => Promise.reject(new CniError(11, "API timeout"))),
    (e: unknown) =>
      e instanceof CniError && e.code === 11 &&
      e.message === "failed to set up VRF Gx: API timeout",
  );
  await assert.rejects(
    step("add rules", () => Promise.reject(new Error("iptables: bad"))),
    (e: unknown) =>
      e instanceof CniError && e.code === 100 && e.message === "failed to add rules: iptables: bad",
  );
  assert.equal(await step("read", () => Promise.resolve(7)), 7);
});

Deno.test("together: every value, in order, when all succeed", async () => {
  const [a, b] = await together(() => Promise.resolve("a"), () => Promise.resolve(2));
  assert.deepEqual([a, b], ["a", 2]);
});

Deno.test("together: waits for every step, then throws the first failure in listed order", async () => {
  let slowDone = false;
  let releaseSlow!: () => void;
  const slowGate = new Promise<void>((resolve) => releaseSlow = resolve);
  const outcome = together(
    async () => {
      await slowGate;
      slowDone = true;
      throw new Error("first listed, fails last");
    },
    () => Promise.reject(new Error("second listed, fails first")),
  );
  let settled = false;
  outcome.catch(() => {}).finally(() => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(settled, false, "still waiting for the slow step");
  releaseSlow();
  await assert.rejects(outcome, /first listed, fails last/);
  assert.equal(slowDone, true);
});
