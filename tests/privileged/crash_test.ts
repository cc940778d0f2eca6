/**
 * Crash consistency on a real kernel (the fake host's sweep,
 * tests/e2e/crash_test.ts, with real `ip`, `sysctl`, `iptables`,
 * `host-device` and `static`): the plugin is killed with SIGKILL right after
 * each command of an ADD and of a DEL — wrappers put first in PATH and
 * CNI_PATH run the real program, then count it and, at the armed count, kill
 * their parent (the plugin) — and the runtime's next calls must leave the
 * node exactly as a clean run does: ADD again then DEL, or DEL alone (empty
 * netns, as a runtime sends it once the sandbox is gone). A live attachment
 * of another VPC stays untouched throughout. The node agent answers the API
 * calls, as on a real node.
 *
 * Needs VRF: ignored (never passed) on a kernel without it; run it through
 * `bash tests/lab/run.sh` with GALACTIC_LAB_CRASH=1 (and LAB_PASSENV naming
 * it): some 75 plugin processes, 10-40 min under TCG. Its one lab run so far
 * passed all 11 ADD steps (then the harness's own `ip netns exec`, counted by
 * the `ip` wrapper, killed the test process: fixed); a second run, DEL steps
 * only (GALACTIC_LAB_CRASH_VERBS=DEL), passed all 5. With the agent taking
 * DEL's veth and VRF removal (its commands are not the plugin's: DEL has 4),
 * every fingerprint is taken once the agent is idle: all 11 ADD and 4 DEL
 * steps passed (10m40s under TCG). Opt-in for its cost.
 */

import assert from "node:assert/strict";
import { ApiWorld } from "./support/api.ts";
import { attachmentConfig, expectSuccess, invoke, type Outcome } from "./support/cni.ts";
import {
  CNI_PATH,
  type IpLinkJson,
  Ledger,
  must,
  Netns,
  tempDir,
  vrfSkipReason,
} from "./support/kernel.ts";

const ledger = new Ledger("crash_test");
const skip = Deno.env.get("GALACTIC_LAB_CRASH") === "1"
  ? await vrfSkipReason()
  : "opt-in: GALACTIC_LAB_CRASH=1";
if (skip) ledger.skipped("SIGKILL at each step of ADD and DEL", skip);

/** Which verbs to sweep (GALACTIC_LAB_CRASH_VERBS, e.g. `DEL`): both by default. */
const VERBS = (Deno.env.get("GALACTIC_LAB_CRASH_VERBS") ?? "ADD,DEL").split(",");
const NODE = "node-k";
const LOCATOR = "fc00:0:e::/48";
const PROGRAMS = ["ip", "sysctl", "iptables", "ip6tables"];

