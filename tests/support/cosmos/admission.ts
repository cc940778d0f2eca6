/**
 * What a real API server does to a custom resource it is asked to store,
 * given the resource's CRD (`crds.ts`), in the server's order:
 *
 * 1. prune: fields the structural schema does not declare are dropped (not
 *    refused), as are nulls of non-nullable fields; `metadata` keeps only
 *    ObjectMeta's fields, and a cluster-scoped object loses its namespace;
 * 2. default: absent fields with a schema `default` get it;
 * 3. validate: the OpenAPI schema (type, required, enum, pattern, format,
 *    lengths, item counts, bounds, list types) and object metadata;
 * 4. CEL: every `x-kubernetes-validations` rule, evaluated with a real CEL
 *    implementation (`@marcbachmann/cel-js`), unless step 3 found an error
 *    that blocks it (then the server says so instead, as the real one does).
 *
 * Errors are field errors as apimachinery renders them (`field: body`, with
 * the `FieldValue…` cause types), so the fake's 422 `Status` reads like the
 * real server's. Test-only: the plugin never loads this module or its CEL
 * library.
 *
 * @module
 */

import { parse as parseCel } from "@marcbachmann/cel-js";
import type { Crd, CrdVersion, Schema } from "./crds.ts";

/** A stored or submitted object (JSON). */
// deno-lint-ignore no-explicit-any
export type JsonObject = Record<string, any>;

/** One field error: `field` and the rendered body (`Required value`, `Invalid value: …`). */
export interface FieldError {
  /** Path such as `spec.importRouteTargets[0].value`. */
  readonly field: string;
  /** apimachinery cause type (`FieldValueRequired`, `FieldValueInvalid`, …). */
  readonly reason: string;
  /** The error without its field (apimachinery's `ErrorBody`). */
  readonly message: string;
}

/** The outcome: the object as the server would store it, and its errors. */
export interface Admission {
  readonly object: JsonObject;
  readonly errors: FieldError[];
}

const OBJECT_META_FIELDS = new Set([
  "name",
  "generateName",
  "namespace",
  "selfLink",
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
  "labels",
  "annotations",
  "ownerReferences",
  "finalizers",
  "managedFields",
]);

const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_PREFIX = SUBDOMAIN;
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Error types whose presence keeps CEL rules from running (apiextensions-apiserver). */
const BLOCKING = new Set([
  "FieldValueRequired",
  "FieldValueNotSupported",
  "FieldValueTooLong",
  "FieldValueTooMany",
  "FieldValueTypeInvalid",
]);

