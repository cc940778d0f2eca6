// Tests of the fake host itself: every expectation below was checked against
// the real iproute2 6.1 / procps-ng 4.0 / iptables 1.8.9 on Linux 6.x in a
// throwaway netns (VRF-specific texts come from the kernel sources: vrf.c,
// seg6_local.c), so tests built on the fake fail where the real host would.
import assert from "node:assert/strict";
import { createFakeHost, type FakeHost, summarize } from "./fake_host/mod.ts";

async function ip(
  host: FakeHost,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await host.run(["ip", ...args]);
}

async function batch(
  host: FakeHost,
  flags: string[],
  lines: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await host.run(["ip", ...flags, "-batch", "-"], lines.join("\n") + "\n");
}

async function must(host: FakeHost, ...args: string[]): Promise<string> {
  const out = await ip(host, ...args);
  assert.equal(out.code, 0, `ip ${args.join(" ")}: ${out.stderr}`);
  return out.stdout;
}

function json<T = Record<string, unknown>[]>(text: string): T {
  return JSON.parse(text) as T;
}

Deno.test("fake ip: veth pairs, duplicate names, missing devices", async () => {
  await using host = await createFakeHost();
  await must(
    host,
    "link",
    "add",
    "ab",
    "mtu",
    "9000",
    "type",
    "veth",
    "peer",
    "name",
    "cd",
    "mtu",
    "9000",
  );
  assert.deepEqual(await ip(host, "link", "add", "ab", "type", "veth", "peer", "name", "ef"), {
    code: 2,
    stdout: "",
    stderr: "RTNETLINK answers: File exists\n",
  });
  // A clash on the peer name refuses the whole pair.
  assert.equal((await ip(host, "link", "add", "xy", "type", "veth", "peer", "name", "ab")).code, 2);
  assert.equal((await host.kernel()).link("xy"), undefined);
  const [link] = json(await must(host, "-json", "link", "show", "dev", "ab"));
  assert.equal(link?.link, "cd");
  assert.equal(link?.mtu, 9000);
  assert.deepEqual(link?.flags, ["BROADCAST", "MULTICAST", "M-DOWN"]);
  assert.equal(link?.operstate, "DOWN");
  // The kernel registers the peer first.
  const snapshot = await host.kernel();
  assert.ok(snapshot.link("cd")!.ifindex < snapshot.link("ab")!.ifindex);

  await must(host, "link", "set", "ab", "up");
  let [ab] = json(await must(host, "-json", "link", "show", "ab"));
  assert.deepEqual(ab?.flags, ["NO-CARRIER", "BROADCAST", "MULTICAST", "UP", "M-DOWN"]);
  assert.equal(ab?.operstate, "LOWERLAYERDOWN");
  await must(host, "link", "set", "cd", "up");
  [ab] = json(await must(host, "-json", "link", "show", "ab"));
  assert.deepEqual(ab?.flags, ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"]);
  assert.equal(ab?.operstate, "UP");

  assert.deepEqual(await ip(host, "link", "del", "nope"), {
    code: 1,
    stdout: "",
    stderr: 'Cannot find device "nope"\n',
  });
  assert.deepEqual(await ip(host, "link", "set", "nope", "up"), {
    code: 1,
    stdout: "",
    stderr: 'Cannot find device "nope"\n',
  });
  assert.deepEqual(await ip(host, "-json", "link", "show", "dev", "nope"), {
    code: 1,
    stdout: "",
    stderr: 'Device "nope" does not exist.\n',
  });
  // Deleting one end deletes the pair.
  await must(host, "link", "del", "cd");
  assert.equal((await ip(host, "link", "show", "ab")).code, 1);
});

Deno.test("fake ip: interface name rules of iproute2 and the kernel", async () => {
  await using host = await createFakeHost();
  assert.deepEqual(
    await ip(host, "link", "add", "ab12345678901234", "type", "veth", "peer", "name", "xx"),
    {
      code: 2,
      stdout: "",
      stderr: "Error: Attribute failed policy validation.\n",
    },
  );
  assert.deepEqual(
    await ip(host, "link", "add", "ab", "type", "veth", "peer", "name", "xx123456789012345"),
    {
      code: 255,
      stdout: "",
      stderr: 'Error: argument "xx123456789012345" is wrong: "name" not a valid ifname\n',
    },
  );
  assert.deepEqual(await ip(host, "link", "add", "a/b", "type", "veth", "peer", "name", "xx"), {
    code: 255,
    stdout: "",
    stderr: 'Error: argument "a/b" is wrong: "dev" not a valid ifname\n',
  });
  for (const reserved of ["all", "default"]) {
    assert.deepEqual(await ip(host, "link", "add", reserved, "type", "veth", "peer", "name", "q"), {
      code: 2,
      stdout: "",
      stderr: "RTNETLINK answers: Invalid argument\n",
    });
  }
  // 15 characters is the limit (IFNAMSIZ - 1): the plugin's names use all of it.
  await must(
    host,
    "link",
    "add",
    "G0000000jU00GH",
    "type",
    "veth",
    "peer",
    "name",
    "G0000000jU00GGx",
  );
  assert.deepEqual(await ip(host, "link", "add", "q", "type", "veth"), {
    code: 0,
    stdout: "",
    stderr: "",
  });
  assert.ok((await host.kernel()).link("veth0"), "a peer without a name is veth0");
});

Deno.test("fake ip: -batch stops at the first failure, -force goes on, -json prints one array per show", async () => {
  await using host = await createFakeHost();
  await must(host, "link", "add", "ab", "type", "veth", "peer", "name", "cd");
  const lines = ["link show dev ab", "link show dev nope", "link show dev cd"];

  const strict = await batch(host, ["-json", "-details"], lines);
  assert.equal(strict.code, 1);
  assert.equal(strict.stderr, 'Device "nope" does not exist.\nCommand failed -:2\n');
  const strictLines = strict.stdout.split("\n").filter((l) => l !== "");
  assert.equal(strictLines.length, 1);
  assert.equal(json(strictLines[0]!)[0]?.ifname, "ab");

  const forced = await batch(host, ["-json", "-details", "-force"], lines);
  assert.equal(forced.code, 1);
  assert.equal(forced.stderr, 'Device "nope" does not exist.\nCommand failed -:2\n');
  assert.deepEqual(
    forced.stdout.split("\n").filter((l) => l !== "").map((l) => json(l)[0]?.ifname),
    ["ab", "cd"],
  );
  const details = json(forced.stdout.split("\n")[0]!)[0]!;
  assert.deepEqual(details.linkinfo, { info_kind: "veth" });

  // A failing modification stops the batch: later lines never run.
  const stop = await batch(host, [], [
    "link add q1 type veth peer name q2",
    "link add q1 type veth peer name q3",
    "link add q4 type veth peer name q5",
  ]);
  assert.deepEqual(stop, {
    code: 1,
    stdout: "",
    stderr: "RTNETLINK answers: File exists\nCommand failed -:2\n",
  });
  assert.equal((await host.kernel()).link("q4"), undefined);

  // Argument errors are exit(-1) in iproute2: the batch ends even with -force, without "Command failed".
  const abort = await batch(host, ["-force"], [
    "link set q1 up",
    "link set q1 master nope",
    "link set q2 up",
  ]);
  assert.deepEqual(abort, {
    code: 255,
    stdout: "",
    stderr: 'Error: argument "nope" is wrong: Device does not exist\n\n',
  });
  const after = await host.kernel();
  assert.equal(after.link("q1")?.up, true);
  assert.equal(after.link("q2")?.up, false);

  // Blank lines and comments are skipped but counted.
  const counted = await batch(host, [], ["", "# comment", "link del nope"]);
  assert.equal(counted.stderr, 'Cannot find device "nope"\nCommand failed -:3\n');
  // Unknown subcommands abort with 255, unknown objects fail the line.
  assert.equal((await batch(host, ["-force"], ["link bogus", "link show"])).code, 255);
  assert.deepEqual(await batch(host, [], ["frob"]), {
    code: 1,
    stdout: "",
    stderr: 'Object "frob" is unknown, try "ip help".\nCommand failed -:1\n',
  });
});

Deno.test("fake ip: master, mtu and up in one `link set` apply in kernel order", async () => {
  await using host = await createFakeHost();
  await must(host, "link", "add", "ab", "type", "veth", "peer", "name", "cd");
  // A veth cannot be a master; mtu and up were applied before the master failed.
  assert.deepEqual(await ip(host, "link", "set", "ab", "mtu", "1300", "master", "cd", "up"), {
    code: 2,
    stdout: "",
    stderr: "RTNETLINK answers: Operation not supported\n",
  });
  const ab = (await host.kernel()).link("ab")!;
  assert.equal(ab.mtu, 1300);
  assert.equal(ab.up, true);
  assert.equal(ab.master, undefined);
  assert.deepEqual(await ip(host, "link", "set", "ab", "mtu", "67"), {
    code: 2,
    stdout: "",
    stderr: "Error: mtu less than device minimum.\n",
  });
  assert.deepEqual(await ip(host, "link", "set", "ab", "mtu", "70000"), {
    code: 2,
    stdout: "",
    stderr: "Error: mtu greater than device maximum.\n",
  });

  await must(host, "link", "add", "G0000000jU00GV", "type", "vrf", "table", "4242");
  await must(host, "link", "set", "ab", "mtu", "1400", "master", "G0000000jU00GV", "up");
  const [vrf] = json(
    await must(host, "-json", "-details", "link", "show", "dev", "G0000000jU00GV"),
  );
  assert.deepEqual(vrf?.linkinfo, { info_kind: "vrf", info_data: { table: 4242 } });
  assert.deepEqual(vrf?.flags, ["NOARP", "MASTER"]);
  const [slave] = json(await must(host, "-json", "-details", "link", "show", "dev", "ab"));
  assert.equal(slave?.master, "G0000000jU00GV");
  assert.deepEqual(slave?.linkinfo, {
    info_kind: "veth",
    info_slave_kind: "vrf",
    info_slave_data: { table: 4242 },
  });
  // Deleting the VRF releases its slaves.
  await must(host, "link", "del", "G0000000jU00GV");
  assert.equal((await host.kernel()).link("ab")?.master, undefined);
});

Deno.test("fake ip: VRF tables are unique under net.vrf.strict_mode=1", async () => {
  await using host = await createFakeHost();
  await must(host, "link", "add", "v1", "type", "vrf", "table", "10");
  // Without strict mode two VRFs may share a table...
  await must(host, "link", "add", "v2", "type", "vrf", "table", "10");
  // ...which then blocks turning strict mode on.
  assert.deepEqual(await host.run(["sysctl", "-q", "-w", "net.vrf.strict_mode=1"]), {
    code: 1,
    stdout: "",
    stderr: 'sysctl: setting key "net.vrf.strict_mode": Device or resource busy\n',
  });
  await must(host, "link", "del", "v2");
  assert.equal((await host.run(["sysctl", "-q", "-w", "net.vrf.strict_mode=1"])).code, 0);
  assert.deepEqual(await ip(host, "link", "add", "v3", "type", "vrf", "table", "10"), {
    code: 2,
    stdout: "",
    stderr: "Error: Table is used by another VRF.\n",
  });
  assert.deepEqual(await ip(host, "link", "add", "v1", "type", "vrf", "table", "11"), {
    code: 2,
    stdout: "",
    stderr: "RTNETLINK answers: File exists\n",
  });
  assert.deepEqual(await ip(host, "link", "add", "v4", "type", "vrf", "table", "0"), {
    code: 2,
    stdout: "",
    stderr: "Error: Invalid VRF table id.\n",
  });
  assert.equal((await host.run(["sysctl", "-q", "-w", "net.vrf.strict_mode=2"])).code, 1);
  const vrfs = json(
    (await batch(host, ["-json", "-details"], ["link show type vrf"])).stdout,
  );
  assert.deepEqual(vrfs.map((l) => l.ifname), ["v1"]);
});

Deno.test("fake ip: net.vrf.strict_mode exists only once the vrf module is loaded", async () => {
  await using host = await createFakeHost({ vrfModuleLoaded: false });
  assert.deepEqual(await host.run(["sysctl", "-q", "-w", "net.vrf.strict_mode=1"]), {
    code: 1,
    stdout: "",
    stderr: "sysctl: cannot stat /proc/sys/net/vrf/strict_mode: No such file or directory\n",
  });
  await must(host, "link", "add", "v1", "type", "vrf", "table", "10");
  assert.deepEqual(await host.run(["sysctl", "-n", "net.vrf.strict_mode"]), {
    code: 0,
    stdout: "0\n",
    stderr: "",
  });
});

Deno.test("fake ip: routes — replace converges, add conflicts, del and flush, missing tables", async () => {
  await using host = await createFakeHost();
  await must(host, "link", "add", "ab", "type", "veth", "peer", "name", "cd");
  await must(host, "link", "set", "ab", "up");
  await must(host, "link", "set", "cd", "up");
  await must(host, "route", "replace", "10.1.0.0/16", "dev", "ab", "scope", "link", "table", "10");
  await must(
    host,
    "route",
    "replace",
    "10.2.0.0/16",
    "via",
    "10.1.0.1",
    "dev",
    "ab",
    "onlink",
    "table",
    "10",
  );
  await must(
    host,
    "route",
    "replace",
    "10.2.0.0/16",
    "via",
    "10.1.0.1",
    "dev",
    "ab",
    "onlink",
    "table",
    "10",
  );
  assert.deepEqual(
    await ip(
      host,
      "route",
      "add",
      "10.2.0.0/16",
      "via",
      "10.1.0.1",
      "dev",
      "ab",
      "onlink",
      "table",
      "10",
    ),
    {
      code: 2,
      stdout: "",
      stderr: "RTNETLINK answers: File exists\n",
    },
  );
  await must(
    host,
    "route",
    "replace",
    "unreachable",
    "default",
    "metric",
    "4278198272",
    "table",
    "10",
  );
  await must(
    host,
    "route",
    "replace",
    "unreachable",
    "::/0",
    "metric",
    "4278198272",
    "table",
    "10",
  );
  await must(
    host,
    "-6",
    "route",
    "replace",
    "fd00:2::/64",
    "via",
    "fd00:1::1",
    "dev",
    "ab",
    "onlink",
    "table",
    "10",
  );
  await must(host, "route", "replace", "10.5.0.1", "dev", "ab", "table", "10");

  assert.deepEqual(json(await must(host, "-4", "-json", "route", "show", "table", "10")), [
    { type: "unreachable", dst: "default", metric: 4278198272, flags: [] },
    { dst: "10.1.0.0/16", dev: "ab", scope: "link", flags: [] },
    { dst: "10.2.0.0/16", gateway: "10.1.0.1", dev: "ab", flags: ["onlink"] },
    { dst: "10.5.0.1", dev: "ab", scope: "link", flags: [] },
  ]);
  // Without -4/-6 a table dump is IPv4 only.
  assert.equal(
    await must(host, "-json", "route", "show", "table", "10"),
    await must(host, "-4", "-json", "route", "show", "table", "10"),
  );
  assert.deepEqual(json(await must(host, "-6", "-json", "route", "show", "table", "10")), [
    {
      dst: "fd00:2::/64",
      gateway: "fd00:1::1",
      dev: "ab",
      metric: 1024,
      flags: ["onlink"],
      pref: "medium",
    },
    {
      type: "unreachable",
      dst: "default",
      dev: "lo",
      metric: 4278198272,
      flags: [],
      pref: "medium",
    },
  ]);
  assert.equal(
    await must(host, "route", "show", "table", "10"),
    "unreachable default metric 4278198272 \n10.1.0.0/16 dev ab scope link \n" +
      "10.2.0.0/16 via 10.1.0.1 dev ab onlink \n10.5.0.1 dev ab scope link \n",
  );
  assert.deepEqual(json(await must(host, "-json", "-details", "route", "show", "table", "10"))[0], {
    type: "unreachable",
    dst: "default",
    protocol: "boot",
    scope: "global",
    metric: 4278198272,
    flags: [],
  });

  const fail = (stderr: string, code = 2): { code: number; stdout: string; stderr: string } => ({
    code,
    stdout: "",
    stderr,
  });
  assert.deepEqual(
    await ip(host, "route", "del", "10.9.0.0/16", "table", "10"),
    fail("RTNETLINK answers: No such process\n"),
  );
  assert.deepEqual(
    await ip(host, "route", "del", "10.9.0.0/16", "table", "77"),
    fail("Error: FIB table does not exist.\n"),
  );
  assert.deepEqual(
    await ip(host, "-6", "route", "del", "fd00:9::/64", "table", "77"),
    fail("Error: FIB table does not exist.\n"),
  );
  assert.deepEqual(
    await ip(
      host,
      "route",
      "replace",
      "10.3.0.0/16",
      "via",
      "10.9.0.1",
      "dev",
      "ab",
      "table",
      "10",
    ),
    fail("Error: Nexthop has invalid gateway.\n"),
  );
  assert.deepEqual(
    await ip(
      host,
      "-6",
      "route",
      "replace",
      "fd0a::/64",
      "via",
      "fd0b::1",
      "dev",
      "ab",
      "table",
      "10",
    ),
    fail("RTNETLINK answers: No route to host\n"),
  );
  assert.deepEqual(
    await ip(host, "route", "replace", "10.4.0.0/16", "dev", "nope", "table", "10"),
    fail('Cannot find device "nope"\n', 1),
  );
  assert.deepEqual(
    await ip(host, "route", "replace", "10.5.0.9/16", "dev", "ab", "table", "10"),
    fail("Error: Invalid prefix for given prefix length.\n"),
  );
  assert.deepEqual(
    await ip(host, "-4", "route", "replace", "fd00::/64", "dev", "ab", "table", "10"),
    fail('Error: inet prefix is expected rather than "fd00::/64".\n', 1),
  );
  assert.deepEqual(
    await ip(host, "route", "replace", "10.0.0.0/8", "table", "10"),
    fail("RTNETLINK answers: No such device\n"),
  );
  assert.deepEqual(
    await ip(host, "route", "replace", "10.0.0.0/8", "dev", "ab", "table", "abc"),
    fail('Error: argument "abc" is wrong: "table" value is invalid\n\n', 255),
  );

  // The same dst with another metric is another route; del without metric takes the lowest.
  await must(host, "route", "replace", "10.20.0.0/16", "dev", "ab", "table", "10");
  await must(host, "route", "replace", "10.20.0.0/16", "dev", "ab", "metric", "7", "table", "10");
  await must(host, "route", "del", "10.20.0.0/16", "table", "10");
  assert.deepEqual(
    (await host.kernel()).table(10, { family: 4 }).filter((r) => r.dst === "10.20.0.0/16").map((
      r,
    ) => r.metric),
    [7],
  );
  await must(host, "route", "del", "unreachable", "default", "metric", "4278198272", "table", "10");
  assert.deepEqual(
    await ip(host, "route", "del", "unreachable", "default", "metric", "4278198272", "table", "10"),
    fail("RTNETLINK answers: No such process\n"),
  );

  // A strict dump (not -batch) of a table the kernel never created fails; -batch dumps are not strict.
  assert.deepEqual(await ip(host, "-4", "-json", "route", "show", "table", "77"), {
    code: 2,
    stdout: "[",
    stderr: "Error: ipv4: FIB table does not exist.\nDump terminated\n",
  });
  assert.deepEqual(
    await batch(host, ["-6", "-json", "-force"], ["route show table 10", "route show table 77"]),
    {
      code: 0,
      stdout: `${await must(host, "-6", "-json", "route", "show", "table", "10")}[]\n`,
      stderr: "",
    },
  );
  assert.deepEqual(await ip(host, "-4", "route", "flush", "table", "77"), {
    code: 2,
    stdout: "",
    stderr: "Error: ipv4: FIB table does not exist.\nFlush terminated\n",
  });
  assert.equal((await batch(host, ["-6"], ["route flush table 77"])).code, 0);
  await must(host, "-4", "route", "flush", "table", "10");
  assert.equal(await must(host, "-4", "-json", "route", "show", "table", "10"), "[]\n");
  // A flushed table still exists.
  assert.equal(
    (await ip(host, "route", "del", "10.1.0.0/16", "table", "10")).stderr,
    "RTNETLINK answers: No such process\n",
  );
});

Deno.test("fake ip: IPv6 dump order puts more specific prefixes first", async () => {
  await using host = await createFakeHost();
  await must(host, "link", "add", "q1", "type", "dummy");
  await must(host, "link", "set", "q1", "up");
  for (const dst of ["fc00::/16", "fc00:1::/64", "fc00:2::/64"]) {
    await must(host, "-6", "route", "replace", dst, "dev", "q1", "table", "10");
  }
  await must(
    host,
    "-6",
    "route",
    "replace",
    "fc00:1::/64",
    "dev",
    "q1",
    "metric",
    "5",
    "table",
    "10",
  );
  await must(host, "-6", "route", "replace", "unreachable", "::/0", "table", "10");
  await must(host, "-6", "route", "replace", "unreachable", "fc00:3::/64", "table", "10");
  assert.equal(
    await must(host, "-6", "route", "show", "table", "10"),
    [
      "fc00:1::/64 dev q1 metric 5 pref medium",
      "fc00:1::/64 dev q1 metric 1024 pref medium",
      "fc00:2::/64 dev q1 metric 1024 pref medium",
      "unreachable fc00:3::/64 dev lo metric 1024 pref medium",
      "fc00::/16 dev q1 metric 1024 pref medium",
      "unreachable default dev lo metric 1024 pref medium",
      "",
    ].join("\n"),
  );
});

Deno.test("fake ip: routes through a device go with it (down or deleted), unreachable ones stay", async () => {
  await using host = await createFakeHost();
  await must(host, "link", "add", "ab", "type", "veth", "peer", "name", "cd");
  await must(host, "link", "set", "ab", "up");
  assert.deepEqual(await ip(host, "route", "replace", "10.7.0.0/16", "dev", "cd", "table", "10"), {
    code: 2,
    stdout: "",
    stderr: "Error: Device for nexthop is not up.\n",
  });
  assert.equal(
    (await ip(
      host,
      "route",
      "replace",
      "10.7.0.0/16",
      "via",
      "10.0.0.1",
      "dev",
      "cd",
      "onlink",
      "table",
      "10",
    )).stderr,
    "Error: Nexthop device is not up.\n",
  );
  assert.equal(
    (await ip(host, "-6", "route", "replace", "fd07::/64", "dev", "cd", "table", "10")).stderr,
    "Error: Nexthop device is not up.\n",
  );
  await must(host, "route", "replace", "10.8.0.0/16", "dev", "ab", "table", "10");
  await must(host, "-6", "route", "replace", "fd08::/64", "dev", "ab", "table", "10");
  await must(
    host,
    "route",
    "replace",
    "unreachable",
    "default",
    "metric",
    "4278198272",
    "table",
    "10",
  );
  // No carrier (peer down): the routes stay, flagged linkdown.
  assert.deepEqual(json(await must(host, "-json", "route", "show", "table", "10"))[1], {
    dst: "10.8.0.0/16",
    dev: "ab",
    scope: "link",
    flags: ["linkdown"],
  });
  await must(host, "link", "set", "ab", "down");
  assert.deepEqual((await host.kernel()).table(10).map((r) => r.display), ["default"]);
  await must(host, "link", "set", "ab", "up");
  await must(host, "route", "replace", "10.8.0.0/16", "dev", "ab", "table", "10");
  await must(host, "link", "del", "cd");
  assert.deepEqual((await host.kernel()).table(10).map((r) => `${r.type} ${r.display}`), [
    "unreachable default",
  ]);
});

Deno.test("fake ip: IPv6 link-local routes of a device with carrier follow it into its VRF", async () => {
  await using host = await createFakeHost();
  await must(host, "link", "add", "v1", "type", "vrf", "table", "10");
  await must(host, "link", "add", "ab", "type", "veth", "peer", "name", "cd");
  await must(host, "link", "set", "ab", "master", "v1", "up");
  await must(host, "link", "set", "cd", "up");
  const kernel = await host.kernel();
  assert.deepEqual(
    kernel.table(10, { family: 6 }).map((r) => `${r.type} ${r.display} ${r.dev} ${r.protocol}`),
    [
      "anycast fe80:: ab kernel",
      "local fe80::fa:ceff:fe00:3 ab kernel",
      "unicast fe80::/64 ab kernel",
      "multicast ff00::/8 ab kernel",
    ],
  );
  assert.deepEqual(kernel.table(10, { userOnly: true }), []);
  assert.ok(
    kernel.table("main", { family: 6 }).some((r) => r.dev === "cd" && r.display === "fe80::/64"),
  );
});

Deno.test("fake ip: seg6local End.DT46 needs an up device, strict mode and a VRF on the table", async () => {
  await using host = await createFakeHost();
  const sid = "fc00:1::4d2:1";
  const route = [
    "-6",
    "route",
    "replace",
    `${sid}/128`,
    "encap",
    "seg6local",
    "action",
    "End.DT46",
    "vrftable",
    "4242",
  ];
  assert.deepEqual(await ip(host, ...route, "dev", "nope"), {
    code: 1,
    stdout: "",
    stderr: 'Cannot find device "nope"\n',
  });
  await must(host, "link", "add", "H", "type", "veth", "peer", "name", "G");
  assert.deepEqual(await ip(host, ...route, "dev", "H"), {
    code: 2,
    stdout: "",
    stderr: "Error: Nexthop device is not up.\n",
  });
  await must(host, "link", "set", "H", "up");
  assert.equal(
    (await ip(host, ...route, "dev", "H")).stderr,
    "Error: Strict mode for VRF is disabled.\n",
  );
  await host.run(["sysctl", "-q", "-w", "net.vrf.strict_mode=1"]);
  assert.equal(
    (await ip(host, ...route, "dev", "H")).stderr,
    "Error: Table has no associated VRF device.\n",
  );
  await must(host, "link", "add", "V", "type", "vrf", "table", "4242");
  await must(host, ...route, "dev", "H");
  await must(host, ...route, "dev", "H");
  const shown = await batch(host, ["-6", "-json", "-details"], [`route show ${sid}/128`]);
  assert.deepEqual(json(shown.stdout), [{
    type: "unicast",
    dst: "fc00:1::4d2:1",
    encap: "seg6local",
    action: "End.DT46",
    vrftable: "4242",
    dev: "H",
    protocol: "boot",
    scope: "global",
    metric: 1024,
    flags: ["linkdown"],
    pref: "medium",
  }]);
  assert.equal(
    await must(host, "-6", "route", "show", `${sid}/128`),
    "fc00:1::4d2:1  encap seg6local action End.DT46 vrftable 4242 dev H metric 1024 linkdown pref medium\n",
  );
  // Without -6 the dump is IPv4: nothing.
  assert.equal(await must(host, "-json", "route", "show", `${sid}/128`), "[]\n");
  await must(host, "-6", "route", "del", `${sid}/128`);
  assert.deepEqual(await ip(host, "-6", "route", "del", `${sid}/128`), {
    code: 2,
    stdout: "",
    stderr: "RTNETLINK answers: No such process\n",
  });
  assert.equal(
    (await batch(host, ["-6", "-json", "-details"], [`route show ${sid}/128`])).stdout,
    "[]\n",
  );
});

Deno.test("fake sysctl: per-interface keys live and die with the device; unknown keys fail but others apply", async () => {
  await using host = await createFakeHost();
  const keys = (name: string): string[] => [
    `net/ipv4/conf/${name}/rp_filter=0`,
    `net/ipv4/conf/${name}/forwarding=1`,
    `net/ipv6/conf/${name}/forwarding=1`,
    `net/ipv4/conf/${name}/proxy_arp=1`,
    `net/ipv6/conf/${name}/proxy_ndp=1`,
  ];
  assert.deepEqual(await host.run(["sysctl", "-q", "-w", ...keys("ab")]), {
    code: 1,
    stdout: "",
    stderr: [
      "net/ipv4/conf/ab/rp_filter",
      "net/ipv4/conf/ab/forwarding",
      "net/ipv6/conf/ab/forwarding",
      "net/ipv4/conf/ab/proxy_arp",
      "net/ipv6/conf/ab/proxy_ndp",
    ].map((k) => `sysctl: cannot stat /proc/sys/${k}: No such file or directory\n`).join(""),
  });
  await must(host, "link", "add", "ab", "type", "veth", "peer", "name", "cd");
  assert.deepEqual(
    await host.run(["sysctl", "-n", "net/ipv4/conf/ab/rp_filter", "net.ipv4.conf.ab.proxy_arp"]),
    {
      code: 0,
      stdout: "2\n0\n",
      stderr: "",
    },
  );
  assert.deepEqual(await host.run(["sysctl", "-q", "-w", ...keys("ab")]), {
    code: 0,
    stdout: "",
    stderr: "",
  });
  // A missing key does not stop the others.
  assert.equal(
    (await host.run([
      "sysctl",
      "-q",
      "-w",
      "net/ipv4/conf/nope/rp_filter=0",
      "net/ipv4/conf/ab/proxy_arp=0",
    ])).code,
    1,
  );
  assert.deepEqual(
    await host.run(["sysctl", "-n", "net/ipv4/conf/nope/rp_filter", "net/ipv4/conf/ab/proxy_arp"]),
    {
      code: 1,
      stdout: "0\n",
      stderr:
        "sysctl: cannot stat /proc/sys/net/ipv4/conf/nope/rp_filter: No such file or directory\n",
    },
  );
  assert.deepEqual(await host.run(["sysctl", "-w", "net/ipv4/conf/ab/proxy_arp=1"]), {
    code: 0,
    stdout: "net.ipv4.conf.ab.proxy_arp = 1\n",
    stderr: "",
  });
  assert.deepEqual(await host.run(["sysctl", "-q", "-w", "net/ipv4/conf/ab/rp_filter=x"]), {
    code: 1,
    stdout: "",
    stderr: 'sysctl: setting key "net.ipv4.conf.ab.rp_filter": Invalid argument\n',
  });
  assert.equal((await host.kernel()).sysctls["net.ipv6.conf.ab.proxy_ndp"], "1");
  await must(host, "link", "del", "ab");
  const after = await host.kernel();
  assert.deepEqual(
    Object.keys(after.sysctls).filter((k) => k.includes(".ab.") || k.includes(".cd.")),
    [],
  );
});

Deno.test("fake iptables: -C/-A/-D on FORWARD, per family, independent of devices", async () => {
  await using host = await createFakeHost();
  for (const tool of ["iptables", "ip6tables"]) {
    const rule = (
      op: string,
    ): string[] => [tool, "-w", "5", op, "FORWARD", "-o", "ab", "-j", "ACCEPT"];
    const bad = {
      code: 1,
      stdout: "",
      stderr: `${tool}: Bad rule (does a matching rule exist in that chain?).\n`,
    };
    const ok = { code: 0, stdout: "", stderr: "" };
    assert.deepEqual(await host.run(rule("-C")), bad);
    assert.deepEqual(await host.run(rule("-A")), ok);
    assert.deepEqual(await host.run(rule("-C")), ok);
    assert.deepEqual(await host.run(rule("-A")), ok);
    assert.deepEqual(await host.run(rule("-D")), ok);
    assert.deepEqual(await host.run(rule("-D")), ok);
    assert.deepEqual(await host.run(rule("-D")), bad);
    assert.deepEqual(await host.run([tool, "-w", "5", "-A", "NOPE", "-o", "ab", "-j", "ACCEPT"]), {
      code: 1,
      stdout: "",
      stderr: `${tool}: No chain/target/match by that name.\n`,
    });
    assert.deepEqual(
      await host.run([tool, "-w", "5", "-C", "NOPE", "-o", "ab", "-j", "ACCEPT"]),
      bad,
    );
  }
  await host.run(["iptables", "-w", "5", "-A", "FORWARD", "-o", "ab", "-j", "ACCEPT"]);
  const { rules } = await host.kernel();
  assert.deepEqual(rules.iptables, [
    "-P INPUT ACCEPT",
    "-P FORWARD ACCEPT",
    "-P OUTPUT ACCEPT",
    "-A FORWARD -o ab -j ACCEPT",
  ]);
  assert.deepEqual(rules.ip6tables, ["-P INPUT ACCEPT", "-P FORWARD ACCEPT", "-P OUTPUT ACCEPT"]);
  assert.equal(
    (await host.run(["iptables", "-S", "FORWARD"])).stdout,
    "-P FORWARD ACCEPT\n-A FORWARD -o ab -j ACCEPT\n",
  );
  assert.equal(
    (await host.run([
      "iptables",
      "-w",
      "5",
      "-A",
      "FORWARD",
      "-o",
      "abcdefghijklmnopq",
      "-j",
      "ACCEPT",
    ])).code,
    2,
  );
});

Deno.test("fake host: unsupported forms fail loudly, never silently", async () => {
  await using host = await createFakeHost();
  for (
    const argv of [
      ["ip", "addr", "add", "10.0.0.1/24", "dev", "lo"],
      ["ip", "link", "add", "br0", "type", "bridge"],
      ["ip", "route", "get", "10.0.0.1"],
      ["ip", "-s", "link"],
      ["sysctl", "-a"],
    ]
  ) {
    const out = await host.run(argv);
    assert.equal(out.code, 1, argv.join(" "));
    assert.match(out.stderr, /^fake (ip|sysctl): unsupported/, argv.join(" "));
  }
  const xt = await host.run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-j", "MASQUERADE"]);
  assert.equal(xt.code, 2, "not 1, which -C callers read as 'rule absent'");
  assert.match(xt.stderr, /^fake iptables: unsupported/);
  // An unsupported line ends a batch even with -force.
  const out = await batch(host, ["-force"], ["addr show", "link add x type dummy"]);
  assert.equal(out.code, 1);
  assert.equal((await host.kernel()).link("x"), undefined);
  assert.deepEqual(await ip(host, "-V"), {
    code: 0,
    stdout: "ip utility, iproute2-6.1.0, libbpf 1.1.2\n",
    stderr: "",
  });
});

Deno.test("fake host: faults fire on the Nth match, the requested number of times", async () => {
  await using host = await createFakeHost();
  await host.inject({
    match: "^ip link add x\\d",
    after: 1,
    times: 2,
    stderr: "RTNETLINK answers: Cannot allocate memory",
  });
  const codes: number[] = [];
  for (const name of ["x1", "x2", "x3", "x4"]) {
    codes.push((await ip(host, "link", "add", name, "type", "dummy")).code);
  }
  assert.deepEqual(codes, [0, 2, 2, 0]);
  let kernel = await host.kernel();
  assert.deepEqual(kernel.links.filter((l) => l.name.startsWith("x")).map((l) => l.name), [
    "x1",
    "x4",
  ]);
  assert.deepEqual(kernel.faults.map((f) => [f.seen, f.fired]), [[4, 2]]);

  // Batch lines are matched one by one as `ip <flags> <line>`; the batch then fails like a real one.
  await host.inject({
    match: "route replace .* seg6local",
    code: 2,
    stderr: "RTNETLINK answers: Invalid argument",
  });
  await must(host, "link", "set", "x1", "up");
  const out = await batch(host, ["-6"], [
    "route replace fd00::/64 dev x1",
    "route replace fc00::1/128 encap seg6local action End.DT6 table 10 dev x1",
    "route replace fd01::/64 dev x1",
  ]);
  assert.deepEqual(out, {
    code: 1,
    stdout: "",
    stderr: "RTNETLINK answers: Invalid argument\nCommand failed -:2\n",
  });
  kernel = await host.kernel();
  assert.deepEqual(kernel.table("main", { family: 6, userOnly: true }).map((r) => r.display), [
    "fd00::/64",
  ]);

  // apply: the change happens but the caller sees a failure (a lost reply).
  await host.inject({ match: "^sysctl", apply: true, times: -1 });
  const sysctl = await host.run(["sysctl", "-q", "-w", "net.vrf.strict_mode=1"]);
  assert.equal(sysctl.code, 1);
  assert.equal((await host.kernel()).sysctls["net.vrf.strict_mode"], "1");
  assert.equal(
    (await host.run(["sysctl", "-n", "net.vrf.strict_mode"])).code,
    1,
    "times < 0: always",
  );

  await host.inject({ match: "^host-device ADD", code: 11, stderr: "try again" });
  const netns = await host.netns("pod");
  const env = {
    CNI_COMMAND: "ADD",
    CNI_CONTAINERID: "c1",
    CNI_NETNS: netns,
    CNI_IFNAME: "net1",
    CNI_PATH: host.cniDir,
  };
  const delegate = await host.runner().run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "host-device", device: "x4" }),
    env,
    clearEnv: true,
  });
  assert.equal(delegate.code, 1);
  assert.deepEqual(JSON.parse(delegate.stdout), { code: 11, msg: "try again" });
});

