/**
 * The node agent: a long-running process in the DaemonSet that holds the
 * Kubernetes client, keeps BGPProviders and the plugin's BGPVRFInstances of
 * its own node, and the BGPInstances, in watch-backed caches (what it holds
 * and watches does not grow with the number of nodes), and answers the CNI
 * processes' control-plane calls over a unix socket. An ADD then costs the
 * API only its write (create + the cluster-wide route-target re-check), or
 * nothing in steady state; a DEL one delete. Its own BGPVRFInstance writes count at once,
 * before their watch events arrive (`write_through.ts`). Loaded lazily (it
 * reaches the client).
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";
import { LABELS, MANAGER, nodeLabelValue, parseVpc, routeNumber } from "../ids/mod.ts";
import type { Logger } from "../log/logger.ts";
import {
  BGP_INSTANCES,
  BGP_PROVIDERS,
  BGP_VRF_INSTANCES,
  type KubeApi,
  type KubeObject,
  type ListOptions,
  NODE_LABEL,
  type Resource,
  SERVICE_ACCOUNT_TOKENS,
} from "../kube/api.ts";
import { openKubeApi, openRawApi } from "../kube/client.ts";
import type { BgpControlPlane } from "../kube/control_plane.ts";
import { checkCosmosApi } from "../kube/cosmos_api.ts";
import { startDeadline } from "../kube/deadline.ts";
import { kubeControlPlane } from "../kube/kube_control_plane.ts";
import type { KubeconfigSource } from "../kube/kubeconfig.ts";
import {
  type Clock,
  type CredentialRefresher,
  issuePluginKubeconfig,
  type PluginCredentialTarget,
  type RefreshBackoff,
  startCredentialRefresher,
} from "./plugin_credentials.ts";
import { serveHealth } from "./health.ts";
import { type Informer, type InformerTiming, longestQuietMs, startInformer } from "./informer.ts";
import { AgentMetrics } from "./metrics.ts";
import {
  AGENT_OPS,
  type AgentRequest,
  type AgentResponse,
  MAX_REQUEST_CHARS,
  readLines,
  REPORTED_VERBS,
} from "./protocol.ts";
import { PendingRemovals, type RemovalSettings } from "./removals.ts";
import { writeThroughCache } from "./write_through.ts";

/** How to run the agent. */
export interface AgentOptions {
  /** Unix socket to serve on. */
  readonly socket: string;
  /** API server to use. */
  readonly source: KubeconfigSource;
  /** This node's name. */
  readonly node: string;
  /** Budget of each control-plane call. */
  readonly timeoutMs: number;
  /** Where to log. */
  readonly log: Logger;
  /** Port of the health endpoint on 127.0.0.1 (0: any free port; undefined: none). */
  readonly healthPort?: number;
  /** Watch timing (tests shorten it). */
  readonly watch?: InformerTiming;
  /** A connection with no complete request for this long is closed (default 120 s). */
  readonly idleTimeoutMs?: number;
  /**
   * Finishing DELs after the plugin answered (`removals.ts`); absent: the
   * agent takes none and every DEL removes its devices itself.
   */
  readonly removals?: RemovalSettings;
  /**
   * The plugin's host kubeconfig, which the agent issues a token for at start
   * and keeps fresh (`plugin_credentials.ts`); absent: the agent leaves it alone.
   */
  readonly pluginCredentials?: Omit<PluginCredentialTarget, "server"> & {
    /** API server URL for the plugin (default: the agent's own). */
    readonly server?: string;
    /** Tests substitute a clock they move, a shorter backoff and no jitter. */
    readonly clock?: Clock;
    readonly backoff?: RefreshBackoff;
    readonly random?: () => number;
  };
}

const DEFAULT_IDLE_TIMEOUT_MS = 120_000;

export interface RunningAgent {
  /** The health endpoint's URL, when it serves one. */
  readonly healthUrl: string | undefined;
  /** Ready: every watch cache in sync. */
  ready(): boolean;
  /** Its metrics (the stale-attachment reclaim counts what it reclaimed here). */
  readonly metrics: AgentMetrics;
  /** The plugin's credential refresher, when it manages one. */
  readonly credentials: CredentialRefresher | undefined;
  /** DEL removals it took, when it takes them. */
  readonly removals: PendingRemovals | undefined;
  /** Stops serving, watching and closes the client. */
  close(): Promise<void>;
}

