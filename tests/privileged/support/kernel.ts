/**
 * Helpers of the privileged suites: running commands, throwaway network
 * namespaces ("nodes" and "pods"), what this kernel can do, and a ledger of
 * what ran for real and what was skipped.
 *
 * Every name a suite creates carries the test process's pid, so parallel
 * runs never clash, and everything is removed in `finally`.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { CommandOutput, CommandRunner, RunOptions } from "../../../lib/iproute2/runner.ts";
import { systemRunner } from "../../../lib/iproute2/runner.ts";

/** Absolute path of the repository. */
export const REPO = new URL("../../..", import.meta.url).pathname.replace(/\/$/, "");

/** Where the standard CNI plugins (host-device, static) are installed. */
export const CNI_PATH = "/usr/lib/cni";

// The suites' own commands include whole plugin processes, which take far
// longer than the plugin's per-command default under the lab's TCG emulation
// (an ADD there runs 4-20 s): the lab's LAB_TIMEOUT bounds them instead.
const hostRunner = systemRunner({ timeoutMs: 20 * 60_000 });

/** Runs argv (never through a shell); a program that cannot start gives code 127. */
export async function run(
  argv: readonly string[],
  options: RunOptions = {},
): Promise<CommandOutput> {
  try {
    return await hostRunner.run(argv, options);
  } catch (error) {
    return { code: 127, stdout: "", stderr: String(error) };
  }
}

/** Runs argv and returns stdout; a non-zero exit fails the test with the command and stderr. */
export async function must(argv: readonly string[], options: RunOptions = {}): Promise<string> {
  const output = await run(argv, options);
  assert.equal(
    output.code,
    0,
    `${argv.join(" ")} failed (exit ${output.code}): ${output.stderr.trim()}`,
  );
  return output.stdout;
}

let counter = 0;

/** A unique, short name: `<prefix><pid>x<n>` (netns names, temp dirs). */
export function uniqueName(prefix: string): string {
  return `${prefix}${Deno.pid}x${++counter}`;
}

/** Why the suites cannot touch the kernel at all here, or null. */
export function rootSkipReason(): string | null {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "needs root (network namespaces)";
  return null;
}

/** What the kernel offers the data plane, probed once in a throwaway netns. */
export interface KernelFeatures {
  /** Kernel release. */
  readonly release: string;
  /** `ip link add … type vrf` works (null) or why not. */
  readonly vrf: string | null;
  /** `seg6local action End.DT6 table T` works (null) or why not. */
  readonly endDt6: string | null;
  /** `seg6local action End.DT46 vrftable T` works (null) or why not. */
  readonly endDt46: string | null;
  /** `encap seg6 mode encap` works (null) or why not. */
  readonly seg6Encap: string | null;
}

let features: Promise<KernelFeatures> | undefined;

/** Probes the kernel once per process (netns, VRF, SRv6 behaviours). */
export function kernelFeatures(): Promise<KernelFeatures> {
  features ??= probeKernel();
  return features;
}

