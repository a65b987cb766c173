import { randomUUID } from 'node:crypto';
import { silentLogger, type Logger } from '../../src/logger.js';
import type { Router } from '../../src/router.js';
import type { ServerMessage } from '../../machines/swarm/protocol.js';
import type { Match, MatchRegistry, PendingRequest, RequestEnd } from '../../machines/swarm/registry.js';
import { tellPeerGone } from '../../machines/swarm/server.machine.js';
import { followChanges } from './changes.js';
import type { RedisCluster } from './cluster.js';

/** A pending request as queued in Redis: session, client, context, process. */
interface Queued {
  s: string;
  c: string;
  x: string;
  p: string;
}

/**
 * A change to the matches, as published on `{prefix}sw:dir`. An `end` with
 * `g` comes from a process that could not reach the other end: it was held
 * back while Redis was down, or it is a `drop` (a relay to the other end
 * failed). The other end's process tells its end (`ERR_PEER_GONE`) if the
 * match is still open there.
 */
type Change =
  | { t: 'match'; id: string; a: Queued; b: Queued }
  | { t: 'offer'; id: string; p: string }
  | { t: 'end'; id: string; p: string; g?: 1 };

interface Entry extends Match {
  stage: 'offering' | 'answering';
  /** The processes of alice and bob. */
  pa: string;
  pb: string;
}

// Files a request and pairs it, atomically: the oldest queued request of another client (on a live
// process) is taken out and the match published; else the request joins the queue. A request of a
// process that is no longer in the presence set is dropped on the way. ARGV[1] (the request) is
// taken out first, so filing it again after an outage does not queue it twice.
const PAIR = `
redis.call('LREM', KEYS[1], 0, ARGV[1])
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for _, item in ipairs(items) do
  local other = cjson.decode(item)
  if not redis.call('ZSCORE', KEYS[2], other.p) then
    redis.call('LREM', KEYS[1], 1, item)
  elseif other.c ~= ARGV[2] then
    redis.call('LREM', KEYS[1], 1, item)
    redis.call('PUBLISH', ARGV[4], '{"t":"match","id":' .. cjson.encode(ARGV[3]) .. ',"a":' .. item .. ',"b":' .. ARGV[1] .. '}')
    return item
  end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
return false
`;

const key = (session: string, context: string) => `${session}\u0000${context}`;
const end = (q: Queued): RequestEnd => ({ session: q.s, context: q.x });

/**
 * swarm's {@link MatchRegistry} shared by every process of a cluster:
 * requests filed on different processes are paired with each other, never
 * two of one `client_id`.
 *
 * - **Pairing is atomic**: the queue of pending requests is a Redis list
 *   `{prefix}sw:q`, and one Lua call takes the oldest request of another
 *   client out of it (or queues the new one) and publishes the match. So
 *   `request` always returns `undefined`; a match is handed to the server's
 *   `attach` hook (which tells both ends and starts the match timer) once
 *   Redis has decided it.
 * - The processes of the two ends follow the match (its offer, its end) on
 *   `{prefix}sw:dir`; `has`, `count`, `offer` and `answer` answer from this
 *   process's records, so relays never wait on Redis. `pending` and
 *   `matches` count this process's requests.
 * - A process found dead: queued requests of its sessions are dropped by the
 *   next pairing that meets them, and the other end of each of its matches
 *   is told (`ERR_PEER_GONE`) by its own process.
 * - Redis down: requests are paired among this process's own; those still
 *   pending are filed again when Redis returns. A match with its other end
 *   on another process cannot go on: a relay to it fails, and the server
 *   ends the match (`drop`, the sender told `ERR_PEER_GONE`). Every match
 *   ended meanwhile (dropped, expired, its end gone) is announced when Redis
 *   returns, and the other end's process tells its end `ERR_PEER_GONE` if
 *   the match is still open there.
 * - A relay that fails with Redis up (no process holds the other end: its
 *   process died and is not yet found dead, or has not written its routes
 *   again after an outage) ends the match the same way: `drop` announces it
 *   at once, and the other end's process, if it holds the end, tells it.
 *
 * @example
 * ```ts
 * const router = await redisRouter<ServerMessage>(cluster, serverCodec(), { namespace: 'sw' });
 * createSwarmServer({ router, registry: await redisMatchRegistry(cluster, { router }) });
 * ```
 */
