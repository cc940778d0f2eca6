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

Deno.test("CNI mode loads no CLI, agent server, install or migrate module", async () => {
  // A CNI invocation is main.ts plus the verbs it imports on demand; every
  // module read at start costs each ADD and DEL (issue 17: start-up is the
  // largest share of an ADD on hardware).
  const cniMode = new Set([
    ...await staticClosure("../../main.ts"),
    ...await staticClosure("../../lib/verbs/mod.ts"),
  ]);
  const local = [...cniMode].filter((s) => s.startsWith("file:"));
  assert.ok(local.some((s) => s.endsWith("/lib/verbs/add.ts")), "the closure covers the verbs");
  const offenders = local.filter((s) =>
    /\/lib\/(cli|install)\/|\/lib\/agent\/agent\.ts$|\/lib\/kube\/(migrate|agent_rbac|rbac)\.ts$/
      .test(s)
  );
  assert.deepEqual(offenders, []);
});
