/**
 * The slice of the Kubernetes API the plugin uses, as plain types: the three
 * cluster-scoped resources, the object shape, and {@linkcode KubeApi}, the
 * client interface the BGP logic codes against. `client.ts` implements the
 * interface over Deno's fetch.
 *
 * @module
 */

import { CniError } from "../cni/errors.ts";
import type { Deadline } from "./deadline.ts";

/** A cluster-scoped custom resource. */
export interface Resource {
  /** API group, e.g. `bgp.miloapis.com`. */
  readonly group: string;
  /** API version within the group. */
  readonly version: string;
  /** Plural resource name as in URLs and RBAC rules. */
  readonly plural: string;
  readonly kind: string;
}

/** `BGPProvider`: one BGP daemon; its node is the label {@linkcode NODE_LABEL}. */
export const BGP_PROVIDERS: Resource = {
  group: "providers.bgp.miloapis.com",
  version: "v1alpha1",
  plural: "bgpproviders",
  kind: "BGPProvider",
};

/** `BGPInstance`: a BGP speaker configuration selecting providers. */
export const BGP_INSTANCES: Resource = {
  group: "bgp.miloapis.com",
  version: "v1alpha1",
  plural: "bgpinstances",
  kind: "BGPInstance",
};

/** `BGPVRFInstance`: a VRF declared to the providers of a BGPInstance. */
export const BGP_VRF_INSTANCES: Resource = {
  group: "bgp.miloapis.com",
  version: "v1alpha1",
  plural: "bgpvrfinstances",
  kind: "BGPVRFInstance",
};

/** Label on a BGPProvider naming the node it runs on. */
export const NODE_LABEL = "bgp.miloapis.com/node";

/**
 * `plural.group`, the resource's name in RBAC messages
 * (`bgpvrfinstances.bgp.miloapis.com`); the core group's are bare (`serviceaccounts/token`).
 */
export function qualifiedName(resource: Resource): string {
  return resource.group === "" ? resource.plural : `${resource.plural}.${resource.group}`;
}

/**
 * `serviceaccounts/token` (core v1): the TokenRequest subresource, through
 * which the node agent issues the plugin's expiring token
 * ({@linkcode KubeApi.requestToken}).
 */
export const SERVICE_ACCOUNT_TOKENS: Resource = {
  group: "",
  version: "v1",
  plural: "serviceaccounts/token",
  kind: "TokenRequest",
};

/** `spec` of an `authentication.k8s.io/v1` TokenRequest. */
export interface TokenRequestSpec {
  /** Requested lifetime; the server may shorten it (never below 600). */
  readonly expirationSeconds: number;
  /** Audiences; empty or absent: the API server's own (what it accepts as a bearer token). */
  readonly audiences?: readonly string[];
}

/** `status` of an issued TokenRequest. */
export interface IssuedToken {
  /** The bearer token (a secret: never log or echo it). */
  readonly token: string;
  /** When the server stops accepting it (may differ from the requested lifetime). */
  readonly expirationTimestamp: Date;
}

/** `group/version`, the `apiVersion` of the resource's objects. */
export function apiVersion(resource: Resource): string {
  return `${resource.group}/${resource.version}`;
}

/** Object metadata, the fields the plugin reads or writes. */
export interface ObjectMeta {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Opaque version for optimistic concurrency (set by the server). */
  resourceVersion?: string;
  /** Unique id (set by the server). */
  uid?: string;
  /** Spec generation (set by the server). */
  generation?: number;
  /** Creation time (set by the server). */
  creationTimestamp?: string;
  /** Anything else the server sent, kept on update. */
  [field: string]: unknown;
}

/** A Kubernetes object as JSON. */
export interface KubeObject {
  /** `group/version`. */
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec?: Record<string, unknown>;
  /** Observed state (written by controllers). */
  status?: unknown;
}

/** Options every request takes. */
export interface CallOptions {
  /** Budget shared by the request and its retries. */
  readonly deadline: Deadline;
}

