/**
 * The node-local record of attachments this plugin owns: which container owns
 * which (VPC, attachment), with its VRF table. One JSON file replaced
 * atomically, read and written under the node lock; it is what table
 * allocation, sibling counting, DEL ownership and GC rely on.
 *
 * Lock order (never the reverse): attachment lock → VPC lock → node lock.
 *
 * @module
 */

import { CniError, ErrorCode } from "../cni/errors.ts";
import type { Identifier } from "../ids/mod.ts";
import { type LockOptions, withLock } from "./lock.ts";

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
}

interface StateFile {
  version: 1;
  attachments: Record<string, AttachmentRecord>;
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

  /** Creates the directory; code 5 naming it when that fails. */
  async ensureDir(): Promise<void> {
    try {
      await Deno.mkdir(this.#dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new CniError(
        ErrorCode.IoFailure,
        `cannot create state dir ${this.#dir}: ${(error as Error).message}`,
      );
    }
  }

  /** All records (a consistent snapshot: the file is replaced atomically). */
  async read(): Promise<Record<string, AttachmentRecord>> {
    try {
      const state = JSON.parse(
        await Deno.readTextFile(`${this.#dir}/attachments.json`),
      ) as StateFile;
      return state.attachments ?? {};
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return {};
      throw new CniError(
        ErrorCode.IoFailure,
        `cannot read ${this.#dir}/attachments.json: ${(error as Error).message}`,
      );
    }
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
      if (JSON.stringify(records) !== before) await this.#write(records);
      return value;
    }, this.#lock);
  }

  async #write(records: Record<string, AttachmentRecord>): Promise<void> {
    const path = `${this.#dir}/attachments.json`;
    const temp = `${path}.${Deno.pid}.tmp`;
    const body: StateFile = { version: 1, attachments: records };
    try {
      await Deno.writeTextFile(temp, JSON.stringify(body, null, 1), { mode: 0o600 });
      await Deno.rename(temp, path);
    } catch (error) {
      await Deno.remove(temp).catch(() => {});
      throw new CniError(ErrorCode.IoFailure, `cannot write ${path}: ${(error as Error).message}`);
    }
  }
}
