/**
 * HTTP to the API server over Deno's own `fetch`: one `Deno.HttpClient` per
 * transport (so one pooled connection, TLS configured from the
 * {@linkcode Credentials}: the CA bundle, the client certificate), and the
 * bearer token on every request. Deno's fetch reports a peer that closes a
 * streaming body at once (`error reading a body from connection`), which
 * undici under Deno did not: the node agent's watches notice a dropped
 * connection without waiting for a stall timer.
 *
 * A token file (the service account's, rotated by the kubelet) is re-read at
 * most once a minute, like client-go, and at once when the server answers
 * 401: a token revoked or expired before that minute is over is replaced by
 * the file's newer one, and the request is sent once more with it. As in
 * client-go, a re-read that fails keeps the last token read (or the
 * kubeconfig's `token`, when it also gave one) in use; only a file never read
 * and nothing to fall back on fail the request.
 *
 * The server's certificate is verified against the kubeconfig's CA alone,
 * as in client-go, not Deno's default roots besides (`tls_roots.ts`).
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";
import { PLUGIN_VERSION } from "../version.ts";
import {
  checkToken,
  CredentialProblem,
  type Credentials,
  MAX_CREDENTIAL_FILE_BYTES,
  readBoundedText,
} from "./credentials.ts";
import { createApiHttpClient } from "./tls_roots.ts";

/** How long a token read from a file is used before it is read again. */
export const TOKEN_FILE_REFRESH_MS = 60_000;

/** Options of one request. */
export interface HttpRequest {
  /** HTTP method (default GET). */
  readonly method?: string;
  /** JSON body. */
  readonly body?: unknown;
  /** Aborting it ends the request and any read of its body. */
  readonly signal: AbortSignal;
}

/** An HTTP client for one API server. */
export interface HttpTransport {
  /** API server URL. */
  readonly server: string;
  /** Sends `path` (with its query) to the server; resolves once the headers arrived. */
  fetch(path: string, request: HttpRequest): Promise<Response>;
  /** Closes the pooled connections; safe to call twice. */
  close(): void;
}

/** Opens a transport; fails (CNI code 4) when the TLS material is unusable. */
export function openHttpTransport(credentials: Credentials): HttpTransport {
  const { server, auth } = credentials;
  let client: Deno.HttpClient;
  try {
    client = createApiHttpClient({
      ...(credentials.caCert !== undefined && { caCerts: [credentials.caCert] }),
      ...(credentials.clientCert !== undefined && {
        cert: credentials.clientCert.cert,
        key: credentials.clientCert.key,
      }),
    });
  } catch (error) {
    // The message of a PEM decoding failure is Deno's fixed text, but keep
    // only its class: a key must never reach a log.
    const name = error instanceof Error && /^\w{1,40}$/.test(error.name) ? error.name : "error";
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `the kubeconfig's certificate authority or client certificate/key for ${server} ` +
        `is not usable PEM (${name})`,
    );
  }
  const userAgent = `galactic/${PLUGIN_VERSION}`;
  let token = auth.kind === "token"
    ? auth.token
    : auth.kind === "tokenFile"
    ? auth.fallback
    : undefined;
  let tokenReadAt = -Infinity;
  let closed = false;

  async function bearer(fresh = false): Promise<string | undefined> {
    if (auth.kind !== "tokenFile") return token;
    if (!fresh && performance.now() - tokenReadAt < TOKEN_FILE_REFRESH_MS) return token;
    try {
      token = checkToken(
        await readBoundedText(auth.path, MAX_CREDENTIAL_FILE_BYTES),
        "token file",
      );
    } catch (error) {
      if (token !== undefined) return token;
      const problem = error instanceof CredentialProblem ? error : undefined;
      throw new CniError(
        problem?.code ?? ErrorCode.IoFailure,
        `failed to read the API token file ${show(auth.path)}: ${problem?.message ?? "error"}`,
      );
    }
    tokenReadAt = performance.now();
    return token;
  }

  return {
    server,
    async fetch(path: string, request: HttpRequest): Promise<Response> {
      const body = request.body === undefined ? undefined : JSON.stringify(request.body);
      const send = (bearerToken: string | undefined): Promise<Response> => {
        const headers = new Headers({ accept: "application/json", "user-agent": userAgent });
        if (bearerToken !== undefined) headers.set("authorization", `Bearer ${bearerToken}`);
        if (body !== undefined) headers.set("content-type", "application/json");
        return fetch(server + path, {
          method: request.method ?? "GET",
          headers,
          ...(body !== undefined && { body }),
          signal: request.signal,
          client,
          // An API server does not redirect: a 3xx is an error, and the
          // bearer token never follows a Location elsewhere.
          redirect: "manual",
        });
      };
      const used = await bearer();
      const response = await send(used);
      if (response.status !== 401 || auth.kind !== "tokenFile") return response;
      const reread = await bearer(true);
      if (reread === used) return response;
      await response.body?.cancel();
      return await send(reread);
    },
    close(): void {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
}
