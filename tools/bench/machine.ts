/**
 * The machine a benchmark ran on: CPU, cores, memory, kernel, whether it was
 * the host or the lab VM (and which accelerator), and software versions.
 *
 * @module
 */

import type { Calibration } from "./calibrate.ts";
import { run } from "./exec.ts";

/** CPU, memory and kernel of one machine. */
export interface Hardware {
  /** `model name` from /proc/cpuinfo. */
  readonly cpuModel: string;
  /** Online CPUs. */
  readonly cores: number;
  /** MemTotal, MiB. */
  readonly memMiB: number;
  /** Kernel release. */
  readonly kernel: string;
}

/** What the invoking process knows about the machine that starts the lab. */
export interface HostInfo extends Hardware {
  /** Versions of Debian packages (the VM sees the host's /usr, not its dpkg database). */
  readonly packages: Record<string, string>;
  /** Start-up calibration on the host. */
  readonly calibration?: Calibration;
}

/** Where and with what the numbers were measured. */
export interface MachineInfo extends Hardware {
  /** `host`, `vm/tcg` (software CPU emulation) or `vm/kvm`. */
  readonly lab: "host" | "vm/tcg" | "vm/kvm";
  /** The machine that started the lab VM, when measured in one. */
  readonly host?: Hardware;
  /** Start-up calibration here and, when measured in a VM, on its host. */
  readonly calibration?: { readonly here: Calibration; readonly host?: Calibration };
  /** Software versions. */
  readonly versions: Record<string, string>;
}

async function readText(path: string): Promise<string> {
  return await Deno.readTextFile(path).catch(() => "");
}

/** This machine's hardware. */
export async function hardware(): Promise<Hardware> {
  const cpuinfo = await readText("/proc/cpuinfo");
  const meminfo = await readText("/proc/meminfo");
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const memKb = Number(/^MemTotal:\s*(\d+)/m.exec(meminfo)?.[1] ?? 0);
  return {
    cpuModel,
    cores: navigator.hardwareConcurrency,
    memMiB: Math.round(memKb / 1024),
    kernel: Deno.osRelease(),
  };
}

async function firstLine(argv: string[], env?: Record<string, string>): Promise<string> {
  const out = await run(argv, env ? { env } : {});
  return (out.stdout.trim() || out.stderr.trim()).split("\n")[0]?.trim() || "?";
}

/** Installed version of a Debian package, or undefined. */
export async function packageVersion(pkg: string): Promise<string | undefined> {
  const out = await run(["dpkg-query", "-W", "-f=${Version}", pkg]);
  return out.code === 0 && out.stdout.trim() !== "" ? out.stdout.trim() : undefined;
}

/** The machine as seen from inside the lab (or on a host with VRF). */
export async function machineInfo(
  options: { repo: string; host?: HostInfo },
): Promise<MachineInfo> {
  const hw = await hardware();
  const inVm = Deno.env.get("LAB_MODE") === "vm";
  const lab = !inVm ? "host" : /TCG/i.test(hw.cpuModel) ? "vm/tcg" : "vm/kvm";
  const [galactic, iproute2, plugins] = await Promise.all([
    firstLine([`${options.repo}/bin/galactic`, "version"]),
    firstLine(["ip", "-V"]),
    packageVersion("containernetworking-plugins"),
  ]);
  const host = options.host;
  return {
    ...hw,
    lab,
    ...(inVm && host && {
      host: {
        cpuModel: host.cpuModel,
        cores: host.cores,
        memMiB: host.memMiB,
        kernel: host.kernel,
      },
    }),
    versions: {
      deno: Deno.version.deno,
      galactic: galactic.replace(/^version\s+/, ""),
      iproute2: iproute2.replace(/^ip utility, /, "").replace(/, libbpf.*$/, ""),
      "containernetworking-plugins": plugins ?? host?.packages["containernetworking-plugins"] ??
        "?",
    },
  };
}
