/**
 * The machine a run measured: CPU, cores, memory, kernel, whether it was
 * hardware or the lab VM (TCG emulates the CPU: times one to two orders of
 * magnitude above hardware), the load, and the software versions.
 *
 * @module
 */

import { systemRunner } from "../../lib/iproute2/runner.ts";

/** Where and with what the numbers were measured. */
export interface Machine {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memMiB: number;
  readonly kernel: string;
  /** `host` (hardware), `vm/tcg` (software CPU emulation) or `vm/kvm`. */
  readonly where: "host" | "vm/tcg" | "vm/kvm";
  readonly versions: Record<string, string>;
}

async function firstLine(argv: string[]): Promise<string> {
  const out = await systemRunner().run(argv).catch(() => ({ stdout: "", stderr: "?" }));
  return (out.stdout.trim() || out.stderr.trim()).split("\n")[0]?.trim() || "?";
}

/** 1-, 5- and 15-minute load averages. */
export async function loadAverage(): Promise<number[]> {
  const text = await Deno.readTextFile("/proc/loadavg").catch(() => "");
  return text.split(" ").slice(0, 3).map(Number).filter(Number.isFinite);
}

/** This machine. */
export async function machine(repo: string): Promise<Machine> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const inVm = Deno.env.get("LAB_MODE") === "vm";
  const [galactic, iproute2, plugins] = await Promise.all([
    firstLine([`${repo}/bin/galactic`, "version"]),
    firstLine(["ip", "-V"]),
    firstLine(["dpkg-query", "-W", "-f=${Version}", "containernetworking-plugins"]),
  ]);
  return {
    cpuModel,
    cores: navigator.hardwareConcurrency,
    memMiB: Math.round(Number(/^MemTotal:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0) / 1024),
    kernel: Deno.osRelease(),
    where: !inVm ? "host" : /TCG/i.test(cpuModel) ? "vm/tcg" : "vm/kvm",
    versions: {
      deno: Deno.version.deno,
      galactic: galactic.replace(/^version\s+/, ""),
      iproute2: iproute2.replace(/^ip utility, /, "").replace(/, libbpf.*$/, ""),
      "containernetworking-plugins": plugins,
    },
  };
}
