/**
 * The plugin's data-plane building blocks against the real kernel, with the
 * real `ip`, `sysctl`, `iptables`/`ip6tables`, `host-device` and `static`,
 * each inside throwaway network namespaces (the plugin's modules run their
 * commands through a runner that prefixes `ip netns exec <ns>`), plus the
 * process entry (`bin/galactic`) where no Kubernetes API is needed.
 *
 * Runs as root on any kernel. What needs a VRF device is ignored (never
 * passed) on a kernel without one, with "needs VRF" in its name; the lab
 * runner (`bash tests/lab/run.sh`) provides such a kernel. A summary of what
 * ran for real and what was skipped is printed at the end.
 */

import assert from "node:assert/strict";
import type { CniEnv } from "../../lib/cni/env.ts";
import { CniError, ErrorCode } from "../../lib/cni/errors.ts";
import { formatResult } from "../../lib/cni/result.ts";
import { delegateVersion, runHostDevice } from "../../lib/delegate/host_device.ts";
import { parseAttachment, parsePrefix, parseVpc, srv6Endpoint } from "../../lib/ids/mod.ts";
import {
  createVrf,
  enableVrfStrictMode,
  ensureForwardAccept,
  forwardAcceptProblems,
  inspectLinks,
  interfaceSysctls,
  ipBatch,
  readSysctls,
  removeForwardAccept,
  ROUTE_GONE,
  runChecked,
  srv6DeleteArgv,
  srv6ReplaceArgv,
  srv6Route,
  tableRoutes,
  terminationDeleteLines,
  terminationLines,
  UNREACHABLE_METRIC,
  vethCreateLines,
  vethUpLines,
  vrfDeleteLines,
  vrfIpv4TableLines,
  vrfUpLines,
  writeSysctls,
} from "../../lib/iproute2/mod.ts";
import type { Termination } from "../../lib/config/mod.ts";
import { attachmentConfig, expectError, expectSuccess, invoke, records } from "./support/cni.ts";
import {
  CNI_PATH,
  kernelFeatures,
  Ledger,
  Netns,
  rootSkipReason,
  run,
  tempDir,
} from "./support/kernel.ts";

const ledger = new Ledger("datapath_test");
const root = rootSkipReason();
const kernel = await kernelFeatures();
const noVrf = root ?? kernel.vrf;
const hostDevice = `${CNI_PATH}/host-device`;
const hostDeviceMissing = root ??
  ((await run(["test", "-x", hostDevice])).code === 0 ? null : `${hostDevice} is not installed`);

ledger.note(`kernel probe: VRF device: ${kernel.vrf ?? "available"}`);
ledger.note(`kernel probe: seg6local End.DT6 table: ${kernel.endDt6 ?? "available"}`);
ledger.note(`kernel probe: seg6local End.DT46 vrftable: ${kernel.endDt46 ?? "available"}`);
ledger.note(`kernel probe: seg6 encap: ${kernel.seg6Encap ?? "available"}`);

/** Runs `body` with fresh netns, removed afterwards whatever happens. */
async function withNetns(
  prefixes: string[],
  body: (...ns: Netns[]) => Promise<void>,
): Promise<void> {
  const created: Netns[] = [];
  try {
    for (const prefix of prefixes) created.push(await Netns.create(prefix));
    await body(...created);
  } finally {
    for (const ns of created) await ns.delete();
  }
}

/** Asserts that `promise` rejects with a CniError of `code` whose message matches every pattern. */
async function rejectsWith(
  promise: Promise<unknown>,
  code: number,
  patterns: RegExp[],
): Promise<CniError> {
  const error = await promise.then(
    () => assert.fail("expected a CniError"),
    (e: unknown) => e,
  );
  assert.ok(error instanceof CniError, String(error));
  assert.equal(error.code, code, error.message);
  for (const pattern of patterns) assert.match(error.message, pattern);
  return error;
}

const HOST = "GdpTest0000H";
const GUEST = "GdpTest0000G";

