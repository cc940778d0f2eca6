/**
 * The measuring side of the benchmark. It runs inside the node's network
 * namespace (the lab driver starts it with `ip netns exec`), so every process
 * it execs — `bin/galactic`, the Go `host-device`, `ip` — works on that
 * namespace exactly as on a node, and the fake API servers it hosts on
 * 127.0.0.1 are reachable from the plugin and the agent.
 *
 * Three fake API servers, seeded alike, each answering after the injected
 * delay: one for galactic without the agent, one for the agent, and one the
 * agent-mode plugin would fall back to (it must see no request when the agent
 * works). Separate servers keep each mode's request counts clean.
 *
 * @module
 */

import { FakeApiServer, type RequestRecord } from "../../tests/support/fake_api_server.ts";
import { instance, seedNode } from "../../tests/support/kube_fixtures.ts";
import {
  attachmentFromValue,
  type Identifier,
  interfaceNames,
  parseAttachment,
  parseVpc,
  vpcFromValue,
} from "../../lib/ids/mod.ts";
import { vrfDeleteLines, vrfUpLines } from "../../lib/iproute2/vrf.ts";
import { AGENT_RBAC } from "../../lib/kube/agent_rbac.ts";
import {
  attachmentKey,
  type AttachmentRecord,
  AttachmentStore,
} from "../../lib/state/attachments.ts";
import {
  epochMs,
  exists,
  failure,
  GNU_TIME,
  ipBatch,
  mustRun,
  run,
  type Timed,
  timedExec,
} from "./exec.ts";
import { calibrate, floorArgv, GO_IPAM, runFloor, writeEmptyModule } from "./calibrate.ts";
import { type HostInfo, machineInfo } from "./machine.ts";
import type { BenchOptions } from "./options.ts";
import { analyze, type ApiEvent } from "./profile.ts";
import type {
  AgentInfo,
  BenchResults,
  ConcurrencyResult,
  ConcurrentBatch,
  Mode,
  SequentialResult,
  Subject,
  VerbCounts,
} from "./results.ts";
import { addCounts } from "./stats.ts";

/** What the driver hands to the worker (a JSON file). */
export interface WorkerInput {
  /** Benchmark options. */
  readonly options: BenchOptions;
  /** Repository root. */
  readonly repo: string;
  /** Scratch directory (removed by the driver). */
  readonly tmp: string;
  /** Prefix of every netns name this run creates. */
  readonly prefix: string;
  /** Where to write the results. */
  readonly resultsFile: string;
  /** The machine that started the lab VM. */
  readonly host?: HostInfo;
}

/** Kubernetes name of the benchmarked node. */
export const NODE_NAME = "bench-node";
const CNI_PATH = "/usr/lib/cni";
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const LOCATOR = "fc00:0:1::/48";
/** Budget of each API call; generous so that a slow (TCG) machine measures time, not timeouts. */
const API_TIMEOUT_SECONDS = 60;
/** One VPC per mode: the modes never share local state or API objects. */
const VPC: Record<Mode, string> = { "no-agent": "b1", agent: "b2" };
const IPAM = GO_IPAM;
/** Background attachments of the curve: tables from here, VPCs from BACKGROUND_VPC. */
const TABLE_MIN = 1000;
const BACKGROUND_VPC = 0x50000n;

type ServerName = Mode | "fallback";

interface Call {
  /** Attachment id (base62). */
  readonly att: string;
  /** Pod netns name. */
  readonly netns: string;
  /** Container id. */
  readonly cid: string;
  /** The ADD result, passed to DEL as the runtime does. */
  readonly prevResult?: unknown;
  /** Extra configuration fields. */
  readonly extra?: Record<string, unknown>;
  /** Measure peak RSS (GNU time). */
  readonly rss?: boolean;
  /** strace output file. */
  readonly strace?: string;
}

interface Invocation {
  readonly out: Timed;
  readonly result?: unknown;
  readonly ok: boolean;
}

function tally(records: readonly RequestRecord[]): VerbCounts {
  const counts: VerbCounts = {};
  for (const r of records) counts[r.verb] = (counts[r.verb] ?? 0) + 1;
  return counts;
}

function parseResult(out: Timed): unknown {
  try {
    return out.stdout.trim() === "" ? undefined : JSON.parse(out.stdout);
  } catch {
    return undefined;
  }
}

