/**
 * The FORWARD accept rule for traffic leaving toward a pod (`-o <host veth>`),
 * in iptables and ip6tables. The chain is read (`-S`) before an insert, so
 * the rule is added once.
 *
 * It is inserted at the head of the chain, not appended: host firewalls
 * commonly end FORWARD in a REJECT or DROP rule, and an appended accept
 * behind it is never reached. ADD moves a copy found behind a REJECT or DROP
 * (e.g. after a firewall reload) back to the head; CHECK reports it.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import { type CommandRunner, showCommand } from "./runner.ts";

const TOOLS = ["iptables", "ip6tables"] as const;

function ruleArgv(tool: string, action: "-I" | "-D", ifname: string): string[] {
  // -w: wait for the xtables lock instead of failing when another pod's ADD holds it.
  const chain = action === "-I" ? ["FORWARD", "1"] : ["FORWARD"];
  return [tool, "-w", "5", action, ...chain, "-o", ifname, "-j", "ACCEPT"];
}

/** A rule that ends a packet's way through FORWARD before later rules see it. */
const TERMINAL_DROP = / -j (REJECT|DROP)\b/;

/** Where the rule sits in a family's FORWARD chain. */
type Placement =
  | { readonly kind: "ahead" }
  | { readonly kind: "missing" }
  | { readonly kind: "behind"; readonly blocker: string };

/** Reads the chain (`-S FORWARD`, one process) and places the rule in it. */
async function placement(runner: CommandRunner, tool: string, ifname: string): Promise<Placement> {
  const argv = [tool, "-w", "5", "-S", "FORWARD"];
  const output = await runner.run(argv);
  if (output.code !== 0) {
    throw new CniError(ErrorCode.DataPlane, `${showCommand(argv)}: ${output.stderr.trim()}`);
  }
  const rules = output.stdout.split("\n").map((line) => line.trim()).filter((line) =>
    line.startsWith("-A FORWARD ")
  );
  const position = rules.indexOf(`-A FORWARD -o ${ifname} -j ACCEPT`);
  if (position < 0) return { kind: "missing" };
  const blocker = rules.slice(0, position).find((rule) => TERMINAL_DROP.test(rule));
  return blocker === undefined ? { kind: "ahead" } : { kind: "behind", blocker };
}

async function runRule(runner: CommandRunner, argv: string[]): Promise<void> {
  const output = await runner.run(argv);
  if (output.code !== 0) {
    throw new CniError(ErrorCode.DataPlane, `${showCommand(argv)}: ${output.stderr.trim()}`);
  }
}

/**
 * Inserts the rule at the head of FORWARD in both families where it is
 * missing, and moves it there where a REJECT or DROP rule shadows it.
 * Returns the tools that added one (a moved rule existed before: a rollback
 * leaves it). If one family fails, the other's new rule is taken back first,
 * so a failure leaves nothing behind.
 */
export async function ensureForwardAccept(
  runner: CommandRunner,
  ifname: string,
): Promise<string[]> {
  const outcomes = await Promise.allSettled(TOOLS.map(async (tool) => {
    const found = await placement(runner, tool, ifname);
    if (found.kind === "ahead") return undefined;
    if (found.kind === "behind") await runRule(runner, ruleArgv(tool, "-D", ifname));
    await runRule(runner, ruleArgv(tool, "-I", ifname));
    return found.kind === "missing" ? tool : undefined;
  }));
  const added = outcomes.flatMap((o) => (o.status === "fulfilled" && o.value ? [o.value] : []));
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === "rejected");
  if (failed) {
    await Promise.all(added.map((tool) => runner.run(ruleArgv(tool, "-D", ifname))));
    throw failed.reason;
  }
  return added;
}

/**
 * What is wrong with the rule in each family: missing, or behind a REJECT or
 * DROP rule of the chain (then it never accepts anything).
 */
export async function forwardAcceptProblems(
  runner: CommandRunner,
  ifname: string,
): Promise<string[]> {
  const rule = `FORWARD -o ${ifname} -j ACCEPT`;
  const found = await Promise.all(TOOLS.map((tool) => placement(runner, tool, ifname)));
  return found.flatMap((place, i) => {
    if (place.kind === "missing") return [`${TOOLS[i]} ${rule} is missing`];
    if (place.kind === "behind") {
      return [`${TOOLS[i]} ${rule} sits behind "${place.blocker.slice(0, 120)}"`];
    }
    return [];
  });
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
