// Unit tests of the benchmark's parts that need no root: statistics, options,
// the strace parser and the breakdown, the VRF substitute's rewrite, the
// report, and the floor's flags. No timing assertions: nothing here measures.
import assert from "node:assert/strict";
import { vrfWithMembersDeleteLines } from "../../lib/iproute2/mod.ts";
import { parseCgroupCpuMs, parseProcCpuMs } from "./agent_cpu.ts";
import { parseRemovals } from "./agent_process.ts";
import { countCalls, installShim, shimMs } from "./ip_shim.ts";
import { optionsToArgs, parseBenchArgs } from "./options.ts";
import { analyze, parseLog, parseStrace } from "./profile.ts";
import { agentShare, comparePaired, renderReport, table, withoutShim } from "./report.ts";
import type { BenchResults, Subject, SubjectResult } from "./results.ts";
import { percentile, summarize, unionLength } from "./stats.ts";
import { floorArgv } from "./subjects.ts";
import { parseTimeOutput, parseTimes } from "./timed_exec.ts";

Deno.test("percentile interpolates between ranks; summary of nothing is undefined", () => {
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentile([10], 90), 10);
  assert.equal(percentile([], 50), undefined);
  const s = summarize([5, 1, 3, 2, 4]);
  assert.deepEqual(s && [s.n, s.p50, s.min, s.max], [5, 3, 1, 5]);
  assert.equal(s?.p90, 4.6);
  assert.equal(summarize([]), undefined);
});

Deno.test("unionLength merges overlapping intervals", () => {
  assert.equal(unionLength([[0, 10], [5, 15], [20, 25], [21, 22]]), 20);
  assert.equal(unionLength([]), 0);
});

Deno.test("options: defaults, --quick sizes, explicit values win, round trip, bad input", () => {
  const full = parseBenchArgs([]).options;
  assert.deepEqual([full.iterations, full.warmup, full.profileRuns, full.host], [20, 1, 2, false]);
  const quick = parseBenchArgs([
    "--quick",
    "--iterations",
    "4",
    "--host",
    "--no-agent",
    "--compare",
    "/work/main",
  ]).options;
  assert.deepEqual([quick.iterations, quick.profileRuns], [4, 1]);
  assert.deepEqual(parseBenchArgs(optionsToArgs(quick)).options, quick);
  assert.equal(parseBenchArgs(["--node-worker=/x.json"]).nodeWorker, "/x.json");
  assert.throws(() => parseBenchArgs(["--iterations", "0"]), /--iterations/);
  assert.throws(() => parseBenchArgs(["--bogus"]));
  assert.throws(() => parseBenchArgs(["--compare", "main"]), /absolute/);
  assert.equal(parseBenchArgs(["--agent-only"]).options.agentOnly, true);
  assert.throws(() => parseBenchArgs(["--agent-only", "--no-agent"]), /no galactic mode/);
});

Deno.test("GNU time output: the last line is %M, also after an exit-status line", () => {
  assert.equal(parseTimeOutput("51234\n"), 51234);
  assert.equal(parseTimeOutput("Command exited with non-zero status 1\n7000\n"), 7000);
  assert.equal(parseTimeOutput(""), undefined);
});

Deno.test("bash times: the children's user + system time, ms", () => {
  assert.equal(parseTimes("0m0.001s 0m0.002s\n0m0.031s 0m1.012s\n"), 1043);
  assert.equal(parseTimes("0m0.001s 0m0.002s\n1m0.500s 0m0.000s\n"), 60_500);
  assert.equal(parseTimes(""), undefined);
});

const TRACE =
  `100 1000.000000 execve("/repo/bin/galactic", ["/repo/bin/galactic"], 0x1 /* 5 vars */) = 0
101 1000.001000 execve("/usr/bin/dirname", ["dirname", "--", "/repo/bin/galactic"], 0x2 /* 5 vars */) = 0
101 1000.002000 +++ exited with 0 +++
100 1000.010000 execve("/repo/node_modules/.bin/deno", ["/repo/node_modules/.bin/deno", "run"...], 0x3 /* 5 vars */) = 0
102 1000.100000 execve("/usr/local/sbin/ip", ["ip", "-json"], 0x4 /* 3 vars */) = -1 ENOENT (No such file or directory)
102 1000.100100 execve("/usr/sbin/ip", ["ip", "-json", "-batch", "-"], 0x4 /* 3 vars */) = 0
103 1000.105000 execve("/usr/sbin/iptables", ["iptables", "-w", "5"], 0x5 /* 3 vars */ <unfinished ...>
102 1000.110100 +++ exited with 0 +++
103 1000.105500 <... execve resumed>) = 0
103 1000.120000 +++ exited with 1 +++
104 1000.150000 execve("/usr/lib/cni/host-device", ["/usr/lib/cni/host-device"], 0x6 /* 6 vars */) = 0
105 1000.160000 execve("/usr/lib/cni/static", ["/usr/lib/cni/static"], 0x7 /* 6 vars */) = 0
105 1000.170000 +++ exited with 0 +++
104 1000.180000 +++ exited with 0 +++
100 1000.300000 +++ exited with 0 +++
`;

