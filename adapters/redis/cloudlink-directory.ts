import { randomUUID } from 'node:crypto';
import { silentLogger, type Logger } from '../../src/logger.js';
import { memoryDirectory, Stage, type LobbyDirectory, type Role } from '../../machines/cloudlink/directory.js';
import type { ServerMessage } from '../../machines/cloudlink/protocol.js';
import { followChanges, recoverWith } from './changes.js';
import type { RedisCluster } from './cluster.js';

/** A change to the directory, as published on `{prefix}cl:dir` in the one order every process applies. */
type Change =
  | { t: 'join'; id: string; ugi: string; lobby: string; role: Role; p: string }
  | { t: 'leave'; id: string; p: string }
  | { t: 'stage'; host: string; peer: string; s: Stage; p: string }
  | { t: 'announce'; p: string; members: [id: string, ugi: string, lobby: string, role: Role][] }
  /** A relay from `id` (on `p`) to `mate` failed while Redis was down: `mate`'s process introduces them again. */
  | { t: 'sever'; id: string; mate: string; p: string; n: string };

/**
 * CloudLink's {@link LobbyDirectory} shared by every process of a cluster.
 *
 * Each process keeps a mirror of the whole directory, so the session's
 * checks (`isMember`, `areMates`, `stage`) stay synchronous. Joins and
 * leaves are written to Redis (a hash per process, `{prefix}cl:m:{process}`,
 * with the presence TTL) and published in one MULTI, and every process —
 * the writer too — applies them when they come back from the channel, so
 * all mirrors see every change in the same order and two joins racing on
 * two processes introduce their clients exactly once. On applying a change
 * each process tells its own clients: the newcomer's process tells the
 * newcomer of every mate, the mates' processes tell the mates of the
 * newcomer, and the same for SHUTDOWN_ACK on a leave. Handshake stages are
 * set at once here and published on the same connection as the relay that
 * follows, so they reach the other process first.
 *
 * A process that dies is cleared by whichever process's heartbeat sees its
 * presence expire: its entries vanish and every process tells its own
 * clients' mates with SHUTDOWN_ACK. While Redis is down, changes are applied
 * here only (clients on this process still meet); when it returns, each
 * process announces its members again and the mirrors are rebuilt. A relay
 * to a mate on another process fails meanwhile; the server tells the sender
 * SHUTDOWN_ACK for that mate (`sever`), and when Redis returns the mate's
 * process tells the mate SHUTDOWN_ACK for the sender and introduces the two
 * again (NEW_HOST / NEW_PEER to both), their handshake stage reset, so they
 * start it over.
 *
 * @example
 * ```ts
 * const cluster = await connectRedis(url);
 * const directory = await redisLobbyDirectory(cluster);
 * createCloudLinkServer({ router: await redisRouter(cluster, serverCodec()), directory });
 * ```
 */