async function probeKernel(): Promise<KernelFeatures> {
  const release = Deno.osRelease();
  const root = rootSkipReason();
  if (root) {
    return { release, vrf: root, endDt6: root, endDt46: root, seg6Encap: root };
  }
  const ns = uniqueName("gprobe");
  const made = await run(["ip", "netns", "add", ns]);
  if (made.code !== 0) {
    const why = `cannot create a netns: ${made.stderr.trim()}`;
    return { release, vrf: why, endDt6: why, endDt46: why, seg6Encap: why };
  }
  const reason = (out: CommandOutput): string | null =>
    out.code === 0 ? null : out.stderr.trim() || `exit ${out.code}`;
  try {
    const ip = (...args: string[]): Promise<CommandOutput> => run(["ip", "-n", ns, ...args]);
    await ip("link", "set", "lo", "up");
    await ip("link", "add", "pa", "type", "veth", "peer", "name", "pb");
    await ip("link", "set", "pa", "up");
    await ip("link", "set", "pb", "up");
    const endDt6 = reason(
      await ip(
        "-6",
        ...["route", "add", "fc00:4242::6/128", "encap", "seg6local", "action", "End.DT6"],
        ...["table", "4242", "dev", "pa"],
      ),
    );
    const seg6Encap = reason(
      await ip(
        ...["route", "add", "10.42.0.0/24", "encap", "seg6", "mode", "encap"],
        ...["segs", "fc00:4242::1", "dev", "pa"],
      ),
    );
    const vrf = reason(await ip("link", "add", "pv", "type", "vrf", "table", "4242"));
    let endDt46: string | null = "needs a VRF device";
    if (vrf === null) {
      await ip("link", "set", "pv", "up");
      await run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.vrf.strict_mode=1"]);
    }
    // Tried even without a VRF: the kernel's refusal is the reason printed.
    endDt46 = reason(
      await ip(
        "-6",
        ...["route", "add", "fc00:4242::46/128", "encap", "seg6local", "action", "End.DT46"],
        ...["vrftable", "4242", "dev", vrf === null ? "pv" : "pa"],
      ),
    );
    return {
      release,
      vrf: vrf === null ? null : `no VRF device (${vrf})`,
      endDt6,
      endDt46,
      seg6Encap,
    };
  } finally {
    await run(["ip", "netns", "del", ns]);
  }
}

/** Why VRF-dependent suites cannot run here (they are then ignored), or null. */
export async function vrfSkipReason(): Promise<string | null> {
  const found = await kernelFeatures();
  if (found.vrf) return `kernel ${found.release}: ${found.vrf}`;
  if (found.endDt46) return `kernel ${found.release}: End.DT46 vrftable: ${found.endDt46}`;
  return null;
}

/** A network namespace created for a test (a "node" or a "pod"). */
export class Netns {
  /** Its name under /run/netns. */
  readonly name: string;

  private constructor(name: string) {
    this.name = name;
  }

  /** The path a CNI runtime passes as `CNI_NETNS`. */
  get path(): string {
    return `/run/netns/${this.name}`;
  }

  /** Creates it with `lo` up. */
  static async create(prefix: string): Promise<Netns> {
    const name = uniqueName(prefix);
    await must(["ip", "netns", "add", name]);
    const ns = new Netns(name);
    await ns.ip("link", "set", "lo", "up");
    return ns;
  }

  /** `ip -n <ns> ARGS`; fails the test on error. */
  ip(...args: string[]): Promise<string> {
    return must(["ip", "-n", this.name, ...args]);
  }

  /** `ip -n <ns> -json ARGS`, parsed. */
  async ipJson<T = Record<string, unknown>[]>(...args: string[]): Promise<T> {
    const out = await this.ip("-json", ...args);
    return JSON.parse(out.trim() === "" ? "[]" : out) as T;
  }

  /** Runs argv inside the netns (`ip netns exec`). */
  exec(argv: readonly string[], options: RunOptions = {}): Promise<CommandOutput> {
    return run(["ip", "netns", "exec", this.name, ...argv], options);
  }

  /** Runs argv inside the netns; fails the test on error. */
  mustExec(argv: readonly string[], options: RunOptions = {}): Promise<string> {
    return must(["ip", "netns", "exec", this.name, ...argv], options);
  }

  /** Reads a sysctl in this netns; undefined when the key does not exist. */
  async sysctl(key: string): Promise<string | undefined> {
    const out = await this.exec(["sysctl", "-n", key]);
    return out.code === 0 ? out.stdout.trim() : undefined;
  }

  /** Sets sysctls in this netns. */
  async setSysctl(values: Record<string, string>): Promise<void> {
    const pairs = Object.entries(values).map(([k, v]) => `${k}=${v}`);
    await this.mustExec(["sysctl", "-q", "-w", ...pairs]);
  }

  /** Names of every link in the netns. */
  async linkNames(): Promise<string[]> {
    const links = await this.ipJson<{ ifname: string }[]>("link", "show");
    return links.map((l) => l.ifname).sort();
  }

  /** `ip -d -json link show dev NAME`, or undefined when it does not exist. */
  async link(name: string): Promise<IpLinkJson | undefined> {
    const out = await run(["ip", "-n", this.name, "-d", "-json", "link", "show", "dev", name]);
    if (out.code !== 0) return undefined;
    return (JSON.parse(out.stdout) as IpLinkJson[])[0];
  }

