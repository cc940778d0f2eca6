/**
 * The CNI verbs over the real host (loaded only for verbs other than VERSION).
 *
 * @module
 */

import type { Verbs } from "../cni/invocation.ts";
import { cmdAdd } from "./add.ts";
import { cmdCheck } from "./check.ts";
import { cmdDel } from "./del.ts";
import { cmdGc } from "./gc.ts";
import { type Host, systemHost } from "./host.ts";
import { cmdStatus } from "./status.ts";

export type { Host } from "./host.ts";

/** Binds the verbs to a host (the real one by default). */
export function verbsFor(host: Host = systemHost()): Verbs {
  return {
    add: (context) => cmdAdd(context, host),
    del: (context) => cmdDel(context, host),
    check: (context) => cmdCheck(context, host),
    gc: (context) => cmdGc(context, host),
    status: (context) => cmdStatus(context, host),
  };
}
