/**
 * The node-local record of attachments this plugin owns: which container owns
 * which (VPC, attachment), with its VRF table. One JSON file replaced
 * atomically, read and written under the node lock; it is what table
 * allocation, sibling counting, DEL ownership and GC rely on.
 *
 * Lock order (never the reverse): attachment lock → VPC lock → node lock.
 *
 * The directory is the node's (see `lib/config/node_config.ts`); running as
 * root it must be a real directory owned by root that nobody else can write,
 * and no file in it is opened through a symlink (`no_follow.ts`).
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Identifier } from "../ids/mod.ts";
import { replaceFileSync } from "./atomic_file.ts";
import { type LockOptions, withLock } from "./lock.ts";
import { openNoFollow } from "./no_follow.ts";
import { requireRootOwned } from "./ownership.ts";

/** The records file is read whole; far beyond any node's attachments. */
const MAX_RECORDS_BYTES = 16 * 1024 * 1024;

/** A Kubernetes pod, as the runtime names it in `CNI_ARGS`. */
export interface PodRef {
  /** `K8S_POD_NAMESPACE`. */
  readonly namespace: string;
  /** `K8S_POD_NAME`. */
  readonly name: string;
}

/** One owned attachment. */
export interface AttachmentRecord {
  /** Network (configuration `name`) the attachment belongs to; GC is per network. */
  readonly network: string;
  /** base62 VPC text (padded). */
  readonly vpc: string;
  /** base62 attachment text (padded). */
  readonly attachment: string;
  /** Hex of the VPC value (groups siblings, names objects). */
  readonly vpcHex: string;
  /** Container id that owns the attachment's state. */
  readonly containerId: string;
  /** Interface name in the pod. */
  readonly ifname: string;
  /** Pod network namespace path at ADD. */
  readonly netns: string;
  readonly table: number;
  /** Node name the BGPVRFInstance was declared for. */
  readonly node: string;
  /**
   * What a teardown without the runtime's configuration needs (reclaiming a
   * vanished sandbox's attachment): the SRv6 locator, the delegate's IPAM and
   * the spec version. Absent from records written before they were kept.
   */
  readonly locator?: string;
  readonly ipam?: Record<string, unknown>;
  readonly cniVersion?: string;
  /**
   * Where the attachment's lifecycle stands; absent once ADD completed (and
   * in records written before phases existed). `adding`: the intent an ADD
   * writes before its first side effect (its table reserved, the VRF maybe
   * not yet created); `removing`: a DEL withdrew it from BGP, its kernel
   * objects may remain. Either way a killed verb left it for the next ADD,
   * DEL or GC to finish.
   */
  readonly phase?: AttachmentPhase;
  /** The owner's pod, when the runtime named it (only its new sandboxes may take over). */
  readonly pod?: PodRef;
}

/** An unfinished ADD or DEL (see {@linkcode AttachmentRecord.phase}). */
export type AttachmentPhase = "adding" | "removing";

interface StateFile {
  version: 1;
  attachments: Record<string, AttachmentRecord>;
}

/**
 * Owner of a record rebuilt from the kernel (`galactic state --rebuild`):
 * unknown, so any container's DEL tears it down, and no network's GC does.
 */
export const UNKNOWN_OWNER = "";

const RECORD_STRINGS = [
  "network",
  "vpc",
  "attachment",
  "vpcHex",
  "containerId",
  "ifname",
  "netns",
  "node",
] as const;

/** The records of a state file, or what is wrong with it (never its contents). */
export function parseStateFile(text: string): Record<string, AttachmentRecord> | string {
  let state: unknown;
  try {
    state = JSON.parse(text);
  } catch {
    return `not valid JSON (${text.length} bytes)`;
  }
  const file = state as Partial<StateFile> | null;
  if (typeof file !== "object" || file === null || Array.isArray(file)) return "not a JSON object";
  if (file.version !== 1) return "not format version 1";
  const { attachments } = file;
  if (typeof attachments !== "object" || attachments === null || Array.isArray(attachments)) {
    return "no attachments map";
  }
  for (const [key, record] of Object.entries(attachments)) {
    const name = /^[0-9a-f]{1,12}\.[0-9a-f]{1,4}$/.test(key) ? key : "with an invalid key";
    if (typeof record !== "object" || record === null) return `record ${name} is not an object`;
    const field = RECORD_STRINGS.find((f) => typeof record[f] !== "string") ??
      (Number.isInteger(record.table) ? undefined : "table");
    if (field) return `record ${name} lacks a valid ${field}`;
    if (name !== key) return `record ${name}`;
  }
  return attachments;
}

/** Key of an attachment in the store. */
export function attachmentKey(ids: { vpc: Identifier; attachment: Identifier }): string {
  return `${ids.vpc.hex}.${ids.attachment.hex}`;
}

/** The store under a state directory. */
export class AttachmentStore {
  readonly #dir: string;
  readonly #lock: LockOptions;

  /** Opens the store in `dir` (created on first use); `lock` bounds and labels its lock waits. */
  constructor(dir: string, lock: LockOptions = {}) {
    this.#dir = dir;
    this.#lock = lock;
  }