Deno.test("strace: successful execs with their exits, misses skipped, unfinished resumed", () => {
  const execs = parseStrace(TRACE);
  assert.deepEqual(execs.map((e) => e.argv[0]), [
    "/repo/bin/galactic",
    "dirname",
    "/repo/node_modules/.bin/deno",
    "ip",
    "iptables",
    "/usr/lib/cni/host-device",
    "/usr/lib/cni/static",
  ]);
  const ip = execs.find((e) => e.argv[0] === "ip")!;
  assert.equal(Math.round(ip.end! - ip.at), 10);
  // The launcher's program ends where the same process execs deno.
  assert.equal(execs[0]!.end, execs[2]!.at);
});

Deno.test("profile: phases add up to the total, API requests and log lines are placed", () => {
  const run = analyze({
    mode: "no-agent",
    verb: "ADD",
    code: 0,
    trace: TRACE,
    api: [{ at: 1_000_200, verb: "list", resource: "bgpinstances" }, { at: 5, verb: "list" }],
    log: "1970-01-01T00:16:40.250Z DEBUG galactic: vrf declared cmd=ADD\n",
  })!;
  assert.equal(Math.round(run.totalMs), 300);
  assert.equal(Math.round(run.launcherMs), 10);
  assert.equal(Math.round(run.startupMs), 90);
  const sum = run.launcherMs + run.startupMs + run.commandsMs + run.betweenMs + run.tailMs;
  assert.equal(Math.round(sum), 300);
  assert.equal(run.apiRequests, 1);
  assert.deepEqual(Object.keys(run.byProgram).sort(), ["host-device", "ip", "iptables"]);
  assert.equal(run.byProgram["host-device"]!.count, 2);
  assert.ok(run.events.some((e) => e.kind === "log" && e.what.startsWith("debug: vrf declared")));
  assert.deepEqual(parseLog("garbage\n"), []);
});

Deno.test("profile: a shim that execs the real ip is one process, its part labelled", () => {
  const trace = `100 1000.000000 execve("/repo/bin/galactic", ["/repo/bin/galactic"], 0x1) = 0
100 1000.010000 execve("/repo/node_modules/.bin/deno", ["deno", "run"], 0x3) = 0
102 1000.100000 execve("/tmp/b/shim/ip", ["ip", "-6", "-batch", "-"], 0x4) = 0
102 1000.103000 execve("/usr/sbin/ip", ["/usr/sbin/ip", "-6", "-batch", "-"], 0x4) = 0
102 1000.110000 +++ exited with 0 +++
100 1000.200000 +++ exited with 0 +++
`;
  const run = analyze({ mode: "agent", verb: "ADD", code: 0, trace, api: [], log: "" })!;
  assert.equal(Math.round(run.totalMs), 200);
  assert.deepEqual(run.byProgram.ip && [run.byProgram.ip.count, Math.round(run.byProgram.ip.ms)], [
    1,
    10,
  ]);
  const execs = run.events.filter((e) => e.kind === "exec").map((e) => [e.what, Math.round(e.ms!)]);
  assert.deepEqual(execs, [["(substitute) ip -6 -batch -", 3], ["ip -6 -batch -", 7]]);
});

