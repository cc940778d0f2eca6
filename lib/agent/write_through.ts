/**
 * A watch cache made write-through for this process's own writes. The node
 * agent answers back-to-back ADDs of one VPC from its BGPVRFInstance watch
 * cache; the watch event of the object the agent itself just created (or
 * deleted) may not have arrived when the next ADD asks, which would cost that
 * ADD a create → 409 → get, or worse, after a delete, make it skip the
 * create of an object that is gone.
 *
 * So every create, replace and delete made through the wrapped client
 * ({@linkcode WriteThroughCache.wrap}) is remembered (the object the server
 * returned, or "deleted") and laid over the cache's list until the cache catches up: a
 * written object's entry is dropped once the cache shows the same
 * `resourceVersion` (compared for equality only: versions are opaque), a
 * deleted one's once the cache no longer lists the name, and any entry after
 * a bounded time ({@linkcode WRITE_THROUGH_TTL_MS}) so a missed event cannot
 * pin stale data.
 *
 * @module
 */

import type { KubeApi, KubeObject, Resource } from "../kube/api.ts";

/** How long an own write may shadow the watch cache at most, in milliseconds. */
export const WRITE_THROUGH_TTL_MS = 30_000;

/** The watch cache underneath (an informer of `lib/kube/client.ts` is one). */
export interface WatchCache {
  /** The objects as last seen by the watch. */
  list(): KubeObject[];
}

/** Options of {@linkcode writeThroughCache}. */
export interface WriteThroughOptions {
  /** Longest life of an entry (default {@linkcode WRITE_THROUGH_TTL_MS}). */
  readonly ttlMs?: number;
  /** Monotonic clock in milliseconds (default `performance.now`). */
  readonly now?: () => number;
}

/** A watch cache with this process's own writes laid over it. */
export interface WriteThroughCache {
  /** The cache's objects, with own writes not yet seen by the watch applied. */
  list(): KubeObject[];
  /** `api` with every successful create, replace and delete of the resource remembered here. */
  wrap(api: KubeApi): KubeApi;
  /** Number of own writes still laid over the cache (after dropping those it caught up with). */
  pending(): number;
}

interface Entry {
  /** The object as the server returned it; undefined: deleted. */
  readonly object: KubeObject | undefined;
  /** When the entry is dropped regardless. */
  readonly expires: number;
}

function sameResource(a: Resource, b: Resource): boolean {
  return a.group === b.group && a.plural === b.plural;
}

/** Makes `cache` (of `resource`) write-through for writes made through the returned `wrap`. */
export function writeThroughCache(
  cache: WatchCache,
  resource: Resource,
  options: WriteThroughOptions = {},
): WriteThroughCache {
  const ttlMs = options.ttlMs ?? WRITE_THROUGH_TTL_MS;
  const now = options.now ?? (() => performance.now());
  const entries = new Map<string, Entry>();

  const remember = (name: string, object: KubeObject | undefined): void => {
    entries.set(name, { object, expires: now() + ttlMs });
  };

  /** Drops the entries the cache caught up with or that expired; returns the cache's list. */
  const prune = (): KubeObject[] => {
    const cached = cache.list();
    if (entries.size === 0) return cached;
    const seen = new Map(cached.map((o) => [o.metadata.name, o]));
    const time = now();
    for (const [name, entry] of entries) {
      const current = seen.get(name);
      const caughtUp = entry.object === undefined ? current === undefined : current !== undefined &&
        current.metadata.resourceVersion === entry.object.metadata.resourceVersion;
      if (caughtUp || time >= entry.expires) entries.delete(name);
    }
    return cached;
  };

  return {
    list(): KubeObject[] {
      const cached = prune();
      if (entries.size === 0) return cached;
      const own = [...entries.values()].flatMap((e) => e.object ? [e.object] : []);
      return [...cached.filter((o) => !entries.has(o.metadata.name)), ...own];
    },

    wrap(api: KubeApi): KubeApi {
      const ours = (r: Resource): boolean => sameResource(r, resource);
      return {
        server: api.server,
        list: (r, o) => api.list(r, o),
        get: (r, name, o) => api.get(r, name, o),
        async create(r, object, o): Promise<KubeObject> {
          const stored = await api.create(r, object, o);
          if (ours(r)) remember(stored.metadata.name, stored);
          return stored;
        },
        async replace(r, object, o): Promise<KubeObject> {
          const stored = await api.replace(r, object, o);
          if (ours(r)) remember(stored.metadata.name, stored);
          return stored;
        },
        async delete(r, name, o): Promise<boolean> {
          const existed = await api.delete(r, name, o);
          // Gone either way: deleted now, or already absent.
          if (ours(r)) remember(name, undefined);
          return existed;
        },
        apiResources: (group, version, o) => api.apiResources(group, version, o),
        apiGroups: (o) => api.apiGroups(o),
        requestToken: (namespace, account, spec, o) =>
          api.requestToken(namespace, account, spec, o),
        close: () => api.close(),
      };
    },

    pending(): number {
      prune();
      return entries.size;
    },
  };
}