function cniEnv(
  host: FakeHost,
  command: string,
  netns: string,
  ifname = "net1",
): Record<string, string> {
  return {
    CNI_COMMAND: command,
    CNI_CONTAINERID: "c1",
    CNI_NETNS: netns,
    CNI_IFNAME: ifname,
    CNI_PATH: host.cniDir,
  };
}

Deno.test("fake host-device: ADD moves and renames the device, runs static IPAM, prints the versioned result", async () => {
  await using host = await createFakeHost();
  const netns = await host.netns("pod1");
  await must(host, "link", "add", "GH", "type", "veth", "peer", "name", "GG");
  await must(host, "link", "set", "GH", "up");
  await must(host, "link", "set", "GG", "up");
  await host.run(["sysctl", "-q", "-w", "net/ipv4/conf/GG/proxy_arp=1"]);
  const config = {
    cniVersion: "1.0.0",
    name: "net",
    type: "host-device",
    device: "GG",
    ipam: {
      type: "static",
      addresses: [{ address: "10.1.1.10/24", gateway: "10.1.1.1" }, { address: "fd00:1::10/64" }],
      routes: [{ dst: "0.0.0.0/0" }, { dst: "10.9.0.0/16", gw: "10.1.1.254" }],
    },
  };
  const runner = host.runner();
  const add = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify(config),
    env: cniEnv(host, "ADD", netns),
    clearEnv: true,
  });
  assert.equal(add.code, 0, add.stdout);
  const kernel = await host.kernel();
  const pod = kernel.link("net1", netns)!;
  assert.ok(pod.up);
  assert.equal(pod.alias, "GG");
  assert.equal(kernel.link("GG"), undefined);
  assert.ok(kernel.link("GH")!.carrier, "host end has carrier again once the pod end is up");
  assert.equal(
    kernel.sysctls["net.ipv4.conf.GG.proxy_arp"],
    undefined,
    "its host sysctls left with it",
  );
  assert.match(add.stdout, /^\{\n {4}"cniVersion": "1.0.0",\n/);
  assert.deepEqual(JSON.parse(add.stdout), {
    cniVersion: "1.0.0",
    interfaces: [{ name: "net1", mac: pod.mac, sandbox: netns }],
    ips: [
      { interface: 0, address: "10.1.1.10/24", gateway: "10.1.1.1" },
      { interface: 0, address: "fd00:1::10/64" },
    ],
    routes: [{ dst: "0.0.0.0/0" }, { dst: "10.9.0.0/16", gw: "10.1.1.254" }],
    dns: {},
  });
  assert.deepEqual(pod.addresses, ["10.1.1.10/24", "fd00:1::10/64"]);
  assert.deepEqual(
    kernel.routes.filter((r) => r.netns === netns && r.protocol !== "kernel").map((r) =>
      `${r.display} ${r.gateway}`
    ),
    ["default 10.1.1.1", "10.9.0.0/16 10.1.1.254"],
  );

  // CHECK with our own result as prevResult.
  const check = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify({ ...config, prevResult: JSON.parse(add.stdout) }),
    env: cniEnv(host, "CHECK", netns),
    clearEnv: true,
  });
  assert.deepEqual(check, { code: 0, stdout: "", stderr: "" });
  const noPrev = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify(config),
    env: cniEnv(host, "CHECK", netns),
    clearEnv: true,
  });
  assert.deepEqual(JSON.parse(noPrev.stdout), { code: 999, msg: "Required prevResult missing" });

  // DEL moves it back under its original name, down, with fresh sysctls.
  const del = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify(config),
    env: cniEnv(host, "DEL", netns),
    clearEnv: true,
  });
  assert.deepEqual(del, { code: 0, stdout: "", stderr: "" });
  const back = await host.kernel();
  assert.equal(back.link("GG")?.up, false);
  assert.equal(back.sysctls["net.ipv4.conf.GG.proxy_arp"], "0");
  assert.equal(back.link("net1", netns), undefined);

  // Like the real plugin, a second DEL fails: the device is no longer in the netns.
  const again = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify(config),
    env: cniEnv(host, "DEL", netns),
    clearEnv: true,
  });
  assert.equal(again.code, 1);
  assert.deepEqual(JSON.parse(again.stdout), {
    code: 999,
    msg: 'failed to find "net1": Link not found',
  });
  // An empty CNI_NETNS (runtime already dropped the sandbox) is a successful no-op.
  const empty = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify(config),
    env: { ...cniEnv(host, "DEL", ""), CNI_NETNS: "" },
    clearEnv: true,
  });
  assert.deepEqual(empty, { code: 0, stdout: "", stderr: "" });

  // 0.4.0 results carry ips[].version.
  const legacy = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify({ ...config, cniVersion: "0.4.0" }),
    env: cniEnv(host, "ADD", netns),
    clearEnv: true,
  });
  assert.equal(JSON.parse(legacy.stdout).ips[0].version, "4");
  // Deleting the pod netns destroys its veth end and therefore the host end.
  await host.deleteNetns(netns);
  const gone = await host.kernel();
  assert.equal(gone.link("GH"), undefined);
  const lost = await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify(config),
    env: cniEnv(host, "DEL", netns),
    clearEnv: true,
  });
  assert.deepEqual(JSON.parse(lost.stdout), {
    code: 999,
    msg: `failed to open netns "${netns}": failed to Statfs "${netns}": no such file or directory`,
  });
});

