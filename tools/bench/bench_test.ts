// Unit tests of the benchmark's pure parts: statistics, option parsing, the
// strace parser and the report. No timing assertions: nothing here measures.
//
//     deno test tools/bench/
import assert from "node:assert/strict";
import { parseTimeOutput } from "./exec.ts";
import { optionsToArgs, parseBenchArgs } from "./options.ts";
import { analyze, parseLog, parseStrace } from "./profile.ts";
import { renderReport, table, verbs } from "./report.ts";
import type { BenchResults } from "./results.ts";
import { percentile, summarize, unionLength } from "./stats.ts";

Deno.test("percentile interpolates between ranks; summary of nothing is undefined", () => {
  assert.equal(percentile([1, 2, 3, 4], 50), 2.5);
  assert.equal(percentile([10], 95), 10);
  assert.equal(percentile([], 50), undefined);
  const s = summarize([5, 1, 3, 2, 4]);
  assert.deepEqual(s && [s.n, s.p50, s.min, s.max, s.mean], [5, 3, 1, 5, 3]);
  assert.equal(s?.p95, 4.8);
  assert.equal(summarize([]), undefined);
});

Deno.test("unionLength merges overlapping intervals", () => {
  assert.equal(unionLength([[0, 10], [5, 15], [20, 25], [21, 22]]), 20);
  assert.equal(unionLength([]), 0);
});

Deno.test("options: defaults, --quick sizes, explicit values win, round trip", () => {
  const full = parseBenchArgs([]).options;
  assert.deepEqual(
    [full.iterations, full.concurrency, full.curve, full.curveIterations, full.profileRuns],
    [15, 50, [1, 100, 1000], 5, 3],
  );
  const quick = parseBenchArgs(["--quick", "--iterations", "4"]).options;
  assert.equal(quick.iterations, 4);
  assert.equal(quick.concurrency, 6);
  assert.deepEqual(parseBenchArgs(optionsToArgs(quick)).options, quick);
  assert.deepEqual(parseBenchArgs(["--curve", "100,1,100"]).options.curve, [1, 100]);
  assert.throws(() => parseBenchArgs(["--iterations", "0"]), /--iterations/);
  assert.throws(() => parseBenchArgs(["--bogus"]));
  const internal = parseBenchArgs(["--inside-lab", "--json-out=/x.json"]).internal;
  assert.deepEqual(internal, { insideLab: true, jsonOut: "/x.json" });
});

Deno.test("GNU time output: the last line is %M, also after an exit-status line", () => {
  assert.equal(parseTimeOutput("51234\n"), 51234);
  assert.equal(parseTimeOutput("Command exited with non-zero status 1\n7000\n"), 7000);
  assert.equal(parseTimeOutput(""), undefined);
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

Deno.test("report: tables align, verbs average, a synthetic run renders every section", () => {
  assert.equal(table([["a", "1"], ["bbb", "22"]], ""), "a      1\nbbb   22");
  assert.equal(verbs({ list: 6, create: 2 }, 2), "list 3, create 1");
  assert.equal(verbs({}, 1), "none");
  const samples = (ms: number[]): { ms: number[]; rssKb: number[]; api: never[] } => ({
    ms,
    rssKb: ms.map(() => 50_000),
    api: [],
  });
  const results: BenchResults = {
    version: 1,
    startedAt: "2026-01-01T00:00:00.000Z",
    wallMs: 60_000,
    options: parseBenchArgs(["--quick"]).options,
    machine: {
      cpuModel: "QEMU TCG CPU",
      cores: 2,
      memMiB: 8000,
      kernel: "6.1.0",
      lab: "vm/tcg",
      versions: { deno: "2.9.6" },
      calibration: { here: { galactic: [4000], go: [100] }, host: { galactic: [50], go: [4] } },
    },
    setup: { plugin: "bin/galactic", apiTimeoutSeconds: 60 },
    agent: { available: true, startMs: 1000, peakRssKb: 90_000, backgroundApi: { list: 3 } },
    sequential: [
      {
        subject: "go",
        add: samples([10, 12]),
        del: samples([8]),
        warmup: { addMs: [], delMs: [] },
        failures: [],
      },
      {
        subject: "agent",
        add: { ms: [30, 40], rssKb: [52_000], api: [{ create: 1, list: 1 }] },
        del: { ms: [20], rssKb: [51_000], api: [{ delete: 1 }] },
        warmup: { addMs: [], delMs: [] },
        failures: ["agent ADD x: exit 11: boom"],
        fallbackRequests: 0,
      },
    ],
    concurrency: [{
      mode: "agent",
      n: 2,
      add: { wallMs: 50, ok: 2, ms: [40, 45], rssKb: [52_000], api: { list: 2, create: 1 } },
      del: { wallMs: 30, ok: 2, ms: [20, 25], rssKb: [51_000], api: { delete: 1 } },
      vrfsAfterAdd: 2,
      distinctTables: 2,
      vrfsAfterDel: 0,
      failures: [],
    }],
    curve: [
      {
        mode: "agent",
        vrfs: 1,
        instances: 1,
        addMs: [30],
        delMs: [20],
        addApi: { create: 1 },
        delApi: {},
        failures: [],
      },
      {
        mode: "agent",
        vrfs: 10,
        instances: 10,
        addMs: [33],
        delMs: [21],
        addApi: { create: 1 },
        delApi: {},
        failures: [],
      },
    ],
    curveSetup: [{ vrfs: 1, setupMs: 5 }, { vrfs: 10, setupMs: 9 }],
    profile: [analyze({ mode: "agent", verb: "ADD", code: 0, trace: TRACE, api: [], log: "" })!],
    errors: [],
    notes: ["a note"],
  };
  const text = renderReport(results);
  for (
    const heading of [
      "(1) Sequential",
      "(2) Peak RSS",
      "(3) 2 concurrent",
      "(4) Kubernetes API",
      "(5) ADD cost",
      "(6) Where the time goes",
      "Verdicts",
      "Failures",
      "start-up calibration",
      "note: a note",
    ]
  ) assert.ok(text.includes(heading), `missing ${heading}:\n${text}`);
  assert.ok(text.includes("galactic, agent"));
  // ADD p50 35 / Go 11; DEL 20 / Go 8 (the target is ≤ 2.5×).
  assert.ok(text.includes("3.18× ✗") && text.includes("2.50× ✓"), text);
});