Deno.test({
  name: "datapath: veth pair created, enslaved and raised by ipBatch lines; inspectLinks reads it",
  ignore: root !== null,
  fn: () =>
    withNetns(["gdpveth"], async (node) => {
      const runner = node.runner();
      // The master is a VRF where the kernel has one, else a bridge: the same
      // `master … up` line either way.
      const master = "GdpMaster0000V";
      if (noVrf) await node.ip("link", "add", master, "type", "bridge");
      else await node.ip("link", "add", master, "type", "vrf", "table", "1100");
      await node.ip("link", "set", master, "up");
      const veth = { host: HOST, guest: GUEST, vrf: master, mtu: 1400 };

      await ipBatch(runner, vethCreateLines(veth));
      await ipBatch(runner, vethUpLines(veth));
      await ipBatch(runner, vethUpLines(veth)); // idempotent
      const links = await inspectLinks(runner, [HOST, GUEST, "GdpAbsent0000H"]);
      const host = links.get(HOST);
      const guest = links.get(GUEST);
      assert.equal(host?.kind, "veth");
      assert.equal(host?.master, master);
      assert.equal(host?.up, true);
      assert.equal(host?.mtu, 1400);
      assert.equal(guest?.kind, "veth");
      assert.equal(guest?.up, true);
      assert.equal(guest?.mtu, 1400);
      assert.equal(links.has("GdpAbsent0000H"), false);
      const raw = await node.link(HOST);
      assert.equal(raw?.master, master);
      assert.equal(raw?.linkinfo?.info_slave_kind, noVrf ? "bridge" : "vrf");
      ledger.ran(
        `veth: vethCreateLines/vethUpLines via ipBatch in a netns → kind veth, master ${
          noVrf ? "bridge" : "VRF"
        }, UP, mtu 1400 (both ends); re-run idempotent; inspectLinks omits a missing link`,
      );

      // A failing line is reported with the kernel's message and the line.
      await rejectsWith(
        ipBatch(runner, [`link add ${HOST} type veth peer name GdpOther0000G`]),
        ErrorCode.DataPlane,
        [/File exists/, new RegExp(`at "link add ${HOST}`)],
      );
      // Tolerated failures pass (DEL of what is gone).
      await ipBatch(runner, ["link del GdpAbsent0000H"], {
        tolerate: [...ROUTE_GONE, /^Device .* does not exist/],
      });
      ledger.ran(
        "ipBatch: a failing line throws code 100 with 'File exists' and the line; tolerated 'Cannot find device' passes",
      );
    }),
});

Deno.test({
  name: "datapath: per-interface sysctls written and read back (interfaceSysctls)",
  ignore: root !== null,
  fn: () =>
    withNetns(["gdpsys"], async (node) => {
      const runner = node.runner();
      await node.ip("link", "add", HOST, "type", "veth", "peer", "name", GUEST);
      const wanted = interfaceSysctls(HOST);
      const keys = Object.keys(wanted);
      assert.deepEqual(keys.sort(), [
        `net/ipv4/conf/${HOST}/forwarding`,
        `net/ipv4/conf/${HOST}/proxy_arp`,
        `net/ipv4/conf/${HOST}/rp_filter`,
        `net/ipv6/conf/${HOST}/forwarding`,
        `net/ipv6/conf/${HOST}/proxy_ndp`,
      ]);
      // Start from the opposite values so the write is visible.
      await node.setSysctl({
        [`net.ipv4.conf.${HOST}.rp_filter`]: "1",
        [`net.ipv4.conf.${HOST}.forwarding`]: "0",
        [`net.ipv6.conf.${HOST}.forwarding`]: "0",
        [`net.ipv4.conf.${HOST}.proxy_arp`]: "0",
        [`net.ipv6.conf.${HOST}.proxy_ndp`]: "0",
      });
      await writeSysctls(runner, wanted);
      assert.deepEqual(await readSysctls(runner, keys), wanted);
      // Cross-check through /proc, bypassing sysctl(8).
      for (const [key, value] of Object.entries(wanted)) {
        const text = await node.mustExec(["cat", `/proc/sys/${key}`]);
        assert.equal(text.trim(), value, key);
      }
      ledger.ran(
        "sysctl: writeSysctls(interfaceSysctls(H)) sets rp_filter=0, ipv4/ipv6 forwarding=1, proxy_arp=1, proxy_ndp=1; readSysctls and /proc agree",
      );

      await rejectsWith(
        readSysctls(runner, ["net/ipv4/conf/GdpAbsent0000H/rp_filter"]),
        ErrorCode.StateDiverged,
        [/GdpAbsent0000H/],
      );
      ledger.ran("sysctl: readSysctls of a missing interface fails with code 104 naming the key");

      const strict = await enableVrfStrictMode(runner);
      if (kernel.vrf) {
        assert.equal(strict, false, "net.vrf.strict_mode cannot exist without the vrf module");
        assert.equal(await node.sysctl("net.vrf.strict_mode"), undefined);
        ledger.ran(
          "sysctl: enableVrfStrictMode → false when the kernel has no net.vrf.strict_mode",
        );
      } else {
        assert.equal(strict, true);
        assert.equal(await node.sysctl("net.vrf.strict_mode"), "1");
        ledger.ran("sysctl: enableVrfStrictMode → true and net.vrf.strict_mode reads 1");
      }
    }),
});

