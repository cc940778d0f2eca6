/**
 * Static checks of `manifests/Containerfile`: its build stage works from a
 * clean export of the repository (it installs Deno itself, copies only
 * tracked files the build context keeps), and its runtime stage ships the
 * compiled binary alone. `tests/image/` runs the build stage for real
 * (`deno task test:image`, slower: npm ci in a temp dir).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { copyParts, parseContainerfile, type Stage } from "../support/containerfile.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const TEXT = Deno.readTextFileSync(join(ROOT, "manifests", "Containerfile"));
const STAGES = parseContainerfile(TEXT);
const IGNORED = Deno.readTextFileSync(join(ROOT, "manifests", "Containerfile.dockerignore"))
  .split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));

function stage(name: string | undefined, index: number): Stage {
  const found = STAGES[index];
  assert.ok(found, `stage ${index}`);
  assert.equal(found.name, name);
  return found;
}

/** Tracked files; outside a git checkout (an export), the files on disk. */
function tracked(): { has(path: string): boolean } {
  const out = new Deno.Command("git", {
    args: ["ls-files"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  if (!out.success) {
    return {
      has: (path) => {
        try {
          return Deno.statSync(join(ROOT, path)).isFile;
        } catch {
          return false;
        }
      },
    };
  }
  return new Set(new TextDecoder().decode(out.stdout).split("\n").filter((l) => l !== ""));
}

function excluded(path: string): boolean {
  return IGNORED.some((pattern) => path === pattern || path.startsWith(`${pattern}/`));
}

Deno.test("Containerfile build stage installs Deno from the lockfile before using it, then compiles", () => {
  const build = stage("build", 0);
  assert.match(build.image, /^node:\d+-bookworm/);
  const runs = build.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args);
  const npmCi = runs.findIndex((r) => /^npm ci\b/.test(r));
  assert.ok(npmCi >= 0, `a RUN npm ci in ${JSON.stringify(runs)}`);
  runs.slice(0, npmCi).forEach((r) => assert.doesNotMatch(r, /deno/, `${r} runs before npm ci`));
  assert.ok(runs.slice(npmCi + 1).some((r) => /node_modules\/\.bin\/deno task compile/.test(r)));

  // What the context holds: every COPY source is tracked (or the whole
  // context) and not excluded; the lockfiles npm ci and deno need are in it.
  const files = tracked();
  for (const copy of build.instructions.filter((i) => i.keyword === "COPY")) {
    for (const source of copyParts(copy.args).sources) {
      if (source === ".") continue;
      assert.ok(files.has(source), `COPY ${source}: not a tracked file`);
      assert.ok(!excluded(source), `COPY ${source}: excluded from the build context`);
    }
  }
  for (const needed of ["package.json", "package-lock.json", "deno.json", "deno.lock", "main.ts"]) {
    assert.ok(files.has(needed) && !excluded(needed), `${needed} must reach the build context`);
  }
  for (const out of ["node_modules", "dist", ".git"]) assert.ok(excluded(out), out);

  // The pinned Deno is the one package-lock.json installs.
  const pkg = JSON.parse(Deno.readTextFileSync(join(ROOT, "package.json")));
  const lock = JSON.parse(Deno.readTextFileSync(join(ROOT, "package-lock.json")));
  assert.equal(lock.packages["node_modules/deno"].version, pkg.devDependencies.deno);
});

Deno.test("Containerfile runtime stage ships only the compiled binary and the delegates", () => {
  const runtime = stage(undefined, 1);
  assert.equal(runtime.image, "debian:bookworm-slim");
  assert.equal(STAGES.length, 2);
  const workdir = stage("build", 0).instructions.find((i) => i.keyword === "WORKDIR")?.args;
  const denoJson = JSON.parse(Deno.readTextFileSync(join(ROOT, "deno.json")));
  const output = /--output (\S+)/.exec(denoJson.tasks.compile)?.[1];
  assert.equal(output, "dist/galactic");
  const copies = runtime.instructions.filter((i) => i.keyword === "COPY").map((i) =>
    copyParts(i.args)
  );
  // Self-contained: no node_modules, launcher, sources or Deno in the image.
  assert.deepEqual(copies, [
    { from: "build", sources: [`${workdir}/${output}`], dest: "/usr/local/bin/galactic" },
  ]);
  const runs = runtime.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args).join(
    "\n",
  );
  assert.match(runs, /containernetworking-plugins/);
  assert.doesNotMatch(runs, /\b(npm|node|deno)\b/);
  assert.deepEqual(
    runtime.instructions.find((i) => i.keyword === "ENTRYPOINT")?.args,
    '["/usr/local/bin/galactic"]',
  );
  // Only the npm packages the program imports are embedded (not the npm Deno binary).
  assert.match(denoJson.tasks.compile, /--exclude-unused-npm/);
});
