import { silentLogger, type Logger } from '../../src/logger.js';
import type { Router } from '../../src/router.js';
import type { HangupEntry, ServerMessage, UserProfiles } from '../../machines/workrooms/protocol.js';
import { memoryRegistry, type CallRecord, type WorkroomsRegistry } from '../../machines/workrooms/registry.js';
import { followChanges, recoverWith } from './changes.js';
import type { RedisCluster } from './cluster.js';

/** A session's holder: the process and its connection id there. */
type Holder = [p: string, c: string];

/** A change to the registry, as published on `{prefix}wr:dir` in the one order every process applies. */
type Change =
  | { t: 'claim'; s: string; p: string; c: string; prev: Holder | null }
  | { t: 'away'; s: string; p: string; c: string }
  | { t: 'release'; s: string; p: string; c: string }
  | { t: 'profile'; s: string; p: string; pr: UserProfiles }
  | { t: 'call'; p: string; call: CallRecord }
  | { t: 'hang'; p: string; id: string }
  | { t: 'announce'; p: string; sessions: Stored[]; calls: CallRecord[] };

/** A session as written in its process's hash (`s:{sessionid}`) and announced. */
type Stored = [sessionid: string, connection: string, online: boolean, profile: UserProfiles | null];

/** workrooms' {@link WorkroomsRegistry} shared by the processes of a cluster. */
export interface RedisWorkroomsRegistry extends WorkroomsRegistry {
  /**
   * Sets how a session of this process is told that a `register` elsewhere
   * took its `sessionid` over (the server's `evict`).
   */
  attach(evict: (connection: string) => void): void;
}

// Takes a session over for this process, atomically: the holder key is swapped, the change (with
// the holder it replaced, as Redis saw it) published, and the session moved to this process's hash.
const CLAIM = `
local prev = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
if prev and prev ~= ARGV[1] then
  local holder = cjson.decode(prev)
  if holder[1] ~= ARGV[5] then redis.call('HDEL', ARGV[6] .. holder[1], ARGV[7]) end
end
redis.call('HSET', KEYS[2], ARGV[7], ARGV[8])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local replaced = string.gsub(prev or 'null', '%%', '%%%%')
redis.call('PUBLISH', ARGV[3], (string.gsub(ARGV[4], '"prev":null', '"prev":' .. replaced, 1)))
return 1
`;

/**
 * workrooms' {@link WorkroomsRegistry} shared by every process of a cluster:
 * a client registered on one process is found by `autocomplete` on
 * another, is called from there, and a client that drops from one process
 * and registers again on another within the grace period keeps its calls.
 *
 * - **Each process keeps a mirror** of every session (holder, online,
 *   profile) and call, so the per-message checks and searches never wait on
 *   Redis. Changes are written to this process's hash `{prefix}wr:m:{process}`
 *   (calls to `{prefix}wr:calls`) and published on `{prefix}wr:dir`; every
 *   process applies the others' in the order Redis delivers them.
 * - **A takeover is atomic.** Who holds a `sessionid` is a key
 *   `{prefix}wr:h:{sessionid}`, swapped in one Lua call that publishes the
 *   change together with the holder it replaced. A process applies a
 *   takeover only on top of that holder, so two `register`s of one
 *   `sessionid` racing on two processes end with the later one holding it
 *   everywhere, and the connection it replaced is evicted by its own process.
 * - **A process found dead:** its sessions that were not taken over meanwhile
 *   are released, and the other side of each of their calls is told
 *   (`hangup`) by its own process — the bound is the presence TTL plus one
 *   heartbeat, instead of the grace period.
 *
 * @example
 * ```ts
 * const router = await redisRouter<ServerMessage>(cluster, serverCodec(), { namespace: 'wr' });
 * const registry = await redisWorkroomsRegistry(cluster, { router });
 * const workrooms = createWorkroomsServer({ router, registry });
 * registry.attach((connection) => workrooms.sessions.get(connection)?.send({ type: 'session.takenOver' }));
 * ```
 */