Deno.test("fake host-device: errors of skel and of the plugin", async () => {
  await using host = await createFakeHost();
  const netns = await host.netns("pod");
  const runner = host.runner();
  const call = async (config: unknown, env: Record<string, string>): Promise<unknown> =>
    JSON.parse(
      (await runner.run([`${host.cniDir}/host-device`], {
        stdin: JSON.stringify(config),
        env,
        clearEnv: true,
      })).stdout,
    );
  const base = { cniVersion: "1.0.0", name: "n", type: "host-device", device: "GG" };
  assert.deepEqual(await call(base, cniEnv(host, "ADD", netns)), {
    code: 999,
    msg: "failed to find host device: Link not found",
  });
  assert.deepEqual(await call({ ...base, cniVersion: "1.1.0" }, cniEnv(host, "ADD", netns)), {
    code: 1,
    msg: "incompatible CNI versions",
    details: 'config is "1.1.0", plugin supports ["0.1.0" "0.2.0" "0.3.0" "0.3.1" "0.4.0" "1.0.0"]',
  });
  const { CNI_NETNS: _, ...noNetns } = cniEnv(host, "ADD", netns);
  assert.deepEqual(await call(base, noNetns), {
    code: 4,
    msg: "required env variables [CNI_NETNS] missing",
  });
  await must(host, "link", "add", "GH", "type", "veth", "peer", "name", "GG");
  assert.deepEqual(
    await call({ ...base, ipam: { type: "static", addresses: [] } }, cniEnv(host, "ADD", netns)),
    {
      code: 999,
      msg: "IPAM plugin returned missing IP config",
    },
  );
  // As upstream, a failed IPAM leaves the device in the pod.
  assert.ok((await host.kernel()).link("net1", netns));
  const version = await runner.run([`${host.cniDir}/host-device`], {
    env: { CNI_COMMAND: "VERSION" },
    clearEnv: true,
    stdin: "{}",
  });
  assert.deepEqual(JSON.parse(version.stdout).supportedVersions.at(-1), "1.0.0");
});

