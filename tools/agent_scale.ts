/**
 * How the node agent's cost grows with the cluster: starts the fake API
 * server holding N BGPVRFInstances of other nodes (50 VPCs per node), runs
 * `galactic agent` for one node against it, and reports the agent's start
 * time (exec → ready), its resident memory (peak and after settling) and the
 * API requests it made. The foreign objects are seeded without admission
 * (they are valid by construction) so 100,000 of them load in seconds.
 *
 *     deno run -A tools/agent_scale.ts [--objects 1000,10000,100000] [--launcher bin/galactic]
 *
 * @module
 */

import { connectAgent } from "../lib/agent/agent_client.ts";
import { vpcFromValue } from "../lib/ids/mod.ts";
import { AGENT_RBAC } from "../lib/kube/agent_rbac.ts";
import { FakeApiServer } from "../tests/support/fake_api_server.ts";
import { seedNode, vrfInstance } from "../tests/support/kube_fixtures.ts";

const NODE = "node-a";
const VPCS_PER_NODE = 50;

interface Row {
  readonly objects: number;
  readonly readyMs: number;
  readonly peakMb: number;
  readonly settledMb: number;
  readonly requests: string;
  /** API requests of a VPC's first declaration on the node, then of a sibling's. */
  readonly perAdd: string;
}

function argument(flag: string, fallback: string): string {
  const index = Deno.args.indexOf(flag);
  return index >= 0 ? Deno.args[index + 1] ?? fallback : fallback;
}

/** Seeds `count` objects of other nodes, `VPCS_PER_NODE` per node. */
function seedForeign(server: FakeApiServer, count: number): void {
  for (let i = 0; i < count; i++) {
    const node = `node-x${Math.floor(i / VPCS_PER_NODE)}`;
    const hex = (0x10000 + (i % VPCS_PER_NODE)).toString(16);
    const rt = String(0x10000 + (i % VPCS_PER_NODE));
    server.seed(
      vrfInstance(`galactic-vpc-${hex}-${node}`, {
        node,
        labels: {
          "app.kubernetes.io/managed-by": "galactic",
          "galactic.io/vpc": hex,
          "galactic.io/node": node,
          "galactic.io/route-target": rt,
        },
        routeDistinguisher: `65000:${rt}`,
      }),
      { unchecked: "valid by construction (scale bench)" },
    );
  }
}

function memoryMb(pid: number, field: "VmHWM" | "VmRSS"): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return Math.round(kb / 1024);
}

async function measure(launcher: string, objects: number): Promise<Row> {
  await using server = new FakeApiServer({ rbac: AGENT_RBAC });
  seedNode(server, NODE);
  seedForeign(server, objects);
  const dir = await Deno.makeTempDir();
  try {
    // JSON, as `galactic install` writes it: no YAML parser loaded (nor in a pod,
    // where the agent uses the service account).
    const kubeconfig = await server.writeKubeconfig(dir, { json: true });
    server.resetLog();
    const started = performance.now();
    const child = new Deno.Command(launcher, {
      args: [
        "agent",
        "--socket",
        `${dir}/agent.sock`,
        "--kubeconfig",
        kubeconfig,
        "--node",
        NODE,
        "--health-port",
        "0",
        "--log-level",
        "info",
      ],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let log = "";
    let health: string | undefined;
    while (health === undefined) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`agent exited:\n${log}`);
      log += value;
      health = log.match(/health=(http:\/\/127\.0\.0\.1:\d+)/)?.[1];
    }
    const draining = (async () => {
      while (!(await reader.read()).done) { /* keep the pipe flowing */ }
    })();
    while ((await fetch(`${health}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const readyMs = Math.round(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const row: Row = {
      objects,
      readyMs,
      peakMb: memoryMb(child.pid, "VmHWM"),
      settledMb: memoryMb(child.pid, "VmRSS"),
      requests: Object.entries(server.counts("bgpvrfinstances")).map(([k, v]) => `${k} ${v}`)
        .join(", "),
      perAdd: "",
    };
    const plane = (await connectAgent(`${dir}/agent.sock`, { timeoutMs: 30_000 }))!;
    const key = { vpc: vpcFromValue(0x7777n), node: NODE };
    const calls = (): number => server.requests.filter((r) => r.verb !== "watch").length;
    const before = calls();
    await plane.declareVrf(key);
    const first = calls() - before;
    await plane.declareVrf(key);
    const sibling = calls() - before - first;
    await plane.close();
    child.kill("SIGTERM");
    await child.status;
    await draining;
    return { ...row, perAdd: `${first} / ${sibling}` };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const launcher = argument("--launcher", new URL("../bin/galactic", import.meta.url).pathname);
  const counts = argument("--objects", "1000,10000,100000").split(",").map(Number);
  console.log(
    "| foreign BGPVRFInstances | exec → ready | peak RSS | RSS after 3 s | " +
      "its requests for them | API per first ADD / sibling |",
  );
  console.log("| --- | --- | --- | --- | --- | --- |");
  for (const objects of counts) {
    const row = await measure(launcher, objects);
    console.log(
      `| ${row.objects} | ${row.readyMs} ms | ${row.peakMb} MB | ${row.settledMb} MB | ${row.requests} | ${row.perAdd} |`,
    );
  }
}
