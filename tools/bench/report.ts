/**
 * The printed report of a benchmark run: the machine, then one table per
 * scenario with its target, then where the time of an ADD and a DEL goes.
 *
 * @module
 */

import type { MachineInfo } from "./machine.ts";
import type {
  BenchResults,
  ConcurrencyResult,
  Mode,
  ProfileRun,
  SequentialResult,
  Subject,
  VerbCounts,
} from "./results.ts";
import { addCounts, median, summarize, total } from "./stats.ts";

/** Targets of issue 7. */
export const TARGETS = {
  /** galactic ADD/DEL p50 at most this many times the Go host-device's. */
  ratio: 2.5,
  /** Peak RSS per plugin process, MB. */
  rssMb: 64,
  /** API requests per ADD in steady state. */
  addRequests: 2,
  /** API requests per DEL in steady state. */
  delRequests: 1,
} as const;

const NAMES: Record<Subject, string> = {
  go: "Go host-device + static",
  "no-agent": "galactic, no agent",
  agent: "galactic, agent",
};
const FLOOR_NAME = "Deno runtime floor (empty module)";

function ms(value: number | undefined): string {
  if (value === undefined) return "—";
  if (value >= 10_000) return `${(value / 1000).toFixed(1)} s`;
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function mb(kb: number | undefined): string {
  return kb === undefined ? "—" : (kb / 1024).toFixed(1);
}

function mark(ok: boolean | undefined): string {
  return ok === undefined ? "" : ok ? " ✓" : " ✗";
}

/** ✓/✗ for `value ≤ limit`; nothing when there is no value. */
function within(value: number | undefined, limit: number): string {
  return value === undefined || Number.isNaN(value) ? "" : mark(value <= limit);
}

function ratio(value: number | undefined, base: number | undefined): number | undefined {
  return value === undefined || base === undefined || base === 0 ? undefined : value / base;
}

function times(value: number | undefined, target?: number): string {
  if (value === undefined) return "—";
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(2)}×` +
    (target === undefined ? "" : mark(value <= target));
}

/** The floor against Go for one verb. */
export interface FloorVerb {
  /** Go host-device p50 of the verb, ms. */
  readonly go?: number;
  /** Floor p50 / Go p50. */
  readonly ratio?: number;
}

/** How far one galactic mode is above the floor. */
export interface AboveFloor {
  /** Mode. */
  readonly mode: Mode;
  /** ADD p50 − floor p50, ms. */
  readonly add?: number;
  /** That / Go ADD p50. */
  readonly addRatio?: number;
  /** DEL p50 − floor p50, ms. */
  readonly del?: number;
  /** That / Go DEL p50. */
  readonly delRatio?: number;
}

/** The floor and Go measured the same way on the VM host (hardware). */
export interface HardwareFloor {
  /** Floor p50 there, ms. */
  readonly floor: number;
  /** Floor samples there. */
  readonly n: number;
  /** Go host-device ADD / DEL p50 there, ms. */
  readonly goAdd?: number;
  readonly goDel?: number;
  /** Floor / Go p50 there. */
  readonly addRatio?: number;
  readonly delRatio?: number;
  /** Go host-device VERSION p50 there, ms. */
  readonly goVersion?: number;
  /** What the VM host could not measure. */
  readonly errors: readonly string[];
}

/** The Deno runtime floor of one run against Go and galactic (p50s). */
export interface FloorAnalysis {
  /** Floor samples. */
  readonly n: number;
  /** Floor p50, ms. */
  readonly p50: number;
  /** Floor p95, ms. */
  readonly p95: number;
  /** Against Go ADD. */
  readonly add: FloorVerb;
  /** Against Go DEL. */
  readonly del: FloorVerb;
  /**
   * Verbs whose floor / Go p50 exceeds the latency target: there no program
   * on this runtime can meet it, whatever it does after starting.
   */
  readonly unreachable: readonly ("ADD" | "DEL")[];
  /** Each measured galactic mode above the floor. */
  readonly above: readonly AboveFloor[];
  /** The same on the VM host, when the run was in a VM and the host measured the floor. */
  readonly hardware?: HardwareFloor;
}

function minus(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : a - b;
}

/** The floor analysis of `r`, or undefined when the run has no floor samples. */
export function floorAnalysis(r: BenchResults): FloorAnalysis | undefined {
  const floor = summarize(r.floor?.ms ?? []);
  if (!floor) return undefined;
  const go = r.sequential.find((s) => s.subject === "go");
  const goAdd = median(go?.add.ms ?? []);
  const goDel = median(go?.del.ms ?? []);
  const add: FloorVerb = { go: goAdd, ratio: ratio(floor.p50, goAdd) };
  const del: FloorVerb = { go: goDel, ratio: ratio(floor.p50, goDel) };
  const unreachable = ([["ADD", add], ["DEL", del]] as const)
    .filter(([, v]) => v.ratio !== undefined && v.ratio > TARGETS.ratio).map(([verb]) => verb);
  const above: AboveFloor[] = [];
  for (const s of r.sequential) {
    if (s.subject === "go" || (s.add.ms.length === 0 && s.del.ms.length === 0)) continue;
    const a = minus(median(s.add.ms), floor.p50);
    const d = minus(median(s.del.ms), floor.p50);
    above.push({
      mode: s.subject,
      add: a,
      addRatio: ratio(a, goAdd),
      del: d,
      delRatio: ratio(d, goDel),
    });
  }
  const host = r.machine.calibration?.host;
  const hostFloor = summarize(host?.floor ?? []);
  let hardware: HardwareFloor | undefined;
  if (r.machine.lab !== "host" && host && hostFloor) {
    const hAdd = median(host.goAdd ?? []);
    const hDel = median(host.goDel ?? []);
    hardware = {
      floor: hostFloor.p50,
      n: hostFloor.n,
      goAdd: hAdd,
      goDel: hDel,
      addRatio: ratio(hostFloor.p50, hAdd),
      delRatio: ratio(hostFloor.p50, hDel),
      goVersion: median(host.go),
      errors: host.errors ?? [],
    };
  }
  return {
    n: floor.n,
    p50: floor.p50,
    p95: floor.p95,
    add,
    del,
    unreachable,
    above,
    ...(hardware && { hardware }),
  };
}

/** Renders rows as aligned columns; the first column left-aligned, the rest right-aligned. */
export function table(rows: readonly (readonly string[])[], indent = "  "): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((cell, i) => widths[i] = Math.max(widths[i] ?? 0, [...cell].length));
  }
  return rows.map((row) =>
    indent + row.map((cell, i) => {
      const pad = " ".repeat((widths[i] ?? 0) - [...cell].length);
      return i === 0 ? cell + pad : pad + cell;
    }).join("   ").trimEnd()
  ).join("\n");
}

/** `list 3, create 1` from counts, averaged over `n`. */
export function verbs(counts: VerbCounts, n: number): string {
  const entries = Object.entries(counts).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return "none";
  const fmt = (v: number): string => (Number.isInteger(v / n) ? String(v / n) : (v / n).toFixed(2));
  return entries.map(([verb, v]) => `${verb} ${fmt(v)}`).join(", ");
}

function perInvocation(samples: readonly VerbCounts[]): { mean: number; detail: string } {
  const sum: VerbCounts = {};
  for (const s of samples) addCounts(sum, s);
  const n = samples.length;
  return { mean: n === 0 ? NaN : total(sum) / n, detail: verbs(sum, Math.max(n, 1)) };
}

function machineLines(r: BenchResults): string[] {
  const m = r.machine;
  const where = m.lab === "host" ? "this host (its kernel has VRF)" : `lab VM (${m.lab})`;
  const lines = [
    `measured on: ${where}: ${m.cpuModel}, ${m.cores} CPU${m.cores === 1 ? "" : "s"}, ` +
    `${m.memMiB} MiB, kernel ${m.kernel}`,
  ];
  if (m.host) {
    lines.push(
      `  VM host: ${m.host.cpuModel}, ${m.host.cores} CPUs, ${m.host.memMiB} MiB, kernel ${m.host.kernel}`,
    );
  }
  lines.push(
    "  software: " + Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(", "),
  );
  lines.push(...calibrationLines(m));
  const floor = floorAnalysis(r);
  const hw = floor?.hardware;
  if (floor && hw) {
    lines.push(
      `  Deno runtime floor (deno run of an empty module, GNU time, p50): ${
        ms(floor.p50)
      } ms here (interleaved with (1)), ${ms(hw.floor)} ms on the VM host (${
        times(ratio(floor.p50, hw.floor))
      })`,
      "  Go host-device on the VM host (nsenter into a throwaway netns, GNU time, p50): " +
        (hw.goAdd === undefined
          ? "ADD/DEL not measured"
          : `ADD ${ms(hw.goAdd)} ms, DEL ${ms(hw.goDel)} ms`),
    );
  }
  if (m.lab === "vm/tcg") {
    lines.push(
      "  NOTE: TCG emulates the CPU in software: every absolute time here is 10-20× (deno start-up",
      "  and module loading far more) slower than on hardware. Compare the ratios, not the ms.",
    );
  } else if (m.lab === "vm/kvm") {
    lines.push("  NOTE: measured in a KVM guest; absolute times include virtualisation overhead.");
  }
  return lines;
}

function calibrationLines(m: MachineInfo): string[] {
  const here = m.calibration?.here;
  const host = m.calibration?.host;
  if (!here) return [];
  const g = median(here.galactic);
  const o = median(here.go);
  const runs = here.galactic.length;
  if (!host || m.lab === "host") {
    return [
      `  start-up (CNI VERSION, exec → exit, p50 of ${runs}): galactic ${
        ms(g)
      } ms, Go host-device ${ms(o)} ms`,
    ];
  }
  const hg = median(host.galactic);
  const ho = median(host.go);
  const slowG = ratio(g, hg);
  const slowO = ratio(o, ho);
  const lines = [
    `  start-up calibration (CNI VERSION, exec → exit, p50 of ${runs}): galactic ${
      ms(g)
    } ms here, ` +
    `${ms(hg)} ms on the VM host (${times(slowG)}); Go host-device ${ms(o)} ms here, ${
      ms(ho)
    } ms ` +
    `on the host (${times(slowO)})`,
  ];
  const skew = ratio(slowG, slowO);
  if (skew !== undefined && skew > 1.2) {
    lines.push(
      `  → emulation slows deno's start-up ${
        times(skew)
      } more than Go's: for start-up-bound work the ` +
        "galactic/Go ratios below",
      `    overstate what hardware would show by up to that factor.`,
    );
  }
  return lines;
}