Deno.test("fake host: summarize renders one line per call, in order", async () => {
  await using host = await createFakeHost();
  const runner = host.runner();
  await runner.run(["ip", "-force", "-batch", "-"], {
    stdin: "link add GH type veth peer name GG\nlink set GH up\n",
  });
  await runner.run(["sysctl", "-q", "-w", "net/ipv4/conf/nope/rp_filter=0"]);
  await runner.run([`${host.cniDir}/host-device`], {
    stdin: JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "host-device", device: "GG" }),
    env: cniEnv(host, "ADD", await host.netns("p")),
    clearEnv: true,
  });
  assert.deepEqual(summarize(await host.commands()), [
    "ip -force -batch - : link add GH type veth peer name GG | link set GH up",
    "sysctl -q -w net/ipv4/conf/nope/rp_filter=0 => exit 1",
    "host-device ADD device=GG ifname=net1",
  ]);
  const [, , delegate] = await host.commands();
  assert.equal(delegate?.env?.CNI_CONTAINERID, "c1");
  await host.clearLog();
  assert.deepEqual(await host.commands(), []);
});

Deno.test("fake host: shims share one host across concurrent processes", async () => {
  await using host = await createFakeHost();
  const started = performance.now();
  const outputs = await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      new Deno.Command("ip", {
        args: ["link", "add", `p${i}`, "type", "veth", "peer", "name", `q${i}`],
        env: host.env,
        stdout: "piped",
        stderr: "piped",
      }).output()),
  );
  const elapsed = performance.now() - started;
  for (const out of outputs) assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const kernel = await host.kernel();
  for (let i = 0; i < 10; i++) assert.equal(kernel.link(`p${i}`)?.peer, `q${i}`);
  const commands = await host.commands();
  assert.equal(commands.length, 10);
  assert.equal(new Set(commands.map((c) => c.pid)).size, 10, "one process per call");
  assert.deepEqual(
    commands.map((c) => c.t),
    commands.map((c) => c.t).toSorted((a, b) => a - b),
    "log in execution order",
  );

  // The batch path through the shim, with stdin, and a delegate with a cleared environment.
  const netns = await host.netns("pod");
  const shim = new Deno.Command(`${host.cniDir}/host-device`, {
    env: cniEnv(host, "ADD", netns),
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = shim.stdin.getWriter();
  await writer.write(
    new TextEncoder().encode(
      JSON.stringify({ cniVersion: "1.0.0", name: "n", type: "host-device", device: "q3" }),
    ),
  );
  await writer.close();
  const result = await shim.output();
  assert.equal(result.code, 0, new TextDecoder().decode(result.stderr));
  assert.equal(JSON.parse(new TextDecoder().decode(result.stdout)).interfaces[0].name, "net1");
  assert.equal((await host.kernel()).link("net1", netns)?.alias, "q3");

  // Per-call latency of the shim, sequential.
  const rounds = 10;
  const t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const out = await new Deno.Command("ip", {
      args: ["-json", "link", "show", "dev", "p0"],
      env: host.env,
    }).output();
    assert.equal(out.code, 0);
  }
  const perCall = (performance.now() - t0) / rounds;
  console.log(
    `fake ip shim: ${perCall.toFixed(1)} ms per call (10 concurrent link adds: ${
      elapsed.toFixed(0)
    } ms)`,
  );
  assert.ok(perCall < 2000, "the shim must stay cheap");
});

