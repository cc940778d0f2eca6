/**
 * One CNI invocation end to end: read env and stdin, dispatch the verb, print
 * exactly one JSON document (result or error) on stdout, return the exit code.
 *
 * @module
 */

import { type CniEnv, parseCniEnv } from "./env.ts";
import { CniError, ErrorCode } from "./errors.ts";
import { formatResult, type Result } from "./result.ts";
import { isSupported, LATEST_VERSION, requireVerb, SUPPORTED_VERSIONS } from "./version.ts";
import { decodeConfig, type NetworkConfig, parseNetworkConfig } from "../config/mod.ts";
import { createLogger, type Logger } from "../log/logger.ts";

/** What a verb receives. */
export interface VerbContext {
  /** Parsed environment. */
  readonly env: CniEnv;
  /** Validated configuration. */
  readonly config: NetworkConfig;
  /** Logger carrying the container id and attachment. */
  readonly log: Logger;
  /** The raw process environment (kubeconfig and node-name lookups read it). */
  readonly processEnv: Readonly<Record<string, string | undefined>>;
}

/** The verbs; loaded lazily so VERSION never pays for them. */
export interface Verbs {
  /** ADD: returns the result to print. */
  add(context: VerbContext): Promise<Result>;
  /** DEL. */
  del(context: VerbContext): Promise<void>;
  /** CHECK. */
  check(context: VerbContext): Promise<void>;
  /** GC. */
  gc(context: VerbContext): Promise<void>;
  /** STATUS. */
  status(context: VerbContext): Promise<void>;
}

/** The process's side of an invocation. */
export interface InvocationIo {
  /** Process environment. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads all of stdin. */
  readStdin(): Promise<Uint8Array>;
  /** Writes the one stdout document. */
  writeStdout(text: string): void;
  /** Stderr sink for logs. */
  writeStderr(text: string): void;
}

function versionOf(raw: Record<string, unknown> | undefined): string {
  const requested = raw?.cniVersion;
  return typeof requested === "string" && isSupported(requested) ? requested : LATEST_VERSION;
}

function errorDocument(error: unknown, cniVersion: string): Record<string, unknown> {
  if (error instanceof CniError) {
    return {
      cniVersion,
      code: error.code,
      msg: error.message,
      ...(error.details !== undefined && { details: error.details }),
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { cniVersion, code: ErrorCode.IoFailure, msg: `internal error: ${message}` };
}

/** Runs one invocation; returns the process exit code (0 success, 1 failure). */
export async function runInvocation(
  loadVerbs: () => Promise<Verbs>,
  io: InvocationIo,
): Promise<number> {
  let raw: Record<string, unknown> | undefined;
  let log: Logger = createLogger({ stderr: io.writeStderr, level: "warn" });
  try {
    const env = parseCniEnv(io.env);
    const stdin = await io.readStdin();
    if (env.command === "VERSION") {
      raw = stdin.length > 0 && new TextDecoder().decode(stdin).trim() !== ""
        ? decodeConfig(stdin)
        : undefined;
      io.writeStdout(
        JSON.stringify({ cniVersion: versionOf(raw), supportedVersions: [...SUPPORTED_VERSIONS] }),
      );
      return 0;
    }
    raw = decodeConfig(stdin);
    const config = parseNetworkConfig(raw);
    requireVerb(env.command, config.cniVersion);
    log = createLogger({
      stderr: io.writeStderr,
      level: config.logLevel,
      ...(config.logFile !== undefined && { file: config.logFile }),
    }).with({
      cmd: env.command,
      container: env.containerId,
      vpc: config.vpc.text,
      attachment: config.attachment.text,
    });
    const context: VerbContext = { env, config, log, processEnv: io.env };
    const verbs = await loadVerbs();
    const started = performance.now();
    switch (env.command) {
      case "ADD": {
        const result = await verbs.add(context);
        io.writeStdout(JSON.stringify(formatResult(result, config.cniVersion)));
        break;
      }
      case "DEL":
        await verbs.del(context);
        break;
      case "CHECK":
        await verbs.check(context);
        break;
      case "GC":
        await verbs.gc(context);
        break;
      case "STATUS":
        await verbs.status(context);
        break;
    }
    log.info("done", { ms: Math.round(performance.now() - started) });
    return 0;
  } catch (error) {
    const document = errorDocument(error, versionOf(raw));
    log.error("failed", { code: document.code, msg: document.msg });
    io.writeStdout(JSON.stringify(document));
    return 1;
  }
}
