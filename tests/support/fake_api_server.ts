/**
 * An in-process fake of the Kubernetes API server, speaking the subset the
 * plugin uses, faithfully enough for the real API client: the cosmos
 * kinds (BGPVRFInstance, BGPInstance, BGPProvider, BGPPeer), list
 * (labelSelector, limit/continue), get,
 * create, update (PUT with resourceVersion), merge-patch, delete (with uid
 * preconditions); `Status` bodies like the real apiserver's; bearer-token
 * authentication, plus the expiring tokens of its TokenRequest endpoint
 * (`fake_tokens.ts`); an RBAC table (default `PLUGIN_RBAC`; `resourceNames`
 * honoured); API discovery of
 * the CRDs it holds; watch streams, whose events a test can hold back and
 * release later ({@linkcode FakeApiServer.holdWatches}) and that end after
 * `timeoutSeconds`; injectable faults (error statuses, dropped connections,
 * delays, raw bodies that are not what the API promises, stalled streams); a
 * request log.
 *
 * The resources are those of a CRD set (default: the real cosmos CRDs,
 * `cosmos/crds.ts`), and every create, update and patch is admitted as a real
 * API server with those CRDs would (`cosmos/admission.ts`): unknown fields
 * pruned, defaults applied, the schema and its CEL rules enforced, a 422
 * `Status` listing every field error; `.status` is the status subresource's
 * (ignored on writes of the main resource). Cluster-scoped resources are not
 * served under `/namespaces/…`. A test can start it with another CRD set
 * (another cosmos version, a missing CRD) to see what the plugin says. Not
 * modelled: the `/status` subresource endpoint (the plugin never writes
 * status) and validation ratcheting of unchanged invalid fields on update.
 *
 * Requests reach `Deno.serve` through a small TCP relay in front of it, so a
 * fault can drop the client's connection mid-request (a `Deno.serve` handler
 * has no way to do that itself).
 *
 * Standalone, for e2e tests and the demo (prints its URL once listening):
 *
 *     deno run -A tests/support/fake_api_server.ts --port 0 --kubeconfig <path> [--seed <json>]
 *
 * The `/_fake/...` endpoints (no auth, not logged) control a standalone
 * instance: `GET|DELETE /_fake/requests`, `POST|DELETE /_fake/faults`,
 * `GET|POST /_fake/objects`, `POST /_fake/rbac/deny`, `POST /_fake/rbac/reset`,
 * `POST /_fake/clock` (`{advanceSeconds}`: issued tokens expire by it),
 * `POST /_fake/tokens/revoke` (`{account?}`).
 *
 * @module
 */

import { pause } from "../../lib/kube/deadline.ts";
import { PLUGIN_RBAC, type RbacRule } from "../../lib/kube/rbac.ts";
import { matchesLabelQuery, parseLabelQuery } from "./label_query.ts";
import { admit, describeErrors, type FieldError } from "./cosmos/admission.ts";
import { COSMOS_CRDS, type Crd, type CrdVersion } from "./cosmos/crds.ts";
import { TokenIssuer } from "./fake_tokens.ts";

/** Default bearer token of the fake. */
export const FAKE_TOKEN = "galactic-fake-token";
/** User name the fake reports in RBAC denials. */
export const FAKE_USER = "system:serviceaccount:galactic-system:galactic-cni";

/** A stored object (JSON). */
// deno-lint-ignore no-explicit-any
export type StoredObject = Record<string, any>;

interface ResourceDef {
  readonly group: string;
  readonly version: string;
  readonly plural: string;
  readonly kind: string;
  readonly crd: Crd;
  readonly schema: CrdVersion;
}

const quote = JSON.stringify;

/** The resources a CRD set serves (each served version of each CRD). */
function resourceDefs(crds: readonly Crd[]): ResourceDef[] {
  return crds.flatMap((crd) =>
    crd.versions.filter((v) => v.served).map((schema) => ({
      group: crd.group,
      version: schema.name,
      plural: crd.names.plural,
      kind: crd.names.kind,
      crd,
      schema,
    }))
  );
}

/** A fault to inject; unset matchers match every request. */
export interface FaultSpec {
  /** HTTP method to match (GET, POST, PUT, PATCH, DELETE). */
  readonly method?: string;
  /** RBAC verb to match (list, get, create, update, patch, delete). */
  readonly verb?: string;
  /** Resource plural to match. */
  readonly resource?: string;
  /** How many matching requests it applies to (default: all). */
  readonly times?: number;
  /** Delay before answering (or before the other effect). */
  readonly delayMs?: number;
  /** Answer with this status and a matching `Status` body instead. */
  readonly status?: number;
  /** `Retry-After` header (seconds) of that answer. */
  readonly retryAfterSeconds?: number;
  /** Drop the client's connection without an answer. */
  readonly reset?: boolean;
  /**
   * Answer with this raw body (status `status`, default 200) instead: a
   * list or object that is not what the API promises, a watch stream of
   * malformed or truncated events (it ends after the body).
   */
  readonly body?: string;
  /** Answer 200 and then send nothing, keeping the stream open (a stalled watch). */
  readonly stall?: boolean;
}

/** One request as the fake saw it. */
export interface RequestRecord {
  /** HTTP method. */
  readonly method: string;
  /** Path and query. */
  readonly path: string;
  /** RBAC verb, or `unknown` for paths the fake does not serve. */
  readonly verb: string;
  /** Resource plural, when the path names one. */
  readonly resource?: string;
  /** Object name, when the path names one. */
  readonly name?: string;
  /** HTTP status answered (0 when the connection was dropped). */
  status: number;
  /** The fault applied, if any. */
  fault?: FaultSpec;
}

