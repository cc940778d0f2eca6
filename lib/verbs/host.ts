/**
 * The side effects a verb may cause, behind one small interface: commands on
 * the host and the BGP control plane. Tests substitute recording fakes.
 *
 * @module
 */

import type { VerbContext } from "../cni/invocation.ts";
import type { CommandRunner } from "../iproute2/runner.ts";
import { systemRunner } from "../iproute2/runner.ts";
import type { BgpControlPlane } from "../kube/control_plane.ts";
import { resolveNodeName } from "../kube/kubeconfig.ts";

/** Everything a verb reaches outside the process. */
export interface Host {
  /** Runs ip, sysctl, iptables and delegates. */
  readonly runner: CommandRunner;
  /** Opens the control plane (loads the Kubernetes client only when called). */
  openControlPlane(context: VerbContext): Promise<BgpControlPlane>;
  /** This node's Kubernetes name. */
  nodeName(context: VerbContext): string;
}

/** The real host: `Deno.Command` and the Kubernetes API (or the node agent). */
export function systemHost(): Host {
  return {
    runner: systemRunner(),
    async openControlPlane(context: VerbContext): Promise<BgpControlPlane> {
      const { openControlPlane } = await import("../kube/mod.ts");
      return await openControlPlane(context.config, { env: context.processEnv });
    },
    nodeName(context: VerbContext): string {
      return resolveNodeName(context.config, { env: context.processEnv });
    },
  };
}

/**
 * Opens the control plane on first use and closes it once at the end, so a
 * verb that never needs the API never loads the client.
 */
export class ControlPlaneSession {
  readonly #host: Host;
  readonly #context: VerbContext;
  #plane: Promise<BgpControlPlane> | undefined;

  /** A session for one invocation. */
  constructor(host: Host, context: VerbContext) {
    this.#host = host;
    this.#context = context;
  }

  /** The control plane, opened on first call. */
  get(): Promise<BgpControlPlane> {
    this.#plane ??= this.#host.openControlPlane(this.#context);
    return this.#plane;
  }

  /** Closes it if it was opened. */
  async close(): Promise<void> {
    if (!this.#plane) return;
    await (await this.#plane.catch(() => undefined))?.close();
  }
}
