/**
 * base62 with the alphabet `0-9A-Za-z` in that order: value 10 is `A`, 36 is
 * `a`. Case matters, so `A` and `a` are different identifiers.
 *
 * @module
 */

/** The base62 alphabet, digit value = index. */
export const BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** Decodes base62 text to its value; throws RangeError naming a bad character. */
export function decodeBase62(text: string): bigint {
  if (text.length === 0) throw new RangeError("base62 text is empty");
  let value = 0n;
  for (const char of text) {
    const digit = BASE62_ALPHABET.indexOf(char);
    if (digit < 0 || char.length !== 1) {
      throw new RangeError(`"${char}" is not a base62 digit (0-9, A-Z, a-z)`);
    }
    value = value * 62n + BigInt(digit);
  }
  return value;
}

/** Encodes a non-negative value as base62, left-padded with `0` to `width`. */
export function encodeBase62(value: bigint, width = 1): string {
  if (value < 0n) throw new RangeError(`cannot encode negative value ${value} as base62`);
  let text = "";
  let rest = value;
  do {
    text = BASE62_ALPHABET[Number(rest % 62n)] + text;
    rest /= 62n;
  } while (rest > 0n);
  return text.padStart(width, "0");
}