/** Calls answered from the watch caches: while they are out of sync, the plugin goes direct. */
const CACHED_OPS = new Set(["declareVrf", "verifyVrf"]);

/**
 * Serves lists the plugin's lookup makes from the caches and everything else
 * (writes, and the route-target re-check after a write) from the server.
 */
function cachedApi(
  api: KubeApi,
  caches: { node: string; providers: Informer; instances: Informer },
): KubeApi {
  const nodeSelector = `${NODE_LABEL}=${caches.node}`;
  function fromCache(resource: Resource, options: ListOptions): KubeObject[] | undefined {
    if (resource === BGP_INSTANCES && options.labelSelector === undefined) {
      return caches.instances.list();
    }
    if (resource === BGP_PROVIDERS && options.labelSelector === nodeSelector) {
      return caches.providers.list();
    }
    return undefined;
  }
  return {
    server: api.server,
    list: (resource, options) =>
      Promise.resolve(fromCache(resource, options) ?? api.list(resource, options)),
    get: (resource, name, options) => api.get(resource, name, options),
    create: (resource, object, options) => api.create(resource, object, options),
    replace: (resource, object, options) => api.replace(resource, object, options),
    delete: (resource, name, options) => api.delete(resource, name, options),
    apiResources: (group, version, options) => api.apiResources(group, version, options),
    apiGroups: (options) => api.apiGroups(options),
    requestToken: (namespace, account, spec, options) =>
      api.requestToken(namespace, account, spec, options),
    close: () => api.close(),
  };
}

/** `api` with every request counted in `metrics` (by verb, resource and outcome). */
function countedApi(api: KubeApi, metrics: AgentMetrics): KubeApi {
  async function counted<T>(verb: string, resource: Resource, call: Promise<T>): Promise<T> {
    try {
      const value = await call;
      metrics.apiRequest(verb, resource.plural, "ok");
      return value;
    } catch (error) {
      metrics.apiRequest(verb, resource.plural, "error");
      throw error;
    }
  }
  return {
    server: api.server,
    list: (r, o) => counted("list", r, api.list(r, o)),
    get: (r, name, o) => counted("get", r, api.get(r, name, o)),
    create: (r, object, o) => counted("create", r, api.create(r, object, o)),
    replace: (r, object, o) => counted("update", r, api.replace(r, object, o)),
    delete: (r, name, o) => counted("delete", r, api.delete(r, name, o)),
    apiResources: (group, version, o) => api.apiResources(group, version, o),
    apiGroups: (o) => api.apiGroups(o),
    requestToken: (namespace, account, spec, o) =>
      counted("create", SERVICE_ACCOUNT_TOKENS, api.requestToken(namespace, account, spec, o)),
    close: () => api.close(),
  };
}

/**
 * Answers one call. The agent acts only for its own node: a client naming
 * another (a confused or hostile process on the host) is refused before any
 * API call, so it can neither write nor delete another node's objects.
 */
