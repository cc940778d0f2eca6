/**
 * Ownership checks for the files and directories a root plugin trusts: when
 * the process runs as root, something another user owns or may write could
 * redirect it (a planted symlink, a rewritten record or node configuration),
 * so it is refused. Unprivileged runs (maintainers' tests) skip the check:
 * they cannot be tricked into using root's authority.
 *
 * @module
 */

import { CniError, ErrorCode, show } from "../cni/errors.ts";

/** The effective user id, or undefined where Deno cannot tell. */
export function processUid(): number | undefined {
  return Deno.uid() ?? undefined;
}

/**
 * Refuses `info` (of `path`) when running as root and it is not owned by root
 * or is writable by group or others. `what` names it in the message (code 5);
 * `uid` stands for the process's (tests).
 */
export function requireRootOwned(
  path: string,
  info: Deno.FileInfo,
  options: { what: string; uid?: number | undefined },
): void {
  const uid = "uid" in options ? options.uid : processUid();
  if (uid !== 0) return;
  const what = `${options.what} ${show(path)}`;
  if (info.uid !== null && info.uid !== 0) {
    throw new CniError(
      ErrorCode.IoFailure,
      `refusing ${what}: owned by uid ${info.uid}, not root`,
    );
  }
  if (info.mode !== null && (info.mode & 0o022) !== 0) {
    throw new CniError(
      ErrorCode.IoFailure,
      `refusing ${what}: writable by group or others (mode ${
        (info.mode & 0o7777).toString(8).padStart(4, "0")
      }); it must be 0755 or stricter`,
    );
  }
}
