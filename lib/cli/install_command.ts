/**
 * `galactic install`: the CLI face of {@linkcode installPlugin}, run by the
 * DaemonSet's init container (see `manifests/daemonset.yaml` and
 * `docs/deployment.md`).
 *
 * @module
 */

import { join } from "node:path";
import { type Command, Option } from "commander";
import {
  DEFAULT_TOKEN_LIFETIME_SECONDS,
  MIN_TOKEN_LIFETIME_SECONDS,
  requestPluginToken,
} from "../agent/plugin_credentials.ts";
import { DEFAULTS } from "../config/mod.ts";
import {
  DEFAULT_CNI_BIN_DIR,
  DEFAULT_CONFIG_DIR,
  DEFAULT_SERVICE_ACCOUNT_DIR,
  formatInstallReport,
  InstallError,
  installPlugin,
} from "../install/mod.ts";
import { DEFAULT_PLUGIN_SERVICE_ACCOUNT } from "./agent_command.ts";
import { integerIn, type ServiceAccountRef, serviceAccountRef } from "./flag_values.ts";

/** Parsed options of `galactic install`. */
interface InstallCommandOptions {
  cniBinDir: string;
  configDir: string;
  nodeName: string;
  serviceAccountDir: string;
  server?: string;
  source?: string;
  delegate: string[];
  replaceDelegates: boolean;
  pluginServiceAccount: ServiceAccountRef;
  pluginTokenLifetime: number;
  timeout: number;
  kubeconfig?: string;
  json?: boolean;
}

/**
 * Issues the plugin's first token through TokenRequest, authenticated as this
 * pod (the token in `--service-account-dir`, whose account may create tokens
 * of the plugin's account only).
 */
async function issueFirstToken(options: InstallCommandOptions, server: string): Promise<string> {
  const { openKubeApi } = await import("../kube/client.ts");
  const dir = options.serviceAccountDir;
  const api = await openKubeApi(
    options.kubeconfig !== undefined
      ? { kind: "file", path: options.kubeconfig, origin: "--kubeconfig" }
      : {
        kind: "in-cluster",
        server,
        tokenFile: join(dir, "token"),
        caFile: join(dir, "ca.crt"),
        origin: `the installer's service account (${dir})`,
      },
  );
  try {
    const issued = await requestPluginToken(api, {
      namespace: options.pluginServiceAccount.namespace,
      serviceAccount: options.pluginServiceAccount.name,
      lifetimeSeconds: options.pluginTokenLifetime,
    }, { timeoutMs: options.timeout * 1000 });
    return issued.token;
  } finally {
    await api.close();
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/**
 * This executable, unless it is the Deno runtime itself (`deno run main.ts
 * install` must not install the runtime as the plugin).
 */
function compiledExecutable(): string {
  const path = Deno.execPath();
  const name = path.split("/").pop() ?? path;
  if (name === "deno" || name === "deno.exe") {
    throw new InstallError(
      `this process runs under the Deno runtime (${path}), not the compiled galactic binary; ` +
        "pass --source with the path of the compiled binary",
    );
  }
  return path;
}

/** Adds the `install` subcommand to `program`. */
export function registerInstallCommand(
  program: Command,
  out: (text: string) => void = console.log,
): void {
  program
    .command("install")
    .description(
      "install the plugin binary, its kubeconfig and node name into the host's CNI directories " +
        "(the DaemonSet's init step); idempotent",
    )
    .option("--cni-bin-dir <dir>", "CNI bin dir to install the plugin into", DEFAULT_CNI_BIN_DIR)
    .option(
      "--config-dir <dir>",
      "directory for the plugin's kubeconfig and node-name files",
      DEFAULT_CONFIG_DIR,
    )
    .addOption(
      new Option("--node-name <name>", "Kubernetes name of this node")
        .env("NODE_NAME")
        .makeOptionMandatory(),
    )
    .option(
      "--service-account-dir <dir>",
      "this pod's service account mount: its token requests the plugin's token; its ca.crt " +
        "goes into the kubeconfig",
      DEFAULT_SERVICE_ACCOUNT_DIR,
    )
    .option(
      "--plugin-service-account <namespace/name>",
      "the plugin's ServiceAccount, whose expiring token goes into the kubeconfig",
      serviceAccountRef,
      serviceAccountRef(DEFAULT_PLUGIN_SERVICE_ACCOUNT),
    )
    .option(
      "--plugin-token-lifetime <seconds>",
      `lifetime requested for that token (the agent refreshes it), ${MIN_TOKEN_LIFETIME_SECONDS}..86400`,
      integerIn(MIN_TOKEN_LIFETIME_SECONDS, 86400),
      DEFAULT_TOKEN_LIFETIME_SECONDS,
    )
    .option(
      "--kubeconfig <path>",
      "kubeconfig to request that token with (default: this pod's service account)",
    )
    .option(
      "--timeout <seconds>",
      "budget of the token request, 1..120",
      integerIn(1, 120),
      DEFAULTS.apiTimeoutSeconds,
    )
    .option(
      "--server <url>",
      "API server URL for the kubeconfig (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)",
    )
    .option("--source <path>", "executable to install (default: this executable)")
    .option(
      "--delegate <path>",
      "delegate plugin to copy into the CNI bin dir when the host lacks it (repeatable)",
      collect,
      [],
    )
    .option(
      "--replace-delegates",
      "replace delegates the host already has with different content",
      false,
    )
    .option("--json", "machine-readable report")
    .action(async (_options: unknown, command: Command): Promise<void> => {
      // Failures throw (InstallError names the path or value); the CLI runner
      // prints them and exits non-zero.
      const options = command.opts<InstallCommandOptions>();
      const report = await installPlugin({
        source: options.source ?? compiledExecutable(),
        cniBinDir: options.cniBinDir,
        configDir: options.configDir,
        nodeName: options.nodeName,
        serviceAccountDir: options.serviceAccountDir,
        pluginToken: (server) => issueFirstToken(options, server),
        delegates: options.delegate,
        replaceDelegates: options.replaceDelegates,
        ...(options.server !== undefined && { server: options.server }),
      });
      out(options.json ? JSON.stringify(report, null, 2) : formatInstallReport(report));
    });
}