Deno.test({
  name:
    "datapath: FORWARD accept rules in iptables and ip6tables: ensure, idempotent, missing, remove",
  ignore: root !== null,
  fn: () =>
    withNetns(["gdpfw"], async (node) => {
      const runner = node.runner();
      const rule = `-A FORWARD -o ${HOST} -j ACCEPT`;
      const missing = (tool: string): string => `${tool} FORWARD -o ${HOST} -j ACCEPT is missing`;
      assert.deepEqual(await forwardAcceptProblems(runner, HOST), [
        missing("iptables"),
        missing("ip6tables"),
      ]);
      assert.deepEqual((await ensureForwardAccept(runner, HOST)).sort(), [
        "ip6tables",
        "iptables",
      ]);
      assert.deepEqual(await node.forwardRules("iptables"), [rule]);
      assert.deepEqual(await node.forwardRules("ip6tables"), [rule]);
      assert.deepEqual(await ensureForwardAccept(runner, HOST), []);
      assert.deepEqual(await node.forwardRules("iptables"), [rule], "added twice");
      assert.deepEqual(await forwardAcceptProblems(runner, HOST), []);
      ledger.ran(
        "firewall: ensureForwardAccept adds '-A FORWARD -o H -j ACCEPT' to iptables and ip6tables once; forwardAcceptProblems sees none",
      );

      await node.mustExec(["ip6tables", "-w", "5", "-D", "FORWARD", "-o", HOST, "-j", "ACCEPT"]);
      assert.deepEqual(await forwardAcceptProblems(runner, HOST), [missing("ip6tables")]);
      assert.deepEqual(await ensureForwardAccept(runner, HOST), ["ip6tables"]);
      ledger.ran("firewall: a rule deleted behind its back is reported missing and re-added");

      await removeForwardAccept(runner, HOST);
      assert.deepEqual(await node.forwardRules("iptables"), []);
      assert.deepEqual(await node.forwardRules("ip6tables"), []);
      await removeForwardAccept(runner, HOST); // absent is fine
      await node.mustExec(["ip6tables", "-w", "5", "-A", "FORWARD", "-o", HOST, "-j", "ACCEPT"]);
      await removeForwardAccept(runner, HOST); // one family present, the other not
      assert.deepEqual(await node.forwardRules("ip6tables"), []);
      ledger.ran(
        "firewall: removeForwardAccept deletes the rule in both families; absent (in one or both) is fine",
      );
    }),
});

/**
 * Whether a TCP connection from `client` to `address` port 7777, served in
 * `server`, completes. A REJECT answers at once (connection refused), so no
 * wait decides the outcome.
 */
async function tcpConnects(
  client: Netns,
  server: Netns,
  address: string,
): Promise<boolean> {
  const deno = Deno.execPath();
  const serve = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      server.name,
      deno,
      "eval",
      "--no-config",
      `
      const listener = Deno.listen({ hostname: ${JSON.stringify(address)}, port: 7777 });
      console.log("listening");
      const conn = await listener.accept();
      await conn.write(new TextEncoder().encode("pong"));
      conn.close();
    `,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  try {
    const reader = serve.stdout.pipeThrough(new TextDecoderStream()).getReader();
    for (let seen = ""; !seen.includes("listening");) {
      const { value, done } = await reader.read();
      if (done) throw new Error("the TCP server exited before listening");
      seen += value;
    }
    reader.releaseLock();
    const probe = await client.exec([
      deno,
      "eval",
      "--no-config",
      `
      try {
        const conn = await Deno.connect({ hostname: ${JSON.stringify(address)}, port: 7777 });
        const buf = new Uint8Array(4);
        await conn.read(buf);
        console.log(new TextDecoder().decode(buf));
      } catch (error) {
        console.log(error.name);
      }
    `,
    ]);
    return probe.stdout.trim() === "pong";
  } finally {
    try {
      serve.kill("SIGKILL");
    } catch { /* exited after serving */ }
    await serve.status;
    await serve.stdout.cancel().catch(() => {});
  }
}

