/**
 * The floor of this runtime: a minimal CNI plugin on the same Deno binary and
 * flags as bin/galactic that does only what every attachment of galactic
 * needs besides its own steps — create a veth pair and hand one end to the
 * Go host-device (+ static IPAM), then undo both on DEL. The bench runs it
 * beside galactic; galactic's distance to it is what galactic itself adds.
 *
 * Config: `{host, guest, ipam}` (the veth's names and the delegate's IPAM).
 *
 * @module
 */

import { runChecked, systemRunner } from "../../lib/iproute2/runner.ts";

const runner = systemRunner();
const env = Deno.env.toObject();
// Read as galactic reads it (synchronously), so the floor is not slower for its stdin.
let text = "";
const decoder = new TextDecoder();
for (const buffer = new Uint8Array(65536);;) {
  const n = Deno.stdin.readSync(buffer);
  if (n === null) break;
  text += decoder.decode(buffer.subarray(0, n), { stream: true });
}
const config = JSON.parse(text + decoder.decode());
const delegate = JSON.stringify({
  cniVersion: config.cniVersion,
  name: config.name,
  type: "host-device",
  device: config.guest,
  ipam: config.ipam,
  ...(config.prevResult && { prevResult: config.prevResult }),
});
const hostDevice = [`${env.CNI_PATH}/host-device`];
if (env.CNI_COMMAND === "ADD") {
  await runChecked(runner, [
    "ip",
    "link",
    "add",
    config.host,
    "type",
    "veth",
    "peer",
    config.guest,
  ]);
  const result = await runChecked(runner, hostDevice, { stdin: delegate, env, clearEnv: true });
  Deno.stdout.writeSync(new TextEncoder().encode(result));
} else if (env.CNI_COMMAND === "DEL") {
  await runChecked(runner, hostDevice, { stdin: delegate, env, clearEnv: true });
  await runChecked(runner, ["ip", "link", "del", config.host]);
}
