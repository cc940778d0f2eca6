import assert from "node:assert/strict";
import { ErrorCode } from "../../lib/cni/errors.ts";
import { BGP_VRF_INSTANCES } from "../../lib/kube/api.ts";
import {
  classifyFailure,
  describeCause,
  failureToError,
  isTransient,
  parseRetryAfter,
} from "../../lib/kube/api_errors.ts";

const live = new AbortController().signal;

/** Shaped like client-node's ApiException. */
function apiException(code: number, body: unknown, headers: Record<string, string> = {}): Error {
  return Object.assign(new Error(`HTTP-Code: ${code}`), { code, body, headers });
}

function socketError(code: string, message: string): TypeError {
  return new TypeError("fetch failed", { cause: Object.assign(new Error(message), { code }) });
}

Deno.test("api errors: Retry-After as seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
  assert.equal(parseRetryAfter("soon"), undefined);
  assert.equal(parseRetryAfter(undefined), undefined);
});

Deno.test("api errors: HTTP answers keep status, reason, message and Retry-After", () => {
  const status = JSON.stringify({
    kind: "Status",
    reason: "TooManyRequests",
    message: "slow down",
    code: 429,
  });
  assert.deepEqual(classifyFailure(apiException(429, status, { "retry-after": "2" }), live), {
    kind: "http",
    status: 429,
    reason: "TooManyRequests",
    message: "slow down",
    retryAfterMs: 2000,
  });
  assert.deepEqual(classifyFailure(apiException(502, "<html>bad gateway</html>"), live), {
    kind: "http",
    status: 502,
    message: "<html>bad gateway</html>",
  });
  assert.deepEqual(classifyFailure(apiException(401, undefined), live), {
    kind: "http",
    status: 401,
  });
});

Deno.test("api errors: transient and permanent connection failures, deadline first", () => {
  const refused = classifyFailure(
    socketError("ECONNREFUSED", "connect ECONNREFUSED 10.0.0.1:6443"),
    live,
  );
  assert.deepEqual(refused, {
    kind: "network",
    message: "fetch failed: connect ECONNREFUSED 10.0.0.1:6443",
    transient: true,
  });
  const badCert = classifyFailure(
    socketError("DEPTH_ZERO_SELF_SIGNED_CERT", "self-signed certificate"),
    live,
  );
  assert.equal(badCert.kind === "network" && badCert.transient, false);
  assert.equal(classifyFailure(new TypeError("terminated"), live).kind, "network");
  assert.equal(classifyFailure(new Error("HTTP protocol is not allowed"), live).kind, "other");
  assert.deepEqual(classifyFailure(socketError("ECONNRESET", "reset"), AbortSignal.abort()), {
    kind: "timeout",
  });
});

Deno.test("api errors: which failures are retried", () => {
  assert.equal(isTransient({ kind: "http", status: 503 }), true);
  assert.equal(isTransient({ kind: "http", status: 429 }), true);
  assert.equal(isTransient({ kind: "http", status: 409 }), false);
  assert.equal(isTransient({ kind: "network", message: "", transient: true }), true);
  assert.equal(isTransient({ kind: "timeout" }), false);
  assert.equal(isTransient({ kind: "other", message: "" }), false);
});

Deno.test("api errors: CNI codes and messages", () => {
  const operation = {
    verb: "create",
    resource: BGP_VRF_INSTANCES,
    name: "x",
    server: "https://api:6443",
  };
  const context = { operation, attempts: 3, budgetMs: 10_000 };
  const timeout = failureToError({ kind: "timeout" }, context);
  assert.equal(timeout.code, ErrorCode.TryAgainLater);
  assert.equal(
    timeout.message,
    'Kubernetes API server https://api:6443 did not complete create bgpvrfinstances.bgp.miloapis.com "x" ' +
      "within 10s (3 attempts): deadline exceeded",
  );
  const unavailable = failureToError(
    { kind: "http", status: 503, reason: "ServiceUnavailable" },
    context,
  );
  assert.equal(unavailable.code, ErrorCode.TryAgainLater);
  assert.equal(unavailable.status, 503);
  const cert = failureToError({ kind: "network", message: "bad cert", transient: false }, context);
  assert.equal(cert.code, ErrorCode.Kubernetes);
  const conflict = failureToError({ kind: "http", status: 409, reason: "AlreadyExists" }, context);
  assert.equal(conflict.reason, "AlreadyExists");
  const teapot = failureToError({ kind: "http", status: 418, message: "no" }, context);
  assert.equal(
    teapot.message,
    'create bgpvrfinstances.bgp.miloapis.com "x" on https://api:6443 failed with HTTP 418: no',
  );
});

Deno.test("api errors: cause chains read as one line", () => {
  const error = new Error("outer", { cause: new Error("middle", { cause: "inner" }) });
  assert.equal(describeCause(error), "outer: middle: inner");
});