Deno.test({
  name:
    "datapath: a FORWARD chain ending in REJECT: the accept rule goes ahead of it and traffic to the pod passes",
  ignore: root !== null,
  fn: () =>
    withNetns(["gfwnode", "gfwpeer", "gfwpod"], async (node, peer, pod) => {
      // peer (10.77.1.2) -- node (forwarding, host firewall) -- HOST -- pod (10.77.2.2)
      await node.ip(
        "link",
        "add",
        "up0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        peer.name,
      );
      await node.ip("link", "add", HOST, "type", "veth", "peer", "name", "eth0", "netns", pod.name);
      for (
        const [ns, dev, address, gateway] of [
          [node, "up0", "10.77.1.1/24", undefined],
          [node, HOST, "10.77.2.1/24", undefined],
          [peer, "eth0", "10.77.1.2/24", "10.77.1.1"],
          [pod, "eth0", "10.77.2.2/24", "10.77.2.1"],
        ] as const
      ) {
        await ns.ip("addr", "add", address, "dev", dev);
        await ns.ip("link", "set", dev, "up");
        if (gateway) await ns.ip("route", "add", "default", "via", gateway);
      }
      await node.setSysctl({ "net.ipv4.ip_forward": "1" });
      // A common host firewall: replies pass, anything else forwarded is rejected.
      await node.mustExec([
        "iptables",
        "-w",
        "5",
        "-A",
        "FORWARD",
        "-m",
        "conntrack",
        "--ctstate",
        "RELATED,ESTABLISHED",
        "-j",
        "ACCEPT",
      ]);
      await node.mustExec(["iptables", "-w", "5", "-A", "FORWARD", "-j", "REJECT"]);
      const runner = node.runner();

      // The old placement, appended behind the REJECT: never reached.
      await node.mustExec(["iptables", "-w", "5", "-A", "FORWARD", "-o", HOST, "-j", "ACCEPT"]);
      assert.equal(
        await tcpConnects(peer, pod, "10.77.2.2"),
        false,
        "appended rule let traffic in",
      );
      assert.deepEqual(await forwardAcceptProblems(runner, HOST), [
        `iptables FORWARD -o ${HOST} -j ACCEPT sits behind "-A FORWARD -j REJECT --reject-with icmp-port-unreachable"`,
        `ip6tables FORWARD -o ${HOST} -j ACCEPT is missing`,
      ]);
      ledger.ran(
        "firewall: an accept rule appended behind REJECT passes no traffic; CHECK names the REJECT",
      );

      // ADD's placement: moved to the head of the chain.
      await ensureForwardAccept(runner, HOST);
      assert.equal((await node.forwardRules("iptables"))[0], `-A FORWARD -o ${HOST} -j ACCEPT`);
      assert.equal((await node.forwardRules("iptables")).filter((r) => r.includes(HOST)).length, 1);
      assert.deepEqual(await forwardAcceptProblems(runner, HOST), []);
      assert.equal(await tcpConnects(peer, pod, "10.77.2.2"), true, "traffic to the pod rejected");
      ledger.ran(
        "firewall: ensureForwardAccept puts the rule ahead of the REJECT; TCP to the pod connects",
      );
    }),
});

