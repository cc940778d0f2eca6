import assert from "node:assert/strict";

interface ModuleInfo {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** Modules reachable from `root` through static (non-type) imports, and dynamic ones if asked. */
async function staticClosure(
  root: string,
  options: { dynamic?: boolean } = {},
): Promise<Set<string>> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(root, import.meta.url).pathname],
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0);
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as {
    roots: string[];
    modules: ModuleInfo[];
  };
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const stack = [...graph.roots];
  while (stack.length > 0) {
    const specifier = stack.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    for (const dep of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dep.code && (options.dynamic || !dep.isDynamic)) stack.push(dep.code.specifier);
    }
  }
  return seen;
}

Deno.test("no Kubernetes client library or undici is reachable, not even dynamically", async () => {
  // The API client is Deno's fetch plus galactic's own kubeconfig reader:
  // client-node cost every API-using process ~115 MB and 0.3-2 s (issue 17).
  const reachable = [...await staticClosure("../../main.ts", { dynamic: true })];
  assert.ok(reachable.some((s) => s.endsWith("/lib/kube/client.ts")), "the closure has the client");
  const offenders = reachable.filter((s) => /@kubernetes\/client-node|\bundici\b/.test(s));
  assert.deepEqual(offenders, []);
});

/** Modules of the CLI, the agent server, install and migrate: never part of a CNI call. */
const NOT_CNI =
  /\/lib\/(cli|install)\/|\/lib\/agent\/agent\.ts$|\/lib\/kube\/(migrate|agent_rbac|rbac)\.ts$/;

/** Every module `deno run` reads at start from `root`: dynamic imports included. */
async function wholeGraph(root: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", new URL(root, import.meta.url).pathname],
    stderr: "inherit",
  }).output();
  assert.equal(output.code, 0);
  const graph = JSON.parse(new TextDecoder().decode(output.stdout)) as { modules: ModuleInfo[] };
  return graph.modules.map((m) => m.specifier);
}

Deno.test("CNI mode loads no CLI, agent server, install or migrate module", async () => {
  // A CNI invocation is its entry plus the verb it imports on demand; every
  // module loaded costs each ADD and DEL (issue 17: start-up is the largest
  // share of an ADD on hardware).
  const verbs = ["add", "del", "check", "gc", "status"];
  const cniMode = new Set([
    ...await staticClosure("../../lib/plugin/cni_main.ts"),
    ...await staticClosure("../../lib/verbs/mod.ts"),
    ...(await Promise.all(verbs.map((v) => staticClosure(`../../lib/verbs/${v}.ts`)))).flat()
      .flatMap((closure) => [...closure]),
  ]);
  const local = [...cniMode].filter((s) => s.startsWith("file:"));
  assert.ok(local.some((s) => s.endsWith("/lib/verbs/add.ts")), "the closure covers the verbs");
  assert.deepEqual(local.filter((s) => NOT_CNI.test(s)), []);
});

Deno.test("the CNI entry bin/galactic starts does not even read the CLI's modules", async () => {
  // deno reads (and hashes, and analyses) every module its entry reaches,
  // dynamic imports included, before it runs anything: main.ts reaches the CLI.
  const launcher = await Deno.readTextFile(new URL("../../bin/galactic", import.meta.url));
  assert.match(launcher, /CNI_COMMAND\+set\}" \] && entry=\$here\/lib\/plugin\/cni_main\.ts/);
  const read = (await wholeGraph("../../lib/plugin/cni_main.ts")).filter((s) =>
    s.startsWith("file:")
  );
  assert.ok(read.some((s) => s.endsWith("/lib/verbs/add.ts")), "the graph covers the verbs");
  assert.deepEqual(read.filter((s) => NOT_CNI.test(s)), []);
  assert.ok((await wholeGraph("../../main.ts")).some((s) => NOT_CNI.test(s)), "main.ts does");
});

Deno.test("the plugin never reaches the test-only gRPC packages (the runtimes suite's CRI client)", async () => {
  const everything = await staticClosure("../../main.ts", { dynamic: true });
  assert.ok(
    [...everything].some((s) => s.endsWith("/lib/verbs/add.ts")),
    "dynamic imports followed",
  );
  const offenders = [...everything].filter((s) => s.includes("@grpc/"));
  assert.deepEqual(offenders, []);
  // The guard can fail: the CRI client's own graph does reach them.
  const client = await staticClosure("../privileged/support/cri/client.ts");
  assert.ok([...client].some((s) => s.includes("@grpc/grpc-js")), [...client].join("\n"));
});