// ---------------------------------------------------------------------------
// Differential check against the real tools in a throwaway netns (root only).

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

async function real(argv: string[], stdin?: string): Promise<Output> {
  try {
    const child = new Deno.Command(argv[0]!, {
      args: argv.slice(1),
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    }
    const out = await child.output();
    const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
    return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
  } catch (error) {
    return { code: 127, stdout: "", stderr: String(error) };
  }
}

const RUN_ID = `fh${Deno.pid}`;

async function realNetns(): Promise<{ ok: boolean; vrf: boolean }> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return { ok: false, vrf: false };
  const probe = `${RUN_ID}p`;
  if ((await real(["ip", "netns", "add", probe])).code !== 0) return { ok: false, vrf: false };
  try {
    const vrf =
      (await real(["ip", "-n", probe, "link", "add", "v", "type", "vrf", "table", "1"])).code === 0;
    return { ok: true, vrf };
  } finally {
    await real(["ip", "netns", "del", probe]);
  }
}

const available = await realNetns();

/** Real tools the sysctl/iptables comparison needs; a fresh machine may lack them. */
const missingTools = (await Promise.all(
  ["sysctl", "iptables", "ip6tables"].map(async (tool) =>
    (await real([tool, "--version"])).code === 0 ? [] : [tool]
  ),
)).flat();