export async function redisWorkroomsRegistry(
  cluster: RedisCluster,
  options: { router: Pick<Router<ServerMessage>, 'send'>; logger?: Logger },
): Promise<RedisWorkroomsRegistry> {
  const log = options.logger ?? silentLogger;
  const { router } = options;
  const { redis, prefix, process: self } = cluster;
  const channel = `${prefix}wr:dir`;
  const hashPrefix = `${prefix}wr:m:`;
  const hashOf = (p: string) => `${hashPrefix}${p}`;
  const holderKey = (s: string) => `${prefix}wr:h:${s}`;
  const callsKey = `${prefix}wr:calls`;
  cluster.ownKeys(hashPrefix);
  const ttl = Math.ceil(cluster.ttl / 1000);
  /** The mirror, with every connection named as `process/connection` but this process's own. */
  const mirror = memoryRegistry();
  /** Every session's holder as the mirror names it. */
  const holders = new Map<string, string>();
  let evict: (connection: string) => void = () => {};
  const named = (p: string, c: string) => (p === self ? c : `${p}/${c}`);
  const processOf = (holder: string) => (holder.includes('/') ? holder.slice(0, holder.indexOf('/')) : self);
  const stored = (s: string): Stored => {
    const holder = holders.get(s)!;
    return [s, holder.slice(holder.indexOf('/') + 1), mirror.isOnline(s), mirror.profile(s) ?? null];
  };

  const take = (s: string, holder: string, online: boolean) => {
    const previous = mirror.claim(s, holder);
    holders.set(s, holder);
    if (!online) mirror.setAway(s, holder);
    return previous;
  };
  const drop = (s: string, holder: string) => {
    if (mirror.release(s, holder)) holders.delete(s);
  };
  /** Releases the sessions `gone` (held elsewhere) and tells this process's clients on their calls. */
  const depart = (gone: string[]) => {
    const told = new Map<string, Required<HangupEntry>[]>();
    for (const s of gone) {
      for (const call of mirror.callsOf(s)) {
        mirror.removeCall(call.callid);
        const other = call.from === s ? call.to : call.from;
        if (holders.has(other) && processOf(holders.get(other)!) === self && mirror.isOnline(other)) {
          told.set(other, [...(told.get(other) ?? []), { callid: call.callid, sessionid: s }]);
        }
      }
      drop(s, holders.get(s)!);
    }
    for (const [to, calls] of told) router.send(to, { type: 'hangup', detail: { calls } });
  };

  const apply = (change: Change) => {
    if (change.p === self) return; // applied here when made
    switch (change.t) {
      case 'claim': {
        const current = holders.get(change.s);
        const replaced = change.prev && named(...change.prev);
        // On top of the holder it replaced only: a later claim of ours already won.
        if (current !== undefined && current !== replaced) return;
        const previous = take(change.s, named(change.p, change.c), true);
        if (previous !== undefined && !previous.includes('/')) evict(previous);
        return;
      }
      case 'away':
        return mirror.setAway(change.s, named(change.p, change.c));
      case 'release':
        // A session released with calls left (its process shut down) ends them for the other side.
        if (holders.get(change.s) === named(change.p, change.c)) depart([change.s]);
        return;
      case 'profile':
        return mirror.setProfile(change.s, change.pr);
      case 'call':
        if (!mirror.call(change.call.callid)) mirror.addCall(change.call);
        return;
      case 'hang':
        return void mirror.removeCall(change.id);
      case 'announce':
        for (const [s, c, online, profile] of change.sessions) {
          if (holders.has(s)) continue;
          take(s, named(change.p, c), online);
          if (profile) mirror.setProfile(s, profile);
        }
        for (const call of change.calls) if (!mirror.call(call.callid)) mirror.addCall(call);
        return;
    }
  };

  /** Takes in the sessions and calls the other processes wrote to Redis. */
  const load = async () => {
    for (const p of await redis.zrange(`${prefix}procs`, 0, -1)) {
      if (p === self) continue;
      const sessions = Object.values(await redis.hgetall(hashOf(p))).map((v) => JSON.parse(v) as Stored);
      apply({ t: 'announce', p, sessions, calls: [] });
    }
    const calls = Object.values(await redis.hgetall(callsKey)).map((v) => JSON.parse(v) as CallRecord);
    for (const call of calls) if (!mirror.call(call.callid)) mirror.addCall(call);
  };
  await followChanges(cluster, channel, { label: 'workrooms', logger: log, apply, load });

  const mine = () => [...holders.keys()].filter((s) => processOf(holders.get(s)!) === self);

  /** Writes `change` and this process's record of session `s` (when given), and publishes it. */
  const publish = (change: Change, s?: string, call?: { add?: CallRecord; remove?: string }) => {
    if (cluster.state === 'down') return;
    const multi = redis.multi();
    if (s !== undefined) {
      if (holders.has(s)) multi.hset(hashOf(self), `s:${s}`, JSON.stringify(stored(s)));
      else multi.hdel(hashOf(self), `s:${s}`);
    }
    if (call?.add) multi.hset(callsKey, call.add.callid, JSON.stringify(call.add)).expire(callsKey, ttl);
    if (call?.remove) multi.hdel(callsKey, call.remove);
    multi.publish(channel, JSON.stringify(change));
    multi.exec().catch(() => {
      // Lost on the way (Redis went down): the resync on its return writes our state back.
    });
  };

  /**
   * After an outage (or after being declared dead): write our sessions back
   * and announce them with their calls, take in what the others wrote, and
   * one TTL later release remote sessions that were not written back.
   */
  const resync = async () => {
    const sessions = mine().map(stored);
    const calls = mine().flatMap((s) => mirror.callsOf(s));
    const multi = redis.multi().del(hashOf(self));
    for (const entry of sessions) multi.hset(hashOf(self), `s:${entry[0]}`, JSON.stringify(entry));
    for (const [s, c] of sessions) multi.set(holderKey(s), JSON.stringify([self, c]), 'EX', ttl);
    for (const call of calls) multi.hset(callsKey, call.callid, JSON.stringify(call));
    multi.expire(hashOf(self), ttl).expire(callsKey, ttl);
    multi.publish(channel, JSON.stringify({ t: 'announce', p: self, sessions, calls } satisfies Change));
    await multi.exec();
    await load();
  };
  recoverWith(cluster, {
    label: 'workrooms',
    logger: log,
    resync,
    entries: () => [...holders].map(([s, holder]) => [s, processOf(holder)]),
    depart,
    hashOf,
    field: (s) => `s:${s}`,
  });
  cluster.onBeat((pipeline) => {
    pipeline.expire(hashOf(self), ttl).expire(callsKey, ttl);
    for (const s of mine()) pipeline.expire(holderKey(s), ttl);
  });

  return {
    attach(handler) {
      evict = handler;
    },
    claim(sessionid, connection) {
      const previous = take(sessionid, connection, true);
      if (cluster.state === 'up') {
        const change = { t: 'claim', s: sessionid, p: self, c: connection, prev: null } satisfies Change;
        redis
          .eval(
            CLAIM,
            2,
            holderKey(sessionid),
            hashOf(self),
            JSON.stringify([self, connection]),
            ttl,
            channel,
            JSON.stringify(change),
            self,
            hashPrefix,
            `s:${sessionid}`,
            JSON.stringify(stored(sessionid)),
          )
          .catch(() => {
            // Redis went down on the way: the resync on its return announces the session.
          });
      }
      return previous;
    },
    holder: (sessionid) => holders.get(sessionid),
    heldBy: (connection) => mirror.heldBy(connection),
    isOnline: (sessionid) => mirror.isOnline(sessionid),
    setAway(sessionid, connection) {
      if (holders.get(sessionid) !== connection || !mirror.isOnline(sessionid)) return;
      mirror.setAway(sessionid, connection);
      publish({ t: 'away', s: sessionid, p: self, c: connection }, sessionid);
    },
    release(sessionid, connection) {
      if (holders.get(sessionid) !== connection) return false;
      const calls = mirror.callsOf(sessionid).map((call) => call.callid);
      drop(sessionid, connection);
      publish({ t: 'release', s: sessionid, p: self, c: connection }, sessionid);
      if (cluster.state === 'up') {
        // Only while it is still ours: a takeover racing with this release keeps the new holder.
        void redis
          .eval(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1",
            1,
            holderKey(sessionid),
            JSON.stringify([self, connection]),
          )
          .catch(() => {});
        if (calls.length > 0) void redis.hdel(callsKey, ...calls).catch(() => {});
      }
      return true;
    },
    setProfile(sessionid, profiles) {
      if (!holders.has(sessionid)) return;
      mirror.setProfile(sessionid, profiles);
      publish({ t: 'profile', s: sessionid, p: self, pr: profiles }, sessionid);
    },
    profile: (sessionid) => mirror.profile(sessionid),
    search: (query, limit, exclude) => mirror.search(query, limit, exclude),
    addCall(call) {
      mirror.addCall(call);
      publish({ t: 'call', p: self, call }, undefined, { add: call });
    },
    call: (callid) => mirror.call(callid),
    callBetween: (a, b) => mirror.callBetween(a, b),
    callsOf: (sessionid) => mirror.callsOf(sessionid),
    removeCall(callid) {
      const call = mirror.removeCall(callid);
      if (call) publish({ t: 'hang', p: self, id: callid }, undefined, { remove: callid });
      return call;
    },
    get size() {
      return mirror.size;
    },
  };
}
