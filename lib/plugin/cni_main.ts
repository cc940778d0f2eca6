/**
 * The process entry of a CNI invocation: stdin, env and the one stdout
 * document around {@linkcode runInvocation}. main.ts dispatches here when
 * `CNI_COMMAND` is set; bin/galactic starts this module directly then,
 * because `deno run` reads every module its entry can reach — dynamic
 * imports included — before running anything, and main.ts also reaches the
 * CLI, the agent, install and migrate (issue 17: start-up is the largest
 * share of an ADD).
 *
 * @module
 */

import { runInvocation } from "./invocation.ts";

const encoder = new TextEncoder();

function writeAll(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  const bytes = encoder.encode(text);
  for (let written = 0; written < bytes.length;) {
    written += stream.writeSync(bytes.subarray(written));
  }
}

/** Runs one CNI invocation and returns its exit code. */
export async function cniMain(): Promise<number> {
  // Stdout belongs to the protocol: whatever a library prints goes to stderr.
  console.log =
    console.info =
    console.debug =
    console.warn =
      console.error;
  return await runInvocation({
    env: Deno.env.toObject(),
    readStdin: async () => new Uint8Array(await new Response(Deno.stdin.readable).arrayBuffer()),
    writeStdout: (text) => writeAll(Deno.stdout, text),
    writeStderr: (text) => writeAll(Deno.stderr, text),
  });
}

if (import.meta.main) {
  // Exit explicitly: an idle keep-alive socket of the API client must not hold the runtime.
  Deno.exit(await cniMain());
}