/** Drops what legitimately differs between two hosts (indices, MACs, queue counts). */
function normalize(stdout: string): string {
  return stdout.split("\n").map((line) => {
    if (!line.startsWith("[")) return line.replace(/link\/ether \S+/, "link/ether MAC");
    try {
      const items = JSON.parse(line) as Record<string, unknown>[];
      return JSON.stringify(items.map((item) => {
        const {
          ifindex: _i,
          address: _a,
          link_index: _l,
          num_tx_queues: _t,
          num_rx_queues: _r,
          ...rest
        } = item;
        return "ifname" in item ? rest : item;
      }));
    } catch {
      return line;
    }
  }).join("\n");
}

type Step = { ip: string[]; stdin?: string } | { exec: string[] };

async function differential(steps: Step[]): Promise<void> {
  await using host = await createFakeHost({ strictMode: false });
  const ns = `${RUN_ID}d`;
  assert.equal((await real(["ip", "netns", "add", ns])).code, 0);
  try {
    await real(["ip", "-n", ns, "link", "set", "lo", "up"]);
    for (const step of steps) {
      const [want, got] = "ip" in step
        ? [
          await real(["ip", "-n", ns, ...step.ip], step.stdin),
          await host.run(["ip", ...step.ip], step.stdin),
        ]
        : [await real(["ip", "netns", "exec", ns, ...step.exec]), await host.run(step.exec)];
      const label = "ip" in step
        ? `ip ${step.ip.join(" ")}${
          step.stdin ? ` <<< ${step.stdin.trim().replaceAll("\n", " | ")}` : ""
        }`
        : step.exec.join(" ");
      assert.deepEqual(
        { code: got.code, stdout: normalize(got.stdout), stderr: got.stderr },
        { code: want.code, stdout: normalize(want.stdout), stderr: want.stderr },
        label,
      );
    }
  } finally {
    await real(["ip", "netns", "del", ns]);
  }
}

