/**
 * The sequential scenario: ADD/DEL pairs of every subject, interleaved per
 * iteration (the order rotating) so that drift and other engineers' load hit
 * all alike, each pair in a fresh pod netns, every process under GNU time.
 * A pair ends when the node is clean (`invoke` waits, untimed, for a
 * removal the DEL handed to the agent), so no pair finishes another's.
 *
 * @module
 */

import { runChecked, systemRunner } from "../../lib/iproute2/runner.ts";
import type { Subject, SubjectResult, VerbSamples } from "./results.ts";
import { afterPair, beforePair, invoke, type Node } from "./subjects.ts";
import { failure } from "./timed_exec.ts";

const runner = systemRunner();

function samples(): VerbSamples {
  return {
    ms: [],
    rssKb: [],
    cpuMs: [],
    api: [],
    shimMs: [],
    shimCpuMs: [],
    agentCpuMs: [],
    removalMs: [],
  };
}

function record(into: VerbSamples, inv: Awaited<ReturnType<typeof invoke>>): void {
  into.ms.push(inv.out.ms);
  if (inv.out.rssKb !== undefined) into.rssKb.push(inv.out.rssKb);
  if (inv.out.cpuMs !== undefined) into.cpuMs.push(inv.out.cpuMs);
  into.api.push(inv.api);
  into.shimMs.push(inv.shimMs);
  into.shimCpuMs.push(inv.shimCpuMs);
  if (inv.agentCpuMs !== undefined) into.agentCpuMs.push(inv.agentCpuMs);
  if (inv.removalMs !== undefined) into.removalMs.push(inv.removalMs);
}

/** Runs `warmup + iterations` rounds; `say` gets one progress line per round. */
export async function sequentialPairs(
  node: Node,
  subjects: readonly Subject[],
  options: { iterations: number; warmup: number; prefix: string; say(text: string): void },
): Promise<SubjectResult[]> {
  const results = subjects.map((subject): SubjectResult => ({
    subject,
    add: samples(),
    del: samples(),
    failures: [],
    fallbackRequests: 0,
  }));
  let seq = 0;
  for (let round = 0; round < options.warmup + options.iterations; round++) {
    const measured = round >= options.warmup;
    const line: string[] = [];
    for (let k = 0; k < results.length; k++) {
      const result = results[(round + k) % results.length]!;
      // A subject whose first pair failed is left out (its error is in the report).
      if (round > 0 && result.failures.length > 0 && result.add.ms.length === 0) continue;
      const pod = `${options.prefix}-pod${++seq}`;
      const call = { pod, cid: `bench-${result.subject}-${round}` };
      await runChecked(runner, ["ip", "netns", "add", pod]);
      try {
        await beforePair(result.subject);
        const rssFile = `${node.tmp}/rss`;
        const add = await invoke(node, result.subject, "ADD", { ...call, rssFile });
        if (!add.ok) result.failures.push(failure(`ADD ${round}`, add.out));
        const del = await invoke(node, result.subject, "DEL", {
          ...call,
          rssFile,
          prevResult: add.result,
        });
        if (!del.ok) result.failures.push(failure(`DEL ${round}`, del.out));
        if (del.unclean) result.failures.push(`DEL ${round}: ${del.unclean}`);
        result.fallbackRequests += add.fallback + del.fallback;
        if (measured && add.ok && del.ok && !del.unclean) {
          record(result.add, add);
          record(result.del, del);
        }
        line.push(`${result.subject} ${add.out.ms.toFixed(0)}/${del.out.ms.toFixed(0)}`);
      } finally {
        await afterPair(result.subject);
        await runner.run(["ip", "netns", "del", pod]);
      }
    }
    const what = measured ? `${round - options.warmup + 1}/${options.iterations}` : "warm-up";
    options.say(`pairs ${what}: ${line.join(" | ")} ms (ADD/DEL)`);
  }
  return results;
}
