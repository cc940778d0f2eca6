/**
 * The FORWARD accept rule for traffic leaving toward a pod (`-o <host veth>`),
 * in iptables and ip6tables. Checked before insert so it is added once.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { type CommandRunner, showCommand } from "./runner.ts";

const TOOLS = ["iptables", "ip6tables"] as const;

function ruleArgv(tool: string, action: "-C" | "-A" | "-D", ifname: string): string[] {
  // -w: wait for the xtables lock instead of failing when another pod's ADD holds it.
  return [tool, "-w", "5", action, "FORWARD", "-o", ifname, "-j", "ACCEPT"];
}

async function present(runner: CommandRunner, tool: string, ifname: string): Promise<boolean> {
  const output = await runner.run(ruleArgv(tool, "-C", ifname));
  if (output.code === 0) return true;
  if (output.code === 1) return false; // "Bad rule (does a matching rule exist in that chain?)"
  throw new CniError(
    ErrorCode.DataPlane,
    `${showCommand(ruleArgv(tool, "-C", ifname))}: ${output.stderr.trim()}`,
  );
}

/**
 * Adds the rule for both families where missing and returns the tools that
 * added one. If one family fails, the other's new rule is taken back first,
 * so a failure leaves nothing behind.
 */
export async function ensureForwardAccept(
  runner: CommandRunner,
  ifname: string,
): Promise<string[]> {
  const outcomes = await Promise.allSettled(TOOLS.map(async (tool) => {
    if (await present(runner, tool, ifname)) return undefined;
    const argv = ruleArgv(tool, "-A", ifname);
    const output = await runner.run(argv);
    if (output.code !== 0) {
      throw new CniError(ErrorCode.DataPlane, `${showCommand(argv)}: ${output.stderr.trim()}`);
    }
    return tool;
  }));
  const added = outcomes.flatMap((o) => (o.status === "fulfilled" && o.value ? [o.value] : []));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (failed) {
    await Promise.all(added.map((tool) => runner.run(ruleArgv(tool, "-D", ifname))));
    throw failed.reason;
  }
  return added;
}

/** Families (tool names) whose rule is missing. */
export async function missingForwardAccept(
  runner: CommandRunner,
  ifname: string,
): Promise<string[]> {
  const found = await Promise.all(TOOLS.map((tool) => present(runner, tool, ifname)));
  return TOOLS.filter((_, i) => !found[i]);
}

/**
 * Deletes the rule in both families; absent is fine. One copy per family:
 * {@linkcode ensureForwardAccept} never adds a second one (it checks first,
 * under the attachment lock), so a second `-D` per family would only cost a
 * process on every DEL.
 */
export async function removeForwardAccept(runner: CommandRunner, ifname: string): Promise<void> {
  await Promise.all(TOOLS.map(async (tool) => {
    const argv = ruleArgv(tool, "-D", ifname);
    const output = await runner.run(argv);
    if (output.code === 0 || output.code === 1) return; // 1: "does a matching rule exist"
    if (/does a matching rule exist|No chain|Bad rule/.test(output.stderr)) return;
    throw new CniError(ErrorCode.DataPlane, `${showCommand(argv)}: ${output.stderr.trim()}`);
  }));
}
