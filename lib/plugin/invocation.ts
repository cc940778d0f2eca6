/**
 * One CNI invocation end to end, the one place that wires the plugin
 * together: read env and stdin, parse the configuration, open the logger,
 * build the host (runner, control-plane session, node name), run the verb,
 * close the session, and print exactly one JSON document (result or error).
 *
 * @module
 */

import { type CniEnv, parseCniEnv } from "../cni/env.ts";
import { CniError, ErrorCode, MAX_MESSAGE, truncate } from "../cni/errors.ts";
import { formatResult } from "../cni/result.ts";
import { isSupported, LATEST_VERSION, requireVerb, SUPPORTED_VERSIONS } from "../cni/version.ts";
import {
  decodeConfig,
  loadNodeConfig,
  type NetworkConfig,
  parseNetworkConfig,
} from "../config/mod.ts";
import { type CommandRunner, systemRunner, withTimeout } from "../iproute2/runner.ts";
import { resolveNodeName } from "../kube/kubeconfig.ts";
import { createLogger, type Logger } from "../log/logger.ts";
import type { Host, VerbContext, Verbs } from "../verbs/host.ts";
import { handOffRemoval } from "../agent/hand_off.ts";
import { reportVerb } from "../agent/report.ts";
import { ControlPlaneSession, openControlPlane } from "./control_plane.ts";

/** The process's side of an invocation. */
export interface InvocationIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readStdin(): Promise<Uint8Array>;
  /** Receives the one stdout document. */
  writeStdout(text: string): void;
  /** Receives the logs. */
  writeStderr(text: string): void;
}

/** Seams for tests; the defaults are the real ones. */
export interface InvocationOptions {
  /** Runs ip, sysctl, iptables and the delegate (default: real processes). */
  readonly runner?: CommandRunner;
  /** The verbs (default: lib/verbs, imported only when the command is not VERSION). */
  readonly loadVerbs?: () => Promise<Verbs>;
}

async function loadVerbs(): Promise<Verbs> {
  return (await import("../verbs/mod.ts")).VERBS;
}

function versionOf(raw: Record<string, unknown> | undefined): string {
  const requested = raw?.cniVersion;
  return typeof requested === "string" && isSupported(requested) ? requested : LATEST_VERSION;
}

/** The error document; every message bounded (the last guard against echoing input). */
function errorDocument(error: unknown, cniVersion: string): Record<string, unknown> {
  if (error instanceof CniError) {
    return {
      cniVersion,
      code: error.code,
      msg: truncate(error.message, MAX_MESSAGE),
      ...(error.details !== undefined && { details: truncate(error.details, MAX_MESSAGE) }),
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    cniVersion,
    code: ErrorCode.IoFailure,
    msg: truncate(`internal error: ${message}`, MAX_MESSAGE),
  };
}

function invocationLogger(io: InvocationIo, env: CniEnv, config: NetworkConfig): Logger {
  return createLogger({
    stderr: io.writeStderr,
    level: config.logLevel,
    ...(config.logFile !== undefined && { file: config.logFile }),
  }).with({
    cmd: env.command,
    container: env.containerId,
    vpc: config.vpc.text,
    attachment: config.attachment.text,
  });
}

/** Runs the verb; ADD's result is the document to print. */
async function runVerb(
  verbs: Verbs,
  context: VerbContext,
  host: Host,
): Promise<Record<string, unknown> | undefined> {
  switch (context.env.command) {
    case "ADD":
      return formatResult(await verbs.add(context, host), context.config.cniVersion);
    case "DEL":
      await verbs.del(context, host);
      break;
    case "CHECK":
      await verbs.check(context, host);
      break;
    case "GC":
      await verbs.gc(context, host);
      break;
    case "STATUS":
      await verbs.status(context, host);
      break;
  }
  return undefined;
}

/** Runs one invocation; returns the process exit code (0 success, 1 failure). */
export async function runInvocation(
  io: InvocationIo,
  options: InvocationOptions = {},
): Promise<number> {
  let raw: Record<string, unknown> | undefined;
  let log: Logger = createLogger({ stderr: io.writeStderr, level: "warn" });
  let report: ((code: number) => Promise<void>) | undefined;
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
    const config = parseNetworkConfig(raw, loadNodeConfig(io.env));
    requireVerb(env.command, config.cniVersion);
    log = invocationLogger(io, env, config);
    const begun = performance.now();
    const seconds = (): number => (performance.now() - begun) / 1000;
    // The node agent's metrics: a fire-and-forget line after the verb, bounded.
    // A DEL the agent finishes reported itself with the hand-off (one
    // connection fewer at the end of the call).
    let handedOff = false;
    report = (code) =>
      handedOff && code === 0
        ? Promise.resolve()
        : reportVerb(config.agentSocket, { verb: env.command, code, seconds: seconds() });
    const verbs = await (options.loadVerbs ?? loadVerbs)();
    const session = new ControlPlaneSession(() => openControlPlane(config, { env: io.env }));
    const host: Host = {
      // Commands without their own deadline get `command_timeout_seconds`.
      runner: withTimeout(options.runner ?? systemRunner(), config.commandTimeoutSeconds * 1000),
      controlPlane: () => session.get(),
      nodeName: () => resolveNodeName(config, { env: io.env }),
      handOffRemoval: async (removal) =>
        handedOff = await handOffRemoval(config.agentSocket, {
          ...removal,
          stateDir: config.stateDir,
          seconds: seconds(),
        }, {
          // As long as any call to the agent (`openControlPlane`): a busy agent
          // answers late, and giving up early costs the DEL the removal anyway.
          budgetMs: config.apiTimeoutSeconds * 1000 + 2000,
        }),
    };
    const started = performance.now();
    let document: Record<string, unknown> | undefined;
    try {
      document = await runVerb(verbs, { env, config, log }, host);
    } finally {
      await session.close();
    }
    if (document) io.writeStdout(JSON.stringify(document));
    log.info("done", { ms: Math.round(performance.now() - started) });
    await report(0);
    return 0;
  } catch (error) {
    const document = errorDocument(error, versionOf(raw));
    log.error("failed", { code: document.code, msg: document.msg });
    io.writeStdout(JSON.stringify(document));
    await report?.(Number(document.code));
    return 1;
  }
}