function sequentialSection(r: BenchResults): string[] {
  const go = r.sequential.find((s) => s.subject === "go");
  const goAdd = summarize(go?.add.ms ?? []);
  const goDel = summarize(go?.del.ms ?? []);
  const rows = [["subject", "n", "ADD p50", "ADD p95", "DEL p50", "DEL p95", "ADD/Go", "DEL/Go"]];
  for (const s of r.sequential) {
    const add = summarize(s.add.ms);
    const del = summarize(s.del.ms);
    const target = s.subject === "go" ? undefined : TARGETS.ratio;
    rows.push([
      NAMES[s.subject],
      String(add?.n ?? 0),
      ms(add?.p50),
      ms(add?.p95),
      ms(del?.p50),
      ms(del?.p95),
      times(ratio(add?.p50, goAdd?.p50), target),
      times(ratio(del?.p50, goDel?.p50), target),
    ]);
  }
  const floor = floorAnalysis(r);
  if (floor) {
    // One sample set for both verbs: the runtime's start-up does not depend on the verb.
    rows.push([
      FLOOR_NAME,
      String(floor.n),
      ms(floor.p50),
      ms(floor.p95),
      ms(floor.p50),
      ms(floor.p95),
      times(floor.add.ratio),
      times(floor.del.ratio),
    ]);
  }
  const lines = [
    `(1) Sequential ADD/DEL pairs: ${r.options.iterations} measured after ${r.options.warmup} warm-up; ` +
    "exec → exit wall time, ms",
    table(rows),
    `  target: galactic p50 ≤ ${TARGETS.ratio}× the Go host-device p50 of the same verb. ` +
    "p95 interpolates between ranks.",
    "  Every exec goes through /usr/bin/time (both sides); the Go side excludes creating the veth.",
  ];
  if (floor) lines.push(...aboveFloorLines(floor));
  return lines;
}

