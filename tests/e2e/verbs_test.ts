/**
 * The verbs end to end through the process entry point (`bin/galactic`), as
 * a runtime runs it: env + stdin, with the fake host's `ip`/`sysctl`/
 * `iptables` and `host-device` on PATH/CNI_PATH, and the fake API server
 * reached over HTTP by the real API client through a kubeconfig file.
 * The rollback, drift and lifecycle tables run in-process
 * (tests/unit/verbs_test.ts); these keep what only processes show: the exact
 * processes ADD and DEL run, their order, and concurrent processes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { summarize } from "../support/fake_host/mod.ts";
import {
  cni,
  GUEST_END,
  HOST_END,
  leftovers,
  NODE,
  ok,
  RD,
  SID,
  VRF,
  world,
} from "../support/cni_world.ts";

Deno.test("ADD configures VRF, veth, terminations, host-device, BGPVRFInstance and SRv6 in order", async () => {
  await using w = await world();
  const apiWrites: number[] = [];
  w.api.onRequest((r) => {
    if (r.verb === "create" || r.verb === "update") apiWrites.push(Date.now());
  });
  const add = ok(await cni(w, "ADD", { config: w.config() }), "ADD");
  const result = add.json!;
  assert.equal(result.cniVersion, "1.1.0");
  const interfaces = result.interfaces as { name: string; sandbox?: string }[];
  assert.deepEqual(interfaces.slice(0, 2).map((i) => i.name), [VRF, HOST_END]);
  assert.equal(interfaces[2]?.name, "net1");
  assert.ok(interfaces[2]?.sandbox, "pod interface carries its sandbox");
  const ips = result.ips as { address: string; interface: number }[];
  assert.deepEqual(ips.map((ip) => [ip.address, ip.interface]), [["10.1.0.2/24", 2], [
    "2001:db8:1::2/64",
    2,
  ]]);

  const kernel = await w.host.kernel();
  const vrf = kernel.link(VRF);
  assert.equal(vrf?.kind, "vrf");
  assert.equal(vrf?.table, 1000);
  const hostEnd = kernel.link(HOST_END);
  assert.equal(hostEnd?.master, VRF);
  assert.equal(hostEnd?.up, true);
  assert.equal(hostEnd?.mtu, 1400);
  assert.equal(kernel.link(GUEST_END), undefined, "guest end moved into the pod");
  assert.equal(kernel.sysctls["net.vrf.strict_mode"], "1");
  for (const dev of [VRF, HOST_END]) {
    assert.equal(kernel.sysctls[`net.ipv4.conf.${dev}.rp_filter`], "0");
    assert.equal(kernel.sysctls[`net.ipv4.conf.${dev}.forwarding`], "1");
    assert.equal(kernel.sysctls[`net.ipv6.conf.${dev}.forwarding`], "1");
    assert.equal(kernel.sysctls[`net.ipv4.conf.${dev}.proxy_arp`], "1");
    assert.equal(kernel.sysctls[`net.ipv6.conf.${dev}.proxy_ndp`], "1");
  }
  assert.ok(kernel.rules.iptables.some((r) => r.includes(`-A FORWARD -o ${HOST_END} -j ACCEPT`)));
  assert.ok(kernel.rules.ip6tables.some((r) => r.includes(`-A FORWARD -o ${HOST_END} -j ACCEPT`)));
  const table = kernel.table(1000, { userOnly: true }).map((r) =>
    `${r.type ?? "unicast"} ${r.dst} ${r.gateway ?? ""} ${r.dev ?? ""}`.trim()
  );
  assert.ok(table.includes(`unicast 10.20.0.0/16 10.1.0.2 ${HOST_END}`), table.join("\n"));
  assert.ok(table.includes(`unicast 2001:db8:20::/48  ${HOST_END}`), table.join("\n"));
  assert.equal(
    table.filter((r) => /^unreachable (0\.0\.0\.0|::)\/0/.test(r)).length,
    2,
    table.join("\n"),
  );
  const sid = kernel.routes.find((r) => r.encap);
  assert.equal(sid?.display, SID);
  assert.equal(sid?.encap?.action, "End.DT46");
  assert.equal(sid?.encap?.vrftable, 1000);
  assert.equal(sid?.dev, HOST_END);

  const object = w.api.object("bgpvrfinstances", `galactic-vpc-b04-${NODE}`);
  assert.ok(object, "BGPVRFInstance written");
  assert.equal(object.spec.routeDistinguisher, RD);
  assert.deepEqual(object.spec.importRouteTargets, [{ value: RD }]);
  assert.deepEqual(object.spec.exportRouteTargets, [{ value: RD }]);

  // SPEC §5 order: VRF → veth → terminations → host-device → SRv6, with the
  // Kubernetes declaration alongside host-device and the SRv6 route (issue 17).
  const commands = await w.host.commands();
  const lines = summarize(commands);
  const index = (pattern: RegExp): number => {
    const i = lines.findIndex((l) => pattern.test(l));
    assert.ok(i >= 0, `no command matching ${pattern} in:\n${lines.join("\n")}`);
    return i;
  };
  const order = [
    index(/link add G0000000jU00GV type vrf table 1000/),
    index(/link add G0000000jU00GH mtu 1400 type veth peer name G0000000jU00GG/),
    index(/route replace 10\.20\.0\.0\/16 via 10\.1\.0\.2 dev G0000000jU00GH onlink table 1000/),
    index(/^host-device ADD device=G0000000jU00GG ifname=net1/),
    index(/seg6local action End\.DT46 vrftable 1000 dev G0000000jU00GH/),
  ];
  assert.deepEqual(order, [...order].sort((a, b) => a - b), lines.join("\n"));
  const terminationsAt = commands[order[2]!]!.t;
  assert.equal(apiWrites.length, 1, "one API write");
  assert.ok(terminationsAt <= apiWrites[0]!, "API write after the VRF, veth and terminations");
});

Deno.test("results follow the negotiated version (0.4.0 has ips[].version)", async () => {
  await using w = await world();
  const add = ok(await cni(w, "ADD", { config: w.config({ cniVersion: "0.4.0" }) }), "ADD");
  assert.equal(add.json!.cniVersion, "0.4.0");
  assert.deepEqual((add.json!.ips as { version: string }[]).map((ip) => ip.version), ["4", "6"]);
});

Deno.test("DEL withdraws before tearing down, leaves nothing, and a second DEL succeeds", async () => {
  await using w = await world();
  const config = w.config();
  const add = ok(await cni(w, "ADD", { config }), "ADD");
  await w.host.clearLog();
  const apiDeletes: number[] = [];
  w.api.onRequest((r) => {
    if (r.verb === "delete") apiDeletes.push(Date.now());
  });
  ok(await cni(w, "DEL", { config: { ...config, prevResult: add.json } }), "DEL");
  assert.deepEqual(await leftovers(w), []);
  const commands = await w.host.commands();
  const lines = summarize(commands);
  const sidDel = lines.findIndex((l) => /ip -6 route del fc00:0:1::b04:10\/128/.test(l));
  const delegateDel = lines.findIndex((l) => /^host-device DEL/.test(l));
  const linkDel = lines.findIndex((l) => /link (del|set dev) G0000000jU00GH/.test(l));
  assert.ok(sidDel >= 0 && sidDel < delegateDel && delegateDel < linkDel, lines.join("\n"));
  assert.equal(apiDeletes.length, 1);
  assert.ok(
    commands[sidDel]!.t <= apiDeletes[0]! && apiDeletes[0]! <= commands[delegateDel]!.t,
    "withdraw before teardown",
  );

  ok(await cni(w, "DEL", { config }), "second DEL");
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("20 concurrent ADDs get 20 distinct tables; 20 DELs leave the node clean", async () => {
  await using w = await world();
  const configs = Array.from({ length: 20 }, (_, i) =>
    w.config({
      name: `net-${i}`,
      vpc: i % 2 === 0 ? "jU" : "Xy",
      vpcattachment: String.fromCharCode(65 + i),
      terminations: [],
      ipam: { type: "static", addresses: [{ address: `10.3.${i}.2/24` }] },
    }));
  const adds = await Promise.all(
    configs.map((config, i) => cni(w, "ADD", { config, containerId: `c${i}` })),
  );
  adds.forEach((a, i) => ok(a, `ADD ${i}`));
  const tables = (await w.host.kernel()).links.filter((l) => l.kind === "vrf").map((l) => l.table);
  assert.equal(new Set(tables).size, 20, `tables: ${tables.join(",")}`);
  assert.equal(w.api.objects("bgpvrfinstances").length, 2, "one object per (VPC, node)");
  const dels = await Promise.all(
    configs.map((config, i) => cni(w, "DEL", { config, containerId: `c${i}` })),
  );
  dels.forEach((d, i) => ok(d, `DEL ${i}`));
  assert.deepEqual(await leftovers(w), []);
});

Deno.test("ADD and DEL run exactly these processes", async () => {
  // Every exec is on the pod's critical path (most of a plugin's latency
  // besides its own start-up), so the list is part of the design.
  await using w = await world();
  const config = w.config();
  const add = ok(await cni(w, "ADD", { config }), "ADD");
  const afterAdd = (await w.host.commands()).length;
  const addLines = summarize(await w.host.commands()).map((l) => l.replace(/ : .*/, ""));
  assert.deepEqual(
    addLines.sort(),
    [
      "host-device ADD device=G0000000jU00GG ifname=net1",
      "ip -6 -batch -",
      "ip -6 route replace fc00:0:1::b04:10/128 encap seg6local action End.DT46 vrftable 1000 dev G0000000jU00GH",
      "ip -batch -",
      "ip -json -details -force -batch -",
      "ip6tables -w 5 -I FORWARD 1 -o G0000000jU00GH -j ACCEPT",
      "ip6tables -w 5 -S FORWARD",
      "iptables -w 5 -I FORWARD 1 -o G0000000jU00GH -j ACCEPT",
      "iptables -w 5 -S FORWARD",
      "sysctl -q -w net.vrf.strict_mode=1",
      `sysctl -q -w ${
        [VRF, HOST_END].flatMap((dev) => [
          `net/ipv4/conf/${dev}/rp_filter=0`,
          `net/ipv4/conf/${dev}/forwarding=1`,
          `net/ipv6/conf/${dev}/forwarding=1`,
          `net/ipv4/conf/${dev}/proxy_arp=1`,
          `net/ipv6/conf/${dev}/proxy_ndp=1`,
        ]).join(" ")
      }`,
    ].sort(),
  );
  ok(await cni(w, "DEL", { config: { ...config, prevResult: add.json } }), "DEL");
  const delLines = summarize((await w.host.commands()).slice(afterAdd)).map((l) =>
    l.replace(/ : .*/, "")
  );
  assert.deepEqual(
    delLines.sort(),
    [
      "host-device DEL device=G0000000jU00GG ifname=net1",
      "ip -6 route del fc00:0:1::b04:10/128",
      "ip -force -batch -",
      "ip6tables -w 5 -D FORWARD -o G0000000jU00GH -j ACCEPT",
      "iptables -w 5 -D FORWARD -o G0000000jU00GH -j ACCEPT",
    ].sort(),
  );
});
