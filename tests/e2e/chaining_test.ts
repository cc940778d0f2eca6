/**
 * Chaining and per-pod runtime requests, with configurations as Multus and
 * libcni build them: a conflist entry declaring `capabilities`, libcni's
 * injected `runtimeConfig` (only declared capabilities), Multus' `args.cni`,
 * `CNI_ARGS`, and a `prevResult` from the plugin before galactic.
 *
 * @module
 */

import assert from "node:assert/strict";
import { cni, GUEST_END, HOST_END, leftovers, ok, VRF, world } from "../support/cni_world.ts";

type Ip = { address: string; interface?: number; gateway?: string };
type Interface = { name: string; mac?: string; sandbox?: string };

Deno.test("runtimeConfig ips and mac (Multus' capabilities) are what the pod gets", async () => {
  await using w = await world();
  // The NAD's conflist entry declares the capabilities; Multus (through
  // libcni) injects the pod's requests for exactly those.
  const config = w.config({
    capabilities: { ips: true, mac: true },
    runtimeConfig: { ips: ["10.1.0.9/24", "2001:db8:1::9/64"], mac: "02:00:00:AA:BB:CC" },
  });
  const netns = await w.host.netns("c1");
  const add = ok(await cni(w, "ADD", { config, netns }), "ADD");
  const interfaces = add.json!.interfaces as Interface[];
  assert.deepEqual(interfaces.map((i) => [i.name, i.mac ?? ""]).at(-1), [
    "net1",
    "02:00:00:aa:bb:cc",
  ]);
  assert.deepEqual((add.json!.ips as Ip[]).map((ip) => [ip.address, ip.interface]), [
    ["10.1.0.9/24", 2],
    ["2001:db8:1::9/64", 2],
  ]);
  const pod = (await w.host.kernel()).link("net1", netns);
  assert.equal(pod?.mac, "02:00:00:aa:bb:cc");
  assert.deepEqual([...pod!.addresses].sort(), ["10.1.0.9/24", "2001:db8:1::9/64"]);
  // host-device got the ips as libcni would give a delegate declaring the capability.
  const delegated = (await w.host.commands()).find((c) => c.argv[0] === "host-device");
  const sent = JSON.parse(delegated!.stdin!);
  assert.deepEqual(sent.capabilities, { ips: true });
  assert.deepEqual(sent.runtimeConfig, { ips: ["10.1.0.9/24", "2001:db8:1::9/64"] });

  ok(await cni(w, "CHECK", { config: { ...config, prevResult: add.json }, netns }), "CHECK");
  ok(await cni(w, "DEL", { config, netns }), "DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("args.cni.ips (Multus cni-args) and CNI_ARGS MAC reach static and the pod end", async () => {
  await using w = await world();
  const config = w.config({ args: { cni: { ips: ["10.1.0.44/24"] } } });
  const netns = await w.host.netns("c1");
  const add = ok(
    await cni(w, "ADD", {
      config,
      netns,
      env: { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=pod-a;MAC=02:00:00:00:00:44" },
    }),
    "ADD",
  );
  assert.deepEqual((add.json!.ips as Ip[]).map((ip) => ip.address), ["10.1.0.44/24"]);
  assert.equal((await w.host.kernel()).link("net1", netns)?.mac, "02:00:00:00:00:44");
  ok(await cni(w, "DEL", { config, netns }), "DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("addresses podman 4.3 sends without a prefix length get the configured subnet's", async () => {
  await using w = await world();
  const netns = await w.host.netns("c1");
  // podman: several addresses arrive as runtimeConfig.ips, bare.
  const several = w.config({
    capabilities: { ips: true },
    runtimeConfig: { ips: ["10.1.0.9", "2001:db8:1::9"] },
  });
  const add = ok(await cni(w, "ADD", { config: several, netns }), "ADD with runtimeConfig.ips");
  assert.deepEqual((add.json!.ips as Ip[]).map((ip) => ip.address), [
    "10.1.0.9/24",
    "2001:db8:1::9/64",
  ]);
  ok(await cni(w, "DEL", { config: several, netns }), "DEL");
  // podman: one `--ip` arrives as CNI_ARGS IP, bare; one outside the configured subnets.
  const one = await cni(w, "ADD", {
    config: w.config(),
    netns,
    env: { CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAME=pod-a;IP=10.1.0.33,192.0.2.7" },
  });
  ok(one, "ADD with CNI_ARGS IP");
  assert.deepEqual((one.json!.ips as Ip[]).map((ip) => ip.address), [
    "10.1.0.2/24",
    "2001:db8:1::2/64",
    "10.1.0.33/24",
    "192.0.2.7/32",
  ]);
  ok(await cni(w, "DEL", { config: w.config(), netns }), "DEL");
  const bad = await cni(w, "ADD", {
    config: w.config(),
    netns,
    env: { CNI_ARGS: "IgnoreUnknown=1;IP=10.1.0.300" },
  });
  assert.equal(bad.json?.code, 4, bad.stdout);
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("a prevResult is passed through: earlier interfaces, ips and routes kept, indices shifted", async () => {
  await using w = await world();
  const netns = await w.host.netns("c1");
  // The conflist's first plugin: host-device moving a dummy in as eth0 with
  // its own static address, route and DNS. Its result is what libcni hands
  // galactic, second in the list, as prevResult.
  await w.host.run(["ip", "link", "add", "dummy0", "type", "dummy"]);
  const first = await w.host.runner().run([`${w.host.cniDir}/host-device`], {
    stdin: JSON.stringify({
      cniVersion: "1.0.0", // what Debian's host-device speaks
      name: "tenant-a",
      type: "host-device",
      device: "dummy0",
      ipam: {
        type: "static",
        addresses: [{ address: "10.99.0.5/24", gateway: "10.99.0.1" }],
        routes: [{ dst: "10.98.0.0/16", gw: "10.99.0.1" }],
        dns: { nameservers: ["10.99.0.53"] },
      },
    }),
    env: {
      CNI_COMMAND: "ADD",
      CNI_CONTAINERID: "c1",
      CNI_NETNS: netns,
      CNI_IFNAME: "eth0",
      CNI_PATH: w.host.cniDir,
    },
    clearEnv: true,
  });
  assert.equal(first.code, 0, first.stdout);
  const prevResult = JSON.parse(first.stdout);
  const config = w.config({ prevResult });
  const add = ok(await cni(w, "ADD", { config, netns }), "ADD");
  const result = add.json!;
  assert.deepEqual((result.interfaces as Interface[]).map((i) => i.name), [
    "eth0",
    VRF,
    HOST_END,
    "net1",
  ]);
  assert.deepEqual((result.ips as Ip[]).map((ip) => [ip.address, ip.interface]), [
    ["10.99.0.5/24", 0],
    ["10.1.0.2/24", 3],
    ["2001:db8:1::2/64", 3],
  ]);
  assert.deepEqual(result.routes, [
    { dst: "10.98.0.0/16", gw: "10.99.0.1" },
    { dst: "0.0.0.0/0", gw: "10.1.0.1" },
  ]);
  assert.deepEqual(result.dns, { nameservers: ["10.99.0.53"] });
  // The runtime's CHECK carries the merged result; host-device is asked about net1 only.
  ok(await cni(w, "CHECK", { config: { ...config, prevResult: result }, netns }), "CHECK");
  ok(await cni(w, "DEL", { config: { ...config, prevResult: result }, netns }), "DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("a runtimeConfig.deviceID is refused on ADD (code 2, nothing left) and DEL still works", async () => {
  await using w = await world();
  const config = w.config({
    capabilities: { deviceID: true },
    runtimeConfig: { deviceID: "0000:03:00.2" },
  });
  const add = await cni(w, "ADD", { config });
  assert.equal(add.json?.code, 2, add.stdout);
  assert.match(String(add.json?.msg), /unsupported field "runtimeConfig.deviceID".*0000:03:00.2/);
  assert.deepEqual(await leftovers(w), []);
  assert.equal((await w.host.kernel()).link(GUEST_END), undefined);
  ok(await cni(w, "DEL", { config }), "DEL");
});

Deno.test("invalid per-pod requests fail with code 7 naming the field", async () => {
  await using w = await world();
  for (
    const [patch, field] of [
      [{ runtimeConfig: { mac: "01:00:5e:00:00:01" } }, "runtimeConfig.mac"],
      [{ runtimeConfig: { ips: ["10.1.0.999"] } }, "runtimeConfig.ips[0]"],
      [{ runtimeConfig: { ips: "10.1.0.9/24" } }, "runtimeConfig.ips"],
      [{ args: { cni: { mac: "zz" } } }, "args.cni.mac"],
    ] as const
  ) {
    const add = await cni(w, "ADD", { config: w.config(patch) });
    assert.equal(add.json?.code, 7, add.stdout);
    assert.ok(String(add.json?.msg).includes(`field "${field}"`), String(add.json?.msg));
  }
  const badArg = await cni(w, "ADD", {
    config: w.config(),
    env: { CNI_ARGS: "IgnoreUnknown=1;MAC=ff:ff:ff:ff:ff:ff" },
  });
  assert.equal(badArg.json?.code, 4, badArg.stdout);
  assert.deepEqual(await leftovers(w), []);
});
