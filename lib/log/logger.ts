/**
 * Logging for a process whose stdout belongs to the CNI protocol: lines go to
 * stderr and, when configured, are appended to a log file. Never stdout. The
 * log file is never opened through a symlink (the plugin runs as root), and
 * every field value is bounded.
 *
 * @module
 */

import { truncate } from "../cni/errors.ts";
import { openNoFollow } from "../state/no_follow.ts";

/** Longest rendering of one field value. */
const MAX_FIELD = 2048;

/** Severity, least to most verbose. */
export type Level = "error" | "warn" | "info" | "debug";

const RANK: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Structured fields attached to a log line. */
export type Fields = Record<string, unknown>;

/** A logger bound to one invocation's context. */
export interface Logger {
  /** Logs at `error`. */
  error(message: string, fields?: Fields): void;
  /** Logs at `warn`. */
  warn(message: string, fields?: Fields): void;
  /** Logs at `info`. */
  info(message: string, fields?: Fields): void;
  /** Logs at `debug`. */
  debug(message: string, fields?: Fields): void;
  /** A logger that adds `fields` to every line. */
  with(fields: Fields): Logger;
}

/** Where and how much to log. */
export interface LoggerOptions {
  /** Most verbose level written to the file (and to stderr when there is no file). */
  level?: Level;
  /** File to append to; when set, stderr only gets warnings and errors. */
  file?: string;
  /** Sink for stderr lines (tests capture it). */
  stderr?: (line: string) => void;
}

const encoder = new TextEncoder();

function render(value: unknown): string {
  const text = truncate(
    String(typeof value === "string" ? value : JSON.stringify(value)),
    MAX_FIELD,
  );
  return /^[\w.:/@-]*$/.test(text) ? text : JSON.stringify(text);
}

/** Creates a logger. Failing to open the log file degrades to stderr only. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const stderr = options.stderr ?? ((line: string) => Deno.stderr.writeSync(encoder.encode(line)));
  let file: Deno.FsFile | undefined;
  if (options.file) {
    try {
      file = openNoFollow(options.file, {
        append: true,
        create: true,
        mode: 0o640,
        what: "log file",
      });
    } catch (error) {
      stderr(`galactic: cannot open log file ${options.file}: ${(error as Error).message}\n`);
    }
  }
  const stderrLevel: Level = file ? "warn" : level;

  function write(at: Level, message: string, fields: Fields): void {
    const context = Object.entries(fields).map(([k, v]) => ` ${k}=${render(v)}`).join("");
    const line = `${new Date().toISOString()} ${at.toUpperCase()} galactic: ${message}${context}\n`;
    if (file && RANK[at] <= RANK[level]) {
      try {
        file.writeSync(encoder.encode(line));
      } catch { /* a full disk must not fail the pod */ }
    }
    if (RANK[at] <= RANK[stderrLevel]) stderr(line);
  }

  function bound(base: Fields): Logger {
    return {
      error: (m, f = {}) => write("error", m, { ...base, ...f }),
      warn: (m, f = {}) => write("warn", m, { ...base, ...f }),
      info: (m, f = {}) => write("info", m, { ...base, ...f }),
      debug: (m, f = {}) => write("debug", m, { ...base, ...f }),
      with: (f) => bound({ ...base, ...f }),
    };
  }
  return bound({});
}
