/**
 * The CNI verbs, each written as SPEC §5's ordered steps; the dispatcher
 * (lib/plugin) imports this module only for verbs other than VERSION, and
 * each verb's module is loaded only when that verb runs (a DEL never
 * compiles ADD's or GC's code: every module loaded costs each invocation).
 *
 * @module
 */

import type { Verbs } from "./host.ts";

export type { Host, VerbContext, Verbs } from "./host.ts";

export const VERBS: Verbs = {
  add: async (context, host) => await (await import("./add.ts")).cmdAdd(context, host),
  del: async (context, host) => await (await import("./del.ts")).cmdDel(context, host),
  check: async (context, host) => await (await import("./check.ts")).cmdCheck(context, host),
  gc: async (context, host) => await (await import("./gc.ts")).cmdGc(context, host),
  status: async (context, host) => await (await import("./status.ts")).cmdStatus(context, host),
};