function aboveFloorLines(floor: FloorAnalysis): string[] {
  const lines = [
    "  Deno runtime floor: `deno run` of an empty module with bin/galactic's deno binary and " +
    "flags (no config),",
    "  one exec per iteration before its pairs; the same samples fill the ADD and DEL columns. " +
    "No program on this",
    "  runtime can take less. No target applies to it.",
  ];
  if (floor.above.length === 0) return lines;
  const rows = [["above the floor (p50 − floor p50, ms)", "ADD", "× Go ADD", "DEL", "× Go DEL"]];
  for (const a of floor.above) {
    rows.push([
      `${NAMES[a.mode]} − floor`,
      ms(a.add),
      times(a.addRatio),
      ms(a.del),
      times(a.delRatio),
    ]);
  }
  lines.push(
    table(rows, "    "),
    "    galactic − floor: the sh launcher, loading the module graph and the plugin's own work: " +
      "what the plugin",
    "    adds on top of the runtime's start-up, in ms and in units of the Go p50 of the verb.",
  );
  return lines;
}

function rssSection(r: BenchResults): string[] {
  const rows = [["subject", "ADD p50", "ADD max", "DEL p50", "DEL max", `≤ ${TARGETS.rssMb} MB`]];
  for (const s of r.sequential) {
    const add = summarize(s.add.rssKb);
    const del = summarize(s.del.rssKb);
    const peak = Math.max(add?.max ?? 0, del?.max ?? 0);
    rows.push([
      NAMES[s.subject],
      mb(add?.p50),
      mb(add?.max),
      mb(del?.p50),
      mb(del?.max),
      s.subject === "go" || (!add && !del) ? "" : mark(peak / 1024 <= TARGETS.rssMb).trim(),
    ]);
  }
  const floorRss = summarize(r.floor?.rssKb ?? []);
  if (floorRss) {
    rows.push([
      FLOOR_NAME,
      mb(floorRss.p50),
      mb(floorRss.max),
      mb(floorRss.p50),
      mb(floorRss.max),
      "",
    ]);
  }
  for (const c of r.concurrency) {
    const add = summarize(c.add.rssKb);
    const del = summarize(c.del.rssKb);
    const peak = Math.max(add?.max ?? 0, del?.max ?? 0);
    rows.push([
      `${NAMES[c.mode]}, ${c.n} concurrent`,
      mb(add?.p50),
      mb(add?.max),
      mb(del?.p50),
      mb(del?.max),
      !add && !del ? "" : mark(peak / 1024 <= TARGETS.rssMb).trim(),
    ]);
  }
  const lines = [
    "(2) Peak RSS per plugin process, MB (GNU time %M: the process or the largest of its children)",
    table(rows),
  ];
  if (r.agent.peakRssKb !== undefined) {
    lines.push(
      `  node agent (one long-running process per node, VmHWM over the run): ${
        mb(r.agent.peakRssKb)
      } MB`,
    );
  }
  return lines;
}