Deno.test({
  name: "fake ip matches the real ip in a netns: links, routes, batch, seg6local (root only)",
  ignore: !available.ok,
  fn: async () => {
    const ip = (...args: string[]): Step => ({ ip: args });
    await differential([
      ip("link", "add", "fa", "type", "veth", "peer", "name", "fb"),
      ip("link", "add", "fa", "type", "veth", "peer", "name", "fc"),
      ip("link", "add", "fx", "type", "veth", "peer", "name", "fa"),
      ip("link", "add", "fa12345678901234", "type", "veth", "peer", "name", "x"),
      ip("link", "add", "fd", "type", "veth", "peer", "name", "x123456789012345"),
      ip("link", "add", "all", "type", "veth", "peer", "name", "x"),
      ip("link", "add", "f/a", "type", "veth", "peer", "name", "x"),
      ip("link", "add", "q6"),
      ip("link", "set", "fa", "mtu", "1300", "master", "fb", "up"),
      ip("-json", "link", "show", "dev", "fa"),
      ip("-json", "-details", "link", "show", "dev", "fb"),
      ip("link", "set", "fb", "up"),
      ip("-json", "link", "show", "dev", "fa"),
      ip("link", "set", "fa", "mtu", "67"),
      ip("link", "set", "fa", "mtu", "70000"),
      ip("link", "set", "fa", "master", "nope"),
      ip("link", "del", "nope"),
      ip("link", "set", "nope", "up"),
      ip("-json", "link", "show", "dev", "nope"),
      ip("route", "replace", "10.1.0.0/16", "dev", "fa", "scope", "link", "table", "10"),
      ip(
        "route",
        "replace",
        "10.2.0.0/16",
        "via",
        "10.1.0.1",
        "dev",
        "fa",
        "onlink",
        "table",
        "10",
      ),
      ip(
        "route",
        "replace",
        "10.2.0.0/16",
        "via",
        "10.1.0.1",
        "dev",
        "fa",
        "onlink",
        "table",
        "10",
      ),
      ip("route", "add", "10.2.0.0/16", "via", "10.1.0.1", "dev", "fa", "onlink", "table", "10"),
      ip("route", "replace", "10.3.0.0/16", "via", "10.9.0.1", "dev", "fa", "table", "10"),
      ip("route", "replace", "10.4.0.0/16", "dev", "nope", "table", "10"),
      ip("route", "replace", "10.5.0.9/16", "dev", "fa", "table", "10"),
      ip("route", "replace", "10.5.0.1", "dev", "fa", "table", "10"),
      ip("route", "replace", "10.0.0.0/8", "table", "10"),
      ip("route", "replace", "10.0.0.0/8", "dev", "fa", "table", "abc"),
      ip("-4", "route", "replace", "fd00::/64", "dev", "fa", "table", "10"),
      ip("route", "replace", "10.0.0.0/8", "via", "fd00::1", "dev", "fa", "table", "10"),
      ip("route", "replace", "unreachable", "default", "metric", "4278198272", "table", "10"),
      ip("route", "replace", "unreachable", "::/0", "metric", "4278198272", "table", "10"),
      ip("route", "replace", "unreachable", "10.13.0.0/16", "dev", "fa", "table", "10"),
      ip("-6", "route", "replace", "fd00:1::/64", "dev", "fa", "table", "10"),
      ip(
        "-6",
        "route",
        "replace",
        "fd00:2::/64",
        "via",
        "fd00:1::1",
        "dev",
        "fa",
        "onlink",
        "table",
        "10",
      ),
      ip("-6", "route", "replace", "fd0a::/64", "via", "fd0b::1", "dev", "fa", "table", "10"),
      ip("-6", "route", "replace", "fd0c::/64", "via", "fe80::1", "dev", "fa", "table", "10"),
      ip("-4", "-json", "route", "show", "table", "10"),
      ip("-json", "route", "show", "table", "10"),
      ip("-6", "-json", "route", "show", "table", "10"),
      ip("-json", "-details", "route", "show", "table", "10"),
      ip("route", "show", "table", "10"),
      ip("-6", "route", "show", "table", "10"),
      ip("-6", "-json", "route", "show", "table", "main"),
      ip("-4", "-json", "route", "show", "table", "77"),
      ip("-6", "-json", "route", "show", "table", "77"),
      ip("route", "del", "10.9.0.0/16", "table", "10"),
      ip("route", "del", "10.9.0.0/16", "table", "77"),
      ip("-6", "route", "del", "fd00:9::/64", "table", "77"),
      ip("route", "del", "10.1.0.0/16", "dev", "fb", "table", "10"),
      ip("route", "del", "10.1.0.0/16", "metric", "7", "table", "10"),
      ip("-4", "route", "flush", "table", "77"),
      ip("-6", "route", "flush", "table", "77"),
      ip(
        "-6",
        "route",
        "replace",
        "fc00::7/128",
        "encap",
        "seg6local",
        "action",
        "End.DT6",
        "table",
        "10",
        "dev",
        "fa",
      ),
      ip(
        "-6",
        "route",
        "add",
        "fc00::7/128",
        "encap",
        "seg6local",
        "action",
        "End.DT6",
        "table",
        "10",
        "dev",
        "fa",
      ),
      ip(
        "-6",
        "route",
        "replace",
        "fc00::8/128",
        "encap",
        "seg6local",
        "action",
        "End.DT6",
        "table",
        "10",
        "dev",
        "nope",
      ),
      ip("-6", "-json", "-details", "route", "show", "fc00::7/128"),
      ip("-6", "-json", "route", "show", "fc00::7/128"),
      ip("-6", "route", "show", "fc00::7/128"),
      ip("-json", "route", "show", "fc00::7/128"),
      ip("-6", "route", "del", "fc00::7/128"),
      ip("-6", "route", "del", "fc00::7/128"),
      ip("link", "set", "fb", "down"),
      ip("-json", "route", "show", "table", "10"),
      ip("-6", "route", "show", "table", "10"),
      ip(
        "-6",
        "route",
        "replace",
        "fc00::9/128",
        "encap",
        "seg6local",
        "action",
        "End.DT6",
        "table",
        "10",
        "dev",
        "fb",
      ),
      ip("route", "replace", "10.7.0.0/16", "dev", "fb", "table", "10"),
      ip(
        "route",
        "replace",
        "10.7.0.0/16",
        "via",
        "10.0.0.1",
        "dev",
        "fb",
        "onlink",
        "table",
        "10",
      ),
      ip("link", "set", "fa", "down"),
      ip("-json", "route", "show", "table", "10"),
      ip("-6", "-json", "route", "show", "table", "10"),
      ip("link", "set", "fa", "up"),
      ip("-6", "route", "replace", "fc00:1::/64", "dev", "fa", "metric", "5", "table", "11"),
      ip("-6", "route", "replace", "fc00::/16", "dev", "fa", "table", "11"),
      ip("-6", "route", "replace", "fc00:1::/64", "dev", "fa", "table", "11"),
      ip("-6", "route", "replace", "unreachable", "fc00:3::/64", "table", "11"),
      ip("-6", "route", "show", "table", "11"),
      ip("link", "del", "fb"),
      ip("-6", "route", "show", "table", "11"),
      ip("frob"),
      ip("-V"),
    ]);
  },
});