async function answer(
  plane: BgpControlPlane,
  request: AgentRequest,
  context: {
    node: string;
    removals: PendingRemovals | undefined;
    report: (report: Record<string, unknown>) => void;
  },
): Promise<AgentResponse> {
  const { node } = context;
  try {
    if (!(AGENT_OPS as readonly string[]).includes(request.op)) {
      throw new CniError(ErrorCode.InvalidConfig, `node agent: unknown call ${show(request.op)}`);
    }
    if (request.node !== node) {
      throw new CniError(
        ErrorCode.InvalidConfig,
        `node agent of ${show(node)} does not act for node ${show(request.node)}`,
      );
    }
    const key = () => ({ vpc: parseVpc(request.vpc ?? ""), node });
    let value: unknown;
    switch (request.op) {
      case "declareVrf":
        value = await plane.declareVrf(key());
        break;
      case "withdrawVrf":
        value = await plane.withdrawVrf(key());
        break;
      case "verifyVrf":
        value = await plane.verifyVrf(key());
        break;
      case "listNodeVrfs":
        value = await plane.listNodeVrfs(node);
        break;
      case "probe":
        value = await plane.probe(node);
        break;
      case "finishRemoval":
        value = await context.removals?.take({
          stateDir: request.stateDir ?? "",
          key: request.key ?? "",
          container: request.container ?? "",
        }) ?? false;
        // The plugin sends no report of a DEL the agent took: this is it.
        if (value === true && request.seconds !== undefined) {
          context.report({ verb: "DEL", code: 0, seconds: request.seconds });
        }
        break;
    }
    return { id: request.id, ok: true, value: value ?? null };
  } catch (error) {
    const code = error instanceof CniError ? error.code : ErrorCode.IoFailure;
    return { id: request.id, ok: false, code, msg: (error as Error).message };
  }
}

/** Records a plugin's verb report (no answer); a malformed one is dropped. */
function recordReport(request: Record<string, unknown>, metrics: AgentMetrics, log: Logger): void {
  const { verb, code, seconds } = request;
  if (
    typeof verb !== "string" || !REPORTED_VERBS.has(verb) ||
    typeof code !== "number" || !Number.isInteger(code) || code < 0 || code > 999 ||
    typeof seconds !== "number" || !Number.isFinite(seconds) || seconds < 0 || seconds > 3600
  ) {
    log.debug("agent: malformed verb report dropped", { verb, code, seconds });
    return;
  }
  metrics.verbDone(verb, code, seconds);
}

/**
 * Serves one client: request lines are bounded in size
 * ({@linkcode MAX_REQUEST_CHARS}) and a client that sends no complete line
 * for `idleMs` is disconnected, so a stuck or hostile client holds nothing.
 */
async function serveConnection(
  conn: Deno.Conn,
  plane: BgpControlPlane,
  options: {
    log: Logger;
    ready: () => boolean;
    metrics: AgentMetrics;
    node: string;
    removals: PendingRemovals | undefined;
    idleMs: number;
  },
): Promise<void> {
  const { log, metrics } = options;
  const writer = conn.writable.getWriter();
  let idle: ReturnType<typeof setTimeout> | undefined;
  const arm = (): void => {
    clearTimeout(idle);
    idle = setTimeout(() => {
      log.debug("agent: idle connection closed");
      try {
        conn.close();
      } catch { /* already closed */ }
    }, options.idleMs);
  };
  try {
    arm();
    for await (const line of readLines(conn.readable, { maxChars: MAX_REQUEST_CHARS })) {
      clearTimeout(idle);
      let request: AgentRequest;
      try {
        request = JSON.parse(line) as AgentRequest;
        if (
          typeof request !== "object" || request === null ||
          !Number.isSafeInteger(request.id) || typeof request.op !== "string" ||
          (["vpc", "stateDir", "key", "container"] as const).some((field) =>
            request[field] !== undefined && typeof request[field] !== "string"
          )
        ) {
          throw new Error("not a request object with a numeric id");
        }
      } catch {
        log.warn("agent: undecodable request dropped", { line: line.slice(0, 200) });
        break;
      }
      if ((request.op as string) === "report") {
        recordReport(request as unknown as Record<string, unknown>, metrics, log);
        arm();
        continue;
      }
      const started = performance.now();
      const response: AgentResponse = CACHED_OPS.has(request.op) && !options.ready()
        ? {
          id: request.id,
          ok: false,
          unavailable: true,
          code: ErrorCode.TryAgainLater,
          msg: "node agent not ready: its watch caches are out of sync",
        }
        : await answer(plane, request, {
          ...options,
          report: (report) => recordReport(report, metrics, log),
        });
      metrics.callServed(
        (AGENT_OPS as readonly string[]).includes(request.op) ? request.op : "unknown",
        response.ok ? "ok" : "unavailable" in response ? "unavailable" : "error",
      );
      log.debug("agent call", {
        op: request.op,
        node: request.node,
        vpc: request.vpc,
        ok: response.ok,
        ms: Math.round(performance.now() - started),
      });
      await writer.write(new TextEncoder().encode(JSON.stringify(response) + "\n"));
      arm();
    }
  } catch (error) {
    log.debug("agent: connection ended", { error: (error as Error).message });
  } finally {
    clearTimeout(idle);
    try {
      conn.close();
    } catch { /* closed by the peer */ }
  }
}

