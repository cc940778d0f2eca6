/**
 * `galactic install`: the CLI face of {@linkcode installPlugin}, run by the
 * DaemonSet's init container (see `manifests/daemonset.yaml` and
 * `docs/deployment.md`).
 *
 * @module
 */

import { type Command, Option } from "commander";
import {
  DEFAULT_CNI_BIN_DIR,
  DEFAULT_CONFIG_DIR,
  DEFAULT_SERVICE_ACCOUNT_DIR,
  formatInstallReport,
  InstallError,
  installPlugin,
} from "../install/mod.ts";

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
  json?: boolean;
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
      "directory holding token and ca.crt of the plugin's ServiceAccount",
      DEFAULT_SERVICE_ACCOUNT_DIR,
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
        delegates: options.delegate,
        replaceDelegates: options.replaceDelegates,
        ...(options.server !== undefined && { server: options.server }),
      });
      out(options.json ? JSON.stringify(report, null, 2) : formatInstallReport(report));
    });
}