function singleAddP50(r: BenchResults, mode: Mode, verb: "add" | "del"): number | undefined {
  return median(r.sequential.find((s) => s.subject === mode)?.[verb].ms ?? []);
}

function concurrencySection(r: BenchResults): string[] {
  if (r.concurrency.length === 0) return [];
  const rows = [[
    "mode",
    "verb",
    "ok",
    "VRFs / tables",
    "wall",
    "proc p50",
    "proc p95",
    "budget",
    "wall/budget",
  ]];
  for (const c of r.concurrency) {
    for (const verb of ["add", "del"] as const) {
      const batch = c[verb];
      const single = singleAddP50(r, c.mode, verb);
      const budget = single === undefined ? undefined : (c.n * single) / 2;
      const procs = summarize(batch.ms);
      rows.push([
        verb === "add" ? NAMES[c.mode] : "",
        verb.toUpperCase(),
        `${batch.ok}/${c.n}${mark(batch.ok === c.n)}`,
        verb === "add"
          ? `${c.vrfsAfterAdd} / ${c.distinctTables}${
            mark(c.vrfsAfterAdd === c.n && c.distinctTables === c.n)
          }`
          : `${c.vrfsAfterDel} left${mark(c.vrfsAfterDel === 0)}`,
        ms(batch.wallMs),
        ms(procs?.p50),
        ms(procs?.p95),
        ms(budget),
        times(ratio(batch.wallMs, budget), 1),
      ]);
    }
  }
  const n = r.concurrency[0]!.n;
  const lines = [
    `(3) ${n} concurrent ADDs on one node (one VPC, ${n} attachments, ${n} pod netns), then ${n} concurrent DELs; ms`,
    table(rows),
    `  budget = ${n} × the sequential p50 of the verb / 2; target: wall ≤ budget. ` +
    `The machine has ${r.machine.cores} CPUs.`,
  ];
  for (const c of r.concurrency) {
    for (const f of c.failures) lines.push(`  ✗ ${NAMES[c.mode]}: ${f}`);
  }
  return lines;
}

