/**
 * The main job: one pod attachment's whole life — ADD → CHECK → DEL — run the
 * way a container runtime runs the plugin (env + config on stdin, JSON on
 * stdout), against the real kernel (`ip`, sysctl, iptables), the real
 * `host-device` + `static` plugins, and the embedded fake Kubernetes API
 * server, printing what it did at every step.
 *
 * Runs on this kernel as root when it has VRF support; otherwise (no VRF, or
 * not root: network namespaces need root) it re-runs itself inside the lab
 * VM (`tests/lab/run.sh`), where it is the guest's root.
 *
 * @module
 */

import { FAKE_TOKEN } from "../tests/support/fake_api_server.ts";
import { demoSeed } from "./demo_seed.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const DENO = Deno.execPath();
const NODE = "demo-node";
const CNI_PATH = "/usr/lib/cni";

function say(text: string): void {
  console.log(text);
}

async function sh(
  argv: string[],
  options: { stdin?: string; env?: Record<string, string>; check?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(options.env && { env: options.env }),
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const out = await child.output();
  const result = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (options.check !== false && result.code !== 0) {
    throw new Error(`${argv.join(" ")} failed (exit ${result.code}): ${result.stderr.trim()}`);
  }
  return result;
}

async function kernelHasVrf(): Promise<boolean> {
  const ns = `gdemo-probe-${Deno.pid}`;
  await sh(["ip", "netns", "add", ns]);
  try {
    return (await sh(["ip", "-n", ns, "link", "add", "probe", "type", "vrf", "table", "10"], {
      check: false,
    })).code === 0;
  } finally {
    await sh(["ip", "netns", "del", ns], { check: false });
  }
}

function indent(text: string): string {
  return text.trimEnd().split("\n").map((line) => `    ${line}`).join("\n");
}

async function show(title: string, argv: string[]): Promise<void> {
  const out = await sh(argv, { check: false });
  say(`  $ ${argv.join(" ")}   # ${title}`);
  say(indent(out.stdout || out.stderr || "(nothing)"));
}

/** Starts the fake API server inside the node's netns (where the plugin runs). */
async function startApiServer(
  netns: string,
  dir: string,
): Promise<{ url: string; child: Deno.ChildProcess }> {
  const seed = demoSeed(NODE);
  await Deno.writeTextFile(`${dir}/seed.json`, JSON.stringify(seed));
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      netns,
      DENO,
      "run",
      "--allow-all",
      "--quiet",
      "--cached-only",
      `${ROOT}/tests/support/fake_api_server.ts`,
      "--port",
      "0",
      "--kubeconfig",
      `${dir}/kubeconfig`,
      "--seed",
      `${dir}/seed.json`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let url = "";
  while (!url.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("fake API server exited before listening");
    url += value;
  }
  reader.releaseLock();
  return { url: url.trim(), child };
}

async function cni(
  command: string,
  context: { node: string; pod: string; config: Record<string, unknown>; nodeConfig: string },
): Promise<Record<string, unknown> | undefined> {
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
    GALACTIC_DENO: DENO,
    CNI_COMMAND: command,
    CNI_CONTAINERID: "demo-container-1",
    CNI_NETNS: `/run/netns/${context.pod}`,
    CNI_IFNAME: "net1",
    CNI_PATH,
    CNI_ARGS: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=demo",
    GALACTIC_NODE_CONFIG: context.nodeConfig,
  };
  say(`\n━━ ${command} ━━`);
  say(
    `  $ CNI_COMMAND=${command} CNI_CONTAINERID=${env.CNI_CONTAINERID} CNI_NETNS=${env.CNI_NETNS} CNI_IFNAME=net1 CNI_PATH=${CNI_PATH} GALACTIC_NODE_CONFIG=node.json \\`,
  );
  say(`      ip netns exec ${context.node} bin/galactic < config.json`);
  const started = performance.now();
  const out = await sh(["ip", "netns", "exec", context.node, `${ROOT}/bin/galactic`], {
    stdin: JSON.stringify(context.config),
    env,
    check: false,
  });
  const ms = Math.round(performance.now() - started);
  say(`  exit ${out.code} after ${ms} ms; stdout:`);
  say(
    indent(
      out.stdout.trim() === ""
        ? "(empty: success)"
        : JSON.stringify(JSON.parse(out.stdout), null, 2),
    ),
  );
  if (out.code !== 0) {
    say(indent(out.stderr));
    throw new Error(`${command} failed`);
  }
  return out.stdout.trim() === "" ? undefined : JSON.parse(out.stdout);
}