/** Options of a list request. */
export interface ListOptions extends CallOptions {
  /** Server-side label selector, e.g. `a=b,c in (x,y)`. */
  readonly labelSelector?: string;
  /** Page size; without it the whole collection is returned. */
  readonly limit?: number;
  /** Stop after the first page (used with `limit` to probe). */
  readonly firstPageOnly?: boolean;
}

/** Options of a delete request. */
export interface DeleteOptions extends CallOptions {
  /** Delete only the object with this uid (409 Conflict otherwise). */
  readonly uid?: string;
}

/** One resource of a group version, as API discovery lists it. */
export interface ApiResource {
  /** Plural name (`bgpvrfinstances`; subresources are `plural/sub`). */
  readonly name: string;
  /** Kind. */
  readonly kind: string;
  /** Whether the resource is namespaced (else cluster-scoped). */
  readonly namespaced: boolean;
}

/**
 * Client for the plugin's resources. Failures are {@linkcode KubeApiError}s
 * whose CNI code already says what to do (11: try again later, 101: the
 * server refused); 404 is a value where the call defines one.
 */
export interface KubeApi {
  /** API server URL (for messages). */
  readonly server: string;
  /** Lists objects (every page unless `firstPageOnly`). */
  list(resource: Resource, options: ListOptions): Promise<KubeObject[]>;
  /** Reads one object; `undefined` when it does not exist. */
  get(resource: Resource, name: string, options: CallOptions): Promise<KubeObject | undefined>;
  /** Creates an object; 409 AlreadyExists is thrown with `reason: "AlreadyExists"`. */
  create(resource: Resource, object: KubeObject, options: CallOptions): Promise<KubeObject>;
  /** Replaces an object (PUT with its resourceVersion); a stale one throws `reason: "Conflict"`. */
  replace(resource: Resource, object: KubeObject, options: CallOptions): Promise<KubeObject>;
  /** Deletes an object; `false` when it did not exist. */
  delete(resource: Resource, name: string, options: DeleteOptions): Promise<boolean>;
  /**
   * Discovery (`GET /apis/<group>/<version>`, allowed to every authenticated
   * client): the group version's resources; `undefined` when it is not served.
   */
  apiResources(
    group: string,
    version: string,
    options: CallOptions,
  ): Promise<ApiResource[] | undefined>;
  /** Discovery (`GET /apis`): each served API group with its versions. */
  apiGroups(options: CallOptions): Promise<Map<string, string[]>>;
  /**
   * Issues a token of ServiceAccount `namespace/serviceAccount`: `POST
   * /api/v1/namespaces/{namespace}/serviceaccounts/{serviceAccount}/token`
   * with an `authentication.k8s.io/v1` TokenRequest (RBAC: `create` on
   * `serviceaccounts/token`). Not retried on 4xx like every call.
   */
  requestToken(
    namespace: string,
    serviceAccount: string,
    spec: TokenRequestSpec,
    options: CallOptions,
  ): Promise<IssuedToken>;
  /** Releases connections; safe to call twice. */
  close(): Promise<void>;
}

/** A failed API call: a CNI error that also carries the HTTP status and reason. */
export class KubeApiError extends CniError {
  /** HTTP status, when the server answered. */
  readonly status: number | undefined;
  /** `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, ...), when given. */
  readonly reason: string | undefined;

  constructor(
    code: number,
    message: string,
    options: { status?: number; reason?: string; details?: string; cause?: unknown } = {},
  ) {
    super(code, message, { details: options.details, cause: options.cause });
    this.name = "KubeApiError";
    this.status = options.status;
    this.reason = options.reason;
  }
}

/** True when `error` is an API error with the given HTTP status (and reason, if given). */
export function isApiStatus(
  error: unknown,
  status: number,
  reason?: string,
): error is KubeApiError {
  return error instanceof KubeApiError && error.status === status &&
    (reason === undefined || error.reason === reason);
}