  /** How this store's users wait for its locks (node, VPC, attachment). */
  get lockOptions(): LockOptions {
    return this.#lock;
  }

  /** Path of the node-wide lock (table allocation, record updates). */
  get nodeLock(): string {
    return `${this.#dir}/node.lock`;
  }

  /** Path of the lock serialising ADD/DEL of one attachment. */
  attachmentLock(key: string): string {
    return `${this.#dir}/attachment-${key}.lock`;
  }

  /** Path of the lock serialising BGPVRFInstance decisions of one VPC. */
  vpcLock(vpcHex: string): string {
    return `${this.#dir}/vpc-${vpcHex}.lock`;
  }

  /**
   * Creates the directory and verifies it; code 5 naming it when that fails.
   * Synchronous calls, as for every file of the store: each trip through the
   * runtime's thread pool is latency the runtime waits for.
   */
  // deno-lint-ignore require-await
  async ensureDir(): Promise<void> {
    try {
      Deno.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new CniError(
        ErrorCode.IoFailure,
        `cannot create state dir ${this.#dir}: ${(error as Error).message}`,
      );
    }
    const info = Deno.lstatSync(this.#dir);
    if (!info.isDirectory) {
      throw new CniError(
        ErrorCode.IoFailure,
        `refusing state dir ${this.#dir}: not a directory (a symbolic link?)`,
      );
    }
    requireRootOwned(this.#dir, info, { what: "state dir" });
  }

  /** Path of the records file. */
  get recordsFile(): string {
    return `${this.#dir}/attachments.json`;
  }

  /**
   * All records (a consistent snapshot: the file is replaced atomically). A
   * file that is not what this plugin writes fails with code 5 and the
   * recovery, never as "nothing recorded": guessing would let GC tear down
   * live attachments and ADD reuse their tables.
   */
  // deno-lint-ignore require-await
  async read(): Promise<Record<string, AttachmentRecord>> {
    const path = this.recordsFile;
    let text: string;
    try {
      text = readBounded(path);
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return {};
      if (error instanceof CniError) throw error;
      throw new CniError(ErrorCode.IoFailure, `cannot read ${path}: ${(error as Error).name}`);
    }
    const parsed = parseStateFile(text);
    if (typeof parsed === "string") {
      throw new CniError(
        ErrorCode.IoFailure,
        `state file ${path} is corrupt (${parsed}); refusing to guess which attachments exist. ` +
          `Run "galactic state --rebuild --state-dir ${this.#dir}": it keeps the file aside ` +
          `and records the attachments the kernel still has`,
      );
    }
    return parsed;
  }

  /**
   * Keeps the records file aside as `attachments.json.corrupt-<time>` and
   * writes `records` instead, under the node lock; returns the kept path.
   */
  async replaceCorrupt(records: Record<string, AttachmentRecord>): Promise<string> {
    await this.ensureDir();
    return await withLock(this.nodeLock, async () => {
      const kept = `${this.recordsFile}.corrupt-${new Date().toISOString().replaceAll(":", "")}`;
      try {
        await Deno.rename(this.recordsFile, kept);
      } catch (error) {
        throw new CniError(
          ErrorCode.IoFailure,
          `cannot keep ${this.recordsFile} aside: ${(error as Error).message}`,
        );
      }
      this.#write(records);
      return kept;
    }, this.#lock);
  }

  /**
   * Read-modify-write under the node lock. `change` edits the map in place
   * and returns a value; the file is rewritten only if the map changed.
   */
  async update<T>(
    change: (records: Record<string, AttachmentRecord>) => T | Promise<T>,
  ): Promise<T> {
    await this.ensureDir();
    return await withLock(this.nodeLock, async () => {
      const records = await this.read();
      const before = JSON.stringify(records);
      const value = await change(records);
      if (JSON.stringify(records) !== before) this.#write(records);
      return value;
    }, this.#lock);
  }

  #write(records: Record<string, AttachmentRecord>): void {
    const path = this.recordsFile;
    const body: StateFile = { version: 1, attachments: records };
    const bytes = new TextEncoder().encode(JSON.stringify(body, null, 1));
    try {
      replaceFileSync(path, bytes, {
        mode: 0o600,
        temporaryName: (random) => `${path.slice(path.lastIndexOf("/") + 1)}.${random}.tmp`,
      });
    } catch (error) {
      throw new CniError(ErrorCode.IoFailure, `cannot write ${path}: ${(error as Error).message}`);
    }
  }
}

function readBounded(path: string): string {
  const file = openNoFollow(path, { read: true, what: "attachment records" });
  try {
    const size = file.statSync().size;
    if (size > MAX_RECORDS_BYTES) {
      throw new CniError(
        ErrorCode.IoFailure,
        `refusing ${path}: larger than ${MAX_RECORDS_BYTES} bytes`,
      );
    }
    const buffer = new Uint8Array(size);
    let length = 0;
    while (length < size) {
      const n = file.readSync(buffer.subarray(length));
      if (n === null) break;
      length += n;
    }
    return new TextDecoder().decode(buffer.subarray(0, length));
  } finally {
    file.close();
  }
}