function isRecord(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Go's `%q`/JSON rendering of a bad value, as `ErrorBody` prints it. */
function shown(value: unknown): string {
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

function required(field: string): FieldError {
  return { field, reason: "FieldValueRequired", message: "Required value" };
}

function invalid(field: string, value: unknown, detail: string): FieldError {
  return {
    field,
    reason: "FieldValueInvalid",
    message: `Invalid value: ${shown(value)}: ${detail}`,
  };
}

function typeInvalid(field: string, actual: string, type: string): FieldError {
  return {
    field,
    reason: "FieldValueTypeInvalid",
    message: `Invalid value: ${shown(actual)}: ${field} in body must be of type ${type}: ${
      shown(actual)
    }`,
  };
}

/** JSON type name as the OpenAPI validator reports it. */
function jsonType(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function hasType(value: unknown, type: Schema["type"]): boolean {
  switch (type) {
    case undefined:
      return true;
    case "object":
      return isRecord(value);
    case "array":
      return Array.isArray(value);
    case "integer":
      return Number.isInteger(value);
    case "number":
      return typeof value === "number";
    case "string":
      return typeof value === "string";
    case "boolean":
      return typeof value === "boolean";
  }
}

function child(path: string, key: string): string {
  return path === "" ? key : `${path}.${key}`;
}

// ---- 1. pruning ------------------------------------------------------------

function prune(value: unknown, schema: Schema): void {
  if (schema["x-kubernetes-preserve-unknown-fields"]) return;
  if (Array.isArray(value)) {
    if (schema.items) { for (const item of value) prune(item, schema.items); }
    return;
  }
  if (!isRecord(value) || schema.type !== "object") return;
  const extra = typeof schema.additionalProperties === "object"
    ? schema.additionalProperties
    : undefined;
  for (const key of Object.keys(value)) {
    const property = schema.properties?.[key] ?? extra;
    if (!property && schema.additionalProperties !== true) delete value[key];
    else if (value[key] === null && !property?.nullable) delete value[key];
    else if (property) prune(value[key], property);
  }
}

function pruneRoot(object: JsonObject, schema: Schema, crd: Crd): void {
  for (const key of Object.keys(object)) {
    if (key === "apiVersion" || key === "kind" || key === "metadata") continue;
    const property = schema.properties?.[key];
    if (!property || (object[key] === null && !property.nullable)) delete object[key];
    else prune(object[key], property);
  }
  if (isRecord(object.metadata)) {
    for (const key of Object.keys(object.metadata)) {
      if (!OBJECT_META_FIELDS.has(key)) delete object.metadata[key];
    }
    if (crd.scope === "Cluster") delete object.metadata.namespace;
  }
}

// ---- 2. defaulting ---------------------------------------------------------

function applyDefaults(value: unknown, schema: Schema): void {
  if (Array.isArray(value)) {
    if (schema.items) { for (const item of value) applyDefaults(item, schema.items); }
    return;
  }
  if (!isRecord(value)) return;
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    if (value[key] === undefined && property.default !== undefined) {
      value[key] = structuredClone(property.default);
    }
    if (value[key] !== undefined) applyDefaults(value[key], property);
  }
  if (typeof schema.additionalProperties === "object") {
    for (const key of Object.keys(value)) {
      if (!schema.properties?.[key]) applyDefaults(value[key], schema.additionalProperties);
    }
  }
}

// ---- 3. schema validation --------------------------------------------------

/** The string formats cosmos's CRDs use, checked like kube-openapi's strfmt. */
const FORMATS: Record<string, (text: string) => boolean> = {
  ipv4: (text) => parseIpv4(text),
  ipv6: (text) => text.includes(":") && parseIpv6(text),
  "date-time": (text) =>
    /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(text) &&
    !Number.isNaN(Date.parse(text.replace(" ", "T"))),
};

/** Go's net.ParseIP for the dotted quad: four decimal octets, no leading zeros. */
function parseIpv4(text: string): boolean {
  const parts = text.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** Go's net.ParseIP for IPv6 text (with an optional trailing dotted quad, no zone). */
function parseIpv6(text: string): boolean {
  let groups = text;
  let tail = 0;
  const lastColon = text.lastIndexOf(":");
  if (text.slice(lastColon + 1).includes(".")) {
    if (!parseIpv4(text.slice(lastColon + 1))) return false;
    groups = `${text.slice(0, lastColon + 1)}0`;
    tail = 1;
  }
  const halves = groups.split("::");
  if (halves.length > 2) return false;
  const hex = /^[0-9a-fA-F]{1,4}$/;
  const count = (half: string): number | undefined => {
    if (half === "") return 0;
    const parts = half.split(":");
    return parts.every((p) => hex.test(p)) ? parts.length : undefined;
  };
  const counts = halves.map(count);
  if (counts.some((c) => c === undefined)) return false;
  const total = counts.reduce((a, b) => a! + b!, 0)! + tail;
  return halves.length === 2 ? total <= 7 : total === 8;
}

function listKey(item: unknown, keys: readonly string[]): string {
  return JSON.stringify(keys.map((k) => (isRecord(item) ? item[k] : undefined)));
}

function validate(value: unknown, schema: Schema, path: string, errors: FieldError[]): void {
  if (!hasType(value, schema.type)) {
    errors.push(typeInvalid(path, jsonType(value), schema.type!));
    return;
  }
  if (schema.enum && !schema.enum.some((allowed) => allowed === value)) {
    errors.push({
      field: path,
      reason: "FieldValueNotSupported",
      message: `Unsupported value: ${shown(value)}: supported values: ${
        schema.enum.map((v) => JSON.stringify(String(v))).join(", ")
      }`,
    });
  }
  if (typeof value === "string") {
    const length = [...value].length;
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      errors.push({
        field: path,
        reason: "FieldValueTooLong",
        message: `Too long: may not be more than ${schema.maxLength} bytes`,
      });
    }
    if (schema.minLength !== undefined && length < schema.minLength) {
      errors.push(
        invalid(path, value, `${path} in body should be at least ${schema.minLength} chars long`),
      );
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern).test(value)) {
      errors.push(invalid(path, value, `${path} in body should match '${schema.pattern}'`));
    }
    const format = schema.format === undefined ? undefined : FORMATS[schema.format];
    if (format && !format(value)) {
      // The OpenAPI validator reports a format as a type: FieldValueTypeInvalid (blocks CEL).
      errors.push({
        field: path,
        reason: "FieldValueTypeInvalid",
        message: `Invalid value: ${
          shown(value)
        }: ${path} in body must be of type ${schema.format}: ${shown(value)}`,
      });
    }
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) {
      errors.push(
        invalid(
          path,
          value,
          `${path} in body should be greater than or equal to ${schema.minimum}`,
        ),
      );
    }
    if (schema.maximum !== undefined && value > schema.maximum) {
      errors.push(
        invalid(path, value, `${path} in body should be less than or equal to ${schema.maximum}`),
      );
    }
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      const noun = schema.maxItems === 1 ? "item" : "items";
      errors.push({
        field: path,
        reason: "FieldValueTooMany",
        message: `Too many: ${value.length}: must have at most ${schema.maxItems} ${noun}`,
      });
    }
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      errors.push(
        invalid(
          path,
          value.length,
          `${path} in body should have at least ${schema.minItems} items`,
        ),
      );
    }
    value.forEach((item, i) =>
      schema.items && validate(item, schema.items, `${path}[${i}]`, errors)
    );
    const listType = schema["x-kubernetes-list-type"];
    if (listType === "map" || listType === "set") {
      const keys = schema["x-kubernetes-list-map-keys"] ?? [];
      const seen = new Set<string>();
      value.forEach((item, i) => {
        const key = listType === "map" ? listKey(item, keys) : JSON.stringify(item);
        if (seen.has(key)) {
          const shownKey = listType === "map"
            ? JSON.stringify(Object.fromEntries(keys.map((k) => [k, item?.[k]])))
            : shown(item);
          errors.push({
            field: `${path}[${i}]`,
            reason: "FieldValueDuplicate",
            message: `Duplicate value: ${shownKey}`,
          });
        }
        seen.add(key);
      });
    }
  }
  if (isRecord(value)) {
    for (const name of schema.required ?? []) {
      if (value[name] === undefined) errors.push(required(child(path, name)));
    }
    const extra = typeof schema.additionalProperties === "object"
      ? schema.additionalProperties
      : undefined;
    for (const [key, item] of Object.entries(value)) {
      const property = schema.properties?.[key] ?? extra;
      if (property && item !== undefined) validate(item, property, child(path, key), errors);
    }
  }
}