Deno.test({
  name: "datapath: termination routes in a table (dev scope link, via onlink), tableRoutes, flush",
  ignore: root !== null,
  fn: () =>
    withNetns(["gdprt"], async (node) => {
      const runner = node.runner();
      const table = 1234;
      await node.ip("link", "add", HOST, "type", "veth", "peer", "name", GUEST);
      await node.ip("link", "set", HOST, "up");
      await node.ip("link", "set", GUEST, "up");

      // A table nothing was ever added to does not exist in the kernel yet.
      assert.deepEqual(await tableRoutes(runner, table), []);
      ledger.ran("routes: a never-used table reads as empty (tableRoutes [])");

      const terminations: Termination[] = [
        { network: "10.99.0.0/16", family: 4, via: "10.1.0.2" },
        { network: "fd99::/64", family: 6, via: "fd01::2" },
        { network: "10.1.0.2/32", family: 4 },
        { network: "fd01::2/128", family: 6 },
        { network: "192.0.2.0/24", family: 4 },
      ];
      const lines = terminationLines(terminations, { table, host: HOST });
      await ipBatch(runner, lines);
      await ipBatch(runner, lines); // replace: idempotent
      const routes = await tableRoutes(runner, table);
      const find = (dst: string) => routes.filter((r) => r.dst === dst);
      assert.equal(find("10.99.0.0/16").length, 1);
      assert.equal(find("10.99.0.0/16")[0]?.gateway, "10.1.0.2");
      assert.equal(find("10.99.0.0/16")[0]?.dev, HOST);
      assert.equal(find("fd99::/64")[0]?.gateway, "fd01::2");
      assert.equal(find("fd99::/64")[0]?.dev, HOST);
      // iproute2 prints host routes without their length.
      assert.equal(find("10.1.0.2")[0]?.dev, HOST);
      assert.equal(find("fd01::2")[0]?.dev, HOST);
      assert.equal(find("192.0.2.0/24")[0]?.dev, HOST);
      const raw4 = await node.tableRoutes(4, table);
      assert.ok(raw4.find((r) => r.dst === "10.99.0.0/16")?.flags?.includes("onlink"));
      assert.equal(raw4.find((r) => r.dst === "192.0.2.0/24")?.scope, "link");
      assert.equal(
        (await node.tableRoutes(4, "main")).some((r) => r.dst === "10.99.0.0/16"),
        false,
        "terminations leaked into the main table",
      );
      ledger.ran(
        "routes: terminationLines install 'via … dev H onlink' and 'dev H scope link' routes (v4+v6, /32 and /128 too) in table T only; replace is idempotent; tableRoutes parses dst/gateway/dev",
      );

      await ipBatch(runner, terminationDeleteLines(terminations, table), { tolerate: ROUTE_GONE });
      assert.deepEqual(await tableRoutes(runner, table), []);
      await ipBatch(runner, terminationDeleteLines(terminations, table), { tolerate: ROUTE_GONE });
      ledger.ran("routes: terminationDeleteLines remove them; deleting again is tolerated");

      // What a new VRF's two batches do to leftovers: each flushes its family.
      await ipBatch(runner, lines);
      await ipBatch(runner, ["route flush table " + table], { flags: ["-6"] });
      assert.deepEqual((await tableRoutes(runner, table)).map((r) => r.dst).sort(), [
        "10.1.0.2",
        "10.99.0.0/16",
        "192.0.2.0/24",
      ]);
      await ipBatch(runner, vrfIpv4TableLines({ table }));
      assert.deepEqual(
        (await node.tableRoutes(4, table)).map((r) => `${r.type} ${r.dst} ${r.metric}`),
        [`unreachable default ${UNREACHABLE_METRIC}`],
      );
      ledger.ran(
        "routes: 'ip -6 route flush table T' in a batch empties only IPv6; vrfIpv4TableLines empty IPv4 and leave only the unreachable default",
      );
    }),
});