function apiSection(r: BenchResults): string[] {
  const rows = [[
    "mode",
    "ADD (lone attachment)",
    "DEL (last of its VPC)",
    "ADD (VPC siblings)",
    "DEL (VPC siblings)",
  ]];
  let any = false;
  for (const s of r.sequential) {
    if (s.subject === "go") continue;
    any = true;
    const add = perInvocation(s.add.api);
    const del = perInvocation(s.del.api);
    const c = r.concurrency.find((x) => x.mode === s.subject);
    const cAdd = c && total(c.add.api) / c.n;
    const cDel = c && total(c.del.api) / c.n;
    rows.push([
      NAMES[s.subject],
      `${fmtCount(add.mean)}${within(add.mean, TARGETS.addRequests)} (${add.detail})`,
      `${fmtCount(del.mean)}${within(del.mean, TARGETS.delRequests)} (${del.detail})`,
      c
        ? `${fmtCount(cAdd!)}${mark(cAdd! <= TARGETS.addRequests)} (${verbs(c.add.api, c.n)})`
        : "—",
      c
        ? `${fmtCount(cDel!)}${mark(cDel! <= TARGETS.delRequests)} (${verbs(c.del.api, c.n)})`
        : "—",
    ]);
  }
  if (!any) return [];
  const lines = [
    "(4) Kubernetes API requests per invocation (counted by the fake API server)",
    table(rows),
    `  target (steady state): ADD ≤ ${TARGETS.addRequests}, DEL ≤ ${TARGETS.delRequests}. "Lone": the ` +
    "sequential pairs, where each ADD is the VPC's first attachment on the node (creates its",
    '  BGPVRFInstance) and each DEL its last (deletes it). "Siblings": the concurrent batch, where',
    "  the VPC's object already exists for all but one ADD and remains for all but one DEL.",
  ];
  const agent = r.sequential.find((s) => s.subject === "agent");
  if (agent) {
    lines.push(
      `  agent mode: plugin fell back to its own API client ${agent.fallbackRequests ?? 0} times ` +
        `(requests on the fallback server); agent requests outside invocations: ` +
        `${verbs(r.agent.backgroundApi ?? {}, 1)}`,
    );
  }
  return lines;
}

function fmtCount(value: number): string {
  return Number.isNaN(value) ? "—" : Number.isInteger(value) ? String(value) : value.toFixed(2);
}

function bar(value: number, max: number, width = 36): string {
  const cells = max <= 0 ? 0 : Math.max(1, Math.round((value / max) * width));
  return "█".repeat(cells);
}

