/**
 * galactic: entry point. With `CNI_COMMAND` set it is a CNI plugin (one
 * invocation, JSON on stdout; bin/galactic starts lib/plugin/cni_main.ts
 * directly then); otherwise it is the operator CLI.
 *
 * @module
 */

import { cniMain } from "./lib/plugin/cni_main.ts";

if (import.meta.main) {
  if (Deno.env.get("CNI_COMMAND") !== undefined) {
    // Exit explicitly: an idle keep-alive socket of the API client must not hold the runtime.
    Deno.exit(await cniMain());
  } else {
    const { runCli } = await import("./lib/cli/cli.ts");
    Deno.exit(await runCli(Deno.args));
  }
}