Deno.test({
  name:
    "datapath: host-device + static: ADD moves the guest end into the pod as CNI_IFNAME with its addresses, CHECK, DEL moves it back",
  ignore: hostDeviceMissing !== null,
  fn: () =>
    withNetns(["gdphdn", "gdphdp"], async (node, pod) => {
      const runner = node.runner();
      await node.ip("link", "add", HOST, "type", "veth", "peer", "name", GUEST);
      await node.ip("link", "set", HOST, "up");
      await node.ip("link", "set", GUEST, "up");
      const config = {
        cniVersion: delegateVersion("1.1.0"),
        name: "datapath",
        type: "host-device",
        device: GUEST,
        ipam: {
          type: "static",
          addresses: [{ address: "10.1.0.2/24" }, { address: "fd01::2/64" }],
          routes: [{ dst: "10.99.0.0/16", gw: "10.1.0.1" }],
        },
      };
      const env = (command: CniEnv["command"]): CniEnv => ({
        command,
        containerId: "datapath-1",
        netns: pod.path,
        ifname: "net1",
        args: new Map([["IgnoreUnknown", "1"]]),
        path: [CNI_PATH],
      });

      const result = await runHostDevice(runner, { command: "ADD", env: env("ADD"), config });
      assert.ok(result);
      assert.deepEqual(result.ips?.map((ip) => ip.address).sort(), ["10.1.0.2/24", "fd01::2/64"]);
      const podInterface = result.interfaces?.findIndex((i) => i.name === "net1");
      assert.ok(podInterface !== undefined && podInterface >= 0, JSON.stringify(result));
      assert.equal(result.interfaces?.[podInterface]?.sandbox, pod.path);
      assert.ok(result.ips?.every((ip) => ip.interface === podInterface), JSON.stringify(result));
      assert.ok(result.routes?.some((r) => r.dst === "10.99.0.0/16" && r.gw === "10.1.0.1"));
      ledger.ran(
        `host-device ADD (cniVersion ${config.cniVersion}) result parsed: ips 10.1.0.2/24 + fd01::2/64 on interface net1 with sandbox = pod netns, route 10.99.0.0/16 via 10.1.0.1`,
      );

      assert.equal(await node.link(GUEST), undefined, "guest end still on the node");
      const inPod = await pod.link("net1");
      assert.equal(inPod?.linkinfo?.info_kind, "veth");
      assert.ok(inPod?.flags?.includes("UP"));
      const addresses = await pod.ipJson<{ addr_info: { local: string; prefixlen: number }[] }[]>(
        "addr",
        "show",
        "dev",
        "net1",
      );
      const local = addresses[0]!.addr_info.map((a) => `${a.local}/${a.prefixlen}`);
      assert.ok(local.includes("10.1.0.2/24"), local.join(" "));
      assert.ok(local.includes("fd01::2/64"), local.join(" "));
      const podRoutes = await pod.tableRoutes(4, "main");
      assert.ok(podRoutes.some((r) => r.dst === "10.99.0.0/16" && r.gateway === "10.1.0.1"));
      assert.ok((await node.link(HOST))?.link_netnsid !== undefined, "host end lost its peer");
      ledger.ran(
        "host-device ADD: guest end gone from the node, present in the pod as net1 (veth, UP) with 10.1.0.2/24, fd01::2/64 and the static route; host end's peer is in the pod",
      );

      const prevResult = formatResult(result, config.cniVersion);
      await runHostDevice(runner, {
        command: "CHECK",
        env: env("CHECK"),
        config: { ...config, prevResult },
      });
      await pod.ip("addr", "del", "10.1.0.2/24", "dev", "net1");
      const drift = await runHostDevice(runner, {
        command: "CHECK",
        env: env("CHECK"),
        config: { ...config, prevResult },
      }).then(() => undefined, (e: Error) => e);
      assert.ok(drift instanceof CniError, "CHECK missed a deleted address");
      assert.match(drift.message, /host-device CHECK failed/);
      ledger.ran(
        `host-device CHECK passes on the ADD state and fails once an address is deleted (${drift.message})`,
      );

      await runHostDevice(runner, { command: "DEL", env: env("DEL"), config });
      assert.equal(await pod.link("net1"), undefined);
      const back = await node.link(GUEST);
      assert.equal(back?.linkinfo?.info_kind, "veth", "guest end not back under its own name");
      ledger.ran("host-device DEL: net1 leaves the pod and is back on the node named G…G");

      // The real host-device refuses a second DEL; the plugin must treat that as done.
      const again = await runHostDevice(runner, { command: "DEL", env: env("DEL"), config }).then(
        () => undefined,
        (e: Error) => e,
      );
      if (again) {
        assert.match(again.message, /Link not found|failed to find/);
        ledger.ran(`host-device DEL of a gone device fails with "${again.message}"`);
      } else {
        ledger.ran("host-device DEL of a gone device succeeds (this host-device version)");
      }
    }),
});

Deno.test({
  name: "datapath: SRv6 without VRF: End.DT6 route read by srv6Route, seg6 encap, ip sr tunsrc",
  ignore: root !== null || kernel.endDt6 !== null,
  fn: () =>
    withNetns(["gdpsr"], async (node) => {
      const runner = node.runner();
      await node.ip("link", "add", HOST, "type", "veth", "peer", "name", GUEST);
      await node.ip("link", "set", HOST, "up");
      const endpoint = srv6Endpoint(parsePrefix("fc00:0:1::/48")!, {
        vpc: parseVpc("jU"),
        attachment: parseAttachment("G"),
      });
      await node.ip(
        ...["-6", "route", "replace", `${endpoint}/128`, "encap", "seg6local", "action", "End.DT6"],
        ...["table", "1234", "dev", HOST],
      );
      const dt6 = await srv6Route(runner, endpoint);
      assert.equal(dt6?.dst, endpoint);
      assert.equal(dt6?.encap, "seg6local");
      assert.equal(dt6?.action, "End.DT6");
      assert.equal(Number(dt6?.table), 1234);
      assert.equal(dt6?.dev, HOST);
      await runChecked(runner, srv6DeleteArgv(endpoint));
      assert.equal(await srv6Route(runner, endpoint), undefined);
      const gone = await runner.run(srv6DeleteArgv(endpoint));
      assert.ok(ROUTE_GONE.some((p) => p.test(gone.stderr)), gone.stderr);
      ledger.ran(
        `srv6: End.DT6 route at ${endpoint}/128 read back by srv6Route (encap seg6local, action, table, dev); srv6DeleteArgv removes it; a second delete fails with a ROUTE_GONE message`,
      );

      await node.ip(
        ...["route", "replace", "10.42.0.0/24", "encap", "seg6", "mode", "encap"],
        ...["segs", endpoint, "dev", HOST],
      );
      const [encap] = await node.tableRoutes(4, "main").then((r) =>
        r.filter((x) => x.dst === "10.42.0.0/24")
      );
      assert.equal(encap?.encap, "seg6");
      assert.equal(encap?.mode, "encap");
      assert.deepEqual(encap?.segs, [endpoint]);
      await node.ip("sr", "tunsrc", "set", "fd00::1");
      assert.match(await node.ip("sr", "tunsrc", "show"), /fd00::1/);
      ledger.ran("srv6: 'encap seg6 mode encap segs SID' route and 'ip sr tunsrc' work here");

      if (kernel.vrf) {
        const refused = await runner.run(srv6ReplaceArgv({ endpoint, table: 1234, dev: HOST }));
        assert.notEqual(refused.code, 0, "End.DT46 vrftable accepted without a VRF");
        ledger.ran(
          `srv6: srv6ReplaceArgv (End.DT46 vrftable) is refused without a VRF: ${refused.stderr.trim()}`,
        );
      }
    }),
});