function curveSection(r: BenchResults): string[] {
  if (r.curve.length === 0) return [];
  const modes = [...new Set(r.curve.map((p) => p.mode))];
  const header = ["VRFs = extra BGPInstances", "set-up"];
  for (const mode of modes) header.push(`${NAMES[mode]}: ADD p50`, "×first", "DEL p50", "API/ADD");
  const rows = [header];
  const counts = [...new Set(r.curve.map((p) => p.vrfs))].sort((a, b) => a - b);
  for (const count of counts) {
    const setup = r.curveSetup.find((s) => s.vrfs === count);
    const row = [String(count), ms(setup?.setupMs)];
    for (const mode of modes) {
      const p = r.curve.find((x) => x.mode === mode && x.vrfs === count);
      const first = median(
        r.curve.find((x) => x.mode === mode && x.vrfs === counts[0])?.addMs ?? [],
      );
      const add = median(p?.addMs ?? []);
      row.push(
        ms(add),
        times(ratio(add, first)),
        ms(median(p?.delMs ?? [])),
        p && p.addMs.length ? fmtCount(total(p.addApi) / p.addMs.length) : "—",
      );
    }
    rows.push(row);
  }
  const lines = [
    `(5) ADD cost vs pre-existing VRFs on the node (each with its attachment record) and extra ` +
    `BGPInstances (non-matching selectors); ${r.options.curveIterations} pairs per point, ms`,
    table(rows),
  ];
  const max = Math.max(...r.curve.map((p) => median(p.addMs) ?? 0));
  for (const mode of modes) {
    lines.push(`  ${NAMES[mode]}, ADD p50:`);
    for (const count of counts) {
      const add = median(r.curve.find((x) => x.mode === mode && x.vrfs === count)?.addMs ?? []);
      if (add === undefined) continue;
      lines.push(`    ${String(count).padStart(6)} │${bar(add, max)} ${ms(add)}`);
    }
  }
  for (const p of r.curve) for (const f of p.failures) lines.push(`  ✗ ${f}`);
  return lines;
}

const PHASES: readonly [string, (p: ProfileRun) => number][] = [
  ["launcher: sh → exec deno", (p) => p.launcherMs],
  ["deno start-up, module load, config → 1st command", (p) => p.startupMs],
  ["commands (union of child processes)", (p) => p.commandsMs],
  ["in-process between commands (JS, locks, API)", (p) => p.betweenMs],
  ["after the last command → exit", (p) => p.tailMs],
];

function profileSection(r: BenchResults): string[] {
  if (r.profile.length === 0) return [];
  const keys = [...new Set(r.profile.map((p) => `${p.mode} ${p.verb}`))];
  const runsOf = (key: string): ProfileRun[] =>
    r.profile.filter((p) => `${p.mode} ${p.verb}` === key);
  const header = ["p50, ms", ...keys.map((k) => k.replace("no-agent", "no agent"))];
  const rows = [header];
  const cell = (key: string, pick: (p: ProfileRun) => number): string => {
    const runs = runsOf(key);
    const total = median(runs.map((p) => p.totalMs)) ?? 0;
    const value = median(runs.map(pick));
    return value === undefined ? "—" : `${ms(value)} ${pct(value, total)}`;
  };
  rows.push(["total (exec → exit, under strace)", ...keys.map((k) => cell(k, (p) => p.totalMs))]);
  for (const [name, pick] of PHASES) rows.push([name, ...keys.map((k) => cell(k, pick))]);
  const families = [...new Set(r.profile.flatMap((p) => Object.keys(p.byProgram)))].sort();
  for (const family of families) {
    rows.push([
      `  ${family} (processes)`,
      ...keys.map((k) => {
        const runs = runsOf(k);
        const value = median(runs.map((p) => p.byProgram[family]?.ms ?? 0));
        const count = median(runs.map((p) => p.byProgram[family]?.count ?? 0));
        return value === undefined ? "—" : `${ms(value)} (${count})`;
      }),
    ]);
  }
  rows.push([
    "API requests",
    ...keys.map((k) => String(median(runsOf(k).map((p) => p.apiRequests)) ?? "—")),
  ]);
  const lines = [
    `(6) Where the time goes: strace -f of execve/exit (seccomp-filtered) plus the fake server's ` +
    `request times, ${r.options.profileRuns} traced pair(s) per mode (not in the tables above)`,
    table(rows),
  ];
  for (const key of keys) {
    const runs = runsOf(key);
    const median = [...runs].sort((a, b) =>
      a.totalMs - b.totalMs
    )[Math.floor((runs.length - 1) / 2)];
    if (!median) continue;
    const worst = PHASES.map(([name, pick]) => [name, pick(median)] as const)
      .sort((a, b) => b[1] - a[1])[0]!;
    lines.push(
      `  ${key}: largest share: ${worst[0]} (${
        pct(worst[1], median.totalMs).replace(/[()]/g, "")
      })`,
    );
  }
  for (const key of keys.filter((k) => k.endsWith("ADD"))) {
    const runs = runsOf(key);
    const median = [...runs].sort((a, b) =>
      a.totalMs - b.totalMs
    )[Math.floor((runs.length - 1) / 2)];
    if (!median) continue;
    lines.push(`  timeline of a ${key} (ms from exec; commands with their duration):`);
    for (const e of median.events) {
      const at = e.atMs.toFixed(1).padStart(8);
      const dur = e.ms === undefined ? "" : ` +${ms(e.ms)}`;
      lines.push(
        `    ${at}${dur.padEnd(8)} ${e.kind === "exec" ? "$ " : ""}${e.what}`.slice(0, 130),
      );
    }
    lines.push(`    ${median.totalMs.toFixed(1).padStart(8)}          exit ${median.code}`);
  }
  return lines;
}