function validateMetadata(object: JsonObject, errors: FieldError[]): void {
  const meta = isRecord(object.metadata) ? object.metadata : {};
  const name = meta.name;
  if (typeof name !== "string" || name === "") {
    errors.push({
      field: "metadata.name",
      reason: "FieldValueRequired",
      message: "Required value: name or generateName is required",
    });
  } else if (name.length > 253 || !SUBDOMAIN.test(name)) {
    errors.push(invalid(
      "metadata.name",
      name,
      "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' " +
        "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex " +
        "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    ));
  }
  for (const [key, value] of Object.entries(isRecord(meta.labels) ? meta.labels : {})) {
    const slash = key.indexOf("/");
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const label = slash >= 0 ? key.slice(slash + 1) : key;
    const keyOk = label.length <= 63 && LABEL_NAME.test(label) &&
      (prefix === undefined || (prefix.length <= 253 && LABEL_PREFIX.test(prefix)));
    if (!keyOk) {
      errors.push(invalid(
        "metadata.labels",
        key,
        "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and " +
          "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', " +
          "regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
      ));
    }
    if (typeof value !== "string" || value.length > 63 || !LABEL_VALUE.test(value)) {
      errors.push(invalid(
        `metadata.labels`,
        value,
        "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' " +
          "or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or " +
          "'my_value',  or '12345', regex used for validation is " +
          "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
      ));
    }
  }
}

// ---- 4. CEL ----------------------------------------------------------------

type Program = (context: Record<string, unknown>) => unknown;
const programs = new Map<string, Program>();

function program(rule: string): Program {
  let compiled = programs.get(rule);
  if (!compiled) {
    compiled = parseCel(rule) as unknown as Program;
    programs.set(rule, compiled);
  }
  return compiled;
}

function evaluateRules(value: unknown, schema: Schema, path: string, errors: FieldError[]): void {
  if (value === undefined || !hasType(value, schema.type)) return;
  for (const { rule, message } of schema["x-kubernetes-validations"] ?? []) {
    // The server names a failed rule by its message (else the rule itself).
    const named = message ?? `failed rule: ${rule}`;
    let result: unknown;
    try {
      result = program(rule)({ self: value });
    } catch (error) {
      // e.g. "no such key: routerID evaluating rule: <message>", as the server words it.
      const why = (error as Error).message.split("\n")[0]!;
      const cause = why.charAt(0).toLowerCase() + why.slice(1);
      errors.push(invalid(path, schema.type ?? "", `${cause} evaluating rule: ${named}`));
      continue;
    }
    if (result !== true) errors.push(invalid(path, schema.type ?? "", named));
  }
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => evaluateRules(item, schema.items!, `${path}[${i}]`, errors));
  }
  if (isRecord(value)) {
    const extra = typeof schema.additionalProperties === "object"
      ? schema.additionalProperties
      : undefined;
    for (const [key, item] of Object.entries(value)) {
      const property = schema.properties?.[key] ?? extra;
      if (property) evaluateRules(item, property, child(path, key), errors);
    }
  }
}

