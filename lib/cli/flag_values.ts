/**
 * Parsers for flag values: commander calls them while parsing, and an
 * InvalidArgumentError becomes "option '--flag <x>' argument 'v' is invalid.
 * <reason>" with exit code 2, so garbage never reaches a command.
 *
 * @module
 */

import { InvalidArgumentError } from "commander";

/** A parser of an integer flag within `min..max`. */
export function integerIn(min: number, max: number): (value: string) => number {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed)) {
      throw new InvalidArgumentError(`must be an integer in ${min}..${max}`);
    }
    if (parsed < min || parsed > max) {
      throw new InvalidArgumentError(`must be in ${min}..${max}`);
    }
    return parsed;
  };
}

/** A parser of a flag whose value is one of `choices`. */
export function oneOf<T extends string>(choices: readonly T[]): (value: string) => T {
  return (value: string): T => {
    if (!(choices as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`must be one of ${choices.join(", ")}`);
    }
    return value as T;
  };
}

/** A parser of a flag that must be an absolute path. */
export function absolutePath(value: string): string {
  if (!value.startsWith("/")) throw new InvalidArgumentError("must be an absolute path");
  return value;
}

/** A ServiceAccount named `namespace/name`. */
export interface ServiceAccountRef {
  readonly namespace: string;
  readonly name: string;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** A parser of a `namespace/name` ServiceAccount flag. */
export function serviceAccountRef(value: string): ServiceAccountRef {
  const [namespace, name, ...rest] = value.split("/");
  if (
    rest.length > 0 || namespace === undefined || name === undefined ||
    !DNS_LABEL.test(namespace) || !DNS_SUBDOMAIN.test(name)
  ) {
    throw new InvalidArgumentError("must be <namespace>/<name> of a ServiceAccount");
  }
  return { namespace, name };
}
