/**
 * Trusting only the kubeconfig's CA, as client-go does. `Deno.createHttpClient`
 * adds `caCerts` to the process's root store instead of replacing it, and
 * that store (Mozilla's roots by default) is built once per process, at its
 * first HTTP client, from `DENO_TLS_CA_STORE`: a comma-separated list of
 * stores in which an empty value names none (Deno's `get_root_cert_store`
 * drops empty entries), so the store is empty and `caCerts` alone are
 * trusted. A certificate for the server's name from any other CA — a public
 * one included — is then refused.
 *
 * So the first client of a process decides for the whole process: with a CA
 * it is created with `DENO_TLS_CA_STORE` set empty (and the variable is put
 * back at once, so child processes see the operator's value); without one
 * the default roots stay. A later client with a CA in a process whose roots
 * are the defaults still adds it to them (galactic's processes talk to one
 * API server, so this does not arise), and a later https client without a CA
 * in a process that trusts only a kubeconfig's CA fails its handshakes
 * (`UnknownIssuer`): it fails closed. `DENO_CERT`, an operator's explicit
 * extra CA, is still added by Deno.
 *
 * @module
 */

const STORE_VARIABLE = "DENO_TLS_CA_STORE";

/** Whether this process's first HTTP client (which fixed its root store) exists. */
let rootsFixed = false;

/** Runs `create` with `DENO_TLS_CA_STORE` empty, then restores the variable. */
function withEmptyDefaultRoots<T>(create: () => T): T {
  let saved: string | undefined;
  try {
    saved = Deno.env.get(STORE_VARIABLE);
    Deno.env.set(STORE_VARIABLE, "");
  } catch {
    return create(); // no env permission: the default roots stay (the documented limitation)
  }
  try {
    return create();
  } finally {
    if (saved === undefined) Deno.env.delete(STORE_VARIABLE);
    else Deno.env.set(STORE_VARIABLE, saved);
  }
}

/**
 * `Deno.createHttpClient(options)` for an API server, trusting only
 * `options.caCerts` when given (see the module documentation).
 */
export function createApiHttpClient(options: Deno.CreateHttpClientOptions): Deno.HttpClient {
  const first = !rootsFixed;
  rootsFixed = true;
  if (first && (options.caCerts?.length ?? 0) > 0) {
    return withEmptyDefaultRoots(() => Deno.createHttpClient(options));
  }
  return Deno.createHttpClient(options);
}
