/**
 * What `galactic --version` reports: the release, the commit it was built
 * from and the Deno runtime inside. The commit comes from `lib/build.json`,
 * which `git archive` fills in (export-subst, see `.gitattributes`) and the
 * container build may overwrite (`--build-arg GALACTIC_COMMIT`); a run from
 * a checkout asks git instead.
 *
 * @module
 */

import build from "./build.json" with { type: "json" };
import { SUPPORTED_VERSIONS } from "./cni/version.ts";
import { PLUGIN_VERSION } from "./version.ts";

/** Version facts, with stable keys (the `--json` form). */
export interface BuildInfo {
  /** Release version of the plugin. */
  readonly version: string;
  /** Commit the binary was built from, or "unknown". */
  readonly commit: string;
  /** Deno runtime version. */
  readonly deno: string;
  /** V8 version. */
  readonly v8: string;
  /** TypeScript version of the runtime. */
  readonly typescript: string;
  /** CNI spec versions the plugin speaks. */
  readonly cniVersions: readonly string[];
}

/** True when `commit` was substituted (an export or a build), not the raw placeholder. */
function isSubstituted(commit: string): boolean {
  return /^[0-9a-f]{7,40}$/.test(commit);
}

/** The checkout's HEAD when running from source, else undefined. */
async function sourceCommit(): Promise<string | undefined> {
  const here = new URL(".", import.meta.url);
  if (here.protocol !== "file:") return undefined;
  try {
    const output = await new Deno.Command("git", {
      args: ["-C", here.pathname, "rev-parse", "HEAD"],
      stdout: "piped",
      stderr: "null",
    }).output();
    const commit = new TextDecoder().decode(output.stdout).trim();
    return output.success && isSubstituted(commit) ? commit : undefined;
  } catch {
    return undefined; // no git on this host
  }
}

/** Collects the build facts. */
export async function buildInfo(): Promise<BuildInfo> {
  const embedded = String(build.commit);
  const commit = isSubstituted(embedded) ? embedded : await sourceCommit() ?? "unknown";
  return {
    version: PLUGIN_VERSION,
    commit,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    typescript: Deno.version.typescript,
    cniVersions: [...SUPPORTED_VERSIONS],
  };
}
