/**
 * The printed report: the machine and its load, the VRF substitute's cost,
 * the table of the pairs with ratios to both floors and the targets of
 * issue 17, then where an ADD and a DEL spend their time.
 *
 * @module
 */

import type { ProfileRun } from "./profile.ts";
import type { BenchResults, Subject, SubjectResult, VerbSamples } from "./results.ts";
import { summarize } from "./stats.ts";

/** Targets of issue 17 (agent mode, medians of one run). */
export const TARGETS = { overGo: 3.0, overFloor: 1.2, rssMb: 64, addApi: 2, delApi: 1 } as const;

const NAMES: Record<Subject, string> = {
  go: "Go host-device + static",
  floor: "minimal Deno plugin (veth + host-device)",
  agent: "galactic through the node agent",
  "no-agent": "galactic without the agent",
  compare: "--compare checkout through the agent",
};

function isGalactic(subject: Subject): boolean {
  return subject !== "go" && subject !== "floor";
}

function ms(value: number | undefined): string {
  if (value === undefined) return "—";
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function times(value: number | undefined, target?: number): string {
  if (value === undefined || !Number.isFinite(value)) return "—";
  const mark = target === undefined ? "" : value <= target ? " ✓" : " ✗";
  return `${value.toFixed(1)}×${mark}`;
}

/** Renders rows as aligned columns; the first left-aligned, the rest right-aligned. */
export function table(rows: readonly (readonly string[])[], indent = "  "): string {
  const widths: number[] = [];
  for (const row of rows) {
    row.forEach((c, i) => widths[i] = Math.max(widths[i] ?? 0, [...c].length));
  }
  return rows.map((row) =>
    indent + row.map((cell, i) => {
      const pad = " ".repeat((widths[i] ?? 0) - [...cell].length);
      return i === 0 ? cell + pad : pad + cell;
    }).join("   ").trimEnd()
  ).join("\n");
}

/** Wall times of a verb with the substitute's share taken out of each sample. */
export function withoutShim(samples: VerbSamples): number[] {
  return samples.ms.map((v, i) => v - (samples.shimMs[i] ?? 0));
}

/** One table row: a label and the verbs' samples (raw, or with the substitute taken out). */
interface Row {
  readonly label: string;
  readonly subject: Subject;
  readonly add: number[];
  readonly del: number[];
  readonly result: SubjectResult;
}

function rows(r: BenchResults): Row[] {
  const out: Row[] = [];
  for (const result of r.subjects) {
    const base = { subject: result.subject, result };
    out.push({ ...base, label: NAMES[result.subject], add: result.add.ms, del: result.del.ms });
    if (r.vrf === "shim" && isGalactic(result.subject)) {
      out.push({
        ...base,
        label: "  − the VRF substitute's cost",
        add: withoutShim(result.add),
        del: withoutShim(result.del),
      });
    }
  }
  return out;
}

/** The pairs table: p50/p90, RSS, API requests and both ratios, from one run. */
export function pairsTable(r: BenchResults): string {
  const p50 = (subject: Subject, verb: "add" | "del"): number | undefined =>
    summarize(r.subjects.find((s) => s.subject === subject)?.[verb].ms ?? [])?.p50;
  const go = { add: p50("go", "add"), del: p50("go", "del") };
  const floor = { add: p50("floor", "add"), del: p50("floor", "del") };
  const lines: string[][] = [[
    "subject",
    "ADD p50",
    "p90",
    "DEL p50",
    "p90",
    "peak RSS MB",
    "API ADD/DEL",
    "ADD ×Go",
    "DEL ×Go",
    "ADD ×floor",
    "DEL ×floor",
  ]];
  for (const row of rows(r)) {
    const add = summarize(row.add);
    const del = summarize(row.del);
    const rss = summarize([...row.result.add.rssKb, ...row.result.del.rssKb]);
    const galactic = isGalactic(row.subject);
    const target = row.subject === "agent";
    const api = (v: VerbSamples): string => String(summarize(v.api)?.p50 ?? "—");
    lines.push([
      row.label,
      ms(add?.p50),
      ms(add?.p90),
      ms(del?.p50),
      ms(del?.p90),
      rss
        ? `${(rss.max / 1024).toFixed(0)}${
          target ? (rss.max / 1024 <= TARGETS.rssMb ? " ✓" : " ✗") : ""
        }`
        : "—",
      galactic ? `${api(row.result.add)} / ${api(row.result.del)}` : "–",
      row.subject === "go"
        ? "1.0×"
        : times(ratio(add?.p50, go.add), target ? TARGETS.overGo : undefined),
      row.subject === "go"
        ? "1.0×"
        : times(ratio(del?.p50, go.del), target ? TARGETS.overGo : undefined),
      row.subject === "go"
        ? ""
        : times(ratio(add?.p50, floor.add), target ? TARGETS.overFloor : undefined),
      row.subject === "go"
        ? ""
        : times(ratio(del?.p50, floor.del), target ? TARGETS.overFloor : undefined),
    ]);
  }
  return table(lines);
}

function ratio(value: number | undefined, base: number | undefined): number | undefined {
  return value === undefined || !base ? undefined : value / base;
}

/**
 * CPU time per invocation (the plugin and every process it waited for): on
 * a machine others load, wall times stretch with the load while CPU time
 * does not, so its ratios show the work each subject does. Subjects through
 * the agent also show the agent's CPU time per invocation (a DEL's includes
 * the removal it handed over).
 */
export function cpuTable(r: BenchResults): string | undefined {
  const p50 = (s: SubjectResult | undefined, verb: "add" | "del"): number | undefined =>
    summarize(s?.[verb].cpuMs ?? [])?.p50;
  const floor = r.subjects.find((s) => s.subject === "floor");
  if (p50(floor, "add") === undefined) return undefined;
  const agentCpu = (s: SubjectResult, verb: "add" | "del"): string =>
    ms(summarize(s[verb].agentCpuMs)?.p50);
  const withAgent = r.subjects.some((s) => s.del.agentCpuMs.length > 0);
  const lines: string[][] = [[
    "subject",
    "ADD CPU",
    "DEL CPU",
    "ADD ×floor",
    "DEL ×floor",
    ...(withAgent ? ["agent per ADD", "agent per DEL"] : []),
  ]];
  const row = (label: string, s: SubjectResult, add?: number, del?: number): void => {
    lines.push([
      label,
      ms(add),
      ms(del),
      s.subject === "go" ? "" : times(ratio(add, p50(floor, "add"))),
      s.subject === "go" ? "" : times(ratio(del, p50(floor, "del"))),
      ...(withAgent && label === NAMES[s.subject] && s.del.agentCpuMs.length > 0
        ? [agentCpu(s, "add"), agentCpu(s, "del")]
        : []),
    ]);
  };
  const without = (s: SubjectResult, verb: "add" | "del"): number | undefined =>
    summarize(s[verb].cpuMs.map((v, i) => v - (s[verb].shimCpuMs[i] ?? 0)))?.p50;
  for (const s of r.subjects) {
    row(NAMES[s.subject], s, p50(s, "add"), p50(s, "del"));
    if (r.vrf === "shim" && isGalactic(s.subject) && r.shim?.cpu) {
      row("  − the VRF substitute's cost", s, without(s, "add"), without(s, "del"));
    }
  }
  return table(lines);
}

/**
 * What DEL left to the node agent: how long after the DEL's exit the node
 * was clean, the agent's CPU per DEL (p50 and mean: the mean carries the
 * occasional sweep or watch event), and the removals it reported finishing.
 * Undefined without an agent.
 */
export function agentShare(r: BenchResults): string | undefined {
  const mine = r.subjects.find((s) => s.subject === "agent");
  if (!r.agent || !mine) return undefined;
  const mean = (values: readonly number[]): string =>
    values.length === 0 ? "—" : ms(values.reduce((a, b) => a + b, 0) / values.length);
  const cpu = (s: SubjectResult): string =>
    `${ms(summarize(s.del.agentCpuMs)?.p50)} ms (mean ${mean(s.del.agentCpuMs)})`;
  const other = r.subjects.find((s) => s.subject === "compare");
  const removal = summarize(mine.del.removalMs);
  const outcomes = Object.entries(r.agent.removals ?? {}).map(([k, v]) => `${k} ${v}`);
  return `the node agent's share of DEL (${
    r.agent.cpuSource === "proc" ? "its and its children's CPU in 10 ms ticks" : "its cgroup"
  }): CPU per DEL ${cpu(mine)}` +
    (other ? `, with --compare ${cpu(other)}` : "") +
    `; node clean ${ms(removal?.p50)} ms (p90 ${ms(removal?.p90)}) after the DEL's exit; ` +
    `removals it finished: ${outcomes.length > 0 ? outcomes.join(", ") : "none"}`;
}

/** Medians of the profiled runs of one mode and verb, phase by phase. */
export function breakdownTable(profiles: readonly ProfileRun[]): string {
  const lines: string[][] = [[
    "mode verb",
    "total",
    "launcher",
    "start-up",
    "in children",
    "between",
    "tail",
    "API",
    "per program (processes, ms covered)",
  ]];
  const groups = new Map<string, ProfileRun[]>();
  for (const p of profiles) {
    groups.set(`${p.mode} ${p.verb}`, [...groups.get(`${p.mode} ${p.verb}`) ?? [], p]);
  }
  for (const [key, runs] of groups) {
    const med = (pick: (p: ProfileRun) => number): string => ms(summarize(runs.map(pick))?.p50);
    const programs = [...new Set(runs.flatMap((p) => Object.keys(p.byProgram)))].sort();
    lines.push([
      key,
      med((p) => p.totalMs),
      med((p) => p.launcherMs),
      med((p) => p.startupMs),
      med((p) => p.commandsMs),
      med((p) => p.betweenMs),
      med((p) => p.tailMs),
      med((p) => p.apiRequests),
      programs.map((name) =>
        `${name} ${summarize(runs.map((p) => p.byProgram[name]?.count ?? 0))!.p50}× ` +
        med((p) => p.byProgram[name]?.ms ?? 0)
      ).join(", "),
    ]);
  }
  return table(lines);
}

/** The timeline of one profiled invocation (ms from the exec of bin/galactic). */
export function timeline(p: ProfileRun): string {
  return p.events.map((e) =>
    `    ${e.atMs.toFixed(1).padStart(7)}  ${
      e.ms === undefined ? "      " : `${e.ms.toFixed(1).padStart(5)} `
    } ${e.what}`
  ).join("\n");
}

/**
 * `--compare` against this checkout's agent mode, round by round: the two ran
 * back to back in each round, so the per-round ratio cancels most of the
 * load others put on the machine. Undefined without `--compare`.
 */
export function comparePaired(r: BenchResults): string | undefined {
  const mine = r.subjects.find((s) => s.subject === "agent");
  const other = r.subjects.find((s) => s.subject === "compare");
  if (!mine || !other) return undefined;
  // Samples are kept for rounds whose ADD and DEL both succeeded: a failure would shift the pairs.
  if (mine.failures.length + other.failures.length > 0) {
    return "--compare: no per-round ratio (a round failed, so the rounds do not pair up)";
  }
  const verbs = (["add", "del"] as const).map((verb) => {
    const n = Math.min(mine[verb].ms.length, other[verb].ms.length);
    const ratios = Array.from({ length: n }, (_, i) => other[verb].ms[i]! / mine[verb].ms[i]!);
    const faster = ratios.filter((x) => x < 1).length;
    return `${verb.toUpperCase()} ×${summarize(ratios)?.p50.toFixed(2) ?? "—"} ` +
      `(the checkout faster in ${faster} of ${n} rounds)`;
  });
  return `--compare checkout / this checkout, per round (median): ${verbs.join(", ")}`;
}

/** The whole report. */
export function renderReport(r: BenchResults): string {
  const m = r.machine;
  const load = (l: number[] | undefined): string => l?.map((v) => v.toFixed(2)).join(" ") ?? "—";
  const busy = Math.max(r.load.before[0] ?? 0, r.load.after?.[0] ?? 0) > m.cores;
  const out = [
    `galactic bench, ${r.startedAt}, ${(r.wallMs / 1000).toFixed(0)} s`,
    `machine: ${m.cpuModel}, ${m.cores} CPUs, ${m.memMiB} MiB, kernel ${m.kernel}, ${m.where}` +
    (m.where === "vm/tcg" ? " (emulated CPU: times 10–100× hardware, ratios overstated)" : ""),
    `load average (1/5/15 min): before ${load(r.load.before)}, after ${load(r.load.after)}` +
    (busy
      ? " — more runnable work than CPUs: absolute times are noisy, interleaved ratios less so"
      : ""),
    `versions: ${Object.entries(m.versions).map(([k, v]) => `${k} ${v}`).join(", ")}`,
  ];
  if (r.vrf === "shim" && r.shim) {
    const c = r.shim.cost;
    const perVerb = (verb: "add" | "del"): string =>
      ms(
        summarize(
          r.subjects.find((s) => s.subject === "agent" || s.subject === "no-agent")?.[verb]
            .shimMs ?? [],
        )?.p50,
      );
    out.push(
      `VRF: substitute (host mode: bridge for the VRF device, End.DT6 table for End.DT46 vrftable, ` +
        `strict_mode skipped); its cost per call, measured in this run: ip batch +${ms(c.b)} ms, ` +
        `ip argv +${ms(c.a)} ms, sysctl +${ms(c.s)} ms; per galactic ADD ${perVerb("add")} ms, ` +
        `DEL ${perVerb("del")} ms (taken out in the "−" rows)` +
        (r.shim.cpu
          ? `; CPU per call: ip batch +${ms(r.shim.cpu.b)} ms, ip argv +${ms(r.shim.cpu.a)} ms, ` +
            `sysctl +${ms(r.shim.cpu.s)} ms`
          : ""),
    );
  } else {
    out.push("VRF: the kernel's own devices");
  }
  const n = summarize(r.subjects[0]?.add.ms ?? [])?.n ?? 0;
  out.push(
    "",
    `ADD/DEL, ${n} interleaved pairs per subject, each in a fresh pod netns (exec to exit, ms; ` +
      `✓/✗: issue 17's targets for agent mode)`,
    pairsTable(r),
  );
  const paired = comparePaired(r);
  if (paired) out.push(paired);
  const cpu = cpuTable(r);
  if (cpu) {
    out.push(
      "",
      "CPU time per invocation, p50 (user + system of the plugin and every process it waited for, " +
        `ms; in host mode the "−" row takes the substitute's shells out)`,
      cpu,
    );
  }
  const share = agentShare(r);
  if (share) out.push(share);
  const fallback = r.subjects.find((s) => s.subject === "agent")?.fallbackRequests ?? 0;
  if (r.agent) {
    out.push(
      `agent: ready after ${
        ms(r.agent.startMs)
      } ms (${r.agent.backgroundApi} requests to get ready), ` +
        `peak RSS ${
          r.agent.peakRssKb === undefined ? "—" : (r.agent.peakRssKb / 1024).toFixed(0)
        } MB; ` +
        `agent-mode plugin requests to the fallback server: ${fallback}${
          fallback > 0 ? " ✗ (it fell back)" : ""
        }`,
    );
  }
  for (const s of r.subjects) {
    for (const f of s.failures.slice(0, 5)) out.push(`failed: ${s.subject} ${f}`);
  }
  if (r.profile.length > 0) {
    out.push("", "where the time goes (strace of execve; medians, ms):", breakdownTable(r.profile));
    for (const verb of ["ADD", "DEL"]) {
      const last = r.profile.findLast((p) => p.mode === "agent" && p.verb === verb) ??
        r.profile.findLast((p) => p.verb === verb);
      if (last) {
        out.push(`  timeline of one ${last.mode} ${verb} (at, duration, what):`, timeline(last));
      }
    }
  }
  for (const e of r.errors) out.push(`error: ${e}`);
  return out.join("\n");
}
