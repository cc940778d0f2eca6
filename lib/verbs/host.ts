/**
 * What a verb is given: the parsed invocation, and everything it reaches
 * outside the process behind one small seam (commands on the host, the BGP
 * control plane, the node's name). The dispatcher (lib/plugin) builds the
 * real one; in-process tests pass the fake host's runner.
 *
 * @module
 */

import type { CniEnv } from "../cni/env.ts";
import type { Result } from "../cni/result.ts";
import type { NetworkConfig } from "../config/mod.ts";
import type { CommandRunner } from "../iproute2/runner.ts";
import type { BgpControlPlane } from "../kube/control_plane.ts";
import type { Logger } from "../log/logger.ts";

/** One parsed invocation. */
export interface VerbContext {
  readonly env: CniEnv;
  readonly config: NetworkConfig;
  /** Carries the command, container id, VPC and attachment. */
  readonly log: Logger;
}

/** Everything a verb reaches outside the process. */
export interface Host {
  /** Runs ip, sysctl, iptables and the delegate. */
  readonly runner: CommandRunner;
  /**
   * The control plane, opened on first call (a verb that never needs the API
   * never loads the client) and closed by the dispatcher after the verb.
   */
  controlPlane(): Promise<BgpControlPlane>;
  /** Resolved on call: DEL of a recorded attachment never needs it. */
  nodeName(): string;
  /**
   * Asks the node agent to finish a DEL whose SID, BGPVRFInstance, pod
   * interface and FORWARD rules are gone, its veth and VRF left
   * (`finishRemoval` in `teardown.ts`); resolves true only once the agent
   * took it. Absent, or false: the verb finishes it itself.
   */
  handOffRemoval?(removal: HandOff): Promise<boolean>;
}

/** What the node agent is asked to finish: a record it reads itself. */
export interface HandOff {
  /** The attachment's record key. */
  readonly key: string;
  /** The container whose DEL marked it `removing`. */
  readonly containerId: string;
  /** The record's node (the agent acts for its own node only). */
  readonly node: string;
}

/** What the dispatcher runs; ADD returns the result to print. */
export interface Verbs {
  add(context: VerbContext, host: Host): Promise<Result>;
  del(context: VerbContext, host: Host): Promise<void>;
  check(context: VerbContext, host: Host): Promise<void>;
  gc(context: VerbContext, host: Host): Promise<void>;
  status(context: VerbContext, host: Host): Promise<void>;
}
