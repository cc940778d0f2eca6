/**
 * The CNI plugin directory a real runtime (podman, containerd) execs from:
 * the standard plugins it chains or galactic delegates to, and `galactic`
 * as a shell wrapper that records every call (the CNI environment, stdin,
 * stdout, exit status) before and after running `bin/galactic`. The suite
 * asserts on those records what the runtime really sent: which verbs, with
 * which netns, args and prevResult.
 *
 * The wrapper names the node's configuration (`GALACTIC_NODE_CONFIG`, as
 * the DaemonSet's install does) and the Deno cache: a runtime passes its own
 * environment to plugins, which need not hold them.
 *
 * @module
 */

import { CNI_PATH, REPO } from "./kernel.ts";

/** One call of the wrapper, as the runtime made it. */
export interface RecordedCall {
  readonly command: string;
  readonly containerId: string;
  /** `CNI_NETNS` ("" when the runtime sent none). */
  readonly netns: string;
  readonly ifname: string;
  /** `CNI_ARGS`, split into pairs. */
  readonly args: Record<string, string>;
  /** The network configuration on stdin (parsed; undefined when not JSON). */
  readonly config?: Record<string, unknown>;
  /** The plugin's exit status. */
  readonly code: number;
  /** The plugin's stdout, parsed when it is JSON. */
  readonly output?: Record<string, unknown>;
}

/** Plugins linked beside galactic: chained (loopback) and delegated to (host-device, static). */
const STANDARD_PLUGINS = ["loopback", "host-device", "static"];

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** A plugin directory with a recording galactic wrapper. */
export class RecordingPluginDir {
  /** The directory (a runtime's `cni_plugin_dirs` / CRI `bin_dir`, also `CNI_PATH`). */
  readonly dir: string;
  readonly #calls: string;

  private constructor(dir: string, calls: string) {
    this.dir = dir;
    this.#calls = calls;
  }

  /** Creates `dir/bin` and `dir/calls`; galactic reads its node configuration from `nodeConfig`. */
  static async create(dir: string, options: { nodeConfig: string }): Promise<RecordingPluginDir> {
    const bin = `${dir}/bin`;
    const calls = `${dir}/calls`;
    await Deno.mkdir(bin, { recursive: true });
    await Deno.mkdir(calls, { recursive: true });
    for (const plugin of STANDARD_PLUGINS) {
      await Deno.symlink(`${CNI_PATH}/${plugin}`, `${bin}/${plugin}`);
    }
    const exports = Object.entries({
      GALACTIC_NODE_CONFIG: options.nodeConfig,
      DENO_DIR: Deno.env.get("DENO_DIR"),
      HOME: Deno.env.get("HOME"),
      NO_COLOR: "1",
    }).filter(([, value]) => value !== undefined)
      .map(([name, value]) => `export ${name}=${shellQuote(value!)}`);
    const script = [
      "#!/bin/sh",
      "# Written by tests/privileged/support/runtime_plugins.ts: records the call, runs galactic.",
      ...exports,
      `call=${shellQuote(calls)}/$(date +%s%N)-$$`,
      "input=$(cat)",
      'printf \'%s\\n\' "$CNI_COMMAND" "$CNI_CONTAINERID" "$CNI_NETNS" "$CNI_IFNAME" "$CNI_ARGS" >"$call.env"',
      'printf \'%s\' "$input" >"$call.in"',
      `output=$(printf '%s' "$input" | ${shellQuote(`${REPO}/bin/galactic`)})`,
      "code=$?",
      'printf \'%s\' "$output" >"$call.out"',
      'echo "$code" >"$call.code"',
      "printf '%s\\n' \"$output\"",
      'exit "$code"',
      "",
    ].join("\n");
    await Deno.writeTextFile(`${bin}/galactic`, script, { mode: 0o755 });
    return new RecordingPluginDir(bin, calls);
  }

  /** Every call recorded so far, oldest first; VERSION calls are left out unless `all`. */
  async calls(options: { all?: boolean } = {}): Promise<RecordedCall[]> {
    const stems: string[] = [];
    for await (const entry of Deno.readDir(this.#calls)) {
      if (entry.name.endsWith(".code")) stems.push(entry.name.slice(0, -".code".length));
    }
    stems.sort();
    const calls: RecordedCall[] = [];
    for (const stem of stems) {
      const path = `${this.#calls}/${stem}`;
      const [command, containerId, netns, ifname, args] = (await Deno.readTextFile(`${path}.env`))
        .split("\n");
      if (command === "VERSION" && !options.all) continue;
      calls.push({
        command: command!,
        containerId: containerId!,
        netns: netns!,
        ifname: ifname!,
        args: Object.fromEntries(
          args!.split(";").filter((pair) => pair !== "").map((pair) => {
            const at = pair.indexOf("=");
            return [pair.slice(0, at), pair.slice(at + 1)];
          }),
        ),
        config: parseJson(await Deno.readTextFile(`${path}.in`)),
        code: Number((await Deno.readTextFile(`${path}.code`)).trim()),
        output: parseJson(await Deno.readTextFile(`${path}.out`)),
      });
    }
    return calls;
  }
}

function parseJson(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A one-line description of a call for messages and the ledger. */
export function describeCall(call: RecordedCall): string {
  const prev = call.config?.prevResult === undefined ? "no prevResult" : "prevResult";
  const netns = call.netns === "" ? 'CNI_NETNS=""' : "CNI_NETNS set";
  return `${call.command} (${netns}, ${prev}, exit ${call.code})`;
}