/** Writes the wrappers; returns the environment that puts them first. */
async function wrappers(dir: string): Promise<Record<string, string>> {
  await Deno.mkdir(`${dir}/bin`, { recursive: true });
  await Deno.mkdir(`${dir}/cni`, { recursive: true });
  const reals = await Promise.all(
    PROGRAMS.map(async (p) => [p, (await must(["sh", "-c", `command -v ${p}`])).trim()]),
  );
  const wrapper = (real: string): string =>
    [
      "#!/bin/sh",
      // The harness's own `ip netns exec <node> bin/galactic` finds this PATH
      // too (a child's PATH resolves its program): it is not a plugin step,
      // and its parent is the test process, which must never be the one killed.
      `[ "$1" = netns ] && exec "${real}" "$@"`,
      `"${real}" "$@"`,
      "rc=$?",
      `exec 9>>"${dir}/counter.lock"`,
      "flock 9",
      `echo "\${0##*/} $*" >>"${dir}/log"`,
      `if [ -f "${dir}/counter" ]; then`,
      `  n=$(cat "${dir}/counter")`,
      `  if [ "$n" -le 1 ]; then rm -f "${dir}/counter"; kill -KILL "$PPID"; exit 0; fi`,
      `  echo $((n - 1)) >"${dir}/counter"`,
      "fi",
      "exit $rc",
      "",
    ].join("\n");
  for (const [name, real] of reals) {
    await Deno.writeTextFile(`${dir}/bin/${name}`, wrapper(real!), { mode: 0o755 });
  }
  await Deno.writeTextFile(`${dir}/cni/host-device`, wrapper(`${CNI_PATH}/host-device`), {
    mode: 0o755,
  });
  return {
    PATH: `${dir}/bin:${Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
    CNI_PATH: `${dir}/cni:${CNI_PATH}`,
  };
}

/** Everything of the plugin's on the node and in the pods, for "exactly as a clean run". */
async function fingerprint(
  node: Netns,
  pods: Netns[],
  api: ApiWorld,
  stateDir: string,
): Promise<string[]> {
  const links = (await node.ipJson<IpLinkJson[]>("-d", "link", "show"))
    .filter((l) => l.ifname !== "lo")
    .map((l) =>
      `link ${l.ifname} ${l.linkinfo?.info_kind ?? ""} master=${l.master ?? ""} table=${
        l.linkinfo?.info_data?.table ?? ""
      }`
    );
  const routes: string[] = [];
  for (const family of [4, 6] as const) {
    for (const r of await node.tableRoutes(family, "all")) {
      if (r.protocol === "kernel" || r.type === "local" || r.type === "multicast") continue;
      if (r.table === "local" || (r.table === undefined && r.encap !== "seg6local")) continue;
      routes.push(
        `route${family} table=${r.table ?? "main"} ${r.type ?? ""} ${r.dst} ${r.gateway ?? ""} ${
          r.dev ?? ""
        } ${r.encap ?? ""} ${r.action ?? ""} ${r.vrftable ?? ""}`,
      );
    }
  }
  const rules = [
    ...await node.forwardRules("iptables"),
    ...await node.forwardRules("ip6tables"),
  ].map((r) => `rule ${r}`);
  let records: string[] = [];
  try {
    const state = JSON.parse(await Deno.readTextFile(`${stateDir}/attachments.json`));
    records = Object.entries(state.attachments).map(([key, r]) =>
      `record ${key} ${JSON.stringify(r)}`
    );
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  const objects = api.server.objects("bgpvrfinstances").map((o) => `object ${o.metadata.name}`);
  const podAddresses: string[] = [];
  for (const pod of pods) {
    const addrs = await pod.ipJson<
      { ifname: string; addr_info?: { local: string; prefixlen: number; scope?: string }[] }[]
    >("addr", "show");
    for (const a of addrs) {
      if (a.ifname === "lo") continue;
      const global = (a.addr_info ?? []).filter((i) => i.scope !== "link")
        .map((i) => `${i.local}/${i.prefixlen}`);
      podAddresses.push(`pod ${pod.name} ${a.ifname} ${global.sort().join(",")}`);
    }
  }
  return [...links, ...routes, ...rules, ...records, ...objects, ...podAddresses].sort();
}

function killed(outcome: Outcome, what: string): void {
  assert.notEqual(outcome.code, 0, `${what} was not killed: ${outcome.stdout}`);
  assert.equal(outcome.stdout.trim(), "", `${what} printed a result before dying`);
}

Deno.test({
  name: "crash: SIGKILL after each command of ADD and of DEL, then the runtime's next calls, " +
    "converge to a clean run's node (needs VRF)",
  ignore: skip !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const api = await ApiWorld.start({ agent: true });
    const scratch = await tempDir("gck");
    const made: Netns[] = [];
    try {
      const node = await Netns.create("gcknode");
      const livePod = await Netns.create("gcklive");
      const pod = await Netns.create("gckpod");
      made.push(node, livePod, pod);
      const stateDir = `${scratch}/state`;
      const agentSocket = `${scratch}/agent.sock`;
      api.seedNode(NODE);
      await api.startAgent(NODE, agentSocket, { stateDir, netns: node });
      const env = await wrappers(`${scratch}/wrap`);
      const configOf = (vpc: string, attachment: string, address: string) =>
        attachmentConfig({
          name: "crash",
          vpc,
          attachment,
          locator: LOCATOR,
          node: NODE,
          stateDir,
          agentSocket,
          addresses: [address],
          terminations: [{ network: "10.70.0.0/16", via: "10.60.0.1" }, {
            network: "2001:db8:70::/48",
          }],
        });
      const target = configOf("Dog", "2", "10.60.0.2/24");
      const call = (command: "ADD" | "DEL", netns: Netns | undefined = pod) =>
        invoke({
          command,
          node,
          ...(netns && { pod: netns }),
          containerId: "crash-target",
          config: target,
          env,
        });
      const arm = (n: number) => Deno.writeTextFile(`${scratch}/wrap/counter`, String(n));
      const log = async () =>
        (await Deno.readTextFile(`${scratch}/wrap/log`).catch(() => "")).split("\n")
          .filter((l) => l !== "");
      const clearLog = () => Deno.writeTextFile(`${scratch}/wrap/log`, "");
      // The node as the plugin and the agent leave it: once the agent has
      // finished the removals DELs handed it.
      const print = async () => {
        await api.removalsDone();
        return await fingerprint(node, [livePod, pod], api, stateDir);
      };

      expectSuccess(
        await invoke({
          command: "ADD",
          node,
          pod: livePod,
          containerId: "crash-live",
          config: configOf("Cat", "1", "10.50.0.2/24"),
        }),
        "live ADD",
      );
      const bare = await print();
      await clearLog();
      expectSuccess(await call("ADD"), "clean ADD");
      const addSteps = await log();
      const added = await print();
      await clearLog();
      expectSuccess(await call("DEL"), "clean DEL");
      const delSteps = await log();
      assert.deepEqual(await print(), bare, "a clean DEL leaves the node as before");
      ledger.ran(
        `clean run: ADD ${addSteps.length} commands, DEL ${delSteps.length}; fingerprints of ${added.length} and ${bare.length} items`,
      );

      for (let n = 1; VERBS.includes("ADD") && n <= addSteps.length; n++) {
        await arm(n);
        killed(await call("ADD"), `ADD killed after ${addSteps[n - 1]}`);
        expectSuccess(await call("ADD"), `ADD after a crash at step ${n}`);
        assert.deepEqual(await print(), added, `ADD again after a crash at step ${n}`);
        expectSuccess(await call("DEL"), `DEL after ADD again (step ${n})`);
        assert.deepEqual(await print(), bare, `DEL after ADD again (step ${n})`);

        await arm(n);
        killed(await call("ADD"), `ADD killed after ${addSteps[n - 1]}`);
        expectSuccess(await call("DEL", undefined), `DEL (empty netns) after a crash at step ${n}`);
        assert.deepEqual(await print(), bare, `DEL alone after a crash at step ${n}`);
      }
      if (VERBS.includes("ADD")) {
        ledger.ran(
          `ADD killed after each of its ${addSteps.length} commands, then ADD+DEL or DEL alone: node as a clean run leaves it each time`,
        );
      }

      for (let n = 1; VERBS.includes("DEL") && n <= delSteps.length; n++) {
        expectSuccess(await call("ADD"), `ADD before the DEL crash at step ${n}`);
        await arm(n);
        killed(await call("DEL"), `DEL killed after ${delSteps[n - 1]}`);
        expectSuccess(await call("DEL"), `DEL after a crash at step ${n}`);
        assert.deepEqual(await print(), bare, `DEL again after a crash at step ${n}`);
      }
      if (VERBS.includes("DEL")) {
        ledger.ran(
          `DEL killed after each of its ${delSteps.length} commands, then DEL again: node clean each time`,
        );
      }
    } finally {
      await api.close();
      for (const ns of made) await ns.delete();
      await Deno.remove(scratch, { recursive: true }).catch(() => {});
    }
  },
});
