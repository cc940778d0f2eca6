/**
 * The cosmos CRDs as data (`crds.json`, generated from the verbatim CRDs by
 * `generate_crds.ts`): what the fake API server serves, discovers and
 * validates against. Test-only: nothing on the plugin's path imports it.
 *
 * @module
 */

import data from "./crds.json" with { type: "json" };

/** One node of a CRD's structural schema (the keys cosmos's CRDs use). */
export interface Schema {
  readonly type?: "object" | "array" | "string" | "integer" | "number" | "boolean";
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly additionalProperties?: Schema | boolean;
  readonly items?: Schema;
  readonly required?: readonly string[];
  readonly enum?: readonly unknown[];
  readonly pattern?: string;
  readonly format?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly default?: unknown;
  readonly nullable?: boolean;
  readonly "x-kubernetes-validations"?: readonly { rule: string; message?: string }[];
  readonly "x-kubernetes-list-type"?: "atomic" | "set" | "map";
  readonly "x-kubernetes-list-map-keys"?: readonly string[];
  readonly "x-kubernetes-map-type"?: "atomic" | "granular";
  readonly "x-kubernetes-preserve-unknown-fields"?: boolean;
}

/** One version of a CRD. */
export interface CrdVersion {
  readonly name: string;
  readonly served: boolean;
  readonly storage: boolean;
  readonly subresources: { readonly status?: Record<string, never> };
  readonly schema: Schema;
}

/** The facts of one CustomResourceDefinition. */
export interface Crd {
  /** `plural.group`. */
  readonly name: string;
  readonly group: string;
  readonly names: {
    readonly kind: string;
    readonly listKind: string;
    readonly plural: string;
    readonly singular: string;
    readonly shortNames?: readonly string[];
  };
  readonly scope: "Cluster" | "Namespaced";
  readonly versions: readonly CrdVersion[];
}

/** Where the data comes from. */
export const COSMOS_SOURCE: {
  readonly project: string;
  readonly commit: string;
  readonly compatibleThrough: string;
  readonly files: readonly string[];
} = data.source;

/** The four cosmos CRDs at {@linkcode COSMOS_SOURCE}. */
export const COSMOS_CRDS: readonly Crd[] = data.crds as unknown as Crd[];

/** The CRD of `kind` (throws when the set has none). */
export function crdOfKind(kind: string, crds: readonly Crd[] = COSMOS_CRDS): Crd {
  const crd = crds.find((c) => c.names.kind === kind);
  if (!crd) throw new Error(`no CRD of kind ${kind} in the set`);
  return crd;
}

/** A copy of `crds` with `change` applied to the CRD of `kind` (tests of another cosmos). */
export function changedCrds(
  kind: string,
  change: (crd: Crd) => Crd | undefined,
  crds: readonly Crd[] = COSMOS_CRDS,
): Crd[] {
  return crds.flatMap((crd) => {
    if (crd.names.kind !== kind) return [crd];
    const changed = change(structuredClone(crd) as Crd);
    return changed ? [changed] : [];
  });
}
