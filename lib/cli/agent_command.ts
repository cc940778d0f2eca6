/**
 * `galactic agent`: runs the node agent until SIGTERM/SIGINT.
 *
 * @module
 */

import type { Command } from "commander";
import { DEFAULTS, LOG_LEVELS } from "../config/mod.ts";
import { resolveKubeconfig, resolveNodeName } from "../kube/kubeconfig.ts";
import { createLogger, type Level } from "../log/logger.ts";
import { absolutePath, integerIn, oneOf } from "./flag_values.ts";

interface AgentFlags {
  socket: string;
  kubeconfig?: string;
  node?: string;
  timeout: number;
  logLevel: Level;
  healthPort: number;
}

/** Default port of the agent's health and metrics endpoint on 127.0.0.1. */
export const DEFAULT_HEALTH_PORT = 9765;

/** Adds the `agent` command. */
export function registerAgentCommand(program: Command): void {
  program.command("agent")
    .description(
      "run the node agent: caches the BGP configuration with watches and serves the CNI " +
        "processes over a unix socket (they fall back to their own API client without it)",
    )
    .option("--socket <path>", "unix socket to serve", absolutePath, DEFAULTS.agentSocket)
    .option("--kubeconfig <path>", "kubeconfig (default: $KUBECONFIG, the installer's, in-cluster)")
    .option(
      "--node <name>",
      "this node's name (default: $NODE_NAME, the installer's file, hostname)",
    )
    .option(
      "--timeout <seconds>",
      "budget of each API call, 1..120",
      integerIn(1, 120),
      DEFAULTS.apiTimeoutSeconds,
    )
    .option("--log-level <level>", "error, warn, info or debug", oneOf(LOG_LEVELS), "info")
    .option(
      "--health-port <port>",
      "port of /readyz, /livez and /metrics on 127.0.0.1, 0..65535 (0: any free port)",
      integerIn(0, 65535),
      DEFAULT_HEALTH_PORT,
    )
    .action(async (flags: AgentFlags) => {
      const env = Deno.env.toObject();
      const config = {
        ...(flags.kubeconfig !== undefined && { kubeconfig: flags.kubeconfig }),
        ...(flags.node !== undefined && { nodeName: flags.node }),
      };
      const source = resolveKubeconfig(config, { env });
      const node = resolveNodeName(config, { env });
      const log = createLogger({ level: flags.logLevel });
      // Last line of defence: a failure nobody awaited is logged, not fatal
      // (the agent's own loops catch theirs; this covers the libraries').
      globalThis.addEventListener("unhandledrejection", (event) => {
        event.preventDefault();
        log.error("agent: unhandled failure (still running)", {
          error: (event.reason as Error)?.message ?? String(event.reason),
        });
      });
      const { startAgent } = await import("../agent/agent.ts");
      const agent = await startAgent({
        socket: flags.socket,
        source,
        node,
        timeoutMs: flags.timeout * 1000,
        log,
        healthPort: flags.healthPort,
      });
      await new Promise<void>((resolve) => {
        for (const signal of ["SIGTERM", "SIGINT"] as const) {
          Deno.addSignalListener(signal, () => resolve());
        }
      });
      log.info("agent stopping");
      await agent.close();
    });
}
