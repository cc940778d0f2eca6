/**
 * What the verbs need from the BGP control plane, independent of how it is
 * reached (the Kubernetes client in this process, or the node agent).
 *
 * @module
 */

import type { Identifier } from "../ids/mod.ts";

/** The (VPC, node) a BGPVRFInstance declares. */
export interface VrfKey {
  readonly vpc: Identifier;
  /** Kubernetes node name. */
  readonly node: string;
}

/** What this plugin writes (or would write) for a (VPC, node). */
export interface VrfDeclaration {
  /** BGPVRFInstance name. */
  readonly name: string;
  /** BGPInstance it refers to. */
  readonly instance: string;
  /** ASN of that instance. */
  readonly asn: number;
  /** `ASN:NN` route distinguisher. */
  readonly routeDistinguisher: string;
  /** `ASN:NN` route target (import and export). */
  readonly routeTarget: string;
}

/** A BGPVRFInstance found on the node, as GC sees it. */
export interface DeclaredVrf {
  readonly name: string;
  /** VPC hex from its label. */
  readonly vpcHex: string;
}

/** The BGP control plane as the verbs use it; every call has its own deadline. */
export interface BgpControlPlane {
  /**
   * ADD: finds the node's BGPInstance, refuses a route target already held by
   * another VPC, then creates or updates the (VPC, node) BGPVRFInstance.
   */
  declareVrf(key: VrfKey): Promise<VrfDeclaration>;
  /** DEL/rollback/GC: deletes the (VPC, node) BGPVRFInstance; absent is success. */
  withdrawVrf(key: VrfKey): Promise<void>;
  /** CHECK: differences between the stored object and what ADD would write; empty when equal. */
  verifyVrf(key: VrfKey): Promise<string[]>;
  /** GC: every BGPVRFInstance this plugin wrote for `node`. */
  listNodeVrfs(node: string): Promise<DeclaredVrf[]>;
  /** STATUS: throws a CniError (code 50/51 or 11) when ADD could not reach the API now. */
  probe(node: string): Promise<void>;
  /** Releases connections; safe to call twice. */
  close(): Promise<void>;
}