export async function redisMatchRegistry(
  cluster: RedisCluster,
  options: { router: Pick<Router<ServerMessage>, 'send'>; logger?: Logger },
): Promise<MatchRegistry> {
  const log = options.logger ?? silentLogger;
  const { router } = options;
  const { redis, prefix, process: self } = cluster;
  const queueKey = `${prefix}sw:q`;
  const procsKey = `${prefix}procs`;
  const channel = `${prefix}sw:dir`;
  /** Each local session's requests (pending or matched), by context. */
  const mine = new Map<string, Set<string>>();
  /** Local requests waiting, in filing order, as queued in Redis. */
  const waiting = new Map<string, string>();
  /** Matches with an end on this process, by id and by each local end. */
  const matches = new Map<string, Entry>();
  const byEnd = new Map<string, string>();
  let made: (match: Match) => void = () => {};

  const own = (session: string, context: string) => {
    let contexts = mine.get(session);
    if (!contexts) mine.set(session, (contexts = new Set()));
    contexts.add(context);
  };
  const disown = (session: string, context: string) => {
    const contexts = mine.get(session);
    contexts?.delete(context);
    if (contexts?.size === 0) mine.delete(session);
  };
  const forget = (entry: Entry) => {
    matches.delete(entry.id);
    for (const [e, p] of [
      [entry.alice, entry.pa],
      [entry.bob, entry.pb],
    ] as const) {
      if (p !== self) continue;
      byEnd.delete(key(e.session, e.context));
      disown(e.session, e.context);
    }
  };
  /** Ends that could not be published (Redis down), by match id: published with `g` when it returns. */
  const heldEnds = new Map<string, Change>();
  const hold = (change: Change) => {
    if (change.t === 'end') heldEnds.set(change.id, { ...change, g: 1 });
  };
  const publish = (change: Change) => {
    if (cluster.state !== 'up') return hold(change);
    void redis.publish(channel, JSON.stringify(change)).catch(() => hold(change));
  };
  /**
   * Ends a match with an end on another process: `end` published, or held while Redis is down.
   * `unreached`: a relay to the other end failed, so its process is to tell it.
   */
  const publishEnd = (entry: Entry, unreached = false) => {
    if (entry.pa !== self || entry.pb !== self)
      publish({ t: 'end', id: entry.id, p: self, ...(unreached ? { g: 1 as const } : {}) });
  };

  /** Records a match; undefined when a local end of it left meanwhile (the match is then ended, the other end told). */
  const record = (id: string, a: Queued, b: Queued): Entry | undefined => {
    if (matches.has(id)) return undefined;
    const entry: Entry = { id, alice: end(a), bob: end(b), stage: 'offering', pa: a.p, pb: b.p };
    const gone: RequestEnd[] = [];
    for (const q of [a, b]) {
      if (q.p !== self) continue;
      const k = key(q.s, q.x);
      if (waiting.delete(k)) byEnd.set(k, id);
      else gone.push(end(q));
    }
    if (gone.length > 0) {
      // A local end left while Redis paired it: the match is over, and the other end is told.
      for (const e of gone) byEnd.delete(key(e.session, e.context));
      const others = [entry.alice, entry.bob].filter((e) => !gone.includes(e));
      forget(entry);
      publishEnd(entry);
      tellPeerGone(router, others);
      return undefined;
    }
    matches.set(id, entry);
    return entry;
  };

  const apply = (change: Change) => {
    switch (change.t) {
      case 'match':
        // Our own pairings are recorded when their answer comes back; this is for the other end.
        if (change.b.p !== self && change.a.p === self) record(change.id, change.a, change.b);
        return;
      case 'offer': {
        const entry = matches.get(change.id);
        if (entry && change.p !== self && entry.stage === 'offering') entry.stage = 'answering';
        return;
      }
      case 'end': {
        const entry = matches.get(change.id);
        if (!entry || change.p === self) return;
        forget(entry);
        if (change.g)
          tellPeerGone(
            router,
            [entry.alice, entry.bob].filter((_, i) => (i === 0 ? entry.pa : entry.pb) === self),
            'the other peer of this match could not be reached',
          );
        return;
      }
    }
  };
  await followChanges(cluster, channel, { label: 'swarm', logger: log, apply });

  /** Files one local request with Redis: paired there, or queued. */
  const file = async (request: PendingRequest, item: string) => {
    const id = randomUUID();
    let other: string | null;
    try {
      other = (await redis.eval(PAIR, 2, queueKey, procsKey, item, request.client, id, channel)) as string | null;
    } catch (error) {
      // Redis went down on the way: filed again when it returns.
      log.warn('redis: swarm request not filed', { error: (error as Error).message });
      return;
    }
    if (other === null) return;
    const entry = record(id, JSON.parse(other) as Queued, JSON.parse(item) as Queued);
    if (entry) made({ id, alice: entry.alice, bob: entry.bob });
  };

  cluster.onState((state) => {
    if (state !== 'up') return;
    // Ends decided during the outage reach the other ends' processes now, and once more a third of a
    // TTL later: PUBLISH reaches only processes already subscribed again, and another process's
    // subscriber may come back after ours (a repeated end finds no match there and does nothing).
    const held = [...heldEnds.values()];
    heldEnds.clear();
    for (const change of held) publish(change);
    if (held.length > 0) {
      setTimeout(() => {
        if (cluster.state === 'up') for (const change of held) publish(change);
      }, cluster.ttl / 3).unref();
    }
    // Requests still waiting here are filed again (Redis may have come back empty).
    for (const [k, item] of waiting) {
      const q = JSON.parse(item) as Queued;
      if (waiting.get(k) === item) void file({ session: q.s, client: q.c, context: q.x }, item);
    }
  });
  cluster.onDead((p) => {
    if (p === self) return;
    const others: RequestEnd[] = [];
    for (const entry of [...matches.values()]) {
      if (entry.pa !== p && entry.pb !== p) continue;
      forget(entry);
      others.push(entry.pa === p ? entry.bob : entry.alice);
    }
    tellPeerGone(router, others);
  });

  return {
    attach(handler) {
      made = handler;
    },
    request(request) {
      const k = key(request.session, request.context);
      if (mine.get(request.session)?.has(request.context)) return undefined;
      own(request.session, request.context);
      const item = JSON.stringify({ s: request.session, c: request.client, x: request.context, p: self });
      if (cluster.state === 'up') {
        waiting.set(k, item);
        void file(request, item);
        return undefined;
      }
      // Redis down: paired among this process's own requests, oldest first.
      for (const otherItem of waiting.values()) {
        const other = JSON.parse(otherItem) as Queued;
        if (other.c === request.client) continue;
        // `record` takes both out of `waiting`: an end it does not find there has left.
        const id = randomUUID();
        waiting.set(k, item);
        const entry = record(id, other, JSON.parse(item) as Queued)!;
        return { id, alice: entry.alice, bob: entry.bob };
      }
      waiting.set(k, item);
      return undefined;
    },
    has: (session, context) => mine.get(session)?.has(context) === true,
    count: (session) => mine.get(session)?.size ?? 0,
    offer(session, context) {
      const entry = matches.get(byEnd.get(key(session, context)) ?? '');
      if (!entry || entry.stage !== 'offering' || entry.pa !== self) return undefined;
      if (entry.alice.session !== session || entry.alice.context !== context) return undefined;
      entry.stage = 'answering';
      // Published before the offer is relayed, on the same connection: bob's process knows first.
      if (entry.pb !== self) publish({ t: 'offer', id: entry.id, p: self });
      return entry.bob;
    },
    answer(session, context) {
      const entry = matches.get(byEnd.get(key(session, context)) ?? '');
      if (!entry || entry.stage !== 'answering' || entry.pb !== self) return undefined;
      if (entry.bob.session !== session || entry.bob.context !== context) return undefined;
      forget(entry);
      publishEnd(entry);
      return entry.alice;
    },
    expire(id) {
      const entry = matches.get(id);
      if (!entry) return undefined;
      forget(entry);
      publishEnd(entry);
      return { id, alice: entry.alice, bob: entry.bob };
    },
    drop(session, context) {
      const entry = matches.get(byEnd.get(key(session, context)) ?? '');
      if (!entry) return undefined;
      forget(entry);
      publishEnd(entry, true);
      return entry.alice.session === session && entry.alice.context === context ? entry.bob : entry.alice;
    },
    remove(session) {
      const others: RequestEnd[] = [];
      for (const context of [...(mine.get(session) ?? [])]) {
        const k = key(session, context);
        const item = waiting.get(k);
        if (item !== undefined) {
          waiting.delete(k);
          if (cluster.state === 'up') void redis.lrem(queueKey, 1, item).catch(() => {});
        }
        const entry = matches.get(byEnd.get(k) ?? '');
        if (!entry) continue;
        forget(entry);
        publishEnd(entry);
        others.push(entry.alice.session === session && entry.alice.context === context ? entry.bob : entry.alice);
      }
      mine.delete(session);
      return others;
    },
    get pending() {
      return waiting.size;
    },
    get matches() {
      return matches.size;
    },
  };
}
