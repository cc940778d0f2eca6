/**
 * A reader of `manifests/Containerfile` for the checks that run its build
 * stage here and inspect its runtime stage: stages, and their instructions
 * with line continuations joined.
 *
 * @module
 */

/** One instruction (`RUN`, `COPY`, ...) with its arguments as written. */
export interface Instruction {
  readonly keyword: string;
  readonly args: string;
}

/** One `FROM` stage. */
export interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: readonly Instruction[];
}

/** Parses a Containerfile into stages (comments dropped, `\` continuations joined). */
export function parseContainerfile(text: string): Stage[] {
  const logical: string[] = [];
  let pending = "";
  for (const line of text.split("\n")) {
    if (/^\s*#/.test(line) && pending === "") continue;
    if (/^\s*#/.test(line)) continue; // a comment inside a continuation
    const body = line.replace(/\s+$/, "");
    if (body.endsWith("\\")) {
      pending += `${body.slice(0, -1)} `;
      continue;
    }
    const full = (pending + body).trim();
    pending = "";
    if (full !== "") logical.push(full);
  }
  const stages: { image: string; name: string | undefined; instructions: Instruction[] }[] = [];
  for (const line of logical) {
    const [, keyword = "", args = ""] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (keyword.toUpperCase() === "FROM") {
      const [image = "", as, name] = args.split(/\s+/);
      stages.push({ image, name: as?.toUpperCase() === "AS" ? name : undefined, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

/** The `--from` source of a COPY, its sources and its destination. */
export function copyParts(args: string): { from?: string; sources: string[]; dest: string } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith("--"));
  const paths = words.filter((w) => !w.startsWith("--"));
  const from = flags.find((f) => f.startsWith("--from="))?.slice("--from=".length);
  return { ...(from && { from }), sources: paths.slice(0, -1), dest: paths.at(-1) ?? "" };
}
