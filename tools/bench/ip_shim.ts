/**
 * Host mode's substitute for the VRF steps, on kernels without VRF devices:
 * `ip` and `sysctl` shims first on the plugin's PATH. Everything else they
 * pass to the real programs untouched, so every other step stays real.
 *
 * - `ip`: in a batch (stdin) `type vrf table T` becomes
 *   `type bridge` (a device the veth can be enslaved to, like a VRF) and
 *   `End.DT46 vrftable T` becomes `End.DT6 table T` (the seg6local action
 *   this kernel accepts without VRF); the same rewrite in argv otherwise.
 * - `sysctl`: `net.vrf.strict_mode=1` (the VRF module's key) succeeds without
 *   doing anything.
 *
 * Each call appends one letter to a calls file (`b` batch, `a` argv, `s`
 * sysctl), and {@linkcode measureShimCost} times each form against the real
 * program in the same run (wall and CPU time), so the report can show — and
 * subtract — what the substitute itself costs per invocation.
 *
 * @module
 */

import { summarize } from "./stats.ts";
import { timedExec } from "./timed_exec.ts";

/** The forms a shim call takes, by the letter it logs. */
export type ShimForm = "b" | "a" | "s";

/** Per-call overhead of each form (shim p50 − real p50), ms. */
export type ShimCost = Record<ShimForm, number>;

/** Where the shims and the real programs are. */
export interface Shim {
  /** Directory to put first on the plugin's PATH. */
  readonly dir: string;
  /** The calls file. */
  readonly calls: string;
  /** The real `ip` and `sysctl`. */
  readonly ip: string;
  readonly sysctl: string;
}

/** Shell-quotes `text` in single quotes. */
function quote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The `ip` shim script. bash, so that the rewrite needs no other program:
 * the batch is rewritten by a forked subshell (no exec), and the shim's own
 * process execs the real `ip` — one process in a trace, like a real call.
 */
export function ipShimScript(shim: Shim): string {
  return `#!/bin/bash
# galactic bench, host mode: VRF steps on a kernel without VRF (tools/bench/ip_shim.ts)
rewrite() {
  local line re='^(.*) type vrf table [0-9]+(.*)$'
  while IFS= read -r line || [[ -n $line ]]; do
    [[ $line =~ $re ]] && line="\${BASH_REMATCH[1]} type bridge\${BASH_REMATCH[2]}"
    printf '%s\\n' "\${line/ End.DT46 vrftable / End.DT6 table }"
  done
}
if [[ " $* " == *" -batch "* ]]; then
  printf b >>${quote(shim.calls)}
  exec ${quote(shim.ip)} "$@" < <(rewrite)
fi
printf a >>${quote(shim.calls)}
args=()
for arg; do
  case $arg in End.DT46) arg=End.DT6 ;; vrftable) arg=table ;; esac
  args+=("$arg")
done
exec ${quote(shim.ip)} "\${args[@]}"
`;
}

/** The `sysctl` shim script. */
export function sysctlShimScript(shim: Shim): string {
  return `#!/bin/sh
# galactic bench, host mode: no net.vrf.strict_mode without VRF (tools/bench/ip_shim.ts)
printf s >>${quote(shim.calls)}
case " $* " in *" net.vrf.strict_mode=1 "*) exit 0 ;; esac
exec ${quote(shim.sysctl)} "$@"
`;
}

/** The first `name` on `path` (a PATH value), or undefined. */
export async function which(name: string, path: string): Promise<string | undefined> {
  for (const dir of path.split(":")) {
    const info = await Deno.stat(`${dir}/${name}`).catch(() => undefined);
    if (info?.isFile && (info.mode ?? 0) & 0o111) return `${dir}/${name}`;
  }
  return undefined;
}

/** Writes both shims into `dir`. */
export async function installShim(dir: string, path: string): Promise<Shim> {
  const ip = await which("ip", path);
  const sysctl = await which("sysctl", path);
  if (!ip || !sysctl) throw new Error(`ip or sysctl not found on ${path}`);
  const shim = { dir, calls: `${dir}/calls`, ip, sysctl };
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(`${dir}/ip`, ipShimScript(shim), { mode: 0o755 });
  await Deno.writeTextFile(`${dir}/sysctl`, sysctlShimScript(shim), { mode: 0o755 });
  await Deno.writeTextFile(shim.calls, "");
  return shim;
}

/** Reads and empties the calls file: how many calls of each form since the last take. */
export async function takeCalls(shim: Shim): Promise<Record<ShimForm, number>> {
  const text = await Deno.readTextFile(shim.calls).catch(() => "");
  await Deno.writeTextFile(shim.calls, "");
  return countCalls(text);
}

/** Counts the letters of a calls file. */
export function countCalls(text: string): Record<ShimForm, number> {
  const counts = { b: 0, a: 0, s: 0 };
  for (const letter of text) if (letter in counts) counts[letter as ShimForm]++;
  return counts;
}

/** What the shim added to one invocation, ms. */
export function shimMs(calls: Record<ShimForm, number>, cost: ShimCost): number {
  return calls.b * cost.b + calls.a * cost.a + calls.s * cost.s;
}

/**
 * Times each form through the shim and directly, interleaved, `rounds` times
 * (after one unmeasured round), with read-only commands; returns the p50
 * differences (never below 0) of wall time (`cost`) and of CPU time (`cpu`),
 * and the raw p50s.
 */
export async function measureShimCost(
  shim: Shim,
  rounds: number,
): Promise<{ cost: ShimCost; cpu: ShimCost; p50: Record<string, number> }> {
  const env = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };
  const forms: [ShimForm, string, string[], string][] = [
    ["b", "ip", ["-json", "-batch", "-"], "link show dev lo\nlink show dev lo\n"],
    ["a", "ip", ["-6", "route", "show", "table", "main"], ""],
    ["s", "sysctl", ["-q", "-n", "net.ipv4.conf.lo.forwarding"], ""],
  ];
  const samples: Record<string, number[]> = {};
  const cpuSamples: Record<string, number[]> = {};
  for (let round = 0; round <= rounds; round++) {
    for (const [form, program, args, stdin] of forms) {
      const real = program === "ip" ? shim.ip : shim.sysctl;
      for (
        const [key, argv] of [[`${form} real`, real], [`${form} shim`, `${shim.dir}/${program}`]]
      ) {
        const rssFile = `${shim.dir}/cost.time`;
        const out = await timedExec([argv!, ...args], { env, stdin, rssFile });
        if (out.code !== 0) {
          throw new Error(`shim cost: ${argv} ${args.join(" ")}: exit ${out.code}`);
        }
        if (round > 0) (samples[key!] ??= []).push(out.ms);
        if (round > 0 && out.cpuMs !== undefined) (cpuSamples[key!] ??= []).push(out.cpuMs);
      }
    }
  }
  await Deno.writeTextFile(shim.calls, "");
  const p50 = Object.fromEntries(
    Object.entries(samples).map(([key, values]) => [key, summarize(values)!.p50]),
  );
  const cpuP50 = (key: string): number => summarize(cpuSamples[key] ?? [])?.p50 ?? 0;
  const diff = (form: ShimForm): number => Math.max(0, p50[`${form} shim`]! - p50[`${form} real`]!);
  const cpuDiff = (form: ShimForm): number =>
    Math.max(0, cpuP50(`${form} shim`) - cpuP50(`${form} real`));
  return {
    cost: { b: diff("b"), a: diff("a"), s: diff("s") },
    cpu: { b: cpuDiff("b"), a: cpuDiff("a"), s: cpuDiff("s") },
    p50,
  };
}
