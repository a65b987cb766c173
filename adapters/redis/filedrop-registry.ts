import { silentLogger, type Logger } from '../../src/logger.js';
import type { Router } from '../../src/router.js';
import { generatePeerId, type ServerMessage } from '../../machines/filedrop/protocol.js';
import { memoryRegistry, type PeerRegistry } from '../../machines/filedrop/registry.js';
import { followChanges, recoverWith } from './changes.js';
import type { RedisCluster } from './cluster.js';

/** A change to the registry, as published on `{prefix}fd:dir` in the one order every process applies. */
type Change =
  | { t: 'add'; id: string; p: string }
  | { t: 'rm'; id: string; p: string }
  | { t: 'link'; r: string; s: string; p: string }
  | { t: 'announce'; p: string; ids: string[]; links: [receiver: string, sender: string][] };

/** filedrop's {@link PeerRegistry} shared by the processes of a cluster, with its code pool. */
export interface RedisPeerRegistry extends PeerRegistry {
  /**
   * A fresh code already claimed in Redis for this process (give it to the
   * server as `generateId`): a code shown to a sender is never held
   * elsewhere. When none is ready (a burst, or Redis down) it draws one from
   * `generate`, which `add` then claims.
   */
  draw(): string;
}

/** Options of {@link redisPeerRegistry}. */
export interface RedisPeerRegistryOptions {
  /** The filedrop router: tells this process's clients of partners that left elsewhere, closes a session whose code was lost. */
  router: Pick<Router<ServerMessage>, 'send' | 'close'>;
  /** New codes for the pool. @default generatePeerId */
  generate?: () => string;
  /** Codes claimed ahead, so that `draw` needs no round trip. @default 64 */
  pool?: number;
  /** @default silentLogger */
  logger?: Logger;
}

// Claims fresh codes for the pool: each one SET NX with the TTL; answers 1 for each won, 0 for each taken.
const CLAIM = `
local won = {}
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, ARGV[1], 'NX', 'EX', ARGV[2]) then won[i] = 1 else won[i] = 0 end
end
return won
`;

// Takes a code for a connected peer and tells every process, in one step: the code's key must be
// free or ours already (a pool code). 1 when taken; when another process holds it, that process
// (nothing is published).
const ADD = `
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[4], '1')
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[5])
return 1
`;

// The heartbeat's refresh of every code this process holds or has in its pool: rewritten (so they
// come back after Redis restarts empty) unless another process took one meanwhile (possible only
// for a code handed out while Redis was down); answers the indexes of those.
const REFRESH = `
local lost = {}
for i, k in ipairs(KEYS) do
  local holder = redis.call('GET', k)
  if holder == false or holder == ARGV[1] then
    redis.call('SET', k, ARGV[1], 'EX', ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
`;

/** Keys per Lua call of the refresh. */
const BATCH = 500;

/**
 * filedrop's {@link PeerRegistry} shared by every process of a cluster: a
 * receiver on one process reaches a sender on another by its code, and a
 * code nobody holds on any process gets `peer not exists`.
 *
 * - **Codes are claimed atomically.** A code is a key
 *   `{prefix}fd:c:{code}` → process, taken with SET NX and the presence TTL
 *   and rewritten by every heartbeat of its process. {@link RedisPeerRegistry.draw}
 *   hands out codes claimed ahead (a pool), so a code is owned before any
 *   sender sees it; a code from elsewhere is claimed by `add` (one Lua
 *   call: claim, record, publish), and should another process have it the
 *   session is closed with 1013 (try again) and its client reconnects.
 * - **Each process keeps a mirror** of every code and of the links of its
 *   own clients, so the per-message checks (`has`, `isLinked`) never wait on
 *   Redis. Changes are published on `{prefix}fd:dir`; a link is published
 *   before the `request` that made it is relayed, on the same connection, so
 *   it reaches the sender's process first.
 * - **Departures.** `remove` returns the partners held by this process
 *   (the session tells them); the process of each other partner tells its
 *   own, when the change reaches it. A process found dead (its presence
 *   older than the TTL) has its codes dropped everywhere and its clients'
 *   partners told, as for a disconnect.
 * - **Redis down:** codes are handed out and checked on this process alone;
 *   when Redis returns, every process writes its codes back and announces
 *   them, and one TTL later forgets remote codes that were not written back.
 *
 * @example
 * ```ts
 * const cluster = await connectRedis(url);
 * const router = await redisRouter<ServerMessage>(cluster, serverCodec(), { namespace: 'fd' });
 * const registry = await redisPeerRegistry(cluster, { router });
 * createFileDropServer({ router, registry, generateId: registry.draw });
 * ```
 */