function pct(value: number, whole: number): string {
  return whole > 0 ? `(${Math.round((value / whole) * 100)}%)` : "";
}

function failuresSection(r: BenchResults): string[] {
  const lines: string[] = [];
  for (const s of r.sequential) {
    for (const f of s.failures.slice(0, 5)) lines.push(`  ✗ ${NAMES[s.subject]}: ${f}`);
    if (s.failures.length > 5) lines.push(`  … ${s.failures.length - 5} more failures`);
  }
  const floorFailures = r.floor?.failures ?? [];
  for (const f of floorFailures.slice(0, 5)) lines.push(`  ✗ ${f}`);
  if (floorFailures.length > 5) lines.push(`  … ${floorFailures.length - 5} more failures`);
  for (const e of r.errors) lines.push(`  ✗ ${e}`);
  return lines.length > 0 ? ["Failures", ...lines] : [];
}

/** Headline verdicts, one line per target. */
function verdicts(r: BenchResults): string[] {
  const lines: string[] = [];
  const go = r.sequential.find((s) => s.subject === "go");
  for (const s of r.sequential as SequentialResult[]) {
    if (s.subject === "go") continue;
    if (s.add.ms.length === 0 && s.del.ms.length === 0) {
      lines.push(`  ${NAMES[s.subject]}: no measurements`);
      continue;
    }
    const add = ratio(summarize(s.add.ms)?.p50, summarize(go?.add.ms ?? [])?.p50);
    const del = ratio(summarize(s.del.ms)?.p50, summarize(go?.del.ms ?? [])?.p50);
    const rss = Math.max(...s.add.rssKb, ...s.del.rssKb) / 1024;
    const api = perInvocation(s.add.api).mean;
    const apiDel = perInvocation(s.del.api).mean;
    const c: ConcurrencyResult | undefined = r.concurrency.find((x) => x.mode === s.subject);
    const single = singleAddP50(r, s.subject, "add");
    const conc = c && single ? c.add.wallMs / ((c.n * single) / 2) : undefined;
    const siblings = c ? total(c.add.api) / c.n : undefined;
    const siblingsText = siblings === undefined
      ? ""
      : ` (siblings ${fmtCount(siblings)}${within(siblings, TARGETS.addRequests)})`;
    const concurrent = c
      ? `; ${c.n} concurrent ADDs ${times(conc, 1)} of budget, ` +
        (c.add.ok === c.n && c.distinctTables === c.n ? "all ok" : "FAILURES")
      : "";
    lines.push(
      `  ${NAMES[s.subject]}: ADD ${times(add, TARGETS.ratio)} DEL ${
        times(del, TARGETS.ratio)
      } of Go; ` +
        `RSS ${Number.isFinite(rss) ? rss.toFixed(0) : "—"} MB${
          Number.isFinite(rss) ? mark(rss <= TARGETS.rssMb) : ""
        }; ` +
        `API ${fmtCount(api)}/ADD${within(api, TARGETS.addRequests)}${siblingsText} ${
          fmtCount(apiDel)
        }/DEL${within(apiDel, TARGETS.delRequests)}` + concurrent,
    );
  }
  const floor = floorAnalysis(r);
  if (floor) lines.push(...floorVerdict(floor));
  return lines;
}

