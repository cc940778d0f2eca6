/**
 * The CNI verbs, each written as SPEC §5's ordered steps; the dispatcher
 * (lib/plugin) imports this module only for verbs other than VERSION.
 *
 * @module
 */

import { cmdAdd } from "./add.ts";
import { cmdCheck } from "./check.ts";
import { cmdDel } from "./del.ts";
import { cmdGc } from "./gc.ts";
import type { Verbs } from "./host.ts";
import { cmdStatus } from "./status.ts";

export type { Host, VerbContext, Verbs } from "./host.ts";

export const VERBS: Verbs = {
  add: cmdAdd,
  del: cmdDel,
  check: cmdCheck,
  gc: cmdGc,
  status: cmdStatus,
};
