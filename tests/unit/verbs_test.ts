/**
 * The verbs through the dispatcher in this process, behind the `Host` seam:
 * the fake host's runner (same kernel model and command log as the shims)
 * and the fake API server over HTTP through the real API client. No Deno
 * start per call, so the rollback and drift tables stay cheap.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { CommandOutput, CommandRunner } from "../../lib/iproute2/runner.ts";
import {
  cniInProcess as cni,
  HOST_END,
  leftovers,
  NODE,
  ok,
  SID,
  VRF,
  type World,
  world,
} from "../support/cni_world.ts";

Deno.test("CHECK passes on a fresh ADD and names each kind of drift", async () => {
  await using w = await world();
  const config = w.config();
  const add = ok(await cni(w, "ADD", { config }), "ADD");
  const checked = { ...config, prevResult: add.json };
  ok(await cni(w, "CHECK", { config: checked }), "CHECK");

  const drifts: [string, () => Promise<unknown>, RegExp][] = [
    [
      "termination route deleted",
      () => w.host.run(["ip", "route", "del", "10.20.0.0/16", "table", "1000"]),
      /termination 10\.20\.0\.0\/16 is missing/,
    ],
    [
      "rp_filter turned on",
      () => w.host.run(["sysctl", "-w", `net/ipv4/conf/${HOST_END}/rp_filter=1`]),
      /rp_filter is 1, expected 0/,
    ],
    [
      "FORWARD rule removed",
      () => w.host.run(["ip6tables", "-D", "FORWARD", "-o", HOST_END, "-j", "ACCEPT"]),
      /ip6tables FORWARD -o G0000000jU00GH -j ACCEPT is missing/,
    ],
    [
      // A host firewall reload that put its REJECT ahead of the rule.
      "FORWARD rule shadowed by a REJECT",
      () => w.host.run(["iptables", "-I", "FORWARD", "1", "-j", "REJECT"]),
      /iptables FORWARD -o G0000000jU00GH -j ACCEPT sits behind "-A FORWARD -j REJECT"/,
    ],
    [
      "SRv6 route removed",
      () => w.host.run(["ip", "-6", "route", "del", `${SID}/128`]),
      /SRv6 ingress route .* is missing/,
    ],
    [
      "BGPVRFInstance deleted",
      () => Promise.resolve(w.api.remove("bgpvrfinstances", `galactic-vpc-b04-${NODE}`)),
      /BGPVRFInstance: /,
    ],
    [
      "host veth set down",
      () => w.host.run(["ip", "link", "set", HOST_END, "down"]),
      /G0000000jU00GH is down/,
    ],
  ];
  for (const [what, drift, message] of drifts) {
    await drift();
    const check = await cni(w, "CHECK", { config: checked });
    assert.equal(check.code, 1, `${what}: CHECK should fail`);
    assert.equal(check.json!.code, 104, `${what}: ${check.stdout}`);
    assert.match(String(check.json!.msg), message, what);
    // ADD converges the drift away again.
    ok(await cni(w, "ADD", { config }), `re-ADD after ${what}`);
  }
});

Deno.test("on a host whose FORWARD chain ends in REJECT, ADD puts the accept rule ahead of it", async () => {
  await using w = await world();
  for (const tool of ["iptables", "ip6tables"]) {
    await w.host.run([tool, "-A", "FORWARD", "-o", "eth0", "-j", "ACCEPT"]);
    await w.host.run([tool, "-A", "FORWARD", "-j", "REJECT"]);
  }
  const config = w.config();
  const add = ok(await cni(w, "ADD", { config }), "ADD");
  const kernel = await w.host.kernel();
  for (const tool of ["iptables", "ip6tables"] as const) {
    assert.deepEqual(kernel.rules[tool].filter((r) => r.startsWith("-A FORWARD")), [
      `-A FORWARD -o ${HOST_END} -j ACCEPT`,
      "-A FORWARD -o eth0 -j ACCEPT",
      "-A FORWARD -j REJECT",
    ]);
  }
  ok(await cni(w, "CHECK", { config: { ...config, prevResult: add.json } }), "CHECK");
  ok(await cni(w, "DEL", { config }), "DEL");
  assert.deepEqual(
    (await w.host.kernel()).rules.iptables.filter((r) => r.startsWith("-A FORWARD")),
    ["-A FORWARD -o eth0 -j ACCEPT", "-A FORWARD -j REJECT"],
  );
});

Deno.test("a repeated ADD converges: same table, one object, no duplicate rules", async () => {
  await using w = await world();
  const config = w.config();
  ok(await cni(w, "ADD", { config }), "ADD");
  ok(await cni(w, "ADD", { config }), "ADD again");
  const kernel = await w.host.kernel();
  assert.equal(kernel.link(VRF)?.table, 1000);
  assert.equal(kernel.rules.iptables.filter((r) => r.includes(HOST_END)).length, 1);
  assert.equal(w.api.objects("bgpvrfinstances").length, 1);
  ok(await cni(w, "DEL", { config }), "DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("a failed ADD rolls back everything it created, at every step", async (t) => {
  const steps: [string, (w: World) => Promise<unknown>, number][] = [
    ["VRF creation", (w) => w.host.inject({ match: "link add G\\S+ type vrf" }), 100],
    ["veth creation", (w) => w.host.inject({ match: "link add G\\S+ .*type veth" }), 100],
    ["termination route", (w) => w.host.inject({ match: "route replace 10\\.20\\.0\\.0/16" }), 100],
    ["sysctls", (w) => w.host.inject({ match: "sysctl -q -w net/ipv4/conf" }), 100],
    ["FORWARD rule", (w) => w.host.inject({ match: "ip6tables -w 5 -I FORWARD" }), 100],
    [
      "host-device",
      (w) => w.host.inject({ match: "host-device ADD", code: 999, stderr: "boom" }),
      999,
    ],
    ["API refuses the write", (w) => Promise.resolve(w.api.deny("create", "bgpvrfinstances")), 101],
    ["SRv6 route", (w) => w.host.inject({ match: "route replace .* seg6local" }), 100],
  ];
  for (const [step, inject, code] of steps) {
    await t.step(step, async () => {
      await using w = await world();
      await inject(w);
      const add = await cni(w, "ADD", { config: w.config() });
      assert.equal(add.code, 1, `${step}: ADD should fail`);
      assert.equal(add.json!.code, code, add.stdout);
      assert.deepEqual(await leftovers(w), [], `${step}: nothing left behind`);
      // And a later DEL of the failed ADD still succeeds.
      ok(await cni(w, "DEL", { config: w.config() }), `${step}: DEL after failed ADD`);
    });
  }
});

Deno.test("ADD declares the BGPVRFInstance while host-device runs, and routes the SID after it", async () => {
  // Issue 17: the API call (through the agent, a socket round trip) is off
  // the critical path. host-device waits here until the declaration reached
  // the API server: in series, it never would (the wait gives up after 5 s).
  await using w = await world();
  let declared!: () => void;
  const declaration = new Promise<void>((resolve) => declared = resolve);
  w.api.onRequest((r) => {
    if (r.verb === "create" && r.resource === "bgpvrfinstances") declared();
  });
  const order: string[] = [];
  const fake = w.host.runner();
  const runner: CommandRunner = {
    async run(argv, options): Promise<CommandOutput> {
      const hostDevice = argv[0]?.endsWith("/host-device") && options?.env?.CNI_COMMAND === "ADD";
      if (hostDevice) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const overlapped = await Promise.race([
          declaration.then(() => true),
          new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), 5000)),
        ]);
        clearTimeout(timer);
        order.push(overlapped ? "host-device during the declaration" : "host-device alone");
      }
      const output = await fake.run(argv, options);
      if (argv.includes("seg6local")) order.push("SRv6 route");
      return output;
    },
  };
  ok(await cni(w, "ADD", { config: w.config() }, runner), "ADD");
  assert.deepEqual(order, ["host-device during the declaration", "SRv6 route"]);
  assert.equal(w.api.objects("bgpvrfinstances").length, 1);
});

Deno.test("ADD routes the SID only once the BGPVRFInstance is declared (SPEC §5), even when the API is the slower", async () => {
  // The create is held at the API server until host-device is done, then
  // until the SID route appears (bounded: with the route waiting for the
  // declaration, as it must, it never does, and the answer goes after 2 s).
  await using w = await world();
  const order: string[] = [];
  let podAttached!: () => void;
  const attached = new Promise<void>((resolve) => podAttached = resolve);
  let sidRouted!: () => void;
  const routed = new Promise<void>((resolve) => sidRouted = resolve);
  w.api.onRequest(async (r) => {
    if (r.verb !== "create" || r.resource !== "bgpvrfinstances") return;
    await attached;
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([routed, new Promise((resolve) => timer = setTimeout(resolve, 2000))]);
    clearTimeout(timer);
    order.push("declaration answered");
  });
  const fake = w.host.runner();
  const runner: CommandRunner = {
    async run(argv, options): Promise<CommandOutput> {
      const output = await fake.run(argv, options);
      if (argv[0]?.endsWith("/host-device") && options?.env?.CNI_COMMAND === "ADD") podAttached();
      if (argv.includes("seg6local")) {
        order.push("SRv6 route");
        sidRouted();
      }
      return output;
    },
  };
  ok(await cni(w, "ADD", { config: w.config() }, runner), "ADD");
  assert.deepEqual(order, ["declaration answered", "SRv6 route"]);
});

Deno.test("API unreachable: ADD fails with code 11 naming the server, and leaves nothing", async () => {
  await using w = await world();
  w.api.fault({ status: 503 });
  const add = await cni(w, "ADD", { config: w.config({ api_timeout_seconds: 1 }) });
  assert.equal(add.json!.code, 11, add.stdout);
  assert.match(String(add.json!.msg), /127\.0\.0\.1/);
  w.api.clearFaults();
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("the BGPVRFInstance is shared per (VPC, node) and removed with the last attachment", async () => {
  await using w = await world();
  const first = w.config();
  const second = w.config({
    name: "tenant-a2",
    vpcattachment: "H",
    ipam: { type: "static", addresses: [{ address: "10.1.0.3/24" }] },
  });
  ok(await cni(w, "ADD", { config: first, containerId: "c1" }), "ADD first");
  ok(await cni(w, "ADD", { config: second, containerId: "c2" }), "ADD second");
  assert.equal(w.api.objects("bgpvrfinstances").length, 1);
  const tables = [
    (await w.host.kernel()).link(VRF)?.table,
    (await w.host.kernel()).link("G0000000jU00HV")?.table,
  ];
  assert.deepEqual(tables, [1000, 1001]);
  ok(await cni(w, "DEL", { config: first, containerId: "c1" }), "DEL first");
  assert.equal(w.api.objects("bgpvrfinstances").length, 1, "sibling still uses it");
  ok(await cni(w, "DEL", { config: second, containerId: "c2" }), "DEL second");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("DEL unregisters the veth and the VRF in one kernel call, also when some are gone", async () => {
  // One `link del` for all devices: the kernel's grace period is waited for
  // once, not per device (issue 17: the teardown batch is DEL's longest step).
  await using w = await world();
  const config = w.config();
  for (const gone of [[], [VRF]]) {
    const add = ok(await cni(w, "ADD", { config }), "ADD");
    for (const name of gone) await w.host.run(["ip", "link", "del", name]);
    await w.host.clearLog();
    ok(await cni(w, "DEL", { config: { ...config, prevResult: add.json } }), `DEL, gone: ${gone}`);
    const deletions = (await w.host.commands()).flatMap((c) =>
      (c.argv[0] === "ip" ? [c.argv.join(" "), ...(c.stdin ?? "").split("\n")] : [])
        .filter((line) => /link del/.test(line))
    );
    assert.deepEqual(deletions, ["link del group 1000"]);
    assert.deepEqual(await leftovers(w), []);
  }
});

Deno.test("a late DEL of an old sandbox leaves the new sandbox's state alone", async () => {
  await using w = await world();
  const config = w.config();
  ok(await cni(w, "ADD", { config, containerId: "old" }), "ADD old");
  ok(await cni(w, "ADD", { config, containerId: "new" }), "ADD new");
  ok(await cni(w, "DEL", { config, containerId: "old" }), "late DEL old");
  const kernel = await w.host.kernel();
  assert.ok(kernel.link(VRF) && kernel.link(HOST_END), "new sandbox's VRF and veth remain");
  assert.ok(kernel.routes.some((r) => r.encap), "SRv6 route remains");
  assert.equal(w.api.objects("bgpvrfinstances").length, 1);
  ok(await cni(w, "DEL", { config, containerId: "new" }), "DEL new");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("GC keeps valid attachments and releases the rest", async () => {
  await using w = await world();
  const keep = w.config();
  const drop = w.config({
    vpc: "Ab",
    vpcattachment: "1",
    ipam: { type: "static", addresses: [{ address: "10.9.0.2/24" }] },
  });
  ok(await cni(w, "ADD", { config: keep, containerId: "c1", ifname: "net1" }), "ADD keep");
  ok(await cni(w, "ADD", { config: drop, containerId: "c2", ifname: "net2" }), "ADD drop");
  assert.equal(w.api.objects("bgpvrfinstances").length, 2);
  const gc = await cni(w, "GC", {
    config: { ...keep, "cni.dev/valid-attachments": [{ containerID: "c1", ifname: "net1" }] },
    containerId: "",
    netns: "",
    ifname: "",
  });
  ok(gc, "GC");
  const kernel = await w.host.kernel();
  assert.ok(kernel.link(VRF), "valid attachment kept");
  assert.equal(kernel.link("G0000000Ab001V"), undefined, "stale attachment released");
  assert.deepEqual(w.api.objects("bgpvrfinstances").map((o) => o.metadata.name), [
    `galactic-vpc-b04-${NODE}`,
  ]);
  ok(await cni(w, "DEL", { config: keep, containerId: "c1", ifname: "net1" }), "DEL keep");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("GC releases plugin links no record explains (state lost), with no sandbox to ask", async () => {
  await using w = await world();
  const config = w.config();
  ok(await cni(w, "ADD", { config }), "ADD");
  await Deno.remove(`${w.dir}/state/attachments.json`);
  const gc = await cni(w, "GC", {
    config: { ...config, "cni.dev/valid-attachments": [] },
    containerId: "",
    netns: "",
    ifname: "",
  });
  ok(gc, "GC");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("STATUS reports available, then names what is missing with code 50", async () => {
  await using w = await world();
  ok(
    await cni(w, "STATUS", { config: w.config(), containerId: "", netns: "", ifname: "" }),
    "STATUS",
  );
  const empty = await Deno.makeTempDir({ dir: w.dir });
  const noDelegate = await cni(w, "STATUS", {
    config: w.config(),
    containerId: "",
    netns: "",
    ifname: "",
    env: { CNI_PATH: empty },
  });
  assert.equal(noDelegate.json!.code, 50);
  assert.match(String(noDelegate.json!.msg), /host-device/);
  await w.api.close();
  const noApi = await cni(w, "STATUS", {
    config: w.config({ api_timeout_seconds: 1 }),
    containerId: "",
    netns: "",
    ifname: "",
  });
  assert.equal(noApi.json!.code, 50);
  assert.match(String(noApi.json!.msg), /Kubernetes API/);
});

Deno.test("a write that landed before the API failed is rolled back too", async () => {
  await using w = await world();
  // The create succeeds; the request after it (the route-target re-check) fails
  // for good, so the ADD times out with the object already stored.
  let created = false;
  w.api.onRequest((r) => {
    if (created && r.verb === "list") w.api.fault({ verb: "list", status: 503 });
    if (r.verb === "create") created = true;
  });
  const add = await cni(w, "ADD", { config: w.config({ api_timeout_seconds: 1 }) });
  assert.equal(add.json!.code, 11, add.stdout);
  assert.ok(created, "the create reached the server");
  // The rollback withdrew the object it had just written (deletes still work).
  assert.deepEqual(await leftovers(w), []);
});