  /** Routes of a table, one family (`[]` when the table does not exist). */
  async tableRoutes(family: 4 | 6, table: number | string): Promise<IpRouteJson[]> {
    const out = await run([
      "ip",
      "-n",
      this.name,
      `-${family}`,
      "-d",
      "-json",
      "route",
      "show",
      "table",
      String(table),
    ]);
    if (out.code !== 0 && /FIB table does not exist/.test(out.stderr)) return [];
    assert.equal(out.code, 0, `ip route show table ${table}: ${out.stderr}`);
    return JSON.parse(out.stdout.trim() || "[]") as IpRouteJson[];
  }

  /** FORWARD chain rules (`-S` lines) of iptables or ip6tables. */
  async forwardRules(tool: "iptables" | "ip6tables"): Promise<string[]> {
    const out = await this.mustExec([tool, "-w", "5", "-S", "FORWARD"]);
    return out.split("\n").filter((line) => line.startsWith("-A FORWARD"));
  }

  /** A {@linkcode CommandRunner} whose commands run inside this netns. */
  runner(): CommandRunner {
    return netnsRunner(this.name);
  }

  /** Deletes the netns (moving nothing back: the kernel destroys its veths). */
  async delete(): Promise<void> {
    await run(["ip", "netns", "del", this.name]);
  }
}

/** The fields of `ip -d -json link` the suites read. */
export interface IpLinkJson {
  ifname: string;
  flags?: string[];
  mtu?: number;
  master?: string;
  address?: string;
  operstate?: string;
  link_netnsid?: number;
  linkinfo?: {
    info_kind?: string;
    info_slave_kind?: string;
    info_data?: { table?: number };
  };
}

/** The fields of `ip -d -json route` the suites read. */
export interface IpRouteJson {
  dst: string;
  type?: string;
  dev?: string;
  gateway?: string;
  metric?: number;
  scope?: string;
  flags?: string[];
  encap?: string;
  action?: string;
  vrftable?: number | string;
  table?: number | string;
  protocol?: string;
  segs?: string[];
  mode?: string;
}

/** The plugin's CommandRunner with every argv prefixed by `ip netns exec <ns>`. */
export function netnsRunner(ns: string): CommandRunner {
  return {
    run(argv: readonly string[], options?: RunOptions): Promise<CommandOutput> {
      return hostRunner.run(["ip", "netns", "exec", ns, ...argv], options);
    },
  };
}

/** A temporary directory removed by `using`/`finally`. */
export async function tempDir(prefix: string): Promise<string> {
  return await Deno.makeTempDir({ prefix: `${prefix}${Deno.pid}-` });
}

/** What a suite did against the real kernel, and what it skipped and why. */
export class Ledger {
  readonly #suite: string;
  readonly #ran: string[] = [];
  readonly #skipped: string[] = [];
  readonly #notes: string[] = [];

  /** A ledger for `suite`; its summary is printed when the module unloads. */
  constructor(suite: string) {
    this.#suite = suite;
    globalThis.addEventListener("unload", () => this.print());
  }

  /** Records an assertion that was checked against the real kernel. */
  ran(what: string): void {
    this.#ran.push(what);
  }

  /** Records something not exercised here, and why. */
  skipped(what: string, why: string): void {
    this.#skipped.push(`${what}: ${why}`);
  }

  /** Records a fact about this machine (e.g. a kernel probe's answer). */
  note(what: string): void {
    this.#notes.push(what);
  }

  /** Prints the summary on stderr. */
  print(): void {
    const lines = [
      `--- ${this.#suite}: ${this.#ran.length} check(s) ran against kernel ${Deno.osRelease()}, ` +
      `${this.#skipped.length} skipped`,
      ...this.#notes.map((what) => `  note:    ${what}`),
      ...this.#ran.map((what) => `  ran:     ${what}`),
      ...this.#skipped.map((what) => `  skipped: ${what}`),
    ];
    console.error(lines.join("\n"));
  }
}

/** Polls `probe` until it returns a value or `timeoutMs` passes. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 200));
  }
}