export async function redisPeerRegistry(
  cluster: RedisCluster,
  options: RedisPeerRegistryOptions,
): Promise<RedisPeerRegistry> {
  const log = options.logger ?? silentLogger;
  const { router } = options;
  const generate = options.generate ?? generatePeerId;
  const poolSize = options.pool ?? 64;
  const { redis, prefix, process: self } = cluster;
  const channel = `${prefix}fd:dir`;
  const codeKey = (code: string) => `${prefix}fd:c:${code}`;
  const hashOf = (p: string) => `${prefix}fd:m:${p}`;
  cluster.ownKeys(`${prefix}fd:m:`);
  const ttlSeconds = String(Math.ceil(cluster.ttl / 1000));
  const mirror = memoryRegistry();
  /** The process holding each code, in the mirror. */
  const owners = new Map<string, string>();
  /** Codes claimed ahead for `draw`. */
  const pool = new Set<string>();
  /** The senders each of this process's receivers asked (for the announce after an outage). */
  const asked = new Map<string, Set<string>>();
  const local = (id: string) => owners.get(id) === self;

  /** Forgets `id` (held by another process) and tells this process's clients that talked with it. */
  const depart = (id: string) => {
    owners.delete(id);
    for (const partner of mirror.remove(id)) {
      if (local(partner)) router.send(partner, { type: 'peer not exists', detail: { peer: id } });
    }
  };
  const learn = (id: string, p: string) => {
    if (owners.has(id)) return;
    owners.set(id, p);
    mirror.add(id);
  };
  const apply = (change: Change) => {
    if (change.p === self) return; // applied here when made
    switch (change.t) {
      case 'add':
        return learn(change.id, change.p);
      case 'rm':
        if (owners.get(change.id) === change.p) depart(change.id);
        return;
      case 'link':
        return mirror.link(change.r, change.s);
      case 'announce':
        for (const id of change.ids) learn(id, change.p);
        for (const [r, s] of change.links) mirror.link(r, s);
        return;
    }
  };

  /** The codes of process `p` as written in Redis. */
  const codesOf = async (p: string) => Object.keys(await redis.hgetall(hashOf(p)));
  /** Takes in the codes the other processes wrote to Redis. */
  const load = async () => {
    for (const p of await redis.zrange(`${prefix}procs`, 0, -1)) {
      if (p !== self) for (const id of await codesOf(p)) learn(id, p);
    }
  };
  await followChanges(cluster, channel, { label: 'filedrop', logger: log, apply, load });

  const mine = () => [...owners].filter(([, p]) => p === self).map(([id]) => id);

  let filling = false;
  const fill = async () => {
    if (filling || cluster.state === 'down' || pool.size >= poolSize / 2) return;
    filling = true;
    try {
      const fresh = [...new Set(Array.from({ length: poolSize - pool.size }, generate))].filter((c) => !owners.has(c));
      const won = (await redis.eval(CLAIM, fresh.length, ...fresh.map(codeKey), self, ttlSeconds)) as number[];
      fresh.forEach((code, i) => {
        if (won[i] === 1 && !owners.has(code)) pool.add(code);
      });
    } catch (error) {
      log.warn('redis: filedrop code pool not refilled', { error: (error as Error).message });
    } finally {
      filling = false;
    }
  };
  await fill();

  /** Rewrites the keys of every code held or pooled here; a code another process took is given up. */
  const refresh = async () => {
    const held = mine();
    const codes = [...held, ...pool];
    try {
      for (let at = 0; at < codes.length; at += BATCH) {
        const batch = codes.slice(at, at + BATCH);
        const lost = (await redis.eval(REFRESH, batch.length, ...batch.map(codeKey), self, ttlSeconds)) as number[];
        for (const index of lost) lose(batch[index - 1]!);
      }
    } catch {
      // Redis went again: the next heartbeat after it returns catches up.
    }
  };
  /**
   * Another process (`holder`, when known) holds `code`: both handed it out at once, or while Redis
   * was down. Ours goes, and the holder's is learnt: its `add` may have been published before our
   * own answer came back (another connection), when this process still held the code and ignored it.
   */
  const lose = (code: string, holder?: string) => {
    if (pool.delete(code) || !local(code)) return;
    log.warn('redis: filedrop code held by another process; session closed', { code });
    owners.delete(code);
    asked.delete(code);
    mirror.remove(code);
    router.close(code, 1013, 'code taken, reconnect');
    if (holder) learn(code, holder);
  };

  /**
   * After an outage (or after being declared dead): write our codes back and
   * announce them with our clients' links, take in what the others wrote
   * back, and one TTL later forget remote codes that were not written back.
   */
  const resync = async () => {
    const ids = mine();
    const links: [string, string][] = [];
    for (const [r, senders] of asked) for (const s of senders) if (mirror.isLinked(r, s)) links.push([r, s]);
    const multi = redis.multi().del(hashOf(self));
    for (const id of ids) multi.hset(hashOf(self), id, '1');
    multi.expire(hashOf(self), Number(ttlSeconds));
    multi.publish(channel, JSON.stringify({ t: 'announce', p: self, ids, links } satisfies Change));
    await multi.exec();
    await load();
    void fill();
  };
  recoverWith(cluster, {
    label: 'filedrop',
    logger: log,
    resync,
    entries: () => owners,
    depart: (ids) => ids.forEach(depart),
    hashOf,
  });
  cluster.onBeat((pipeline) => {
    pipeline.expire(hashOf(self), Number(ttlSeconds));
    void refresh();
  });

  const send = (change: Change) => {
    if (cluster.state === 'up') void redis.publish(channel, JSON.stringify(change)).catch(() => {});
  };

  return {
    draw() {
      for (const code of pool) {
        pool.delete(code);
        void fill();
        return code;
      }
      void fill();
      return generate();
    },
    add(id) {
      if (owners.has(id)) return false;
      pool.delete(id);
      owners.set(id, self);
      mirror.add(id);
      if (cluster.state === 'up') {
        const change = JSON.stringify({ t: 'add', id, p: self } satisfies Change);
        redis
          .eval(ADD, 2, codeKey(id), hashOf(self), self, ttlSeconds, channel, id, change)
          .then((taken) => {
            if (taken !== 1) lose(id, String(taken));
          })
          .catch(() => {
            // Redis went down on the way: the heartbeat after it returns claims the code.
          });
      }
      return true;
    },
    remove(id) {
      if (!local(id)) return [];
      owners.delete(id);
      asked.delete(id);
      const partners = mirror.remove(id).filter(local);
      if (cluster.state === 'up') {
        // The key is ours: a code another process took was given up in `lose`, before this.
        void redis
          .multi()
          .del(codeKey(id))
          .hdel(hashOf(self), id)
          .publish(channel, JSON.stringify({ t: 'rm', id, p: self } satisfies Change))
          .exec()
          .catch(() => {});
      }
      return partners;
    },
    has: (id) => owners.has(id),
    link(receiver, sender) {
      if (mirror.isLinked(receiver, sender) || !owners.has(receiver) || !owners.has(sender)) return;
      mirror.link(receiver, sender);
      if (local(receiver)) asked.set(receiver, (asked.get(receiver) ?? new Set()).add(sender));
      send({ t: 'link', r: receiver, s: sender, p: self });
    },
    isLinked: (receiver, sender) => mirror.isLinked(receiver, sender),
    get peers() {
      return mirror.peers;
    },
    get pairs() {
      return mirror.pairs;
    },
  };
}
