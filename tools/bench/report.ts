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

function machineLines(m: MachineInfo): string[] {
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
  return [
    `(1) Sequential ADD/DEL pairs: ${r.options.iterations} measured after ${r.options.warmup} warm-up; ` +
    "exec → exit wall time, ms",
    table(rows),
    `  target: galactic p50 ≤ ${TARGETS.ratio}× the Go host-device p50 of the same verb. ` +
    "p95 interpolates between ranks.",
    "  Every exec goes through /usr/bin/time (both sides); the Go side excludes creating the veth.",
  ];
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
  return lines;
}

/** The whole report. */
export function renderReport(r: BenchResults): string {
  const minutes = (r.wallMs / 60_000).toFixed(1);
  const sections = [
    [
      `galactic benchmark (deno task bench${r.options.quick ? " --quick" : ""}), ${r.startedAt}, ` +
      `${minutes} min`,
      ...machineLines(r.machine),
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
