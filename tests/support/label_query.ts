/**
 * The API server's `labelSelector` query syntax, for the fake API server:
 * `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, joined by
 * commas (AND). Written independently of `lib/kube/label_selector.ts` so a
 * bug there is not mirrored here. As in Kubernetes, `!=` and `notin` also
 * match objects without the key.
 *
 * @module
 */

/** One parsed requirement. */
export interface QueryRequirement {
  /** Label key. */
  readonly key: string;
  /** Operator. */
  readonly op: "=" | "!=" | "in" | "notin" | "exists" | "!";
  /** Values of `=`, `!=`, `in`, `notin`. */
  readonly values: readonly string[];
}

const KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

function splitTopLevel(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let current = "";
  for (const char of text) {
    if (char === "(") depth++;
    if (char === ")") depth--;
    if (char === "," && depth === 0) {
      parts.push(current);
      current = "";
    } else {
      current += char;
    }
  }
  parts.push(current);
  return parts;
}

function checked(requirement: QueryRequirement, source: string): QueryRequirement {
  if (!KEY.test(requirement.key)) {
    throw new SyntaxError(`unable to parse requirement: invalid label key "${requirement.key}"`);
  }
  for (const value of requirement.values) {
    if (!VALUE.test(value)) {
      throw new SyntaxError(
        `unable to parse requirement: invalid label value: "${value}" in "${source}"`,
      );
    }
  }
  return requirement;
}

/** Parses a selector string; throws `SyntaxError` (the server answers 400). */
export function parseLabelQuery(text: string): QueryRequirement[] {
  if (text.trim() === "") return [];
  return splitTopLevel(text).map((raw) => {
    const part = raw.trim();
    let match = /^!\s*([^\s=!(),]+)$/.exec(part);
    if (match) return checked({ key: match[1]!, op: "!", values: [] }, part);
    match = /^([^\s=!(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(part);
    if (match) {
      const values = match[3]!.split(",").map((v) => v.trim());
      return checked({ key: match[1]!, op: match[2] as "in" | "notin", values }, part);
    }
    match = /^([^\s=!(),]+)\s*(==|=|!=)\s*([^\s=!(),]*)$/.exec(part);
    if (match) {
      return checked(
        { key: match[1]!, op: match[2] === "!=" ? "!=" : "=", values: [match[3]!] },
        part,
      );
    }
    match = /^([^\s=!(),]+)$/.exec(part);
    if (match) return checked({ key: match[1]!, op: "exists", values: [] }, part);
    throw new SyntaxError(
      `unable to parse requirement: found '${part}', expected: in, notin, =, ==, !=, gt, lt`,
    );
  });
}

/** True when `labels` satisfy every requirement. */
export function matchesLabelQuery(
  requirements: readonly QueryRequirement[],
  labels: Record<string, string>,
): boolean {
  return requirements.every(({ key, op, values }) => {
    const has = Object.hasOwn(labels, key);
    const value = labels[key];
    switch (op) {
      case "=":
      case "in":
        return has && values.includes(value!);
      case "!=":
      case "notin":
        return !has || !values.includes(value!);
      case "exists":
        return has;
      case "!":
        return !has;
    }
  });
}
