/**
 * The fake `iptables` / `ip6tables` (1.8.9, nf_tables): the filter table's
 * chains with `-C`, `-A`, `-I`, `-D`, `-S`, `-N`, `-X`, `-F` and rule specs
 * made of `-s -d -i -o -p -j`. Rules do not depend on devices existing (as in
 * the kernel); `-w` is accepted and ignored (no lock contention here).
 *
 * @module
 */

import type { CommandResult, Kernel } from "./kernel.ts";

const BUILTIN = ["INPUT", "FORWARD", "OUTPUT"];
const TARGETS = ["ACCEPT", "DROP", "RETURN", "REJECT"];
/** Canonical order of rule options (as iptables -S prints them). */
const SPEC_ORDER = ["-s", "-d", "-i", "-o", "-p", "-j"];
const SPEC_LONG: Readonly<Record<string, string>> = {
  "--source": "-s",
  "--destination": "-d",
  "--in-interface": "-i",
  "--out-interface": "-o",
  "--protocol": "-p",
  "--jump": "-j",
};

type Tool = "iptables" | "ip6tables";

/** Runs `iptables` or `ip6tables` with `args` (after the program name). */
export function runIptables(kernel: Kernel, tool: Tool, args: readonly string[]): CommandResult {
  const fault = kernel.takeFault([tool, ...args].join(" "));
  const chains = kernel.state.xtables[tool];
  const fail = (code: number, text: string): CommandResult => ({
    code,
    stdout: "",
    stderr: `${text}\n`,
  });
  const noChain = (): CommandResult => fail(1, `${tool}: No chain/target/match by that name.`);
  const badRule = (): CommandResult =>
    fail(1, `${tool}: Bad rule (does a matching rule exist in that chain?).`);
  const unsupported = (): CommandResult =>
    fail(
      2,
      `fake ${tool}: unsupported command: ${tool} ${
        args.join(" ")
      } (extend tests/support/fake_host)`,
    );

  let command: string | undefined;
  let chain: string | undefined;
  let position: number | undefined;
  const spec = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "-w" || arg === "--wait") {
      if (/^\d+$/.test(args[i + 1] ?? "")) i++;
    } else if (arg === "-W" || arg === "--wait-interval") i++;
    else if (arg === "-t" || arg === "--table") {
      if (args[++i] !== "filter") return unsupported();
    } else if (["-C", "-A", "-D", "-I", "-S", "-N", "-X", "-F"].includes(arg)) {
      if (command !== undefined) {
        return fail(
          2,
          `${tool} v1.8.9 (nf_tables): Cannot use -${command.slice(1)} with -${arg.slice(1)}`,
        );
      }
      command = arg;
      if (args[i + 1] !== undefined && !args[i + 1]!.startsWith("-")) chain = args[++i];
      if (arg === "-I" && /^\d+$/.test(args[i + 1] ?? "")) position = Number(args[++i]);
    } else if (SPEC_ORDER.includes(arg) || arg in SPEC_LONG) {
      const value = args[++i];
      if (value === undefined) {
        return fail(2, `${tool} v1.8.9 (nf_tables): option "${arg}" requires an argument`);
      }
      const key = SPEC_LONG[arg] ?? arg;
      if ((key === "-o" || key === "-i") && value.length > 15) {
        return fail(
          2,
          `${tool} v1.8.9 (nf_tables): interface name \`${value}' must be shorter than IFNAMSIZ (15)\n` +
            `Try \`${tool} -h' or '${tool} --help' for more information.`,
        );
      }
      spec.set(key, value);
    } else return unsupported();
  }
  if (command === undefined) return unsupported();
  if (fault && !fault.apply) {
    const text = fault.stderr ?? `${tool}: injected fault`;
    return {
      code: fault.code ?? 1,
      stdout: fault.stdout ?? "",
      stderr: text.endsWith("\n") ? text : `${text}\n`,
    };
  }
  const result = ((): CommandResult => {
    const rule = SPEC_ORDER.filter((k) => spec.has(k)).flatMap((k) => [k, spec.get(k)!]);
    const same = (r: string[]): boolean => r.join("\u0000") === rule.join("\u0000");
    const target = spec.get("-j");
    switch (command) {
      case "-C":
      case "-D": {
        const rules = chain === undefined ? undefined : chains[chain];
        const index = rules?.findIndex(same) ?? -1;
        if (rules === undefined || index < 0) return badRule();
        if (command === "-D") rules.splice(index, 1);
        return { code: 0, stdout: "", stderr: "" };
      }
      case "-A":
      case "-I": {
        if (chain === undefined || !(chain in chains)) return noChain();
        if (target !== undefined && !TARGETS.includes(target) && !(target in chains)) {
          return unsupported();
        }
        if (command === "-A") chains[chain]!.push(rule);
        else chains[chain]!.splice(Math.max(0, (position ?? 1) - 1), 0, rule);
        return { code: 0, stdout: "", stderr: "" };
      }
      case "-S": {
        if (chain !== undefined && !(chain in chains)) return noChain();
        const names = chain === undefined ? Object.keys(chains) : [chain];
        const lines = [
          ...names.filter((c) => BUILTIN.includes(c)).map((c) => `-P ${c} ACCEPT`),
          ...names.filter((c) => !BUILTIN.includes(c)).map((c) => `-N ${c}`),
          ...names.flatMap((c) => chains[c]!.map((r) => `-A ${c} ${r.join(" ")}`)),
        ];
        return { code: 0, stdout: lines.map((l) => `${l}\n`).join(""), stderr: "" };
      }
      case "-N":
        if (chain === undefined) return unsupported();
        if (chain in chains) return fail(1, `${tool}: Chain already exists.`);
        chains[chain] = [];
        return { code: 0, stdout: "", stderr: "" };
      case "-X":
        if (chain === undefined || BUILTIN.includes(chain)) return unsupported();
        if (!(chain in chains)) return noChain();
        delete chains[chain];
        return { code: 0, stdout: "", stderr: "" };
      default: // -F
        if (chain !== undefined && !(chain in chains)) return noChain();
        for (const c of chain === undefined ? Object.keys(chains) : [chain]) chains[c] = [];
        return { code: 0, stdout: "", stderr: "" };
    }
  })();
  if (fault) {
    const text = fault.stderr ?? `${tool}: injected fault`;
    return {
      code: fault.code ?? 1,
      stdout: fault.stdout ?? result.stdout,
      stderr: text.endsWith("\n") ? text : `${text}\n`,
    };
  }
  return result;
}
