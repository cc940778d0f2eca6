/**
 * Entry point of the fake programs' shims (`bin/ip`, `bin/sysctl`,
 * `bin/iptables`, `bin/ip6tables`, `cni/host-device`, `cni/static`):
 * `fake_command.ts <program> [args...]`. The state file comes from
 * `FAKE_HOST_STATE`, the log from `FAKE_HOST_LOG`. A crash armed with
 * `armKill` (store.ts) kills the caller here.
 *
 * @module
 */

import { FAKE_DELEGATES, FAKE_PROGRAMS, markRunning, runCommand, takeKillTurn } from "./store.ts";

async function writeAll(
  stream: { write(p: Uint8Array): Promise<number> },
  text: string,
): Promise<void> {
  let bytes = new TextEncoder().encode(text);
  while (bytes.length > 0) bytes = bytes.subarray(await stream.write(bytes));
}

async function main(): Promise<number> {
  const [name = "", ...args] = Deno.args;
  const state = Deno.env.get("FAKE_HOST_STATE");
  if (!state) {
    await writeAll(
      Deno.stderr,
      `fake ${name}: FAKE_HOST_STATE is not set (see tests/support/fake_host/mod.ts)\n`,
    );
    return 1;
  }
  await using _running = await markRunning(state);
  const delegate = (FAKE_DELEGATES as readonly string[]).includes(name);
  if (!delegate && !FAKE_PROGRAMS.includes(name)) {
    await writeAll(Deno.stderr, `fake host: unknown program ${name}\n`);
    return 127;
  }
  const readsStdin = delegate ||
    (name === "ip" && args.some((a) => a === "-batch" || a === "-b" || a === "--batch"));
  const stdin = readsStdin ? await new Response(Deno.stdin.readable).text() : undefined;
  const log = Deno.env.get("FAKE_HOST_LOG");
  const result = await runCommand(
    { state, ...(log && { log }) },
    [name, ...args],
    { ...(stdin !== undefined && { stdin }), ...(delegate && { env: Deno.env.toObject() }) },
  );
  if (await takeKillTurn(state)) {
    // The armed crash: the plugin dies with this command done but unanswered.
    Deno.kill(Deno.ppid, "SIGKILL");
    return 0;
  }
  await writeAll(Deno.stdout, result.stdout);
  await writeAll(Deno.stderr, result.stderr);
  return result.code;
}

Deno.exit(await main());