function round(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

/** A running `galactic agent`. */
class AgentProcess {
  readonly child: Deno.ChildProcess;
  readonly socket: string;
  #stderr = "";
  #drained: Promise<void>;

  constructor(child: Deno.ChildProcess, socket: string) {
    this.child = child;
    this.socket = socket;
    this.#drained = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of child.stderr) {
          this.#stderr = (this.#stderr + decoder.decode(chunk)).slice(-4000);
        }
      } catch { /* closed */ }
    })();
  }

  get stderrTail(): string {
    return this.#stderr.trim().split("\n").slice(-8).join("\n");
  }

  async #status(): Promise<string> {
    return await Deno.readTextFile(`/proc/${this.child.pid}/status`).catch(() => "");
  }

  /** VmHWM: the process's peak RSS so far, KiB. */
  async peakRssKb(): Promise<number | undefined> {
    const match = /^VmHWM:\s*(\d+)\s*kB/m.exec(await this.#status());
    return match ? Number(match[1]) : undefined;
  }

  /** CPU time used so far (utime + stime), clock ticks. */
  async cpuTicks(): Promise<number | undefined> {
    const stat = await Deno.readTextFile(`/proc/${this.child.pid}/stat`).catch(() => "");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
  }

  /**
   * Waits until the agent is idle — under 5% of a CPU over a second — so it
   * has digested its watch events before ADDs are measured.
   */
  async settle(maxMs = 60_000): Promise<void> {
    const deadline = performance.now() + maxMs;
    let last = await this.cpuTicks();
    while (performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const now = await this.cpuTicks();
      if (now === undefined || last === undefined || now - last <= 5) return; // ticks of 10 ms
      last = now;
    }
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* already gone */ }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 20_000);
    await this.child.status;
    clearTimeout(timer);
    await this.#drained;
  }
}

/** The benchmark run inside the node netns. */
class Bench {
  readonly input: WorkerInput;
  readonly opts: BenchOptions;
  readonly servers: Record<ServerName, FakeApiServer>;
  readonly kubeconfigs = {} as Record<ServerName, string>;
  readonly results: BenchResults;
  readonly modes: Mode[] = ["no-agent"];
  readonly started = performance.now();
  readonly attributed = new Set<RequestRecord>();
  readonly apiEvents: (ApiEvent & { server: ServerName })[] = [];
  readonly netnsCreated = new Set<string>();
  agent: AgentProcess | undefined;
  recording = false;
  stopping = false;
  rssSeq = 0;
  /** Background attachments of the curve currently present. */
  background: { name: string; table: number; key: string }[] = [];
  extraInstances = 0;

  constructor(input: WorkerInput, results: BenchResults) {
    this.input = input;
    this.opts = input.options;
    this.results = results;
    this.servers = {
      "no-agent": new FakeApiServer(),
      // The agent lists and watches: it gets the agent's ClusterRole (manifests/rbac.yaml).
      agent: new FakeApiServer({ rbac: AGENT_RBAC }),
      fallback: new FakeApiServer(),
    };
  }

  say(text: string): void {
    const at = ((performance.now() - this.started) / 1000).toFixed(1);
    console.error(`[bench +${at}s] ${text}`);
  }

  checkStop(): void {
    if (this.stopping) throw new Error("interrupted");
  }

  get launcher(): string {
    return `${this.input.repo}/bin/galactic`;
  }

  // ---- set-up ----------------------------------------------------------------

  async setup(): Promise<void> {
    const missing = [];
    for (const path of [GNU_TIME, `${CNI_PATH}/host-device`, `${CNI_PATH}/static`]) {
      if (!(await exists(path))) missing.push(path);
    }
    if (missing.length > 0) {
      throw new Error(
        `missing ${missing.join(", ")} (apt-get install time containernetworking-plugins)`,
      );
    }
    await mustRun(["ip", "link", "set", "lo", "up"]);
    for (const [name, server] of Object.entries(this.servers) as [ServerName, FakeApiServer][]) {
      seedNode(server, NODE_NAME);
      if (this.opts.apiDelayMs > 0) server.fault({ delayMs: this.opts.apiDelayMs });
      this.kubeconfigs[name] = await server.writeKubeconfigFile(
        `${this.input.tmp}/kubeconfig-${name}`,
      );
      server.onRequest((record) => {
        if (this.recording) {
          this.apiEvents.push({
            server: name,
            at: epochMs(),
            verb: record.verb,
            ...(record.resource !== undefined && { resource: record.resource }),
          });
        }
      });
    }
    for (const subject of ["go", "no-agent", "agent"]) await this.netns(this.podNetns(subject));
    await this.startAgent();
  }

