/**
 * A real TLS listener in front of the fake API server, for the client's
 * certificate handling: a throwaway CA, a server certificate for 127.0.0.1
 * and a client certificate, generated with `openssl` at test time (nothing
 * committed), and a `node:tls` server (Deno.serve cannot ask for client
 * certificates) that relays the decrypted bytes to the fake's plain port.
 * With `requireClientCert`, a handshake without a certificate signed by the
 * CA fails: the fake then takes requests without a token as authenticated
 * (`authenticatedByTls`).
 *
 * @module
 */

import net from "node:net";
import tls from "node:tls";

/** PEM files of a throwaway PKI, in one temporary directory. */
export interface TestPki {
  readonly dir: string;
  /** CA certificate file. */
  readonly caCert: string;
  /** Server certificate and key (for 127.0.0.1 and localhost). */
  readonly serverCert: string;
  readonly serverKey: string;
  /** Client certificate (`CN=system:node:n1, O=system:nodes`) and key. */
  readonly clientCert: string;
  readonly clientKey: string;
  /** A second CA that signed nothing here (the wrong CA). */
  readonly otherCaCert: string;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  const output = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!output.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`);
  }
}

const EXTENSIONS = `[server]
subjectAltName=IP:127.0.0.1,DNS:localhost
basicConstraints=CA:FALSE
extendedKeyUsage=serverAuth
[client]
basicConstraints=CA:FALSE
extendedKeyUsage=clientAuth
`;

async function selfSignedCa(dir: string, name: string): Promise<void> {
  await openssl([
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
  ], dir);
}

async function signed(dir: string, name: string, subject: string): Promise<void> {
  await openssl([
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    subject,
  ], dir);
  await openssl([
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    "ca.crt",
    "-CAkey",
    "ca.key",
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-extfile",
    "extensions.cnf",
    "-extensions",
    name,
  ], dir);
}

/** Generates a CA, a server and a client certificate in a new temporary directory. */
export async function generateTestPki(): Promise<TestPki> {
  const dir = await Deno.makeTempDir({ prefix: "galactic-pki-" });
  await Deno.writeTextFile(`${dir}/extensions.cnf`, EXTENSIONS);
  await selfSignedCa(dir, "ca");
  await selfSignedCa(dir, "other-ca");
  await signed(dir, "server", "/CN=localhost");
  await signed(dir, "client", "/O=system:nodes/CN=system:node:n1");
  return {
    dir,
    caCert: `${dir}/ca.crt`,
    serverCert: `${dir}/server.crt`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.crt`,
    clientKey: `${dir}/client.key`,
    otherCaCert: `${dir}/other-ca.crt`,
  };
}

/** A running TLS front; dispose with `await using`. */
export interface TlsFront extends AsyncDisposable {
  /** `https://127.0.0.1:<port>`. */
  readonly url: string;
  /** Drops every relayed connection (mid-stream for a watch). */
  dropAll(): void;
}

/** Starts a TLS front relaying to `upstream` (`http://127.0.0.1:<port>`). */
export async function startTlsFront(
  pki: TestPki,
  options: { upstream: string; requireClientCert?: boolean },
): Promise<TlsFront> {
  const port = Number(new URL(options.upstream).port);
  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  const server = tls.createServer({
    cert: await Deno.readTextFile(pki.serverCert),
    key: await Deno.readTextFile(pki.serverKey),
    ca: await Deno.readTextFile(pki.caCert),
    requestCert: options.requireClientCert ?? false,
    rejectUnauthorized: options.requireClientCert ?? false,
  }, (client) => {
    track(client);
    const backend = net.connect(port, "127.0.0.1");
    track(backend);
    client.pipe(backend);
    backend.pipe(client);
    client.on("close", () => backend.destroy());
    backend.on("close", () => client.destroy());
  });
  server.on("tlsClientError", () => {});
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address() as net.AddressInfo;
  const dropAll = (): void => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `https://127.0.0.1:${address.port}`,
    dropAll,
    async [Symbol.asyncDispose](): Promise<void> {
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
