import assert from "node:assert/strict";
import { serveHealth } from "../../lib/agent/health.ts";

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

Deno.test("health: /readyz follows readiness, /livez the loops' last step, others 404", async () => {
  let ready = false;
  let clock = 1_000;
  const loops = [{ lastProgress: () => 900 }, { lastProgress: () => 990 }];
  const health = serveHealth({
    port: 0,
    ready: () => ready,
    informers: loops,
    livenessWindowMs: 200,
    metrics: () => "galactic_up 1\n",
    now: () => clock,
  });
  try {
    assert.match(health.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(await get(`${health.url}/readyz`), {
      status: 503,
      body: "not ready: watch caches out of sync\n",
    });
    ready = true;
    assert.equal((await get(`${health.url}/readyz`)).status, 200);
    assert.equal((await get(`${health.url}/livez`)).status, 200);
    clock = 1_101; // the first loop's step is now 201 ms old
    assert.equal((await get(`${health.url}/livez`)).status, 503);
    assert.deepEqual(await get(`${health.url}/metrics`), { status: 200, body: "galactic_up 1\n" });
    assert.equal((await get(`${health.url}/other`)).status, 404);
  } finally {
    await health.close();
  }
});
