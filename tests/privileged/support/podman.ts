/**
 * podman 4.3 (Debian 12) with its CNI backend, driven as a user would, but
 * inside a "node" netns (`nsenter --net`, so the plugin runs there and the
 * netns podman bind-mounts stay visible to the suite) and entirely under a
 * scratch directory: its own containers.conf (`CONTAINERS_CONF`), storage,
 * network config dir and plugin dir. No image: containers run a
 * busybox-static rootfs (`--rootfs`).
 *
 * What podman needs here is recorded in /work/shared/notes/real-runtimes.md:
 * runc (crun refuses the hybrid cgroups), explicit ulimits (no
 * CAP_SYS_RESOURCE), a cgroup2 mount in the lab VM.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { CommandOutput } from "../../../lib/iproute2/runner.ts";
import { must, type Netns, run } from "./kernel.ts";

/** Why podman cannot run here, or null. */
export async function podmanSkipReason(): Promise<string | null> {
  for (const program of ["podman", "runc"]) {
    if ((await run([program, "--version"])).code !== 0) {
      return `no ${program} (apt-get install podman runc)`;
    }
  }
  return null;
}

/** Makes `dir` a minimal root filesystem: busybox-static and its applet links. */
export async function busyboxRootfs(dir: string, busybox: string): Promise<void> {
  for (const sub of ["bin", "dev", "etc", "proc", "sys", "tmp", "run"]) {
    await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
  }
  await Deno.copyFile(busybox, `${dir}/bin/busybox`);
  await Deno.chmod(`${dir}/bin/busybox`, 0o755);
  for (const applet of ["sh", "sleep", "ip", "ping"]) {
    await Deno.symlink("busybox", `${dir}/bin/${applet}`);
  }
}

/**
 * The lab VM boots without a cgroup mount; runc needs one. On a host (or
 * once mounted) this does nothing.
 */
export async function ensureCgroupMount(): Promise<void> {
  const mounts = await Deno.readTextFile("/proc/self/mounts");
  if (/ \/sys\/fs\/cgroup (cgroup2|tmpfs|cgroup) /.test(mounts)) return;
  await must(["mount", "-t", "cgroup2", "none", "/sys/fs/cgroup"]);
}

/** What `podman inspect` says of a container's network. */
export interface PodmanNetworkView {
  /** The netns podman created (`NetworkSettings.SandboxKey`). */
  readonly sandbox: string;
  /** `IPAddress/IPPrefixLen` and `GlobalIPv6Address/GlobalIPv6PrefixLen` of the network. */
  readonly addresses: string[];
  readonly running: boolean;
}

/** A podman installation confined to one scratch directory, run in a node netns. */
export class Podman {
  readonly #dir: string;
  readonly #node: Netns;
  /** The network configuration directory (conflists). */
  readonly networkDir: string;

  private constructor(dir: string, node: Netns) {
    this.#dir = dir;
    this.#node = node;
    this.networkDir = `${dir}/networks`;
  }

  /** Writes containers.conf under `dir`; plugins come from `pluginDir` only. */
  static async create(
    dir: string,
    options: { node: Netns; pluginDir: string },
  ): Promise<Podman> {
    const podman = new Podman(dir, options.node);
    // podman refuses a longer runroot ("the specified runroot is longer than 50 characters").
    assert.ok(podman.#runroot.length <= 50, `podman runroot ${podman.#runroot} is too long`);
    await Deno.mkdir(podman.networkDir, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/containers.conf`,
      [
        "[containers]",
        'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]',
        "[engine]",
        'runtime = "runc"',
        "[network]",
        'network_backend = "cni"',
        `network_config_dir = ${JSON.stringify(podman.networkDir)}`,
        `cni_plugin_dirs = [${JSON.stringify(options.pluginDir)}]`,
        "",
      ].join("\n"),
    );
    return podman;
  }

  /** Installs a conflist (podman reads `<name>.conflist` from its network dir). */
  async addNetwork(conflist: Record<string, unknown>): Promise<void> {
    await Deno.writeTextFile(
      `${this.networkDir}/${conflist.name}.conflist`,
      JSON.stringify(conflist, null, 2),
    );
  }

  get #runroot(): string {
    return `${this.#dir}/run`;
  }

  /** `podman ARGS` in the node netns; the output, whatever the exit status. */
  exec(...args: string[]): Promise<CommandOutput> {
    return run(
      [
        ...["nsenter", `--net=/run/netns/${this.#node.name}`, "podman"],
        ...["--root", `${this.#dir}/root`, "--runroot", this.#runroot],
        ...["--storage-driver", "vfs", ...args],
      ],
      { env: { CONTAINERS_CONF: `${this.#dir}/containers.conf` } },
    );
  }

  /** `podman ARGS`; fails the test on a non-zero exit. */
  async must(...args: string[]): Promise<string> {
    const out = await this.exec(...args);
    assert.equal(out.code, 0, `podman ${args.join(" ")}: ${out.stderr.trim()}`);
    return out.stdout.trim();
  }

  /** Starts `/bin/sleep` detached from a rootfs on `network`; returns the full container id. */
  run(
    name: string,
    options: { network: string; rootfs: string; args?: readonly string[] },
  ): Promise<string> {
    return this.must(
      ...["run", "-d", "--name", name, "--network", options.network, ...options.args ?? []],
      ...["--rootfs", options.rootfs, "/bin/sleep", "3600"],
    );
  }

  /** The container's network as podman reports it. */
  async inspect(name: string, network: string): Promise<PodmanNetworkView> {
    const [view] = JSON.parse(await this.must("inspect", name)) as {
      State: { Running: boolean };
      NetworkSettings: {
        SandboxKey: string;
        Networks?: Record<string, Record<string, string | number>>;
      };
    }[];
    assert.ok(view, `podman inspect ${name}: nothing`);
    const net = view.NetworkSettings.Networks?.[network] ?? {};
    const addresses = [
      [net.IPAddress, net.IPPrefixLen],
      [net.GlobalIPv6Address, net.GlobalIPv6PrefixLen],
    ].filter(([address]) => address).map(([address, length]) => `${address}/${length}`);
    return { sandbox: view.NetworkSettings.SandboxKey, addresses, running: view.State.Running };
  }
}
