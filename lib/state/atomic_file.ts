/**
 * Replacing a file so that a reader sees its old content or its new, never a
 * mix: the new content goes to a temporary file beside it (an unpredictable
 * name, created exclusively, so nothing planted can stand in for it), gets
 * its mode, is fsynced and renamed over the target. Shared by the attachment
 * records (every ADD and DEL) and the installer's files (the plugin's
 * kubeconfig, rewritten by the agent's credential refresh).
 *
 * @module
 */

/** How {@linkcode replaceFile} names and finishes the write. */
export interface ReplaceOptions {
  readonly mode: number;
  /** Name of the temporary file in the target's directory, given a random hex part. */
  readonly temporaryName: (random: string) => string;
  /** Also fsync the directory after the rename, so the rename itself survives a crash. */
  readonly syncDir?: boolean;
}

/**
 * Writes `path` through `write` on a temporary file, then renames it over
 * `path`. On any failure the temporary file is removed and the error is
 * rethrown for the caller to word.
 */
export async function replaceFile(
  path: string,
  write: (file: Deno.FsFile) => Promise<void>,
  options: ReplaceOptions,
): Promise<void> {
  const { dir, temp } = temporaryPath(path, options);
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(temp, { write: true, createNew: true, mode: options.mode });
    await write(file);
    await Deno.chmod(temp, options.mode); // the creation mode went through the umask
    await file.sync();
    file.close();
    file = undefined;
    await Deno.rename(temp, path);
  } catch (error) {
    try {
      file?.close();
    } catch {
      // already closed
    }
    await Deno.remove(temp).catch(() => {});
    throw error;
  }
  if (options.syncDir) await syncDir(dir);
}

/**
 * {@linkcode replaceFile} of small `data` with synchronous calls: for the
 * attachment records, written on every ADD and DEL, where each trip through
 * the runtime's thread pool is latency the runtime waits for.
 */
export function replaceFileSync(
  path: string,
  data: Uint8Array,
  options: Omit<ReplaceOptions, "syncDir">,
): void {
  const { temp } = temporaryPath(path, options);
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(temp, { write: true, createNew: true, mode: options.mode });
    for (let offset = 0; offset < data.length;) offset += file.writeSync(data.subarray(offset));
    Deno.chmodSync(temp, options.mode); // the creation mode went through the umask
    file.syncSync();
    file.close();
    file = undefined;
    Deno.renameSync(temp, path);
  } catch (error) {
    try {
      file?.close();
    } catch {
      // already closed
    }
    try {
      Deno.removeSync(temp);
    } catch {
      // never created, or gone
    }
    throw error;
  }
}

/** The target's directory and a temporary path in it (an unpredictable name). */
function temporaryPath(
  path: string,
  options: Pick<ReplaceOptions, "temporaryName">,
): { dir: string; temp: string } {
  const slash = path.lastIndexOf("/");
  const dir = slash < 0 ? "." : path.slice(0, slash) || "/";
  const random = Array.from(crypto.getRandomValues(new Uint8Array(12)))
    .map((byte) => byte.toString(16).padStart(2, "0")).join("");
  return { dir, temp: `${dir}/${options.temporaryName(random)}` };
}

/** Writes all of `data` (a write may take only part of it). */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  for (let offset = 0; offset < data.length;) offset += await file.write(data.subarray(offset));
}

async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // Not every filesystem lets a directory be fsync'ed; the rename is done either way.
  }
}
