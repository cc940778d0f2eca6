/**
 * STATUS (CNI 1.1): whether an ADD would work right now. Every check runs,
 * and the error names all that failed. host-device's own STATUS (and through
 * it its IPAM's) is one of them, as the spec requires of a delegating plugin.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { HOST_DEVICE } from "../delegate/host_device.ts";
import { delegateNodeVerb } from "../delegate/node_verbs.ts";
import { AttachmentStore } from "../state/attachments.ts";
import type { Host, VerbContext } from "./host.ts";

async function stateDirWritable(dir: string): Promise<void> {
  await new AttachmentStore(dir).ensureDir();
  // Created exclusively under an unpredictable name: never through a planted link.
  const probe = `${dir}/.status-${crypto.randomUUID()}`;
  (await Deno.open(probe, { write: true, createNew: true, mode: 0o600 })).close();
  await Deno.remove(probe);
}

/** STATUS of the plugin on this node. */
export async function cmdStatus(context: VerbContext, host: Host): Promise<void> {
  const { config, env } = context;
  const failures: string[] = [];
  const check = async (what: string, probe: () => Promise<unknown>): Promise<void> => {
    try {
      await probe();
    } catch (error) {
      failures.push(`${what}: ${(error as Error).message}`);
    }
  };
  await Promise.all([
    check("ip", async () => {
      const out = await host.runner.run(["ip", "-V"]);
      if (out.code !== 0) throw new Error(out.stderr.trim());
    }),
    // Found, and (when it speaks 1.1.0) its own STATUS, which asks its IPAM.
    check(HOST_DEVICE, async () => {
      const outcome = await delegateNodeVerb(host.runner, { verb: "STATUS", config, env });
      if (!outcome.ran) context.log.debug("STATUS not passed on", { why: outcome.why });
    }),
    check(`state dir ${config.stateDir}`, () => stateDirWritable(config.stateDir)),
    check("Kubernetes API", async () => (await host.controlPlane()).probe(host.nodeName())),
  ]);
  if (failures.length > 0) {
    throw new CniError(
      ErrorCode.PluginNotAvailable,
      `plugin not available: ${failures.join("; ")}`,
    );
  }
}
