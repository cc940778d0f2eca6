/**
 * The plugin's report of a finished verb to the node agent (for its
 * metrics): one line on a fresh connection to the agent's socket, no answer
 * awaited, everything bounded by a few milliseconds and every failure
 * ignored, so a missing, slow or dead agent never costs the CNI call
 * anything but that bound. Cheap to import.
 *
 * @module
 */

import { onBriefConnection, type VerbReport, writeLine } from "./protocol.ts";

/** Longest the report may take (connect and write). */
export const REPORT_BUDGET_MS = 50;

/** Sends `report` to the agent at `socket`; resolves (never rejects) within the budget. */
export async function reportVerb(
  socket: string,
  report: { verb: string; code: number; seconds: number },
): Promise<void> {
  const line: VerbReport = { id: 0, op: "report", ...report };
  await onBriefConnection(socket, (conn) => writeLine(conn, line), {
    budgetMs: REPORT_BUDGET_MS,
    otherwise: undefined,
  });
}
