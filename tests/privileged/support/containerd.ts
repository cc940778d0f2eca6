/**
 * containerd 1.6 (Debian 12) with its CRI plugin, as the kubelet drives it,
 * but run by the suite inside a "node" netns (`nsenter --net`: the plugins
 * it execs run there, the netns it creates stay visible to the suite) with
 * root, state and socket in a scratch directory. No registry: the sandbox
 * ("pause") image is a busybox-static rootfs turned into an image with
 * `podman import` + `podman save` and loaded with `ctr images import`.
 *
 * Config as measured in /work/shared/notes/real-runtimes.md: CRI `bin_dir`
 * is also `CNI_PATH`, `conf_dir` our own, `restrict_oom_score_adj` (runc
 * fails here without it), the native snapshotter (no overlay mounts needed).
 *
 * @module
 */

import { CriClient, type SandboxStatus } from "./cri/client.ts";
import { must, type Netns, run, waitFor } from "./kernel.ts";
import type { Podman } from "./podman.ts";

/** The sandbox image's reference. */
export const SANDBOX_IMAGE = "galactic.test/busybox:lab";

/** Why containerd cannot run here, or null. */
export async function containerdSkipReason(): Promise<string | null> {
  for (const program of ["containerd", "ctr", "runc"]) {
    if ((await run([program, "--version"])).code !== 0) {
      return `no ${program} (apt-get install containerd runc)`;
    }
  }
  return null;
}

/** A running containerd confined to a scratch directory, and a CRI client to it. */
export class Containerd {
  readonly #dir: string;
  readonly #daemon: Deno.ChildProcess;
  /** CRI client (deadlines sized for the lab VM). */
  readonly cri: CriClient;
  readonly #sandboxes = new Set<string>();

  private constructor(dir: string, daemon: Deno.ChildProcess, cri: CriClient) {
    this.#dir = dir;
    this.#daemon = daemon;
    this.cri = cri;
  }

  get #socket(): string {
    return `${this.#dir}/containerd.sock`;
  }

  /**
   * Writes the config, starts containerd in `node` and waits for its CRI
   * service. `networkDir` must already hold the conflist (CRI loads the first
   * one); `pluginDir` is its `bin_dir`.
   */
  static async start(
    dir: string,
    options: { node: Netns; pluginDir: string; networkDir: string; deadlineMs: number },
  ): Promise<Containerd> {
    await Deno.mkdir(dir, { recursive: true });
    const config = `${dir}/config.toml`;
    await Deno.writeTextFile(config, configToml(dir, options));
    const log = await Deno.open(`${dir}/containerd.log`, { create: true, append: true });
    const daemon = new Deno.Command("nsenter", {
      args: [`--net=/run/netns/${options.node.name}`, "containerd", "--config", config],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    daemon.stdout.pipeTo(log.writable, { preventClose: true }).catch(() => {});
    daemon.stderr.pipeTo(log.writable).catch(() => {});
    const cri = CriClient.connect(`${dir}/containerd.sock`, { deadlineMs: options.deadlineMs });
    const containerd = new Containerd(dir, daemon, cri);
    await waitFor("containerd's CRI service", async () => {
      try {
        return await cri.version();
      } catch {
        return undefined;
      }
    }, { timeoutMs: options.deadlineMs, intervalMs: 500 });
    return containerd;
  }

  /** Builds the sandbox image from `rootfs` with podman and imports it. */
  async importSandboxImage(podman: Podman, rootfs: string): Promise<void> {
    const tarball = `${this.#dir}/rootfs.tar`;
    const archive = `${this.#dir}/image.tar`;
    await must(["tar", "-C", rootfs, "-cf", tarball, "."]);
    await podman.must("import", "--change", 'CMD ["/bin/sleep","86400"]', tarball, SANDBOX_IMAGE);
    await podman.must("save", "--format", "docker-archive", "-o", archive, SANDBOX_IMAGE);
    await must(["ctr", "--address", this.#socket, "-n", "k8s.io", "images", "import", archive]);
  }

  /** RunPodSandbox for a pod of namespace "default"; returns the sandbox id. */
  async runPod(name: string): Promise<string> {
    const id = await this.cri.runPodSandbox({
      name,
      namespace: "default",
      uid: crypto.randomUUID(),
    });
    this.#sandboxes.add(id);
    return id;
  }

  /** PodSandboxStatus, with the sandbox's netns path from the verbose info. */
  async status(id: string): Promise<SandboxStatus & { netns: string }> {
    const status = await this.cri.podSandboxStatus(id);
    const spec = (status.info.info as {
      runtimeSpec?: { linux?: { namespaces?: { type: string; path?: string }[] } };
    } | undefined)?.runtimeSpec;
    const netns = spec?.linux?.namespaces?.find((ns) => ns.type === "network")?.path ?? "";
    return { ...status, netns };
  }

  /** StopPodSandbox. */
  stopPod(id: string): Promise<void> {
    return this.cri.stopPodSandbox(id);
  }

  /** RemovePodSandbox. */
  async removePod(id: string): Promise<void> {
    await this.cri.removePodSandbox(id);
    this.#sandboxes.delete(id);
  }

  /** Removes what a failed test left, then stops containerd (its shims go with the sandboxes). */
  async close(): Promise<void> {
    for (const id of [...this.#sandboxes]) {
      await this.cri.stopPodSandbox(id).catch(() => {});
      await this.removePod(id).catch((e) => console.error(`leaving sandbox ${id}: ${e}`));
    }
    this.cri.close();
    try {
      this.#daemon.kill("SIGTERM");
    } catch { /* exited */ }
    const status = await this.#daemon.status;
    // Reported, not asserted: close runs in `finally`, where a throw would hide the test's error.
    if (!status.success && status.signal !== "SIGTERM") {
      console.error(`containerd exited ${status.code}; see ${this.#dir}/containerd.log`);
    }
  }
}

function configToml(
  dir: string,
  options: { pluginDir: string; networkDir: string },
): string {
  const q = (value: string) => JSON.stringify(value);
  return [
    "version = 2",
    `root = ${q(`${dir}/root`)}`,
    `state = ${q(`${dir}/state`)}`,
    // Plugins this suite does not use and that want host paths or kernels
    // features the lab VM lacks.
    "disabled_plugins = [" + [
      "io.containerd.snapshotter.v1.aufs",
      "io.containerd.snapshotter.v1.btrfs",
      "io.containerd.snapshotter.v1.devmapper",
      "io.containerd.snapshotter.v1.zfs",
      "io.containerd.internal.v1.opt",
      "io.containerd.tracing.processor.v1.otlp",
    ].map(q).join(", ") + "]",
    "[grpc]",
    `  address = ${q(`${dir}/containerd.sock`)}`,
    "[ttrpc]",
    `  address = ${q(`${dir}/containerd.sock.ttrpc`)}`,
    '[plugins."io.containerd.grpc.v1.cri"]',
    `  sandbox_image = ${q(SANDBOX_IMAGE)}`,
    "  restrict_oom_score_adj = true",
    '  [plugins."io.containerd.grpc.v1.cri".containerd]',
    '    snapshotter = "native"',
    '  [plugins."io.containerd.grpc.v1.cri".cni]',
    `    bin_dir = ${q(options.pluginDir)}`,
    `    conf_dir = ${q(options.networkDir)}`,
    "",
  ].join("\n");
}
