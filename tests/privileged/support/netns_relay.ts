/**
 * Relay run inside a "node" netns by the privileged suites: listens on
 * 127.0.0.1:PORT of that netns and forwards every connection to a unix
 * socket (which, unlike TCP, crosses network namespaces), where the test
 * process relays it on to the fake API server. Prints one line once
 * listening; exits on SIGTERM.
 *
 *     ip netns exec NS deno run --allow-net --allow-read --allow-write \
 *       netns_relay.ts --port 6443 --socket /tmp/…/api.sock
 *
 * @module
 */

function argument(flag: string): string {
  const index = Deno.args.indexOf(flag);
  const value = index >= 0 ? Deno.args[index + 1] : undefined;
  if (value === undefined) throw new Error(`missing ${flag}`);
  return value;
}

const port = Number(argument("--port"));
const socket = argument("--socket");
const listener = Deno.listen({ hostname: "127.0.0.1", port });
const open = new Set<Deno.Conn>();

function closeQuietly(conn: Deno.Conn): void {
  open.delete(conn);
  try {
    conn.close();
  } catch { /* already closed */ }
}

async function relay(client: Deno.Conn): Promise<void> {
  let upstream: Deno.Conn;
  try {
    upstream = await Deno.connect({ transport: "unix", path: socket });
  } catch {
    closeQuietly(client);
    return;
  }
  open.add(upstream);
  await Promise.allSettled([
    client.readable.pipeTo(upstream.writable),
    upstream.readable.pipeTo(client.writable),
  ]);
  closeQuietly(client);
  closeQuietly(upstream);
}

Deno.addSignalListener("SIGTERM", () => {
  listener.close();
  for (const conn of [...open]) closeQuietly(conn);
  Deno.exit(0);
});

console.log(`relay listening on 127.0.0.1:${port} -> ${socket}`);
for await (const client of listener) {
  open.add(client);
  relay(client);
}