/** Options of {@linkcode startFakeApiServer}. */
export interface FakeApiServerOptions {
  /** Port to listen on (default 0: any free port). */
  readonly port?: number;
  /** Accepted bearer token (default {@linkcode FAKE_TOKEN}). */
  readonly token?: string;
  /** User named in RBAC denials (default {@linkcode FAKE_USER}). */
  readonly user?: string;
  /** Allowed verbs (default `PLUGIN_RBAC`). */
  readonly rbac?: readonly RbacRule[];
  /** The CRDs installed (default: cosmos's, {@linkcode COSMOS_CRDS}). */
  readonly crds?: readonly Crd[];
  /** ServiceAccounts (`namespace/name`) tokens can be requested for (default: galactic's two). */
  readonly serviceAccounts?: readonly string[];
  /** The server's longest token lifetime, seconds (longer requests are shortened). */
  readonly maxTokenSeconds?: number;
  /**
   * Take a request without an `Authorization` header as authenticated: a
   * TLS front that verified the client's certificate relays to this server
   * (`tls_front.ts`). A wrong bearer token is still refused.
   */
  readonly authenticatedByTls?: boolean;
}

/** A change of a stored object, as a watch stream sends it. */
interface WatchEvent {
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly plural: string;
  readonly revision: number;
  readonly object: StoredObject;
}

/** A store of one resource that reports every change (the source of watch streams). */
class WatchedStore extends Map<string, StoredObject> {
  readonly #plural: string;
  readonly #emit: (event: Omit<WatchEvent, "revision">) => void;

  constructor(plural: string, emit: (event: Omit<WatchEvent, "revision">) => void) {
    super();
    this.#plural = plural;
    this.#emit = emit;
  }

  override set(name: string, object: StoredObject): this {
    const type = this.has(name) ? "MODIFIED" : "ADDED";
    super.set(name, object);
    this.#emit?.({ type, plural: this.#plural, object: structuredClone(object) });
    return this;
  }

  override delete(name: string): boolean {
    const object = this.get(name);
    if (!super.delete(name)) return false;
    this.#emit({ type: "DELETED", plural: this.#plural, object: structuredClone(object!) });
    return true;
  }
}

/** Called for every API request before it is handled (tests use it to race). */
export type RequestHook = (record: RequestRecord) => void | Promise<void>;

/** A request for a resource (`def`), or for discovery (`verb: "discover"`, no `def`). */
interface Route {
  readonly def?: ResourceDef;
  readonly name?: string;
  readonly verb: string;
  /** Discovery: the path's group and version, when given. */
  readonly group?: string;
  readonly version?: string;
  /** The path is not served for this resource's scope (404 like the real server). */
  readonly wrongScope?: boolean;
  /** A TokenRequest: `POST /api/v1/namespaces/{namespace}/serviceaccounts/{name}/token`. */
  readonly token?: { readonly namespace: string; readonly name: string };
}

interface RelayPair {
  readonly client: Deno.Conn;
  readonly upstream: Deno.Conn;
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
}

/** A `Status` response like the apiserver's. */
function statusResponse(
  code: number,
  reason: string,
  message: string,
  options: { details?: Record<string, unknown>; headers?: Record<string, string> } = {},
): Response {
  return json(code, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(options.details && { details: options.details }),
    code,
  }, options.headers);
}

const STATUS_REASONS: Record<number, [string, string]> = {
  429: ["TooManyRequests", "Too many requests, please try again later."],
  500: ["InternalError", "Internal error occurred: injected fault"],
  502: ["", "Bad Gateway"],
  503: ["ServiceUnavailable", "The server is currently unable to handle the request"],
  504: ["Timeout", "The server was unable to return a response in the time allotted"],
};

/**
 * The 422 message: `<Kind>.<group> "<name>" is invalid: <errors>`, the errors
 * as apimachinery aggregates them (one alone, several in brackets).
 */
function invalidMessage(def: ResourceDef, name: unknown, errors: readonly FieldError[]): string {
  const texts = [...new Set(describeErrors(errors))];
  const summary = texts.length === 1 ? texts[0] : `[${texts.join(", ")}]`;
  return `${def.kind}.${def.group} ${quote(String(name ?? ""))} is invalid: ${summary}`;
}

function qualified(def: ResourceDef): string {
  return `${def.plural}.${def.group}`;
}

function timestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function isRecord(value: unknown): value is StoredObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return structuredClone(patch);
  const result: StoredObject = isRecord(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isRecord(a) && isRecord(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length &&
      keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/** The running fake. */
export class FakeApiServer {
  /** Base URL, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** Accepted bearer token. */
  readonly token: string;
  /** Every API request, oldest first. */
  readonly requests: RequestRecord[] = [];
  /** The tokens its TokenRequest endpoint issued, and the clock they expire by. */
  readonly tokens: TokenIssuer;

  readonly #user: string;
  readonly #authenticatedByTls: boolean;
  /** Relay keys (backend-side client ports) of the connections carrying an open watch. */
  readonly #watchConnections = new Set<number>();
  readonly #defs: readonly ResourceDef[];
  readonly #store = new Map<string, WatchedStore>();
  /** Every change, oldest first (watches replay from a resourceVersion). */
  readonly #events: WatchEvent[] = [];
  readonly #watchers = new Set<(event: WatchEvent) => void>();
  /** Number of unreleased {@linkcode holdWatches} holds. */
  #holds = 0;
  /** Index in `#events` of the first event not yet delivered (while held). */
  #heldFrom: number | undefined;
  readonly #rbac = new Map<string, Set<string>>();
  /** `resourceNames` of a rule, by the same key as `#rbac` (absent: every name). */
  readonly #rbacNames = new Map<string, Set<string>>();
  /** Compactions so far: a continue token from before the last one is 410 Expired. */
  #compactions = 0;
  /** The namespace of a Role's rule, by the same key (absent: a ClusterRole's, every namespace). */
  readonly #rbacNamespaces = new Map<string, string>();
  readonly #defaultRbac: readonly RbacRule[];
  #faults: { spec: FaultSpec; left: number }[] = [];
  #hooks: RequestHook[] = [];
  #revision = 1000;
  readonly #listener: Deno.TcpListener;
  readonly #backend: Deno.HttpServer<Deno.NetAddr>;
  readonly #pairs = new Map<number, RelayPair>();
  readonly #closing = new AbortController();
  readonly #relay: Promise<void>;
  #closed: Promise<void> | undefined;

  constructor(options: FakeApiServerOptions = {}) {
    this.token = options.token ?? FAKE_TOKEN;
    this.#user = options.user ?? FAKE_USER;
    this.#authenticatedByTls = options.authenticatedByTls ?? false;
    this.#defaultRbac = options.rbac ?? PLUGIN_RBAC;
    this.#defs = resourceDefs(options.crds ?? COSMOS_CRDS);
    this.tokens = new TokenIssuer({
      ...(options.serviceAccounts && { accounts: options.serviceAccounts }),
      ...(options.maxTokenSeconds !== undefined && { maxSeconds: options.maxTokenSeconds }),
    });
    this.resetRbac();
    for (const def of this.#defs) {
      if (this.#store.has(def.plural)) continue;
      this.#store.set(def.plural, new WatchedStore(def.plural, (event) => this.#record(event)));
    }
    this.#backend = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen(): void {} },
      (request, info) => this.#handle(request, info),
    );
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: options.port ?? 0 });
    this.url = `http://127.0.0.1:${this.#listener.addr.port}`;
    this.#relay = this.#acceptLoop();
  }

  #record(change: Omit<WatchEvent, "revision">): void {
    // A deletion gets a revision of its own, like etcd's.
    const revision = change.type === "DELETED"
      ? ++this.#revision
      : Number(change.object.metadata.resourceVersion);
    const object = change.type === "DELETED"
      ? {
        ...change.object,
        metadata: { ...change.object.metadata, resourceVersion: String(revision) },
      }
      : change.object;
    const event: WatchEvent = { ...change, object, revision };
    this.#events.push(event);
    if (this.#holds > 0) return;
    for (const watcher of [...this.#watchers]) watcher(event);
  }

  /**
   * Holds watch events back: changes made from now on reach watch streams
   * only once every hold is released, in order (the race of a client that
   * reads its watch cache before its own write's event arrived). Lists, gets
   * and the initial objects of a watch started meanwhile show the current
   * state, and a stream never gets an event older than its start. Returns
   * the release function (calling it again does nothing).
   */
  holdWatches(): () => void {
    if (this.#holds++ === 0) this.#heldFrom = this.#events.length;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.#holds > 0) return;
      const held = this.#events.slice(this.#heldFrom);
      this.#heldFrom = undefined;
      for (const event of held) {
        for (const watcher of [...this.#watchers]) watcher(event);
      }
    };
  }

  /** Number of watch events currently held back by {@linkcode holdWatches}. */
  get heldWatchEvents(): number {
    return this.#heldFrom === undefined ? 0 : this.#events.length - this.#heldFrom;
  }

  /** Number of watch streams currently open. */
  get openWatches(): number {
    return this.#watchers.size;
  }

  /**
   * A watch stream: JSON lines `{type, object}` for changes after
   * `resourceVersion` (all current objects as ADDED when it is absent or 0),
   * matching the label selector, until the client or the server closes it.
   */
  #watch(def: ResourceDef, url: URL, connection: number): Response {
    let requirements: ReturnType<typeof parseLabelQuery>;
    try {
      requirements = parseLabelQuery(url.searchParams.get("labelSelector") ?? "");
    } catch (error) {
      return this.#badRequest((error as Error).message);
    }
    const from = Number(url.searchParams.get("resourceVersion") ?? "0") || 0;
    // Changes up to here are in what this stream starts with (held or not).
    const since = from > 0 ? from : this.#revision;
    const oldest = this.#events[0]?.revision ?? this.#revision;
    if (from > 0 && from < oldest - 1 && this.#events.length > 0) {
      // Like the apiserver (its watch cache and etcd alike): once the request
      // is admitted, 200 and one ERROR event carrying the 410 Status, then the end.
      const expired = {
        type: "ERROR",
        object: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: `too old resource version: ${from} (${oldest})`,
          reason: "Expired",
          code: 410,
        },
      };
      return new Response(`${JSON.stringify(expired)}\n`, {
        status: 200,
        headers: { "content-type": "application/json" },
      });
    }
    const matches = (event: WatchEvent): boolean =>
      event.plural === def.plural &&
      matchesLabelQuery(requirements, event.object.metadata.labels ?? {});
    const encoder = new TextEncoder();
    let watcher: ((event: WatchEvent) => void) | undefined;
    const stop = (): void => {
      if (watcher) this.#watchers.delete(watcher);
      watcher = undefined;
      this.#watchConnections.delete(connection);
    };
    const seconds = Number(url.searchParams.get("timeoutSeconds") ?? "0");
    let timer: ReturnType<typeof setTimeout> | undefined;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        const end = (): void => {
          stop();
          clearTimeout(timer);
          try {
            controller.close();
          } catch { /* already closed */ }
        };
        // Like the apiserver, end the stream cleanly after timeoutSeconds.
        if (seconds > 0) timer = setTimeout(end, seconds * 1000);
        const send = (type: string, object: StoredObject): void => {
          try {
            controller.enqueue(encoder.encode(JSON.stringify({ type, object }) + "\n"));
          } catch {
            stop();
          }
        };
        if (from === 0) {
          for (const object of this.#matching(def.plural, requirements)) send("ADDED", object);
        } else {
          for (const event of this.#events.slice(0, this.#heldFrom)) {
            if (event.revision > from && matches(event)) send(event.type, event.object);
          }
        }
        watcher = (event) => {
          if (event.revision > since && matches(event)) send(event.type, event.object);
        };
        this.#watchers.add(watcher);
        this.#watchConnections.add(connection);
        this.#closing.signal.addEventListener("abort", end);
      },
      cancel: () => {
        stop();
        clearTimeout(timer);
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "application/json" } });
  }

  // ---- relay -------------------------------------------------------------

  async #acceptLoop(): Promise<void> {
    const pending = new Set<Promise<void>>();
    try {
      for await (const client of this.#listener) {
        const task = this.#relayConnection(client).finally(() => pending.delete(task));
        pending.add(task);
      }
    } catch {
      // listener closed
    }
    await Promise.allSettled(pending);
  }

  async #relayConnection(client: Deno.Conn): Promise<void> {
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#backend.addr.port });
    } catch {
      closeQuietly(client);
      return;
    }
    const key = (upstream.localAddr as Deno.NetAddr).port;
    this.#pairs.set(key, { client, upstream });
    await Promise.allSettled([
      client.readable.pipeTo(upstream.writable),
      upstream.readable.pipeTo(client.writable),
    ]);
    this.#pairs.delete(key);
    closeQuietly(client);
    closeQuietly(upstream);
  }

  #dropConnection(info: Deno.ServeHandlerInfo<Deno.NetAddr>): void {
    this.#drop(info.remoteAddr.port);
  }

  #drop(key: number): boolean {
    const pair = this.#pairs.get(key);
    if (!pair) return false;
    closeQuietly(pair.client);
    closeQuietly(pair.upstream);
    return true;
  }

  /**
   * Drops the TCP connection of every open watch stream mid-body, without
   * ending the stream (no final chunk): a peer that vanished, not a watch the
   * server ended. Returns how many were dropped.
   */
  dropWatches(): number {
    let dropped = 0;
    for (const key of [...this.#watchConnections]) {
      this.#watchConnections.delete(key);
      if (this.#drop(key)) dropped++;
    }
    return dropped;
  }

  // ---- test controls -----------------------------------------------------

  /** Requests per verb, e.g. `{ list: 3, create: 1 }` (optionally for one resource). */
  counts(resource?: string): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const record of this.requests) {
      if (resource !== undefined && record.resource !== resource) continue;
      counts[record.verb] = (counts[record.verb] ?? 0) + 1;
    }
    return counts;
  }

  /** Number of requests, optionally only writes (create, update, patch, delete). */
  requestCount(options: { writesOnly?: boolean } = {}): number {
    const writes = new Set(["create", "update", "patch", "delete"]);
    return this.requests.filter((r) => !options.writesOnly || writes.has(r.verb)).length;
  }

  /** Forgets the request log. */
  resetLog(): void {
    this.requests.length = 0;
  }

  /** Injects a fault; returns a function that removes it. */
  fault(spec: FaultSpec): () => void {
    const entry = { spec, left: spec.times ?? Infinity };
    this.#faults.push(entry);
    return () => {
      this.#faults = this.#faults.filter((f) => f !== entry);
    };
  }

  /** Removes every fault. */
  clearFaults(): void {
    this.#faults = [];
  }

  /** Runs `hook` before each API request is handled; returns a function that removes it. */
  onRequest(hook: RequestHook): () => void {
    this.#hooks.push(hook);
    return () => {
      this.#hooks = this.#hooks.filter((h) => h !== hook);
    };
  }

  /**
   * Expires every continue token issued so far (410 Expired), as etcd's
   * compaction does once their revision is compacted away.
   */
  compact(): void {
    this.#compactions++;
  }

  /** Withdraws `verb` on `resource` (plural) from the client's identity. */
  deny(verb: string, resource: string): void {
    const key = resource === "serviceaccounts/token"
      ? "serviceaccounts/token."
      : qualified(this.#def(resource));
    this.#rbac.get(key)?.delete(verb);
  }

  /** Restores the RBAC table given at start. */
  resetRbac(): void {
    this.#rbac.clear();
    this.#rbacNames.clear();
    this.#rbacNamespaces.clear();
    for (const rule of this.#defaultRbac) {
      const key = `${rule.resource}.${rule.apiGroup}`;
      this.#rbac.set(key, new Set(rule.verbs));
      if (rule.resourceNames) this.#rbacNames.set(key, new Set(rule.resourceNames));
      if (rule.namespace) this.#rbacNamespaces.set(key, rule.namespace);
    }
  }

  #def(plural: string): ResourceDef {
    const def = this.#defs.find((d) => d.plural === plural);
    if (!def) throw new Error(`the fake API server does not serve ${plural}`);
    return def;
  }

  /**
   * Stores an object plus server fields; `kind` picks the resource. It is
   * admitted like a create (pruned, defaulted, refused with the 422 message
   * when invalid) unless `unchecked` says why not: an object a real server
   * would have refused, standing for one that got in some other way (an
   * older CRD, a lenient path), stored as is.
   */
  seed(object: StoredObject, options: { unchecked?: string } = {}): StoredObject {
    const def = this.#defs.find((d) => d.kind === object.kind);
    if (!def) {
      const kinds = this.#defs.map((d) => d.kind).join(", ");
      throw new Error(`cannot seed kind ${object.kind}: not one of ${kinds}`);
    }
    let admitted = structuredClone(object);
    if (!options.unchecked) {
      const { object: pruned, errors } = admit(def.crd, def.schema, admitted);
      if (errors.length > 0) {
        throw new Error(`cannot seed: ${invalidMessage(def, object.metadata?.name, errors)}`);
      }
      admitted = pruned;
    }
    const stored = this.#stamp(def, admitted);
    this.#store.get(def.plural)!.set(stored.metadata.name, stored);
    return structuredClone(stored);
  }

  /** A stored object (a copy), or undefined. */
  object(resource: string, name: string): StoredObject | undefined {
    const stored = this.#store.get(this.#def(resource).plural)!.get(name);
    return stored && structuredClone(stored);
  }

  /** Every stored object of a resource (copies), sorted by name. */
  objects(resource: string): StoredObject[] {
    return [...this.#store.get(this.#def(resource).plural)!.values()]
      .sort((a, b) => a.metadata.name < b.metadata.name ? -1 : 1)
      .map((o) => structuredClone(o));
  }

  /**
   * The stored objects matching a label query, sorted by name: filtered
   * before anything is copied, and not copied at all (the caller serialises
   * them at once), so a store of 100,000 objects answers a selective list
   * cheaply.
   */
  #matching(plural: string, requirements: ReturnType<typeof parseLabelQuery>): StoredObject[] {
    return [...this.#store.get(plural)!.values()]
      .filter((o) => matchesLabelQuery(requirements, o.metadata.labels ?? {}))
      .sort((a, b) => a.metadata.name < b.metadata.name ? -1 : 1);
  }

  /** Removes a stored object; true when it existed. */
  remove(resource: string, name: string): boolean {
    return this.#store.get(this.#def(resource).plural)!.delete(name);
  }

  /**
   * Writes a kubeconfig for this server to `path` and returns the path: YAML
   * as kubectl writes it, or with `json` the form `galactic install` writes.
   */
  async writeKubeconfigFile(
    path: string,
    options: { token?: string; json?: boolean } = {},
  ): Promise<string> {
    const token = options.token ?? this.token;
    const text = options.json
      ? JSON.stringify(
        {
          apiVersion: "v1",
          kind: "Config",
          clusters: [{
            name: "fake",
            cluster: { server: this.url, "insecure-skip-tls-verify": true },
          }],
          users: [{ name: "galactic-cni", user: { token } }],
          contexts: [{ name: "fake", context: { cluster: "fake", user: "galactic-cni" } }],
          "current-context": "fake",
        },
        null,
        2,
      )
      : [
        "apiVersion: v1",
        "kind: Config",
        "clusters:",
        "- name: fake",
        "  cluster:",
        `    server: ${this.url}`,
        "    insecure-skip-tls-verify: true",
        "users:",
        "- name: galactic-cni",
        "  user:",
        `    token: ${JSON.stringify(token)}`,
        "contexts:",
        "- name: fake",
        "  context:",
        "    cluster: fake",
        "    user: galactic-cni",
        "current-context: fake",
        "",
      ].join("\n");
    await Deno.writeTextFile(path, text, { mode: 0o600 });
    return path;
  }

  /** Writes `<dir>/kubeconfig` for this server and returns its path. */
  writeKubeconfig(dir: string, options: { token?: string; json?: boolean } = {}): Promise<string> {
    return this.writeKubeconfigFile(`${dir.replace(/\/$/, "")}/kubeconfig`, options);
  }

  /** Stops serving and drops every connection; safe to call twice. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      this.#listener.close();
      for (const pair of this.#pairs.values()) {
        closeQuietly(pair.client);
        closeQuietly(pair.upstream);
      }
      await this.#relay;
      await this.#backend.shutdown();
    })();
    return this.#closed;
  }

  /** `await using` support. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ---- request handling ------------------------------------------------------

  #route(method: string, url: URL): Route | undefined {
    const parts = url.pathname.replace(/\/$/, "").split("/").slice(1).map(decodeURIComponent);
    if (
      parts.length === 7 && parts[0] === "api" && parts[1] === "v1" &&
      parts[2] === "namespaces" && parts[4] === "serviceaccounts" && parts[6] === "token"
    ) {
      return method === "POST"
        ? { verb: "create", name: parts[5]!, token: { namespace: parts[3]!, name: parts[5]! } }
        : undefined;
    }
    if (parts[0] !== "apis") return undefined;
    if (parts.length <= 3) {
      if (method !== "GET") return undefined;
      const [, group, version] = parts;
      return {
        verb: "discover",
        ...(group !== undefined && { group }),
        ...(version !== undefined && { version }),
      };
    }
    const [, group, version, ...rest] = parts;
    const namespaced = rest[0] === "namespaces" && rest.length >= 3;
    const [plural, name, ...more] = namespaced ? rest.slice(2) : rest;
    if (more.length > 0) return undefined;
    const def = this.#defs.find((d) =>
      d.group === group && d.version === version && d.plural === plural
    );
    if (!def) return undefined;
    const verbs: Record<string, string | undefined> = name === undefined
      ? {
        GET: url.searchParams.get("watch") === "true" ? "watch" : "list",
        POST: "create",
        DELETE: "deletecollection",
      }
      : { GET: "get", PUT: "update", PATCH: "patch", DELETE: "delete" };
    const verb = verbs[method];
    if (!verb) return undefined;
    const clusterScoped = def.crd.scope === "Cluster";
    // A namespaced resource is listed across namespaces at the cluster path; nothing else is.
    const wrongScope = namespaced
      ? clusterScoped
      : !clusterScoped && verb !== "list" && verb !== "watch";
    return {
      def,
      verb,
      ...(name !== undefined && { name }),
      ...(wrongScope && { wrongScope }),
    };
  }

  #takeFault(record: RequestRecord): FaultSpec | undefined {
    const entry = this.#faults.find(({ spec }) =>
      (spec.method === undefined || spec.method.toUpperCase() === record.method) &&
      (spec.verb === undefined || spec.verb === record.verb) &&
      (spec.resource === undefined || spec.resource === record.resource)
    );
    if (!entry) return undefined;
    if (--entry.left <= 0) this.#faults = this.#faults.filter((f) => f !== entry);
    return entry.spec;
  }

  async #handle(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/_fake/")) return await this.#control(request, url);
    const route = this.#route(request.method, url);
    const record: RequestRecord = {
      method: request.method,
      path: url.pathname + url.search,
      verb: route?.verb ?? "unknown",
      ...(route?.def && { resource: route.def.plural }),
      ...(route?.token && { resource: "serviceaccounts/token" }),
      ...(route?.name !== undefined && { name: route.name }),
      status: 0,
    };
    this.requests.push(record);
    for (const hook of this.#hooks) await hook(record);
    const fault = this.#takeFault(record);
    let response: Response | undefined;
    if (fault) {
      record.fault = fault;
      if (fault.delayMs) await pause(fault.delayMs, this.#closing.signal);
      if (fault.reset) {
        this.#dropConnection(info);
        return new Response(null, { status: 500 });
      }
      if (fault.body !== undefined) {
        response = new Response(fault.body, {
          status: fault.status ?? 200,
          headers: { "content-type": "application/json" },
        });
      } else if (fault.stall) {
        response = new Response(new ReadableStream({}), {
          status: 200,
          headers: { "content-type": "application/json" },
        });
      } else if (fault.status) response = this.#faultResponse(fault);
    }
    response ??= await this.#serve(request, { url, route, connection: info.remoteAddr.port });
    record.status = response.status;
    return response;
  }

  #faultResponse(fault: FaultSpec): Response {
    const status = fault.status!;
    const [reason, message] = STATUS_REASONS[status] ?? ["", `injected HTTP ${status}`];
    const headers: Record<string, string> = fault.retryAfterSeconds !== undefined
      ? { "retry-after": String(fault.retryAfterSeconds) }
      : {};
    const details = fault.retryAfterSeconds !== undefined
      ? { retryAfterSeconds: fault.retryAfterSeconds }
      : undefined;
    return statusResponse(status, reason, message, { headers, ...(details && { details }) });
  }

  async #serve(
    request: Request,
    target: { url: URL; route: Route | undefined; connection: number },
  ): Promise<Response> {
    const { url, route } = target;
    const auth = request.headers.get("authorization");
    const bearer = auth?.startsWith("Bearer ") ? auth.slice("Bearer ".length) : undefined;
    const authenticated = bearer !== undefined
      ? bearer === this.token || this.tokens.authenticates(bearer)
      : auth === null && this.#authenticatedByTls;
    if (!authenticated) return statusResponse(401, "Unauthorized", "Unauthorized");
    if (route?.token) return await this.#tokenRequest(route.token, request);
    if (!route) {
      return new Response("404 page not found\n", {
        status: 404,
        headers: { "content-type": "text/plain" },
      });
    }
    if (route.verb === "discover") return this.#discovery(route);
    const { name, verb } = route;
    const def = route.def!;
    if (route.wrongScope) {
      return statusResponse(404, "NotFound", "the server could not find the requested resource", {
        details: {},
      });
    }
    if (def.crd.scope !== "Cluster" && verb !== "list" && verb !== "watch") {
      return statusResponse(
        405,
        "MethodNotAllowed",
        "the fake API server stores only cluster-scoped objects",
      );
    }
    if (!this.#rbac.get(qualified(def))?.has(verb)) {
      const subject = name === undefined
        ? qualified(def)
        : `${qualified(def)} ${JSON.stringify(name)}`;
      return statusResponse(
        403,
        "Forbidden",
        `${subject} is forbidden: User ${quote(this.#user)} cannot ${verb} resource ` +
          `${quote(def.plural)} in API group ${quote(def.group)} at the cluster scope`,
        { details: { ...(name !== undefined && { name }), group: def.group, kind: def.plural } },
      );
    }
    switch (verb) {
      case "list":
        return this.#list(def, url);
      case "watch":
        return this.#watch(def, url, target.connection);
      case "get":
        return this.#get(def, name!);
      case "create":
        return this.#create(def, await this.#body(request));
      case "update":
        return this.#update(def, name!, await this.#body(request));
      case "patch":
        return this.#patch(def, name!, request);
      case "delete":
        return this.#delete(def, name!, await this.#body(request));
      default:
        return statusResponse(
          405,
          "MethodNotAllowed",
          `the fake API server does not implement ${verb}`,
        );
    }
  }

  /**
   * API discovery from the CRD set, as the real server serves it to any
   * authenticated client: `/apis` (APIGroupList), `/apis/<group>` (APIGroup),
   * `/apis/<group>/<version>` (APIResourceList, with each resource's scope).
   */
  #discovery(route: Route): Response {
    const groups = [...new Set(this.#defs.map((d) => d.group))].map((name) => {
      const versions = [
        ...new Set(this.#defs.filter((d) => d.group === name).map((d) => d.version)),
      ]
        .map((version) => ({ groupVersion: `${name}/${version}`, version }));
      return { name, versions, preferredVersion: versions[0]! };
    });
    const notFound = (): Response =>
      statusResponse(404, "NotFound", "the server could not find the requested resource", {
        details: {},
      });
    if (route.group === undefined) {
      return json(200, { kind: "APIGroupList", apiVersion: "v1", groups });
    }
    const group = groups.find((g) => g.name === route.group);
    if (!group) return notFound();
    if (route.version === undefined) {
      return json(200, { kind: "APIGroup", apiVersion: "v1", ...group });
    }
    const defs = this.#defs.filter((d) => d.group === route.group && d.version === route.version);
    if (defs.length === 0) return notFound();
    const verbs = [
      "delete",
      "deletecollection",
      "get",
      "list",
      "patch",
      "create",
      "update",
      "watch",
    ];
    return json(200, {
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: `${route.group}/${route.version}`,
      resources: defs.flatMap((d) => [
        {
          name: d.plural,
          singularName: d.crd.names.singular,
          namespaced: d.crd.scope === "Namespaced",
          kind: d.kind,
          verbs,
          ...(d.crd.names.shortNames && { shortNames: d.crd.names.shortNames }),
        },
        ...(d.schema.subresources.status
          ? [{
            name: `${d.plural}/status`,
            singularName: "",
            namespaced: d.crd.scope === "Namespaced",
            kind: d.kind,
            verbs: ["get", "patch", "update"],
          }]
          : []),
      ]),
    });
  }

  /**
   * TokenRequest: RBAC `create` on `serviceaccounts/token` (with its
   * resourceNames, and a Role's namespace), then the issuer.
   */
  async #tokenRequest(
    target: { namespace: string; name: string },
    request: Request,
  ): Promise<Response> {
    const key = "serviceaccounts/token.";
    const names = this.#rbacNames.get(key);
    const namespace = this.#rbacNamespaces.get(key);
    if (
      !this.#rbac.get(key)?.has("create") || (names && !names.has(target.name)) ||
      (namespace !== undefined && namespace !== target.namespace)
    ) {
      return statusResponse(
        403,
        "Forbidden",
        `serviceaccounts ${quote(target.name)} is forbidden: User ${quote(this.#user)} cannot ` +
          `create resource "serviceaccounts/token" in API group "" in the namespace ${
            quote(target.namespace)
          }`,
        { details: { name: target.name, kind: "serviceaccounts" } },
      );
    }
    const answer = this.tokens.request(target.namespace, target.name, await this.#body(request));
    if (answer.status === 201) return json(201, answer.body);
    return statusResponse(answer.status, answer.reason, answer.message, {
      ...(answer.details && { details: answer.details }),
    });
  }

  async #body(request: Request): Promise<unknown> {
    const text = await request.text();
    if (text.trim() === "") return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return Symbol.for("invalid-json");
    }
  }

  #notFound(def: ResourceDef, name: string): Response {
    return statusResponse(404, "NotFound", `${qualified(def)} ${JSON.stringify(name)} not found`, {
      details: { name, group: def.group, kind: def.plural },
    });
  }

  #badRequest(message: string): Response {
    return statusResponse(400, "BadRequest", message);
  }

  #invalid(def: ResourceDef, name: string, errors: FieldError[]): Response {
    return statusResponse(422, "Invalid", invalidMessage(def, name, errors), {
      details: {
        name,
        group: def.group,
        kind: def.kind,
        causes: errors.map((e) => ({ reason: e.reason, message: e.message, field: e.field })),
      },
    });
  }

  /**
   * Admits a write of the main resource: `.status` is the status
   * subresource's (dropped on create, kept from `previous` on update).
   */
  #admit(def: ResourceDef, object: StoredObject, previous?: StoredObject): StoredObject | Response {
    if (def.schema.subresources.status) {
      if (previous?.status !== undefined) object.status = structuredClone(previous.status);
      else delete object.status;
    }
    const { object: admitted, errors } = admit(def.crd, def.schema, object);
    if (errors.length > 0) return this.#invalid(def, object.metadata?.name ?? "", errors);
    return admitted;
  }

  #stamp(def: ResourceDef, object: StoredObject, previous?: StoredObject): StoredObject {
    object.apiVersion = `${def.group}/${def.version}`;
    object.kind = def.kind;
    object.metadata = { ...(object.metadata ?? {}) };
    object.metadata.uid = previous?.metadata.uid ?? object.metadata.uid ?? crypto.randomUUID();
    object.metadata.creationTimestamp = previous?.metadata.creationTimestamp ?? timestamp();
    const specChanged = !previous || !deepEqual(previous.spec, object.spec);
    object.metadata.generation = previous
      ? previous.metadata.generation + (specChanged ? 1 : 0)
      : 1;
    object.metadata.resourceVersion = String(++this.#revision);
    return object;
  }

  #list(def: ResourceDef, url: URL): Response {
    let requirements;
    try {
      requirements = parseLabelQuery(url.searchParams.get("labelSelector") ?? "");
    } catch (error) {
      return this.#badRequest((error as Error).message);
    }
    const all = this.#matching(def.plural, requirements);
    const token = url.searchParams.get("continue");
    let start = 0;
    if (token) {
      let epoch: number, after: string;
      try {
        const decoded = atob(token);
        const slash = decoded.indexOf("/");
        [epoch, after] = [Number(decoded.slice(0, slash)), decoded.slice(slash + 1)];
        if (slash < 0 || !Number.isInteger(epoch)) throw new Error("no epoch");
      } catch {
        return this.#badRequest(`invalid continue token ${JSON.stringify(token)}`);
      }
      if (epoch < this.#compactions) {
        return statusResponse(
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result. " +
            "You can start a new list without the continue parameter.",
        );
      }
      start = all.findIndex((o) => o.metadata.name > after);
      if (start < 0) start = all.length;
    }
    const limitText = url.searchParams.get("limit");
    const limit = limitText === null ? 0 : Number(limitText);
    const items = limit > 0 ? all.slice(start, start + limit) : all.slice(start);
    const remaining = all.length - start - items.length;
    const metadata: StoredObject = { resourceVersion: String(this.#revision) };
    if (remaining > 0 && items.length > 0) {
      metadata.continue = btoa(`${this.#compactions}/${items[items.length - 1]!.metadata.name}`);
      metadata.remainingItemCount = remaining;
    }
    return json(200, {
      apiVersion: `${def.group}/${def.version}`,
      kind: `${def.kind}List`,
      metadata,
      items,
    });
  }

  #get(def: ResourceDef, name: string): Response {
    const stored = this.#store.get(def.plural)!.get(name);
    return stored ? json(200, stored) : this.#notFound(def, name);
  }

  #checkBody(def: ResourceDef, body: unknown): StoredObject | Response {
    if (!isRecord(body)) return this.#badRequest("the body of the request is not a JSON object");
    if (body.apiVersion !== `${def.group}/${def.version}` || body.kind !== def.kind) {
      return this.#badRequest(
        `the API version in the data (${body.apiVersion}) or kind (${body.kind}) does not match the expected ` +
          `${def.group}/${def.version}, Kind=${def.kind}`,
      );
    }
    return structuredClone(body);
  }

  #create(def: ResourceDef, body: unknown): Response {
    const object = this.#checkBody(def, body);
    if (object instanceof Response) return object;
    if (object.metadata?.resourceVersion) {
      return statusResponse(
        500,
        "InternalError",
        "resourceVersion should not be set on objects to be created",
      );
    }
    const name = object.metadata?.name ?? "";
    const admitted = this.#admit(def, object);
    if (admitted instanceof Response) return admitted;
    const store = this.#store.get(def.plural)!;
    if (store.has(name)) {
      return statusResponse(
        409,
        "AlreadyExists",
        `${qualified(def)} ${JSON.stringify(name)} already exists`,
        {
          details: { name, group: def.group, kind: def.plural },
        },
      );
    }
    delete admitted.metadata.uid;
    const stored = this.#stamp(def, admitted);
    store.set(name, stored);
    return json(201, stored);
  }

  #staleConflict(def: ResourceDef, name: string): Response {
    return this.#conflict(
      def,
      name,
      `Operation cannot be fulfilled on ${qualified(def)} ${quote(name)}: ` +
        "the object has been modified; please apply your changes to the latest version and try again",
    );
  }

  #conflict(def: ResourceDef, name: string, message: string): Response {
    return statusResponse(409, "Conflict", message, {
      details: { name, group: def.group, kind: def.plural },
    });
  }

  #replace(def: ResourceDef, name: string, body: StoredObject, previous: StoredObject): Response {
    const object = this.#admit(def, body, previous);
    if (object instanceof Response) return object;
    const unchanged = deepEqual(object.spec, previous.spec) &&
      deepEqual(object.metadata.labels, previous.metadata.labels) &&
      deepEqual(object.metadata.annotations, previous.metadata.annotations);
    if (unchanged) return json(200, previous);
    const stored = this.#stamp(def, object, previous);
    this.#store.get(def.plural)!.set(name, stored);
    return json(200, stored);
  }

  #update(def: ResourceDef, name: string, body: unknown): Response {
    const object = this.#checkBody(def, body);
    if (object instanceof Response) return object;
    if (object.metadata?.name !== name) {
      return this.#badRequest(
        `the name of the object (${object.metadata?.name}) does not match the name on the URL (${name})`,
      );
    }
    const previous = this.#store.get(def.plural)!.get(name);
    if (!previous) return this.#notFound(def, name);
    const version = object.metadata.resourceVersion;
    if (!version) {
      return this.#invalid(def, name, [{
        field: "metadata.resourceVersion",
        reason: "FieldValueInvalid",
        message: "Invalid value: 0x0: must be specified for an update",
      }]);
    }
    if (version !== previous.metadata.resourceVersion) {
      return this.#staleConflict(def, name);
    }
    return this.#replace(def, name, object, previous);
  }

  async #patch(def: ResourceDef, name: string, request: Request): Promise<Response> {
    const type = (request.headers.get("content-type") ?? "").split(";")[0]!.trim();
    if (type !== "application/merge-patch+json") {
      return statusResponse(
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ` +
          `application/merge-patch+json (the fake API server implements only merge patches; got ${type})`,
      );
    }
    const patch = await this.#body(request);
    if (!isRecord(patch)) return this.#badRequest("the patch is not a JSON object");
    const previous = this.#store.get(def.plural)!.get(name);
    if (!previous) return this.#notFound(def, name);
    const version = patch.metadata?.resourceVersion;
    if (version !== undefined && version !== previous.metadata.resourceVersion) {
      return this.#staleConflict(def, name);
    }
    const object = mergePatch(previous, patch) as StoredObject;
    object.metadata.name = name;
    return this.#replace(def, name, object, previous);
  }

  #delete(def: ResourceDef, name: string, body: unknown): Response {
    const store = this.#store.get(def.plural)!;
    const stored = store.get(name);
    if (!stored) return this.#notFound(def, name);
    const preconditions = isRecord(body) && isRecord(body.preconditions) ? body.preconditions : {};
    if (preconditions.uid !== undefined && preconditions.uid !== stored.metadata.uid) {
      return this.#conflict(
        def,
        name,
        `Precondition failed: UID in precondition: ${preconditions.uid}, UID in object meta: ${stored.metadata.uid}`,
      );
    }
    if (
      preconditions.resourceVersion !== undefined &&
      preconditions.resourceVersion !== stored.metadata.resourceVersion
    ) {
      return this.#conflict(
        def,
        name,
        `Precondition failed: ResourceVersion in precondition: ${preconditions.resourceVersion}, ` +
          `ResourceVersion in object meta: ${stored.metadata.resourceVersion}`,
      );
    }
    store.delete(name);
    ++this.#revision;
    return json(200, stored);
  }

  async #control(request: Request, url: URL): Promise<Response> {
    const path = url.pathname.slice("/_fake/".length);
    const body = request.method === "POST" ? await this.#body(request) : undefined;
    try {
      if (path === "requests" && request.method === "GET") {
        return json(200, { requests: this.requests, counts: this.counts() });
      }
      if (path === "requests" && request.method === "DELETE") {
        this.resetLog();
        return json(200, {});
      }
      if (path === "faults" && request.method === "POST") {
        this.fault(body as FaultSpec);
        return json(200, {});
      }
      if (path === "faults" && request.method === "DELETE") {
        this.clearFaults();
        return json(200, {});
      }
      if (path === "objects" && request.method === "GET") {
        const plurals = [...new Set(this.#defs.map((d) => d.plural))];
        return json(200, { items: plurals.flatMap((plural) => this.objects(plural)) });
      }
      if (path === "objects" && request.method === "POST") {
        const unchecked = url.searchParams.get("unchecked") ?? undefined;
        return json(200, this.seed(body as StoredObject, { ...(unchecked && { unchecked }) }));
      }
      if (path === "rbac/deny" && request.method === "POST") {
        const { verb, resource } = body as { verb: string; resource: string };
        this.deny(verb, resource);
        return json(200, {});
      }
      if (path === "clock" && request.method === "POST") {
        this.tokens.advance(Number((body as { advanceSeconds?: unknown }).advanceSeconds) * 1000);
        return json(200, { now: this.tokens.now() });
      }
      if (path === "tokens/revoke" && request.method === "POST") {
        const account = (body as { account?: string } | undefined)?.account;
        return json(200, { revoked: this.tokens.revoke(account) });
      }
      if (path === "rbac/reset" && request.method === "POST") {
        this.resetRbac();
        return json(200, {});
      }
    } catch (error) {
      return json(400, { error: (error as Error).message });
    }
    return json(404, { error: `no control endpoint ${request.method} ${url.pathname}` });
  }
}

/** Starts a fake API server on 127.0.0.1. */
export function startFakeApiServer(options: FakeApiServerOptions = {}): FakeApiServer {
  return new FakeApiServer(options);
}

/** Reads a seed file: a list of objects, or `{ items: [...] }`. */
export async function readSeed(path: string): Promise<StoredObject[]> {
  const value = JSON.parse(await Deno.readTextFile(path));
  const items = Array.isArray(value) ? value : value?.items;
  if (!Array.isArray(items)) {
    throw new Error(`seed file ${path} holds neither a list nor {items: [...]}`);
  }
  return items;
}

function argument(args: string[], flag: string): string | undefined {
  const index = args.indexOf(flag);
  return index >= 0 ? args[index + 1] : undefined;
}

async function main(args: string[]): Promise<void> {
  const server = startFakeApiServer({
    port: Number(argument(args, "--port") ?? 0),
    ...(argument(args, "--token") !== undefined && { token: argument(args, "--token")! }),
  });
  const seed = argument(args, "--seed");
  if (seed) { for (const object of await readSeed(seed)) server.seed(object); }
  const kubeconfig = argument(args, "--kubeconfig");
  if (kubeconfig) await server.writeKubeconfigFile(kubeconfig);
  const stop = async (): Promise<void> => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  console.log(server.url);
}

if (import.meta.main) await main(Deno.args);
