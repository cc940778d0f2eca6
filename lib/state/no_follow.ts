/**
 * Opening the plugin's own files (locks, records, the log) without following
 * symlinks. Deno has no `O_NOFOLLOW`, so:
 *
 * - a file is created with `O_CREAT|O_EXCL` (`createNew`), which never
 *   follows a symlink: a planted link makes it fail, nothing is created
 *   through it;
 * - an existing file is `lstat`ed (must be a regular file, not a link),
 *   opened without creating, and the opened descriptor's device and inode
 *   must equal the `lstat`'s: a link swapped in between is detected and the
 *   descriptor closed before any byte is read or written (then it looks
 *   again, a few times: a record file renamed over is legitimate).
 *
 * Failures are code 5 and name the path.
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";

/** How to open. */
export interface NoFollowOptions {
  /** Read access. */
  readonly read?: boolean;
  /** Write access. */
  readonly write?: boolean;
  /** Append (implies write). */
  readonly append?: boolean;
  /** Create the file (with `mode`) when it does not exist. */
  readonly create?: boolean;
  /** Mode of a created file. */
  readonly mode?: number;
  /** What the file is, for messages ("lock file", "log file"). */
  readonly what: string;
}

function refuse(path: string, options: NoFollowOptions, why: string): CniError {
  return new CniError(ErrorCode.IoFailure, `refusing ${options.what} ${show(path)}: ${why}`);
}

function sameFile(a: Deno.FileInfo, b: Deno.FileInfo): boolean {
  return a.dev === b.dev && a.ino === b.ino;
}

/** Attempts when the file is replaced between `lstat` and `open` (records are renamed over). */
const ATTEMPTS = 5;

/**
 * Opens `path` without following a symlink at its last component. Throws
 * `Deno.errors.NotFound` when it does not exist and `create` is not set.
 */
export function openNoFollow(path: string, options: NoFollowOptions): Deno.FsFile {
  const access = {
    read: options.read ?? false,
    write: options.write ?? false,
    append: options.append ?? false,
  };
  if (options.create) {
    try {
      return Deno.openSync(path, { ...access, createNew: true, mode: options.mode ?? 0o600 });
    } catch (error) {
      if (!(error instanceof Deno.errors.AlreadyExists)) {
        throw refuse(path, options, `cannot create: ${(error as Error).message}`);
      }
    }
  }
  for (let attempt = 1;; attempt++) {
    const file = openExisting(path, options, access);
    if (file !== undefined) return file;
    // A legitimate atomic replacement (attachments.json) lands here too: look again.
    if (attempt === ATTEMPTS) throw refuse(path, options, "was replaced while being opened");
  }
}

/** The opened file, or undefined when what was opened is not what `lstat` saw. */
function openExisting(
  path: string,
  options: NoFollowOptions,
  access: { read: boolean; write: boolean; append: boolean },
): Deno.FsFile | undefined {
  const before = Deno.lstatSync(path); // NotFound propagates
  if (before.isSymlink) throw refuse(path, options, "is a symbolic link");
  if (!before.isFile) throw refuse(path, options, "is not a regular file");
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, access);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw error;
    throw refuse(path, options, `cannot open: ${(error as Error).message}`);
  }
  try {
    if (sameFile(file.statSync(), before)) return file;
  } catch (error) {
    file.close();
    throw refuse(path, options, (error as Error).name);
  }
  file.close();
  return undefined;
}
