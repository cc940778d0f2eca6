import assert from "node:assert/strict";
import { ErrorCode } from "../../lib/cni/errors.ts";
import { BGP_VRF_INSTANCES } from "../../lib/kube/api.ts";
import {
  classifyFailure,
  describeCause,
  failureToError,
  HttpStatusError,
  isTransient,
  parseRetryAfter,
} from "../../lib/kube/api_errors.ts";

const live = new AbortController().signal;

function apiException(code: number, body: string, headers: Record<string, string> = {}): Error {
  return new HttpStatusError(code, body, new Headers(headers));
}

/** Shaped like what Deno's fetch throws before an answer: the cause is text only. */
function fetchFailed(message: string): TypeError {
  return new TypeError("fetch failed", { cause: new Error(message) });
}

Deno.test("api errors: Retry-After as seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4000), 6000);
  assert.equal(parseRetryAfter("soon"), undefined);
  // RFC 9110's three HTTP-date forms, all GMT.
  assert.equal(
    parseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", Date.UTC(1994, 10, 6, 8, 49, 30)),
    7000,
  );
  assert.equal(
    parseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", Date.UTC(1994, 10, 6, 8, 49, 30)),
    7000,
  );
  assert.equal(parseRetryAfter("Sun Nov  6 08:49:37 1994", Date.UTC(1994, 10, 6, 8, 49, 30)), 7000);
  // Neither delta-seconds nor an HTTP-date: ignored (Date.parse reads them as dates long past).
  for (const bogus of ["1.5", "-1", "0x10", "1e3", "in 5 minutes"]) {
    assert.equal(parseRetryAfter(bogus), undefined, bogus);
  }
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
  assert.deepEqual(classifyFailure(apiException(401, ""), live), {
    kind: "http",
    status: 401,
  });
});

Deno.test("api errors: transient and permanent connection failures, deadline first", () => {
  const refusedText = "error sending request for url (https://10.0.0.1:6443/apis): " +
    "client error (Connect): tcp connect error: Connection refused (os error 111)";
  assert.deepEqual(classifyFailure(fetchFailed(refusedText), live), {
    kind: "network",
    message: `fetch failed: ${refusedText}`,
    transient: true,
  });
  for (
    const tls of [
      "error sending request for url (https://10.0.0.1:6443/apis): client error (Connect): " +
      "invalid peer certificate: UnknownIssuer",
      "received fatal alert: CertificateRequired",
    ]
  ) {
    const failure = classifyFailure(fetchFailed(tls), live);
    assert.equal(failure.kind === "network" && failure.transient, false, tls);
  }
  // The connection died mid-body.
  const midBody = classifyFailure(new TypeError("error reading a body from connection"), live);
  assert.equal(midBody.kind === "network" && midBody.transient, true);
  assert.equal(classifyFailure(new Error("HTTP 200 answer is not JSON"), live).kind, "other");
  assert.deepEqual(classifyFailure(fetchFailed(refusedText), AbortSignal.abort()), {
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
