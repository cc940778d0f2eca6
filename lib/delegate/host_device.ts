/**
 * Delegation to the standard `host-device` plugin, found through `CNI_PATH`
 * (never next to our own executable), which moves the guest veth end into the
 * pod, renames it to `CNI_IFNAME` and runs IPAM.
 *
 * @module
 */

import { CniError, ErrorCode, show, wrap } from "../cni/errors.ts";
import type { CniEnv } from "../cni/env.ts";
import { DEFAULTS } from "../config/network_config.ts";
import { compareVersions } from "../cni/version.ts";
import { parseResult, type Result } from "../cni/result.ts";
import type { NetworkConfig } from "../config/network_config.ts";
import type { CommandRunner } from "../iproute2/runner.ts";

/** The delegate's plugin type. */
export const HOST_DEVICE = "host-device";

/**
 * Version spoken to the delegate. host-device behaves the same for ADD, DEL
 * and CHECK in 1.0.0 and 1.1.0, and the widely packaged releases (e.g.
 * Debian's 1.1.1) stop at 1.0.0, so asking for more would fail the pod.
 */
export function delegateVersion(cniVersion: string): string {
  return compareVersions(cniVersion, "1.0.0") > 0 ? "1.0.0" : cniVersion;
}

/** host-device's configuration for the attachment whose guest veth end is `device`. */
export function hostDeviceConfig(
  config: Pick<NetworkConfig, "cniVersion" | "name" | "ipam" | "runtime">,
  device: string,
): Record<string, unknown> {
  return {
    cniVersion: delegateVersion(config.cniVersion),
    name: config.name,
    type: HOST_DEVICE,
    device,
    ...(config.ipam !== undefined && { ipam: config.ipam }),
    // As libcni would for a delegate declaring the `ips` capability (static
    // and host-local IPAM read it); `args` (Multus' cni-args) unchanged.
    ...(config.runtime.ips && {
      capabilities: { ips: true },
      runtimeConfig: { ips: config.runtime.ips },
    }),
    ...(config.runtime.args && { args: config.runtime.args }),
  };
}

/** Finds an executable plugin in the `CNI_PATH` directories. */
export async function findPlugin(name: string, path: readonly string[]): Promise<string> {
  // A name with a separator would reach outside CNI_PATH (libcni refuses it too).
  if (name.includes("/") || name === "." || name === "..") {
    throw new CniError(
      ErrorCode.InvalidConfig,
      `invalid plugin name ${show(name)}: not a file name`,
    );
  }
  for (const dir of path) {
    const candidate = `${dir}/${name}`;
    try {
      const info = await Deno.stat(candidate);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return candidate;
    } catch { /* not in this directory */ }
  }
  throw new CniError(
    ErrorCode.IoFailure,
    `failed to find plugin "${name}" in CNI_PATH [${path.join(":")}]`,
  );
}

export interface DelegateCall {
  /** Verb to run. */
  readonly command: "ADD" | "DEL" | "CHECK" | "GC" | "STATUS";
  /** Our own CNI environment (container id, netns, ifname, args, path). */
  readonly env: CniEnv;
  /** Delegate network configuration. */
  readonly config: Record<string, unknown>;
  /**
   * Deadline (`delegate_timeout_seconds`, default 30 s); on expiry the
   * delegate is killed and the call fails with code 11.
   */
  readonly timeoutMs?: number;
}

function cniEnvironment(call: DelegateCall): Record<string, string> {
  const env: Record<string, string> = {
    CNI_COMMAND: call.command,
    // GC and STATUS concern no container: their variables are left out.
    ...(call.env.containerId !== "" && { CNI_CONTAINERID: call.env.containerId }),
    ...(call.env.netns !== "" && { CNI_NETNS: call.env.netns }),
    ...(call.env.ifname !== "" && { CNI_IFNAME: call.env.ifname }),
    CNI_PATH: call.env.path.join(":"),
  };
  const args = [...call.env.args].map(([k, v]) => `${k}=${v}`).join(";");
  if (args !== "") env.CNI_ARGS = args;
  const path = Deno.env.get("PATH");
  if (path) env.PATH = path;
  return env;
}

/**
 * Runs host-device. ADD returns its result (in the internal 1.x shape); a
 * failure keeps the delegate's own code and message.
 */
export async function runHostDevice(
  runner: CommandRunner,
  call: DelegateCall,
): Promise<Result | undefined> {
  const plugin = await findPlugin(HOST_DEVICE, call.env.path);
  const output = await runner.run([plugin], {
    stdin: JSON.stringify(call.config),
    env: cniEnvironment(call),
    clearEnv: true,
    timeoutMs: call.timeoutMs ?? DEFAULTS.delegateTimeoutSeconds * 1000,
  }).catch((e) => {
    throw wrap(`${HOST_DEVICE} ${call.command} failed`, e);
  });
  const stdout = output.stdout.trim();
  let parsed: unknown;
  try {
    parsed = stdout === "" ? undefined : JSON.parse(stdout);
  } catch {
    parsed = undefined;
  }
  if (output.code !== 0) {
    const error = parsed as { code?: unknown; msg?: unknown; details?: unknown } | undefined;
    const code = typeof error?.code === "number" ? error.code : ErrorCode.Delegate;
    const msg = typeof error?.msg === "string"
      ? error.msg
      : (output.stderr.trim() || stdout || `exit ${output.code}`);
    const details = typeof error?.details === "string" && error.details !== ""
      ? `: ${error.details}`
      : "";
    throw new CniError(code, `${HOST_DEVICE} ${call.command} failed: ${msg}${details}`);
  }
  if (call.command !== "ADD") return undefined;
  if (parsed === undefined) {
    throw new CniError(
      ErrorCode.DecodeFailure,
      `${HOST_DEVICE} ADD printed no result (stdout ${JSON.stringify(stdout)})`,
    );
  }
  return parseResult(parsed, `${HOST_DEVICE} ADD result`);
}
