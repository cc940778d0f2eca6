/**
 * A minimal CRI v1 client: the calls the kubelet makes around a pod's
 * network (run, status, stop, remove a pod sandbox), over containerd's unix
 * socket. Debian 12 has no `crictl`; the runtimes suite drives containerd's
 * CRI plugin with this instead. Test-only: the gRPC packages it loads are
 * never reachable from main.ts.
 *
 * @module
 */

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO = new URL("./runtime_v1.proto", import.meta.url).pathname;

/** What RunPodSandbox gets from the suite: the pod's identity. */
export interface SandboxSpec {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
}

/** The part of PodSandboxStatus the suite reads. */
export interface SandboxStatus {
  readonly id: string;
  readonly state: "SANDBOX_READY" | "SANDBOX_NOTREADY";
  /** Pod IPs: `network.ip` then `network.additional_ips`. */
  readonly ips: string[];
  /** The verbose `info` map, each value parsed as JSON. */
  readonly info: Record<string, unknown>;
}

type Callback<T> = (error: grpc.ServiceError | null, response: T) => void;
type Unary = (request: unknown, options: grpc.CallOptions, callback: Callback<unknown>) => void;

/** A connection to a CRI runtime service. */
export class CriClient {
  readonly #client: grpc.Client;
  readonly #deadlineMs: number;

  private constructor(client: grpc.Client, deadlineMs: number) {
    this.#client = client;
    this.#deadlineMs = deadlineMs;
  }

  /** Connects to the runtime's socket; each call gets `deadlineMs`. */
  static connect(socket: string, options: { deadlineMs: number }): CriClient {
    const definition = protoLoader.loadSync(PROTO, {
      keepCase: true,
      enums: String,
      longs: String,
      defaults: true,
    });
    const loaded = grpc.loadPackageDefinition(definition) as unknown as {
      runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor } };
    };
    const client = new loaded.runtime.v1.RuntimeService(
      `unix://${socket}`,
      grpc.credentials.createInsecure(),
    );
    return new CriClient(client, options.deadlineMs);
  }

  #call<T>(method: string, request: unknown): Promise<T> {
    const fn = (this.#client as unknown as Record<string, Unary>)[method]!.bind(this.#client);
    const deadline = new Date(Date.now() + this.#deadlineMs);
    return new Promise<T>((resolve, reject) => {
      fn(request, { deadline }, (error, response) => {
        if (error) reject(new Error(`CRI ${method}: ${error.details || error.message}`));
        else resolve(response as T);
      });
    });
  }

  /** The runtime's name and version. */
  async version(): Promise<string> {
    const reply = await this.#call<{ runtime_name: string; runtime_version: string }>(
      "Version",
      { version: "v1" },
    );
    return `${reply.runtime_name} ${reply.runtime_version}`;
  }

  /** RunPodSandbox; returns the sandbox id. */
  async runPodSandbox(spec: SandboxSpec): Promise<string> {
    const reply = await this.#call<{ pod_sandbox_id: string }>("RunPodSandbox", {
      config: {
        metadata: { name: spec.name, namespace: spec.namespace, uid: spec.uid, attempt: 0 },
        hostname: spec.name,
      },
    });
    return reply.pod_sandbox_id;
  }

  /** PodSandboxStatus, verbose. */
  async podSandboxStatus(id: string): Promise<SandboxStatus> {
    const reply = await this.#call<{
      status: { id: string; state: SandboxStatus["state"]; network?: PodNetwork };
      info: Record<string, string>;
    }>("PodSandboxStatus", { pod_sandbox_id: id, verbose: true });
    const network = reply.status.network;
    const ips = network
      ? [network.ip, ...network.additional_ips.map((entry) => entry.ip)].filter((ip) => ip !== "")
      : [];
    const info = Object.fromEntries(
      Object.entries(reply.info ?? {}).map(([key, value]) => [key, JSON.parse(value)]),
    );
    return { id: reply.status.id, state: reply.status.state, ips, info };
  }

  /** StopPodSandbox. */
  async stopPodSandbox(id: string): Promise<void> {
    await this.#call("StopPodSandbox", { pod_sandbox_id: id });
  }

  /** RemovePodSandbox. */
  async removePodSandbox(id: string): Promise<void> {
    await this.#call("RemovePodSandbox", { pod_sandbox_id: id });
  }

  /** Closes the channel. */
  close(): void {
    this.#client.close();
  }
}

interface PodNetwork {
  ip: string;
  additional_ips: { ip: string }[];
}