/** A socket left by a crashed agent is removed; a live agent's is refused. */
async function claimSocket(path: string): Promise<void> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    throw new CniError(ErrorCode.IoFailure, `another node agent is already serving ${path}`);
  } catch (error) {
    if (error instanceof CniError) throw error;
  }
  await Deno.remove(path).catch(() => {});
  await privateDirectory(path.slice(0, path.lastIndexOf("/")) || "/");
}

/**
 * Makes the socket's directory the agent's own (mode 0700, not a link,
 * owned by this user) before the socket exists, so the socket is never
 * reachable by others, not even between `listen` and its chmod.
 */
async function privateDirectory(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const info = await Deno.lstat(dir);
  const uid = Deno.uid();
  if (!info.isDirectory || (uid !== null && info.uid !== uid)) {
    throw new CniError(
      ErrorCode.IoFailure,
      `refusing socket directory ${dir}: not a directory owned by uid ${uid}`,
    );
  }
  if (((info.mode ?? 0) & 0o077) !== 0) await Deno.chmod(dir, 0o700);
}

/** Starts the agent: caches first (so the first ADD is already fast), then the socket. */
export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const { log, source, node } = options;
  await claimSocket(options.socket);
  const metrics = new AgentMetrics();
  const api = countedApi(await openKubeApi(source), metrics);
  // Another cosmos API would fail every ADD obscurely: refuse to start, saying why.
  await checkCosmosApi(api, { deadline: startDeadline(options.timeoutMs) }).catch(
    async (error) => {
      await api.close();
      throw error;
    },
  );
  // A fresh plugin token before serving: a restarted agent never leaves the
  // plugin on a token nearer its end than a full lifetime.
  const credentials = options.pluginCredentials === undefined
    ? undefined
    : await startCredentials(api, options.pluginCredentials, options).catch(async (error) => {
      await api.close();
      throw error;
    });
  const raw = await openRawApi(source);
  const watch = (resource: Resource, labelSelector?: string): Informer =>
    startInformer(raw, {
      resource,
      ...(labelSelector !== undefined && { labelSelector }),
      log,
      listTimeoutMs: options.timeoutMs,
      onRequest: (kind, outcome) => metrics.apiRequest(kind, resource.plural, outcome),
      ...options.watch,
    });
  const providers = watch(BGP_PROVIDERS, `${NODE_LABEL}=${node}`);
  const instances = watch(BGP_INSTANCES);
  // Only this node's objects: the agent's cost does not grow with the cluster.
  const vrfs = watch(
    BGP_VRF_INSTANCES,
    `${LABELS.managedBy}=${MANAGER},${LABELS.node}=${nodeLabelValue(node)}`,
  );
  const caches = [[BGP_PROVIDERS, providers], [BGP_INSTANCES, instances], [
    BGP_VRF_INSTANCES,
    vrfs,
  ]] as const;
  const informers = caches.map(([, informer]) => informer);
  const ready = (): boolean => informers.every((i) => i.synced());
  // Serve once the caches are filled (so the first ADD is already fast), or
  // after one API budget without: until then the plugin goes direct.
  await firstSync(informers, options.timeoutMs);
  // The agent's own BGPVRFInstance writes are visible to the next call before
  // their watch events arrive (back-to-back ADDs of one VPC).
  const ownVrfs = writeThroughCache(vrfs, BGP_VRF_INSTANCES);
  const plane = kubeControlPlane(cachedApi(ownVrfs.wrap(api), { node, providers, instances }), {
    timeoutMs: options.timeoutMs,
    // The guard's first look sees this node's holders only (no request); other
    // nodes' are caught by the list after the write, which rolls a created
    // object back (lib/kube/bgp_vrf_instance.ts): a first ADD stays at 2 requests.
    routeTargetHolders: (vpc) =>
      ownVrfs.list().filter((o) =>
        o.metadata.labels?.[LABELS.routeTarget] === String(routeNumber(vpc))
      ),
  });
  const health = options.healthPort === undefined ? undefined : serveHealth({
    port: options.healthPort,
    ready,
    informers,
    metrics: () =>
      metrics.render({
        caches: caches.map(([r, i]) => ({ resource: r.plural, synced: i.synced() })),
        ready: ready(),
        ...(credentials && { credentials: credentials.status() }),
      }),
    // Twice what a healthy loop can take, so only a stuck one fails.
    livenessWindowMs: 2 * longestQuietMs({ listTimeoutMs: options.timeoutMs, ...options.watch }),
  });
  const removals = options.removals && new PendingRemovals(options.removals, { log, metrics });
  removals?.start();
  const listener = Deno.listen({ transport: "unix", path: options.socket });
  await Deno.chmod(options.socket, 0o600);
  log.info("agent serving", {
    socket: options.socket,
    node,
    server: api.server,
    ready: ready(),
    ...(health && { health: health.url }),
  });
  const connections = new Map<Deno.Conn, Promise<void>>();
  const accepting = (async () => {
    try {
      for await (const conn of listener) {
        connections.set(
          conn,
          serveConnection(conn, plane, {
            log,
            ready,
            metrics,
            node,
            removals,
            idleMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
          }).finally(() => connections.delete(conn)),
        );
      }
    } catch { /* listener closed */ }
  })();
  return {
    healthUrl: health?.url,
    ready,
    metrics,
    credentials,
    removals,
    async close(): Promise<void> {
      await credentials?.stop();
      await health?.close();
      listener.close();
      await accepting;
      const served = [...connections.values()];
      for (const conn of connections.keys()) {
        try {
          conn.close();
        } catch { /* already closed */ }
      }
      await Promise.allSettled(served);
      await removals?.close();
      await Promise.all(informers.map((i) => i.stop()));
      await plane.close();
      await raw.close();
      await Deno.remove(options.socket).catch(() => {});
    },
  };
}