/** The served version of `crd` named `version` (undefined when not served). */
export function servedVersion(crd: Crd, version: string): CrdVersion | undefined {
  return crd.versions.find((v) => v.name === version && v.served);
}

/**
 * Admits `object` as a write of `crd`'s `version` would: returns the pruned,
 * defaulted copy the server would store and every error it would report.
 */
export function admit(crd: Crd, version: CrdVersion, object: JsonObject): Admission {
  const stored = structuredClone(object);
  const schema = version.schema;
  pruneRoot(stored, schema, crd);
  applyDefaults(stored, schema);
  const errors: FieldError[] = [];
  for (const [key, property] of Object.entries(schema.properties ?? {})) {
    if (key === "metadata" || stored[key] === undefined) continue;
    validate(stored[key], property, key, errors);
  }
  for (const name of schema.required ?? []) {
    if (stored[name] === undefined) errors.push(required(name));
  }
  validateMetadata(stored, errors);
  if (errors.some((e) => BLOCKING.has(e.reason))) {
    errors.push({
      field: "<nil>",
      reason: "FieldValueInvalid",
      message: "Invalid value: null: some validation rules were not checked because the object " +
        "was invalid; correct the existing errors to complete validation",
    });
  } else {
    for (const [key, property] of Object.entries(schema.properties ?? {})) {
      if (key !== "metadata") evaluateRules(stored[key], property, key, errors);
    }
  }
  return { object: stored, errors };
}

/** `field: body` lines, as the 422 message lists them. */
export function describeErrors(errors: readonly FieldError[]): string[] {
  return errors.map((e) => `${e.field}: ${e.message}`);
}
