/**
 * Derives `crds.json` (the facts the fake API server validates against) from
 * the verbatim cosmos CRDs in `../shared/reference/cosmos-<commit>/`: every
 * key of each served version's `openAPIV3Schema` except the prose
 * (`description`), plus names, scope and subresources. Nothing is added or
 * interpreted here, so the data says exactly what the CRDs say.
 *
 *     deno run -A tests/support/cosmos/generate_crds.ts [--check] [--reference <dir>]
 *
 * `--check` exits 1 when the committed file differs from what the reference
 * gives (tests/unit/cosmos_crds_test.ts runs the same comparison).
 *
 * @module
 */

import { parse } from "yaml";

/** The cosmos commit whose CRDs the plugin speaks (and the last one compatible with it). */
export const COSMOS_COMMIT = "d08f7867c312";
/** Newest cosmos commit known to serve the same API. */
export const COSMOS_COMPATIBLE_THROUGH = "80a1b50";

const REPO = new URL("../../../", import.meta.url);
/** Where the reference CRDs sit relative to the repository (the shared folder beside it). */
export const REFERENCE_DIR = new URL(`../shared/reference/cosmos-d08f786/`, REPO);
/** The generated data file. */
export const DATA_FILE = new URL("./crds.json", import.meta.url);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function withoutProse(value: Json): Json {
  if (Array.isArray(value)) return value.map(withoutProse);
  if (value === null || typeof value !== "object") return value;
  const out: { [key: string]: Json } = {};
  for (const key of Object.keys(value).sort()) {
    if (key === "description") continue;
    out[key] = withoutProse(value[key]!);
  }
  return out;
}

// deno-lint-ignore no-explicit-any
function crdFacts(crd: any): Json {
  const spec = crd.spec;
  return {
    name: crd.metadata.name,
    group: spec.group,
    names: withoutProse(spec.names),
    scope: spec.scope,
    // deno-lint-ignore no-explicit-any
    versions: spec.versions.map((version: any) => ({
      name: version.name,
      served: version.served,
      storage: version.storage,
      subresources: version.subresources ?? {},
      schema: withoutProse(version.schema.openAPIV3Schema),
    })),
  };
}

/** The data `crds.json` must hold, from the CRD files in `dir`. */
export async function generateCrdData(dir: URL = REFERENCE_DIR): Promise<Json> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".yaml")) files.push(entry.name);
  }
  files.sort();
  const crds: Json[] = [];
  for (const file of files) {
    const crd = parse(await Deno.readTextFile(new URL(file, dir)));
    if (crd?.kind !== "CustomResourceDefinition") continue;
    crds.push(crdFacts(crd));
  }
  return {
    source: {
      project: "cosmos (github.com/milo-os/cosmos), Apache License 2.0",
      commit: COSMOS_COMMIT,
      compatibleThrough: COSMOS_COMPATIBLE_THROUGH,
      files,
      derivedBy: "tests/support/cosmos/generate_crds.ts (the CRDs minus description prose)",
    },
    crds,
  };
}

/** The generated data as the file holds it. */
export function renderCrdData(data: Json): string {
  return JSON.stringify(data, null, 2) + "\n";
}

async function main(args: string[]): Promise<void> {
  const at = args.indexOf("--reference");
  const dir = at >= 0
    ? new URL(`${args[at + 1]!.replace(/\/?$/, "/")}`, `file://${Deno.cwd()}/`)
    : REFERENCE_DIR;
  const text = renderCrdData(await generateCrdData(dir));
  if (args.includes("--check")) {
    const committed = await Deno.readTextFile(DATA_FILE);
    if (JSON.stringify(JSON.parse(committed)) !== JSON.stringify(JSON.parse(text))) {
      console.error(`${DATA_FILE.pathname} is not what ${dir.pathname} gives: regenerate it`);
      Deno.exit(1);
    }
    console.log(`${DATA_FILE.pathname} matches ${dir.pathname}`);
    return;
  }
  await Deno.writeTextFile(DATA_FILE, text);
  console.log(`wrote ${DATA_FILE.pathname}`);
}

if (import.meta.main) await main(Deno.args);
