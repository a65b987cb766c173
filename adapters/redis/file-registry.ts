import { silentLogger, type Logger } from '../../src/logger.js';
import type { Announcer } from '../../machines/registry/announce.js';
import type { FileEntry } from '../../machines/registry/protocol.js';
import { memoryFileRegistry, type FileRegistry } from '../../machines/registry/registry.js';
import { followChanges, recoverWith } from './changes.js';
import type { RedisCluster } from './cluster.js';

/** A change to the peer list, as published on `{prefix}rg:dir` in the one order every process applies. */
type Change =
  | { t: 'add'; id: string; files: FileEntry[]; p: string }
  | { t: 'update'; id: string; files: FileEntry[]; p: string }
  | { t: 'rm'; id: string; p: string }
  | { t: 'announce'; p: string; peers: [id: string, files: FileEntry[]][] };

/** The registry protocol's {@link FileRegistry} shared by the processes of a cluster. */
export interface RedisFileRegistry extends FileRegistry {
  /**
   * Sends peer `id` (held here) the announcements queued for it now: give it
   * to the registry's router as `beforeDeliver`, so a relay from another
   * process never overtakes the `RegisterPeer` of its sender.
   */
  flush(id: string): void;
}

/**
 * The registry protocol's {@link FileRegistry} shared by every process of a
 * cluster: peers on different processes see each other's lists and their
 * changes, as peers of one process do.
 *
 * Each process keeps a mirror of every peer's list, so `Welcome` and the
 * relay checks never wait on Redis. A change is written to this process's
 * hash `{prefix}rg:m:{process}` (id → list) and published on
 * `{prefix}rg:dir`; every other process applies it and announces it to its
 * own peers through the server's announcer (`RegisterPeer`, `UpdatePeer`,
 * `UnregisterPeer`, coalesced into `Batch` frames as on one process). The
 * registry's router must be made with `beforeDeliver: registry.flush`, so that
 * a relay from a newcomer reaches a peer after the newcomer's `RegisterPeer`. A process
 * found dead has its peers unregistered everywhere, within the presence TTL
 * plus one heartbeat.
 *
 * @example
 * ```ts
 * let registry: RedisFileRegistry | undefined;
 * const router = await redisRouter<ServerMessage>(cluster, encodeOnce(serverCodec()), {
 *   namespace: 'rg',
 *   beforeDeliver: (id) => registry?.flush(id),
 * });
 * registry = await redisFileRegistry(cluster);
 * createRegistryServer({ router, registry });
 * ```
 */
export async function redisFileRegistry(
  cluster: RedisCluster,
  options: { logger?: Logger } = {},
): Promise<RedisFileRegistry> {
  const log = options.logger ?? silentLogger;
  const { redis, prefix, process: self } = cluster;
  const channel = `${prefix}rg:dir`;
  const hashPrefix = `${prefix}rg:m:`;
  const hashOf = (p: string) => `${hashPrefix}${p}`;
  cluster.ownKeys(hashPrefix);
  const ttl = Math.ceil(cluster.ttl / 1000);
  const mirror = memoryFileRegistry();
  /** The process holding each peer. */
  const owners = new Map<string, string>();
  let announcer: Pick<Announcer, 'announce' | 'registerPeer' | 'flush'> | undefined;

  const join = (id: string, files: FileEntry[], p: string) => {
    if (owners.has(id)) return;
    owners.set(id, p);
    mirror.add(id, files);
    announcer?.announce(id, announcer.registerPeer(id, files));
  };
  const depart = (id: string) => {
    owners.delete(id);
    if (mirror.remove(id)) announcer?.announce(id, { type: 'UnregisterPeer', detail: { peer: id } });
  };
  const apply = (change: Change) => {
    if (change.p === self) return; // applied here when made
    switch (change.t) {
      case 'add':
        return join(change.id, change.files, change.p);
      case 'update':
        if (owners.get(change.id) !== change.p) return;
        mirror.update(change.id, change.files);
        return announcer?.announce(change.id, { type: 'UpdatePeer', detail: { peer: change.id, files: change.files } });
      case 'rm':
        if (owners.get(change.id) === change.p) depart(change.id);
        return;
      case 'announce':
        for (const [id, files] of change.peers) join(id, files, change.p);
        return;
    }
  };

  const peersOf = async (p: string) =>
    Object.entries(await redis.hgetall(hashOf(p))).map(
      ([id, files]) => [id, JSON.parse(files) as FileEntry[]] as const,
    );
  const load = async () => {
    for (const p of await redis.zrange(`${prefix}procs`, 0, -1)) {
      if (p !== self) for (const [id, files] of await peersOf(p)) join(id, files, p);
    }
  };
  await followChanges(cluster, channel, { label: 'registry', logger: log, apply, load });

  const mine = () =>
    [...owners]
      .filter(([, p]) => p === self)
      .map(([id]) => [id, mirror.files(id)! as FileEntry[]] as [string, FileEntry[]]);

  /**
   * After an outage (or after being declared dead): write our peers back and
   * announce them, take in what the others wrote, and one TTL later
   * unregister remote peers that were not written back.
   */
  const resync = async () => {
    const peers = mine();
    const multi = redis.multi().del(hashOf(self));
    for (const [id, files] of peers) multi.hset(hashOf(self), id, JSON.stringify(files));
    multi.expire(hashOf(self), ttl);
    multi.publish(channel, JSON.stringify({ t: 'announce', p: self, peers } satisfies Change));
    await multi.exec();
    await load();
  };
  recoverWith(cluster, {
    label: 'registry',
    logger: log,
    resync,
    entries: () => owners,
    depart: (ids) => ids.forEach(depart),
    hashOf,
  });
  cluster.onBeat((pipeline) => void pipeline.expire(hashOf(self), ttl));

  const publish = (change: Change, write: (multi: ReturnType<typeof redis.multi>) => void) => {
    if (cluster.state === 'down') return;
    const multi = redis.multi();
    write(multi);
    multi.publish(channel, JSON.stringify(change));
    multi.exec().catch(() => {
      // Lost on the way (Redis went down): the resync on its return announces our peers again.
    });
  };

  return {
    attach(given) {
      announcer = given;
    },
    flush: (id) => announcer?.flush(id),
    add(id, files) {
      if (owners.has(id)) return false;
      owners.set(id, self);
      mirror.add(id, files);
      publish({ t: 'add', id, files: files as FileEntry[], p: self }, (multi) =>
        multi.hset(hashOf(self), id, JSON.stringify(files)).expire(hashOf(self), ttl),
      );
      return true;
    },
    update(id, files) {
      if (owners.get(id) !== self) return false;
      mirror.update(id, files);
      publish({ t: 'update', id, files: files as FileEntry[], p: self }, (multi) =>
        multi.hset(hashOf(self), id, JSON.stringify(files)),
      );
      return true;
    },
    remove(id) {
      if (owners.get(id) !== self) return false;
      owners.delete(id);
      mirror.remove(id);
      publish({ t: 'rm', id, p: self }, (multi) => multi.hdel(hashOf(self), id));
      return true;
    },
    has: (id) => owners.has(id),
    files: (id) => mirror.files(id),
    entries: () => mirror.entries(),
    get size() {
      return mirror.size;
    },
  };
}