Deno.test({
  name: "datapath: VRF, its table and the End.DT46 ingress (needs VRF)",
  ignore: noVrf !== null,
  fn: () =>
    withNetns(["gdpvrf"], async (node) => {
      const runner = node.runner();
      assert.equal(await enableVrfStrictMode(runner), true);
      const vrf = { name: "GdpVrfA0000V", table: 1500 };
      // Leftovers of an earlier owner of the table, in both families.
      await node.ip("route", "add", "unreachable", "192.0.2.0/24", "table", String(vrf.table));
      await node.ip("-6", "route", "add", "unreachable", "2001:db8::/64", "table", "1500");
      assert.equal(await createVrf(runner, vrf), "created");
      assert.deepEqual(
        (await node.tableRoutes(6, vrf.table)).map((r) => r.dst),
        ["default"],
        "createVrf flushes the table's IPv6 routes and installs the IPv6 unreachable default",
      );
      await ipBatch(runner, vrfIpv4TableLines(vrf));
      const link = await node.link(vrf.name);
      assert.equal(link?.linkinfo?.info_kind, "vrf");
      assert.equal(link?.linkinfo?.info_data?.table, vrf.table);
      assert.ok(link?.flags?.includes("UP"));
      for (const family of [4, 6] as const) {
        const unreachable = (await node.tableRoutes(family, vrf.table)).filter((r) =>
          r.type === "unreachable" && r.dst === "default"
        );
        assert.equal(unreachable.length, 1, `IPv${family} unreachable default`);
        assert.equal(unreachable[0]?.metric, UNREACHABLE_METRIC);
      }
      ledger.ran(
        "vrf: createVrf (-6 batch) + vrfIpv4TableLines → 'created': VRF up with its table, leftovers flushed, unreachable default v4+v6 at metric 4278198272",
      );

      assert.equal(
        await createVrf(runner, { name: "GdpVrfB0000V", table: vrf.table }),
        "table-in-use",
      );
      assert.equal(await node.link("GdpVrfB0000V"), undefined);
      assert.equal(
        (await node.tableRoutes(4, vrf.table)).length,
        1,
        "a refused VRF must not flush the owner's table",
      );
      await rejectsWith(createVrf(runner, { name: vrf.name, table: 1501 }), ErrorCode.DataPlane, [
        /File exists/,
      ]);
      assert.equal((await node.link(vrf.name))?.linkinfo?.info_data?.table, vrf.table);
      ledger.ran(
        "vrf: with strict_mode=1 a second VRF on the table is 'table-in-use' and leaves the owner's routes; a name clash throws 'File exists' and leaves the existing VRF",
      );

      await ipBatch(runner, vrfUpLines(vrf)); // idempotent
      const veth = { host: HOST, guest: GUEST, vrf: vrf.name, mtu: 1450 };
      await ipBatch(runner, [...vethCreateLines(veth), ...vethUpLines(veth)]);
      assert.equal((await inspectLinks(runner, [HOST])).get(HOST)?.master, vrf.name);
      const endpoint = srv6Endpoint(parsePrefix("fc00:0:1::/48")!, {
        vpc: parseVpc("jU"),
        attachment: parseAttachment("G"),
      });
      await runChecked(runner, srv6ReplaceArgv({ endpoint, table: vrf.table, dev: HOST }));
      await runChecked(runner, srv6ReplaceArgv({ endpoint, table: vrf.table, dev: HOST }));
      const ingress = await srv6Route(runner, endpoint);
      assert.equal(ingress?.action, "End.DT46");
      assert.equal(Number(ingress?.vrftable), vrf.table);
      assert.equal(ingress?.dev, HOST);
      ledger.ran(
        "srv6: srv6ReplaceArgv installs End.DT46 vrftable T dev H (twice: replace), srv6Route reads action and vrftable",
      );

      await runChecked(runner, srv6DeleteArgv(endpoint));
      await ipBatch(runner, [`link del ${HOST}`, ...vrfDeleteLines(vrf)], { tolerate: ROUTE_GONE });
      assert.equal(await node.link(vrf.name), undefined);
      assert.deepEqual(await node.tableRoutes(4, vrf.table), []);
      assert.deepEqual(await node.tableRoutes(6, vrf.table), []);
      await ipBatch(runner, vrfDeleteLines(vrf), {
        tolerate: [...ROUTE_GONE, /^Device .* does not exist/],
      });
      ledger.ran(
        "vrf: vrfDeleteLines remove the VRF and its unreachable routes (table empty, both families); again tolerated",
      );
    }),
});