/**
 * Issues the plugin's token once; a failure is logged and left to the
 * refresher's retries (the kubeconfig in place, if any, keeps working until
 * its token expires), so an API hiccup at start does not stop the agent.
 */
async function startCredentials(
  api: KubeApi,
  settings: NonNullable<AgentOptions["pluginCredentials"]>,
  options: { log: Logger; timeoutMs: number },
): Promise<CredentialRefresher> {
  const { clock, backoff, random, ...rest } = settings;
  const target: PluginCredentialTarget = { ...rest, server: rest.server ?? api.server };
  if (target.ca === undefined && !target.server.startsWith("http://")) {
    throw new CniError(
      ErrorCode.InvalidEnvironment,
      `cannot write the plugin's kubeconfig ${target.kubeconfig}: no cluster CA for ${target.server} ` +
        "(the in-cluster ca.crt, or --plugin-ca)",
    );
  }
  const log = options.log.with({ task: "credentials" });
  let current;
  try {
    current = await issuePluginKubeconfig(api, target, {
      timeoutMs: options.timeoutMs,
      ...(clock && { clock }),
    });
    log.info("plugin token issued", {
      kubeconfig: target.kubeconfig,
      expires: new Date(current.expiresAt).toISOString(),
    });
  } catch (error) {
    log.warn("plugin token request failed at start; retrying, the kubeconfig in place stays", {
      kubeconfig: target.kubeconfig,
      error: (error as Error).message,
    });
  }
  return startCredentialRefresher(api, target, {
    log,
    timeoutMs: options.timeoutMs,
    ...(current ? { current } : { failures: 1 }),
    ...(clock && { clock }),
    ...(backoff && { backoff }),
    ...(random && { random }),
  });
}

/** Waits for every informer's first sync, at most `ms`. */
async function firstSync(informers: readonly Informer[], ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(informers.map((i) => i.firstSync())),
    new Promise((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}
