/**
 * Runs the build stage of `manifests/Containerfile` here, against a clean
 * export of HEAD (`git archive`), with a fresh HOME and Deno cache: its RUN
 * lines in order, in the export, as the image build would. Only the denort
 * download cannot happen (dl.deno.land is unreachable here): `DENORT_BIN`
 * points `deno compile` at the npm Deno binary instead, so the module graph
 * and the embedded npm packages are real, while the output cannot run (a full
 * Deno binary ignores the payload). `deno task test:image`; ~1 min, network
 * to the npm registry. Commit first: the export is HEAD, not the work tree.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseContainerfile } from "../support/containerfile.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface ShOutput {
  code: number;
  stdout: string;
  stderr: string;
}

async function sh(
  script: string,
  options: { cwd: string; env: Record<string, string> },
): Promise<ShOutput> {
  const out = await new Deno.Command("sh", {
    args: ["-c", script],
    cwd: options.cwd,
    env: options.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array): string => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

Deno.test("Containerfile build stage runs from git archive HEAD and compiles a self-contained binary", async () => {
  const work = await Deno.makeTempDir({ prefix: "galactic-image-" });
  try {
    const src = join(work, "src");
    await Deno.mkdir(src);
    const home = join(work, "home");
    await Deno.mkdir(home);
    const exported = await sh(`git -C "${ROOT}" archive HEAD | tar -x -C "${src}"`, {
      cwd: work,
      env: {},
    });
    assert.equal(exported.code, 0, exported.stderr);
    // The export carries its commit (export-subst), which --version reports.
    const head = (await sh(`git -C "${ROOT}" rev-parse HEAD`, { cwd: work, env: {} })).stdout
      .trim();
    assert.deepEqual(JSON.parse(await Deno.readTextFile(join(src, "lib/build.json"))), {
      commit: head,
    });

    const [build] = parseContainerfile(
      await Deno.readTextFile(join(src, "manifests/Containerfile")),
    );
    assert.ok(build?.name === "build");
    // Nothing of this machine's toolchain or caches: only the registry's npm cache
    // (downloads) and the CA settings of its network are kept.
    const env: Record<string, string> = {
      ...Deno.env.toObject(),
      HOME: home,
      DENO_DIR: join(work, "deno-dir"),
      npm_config_cache: Deno.env.get("npm_config_cache") ?? `${Deno.env.get("HOME")}/.npm`,
    };
    delete env.DENO_NO_PACKAGE_JSON;
    const ran: string[] = [];
    for (const instruction of build.instructions) {
      if (instruction.keyword === "ARG" || instruction.keyword === "ENV") {
        const [name = "", value = ""] = instruction.args.split("=");
        env[name] = value;
      } else if (instruction.keyword === "COPY") {
        assert.equal(instruction.args, ". .", "the export is the whole build context");
      } else if (instruction.keyword === "RUN") {
        if (/deno task compile/.test(instruction.args)) {
          env.DENORT_BIN = join(src, "node_modules/@deno/linux-x64-glibc/deno");
        }
        const out = await sh(instruction.args, { cwd: src, env });
        assert.equal(out.code, 0, `RUN ${instruction.args}\n${out.stdout}\n${out.stderr}`);
        ran.push(instruction.args);
        if (env.DENORT_BIN) {
          // Embedded: the npm modules the program imports, not the npm Deno package.
          const listing = out.stdout + out.stderr;
          assert.match(listing, /commander/);
          assert.match(listing, /yaml/);
          assert.doesNotMatch(listing, /@kubernetes\/client-node|undici/);
          assert.doesNotMatch(listing, /@deno\/linux-x64-glibc/);
        }
      }
    }
    assert.ok(ran.some((r) => r.startsWith("npm ci")) && env.DENORT_BIN, ran.join("\n"));
    // The binary: ELF, beyond the runtime it carries the program (not a second Deno).
    const binary = await Deno.readFile(join(src, "dist/galactic"));
    assert.deepEqual([...binary.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
    const runtime = (await Deno.stat(env.DENORT_BIN!)).size;
    const payload = binary.length - runtime;
    assert.ok(payload > 1 << 20 && payload < 100 << 20, `payload ${payload} bytes`);
    // The lockfiles are used as they are, not rewritten.
    for (const file of ["deno.lock", "package-lock.json"]) {
      const diff = await sh(
        `git -C "${ROOT}" show HEAD:${file} | cmp - "${join(src, file)}"`,
        { cwd: work, env: {} },
      );
      assert.equal(diff.code, 0, `${file} changed by the build: ${diff.stdout}`);
    }
  } finally {
    await Deno.remove(work, { recursive: true });
  }
});
