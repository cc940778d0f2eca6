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

import { CniError, ErrorCode } from "../cni/errors.ts";
import { runInvocation } from "./invocation.ts";

const encoder = new TextEncoder();

function writeAll(stream: typeof Deno.stdout | typeof Deno.stderr, text: string): void {
  const bytes = encoder.encode(text);
  for (let written = 0; written < bytes.length;) {
    written += stream.writeSync(bytes.subarray(written));
  }
}

/**
 * Longest network configuration the plugin reads from stdin. A tenant's
 * NetworkAttachmentDefinition carries it; a real one is a few KiB (etcd
 * caps a whole object at 1.5 MiB).
 */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * Reads stdin to its end, at most `limit` bytes (code 7 beyond). Synchronous:
 * nothing else runs yet, and the stream reader cost a CNI call 6–17 ms here.
 */
export function readStdinSync(limit: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(64 * 1024);
  for (;;) {
    const n = Deno.stdin.readSync(buffer);
    if (n === null) break;
    total += n;
    if (total > limit) {
      throw new CniError(
        ErrorCode.InvalidConfig,
        `network configuration on stdin is larger than ${limit} bytes`,
      );
    }
    chunks.push(buffer.slice(0, n));
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
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
    readStdin: () => Promise.resolve(readStdinSync(MAX_CONFIG_BYTES)),
    writeStdout: (text) => writeAll(Deno.stdout, text),
    writeStderr: (text) => writeAll(Deno.stderr, text),
  });
}

if (import.meta.main) {
  // Exit explicitly: an idle keep-alive socket of the API client must not hold the runtime.
  Deno.exit(await cniMain());
}