Deno.test("VRF substitute: rewrites the VRF steps in batches and argv, passes the rest, logs each call", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // Stand-ins for the real programs print what reached them.
    const echo = `#!/bin/sh\necho "$0 $*"\ncat\n`;
    await Deno.mkdir(`${dir}/real`);
    for (const name of ["ip", "sysctl"]) {
      await Deno.writeTextFile(`${dir}/real/${name}`, echo, { mode: 0o755 });
    }
    const shim = await installShim(`${dir}/shim`, `${dir}/missing:${dir}/real`);
    assert.deepEqual([shim.ip, shim.sysctl], [`${dir}/real/ip`, `${dir}/real/sysctl`]);
    const run = async (argv: string[], stdin = ""): Promise<string> => {
      const child = new Deno.Command(`${dir}/shim/${argv[0]}`, {
        args: argv.slice(1),
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
      const out = await child.output();
      assert.equal(out.code, 0);
      return new TextDecoder().decode(out.stdout);
    };
    const batch = await run(
      ["ip", "-6", "-batch", "-"],
      [
        "link add G0V type vrf table 1000",
        "route flush table 1000",
        "route replace fc00::1/128 encap seg6local action End.DT46 vrftable 1000 dev G0H",
        "link set G0H master G0V up",
      ].join("\n"),
    );
    assert.equal(
      batch,
      [
        `${dir}/real/ip -6 -batch -`,
        "link add G0V type bridge",
        "route flush table 1000",
        "route replace fc00::1/128 encap seg6local action End.DT6 table 1000 dev G0H",
        "link set G0H master G0V up",
        "",
      ].join("\n"),
    );
    const argv = await run(["ip", "-6", "route", "replace", "fc00::1/128", "encap", "seg6local"]
      .concat(["action", "End.DT46", "vrftable", "7", "dev", "a b"]));
    assert.equal(
      argv,
      `${dir}/real/ip -6 route replace fc00::1/128 encap seg6local action End.DT6 table 7 dev a b\n`,
    );
    assert.equal(await run(["sysctl", "-q", "-w", "net.vrf.strict_mode=1"]), "");
    assert.equal(
      await run(["sysctl", "-q", "-w", "net/ipv4/conf/x/forwarding=1"]),
      `${dir}/real/sysctl -q -w net/ipv4/conf/x/forwarding=1\n`,
    );
    const calls = countCalls(await Deno.readTextFile(shim.calls));
    assert.deepEqual(calls, { b: 1, a: 1, s: 2 });
    assert.equal(shimMs(calls, { b: 2, a: 1, s: 0.5 }), 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function subject(
  name: Subject,
  add: number[],
  del: number[],
  extra: Partial<SubjectResult> = {},
): SubjectResult {
  const galactic = name === "agent" || name === "no-agent";
  const throughAgent = name === "agent" || name === "compare";
  const verb = (ms: number[], api: number) => ({
    ms,
    rssKb: ms.map(() => (galactic ? 50 : 10) * 1024),
    cpuMs: ms.map((v) => v / 2),
    shimCpuMs: ms.map(() => (galactic ? 4 : 0)),
    api: ms.map(() => (galactic ? api : 0)),
    shimMs: ms.map(() => (galactic ? 10 : 0)),
    // The agent's CPU: 5 ms per ADD; per DEL 18, 20 and 40 (p50 20, mean 26).
    agentCpuMs: throughAgent ? (api === 2 ? ms.map(() => 5) : [18, 20, 40]) : [],
    // DEL's removal finished 50, 60, 70 ms after its exit.
    removalMs: galactic && api === 1 ? [50, 60, 70] : [],
  });
  return {
    subject: name,
    add: verb(add, 2),
    del: verb(del, 1),
    failures: [],
    fallbackRequests: 0,
    ...extra,
  };
}

/** A synthetic host-mode run: Go 20/20 ms, floor 50/60, agent 100/130 (10 ms of it the substitute's). */
function fixture(): BenchResults {
  return {
    version: 3,
    startedAt: "2026-01-01T00:00:00.000Z",
    wallMs: 60_000,
    options: parseBenchArgs(["--quick"]).options,
    machine: {
      cpuModel: "Some CPU",
      cores: 2,
      memMiB: 8000,
      kernel: "6.1.0",
      where: "host",
      versions: { deno: "2.9.6" },
    },
    vrf: "shim",
    load: { before: [3.5, 2, 1], after: [1, 1, 1] },
    shim: { cost: { b: 2, a: 1, s: 1 }, cpu: { b: 1, a: 0.5, s: 0.5 }, p50: {} },
    agent: {
      startMs: 1000,
      peakRssKb: 90_000,
      backgroundApi: 2,
      cpuSource: "cgroup",
      removals: { removed: 3 },
    },
    subjects: [
      subject("go", [19, 20, 21], [20, 20, 20]),
      subject("floor", [50, 50, 50], [60, 60, 60]),
      subject("agent", [100, 100, 100], [130, 130, 130], { failures: ["ADD 0: exit 11: boom"] }),
    ],
    profile: [analyze({ mode: "agent", verb: "ADD", code: 0, trace: TRACE, api: [], log: "" })!],
    errors: ["profile agent DEL: exit 1: x"],
  };
}

Deno.test("report: ratios to both floors from one run, the substitute taken out, every section", () => {
  const r = fixture();
  assert.deepEqual(withoutShim(r.subjects[2]!.add), [90, 90, 90]);
  const text = renderReport(r);
  const row = (label: string): string[] =>
    text.split("\n").find((l) => l.trimStart().startsWith(label))!.trim().split(/\s{3,}/);
  // ADD p50, p90, DEL p50, p90, RSS, API, ×Go ×2, ×floor ×2
  assert.deepEqual(row("galactic through the node agent").slice(1), [
    "100",
    "100",
    "130",
    "130",
    "50 ✓",
    "2 / 1",
    "5.0× ✗",
    "6.5× ✗",
    "2.0× ✗",
    "2.2× ✗",
  ]);
  assert.deepEqual(row("− the VRF substitute's cost").slice(1, 5), ["90.0", "90.0", "120", "120"]);
  assert.deepEqual(row("minimal Deno plugin").slice(7), ["2.5×", "3.0×", "1.0×", "1.0×"]);
  assert.match(
    text,
    /load average \(1\/5\/15 min\): before 3.50 2.00 1.00, after 1.00 1.00 1.00 — more runnable work/,
  );
  assert.match(
    text,
    /ip batch \+2.0 ms, ip argv \+1.0 ms, sysctl \+1.0 ms; per galactic ADD 10.0 ms/,
  );
  // CPU time (here half the wall time), p50 and its ratio to the floor's.
  const cpu = text.slice(text.indexOf("CPU time per invocation")).split("\n").slice(1, 6);
  // The agent's CPU per invocation only for the subject through it (p50s).
  assert.deepEqual(cpu.map((l) => l.trim().split(/\s{3,}/)), [
    ["subject", "ADD CPU", "DEL CPU", "ADD ×floor", "DEL ×floor", "agent per ADD", "agent per DEL"],
    ["Go host-device + static", "10.0", "10.0"],
    ["minimal Deno plugin (veth + host-device)", "25.0", "30.0", "1.0×", "1.0×"],
    ["galactic through the node agent", "50.0", "65.0", "2.0×", "2.2×", "5.0", "20.0"],
    ["− the VRF substitute's cost", "46.0", "61.0", "1.8×", "2.0×"],
  ]);
  assert.match(
    text,
    /the node agent's share of DEL \(its cgroup\): CPU per DEL 20.0 ms \(mean 26.0\); node clean 60.0 ms \(p90 68.0\) after the DEL's exit; removals it finished: removed 3/,
  );
  assert.match(text, /CPU per call: ip batch \+1.0 ms, ip argv \+0.5 ms, sysctl \+0.5 ms/);
  assert.match(text, /failed: agent ADD 0: exit 11: boom/);
  assert.match(text, /error: profile agent DEL/);
  assert.match(text, /agent ADD\s+300\s+10.0\s+90.\d\s+49.9/);
  assert.match(text, /timeline of one agent ADD/);
  // With real VRF devices there is nothing to take out.
  const kernel = renderReport({ ...r, vrf: "kernel" });
  assert.ok(!kernel.includes("substitute's cost"));
  assert.match(kernel, /VRF: the kernel's own devices/);
});

Deno.test("report: --compare's paired ratio per round, only with --compare", () => {
  const r = fixture();
  assert.equal(comparePaired(r), undefined);
  r.subjects[2]!.failures.length = 0;
  // Round by round: 110/100, 150/100 (a loaded round), 90/100 → median 1.10; DEL 0.5 each round.
  r.subjects.push(subject("compare", [110, 150, 90], [65, 65, 65]));
  assert.equal(
    comparePaired(r),
    "--compare checkout / this checkout, per round (median): " +
      "ADD ×1.10 (the checkout faster in 1 of 3 rounds), DEL ×0.50 (the checkout faster in 3 of 3 rounds)",
  );
  assert.match(renderReport(r), /--compare checkout through the agent/);
  // The --compare subject's agent CPU per DEL beside this checkout's.
  assert.match(agentShare(r)!, /CPU per DEL 20.0 ms \(mean 26.0\), with --compare 20.0 ms/);
  r.subjects[3]!.failures.push("DEL 2: exit 1");
  assert.match(comparePaired(r)!, /no per-round ratio/);
});

Deno.test("report: no agent share without an agent; /proc's ticks are named", () => {
  const r = fixture();
  assert.equal(agentShare({ ...r, agent: undefined }), undefined);
  assert.match(agentShare({ ...r, agent: { ...r.agent!, cpuSource: "proc" } })!, /10 ms ticks/);
  const none = agentShare({ ...r, agent: { ...r.agent!, removals: {} } })!;
  assert.match(none, /removals it finished: none$/);
  // Without an agent's samples the CPU table has no agent columns.
  const bare = fixture();
  for (const s of bare.subjects) s.del.agentCpuMs.length = 0;
  assert.ok(!renderReport(bare).includes("agent per DEL"));
});

Deno.test("agent CPU: cgroup v2 usage_usec and /proc's four CPU fields, in ms", () => {
  assert.equal(
    parseCgroupCpuMs("usage_usec 18547\nuser_usec 3709\nsystem_usec 14838\nnice_usec 0\n"),
    18.547,
  );
  assert.equal(parseCgroupCpuMs("user_usec 1\n"), undefined);
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime …
  const stat = "42 (deno (x) y) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 12 2 20 0 9 0 5 1000 200";
  assert.equal(parseProcCpuMs(stat), (7 + 3 + 12 + 2) * 10);
  assert.equal(parseProcCpuMs(""), undefined);
  assert.equal(parseProcCpuMs("42 (deno) S 1 2"), undefined);
});

Deno.test("agent /metrics: removals by outcome", () => {
  const metrics = [
    "# TYPE galactic_agent_removals_total counter",
    'galactic_agent_removals_total{outcome="removed"} 20',
    'galactic_agent_removals_total{outcome="skipped"} 1',
    'galactic_agent_calls_total{op="finishRemoval",outcome="ok"} 21',
  ].join("\n");
  assert.deepEqual(parseRemovals(metrics), { removed: 20, skipped: 1 });
  assert.deepEqual(parseRemovals(""), {});
});

Deno.test("VRF substitute: the removal the agent runs has nothing to substitute", async () => {
  // The agent runs it without the substitute (agent_process.ts): it must pass through unchanged.
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/real`);
    for (const name of ["ip", "sysctl"]) {
      await Deno.writeTextFile(`${dir}/real/${name}`, `#!/bin/sh\ncat\n`, { mode: 0o755 });
    }
    const shim = await installShim(`${dir}/shim`, `${dir}/real`);
    const lines = vrfWithMembersDeleteLines({ name: "G0V", table: 1000 }, ["G0H", "G0G"]);
    const child = new Deno.Command(`${shim.dir}/ip`, {
      args: ["-force", "-batch", "-"],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(lines.join("\n") + "\n"));
    await writer.close();
    const out = await child.output();
    assert.equal(new TextDecoder().decode(out.stdout), lines.join("\n") + "\n");
    assert.ok(lines.some((line) => line.includes("table 1000")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("table: columns align, the first left, the rest right", () => {
  assert.equal(table([["a", "1"], ["bbb", "22"]], ""), "a      1\nbbb   22");
});

Deno.test("minimal Deno plugin runs on bin/galactic's deno binary and flags", async () => {
  const repo = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const launcher = await Deno.readTextFile(`${repo}/bin/galactic`);
  const exec = launcher.slice(launcher.indexOf('exec "$deno" run'));
  const flags = [...exec.matchAll(/--[a-z-]+/g)].map((m) => m[0]);
  const argv = floorArgv(repo);
  assert.ok(launcher.includes("$here/node_modules/.bin/deno"));
  assert.deepEqual(argv.slice(0, 2), [`${repo}/node_modules/.bin/deno`, "run"]);
  assert.deepEqual(argv.filter((a) => a.startsWith("--")), flags);
  assert.deepEqual(
    argv.slice(-3),
    ["--config", `${repo}/deno.json`, `${repo}/tools/bench/floor_plugin.ts`],
  );
});
