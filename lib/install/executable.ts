/**
 * The installed plugin must run on the host by itself: the runtime execs it
 * with a scrubbed environment, outside the image. A compiled binary is an
 * ELF file; the repository's shell launcher (`bin/galactic`) or a script
 * needs an interpreter, the repository and Deno, which the host lacks.
 *
 * @module
 */

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46]; // "\x7fELF"

/** Why `path` is not a self-contained executable, or undefined when it is one. */
export async function notSelfContained(path: string): Promise<string | undefined> {
  const head = new Uint8Array(ELF_MAGIC.length);
  const file = await Deno.open(path, { read: true });
  let read = 0;
  try {
    for (let n: number | null = 0; n !== null && read < head.length; read += n ?? 0) {
      n = await file.read(head.subarray(read));
    }
  } finally {
    file.close();
  }
  if (!ELF_MAGIC.every((byte, i) => head[i] === byte)) {
    const kind = head[0] === 0x23 && head[1] === 0x21 ? "a script (#!)" : "not an ELF executable";
    return `${kind}; install the compiled binary (deno task compile → dist/galactic)`;
  }
  return undefined;
}
