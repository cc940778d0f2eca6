/**
 * `ip -batch -`: many iproute2 commands for the price of one process.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { CommandRunner } from "./runner.ts";

/** How to run a batch. */
export interface BatchOptions {
  /** Global options placed before `-batch`, e.g. `["-json"]`. */
  readonly flags?: readonly string[];
  /**
   * Keep going after a failing line (`-force`); failures whose message
   * matches one of these patterns are expected (e.g. "already gone" on DEL).
   */
  readonly tolerate?: readonly RegExp[];
}

/** A failed batch, with the 1-based number of the line iproute2 stopped at (when it said). */
export class BatchError extends CniError {
  /** The failing line's number, 1-based. */
  readonly line: number | undefined;

  /** Builds the error for a batch that failed at `line`. */
  constructor(message: string, line: number | undefined) {
    super(ErrorCode.DataPlane, message);
    this.name = "BatchError";
    this.line = line;
  }
}

/** Lines of iproute2's stderr that only say "the line above failed". */
const NOISE = /^(Command failed -:\d+|Flush terminated)$/;

/**
 * Runs `lines` in one `ip` process and returns stdout. Without `tolerate` the
 * batch stops at the first failing line and that failure is thrown.
 */
export async function ipBatch(
  runner: CommandRunner,
  lines: readonly string[],
  options: BatchOptions = {},
): Promise<string> {
  if (lines.length === 0) return "";
  const force = options.tolerate !== undefined;
  const argv = ["ip", ...(options.flags ?? []), ...(force ? ["-force"] : []), "-batch", "-"];
  const output = await runner.run(argv, { stdin: lines.join("\n") + "\n" });
  if (output.code === 0) return output.stdout;
  const unexpected = output.stderr.split("\n").map((line) => line.trim()).filter((line) =>
    line !== "" && !NOISE.test(line) &&
    !(options.tolerate ?? []).some((pattern) => pattern.test(line))
  );
  if (force && unexpected.length === 0) return output.stdout;
  const match = /Command failed -:(\d+)/.exec(output.stderr)?.[1];
  const line = match === undefined ? undefined : Number(match);
  const where = line === undefined ? "" : ` at "${lines[line - 1]}"`;
  throw new BatchError(
    `ip ${
      options.flags?.join(" ") ?? ""
    } -batch failed${where}: ${(unexpected.join("; ") || output.stderr.trim())}`
      .replace(/\s+/g, " "),
    line,
  );
}

/** Parses output holding one JSON document per line (`ip -json -batch`). */
export function parseJsonLines<T>(stdout: string): T[] {
  return stdout.split("\n").filter((line) => line.trim() !== "").map((line) =>
    JSON.parse(line) as T
  );
}
