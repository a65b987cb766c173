import type { Logger } from '../../src/logger.js';
import type { RedisCluster } from './cluster.js';

/**
 * Follows a shared directory's change channel: every message on `channel`
 * is parsed from JSON and handed to `apply`; one that is not JSON is
 * dropped with a `warn` line naming `label`. The changes that arrive while
 * `load` fills this process's mirror from Redis are held back and applied
 * after it, in the order they came, so none is lost or applied before what
 * it changes. Resolves once loaded and live.
 */
export async function followChanges<C>(
  cluster: RedisCluster,
  channel: string,
  options: { label: string; logger: Logger; apply: (change: C) => void; load?: () => Promise<void> },
): Promise<void> {
  const { label, logger, apply } = options;
  let held: C[] | undefined = [];
  await cluster.subscribe(channel, (raw) => {
    let change: C;
    try {
      change = JSON.parse(raw) as C;
    } catch {
      logger.warn(`redis: unreadable ${label} change dropped`, { size: raw.length });
      return;
    }
    if (held) held.push(change);
    else apply(change);
  });
  await options.load?.();
  for (const change of held) apply(change);
  held = undefined;
}

/** What {@link recoverWith} needs of a directory. */
export interface Recovery {
  /** Names the directory in log lines. */
  label: string;
  logger: Logger;
  /**
   * Writes this process's entries back to Redis, announces them and takes
   * in the entries the other processes wrote. Throws when Redis goes again.
   */
  resync: () => Promise<void>;
  /** Every entry of the mirror with the process holding it (this one's too). */
  entries: () => Iterable<[id: string, process: string]>;
  /** Forgets `ids`, held by other processes, and tells this process's clients that were talking with them. */
  depart: (ids: string[]) => void;
  /** The hash in which process `p` writes its entries. */
  hashOf: (p: string) => string;
  /** An entry's field in that hash. @default the id */
  field?: (id: string) => string;
}

/**
 * Wires a directory's recovery. When Redis returns, and when this process
 * learns it was declared dead (silent for longer than the TTL), `resync`
 * runs. One TTL after a resync that succeeded, when every live process has
 * written its entries back, the remote entries their process's hash no
 * longer holds (left or died during the outage) are departed. The entries
 * of another process found dead are departed at once.
 */
export function recoverWith(cluster: RedisCluster, recovery: Recovery): void {
  const { label, logger, resync, entries, depart, hashOf } = recovery;
  const field = recovery.field ?? ((id: string) => id);
  const self = cluster.process;
  const sweep = async () => {
    const remote = new Map<string, string[]>();
    for (const [id, p] of entries()) if (p !== self) remote.set(p, [...(remote.get(p) ?? []), id]);
    const missing: [string, string][] = [];
    for (const [p, ids] of remote) {
      const held = await cluster.redis.hmget(hashOf(p), ...ids.map(field));
      ids.forEach((id, i) => {
        if (held[i] === null) missing.push([id, p]);
      });
    }
    // Only those still held where they were: one may have moved while Redis answered.
    const now = new Map(entries());
    depart(missing.filter(([id, p]) => now.get(id) === p).map(([id]) => id));
  };
  const recover = async () => {
    try {
      await resync();
    } catch (error) {
      logger.warn(`redis: ${label} resync failed`, { error: (error as Error).message });
      return;
    }
    setTimeout(() => {
      // Redis went again: the next recovery sweeps.
      sweep().catch(() => {});
    }, cluster.ttl).unref();
  };
  cluster.onState((state) => {
    if (state === 'up') void recover();
  });
  cluster.onDead((p) => {
    if (p === self) return void recover();
    depart([...entries()].filter(([, owner]) => owner === p).map(([id]) => id));
  });
}