  podNetns(tag: string): string {
    return `${this.input.prefix}-${tag}`;
  }

  async netns(name: string): Promise<void> {
    await mustRun(["ip", "netns", "add", name]);
    this.netnsCreated.add(name);
  }

  async startAgent(): Promise<void> {
    const info: AgentInfo = this.results.agent;
    if (this.opts.noAgent) {
      info.reason = "skipped (--no-agent)";
      return;
    }
    const help = await run([this.launcher, "agent", "--help"]);
    // commander prints the top-level help (exit 0) for an unknown command: look for the option.
    if (help.code !== 0 || !/--socket/.test(help.stdout)) {
      info.reason = `bin/galactic has no agent command (agent --help: exit ${help.code})`;
      return;
    }
    const socket = `${this.input.tmp}/agent.sock`;
    this.say("starting galactic agent");
    const started = performance.now();
    const child = new Deno.Command(this.launcher, {
      args: [
        "agent",
        "--socket",
        socket,
        "--kubeconfig",
        this.kubeconfigs.agent,
        "--node",
        NODE_NAME,
        "--timeout",
        String(API_TIMEOUT_SECONDS),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const agent = new AgentProcess(child, socket);
    let exited = false;
    child.status.then(() => exited = true);
    while (!exited && performance.now() - started < 300_000) {
      if ((await Deno.lstat(socket).catch(() => undefined))?.isSocket) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (exited || !(await exists(socket))) {
      await agent.stop();
      info.error = agent.stderrTail;
      info.reason = exited ? "galactic agent exited at start" : "agent socket never appeared";
      this.results.errors.push(`agent: ${info.reason}: ${info.error}`);
      return;
    }
    info.startMs = performance.now() - started;
    await agent.settle();
    this.agent = agent;
    (info as { available: boolean }).available = true;
    this.modes.push("agent");
    this.say(`agent ready after ${round(info.startMs)} ms`);
  }

  // ---- invocations -------------------------------------------------------------

  pluginConfig(mode: Mode, call: Call): Record<string, unknown> {
    const tmp = this.input.tmp;
    return {
      cniVersion: "1.0.0",
      name: "bench",
      type: "galactic",
      vpc: VPC[mode],
      vpcattachment: call.att,
      srv6_locator: LOCATOR,
      mtu: 1400,
      terminations: [{ network: "10.20.0.0/16", via: "10.1.0.2" }, {
        network: "2001:db8:20::/48",
      }],
      ipam: IPAM,
      // Agent mode: the kubeconfig is the fallback server's, which must stay silent.
      kubeconfig: mode === "agent" ? this.kubeconfigs.fallback : this.kubeconfigs["no-agent"],
      node_name: NODE_NAME,
      state_dir: `${tmp}/state-${mode}`,
      agent_socket: mode === "agent" ? `${tmp}/agent.sock` : `${tmp}/absent-agent.sock`,
      api_timeout_seconds: API_TIMEOUT_SECONDS,
      ...call.extra,
      ...(call.prevResult !== undefined && { prevResult: call.prevResult }),
    };
  }

  cniEnv(command: string, call: Call): Record<string, string> {
    return {
      PATH,
      CNI_COMMAND: command,
      CNI_CONTAINERID: call.cid,
      CNI_NETNS: `/run/netns/${call.netns}`,
      CNI_IFNAME: "net1",
      CNI_PATH,
      CNI_ARGS:
        `IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=${call.netns};K8S_POD_INFRA_CONTAINER_ID=${call.cid};K8S_POD_UID=${crypto.randomUUID()}`,
    };
  }

  rssFile(): string {
    return `${this.input.tmp}/rss-${++this.rssSeq}`;
  }

  async invoke(subject: Subject, command: "ADD" | "DEL", call: Call): Promise<Invocation> {
    const config = subject === "go"
      ? {
        cniVersion: "1.0.0",
        name: "bench",
        type: "host-device",
        device: call.att,
        ipam: IPAM,
        ...(call.prevResult !== undefined && { prevResult: call.prevResult }),
      }
      : this.pluginConfig(subject, call);
    const argv = [subject === "go" ? `${CNI_PATH}/host-device` : this.launcher];
    const out = await timedExec(argv, {
      env: this.cniEnv(command, call),
      stdin: JSON.stringify(config),
      ...(call.rss && { rssFile: this.rssFile() }),
      ...(call.strace && { straceFile: call.strace }),
    });
    return { out, ok: out.code === 0, result: parseResult(out) };
  }

  /** Runs `body` and returns the API requests it caused on `mode`'s server(s). */
  async counted<T>(
    mode: Mode,
    body: () => Promise<T>,
  ): Promise<{ value: T; api: VerbCounts; fallback: number }> {
    const server = this.servers[mode];
    const mark = server.requests.length;
    const fallbackMark = this.servers.fallback.requests.length;
    const value = await body();
    const seen = server.requests.slice(mark);
    for (const r of seen) this.attributed.add(r);
    const fallback = this.servers.fallback.requests.length - fallbackMark;
    return { value, api: tally(seen), fallback };
  }

  // ---- scenario 1, 2, 4: sequential pairs ---------------------------------------

  /** One exec of the Deno runtime floor; its text for the progress line, or undefined. */
  async floorRun(warm: boolean): Promise<string | undefined> {
    const floor = this.results.floor;
    if (!floor || floor.argv.length === 0) return undefined;
    const out = await runFloor(floor.argv, this.rssFile());
    if (out.code !== 0) {
      floor.failures.push(failure("Deno runtime floor", out));
      return "failed";
    }
    if (warm) {
      floor.warmupMs.push(out.ms);
    } else {
      floor.ms.push(out.ms);
      if (out.rssKb !== undefined) floor.rssKb.push(out.rssKb);
    }
    return round(out.ms);
  }

  async goPair(i: number, result: SequentialResult, warm: boolean): Promise<string> {
    const host = "gbgoH";
    const dev = "gbgoG";
    await run(["ip", "link", "del", host]);
    await mustRun(["ip", "link", "add", host, "type", "veth", "peer", "name", dev]);
    const call = { att: dev, netns: this.podNetns("go"), cid: `benchgo${i}`, rss: true };
    try {
      const add = await this.invoke("go", "ADD", call);
      if (!add.ok) {
        result.failures.push(failure(`go ADD #${i}`, add.out));
        await this.invoke("go", "DEL", call);
        return "ADD failed";
      }
      const del = await this.invoke("go", "DEL", { ...call, prevResult: add.result });
      if (!del.ok) result.failures.push(failure(`go DEL #${i}`, del.out));
      if (warm) {
        result.warmup.addMs.push(add.out.ms);
        result.warmup.delMs.push(del.out.ms);
      } else {
        result.add.ms.push(add.out.ms);
        if (add.out.rssKb !== undefined) result.add.rssKb.push(add.out.rssKb);
        if (del.ok) {
          result.del.ms.push(del.out.ms);
          if (del.out.rssKb !== undefined) result.del.rssKb.push(del.out.rssKb);
        }
      }
      return `ADD ${round(add.out.ms)} DEL ${round(del.out.ms)}`;
    } finally {
      await run(["ip", "link", "del", host]);
    }
  }

  async galacticPair(
    mode: Mode,
    call: Call,
    sink: {
      addMs: number[];
      delMs: number[];
      addRss?: number[];
      delRss?: number[];
      addApi: (c: VerbCounts) => void;
      delApi: (c: VerbCounts) => void;
      failures: string[];
      fallback?: (n: number) => void;
    },
  ): Promise<string> {
    const add = await this.counted(mode, () => this.invoke(mode, "ADD", call));
    sink.fallback?.(add.fallback);
    if (!add.value.ok) {
      sink.failures.push(failure(`${mode} ADD ${call.cid}`, add.value.out));
      await this.invoke(mode, "DEL", call);
      return "ADD failed";
    }
    const del = await this.counted(
      mode,
      () => this.invoke(mode, "DEL", { ...call, prevResult: add.value.result }),
    );
    sink.fallback?.(del.fallback);
    sink.addMs.push(add.value.out.ms);
    if (add.value.out.rssKb !== undefined) sink.addRss?.push(add.value.out.rssKb);
    sink.addApi(add.api);
    if (del.value.ok) {
      sink.delMs.push(del.value.out.ms);
      if (del.value.out.rssKb !== undefined) sink.delRss?.push(del.value.out.rssKb);
      sink.delApi(del.api);
    } else {
      sink.failures.push(failure(`${mode} DEL ${call.cid}`, del.value.out));
    }
    return `ADD ${round(add.value.out.ms)} DEL ${round(del.value.out.ms)}`;
  }

  async sequential(): Promise<void> {
    const subjects: Subject[] = ["go", ...this.modes];
    const bySubject = new Map<Subject, SequentialResult>();
    for (const subject of subjects) {
      const result: SequentialResult = {
        subject,
        add: { ms: [], rssKb: [], api: [] },
        del: { ms: [], rssKb: [], api: [] },
        warmup: { addMs: [], delMs: [] },
        failures: [],
        ...(subject === "agent" && { fallbackRequests: 0 }),
      };
      bySubject.set(subject, result);
      this.results.sequential.push(result);
    }
    const broken = new Set<Subject>();
    let floorBroken = false;
    const total = this.opts.warmup + this.opts.iterations;
    for (let i = 0; i < total; i++) {
      const warm = i < this.opts.warmup;
      const line: string[] = [];
      if (!floorBroken) {
        this.checkStop();
        const text = await this.floorRun(warm);
        if (text !== undefined) line.push(`floor ${text}`);
        // Like a subject: a floor that fails at once is left out (its error is reported).
        if (text === "failed" && i === 0) floorBroken = true;
      }
      for (const subject of subjects) {
        if (broken.has(subject)) continue;
        this.checkStop();
        const result = bySubject.get(subject)!;
        const failures = result.failures.length;
        let text: string;
        if (subject === "go") {
          text = await this.goPair(i, result, warm);
        } else {
          const call = {
            att: "1",
            netns: this.podNetns(subject),
            cid: `bench-${subject}-${i}`,
            rss: true,
          };
          const sink = warm
            ? {
              addMs: result.warmup.addMs,
              delMs: result.warmup.delMs,
              addApi: () => {},
              delApi: () => {},
              failures: result.failures,
            }
            : {
              addMs: result.add.ms,
              delMs: result.del.ms,
              addRss: result.add.rssKb,
              delRss: result.del.rssKb,
              addApi: (c: VerbCounts) => result.add.api.push(c),
              delApi: (c: VerbCounts) => result.del.api.push(c),
              failures: result.failures,
            };
          text = await this.galacticPair(subject, call, {
            ...sink,
            fallback: (n) => result.fallbackRequests = (result.fallbackRequests ?? 0) + n,
          });
        }
        line.push(`${subject} ${text}`);
        // A subject whose first pair fails is left out of everything after (its error is reported).
        if (i === 0 && result.failures.length > failures) broken.add(subject);
      }
      this.say(
        `sequential ${warm ? "warm-up" : `${i - this.opts.warmup + 1}/${this.opts.iterations}`}: ${
          line.join(" | ")
        } ms`,
      );
    }
    if (floorBroken) {
      this.results.errors.push(
        "sequential: the Deno runtime floor failed its first exec; left out",
      );
    }
    for (const subject of broken) {
      this.results.errors.push(`sequential: ${subject} failed its first ADD/DEL; left out`);
      if (subject !== "go") this.modes.splice(this.modes.indexOf(subject), 1);
    }
  }

  // ---- scenario 3: concurrency ----------------------------------------------------

  vrfName(mode: Mode, att: string): string {
    return interfaceNames(parseVpc(VPC[mode]), parseAttachment(att)).vrf;
  }

  async vrfTables(): Promise<Map<string, number>> {
    const links = JSON.parse(
      await mustRun(["ip", "-json", "-details", "link", "show", "type", "vrf"]),
    );
    const tables = new Map<string, number>();
    for (
      const link of links as { ifname: string; linkinfo?: { info_data?: { table?: number } } }[]
    ) {
      tables.set(link.ifname, link.linkinfo?.info_data?.table ?? -1);
    }
    return tables;
  }

  async batch(
    mode: Mode,
    command: "ADD" | "DEL",
    calls: readonly Call[],
  ): Promise<{ batch: ConcurrentBatch; invocations: Invocation[] }> {
    const { value, api } = await this.counted(mode, async () => {
      const started = performance.now();
      const invocations = await Promise.all(calls.map((call) => this.invoke(mode, command, call)));
      return { invocations, wallMs: performance.now() - started };
    });
    const ok = value.invocations.filter((i) => i.ok);
    return {
      invocations: value.invocations,
      batch: {
        wallMs: value.wallMs,
        ok: ok.length,
        ms: ok.map((i) => i.out.ms),
        rssKb: ok.flatMap((i) => i.out.rssKb ?? []),
        api,
      },
    };
  }

  async concurrency(mode: Mode): Promise<void> {
    const n = this.opts.concurrency;
    const tag = mode === "agent" ? "cag" : "cna";
    const calls: Call[] = [];
    for (let k = 1; k <= n; k++) {
      const netns = this.podNetns(`${tag}${k}`);
      await this.netns(netns);
      calls.push({ att: String(k), netns, cid: `bench-${tag}-${k}`, rss: true });
    }
    this.checkStop();
    this.say(`concurrency ${mode}: ${n} ADDs at once`);
    const failures: string[] = [];
    const adds = await this.batch(mode, "ADD", calls);
    adds.invocations.forEach((inv, k) => {
      if (!inv.ok) failures.push(failure(`ADD ${calls[k]!.cid}`, inv.out));
    });
    const names = new Set(calls.map((c) => this.vrfName(mode, c.att)));
    const tables = [...(await this.vrfTables()).entries()].filter(([name]) => names.has(name));
    const distinct = new Set(tables.map(([, t]) => t)).size;
    this.say(
      `concurrency ${mode}: ADD ${adds.batch.ok}/${n} ok in ${round(adds.batch.wallMs)} ms; ` +
        `${tables.length} VRFs, ${distinct} distinct tables; ${n} DELs at once`,
    );
    const dels = await this.batch(
      mode,
      "DEL",
      calls.map((call, k) => ({ ...call, prevResult: adds.invocations[k]!.result })),
    );
    dels.invocations.forEach((inv, k) => {
      if (!inv.ok) failures.push(failure(`DEL ${calls[k]!.cid}`, inv.out));
    });
    const left = [...(await this.vrfTables()).keys()].filter((name) => names.has(name)).length;
    this.say(
      `concurrency ${mode}: DEL ${dels.batch.ok}/${n} ok in ${
        round(dels.batch.wallMs)
      } ms; ${left} VRFs left`,
    );
    // Leave nothing behind for the next scenario, whatever failed.
    if (left > 0 || dels.batch.ok < n) {
      for (const call of calls) await this.invoke(mode, "DEL", call);
    }
    for (const call of calls) {
      await run(["ip", "netns", "del", call.netns]);
      this.netnsCreated.delete(call.netns);
    }
    const result: ConcurrencyResult = {
      mode,
      n,
      add: adds.batch,
      del: dels.batch,
      vrfsAfterAdd: tables.length,
      distinctTables: distinct,
      vrfsAfterDel: left,
      failures: failures.slice(0, 10),
    };
    if (failures.length > 10) result.failures.push(`… and ${failures.length - 10} more`);
    this.results.concurrency.push(result);
  }

  // ---- scenario 5: cost curve -------------------------------------------------------

  stores(): AttachmentStore[] {
    return (["no-agent", "agent"] as Mode[]).map((m) =>
      new AttachmentStore(`${this.input.tmp}/state-${m}`)
    );
  }

  /** Grows the node to `count` background attachments (VRF + record) and extra BGPInstances. */
  async growBackground(count: number): Promise<void> {
    const lines: string[] = [];
    const added: { name: string; table: number; key: string; record: AttachmentRecord }[] = [];
    for (let i = this.background.length; i < count; i++) {
      const vpc: Identifier = vpcFromValue(BACKGROUND_VPC + BigInt(i));
      const att = attachmentFromValue(1n);
      const name = interfaceNames(vpc, att).vrf;
      const table = TABLE_MIN + i;
      lines.push(`link add ${name} type vrf table ${table}`, ...vrfUpLines({ name, table }));
      added.push({
        name,
        table,
        key: attachmentKey({ vpc, attachment: att }),
        record: {
          network: "bench-background",
          vpc: vpc.text,
          attachment: att.text,
          vpcHex: vpc.hex,
          containerId: `background-${i}`,
          ifname: "net1",
          netns: `/run/netns/background-${i}`,
          table,
          node: NODE_NAME,
        },
      });
    }
    const out = await ipBatch(lines);
    // Track what exists even when the batch failed half-way, so it gets removed.
    this.background.push(...added);
    if (out.code !== 0) throw new Error(`creating background VRFs: ${out.stderr.trim()}`);
    for (const store of this.stores()) {
      await store.update((records) => {
        for (const a of added) records[a.key] = a.record;
      });
    }
    for (const mode of ["no-agent", "agent"] as Mode[]) {
      for (let i = this.extraInstances; i < count; i++) {
        this.servers[mode].seed(instance(`bench-extra-${i}`, {
          asn: 65100,
          selector: { matchLabels: { "galactic.io/plane": `bench-unused-${i}` } },
        }));
      }
    }
    this.extraInstances = count;
  }

  async dropBackground(): Promise<void> {
    if (this.background.length > 0) {
      await ipBatch(this.background.flatMap((b) => vrfDeleteLines(b)), { force: true });
      const keys = new Set(this.background.map((b) => b.key));
      for (const store of this.stores()) {
        await store.update((records) => {
          for (const key of keys) delete records[key];
        }).catch(() => {});
      }
      this.background = [];
    }
    for (const mode of ["no-agent", "agent"] as Mode[]) {
      for (let i = 0; i < this.extraInstances; i++) {
        this.servers[mode].remove("bgpinstances", `bench-extra-${i}`);
      }
    }
    this.extraInstances = 0;
  }

  async curve(): Promise<void> {
    try {
      for (const count of this.opts.curve) {
        this.checkStop();
        const started = performance.now();
        await this.growBackground(count);
        const setupMs = performance.now() - started;
        this.results.curveSetup.push({ vrfs: count, setupMs });
        if (this.agent) await this.agent.settle();
        this.say(
          `curve: ${count} VRFs + ${count} extra BGPInstances ready in ${round(setupMs)} ms`,
        );
        for (const mode of this.modes) {
          const point = {
            mode,
            vrfs: count,
            instances: count,
            addMs: [] as number[],
            delMs: [] as number[],
            addApi: {} as VerbCounts,
            delApi: {} as VerbCounts,
            failures: [] as string[],
          };
          const texts: string[] = [];
          for (let r = 0; r < this.opts.curveIterations; r++) {
            this.checkStop();
            texts.push(
              await this.galacticPair(mode, {
                att: "1",
                netns: this.podNetns(mode),
                cid: `bench-curve-${mode}-${count}-${r}`,
              }, {
                addMs: point.addMs,
                delMs: point.delMs,
                addApi: (c) => addCounts(point.addApi, c),
                delApi: (c) => addCounts(point.delApi, c),
                failures: point.failures,
              }),
            );
          }
          this.results.curve.push(point);
          this.say(`curve ${count} ${mode}: ${texts.join(" | ")} ms`);
        }
      }
    } finally {
      await this.dropBackground();
    }
  }

  // ---- breakdown -----------------------------------------------------------------------

  async profile(mode: Mode): Promise<void> {
    for (let r = 0; r < this.opts.profileRuns; r++) {
      this.checkStop();
      const base = `${this.input.tmp}/profile-${mode}-${r}`;
      const call: Call = {
        att: "1",
        netns: this.podNetns(mode),
        cid: `bench-profile-${mode}-${r}`,
      };
      let prevResult: unknown;
      for (const verb of ["ADD", "DEL"] as const) {
        const logFile = `${base}-${verb}.log`;
        const straceFile = `${base}-${verb}.strace`;
        this.apiEvents.length = 0;
        this.recording = true;
        const { value: inv } = await this.counted(mode, () =>
          this.invoke(mode, verb, {
            ...call,
            strace: straceFile,
            extra: { log_file: logFile, log_level: "debug" },
            ...(verb === "DEL" && { prevResult }),
          }));
        this.recording = false;
        if (verb === "ADD") prevResult = inv.result;
        if (!inv.ok) this.results.errors.push(failure(`profile ${mode} ${verb}`, inv.out));
        const run = analyze({
          mode,
          verb,
          code: inv.out.code,
          trace: await Deno.readTextFile(straceFile).catch(() => ""),
          api: this.apiEvents.filter((e) => e.server === mode || e.server === "fallback"),
          log: await Deno.readTextFile(logFile).catch(() => ""),
        });
        if (run) this.results.profile.push(run);
        this.say(
          `profile ${mode} ${verb}: ${round(inv.out.ms)} ms` +
            (run ? `, start-up ${round(run.startupMs)} ms, ${run.apiRequests} API requests` : ""),
        );
      }
    }
  }

  // ---- the run ---------------------------------------------------------------------------

  async scenario(name: string, body: () => Promise<void>): Promise<void> {
    if (this.stopping) return;
    try {
      await body();
    } catch (error) {
      this.results.errors.push(`${name}: ${(error as Error).message}`);
      this.say(`${name} failed: ${(error as Error).message}`);
    }
  }

  async run(): Promise<void> {
    await this.setup();
    await this.scenario("sequential", () => this.sequential());
    for (const mode of [...this.modes]) {
      await this.scenario(`concurrency ${mode}`, () => this.concurrency(mode));
    }
    await this.scenario("curve", () => this.curve());
    if (this.opts.profileRuns > 0) {
      if (await exists("/usr/bin/strace")) {
        for (const mode of [...this.modes]) {
          await this.scenario(`profile ${mode}`, () => this.profile(mode));
        }
      } else {
        this.results.notes.push("breakdown skipped: strace is not installed");
      }
    }
  }

  async cleanup(): Promise<void> {
    if (this.agent) {
      const info = this.results.agent;
      const peak = await this.agent.peakRssKb();
      if (peak !== undefined) info.peakRssKb = peak;
      info.backgroundApi = tally(
        this.servers.agent.requests.filter((r) => !this.attributed.has(r)),
      );
      await this.agent.stop();
      this.agent = undefined;
    }
    await this.dropBackground().catch(() => {});
    for (const server of Object.values(this.servers)) await server.close().catch(() => {});
    for (const name of this.netnsCreated) await run(["ip", "netns", "del", name]);
    this.netnsCreated.clear();
  }
}

/** Runs the worker; returns its exit code (results are written even on failure). */
export async function runWorker(inputFile: string): Promise<number> {
  const input = JSON.parse(await Deno.readTextFile(inputFile)) as WorkerInput;
  const machine = await machineInfo({
    repo: input.repo,
    ...(input.host && { host: input.host }),
  });
  console.error("[bench] calibrating start-up (CNI VERSION of galactic and host-device)");
  const here = await calibrate(input.repo);
  const results: BenchResults = {
    version: 1,
    startedAt: new Date().toISOString(),
    wallMs: 0,
    options: input.options,
    machine: {
      ...machine,
      calibration: { here, ...(input.host?.calibration && { host: input.host.calibration }) },
    },
    setup: {
      node: NODE_NAME,
      apiDelayMs: input.options.apiDelayMs,
      apiTimeoutSeconds: API_TIMEOUT_SECONDS,
      cniVersion: "1.0.0",
      plugin: "bin/galactic (deno run from source)",
      ipam: "static, 1 address, 1 route",
      terminations: 2,
    },
    agent: { available: false },
    sequential: [],
    floor: {
      argv: floorArgv(input.repo, await writeEmptyModule(input.tmp)),
      ms: [],
      rssKb: [],
      warmupMs: [],
      failures: [],
    },
    concurrency: [],
    curve: [],
    curveSetup: [],
    profile: [],
    errors: [],
    notes: [],
  };
  const bench = new Bench(input, results);
  const stop = (): void => {
    bench.stopping = true;
    bench.say("stopping: finishing the current step, then cleaning up");
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    await bench.run();
  } catch (error) {
    results.errors.push(`setup: ${(error as Error).message}`);
  } finally {
    await bench.cleanup().catch((error) => {
      results.errors.push(`cleanup: ${(error as Error).message}`);
    });
    results.wallMs = performance.now() - bench.started;
    await Deno.writeTextFile(input.resultsFile, JSON.stringify(results, null, 1));
  }
  if (bench.stopping) return 130;
  return results.errors.length > 0 ? 1 : 0;
}