function andList(items: readonly string[]): string {
  return items.length <= 1
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
}

/** `Go host-device ADD p50 410 ms = 5.85×, DEL p50 300 ms = 8.00×` (verbs with a Go p50). */
function againstGo(
  verbs: readonly (readonly ["ADD" | "DEL", number | undefined, number | undefined])[],
): string {
  const parts = verbs.filter(([, go, q]) => go !== undefined && q !== undefined)
    .map(([verb, go, q]) => `${verb} p50 ${ms(go)} ms = ${times(q)}`);
  return parts.length === 0 ? "" : `Go host-device ${parts.join(", ")}`;
}

/** Verdict lines about the runtime floor: is the latency target reachable at all here? */
export function floorVerdict(floor: FloorAnalysis): string[] {
  const lines: string[] = [];
  const here = againstGo([
    ["ADD", floor.add.go, floor.add.ratio],
    ["DEL", floor.del.go, floor.del.ratio],
  ]);
  const what = `Deno runtime floor (deno run of an empty module) p50 ${ms(floor.p50)} ms`;
  if (here === "") {
    lines.push(`  ${what}; no Go p50 to compare it with (no verdict)`);
  } else if (floor.unreachable.length > 0) {
    lines.push(
      `  latency target (≤ ${TARGETS.ratio}× Go) UNREACHABLE in this environment for ${
        andList(floor.unreachable)
      } by any program on this runtime:`,
      `    ${what} vs ${here}`,
    );
  } else {
    lines.push(
      `  ${what} vs ${here}: the runtime alone is within the ${TARGETS.ratio}× target; the rest ` +
        "is the plugin's (see (1), above the floor)",
    );
  }
  const hw = floor.hardware;
  if (hw) {
    const there = againstGo([["ADD", hw.goAdd, hw.addRatio], ["DEL", hw.goDel, hw.delRatio]]);
    lines.push(
      `    on hardware (the VM host, same commands): floor p50 ${ms(hw.floor)} ms` +
        (there === "" ? "; Go ADD/DEL not measured there" : ` vs ${there}`) +
        (hw.goVersion === undefined ? "" : ` (Go VERSION ${ms(hw.goVersion)} ms)`),
    );
    for (const e of hw.errors) lines.push(`    VM host: ${e}`);
  }
  return lines;
}

/** The whole report. */
export function renderReport(r: BenchResults): string {
  const minutes = (r.wallMs / 60_000).toFixed(1);
  const sections = [
    [
      `galactic benchmark (deno task bench${r.options.quick ? " --quick" : ""}), ${r.startedAt}, ` +
      `${minutes} min`,
      ...machineLines(r),
      `  fake Kubernetes API server in the node netns, ${r.options.apiDelayMs} ms injected per ` +
      `request; plugin: ${String(r.setup.plugin)}, api_timeout_seconds ${
        String(r.setup.apiTimeoutSeconds)
      }`,
      `  node agent: ${
        r.agent.available
          ? `running (socket up ${ms(r.agent.startMs)}${
            (r.agent.startMs ?? 0) < 10_000 ? " ms" : ""
          } after spawn)`
          : `not measured: ${r.agent.reason ?? "unavailable"}`
      }`,
    ],
    sequentialSection(r),
    rssSection(r),
    concurrencySection(r),
    apiSection(r),
    curveSection(r),
    profileSection(r),
    ["Verdicts (✓ target met, ✗ missed)", ...verdicts(r)],
    failuresSection(r),
    r.notes.map((n) => `note: ${n}`),
  ];
  return sections.filter((s) => s.length > 0).map((s) => s.join("\n")).join("\n\n") + "\n";
}