Deno.test({
  name: "fake ip -batch matches the real one in a netns (root only)",
  ignore: !available.ok,
  fn: async () => {
    const batch = (flags: string[], lines: string[]): Step => ({
      ip: [...flags, "-batch", "-"],
      stdin: `${lines.join("\n")}\n`,
    });
    await differential([
      batch([], [
        "link add q1 type veth peer name q2",
        "link add q1 type veth peer name q3",
        "link add q4 type veth peer name q5",
      ]),
      batch(["-json", "-details"], ["link show dev q1", "link show dev nope", "link show dev q2"]),
      batch(["-json", "-details", "-force"], [
        "link show dev q1",
        "link show dev nope",
        "link show dev q2",
      ]),
      batch(["-force"], ["link show dev q1", "link show dev nope", "link show dev q2"]),
      batch(["-force"], ["link set q1 up", "link set q1 master nope", "link set q2 up"]),
      batch([], ["", "# comment", "link del nope"]),
      batch(["-force"], ["link bogus", "link show dev q1"]),
      batch([], ["frob"]),
      batch(["-4", "-json"], ["route show table 78"]),
      batch(["-4", "-force"], ["route flush table 91", "route del 10.0.0.0/8 table 91"]),
      batch(["-6"], ["route flush table 91"]),
      batch([], [
        "link set q2 up",
        "route replace unreachable default metric 4278198272 table 12",
        "route replace unreachable ::/0 metric 4278198272 table 12",
        "route replace 10.1.0.0/16 dev q1 scope link table 12",
      ]),
      batch(["-6", "-json", "-force"], [
        "route show table 12",
        "route show table 79",
        "route show table 12",
      ]),
      batch(["-4", "-json"], ["route show table 12"]),
      batch(["-force"], [
        "route del 10.1.0.0/16 table 12",
        "route del 10.1.0.0/16 table 12",
        "link del q1",
        "link del q2",
        "route del unreachable default metric 4278198272 table 12",
        "route del unreachable ::/0 metric 4278198272 table 12",
        "route del unreachable ::/0 metric 4278198272 table 12",
      ]),
    ]);
  },
});

Deno.test({
  name: `fake sysctl and iptables match the real ones in a netns (root only${
    missingTools.length > 0 ? `; skipped: ${missingTools.join(", ")} not installed` : ""
  })`,
  ignore: !available.ok || missingTools.length > 0,
  fn: async () => {
    const exec = (...argv: string[]): Step => ({ exec: argv });
    const keys = (name: string, v: string): string[] => [
      `net/ipv4/conf/${name}/rp_filter=0`,
      `net/ipv4/conf/${name}/forwarding=${v}`,
      `net/ipv6/conf/${name}/forwarding=${v}`,
      `net/ipv4/conf/${name}/proxy_arp=${v}`,
      `net/ipv6/conf/${name}/proxy_ndp=${v}`,
    ];
    await differential([
      exec("sysctl", "-q", "-w", ...keys("sa", "1")),
      { ip: ["link", "add", "sa", "type", "veth", "peer", "name", "sb"] },
      exec("sysctl", "-q", "-w", ...keys("sa", "1")),
      exec(
        "sysctl",
        "-n",
        "net/ipv4/conf/sa/rp_filter",
        "net.ipv4.conf.sa.forwarding",
        "net/ipv6/conf/sa/proxy_ndp",
      ),
      exec("sysctl", "-q", "-w", "net/ipv4/conf/nope/rp_filter=0", "net/ipv4/conf/sa/proxy_arp=0"),
      exec("sysctl", "-n", "net/ipv4/conf/nope/rp_filter", "net/ipv4/conf/sa/proxy_arp"),
      exec("sysctl", "-w", "net/ipv4/conf/sa/proxy_arp=1"),
      exec("sysctl", "net.ipv4.conf.sa.proxy_arp"),
      exec("sysctl", "-q", "-w", "net/ipv4/conf/sa/rp_filter=x"),
      exec("sysctl", "-q", "-w", "net/ipv4/conf/sa/rp_filter"),
      { ip: ["link", "del", "sa"] },
      exec("sysctl", "-n", "net/ipv4/conf/sa/proxy_arp"),
      ...["iptables", "ip6tables"].flatMap((tool) =>
        ["-C", "-A", "-C", "-A", "-D", "-D", "-D"].map((op) =>
          exec(tool, "-w", "5", op, "FORWARD", "-o", "sa", "-j", "ACCEPT")
        )
          .concat([
            exec(tool, "-w", "5", "-C", "NOPE", "-o", "sa", "-j", "ACCEPT"),
            exec(tool, "-w", "5", "-A", "NOPE", "-o", "sa", "-j", "ACCEPT"),
            exec(tool, "-w", "5", "-D", "NOPE", "-o", "sa", "-j", "ACCEPT"),
            exec(tool, "-S", "FORWARD"),
          ])
      ),
    ]);
  },
});

Deno.test({
  name:
    "fake VRF and End.DT46 behaviour matches a kernel with VRF support (root, VRF kernels only)",
  ignore: !available.vrf,
  fn: async () => {
    const ip = (...args: string[]): Step => ({ ip: args });
    const exec = (...argv: string[]): Step => ({ exec: argv });
    const dt46 = [
      "-6",
      "route",
      "replace",
      "fc00::1/128",
      "encap",
      "seg6local",
      "action",
      "End.DT46",
      "vrftable",
      "4242",
      "dev",
      "h",
    ];
    await differential([
      exec("sysctl", "-q", "-w", "net.vrf.strict_mode=0"),
      ip("link", "add", "v1", "type", "vrf", "table", "4242"),
      ip("link", "add", "v2", "type", "vrf", "table", "4242"),
      exec("sysctl", "-q", "-w", "net.vrf.strict_mode=1"),
      ip("link", "del", "v2"),
      exec("sysctl", "-q", "-w", "net.vrf.strict_mode=1"),
      ip("link", "add", "v3", "type", "vrf", "table", "4242"),
      ip("link", "add", "v1", "type", "vrf", "table", "4243"),
      ip("link", "add", "v4", "type", "vrf", "table", "0"),
      ip("link", "add", "h", "type", "veth", "peer", "name", "g"),
      ip(...dt46),
      ip("link", "set", "h", "mtu", "1400", "master", "v1", "up"),
      ip("link", "set", "g", "mtu", "1400", "up"),
      ip("link", "set", "v1", "up"),
      ip("-json", "-details", "link", "show", "dev", "h"),
      ip("-json", "-details", "link", "show", "dev", "v1"),
      { ip: ["-json", "-details", "-batch", "-"], stdin: "link show type vrf\n" },
      ip(...dt46),
      ip("-6", "-json", "-details", "route", "show", "fc00::1/128"),
      ip(
        "-6",
        "route",
        "replace",
        "fc00::2/128",
        "encap",
        "seg6local",
        "action",
        "End.DT46",
        "vrftable",
        "4244",
        "dev",
        "h",
      ),
      exec("sysctl", "-q", "-w", "net.vrf.strict_mode=0"),
      ip(
        "-6",
        "route",
        "replace",
        "fc00::3/128",
        "encap",
        "seg6local",
        "action",
        "End.DT46",
        "vrftable",
        "4242",
        "dev",
        "h",
      ),
      ip("link", "del", "v1"),
      ip("-json", "-details", "link", "show", "dev", "h"),
    ]);
  },
});

Deno.test("fake host: settled() waits for programs whose caller is gone", async () => {
  await using host = await createFakeHost();
  // A caller that starts a program and dies once it runs (its marker is there), as a killed
  // plugin leaves the siblings of the command that killed it.
  const orphan = new Deno.Command("sh", {
    args: [
      "-c",
      "ip link add o1 type veth peer name o2 >/dev/null 2>&1 & " +
      'while [ ! -e "$FAKE_HOST_STATE.running/$!" ]; do :; done',
    ],
    env: host.env,
  }).spawn();
  assert.equal((await orphan.status).code, 0);
  await host.settled();
  assert.equal((await host.kernel()).link("o1")?.peer, "o2", "the orphan's effect is in");
  assert.deepEqual(
    [...Deno.readDirSync(`${host.stateFile}.running`)],
    [],
    "and its marker gone",
  );
});