export async function redisLobbyDirectory(
  cluster: RedisCluster,
  options: { logger?: Logger } = {},
): Promise<LobbyDirectory> {
  const log = options.logger ?? silentLogger;
  const { redis, prefix, process: self } = cluster;
  const channel = `${prefix}cl:dir`;
  const hashOf = (p: string) => `${prefix}cl:m:${p}`;
  cluster.ownKeys(`${prefix}cl:m:`);
  const ttlSeconds = Math.ceil(cluster.ttl / 1000);
  const mirror = memoryDirectory();
  /** Every member's process and place, in the mirror. */
  const owners = new Map<string, { p: string; ugi: string; lobby: string; role: Role }>();
  let send: (id: string, message: ServerMessage) => boolean = () => false;
  const local = (id: string) => owners.get(id)?.p === self;
  /** Pairs cut while Redis was down: a local sender and its mate on another process, by `${id}\n${mate}`. */
  const severed = new Map<string, [id: string, mate: string]>();
  /** `n` of the `sever` changes handled here lately: each comes twice. */
  const seenSevers = new Set<string>();

  const introduce = (id: string, role: Role, mates: string[], toNewcomer: boolean) => {
    for (const mate of mates) {
      if (toNewcomer) send(id, { type: role === 'host' ? 'NEW_PEER' : 'NEW_HOST', detail: { payload: mate } });
      if (local(mate)) send(mate, { type: role === 'host' ? 'NEW_HOST' : 'NEW_PEER', detail: { payload: id } });
    }
  };
  const depart = (id: string) => {
    const mates = mirror.leave(id);
    owners.delete(id);
    for (const mate of mates) if (local(mate)) send(mate, { type: 'SHUTDOWN_ACK', detail: { tx: id } });
  };
  const apply = (change: Change) => {
    switch (change.t) {
      case 'join': {
        if (owners.has(change.id)) return;
        owners.set(change.id, { p: change.p, ugi: change.ugi, lobby: change.lobby, role: change.role });
        const mates = mirror.join(change.id, change.ugi, change.lobby, change.role);
        introduce(change.id, change.role, mates, change.p === self);
        return;
      }
      case 'leave':
        if (owners.get(change.id)?.p === change.p) depart(change.id);
        return;
      case 'stage':
        if (change.p !== self) mirror.setStage(change.host, change.peer, change.s);
        return;
      case 'announce':
        // A member unknown here is introduced to this process's clients only: its own process
        // learns of ours from our announce, so each pair meets once.
        for (const [id, ugi, lobby, role] of change.members) {
          if (owners.has(id)) continue;
          owners.set(id, { p: change.p, ugi, lobby, role });
          introduce(id, role, mirror.join(id, ugi, lobby, role), false);
        }
        return;
      case 'sever': {
        // Every process resets the pair; the mate's process, which knows the mate is still there,
        // tells the mate the sender left and introduces the two again (the sender through the router).
        // Each is published twice (see resync): the second, known by its `n`, is let go.
        if (seenSevers.has(change.n)) return;
        seenSevers.add(change.n);
        setTimeout(() => seenSevers.delete(change.n), cluster.ttl * 2).unref();
        const { id, mate } = change;
        const sender = owners.get(id);
        if (sender?.p !== change.p || !mirror.areMates(id, mate)) return;
        const [host, peer] = sender.role === 'host' ? [id, mate] : [mate, id];
        mirror.setStage(host, peer, Stage.None);
        if (!local(mate)) return;
        send(mate, { type: 'SHUTDOWN_ACK', detail: { tx: id } });
        send(mate, { type: sender.role === 'host' ? 'NEW_HOST' : 'NEW_PEER', detail: { payload: id } });
        send(id, { type: sender.role === 'host' ? 'NEW_PEER' : 'NEW_HOST', detail: { payload: mate } });
        return;
      }
    }
  };

  /** Fills the mirror from Redis, without introductions (used at start, when no client is here). */
  const load = async () => {
    const procs = await redis.zrange(`${prefix}procs`, 0, -1);
    for (const p of procs) {
      const entries = await redis.hgetall(hashOf(p));
      for (const [id, value] of Object.entries(entries)) {
        const [ugi, lobby, role] = JSON.parse(value) as [string, string, Role];
        apply({ t: 'join', id, ugi, lobby, role, p });
      }
    }
  };
  await followChanges(cluster, channel, { label: 'directory', logger: log, apply, load });

  const mine = () =>
    [...owners]
      .filter(([, o]) => o.p === self)
      .map(([id, o]) => [id, o.ugi, o.lobby, o.role] as [string, string, string, Role]);

  /**
   * After an outage (or after being declared dead): write our members back
   * and announce them, then take in the members other processes wrote back
   * before we were listening again. Each unknown member is introduced to this
   * process's clients only; its own process introduces ours to it, so each
   * pair meets once. One TTL later, when every live process has written its
   * members back, remote members missing from Redis have left (or died)
   * during the outage: their mates here are told.
   */
  const resync = async () => {
    const members = mine();
    const multi = redis.multi().del(hashOf(self));
    for (const [id, ugi, lobby, role] of members) multi.hset(hashOf(self), id, JSON.stringify([ugi, lobby, role]));
    multi.expire(hashOf(self), ttlSeconds);
    multi.publish(channel, JSON.stringify({ t: 'announce', p: self, members } satisfies Change));
    await multi.exec();
    for (const p of await redis.zrange(`${prefix}procs`, 0, -1)) {
      if (p === self) continue;
      const entries = Object.entries(await redis.hgetall(hashOf(p)));
      const found = entries.map(([id, value]) => [id, ...(JSON.parse(value) as [string, string, Role])]);
      apply({ t: 'announce', p, members: found as Extract<Change, { t: 'announce' }>['members'] });
    }
    // Pairs cut during the outage whose sender is still here: their mates' processes meet them again.
    const cut = [...severed.values()].filter(([id]) => local(id));
    severed.clear();
    if (cut.length === 0) return;
    const frames = cut.map(([id, mate]) =>
      JSON.stringify({ t: 'sever', id, mate, p: self, n: randomUUID() } satisfies Change),
    );
    const pipeline = redis.pipeline();
    for (const frame of frames) pipeline.publish(channel, frame);
    try {
      await pipeline.exec();
    } catch (error) {
      // Redis went again: the next recovery publishes them.
      for (const [id, mate] of cut) severed.set(`${id}\n${mate}`, [id, mate]);
      throw error;
    }
    // Once more a third of a TTL later: PUBLISH reaches only processes subscribed again, and the
    // mate's process may come back after ours (the copy it already had is let go by its `n`).
    setTimeout(() => {
      if (cluster.state !== 'up') return;
      const again = redis.pipeline();
      for (const frame of frames) again.publish(channel, frame);
      again.exec().catch(() => {});
    }, cluster.ttl / 3).unref();
  };
  recoverWith(cluster, {
    label: 'directory',
    logger: log,
    resync,
    entries: () => [...owners].map(([id, owner]) => [id, owner.p]),
    depart: (ids) => ids.forEach(depart),
    hashOf,
  });
  cluster.onBeat((pipeline) => void pipeline.expire(hashOf(self), ttlSeconds));

  const publish = (change: Change, write: (multi: ReturnType<typeof redis.multi>) => void) => {
    if (cluster.state === 'down') return apply(change);
    const multi = redis.multi();
    write(multi);
    multi.publish(channel, JSON.stringify(change));
    multi.exec().catch((error: unknown) => {
      // Lost on the way (Redis went down): apply here; the resync on return tells the others.
      log.warn('redis: directory change applied locally only', { error: (error as Error).message });
      apply(change);
    });
  };

  return {
    join(id, ugi, lobby, role) {
      publish({ t: 'join', id, ugi, lobby, role, p: self }, (multi) =>
        multi.hset(hashOf(self), id, JSON.stringify([ugi, lobby, role])).expire(hashOf(self), ttlSeconds),
      );
      return [];
    },
    leave(id) {
      publish({ t: 'leave', id, p: self }, (multi) => multi.hdel(hashOf(self), id));
      return [];
    },
    isMember: (id) => mirror.isMember(id),
    areMates: (a, b) => mirror.areMates(a, b),
    stage: (host, peer) => mirror.stage(host, peer),
    setStage(host, peer, stage) {
      mirror.setStage(host, peer, stage);
      if (cluster.state === 'up')
        void redis
          .publish(channel, JSON.stringify({ t: 'stage', host, peer, s: stage, p: self } satisfies Change))
          .catch(() => {});
    },
    get lobbies() {
      return mirror.lobbies;
    },
    get pairs() {
      return mirror.pairs;
    },
    attach(deliver) {
      send = deliver;
    },
    sever(id, mate) {
      const owner = owners.get(mate);
      if (!local(id) || owner === undefined || owner.p === self) return false;
      severed.set(`${id}\n${mate}`, [id, mate]);
      return true;
    },
  };
}
