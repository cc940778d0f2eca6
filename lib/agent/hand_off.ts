/**
 * The plugin's side of a DEL handed to the node agent: one request on a
 * fresh connection, answered once the agent has queued the removal. Bounded
 * and never failing: any doubt (no agent, another state directory, a slow or
 * dying agent) answers false and the DEL removes the devices itself; if the
 * agent took it after all, whichever comes second finds the record gone
 * (both work under the attachment lock). Cheap to import.
 *
 * @module
 */

import type { HandOff } from "../verbs/host.ts";
import { type AgentResponse, onBriefConnection, readLines, writeLine } from "./protocol.ts";

/**
 * Asks the agent at `socket` to finish `removal`; true only when it answered
 * that it took it. `seconds` is the DEL's duration so far: an agent that takes
 * it counts the DEL in its metrics as done then (the plugin sends no report).
 */
export async function handOffRemoval(
  socket: string,
  removal: HandOff & { stateDir: string; seconds: number },
  options: { budgetMs: number },
): Promise<boolean> {
  return await onBriefConnection(socket, async (conn) => {
    await writeLine(conn, {
      id: 1,
      op: "finishRemoval",
      node: removal.node,
      stateDir: removal.stateDir,
      key: removal.key,
      container: removal.containerId,
      seconds: removal.seconds,
    });
    const line = await readLines(conn.readable, { maxChars: 4096 }).next();
    if (line.done) return false;
    const response = JSON.parse(line.value) as AgentResponse;
    return response.id === 1 && response.ok && response.value === true;
  }, { budgetMs: options.budgetMs, otherwise: false });
}
