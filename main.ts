/**
 * galactic: entry point. With `CNI_COMMAND` set it is a CNI plugin (one
 * invocation, JSON on stdout); otherwise it is the operator CLI.
 *
 * @module
 */

import { runInvocation } from "./lib/plugin/invocation.ts";

const encoder = new TextEncoder();

function writeAll(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  const bytes = encoder.encode(text);
  for (let written = 0; written < bytes.length;) {
    written += stream.writeSync(bytes.subarray(written));
  }
}

/** Runs one CNI invocation and returns its exit code. */
async function cniMain(): Promise<number> {
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
  if (Deno.env.get("CNI_COMMAND") !== undefined) {
    // Exit explicitly: an idle keep-alive socket of the API client must not hold the runtime.
    Deno.exit(await cniMain());
  } else {
    const { runCli } = await import("./lib/cli/cli.ts");
    Deno.exit(await runCli(Deno.args));
  }
}
