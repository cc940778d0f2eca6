/**
 * The CNI verbs over the real host (loaded only for verbs other than VERSION).
 *
 * @module
 */

import type { VerbContext, Verbs } from "../cni/invocation.ts";
import { withTimeout } from "../iproute2/runner.ts";
import { cmdAdd } from "./add.ts";
import { cmdCheck } from "./check.ts";
import { cmdDel } from "./del.ts";
import { cmdGc } from "./gc.ts";
import { type Host, systemHost } from "./host.ts";
import { cmdStatus } from "./status.ts";

export type { Host } from "./host.ts";

/**
 * Binds the verbs to a host (the real one by default); its commands get the
 * configured `command_timeout_seconds` unless they carry their own deadline.
 */
export function verbsFor(host: Host = systemHost()): Verbs {
  const bounded = (context: VerbContext): Host => ({
    ...host,
    runner: withTimeout(host.runner, context.config.commandTimeoutSeconds * 1000),
  });
  return {
    add: (context) => cmdAdd(context, bounded(context)),
    del: (context) => cmdDel(context, bounded(context)),
    check: (context) => cmdCheck(context, bounded(context)),
    gc: (context) => cmdGc(context, bounded(context)),
    status: (context) => cmdStatus(context, bounded(context)),
  };
}
