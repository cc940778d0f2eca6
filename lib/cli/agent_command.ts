/**
 * `galactic agent`: runs the node agent until SIGTERM/SIGINT.
 *
 * @module
 */

import type { Command } from "commander";
import { DEFAULTS, LOG_LEVELS } from "../config/mod.ts";
import { resolveKubeconfig, resolveNodeName } from "../kube/kubeconfig.ts";
import { systemRunner, withTimeout } from "../iproute2/runner.ts";
import { createLogger, type Level, type Logger } from "../log/logger.ts";
import type { Reclaimed } from "../verbs/reclaim.ts";
import { reclaimNode } from "./gc_command.ts";
import {
  DEFAULT_TOKEN_LIFETIME_SECONDS,
  MIN_TOKEN_LIFETIME_SECONDS,
} from "../agent/plugin_credentials.ts";
import { GALACTIC_NAMESPACE, PLUGIN_SERVICE_ACCOUNT } from "../kube/agent_rbac.ts";
import type { KubeconfigSource } from "../kube/kubeconfig.ts";
import {
  absolutePath,
  integerIn,
  oneOf,
  type ServiceAccountRef,
  serviceAccountRef,
} from "./flag_values.ts";

interface AgentFlags {
  socket: string;
  stateDir: string;
  cniPath?: string;
  reclaimInterval: number;
  removalSweepInterval: number;
  kubeconfig?: string;
  node?: string;
  timeout: number;
  logLevel: Level;
  healthPort: number;
  pluginKubeconfig?: string;
  pluginServiceAccount: ServiceAccountRef;
  pluginTokenLifetime: number;
  pluginCa?: string;
}

/** The plugin's ServiceAccount by default (`manifests/serviceaccounts.yaml`). */
export const DEFAULT_PLUGIN_SERVICE_ACCOUNT = `${GALACTIC_NAMESPACE}/${PLUGIN_SERVICE_ACCOUNT}`;

/** The CA for the plugin's kubeconfig: `--plugin-ca`, else the in-cluster one. */
async function pluginCa(
  flags: AgentFlags,
  source: KubeconfigSource,
): Promise<Uint8Array | undefined> {
  const path = flags.pluginCa ?? (source.kind === "in-cluster" ? source.caFile : undefined);
  return path === undefined ? undefined : await Deno.readFile(path);
}

/** Default port of the agent's health and metrics endpoint on 127.0.0.1. */
export const DEFAULT_HEALTH_PORT = 9765;

/**
 * Runs `round` every `intervalMs` (never two at once; the first after one
 * interval) until stopped; a failed round is logged and the next one runs.
 */
export function reclaimPeriodically(
  intervalMs: number,
  round: () => Promise<Reclaimed[]>,
  log: Logger,
): { stop(): Promise<void> } {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> = Promise.resolve();
  let stopped = intervalMs <= 0;
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = round().then(
        (reclaimed) => {
          if (reclaimed.length > 0) log.info("reclaim round", { attachments: reclaimed.length });
        },
        (error) => log.warn("reclaim round failed", { error: (error as Error).message }),
      ).finally(schedule);
    }, intervalMs);
  };
  schedule();
  return {
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}

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
    .option(
      "--plugin-kubeconfig <path>",
      "the plugin's host kubeconfig: issue it an expiring token (TokenRequest) at start and " +
        "refresh it before it expires (default: leave it alone)",
      absolutePath,
    )
    .option(
      "--plugin-service-account <namespace/name>",
      "the plugin's ServiceAccount, whose token goes into --plugin-kubeconfig",
      serviceAccountRef,
      serviceAccountRef(DEFAULT_PLUGIN_SERVICE_ACCOUNT),
    )
    .option(
      "--plugin-token-lifetime <seconds>",
      `lifetime requested for the plugin's token (refreshed with a third left), ${MIN_TOKEN_LIFETIME_SECONDS}..86400`,
      integerIn(MIN_TOKEN_LIFETIME_SECONDS, 86400),
      DEFAULT_TOKEN_LIFETIME_SECONDS,
    )
    .option(
      "--plugin-ca <file>",
      "cluster CA for --plugin-kubeconfig (default: the in-cluster ca.crt)",
      absolutePath,
    )
    .option("--state-dir <dir>", "the plugin's state directory", absolutePath, DEFAULTS.stateDir)
    .option("--cni-path <dirs>", "where host-device is (default: $CNI_PATH, else /opt/cni/bin)")
    .option(
      "--reclaim-interval <seconds>",
      "how often to reclaim attachments whose sandbox is gone (as `galactic gc`); 0: never",
      integerIn(0, 86400),
      300,
    )
    .option(
      "--removal-sweep-interval <seconds>",
      "how often to finish DELs whose device removal nobody finishes (the agent died, a command " +
        "failed); 0: only at start",
      integerIn(0, 86400),
      60,
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
        // DELs answer before their veth and VRF are removed: the agent removes them.
        removals: {
          stateDir: flags.stateDir,
          runner: withTimeout(systemRunner(), DEFAULTS.commandTimeoutSeconds * 1000),
          lockTimeoutMs: DEFAULTS.lockTimeoutSeconds * 1000,
          sweepIntervalMs: flags.removalSweepInterval * 1000,
        },
        ...(flags.pluginKubeconfig !== undefined && {
          pluginCredentials: {
            kubeconfig: flags.pluginKubeconfig,
            namespace: flags.pluginServiceAccount.namespace,
            serviceAccount: flags.pluginServiceAccount.name,
            lifetimeSeconds: flags.pluginTokenLifetime,
            ...(source.kind === "in-cluster" && { server: source.server }),
            ca: await pluginCa(flags, source),
          },
        }),
      });
      const reclaim = reclaimPeriodically(flags.reclaimInterval * 1000, () =>
        reclaimNode({
          stateDir: flags.stateDir,
          cniPath: (flags.cniPath ?? env.CNI_PATH ?? "/opt/cni/bin").split(":"),
          ...config,
          apiTimeoutSeconds: flags.timeout,
          runner: systemRunner(),
          env,
          log: log.with({ task: "reclaim" }),
        }).then((reclaimed) => {
          agent.metrics.reclaimedAttachments(reclaimed.length);
          return reclaimed;
        }), log);
      await new Promise<void>((resolve) => {
        for (const signal of ["SIGTERM", "SIGINT"] as const) {
          Deno.addSignalListener(signal, () => resolve());
        }
      });
      log.info("agent stopping");
      await reclaim.stop();
      await agent.close();
    });
}