Deno.test({
  name: "datapath: bin/galactic DEL of an attachment never added succeeds, twice, printing nothing",
  ignore: hostDeviceMissing !== null,
  fn: () =>
    withNetns(["gdpdeln", "gdpdelp"], async (node, pod) => {
      const stateDir = await tempDir("gdpdel");
      try {
        const config = attachmentConfig({
          vpc: "jU",
          attachment: "G",
          locator: "fc00:0:1::/48",
          node: "node-a",
          stateDir: `${stateDir}/state`,
          addresses: ["10.1.0.2/24"],
        });
        for (const round of [1, 2]) {
          const outcome = await invoke({
            command: "DEL",
            node,
            pod,
            containerId: "never-added",
            config,
          });
          expectSuccess(outcome, `DEL #${round}`);
          assert.equal(outcome.stdout, "", "DEL printed something");
        }
        assert.deepEqual(await node.linkNames(), ["lo"]);
        ledger.ran("process: DEL of an attachment never added exits 0 with empty stdout, twice");
      } finally {
        await Deno.remove(stateDir, { recursive: true });
      }
    }),
});

Deno.test({
  name:
    "datapath: bin/galactic ADD where the kernel has no VRF fails with the kernel's refusal and leaves nothing (needs a kernel WITHOUT VRF)",
  ignore: root !== null || kernel.vrf === null || hostDeviceMissing !== null,
  fn: () =>
    withNetns(["gdpaddn", "gdpaddp"], async (node, pod) => {
      const stateDir = await tempDir("gdpadd");
      try {
        const config = attachmentConfig({
          vpc: "jU",
          attachment: "G",
          locator: "fc00:0:1::/48",
          node: "node-a",
          stateDir: `${stateDir}/state`,
          addresses: ["10.1.0.2/24"],
          terminations: [{ network: "10.99.0.0/16", via: "10.1.0.2" }],
        });
        const error = expectError(
          await invoke({ command: "ADD", node, pod, containerId: "no-vrf", config }),
          "ADD without VRF",
        );
        assert.equal(error.code, ErrorCode.DataPlane, error.msg);
        assert.match(error.msg, /G0000000jU00GV/);
        assert.match(error.msg, /type vrf/);
        assert.deepEqual(await node.linkNames(), ["lo"]);
        assert.deepEqual(await pod.linkNames(), ["lo"]);
        assert.deepEqual(await records(`${stateDir}/state`), {});
        assert.deepEqual(await node.forwardRules("iptables"), []);
        assert.deepEqual(await node.forwardRules("ip6tables"), []);
        ledger.ran(
          `process: ADD on a kernel without VRF → code 100 naming the VRF (${error.msg}); node and pod have only lo, no record, no FORWARD rules`,
        );
      } finally {
        await Deno.remove(stateDir, { recursive: true });
      }
    }),
});

if (root) ledger.skipped("every test", root);
if (hostDeviceMissing) ledger.skipped("host-device tests", hostDeviceMissing);
if (noVrf) ledger.skipped("VRF, table-in-use, End.DT46 ingress", `needs VRF: ${noVrf}`);
if (!noVrf) {
  ledger.skipped("ADD failing cleanly without VRF", "this kernel has VRF");
}
