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