async function fetchObject(node: string, url: string, name: string): Promise<string> {
  const token = FAKE_TOKEN;
  const script =
    `const r = await fetch(${
      JSON.stringify(`${url}/apis/bgp.miloapis.com/v1alpha1/bgpvrfinstances/${name}`)
    }, ` +
    `{ headers: { authorization: ${
      JSON.stringify(`Bearer ${token}`)
    } } }); console.log(r.status, await r.text());`;
  const out = await sh(["ip", "netns", "exec", node, DENO, "eval", "--quiet", script], {
    check: false,
  });
  const [status, ...body] = out.stdout.trim().split(" ");
  if (status === "404") return "absent (HTTP 404)";
  if (status !== "200") return `HTTP ${status}: ${body.join(" ")}`;
  const object = JSON.parse(body.join(" "));
  return JSON.stringify(
    { name: object.metadata.name, labels: object.metadata.labels, spec: object.spec },
    null,
    2,
  );
}

async function demo(): Promise<void> {
  const node = `gdemo-node-${Deno.pid}`;
  const pod = `gdemo-pod-${Deno.pid}`;
  const dir = await Deno.makeTempDir({ prefix: "galactic-demo-" });
  let api: { url: string; child: Deno.ChildProcess } | undefined;
  try {
    await sh(["ip", "netns", "add", node]);
    await sh(["ip", "netns", "add", pod]);
    await sh(["ip", "-n", node, "link", "set", "lo", "up"]);
    api = await startApiServer(node, dir);
    say(
      `node netns ${node}, pod netns ${pod}; fake API server ${api.url} (seeded: BGPProvider of ${NODE}, BGPInstance "workers" ASN 65000)`,
    );
    const config = {
      cniVersion: "1.0.0",
      name: "tenant-red",
      type: "galactic",
      vpc: "jU",
      vpcattachment: "G",
      srv6_locator: "fc00:0:1::/48",
      mtu: 1400,
      terminations: [{ network: "10.20.0.0/16", via: "10.1.0.2" }, { network: "2001:db8:20::/48" }],
      ipam: {
        type: "static",
        addresses: [{ address: "10.1.0.2/24" }, { address: "2001:db8:1::2/64" }],
        routes: [{ dst: "0.0.0.0/0", gw: "10.1.0.1" }],
      },
      // The lab VM emulates its CPU (TCG, 10-100x slower, often beside other
      // VMs): one iptables call there can outlast the 10 s default deadline.
      ...(Deno.args.includes("--inside-lab") && { command_timeout_seconds: 120 }),
    };
    // The node's own settings: galactic install writes this file on a real node.
    const nodeSettings = {
      kubeconfig: `${dir}/kubeconfig`,
      node_name: NODE,
      state_dir: `${dir}/state`,
      agent_socket: `${dir}/agent.sock`,
    };
    const nodeConfig = `${dir}/node.json`;
    await Deno.writeTextFile(nodeConfig, JSON.stringify(nodeSettings, null, 2), { mode: 0o644 });
    say("\nnode.json (the node's settings, which a NetworkAttachmentDefinition cannot override):");
    say(indent(JSON.stringify(nodeSettings, null, 2)));
    say("\nconfig.json (what Multus passes from the NetworkAttachmentDefinition):");
    say(indent(JSON.stringify(config, null, 2)));
    const explain = await sh([
      `${ROOT}/bin/galactic`,
      "explain",
      "--vpc",
      "jU",
      "--attachment",
      "G",
      "--locator",
      "fc00:0:1::/48",
      "--asn",
      "65000",
      "--node",
      NODE,
    ], { env: { PATH: Deno.env.get("PATH") ?? "", GALACTIC_DENO: DENO } });
    say("\nWhat the plugin derives (galactic explain):");
    say(indent(explain.stdout));

    const result = await cni("ADD", { node, pod, config, nodeConfig });
    const table =
      JSON.parse(await Deno.readTextFile(`${dir}/state/attachments.json`)).attachments["b04.10"]
        .table;
    say("\nWhat ADD left on the host:");
    await show("the VRF and its table", ["ip", "-n", node, "-d", "link", "show", "G0000000jU00GV"]);
    await show("host veth end, enslaved", [
      "ip",
      "-n",
      node,
      "link",
      "show",
      "master",
      "G0000000jU00GV",
    ]);
    await show("VRF table: terminations + unreachable defaults", [
      "ip",
      "-n",
      node,
      "route",
      "show",
      "table",
      String(table),
    ]);
    await show("IPv6 part of the VRF table", [
      "ip",
      "-n",
      node,
      "-6",
      "route",
      "show",
      "table",
      String(table),
    ]);
    await show("SRv6 ingress SID", [
      "ip",
      "-n",
      node,
      "-6",
      "route",
      "show",
      "fc00:0:1::b04:10/128",
    ]);
    await show("FORWARD rule", ["ip", "netns", "exec", node, "iptables", "-S", "FORWARD"]);
    await show("sysctls of the host veth", [
      "ip",
      "netns",
      "exec",
      node,
      "sysctl",
      "net.vrf.strict_mode",
      "net.ipv4.conf.G0000000jU00GH.rp_filter",
      "net.ipv4.conf.G0000000jU00GH.proxy_arp",
      "net.ipv6.conf.G0000000jU00GH.proxy_ndp",
    ]);
    await show("the pod's interface (moved and renamed by host-device)", [
      "ip",
      "-n",
      pod,
      "addr",
      "show",
      "net1",
    ]);
    say(`  BGPVRFInstance galactic-vpc-b04-${NODE} in the API server:`);
    say(indent(await fetchObject(node, api.url, `galactic-vpc-b04-${NODE}`)));

    await cni("CHECK", { node, pod, config: { ...config, prevResult: result }, nodeConfig });
    say("  CHECK found no difference.");

    await cni("DEL", { node, pod, config: { ...config, prevResult: result }, nodeConfig });
    say("\nWhat DEL left:");
    await show("galactic links", ["ip", "-n", node, "link", "show"]);
    await show(`table ${table}`, ["ip", "-n", node, "route", "show", "table", String(table)]);
    await show("SRv6 routes", ["ip", "-n", node, "-6", "route", "show", "fc00:0:1::b04:10/128"]);
    say(
      `  BGPVRFInstance: ${await fetchObject(node, api.url, `galactic-vpc-b04-${NODE}`)}`,
    );
    await cni("DEL", { node, pod, config, nodeConfig });
    say("  A second DEL succeeds too.\n\nDemo complete: ADD → CHECK → DEL on the real kernel.");
  } finally {
    if (api) {
      try {
        api.child.kill("SIGTERM");
      } catch { /* already gone */ }
      await api.child.status;
    }
    await sh(["ip", "netns", "del", pod], { check: false });
    await sh(["ip", "netns", "del", node], { check: false });
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Why the demo must run in the lab VM, if it must: network namespaces need
 * root, and the guest's job runs as root while qemu under TCG needs no
 * privileges, so a normal user gets the VM too.
 */
async function labReason(): Promise<string | undefined> {
  if (Deno.args.includes("--inside-lab")) return undefined;
  if (Deno.uid() !== 0) return "not running as root";
  if (!(await kernelHasVrf())) return "this kernel has no VRF support";
  return undefined;
}

async function main(): Promise<number> {
  const reason = await labReason();
  if (reason) {
    say(
      `${reason}: running the demo inside the lab VM (Debian's kernel, see tests/lab/README.md).`,
    );
    const lab = new Deno.Command("bash", {
      args: [
        `${ROOT}/tests/lab/run.sh`,
        "./node_modules/.bin/deno",
        "run",
        "--allow-all",
        "--cached-only",
        "tools/demo.ts",
        "--inside-lab",
      ],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    });
    return (await lab.output()).code;
  }
  try {
    await demo();
    return 0;
  } catch (error) {
    console.error(`demo failed: ${(error as Error).message}`);
    return 1;
  }
}

Deno.exit(await main());
