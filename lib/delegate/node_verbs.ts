/**
 * GC and STATUS passed on to host-device (which passes them to its IPAM), as
 * CNI 1.1 requires of a plugin that delegates. Both verbs exist from 1.1.0
 * on; releases that stop at 1.0.0 (Debian's 1.1.1) would refuse them, so the
 * delegate's VERSION is asked first and an older one is skipped, with the
 * reason returned for the log.
 *
 * @module
 */

import type { CniEnv } from "../cni/env.ts";
import type { NetworkConfig } from "../config/mod.ts";
import type { CommandRunner } from "../iproute2/runner.ts";
import { findPlugin, HOST_DEVICE, runHostDevice } from "./host_device.ts";

/** The version GC and STATUS need. */
const GC_STATUS_VERSION = "1.1.0";

/** What happened to a delegated GC or STATUS. */
export type NodeVerbOutcome = { readonly ran: true } | {
  readonly ran: false;
  readonly why: string;
};

async function speaksGcStatus(
  runner: CommandRunner,
  call: { env: CniEnv; timeoutMs: number },
): Promise<string | undefined> {
  const plugin = await findPlugin(HOST_DEVICE, call.env.path);
  const output = await runner.run([plugin], {
    stdin: JSON.stringify({ cniVersion: GC_STATUS_VERSION }),
    env: { CNI_COMMAND: "VERSION", CNI_PATH: call.env.path.join(":") },
    clearEnv: true,
    timeoutMs: call.timeoutMs,
  });
  let versions: unknown;
  try {
    versions = (JSON.parse(output.stdout) as { supportedVersions?: unknown }).supportedVersions;
  } catch { /* not a version document */ }
  if (Array.isArray(versions) && versions.includes(GC_STATUS_VERSION)) return undefined;
  return `${HOST_DEVICE} does not speak ${GC_STATUS_VERSION} (supports ${
    Array.isArray(versions) ? versions.join(", ") : "unknown versions"
  })`;
}

function nodeConfig(
  config: Pick<NetworkConfig, "name" | "ipam">,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    cniVersion: GC_STATUS_VERSION,
    name: config.name,
    type: HOST_DEVICE,
    ...(config.ipam !== undefined && { ipam: config.ipam }),
    ...extra,
  };
}

/** Runs `verb` on host-device for the network (no attachment), if it speaks 1.1.0. */
export async function delegateNodeVerb(
  runner: CommandRunner,
  call: {
    verb: "GC" | "STATUS";
    config: Pick<NetworkConfig, "name" | "ipam" | "delegateTimeoutSeconds">;
    env: CniEnv;
    /** GC: the runtime's `cni.dev/valid-attachments`, passed on as received. */
    validAttachments?: unknown;
  },
): Promise<NodeVerbOutcome> {
  const timeoutMs = call.config.delegateTimeoutSeconds * 1000;
  const why = await speaksGcStatus(runner, { env: call.env, timeoutMs });
  if (why !== undefined) return { ran: false, why };
  const extra = call.validAttachments === undefined
    ? {}
    : { "cni.dev/valid-attachments": call.validAttachments };
  await runHostDevice(runner, {
    command: call.verb,
    env: call.env,
    config: nodeConfig(call.config, extra),
    timeoutMs,
  });
  return { ran: true };
}
