// Unit tests of the benchmark's pure parts: statistics, option parsing, the
// strace parser and the report. No timing assertions: nothing here measures.
//
//     deno test tools/bench/
import assert from "node:assert/strict";
import { parseTimeOutput } from "./exec.ts";
import { optionsToArgs, parseBenchArgs } from "./options.ts";
import { analyze, parseLog, parseStrace } from "./profile.ts";
import { floorAnalysis, floorVerdict, renderReport, table, verbs } from "./report.ts";
import { floorArgv } from "./calibrate.ts";
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

const samples = (ms: number[]): { ms: number[]; rssKb: number[]; api: never[] } => ({
  ms,
  rssKb: ms.map(() => 50_000),
  api: [],
});
/** A synthetic run: Go ADD p50 11 ms, DEL 8 ms; agent ADD p50 35 ms, DEL 20 ms. */
function fixture(): BenchResults {
  return {
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
}

Deno.test("report: tables align, verbs average, a synthetic run renders every section", () => {
  assert.equal(table([["a", "1"], ["bbb", "22"]], ""), "a      1\nbbb   22");
  assert.equal(verbs({ list: 6, create: 2 }, 2), "list 3, create 1");
  assert.equal(verbs({}, 1), "none");
  const results = fixture();
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
  // No floor samples (a run from before it existed): nothing about it.
  assert.ok(!/floor/i.test(text), text);
  // ADD p50 35 / Go 11; DEL 20 / Go 8 (the target is ≤ 2.5×).
  assert.ok(text.includes("3.18× ✗") && text.includes("2.50× ✓"), text);
});

/** The fixture with a floor here (p50 24 ms) and, on the VM host, floor 13 ms, Go ADD 55, DEL 40. */
function withFloor(floorMs: number[] = [26, 22, 24]): BenchResults {
  const r = fixture();
  return {
    ...r,
    machine: {
      ...r.machine,
      calibration: {
        here: { galactic: [4000], go: [100] },
        host: {
          galactic: [50],
          go: [4],
          floor: [14, 12, 13],
          goAdd: [50, 55, 60],
          goDel: [40, 38, 44],
        },
      },
    },
    floor: {
      argv: ["deno", "run", "empty.js"],
      ms: floorMs,
      rssKb: floorMs.map(() => 40_000),
      warmupMs: [90],
      failures: [],
    },
  };
}

/** Lines of `text` that mention the floor. */
function floorLines(text: string): string[] {
  return text.split("\n").filter((line) => /floor/i.test(line));
}

Deno.test("floor: ratios to Go per verb, galactic above the floor, hardware from the VM host", () => {
  const a = floorAnalysis(withFloor())!;
  assert.equal(a.n, 3);
  assert.equal(a.p50, 24);
  // Go ADD p50 11, DEL p50 8: 24/11 is under 2.5, 24/8 = 3 is over.
  assert.equal(a.add.go, 11);
  assert.ok(Math.abs(a.add.ratio! - 24 / 11) < 1e-9);
  assert.equal(a.del.ratio, 3);
  assert.deepEqual(a.unreachable, ["DEL"]);
  // agent ADD p50 35, DEL 20: 11 and -4 ms above the floor.
  assert.equal(a.above.length, 1);
  assert.equal(a.above[0]!.mode, "agent");
  assert.equal(a.above[0]!.add, 11);
  assert.equal(a.above[0]!.addRatio, 1);
  assert.equal(a.above[0]!.del, -4);
  assert.equal(a.above[0]!.delRatio, -0.5);
  assert.deepEqual(
    a.hardware && [a.hardware.floor, a.hardware.goAdd, a.hardware.goDel, a.hardware.goVersion],
    [13, 55, 40, 4],
  );
  assert.ok(Math.abs(a.hardware!.addRatio! - 13 / 55) < 1e-9);
  // Measured on the host itself: no separate hardware reference.
  const onHost = withFloor();
  assert.equal(
    floorAnalysis({ ...onHost, machine: { ...onHost.machine, lab: "host" } })!.hardware,
    undefined,
  );
  // No samples (a run from before the floor, or one whose floor failed): no analysis.
  assert.equal(floorAnalysis(fixture()), undefined);
  assert.equal(floorAnalysis(withFloor([])), undefined);
});

Deno.test("floor report: row in (1), galactic − floor lines, unreachable verdict with numbers", () => {
  const text = renderReport(withFloor());
  const lines = floorLines(text);
  // Section (1): the floor's ms in both verbs' columns and its ratio to each Go p50, no mark.
  assert.ok(
    lines.some((l) =>
      /^ {2}Deno runtime floor \(empty module\)\s+3\s+24\.0\s+25\.8\s+24\.0\s+25\.8\s+2\.18×\s+3\.00×$/
        .test(l)
    ),
    lines.join("\n"),
  );
  assert.ok(
    lines.some((l) => /galactic, agent − floor\s+11\.0\s+1\.00×\s+-4\.0\s+-0\.50×$/.test(l)),
  );
  // Verdict: only DEL is out of reach; the numbers of this run and of the VM host.
  assert.ok(
    text.includes(
      "  latency target (≤ 2.5× Go) UNREACHABLE in this environment for DEL by any program on this runtime:\n" +
        "    Deno runtime floor (deno run of an empty module) p50 24.0 ms vs Go host-device ADD p50 11.0 ms = 2.18×, DEL p50 8.0 ms = 3.00×\n" +
        "    on hardware (the VM host, same commands): floor p50 13.0 ms vs Go host-device ADD p50 55.0 ms = 0.24×, DEL p50 40.0 ms = 0.33× (Go VERSION 4.0 ms)",
    ),
    text,
  );
  // Nothing about the floor carries a ✓/✗: no target applies to it.
  for (const line of lines) assert.ok(!/[✓✗]/.test(line), line);
  // The header shows the floor here against the VM host's.
  assert.ok(text.includes("24.0 ms here (interleaved with (1)), 13.0 ms on the VM host (1.85×)"));
  assert.ok(
    text.includes("Go host-device on the VM host") && text.includes("ADD 55.0 ms, DEL 40.0 ms"),
  );
  // RSS table: a row for the floor, no mark.
  assert.ok(
    /Deno runtime floor \(empty module\)\s+39\.1\s+39\.1\s+39\.1\s+39\.1$/m.test(text),
    text,
  );
});

Deno.test("floor verdict: within the target, no Go, missing host pairs, failures", () => {
  // Floor 5 ms: 0.45× and 0.63× of Go: no claim of unreachability.
  const low = floorVerdict(floorAnalysis(withFloor([5]))!);
  assert.ok(low[0]!.includes("ADD p50 11.0 ms = 0.45×, DEL p50 8.0 ms = 0.63×"), low.join("\n"));
  assert.ok(low[0]!.includes("within the 2.5× target"));
  assert.ok(!low.join("\n").includes("UNREACHABLE"));
  // Both verbs over.
  const high = floorVerdict(floorAnalysis(withFloor([100]))!);
  assert.ok(high[0]!.includes("UNREACHABLE in this environment for ADD and DEL"), high.join("\n"));
  // No Go samples: nothing to compare with, no verdict and "—" ratios.
  const r = withFloor();
  const noGo = { ...r, sequential: r.sequential.filter((s) => s.subject !== "go") };
  const verdict = floorVerdict(floorAnalysis(noGo)!).join("\n");
  assert.ok(verdict.includes("no Go p50 to compare it with (no verdict)"), verdict);
  assert.ok(!verdict.includes("UNREACHABLE"));
  assert.ok(/Deno runtime floor \(empty module\)\s+3\s+24\.0\s+25\.8\s+24\.0\s+25\.8\s+—\s+—$/m
    .test(renderReport(noGo)));
  // The VM host measured the floor but not Go's ADD/DEL: say so, with why.
  const partial = withFloor([100]);
  const host = partial.machine.calibration!.host!;
  const noPairs = {
    ...partial,
    machine: {
      ...partial.machine,
      calibration: {
        here: partial.machine.calibration!.here,
        host: {
          galactic: host.galactic,
          go: host.go,
          floor: host.floor,
          errors: ["Go ADD: exit 1"],
        },
      },
    },
  };
  const hw = floorVerdict(floorAnalysis(noPairs)!).join("\n");
  assert.ok(
    hw.includes("floor p50 13.0 ms; Go ADD/DEL not measured there (Go VERSION 4.0 ms)"),
    hw,
  );
  assert.ok(hw.includes("VM host: Go ADD: exit 1"));
  // A failed floor exec is listed with the failures.
  const failed = withFloor();
  failed.floor!.failures.push("Deno runtime floor: exit 1: boom");
  assert.ok(renderReport(failed).includes("  ✗ Deno runtime floor: exit 1: boom"));
});

Deno.test("floor command: bin/galactic's deno and flags, --no-config for its --config", async () => {
  const repo = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  const launcher = await Deno.readTextFile(`${repo}/bin/galactic`);
  const exec = launcher.slice(launcher.indexOf('exec "$deno" run'));
  const flags = [...exec.matchAll(/--[a-z-]+/g)].map((m) => m[0]).filter((f) => f !== "--config");
  const argv = floorArgv(repo, "/tmp/empty.js");
  assert.equal(argv[0], `${repo}/node_modules/.bin/deno`);
  assert.ok(launcher.includes("$here/node_modules/.bin/deno"));
  assert.equal(argv[1], "run");
  assert.deepEqual(argv.slice(2, -2), flags);
  assert.deepEqual(argv.slice(-2), ["--no-config", "/tmp/empty.js"]);
});
