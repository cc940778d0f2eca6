/**
 * Where the plugin finds its API credentials and its node name. The runtime
 * executes the plugin on the host, not in a pod: the in-cluster env vars are
 * normally absent and kubelet does not set `NODE_NAME`, so both are resolved
 * explicitly, first match wins:
 *
 * kubeconfig:
 * 1. `kubeconfig` of the node configuration (must exist when given; see
 *    `lib/config/node_config.ts`: never the tenant's network configuration);
 * 2. env `KUBECONFIG` (a `:`-separated list: the first existing file);
 *    for operator commands only (`homeConfig`), then `$HOME/.kube/config`;
 * 3. `<configDir>/kubeconfig`, written by `galactic install` (its expiring
 *    token kept fresh by the node agent);
 * 4. the in-cluster service account (`KUBERNETES_SERVICE_HOST` and
 *    `<serviceAccountDir>/token`);
 * 5. otherwise a CNI error (code 4) listing everything tried.
 *
 * node name:
 * 1. `node_name` of the node configuration;
 * 2. env `NODE_NAME`;
 * 3. `<configDir>/node-name`, written by `galactic install`;
 * 4. the host name, lowercased (kubelet's default node name).
 *
 * The value found must be a lowercase RFC 1123 subdomain; an invalid one is
 * an error rather than a reason to try the next source.
 *
 * Nothing here reads the kubeconfig itself (`credentials.ts` does).
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";
import { isObjectName } from "../ids/mod.ts";

/** The plugin's directory beside the runtime's network configurations. */
export const DEFAULT_CONFIG_DIR = "/etc/cni/net.d/galactic.d";
/** Where a pod's service account token and CA are mounted. */
export const DEFAULT_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** Where to look, and in which environment. */
export interface ResolveOptions {
  /** Environment variables, e.g. `Deno.env.toObject()`. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory holding `kubeconfig` and `node-name`; default {@linkcode DEFAULT_CONFIG_DIR}. */
  readonly configDir?: string;
  /** Service account mount; default {@linkcode DEFAULT_SERVICE_ACCOUNT_DIR}. */
  readonly serviceAccountDir?: string;
  /** Host name lookup; default `Deno.hostname`. */
  readonly hostname?: () => string;
  /** Also try `$HOME/.kube/config` after `KUBECONFIG` (operator commands, not the plugin). */
  readonly homeConfig?: boolean;
}

/** A kubeconfig file to load. */
export interface KubeconfigFile {
  readonly kind: "file";
  /** Absolute or relative path of the file. */
  readonly path: string;
  /** Which source named it (for messages). */
  readonly origin: string;
}

/** In-cluster credentials: the service account token and CA. */
export interface InClusterConfig {
  readonly kind: "in-cluster";
  /** `https://host:port` from `KUBERNETES_SERVICE_HOST`/`_PORT`. */
  readonly server: string;
  /** Path of the bearer token file (re-read by the client when it rotates). */
  readonly tokenFile: string;
  /** Path of the CA bundle, when present. */
  readonly caFile?: string;
  /** Which source named it (for messages). */
  readonly origin: string;
}

/** Where the API credentials come from. */
export type KubeconfigSource = KubeconfigFile | InClusterConfig;

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

function join(dir: string, name: string): string {
  return dir.endsWith("/") ? `${dir}${name}` : `${dir}/${name}`;
}

/** The API server URL of the in-cluster service, IPv6 hosts in brackets. */
function inClusterServer(host: string, port: string | undefined): string {
  const hostPart = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  return `https://${hostPart}:${port || "443"}`;
}

/** Resolves the kubeconfig (see the module documentation for the order). */
export function resolveKubeconfig(
  config: { readonly kubeconfig?: string },
  options: ResolveOptions,
): KubeconfigSource {
  if (config.kubeconfig !== undefined) {
    if (!isFile(config.kubeconfig)) {
      throw new CniError(
        ErrorCode.IoFailure,
        `node configuration "kubeconfig" names no readable file (${show(config.kubeconfig)})`,
      );
    }
    return { kind: "file", path: config.kubeconfig, origin: 'node configuration "kubeconfig"' };
  }
  const tried: string[] = ['node configuration "kubeconfig" (unset)'];

  const fromEnv = options.env.KUBECONFIG;
  if (fromEnv) {
    const paths = fromEnv.split(":").filter((path) => path !== "");
    const found = paths.find(isFile);
    if (found) return { kind: "file", path: found, origin: "env KUBECONFIG" };
    tried.push(`env KUBECONFIG=${show(fromEnv)} (no such file)`);
  } else {
    tried.push("env KUBECONFIG (unset)");
    const home = options.homeConfig && options.env.HOME
      ? join(options.env.HOME, ".kube/config")
      : undefined;
    if (home !== undefined && isFile(home)) {
      return { kind: "file", path: home, origin: "~/.kube/config" };
    }
    if (home !== undefined) tried.push(`${home} (no such file)`);
  }

  const wellKnown = join(options.configDir ?? DEFAULT_CONFIG_DIR, "kubeconfig");
  if (isFile(wellKnown)) return { kind: "file", path: wellKnown, origin: "installer's kubeconfig" };
  tried.push(`${wellKnown} (no such file)`);

  const host = options.env.KUBERNETES_SERVICE_HOST;
  const accountDir = options.serviceAccountDir ?? DEFAULT_SERVICE_ACCOUNT_DIR;
  const tokenFile = join(accountDir, "token");
  if (!host) {
    tried.push("in-cluster service account (KUBERNETES_SERVICE_HOST unset)");
  } else if (!isFile(tokenFile)) {
    tried.push(`in-cluster service account (${tokenFile}: no such file)`);
  } else {
    const caFile = join(accountDir, "ca.crt");
    return {
      kind: "in-cluster",
      server: inClusterServer(host, options.env.KUBERNETES_SERVICE_PORT),
      tokenFile,
      ...(isFile(caFile) && { caFile }),
      origin: "in-cluster service account",
    };
  }
  throw new CniError(
    ErrorCode.InvalidEnvironment,
    `no kubeconfig for the Kubernetes API found; tried: ${tried.join("; ")}`,
  );
}

function checkNodeName(name: string, origin: string): string {
  if (!isObjectName(name)) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `node name ${show(name)} from ${origin} is not a lowercase RFC 1123 subdomain`,
    );
  }
  return name;
}

/** Resolves this node's Kubernetes name (see the module documentation for the order). */
export function resolveNodeName(
  config: { readonly nodeName?: string },
  options: ResolveOptions,
): string {
  if (config.nodeName !== undefined) {
    return checkNodeName(config.nodeName, 'node configuration "node_name"');
  }
  const fromEnv = options.env.NODE_NAME;
  if (fromEnv) return checkNodeName(fromEnv, "env NODE_NAME");
  const file = join(options.configDir ?? DEFAULT_CONFIG_DIR, "node-name");
  let text: string | undefined;
  try {
    text = Deno.readTextFileSync(file);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) {
      throw new CniError(
        ErrorCode.IoFailure,
        `failed to read node name from ${file}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
  if (text !== undefined && text.trim() !== "") return checkNodeName(text.trim(), file);
  const hostname = (options.hostname ?? Deno.hostname)().trim().toLowerCase();
  return checkNodeName(
    hostname,
    `the host name (node configuration "node_name", env NODE_NAME and ${file} unset)`,
  );
}
