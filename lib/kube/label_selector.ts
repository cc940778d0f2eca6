/**
 * Kubernetes `LabelSelector` (`matchLabels` AND `matchExpressions`) validation
 * and matching, with the apimachinery semantics:
 *
 * - every `matchLabels` entry and every expression must hold (AND);
 * - `In`: the key is present with one of `values`;
 * - `NotIn`: the key is absent, or present with none of `values`;
 * - `Exists` / `DoesNotExist`: the key is present / absent;
 * - `In` and `NotIn` need a non-empty `values`, `Exists` and `DoesNotExist`
 *   an empty one; any other operator is invalid;
 * - keys must be qualified names and values label values;
 * - an empty selector `{}` matches everything; a missing one (`null` or
 *   `undefined`) matches nothing.
 *
 * @module
 */

export type Labels = Readonly<Record<string, string>>;

/** The four set-based operators. */
export const OPERATORS = ["In", "NotIn", "Exists", "DoesNotExist"] as const;
/** One of {@linkcode OPERATORS}. */
export type Operator = typeof OPERATORS[number];

/** One `matchExpressions` entry. */
export interface LabelSelectorRequirement {
  /** Label key. */
  readonly key: string;
  /** How the key's value is tested. */
  readonly operator: Operator;
  /** Values for `In` / `NotIn`; empty for `Exists` / `DoesNotExist`. */
  readonly values?: readonly string[];
}

/** A standard Kubernetes label selector. */
export interface LabelSelector {
  /** Keys that must have exactly these values. */
  readonly matchLabels?: Readonly<Record<string, string>>;
  /** Requirements that must all hold. */
  readonly matchExpressions?: readonly LabelSelectorRequirement[];
}

/** A selector that cannot be evaluated; the message names the bad part. */
export class InvalidSelectorError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "InvalidSelectorError";
  }
}

const NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const PREFIX_PART = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/** Why `key` is not a qualified name (`[prefix/]name`), or undefined when it is one. */
function keyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (
    prefix !== undefined &&
    (prefix.length === 0 || prefix.length > 253 || !PREFIX_PART.test(prefix))
  ) {
    return "its prefix must be a DNS subdomain of at most 253 characters";
  }
  if (name.length === 0 || name.length > 63 || !NAME_PART.test(name)) {
    return "its name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric";
  }
  return undefined;
}

function checkKey(key: unknown, where: string): string {
  if (typeof key !== "string") {
    throw new InvalidSelectorError(`${where}: key ${JSON.stringify(key)} is not a string`);
  }
  const problem = keyProblem(key);
  if (problem) {
    throw new InvalidSelectorError(`${where}: key ${JSON.stringify(key)} is invalid: ${problem}`);
  }
  return key;
}

function checkValue(value: unknown, where: string): string {
  if (typeof value !== "string" || value.length > 63 || !LABEL_VALUE.test(value)) {
    throw new InvalidSelectorError(
      `${where}: value ${JSON.stringify(value)} is not a label value ` +
        "(at most 63 alphanumerics, '-', '_' or '.', starting and ending with an alphanumeric)",
    );
  }
  return value;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function parseRequirement(value: unknown, index: number): LabelSelectorRequirement {
  const where = `matchExpressions[${index}]`;
  if (!isRecord(value)) throw new InvalidSelectorError(`${where} is not an object`);
  const key = checkKey(value.key, where);
  const operator = value.operator;
  if (!(OPERATORS as readonly unknown[]).includes(operator)) {
    throw new InvalidSelectorError(
      `${where}: operator ${JSON.stringify(operator)} is not one of ${OPERATORS.join(", ")}`,
    );
  }
  const rawValues = value.values ?? [];
  if (!Array.isArray(rawValues)) throw new InvalidSelectorError(`${where}: values must be a list`);
  const values = rawValues.map((v, i) => checkValue(v, `${where}.values[${i}]`));
  if ((operator === "In" || operator === "NotIn") && values.length === 0) {
    throw new InvalidSelectorError(`${where}: operator ${operator} needs at least one value`);
  }
  if ((operator === "Exists" || operator === "DoesNotExist") && values.length > 0) {
    throw new InvalidSelectorError(`${where}: operator ${operator} takes no values`);
  }
  return values.length > 0
    ? { key, operator: operator as Operator, values }
    : { key, operator: operator as Operator };
}

/**
 * Validates a selector as received in JSON and returns a normalized copy;
 * throws {@linkcode InvalidSelectorError} naming the bad field.
 */
export function parseLabelSelector(value: unknown): LabelSelector {
  if (!isRecord(value)) {
    throw new InvalidSelectorError(`selector ${JSON.stringify(value)} is not an object`);
  }
  const selector: {
    matchLabels?: Record<string, string>;
    matchExpressions?: LabelSelectorRequirement[];
  } = {};
  if (value.matchLabels !== undefined && value.matchLabels !== null) {
    if (!isRecord(value.matchLabels)) {
      throw new InvalidSelectorError("matchLabels is not an object");
    }
    const matchLabels: Record<string, string> = {};
    for (const [key, label] of Object.entries(value.matchLabels)) {
      checkKey(key, "matchLabels");
      matchLabels[key] = checkValue(label, `matchLabels[${JSON.stringify(key)}]`);
    }
    selector.matchLabels = matchLabels;
  }
  if (value.matchExpressions !== undefined && value.matchExpressions !== null) {
    if (!Array.isArray(value.matchExpressions)) {
      throw new InvalidSelectorError("matchExpressions is not a list");
    }
    selector.matchExpressions = value.matchExpressions.map(parseRequirement);
  }
  return selector;
}

function requirementHolds(requirement: LabelSelectorRequirement, labels: Labels): boolean {
  const present = Object.hasOwn(labels, requirement.key);
  const value = labels[requirement.key];
  switch (requirement.operator) {
    case "In":
      return present && requirement.values!.includes(value!);
    case "NotIn":
      return !present || !requirement.values!.includes(value!);
    case "Exists":
      return present;
    case "DoesNotExist":
      return !present;
  }
}

/** True when a selector already validated by {@linkcode parseLabelSelector} matches `labels`. */
export function matchesLabelSelector(selector: LabelSelector, labels: Labels): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
  }
  return (selector.matchExpressions ?? []).every((requirement) =>
    requirementHolds(requirement, labels)
  );
}

/**
 * Compiles a selector from JSON into a predicate. A missing selector (`null`
 * or `undefined`) selects nothing; an invalid one throws
 * {@linkcode InvalidSelectorError}.
 */
export function labelSelectorMatcher(value: unknown): (labels: Labels) => boolean {
  if (value === undefined || value === null) return () => false;
  const selector = parseLabelSelector(value);
  return (labels) => matchesLabelSelector(selector, labels);
}

/** Formats equality requirements as a server-side selector: `k1=v1,k2=v2`. */
export function equalitySelector(labels: Labels): string {
  return Object.entries(labels).map(([key, value]) => `${key}=${value}`).join(",");
}
