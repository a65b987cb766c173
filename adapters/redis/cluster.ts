import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { ChainableCommander, Redis as RedisClient } from 'ioredis';
import { silentLogger, type Logger } from '../../src/logger.js';

/** Where this process stands with Redis: `up` (both connections ready) or `down`. */
export type RedisState = 'up' | 'down';

/** Options of {@link connectRedis}. */
export interface RedisClusterOptions {
  /** This process's id in the cluster. @default `${hostname}-${pid}-${random}` */
  process?: string;
  /**
   * How long a process's presence, its session routes and its CloudLink
   * lobby entries outlive its last heartbeat, in ms. A process killed
   * without closing is declared dead, and its clients' partners told, at
   * most this long plus one heartbeat later.
   * @default 15000
   */
  ttl?: number;
  /** Heartbeat period, in ms; it must be well under `ttl`. @default ttl / 3 */
  heartbeat?: number;
  /** Prefix of every key and channel, to share one Redis between deployments. @default 'sb:' */
  prefix?: string;
  /** @default silentLogger */
  logger?: Logger;
  /**
   * At most this many routes of processes found dead (or gone) are deleted
   * per heartbeat script, so that clearing a process that held many sessions
   * does not stop Redis for everyone at once (~3 µs a route: 5,000 is ~15 ms;
   * bench:redis-costs). What is left is cleared by the next heartbeats, of
   * whichever process; meanwhile those routes count as absent, as every
   * route of a process not present does.
   * @default 5000
   */
  clearBatch?: number;
}

/**
 * One process's link to Redis, shared by the router and the directories: a
 * command connection (every publish goes through it, so messages one
 * process sends reach another in the order they were sent), a subscriber
 * connection, and the presence heartbeat.
 */
export interface RedisCluster {
  /** This process's id. */
  readonly process: string;
  readonly state: RedisState;
  readonly prefix: string;
  /** Presence TTL, in ms. */
  readonly ttl: number;
  /** The command connection. Commands fail at once while `state` is `down`. */
  readonly redis: RedisClient;
  /** Subscribes `handler` to `channel` (prefixed by the caller); resolves once subscribed. */
  subscribe(channel: string, handler: (message: string) => void): Promise<void>;
  /** Runs `hook` on every heartbeat with the heartbeat's pipeline, to refresh a TTL or register state. */
  onBeat(hook: (pipeline: ChainableCommander) => void): void;
  /** Runs `hook` when a dead process has been cleared (by whichever process claimed it). */
  onDead(hook: (process: string) => void): void;
  /** Runs `hook` on every change of {@link RedisState}. */
  onState(hook: (state: RedisState) => void): void;
  /**
   * Names a per-process key family, `{keyPrefix}{process}` (a directory's
   * hash of what the process holds): a dead or closed process's key is
   * deleted with its presence.
   */
  ownKeys(keyPrefix: string): void;
  /**
   * Names a route family: keys `{routePrefix}{id}` → process, carrying no
   * TTL, each listed in its process's index set `{setPrefix}{process}`. When
   * a process is found dead or closes, its routes that still name it are
   * deleted with its presence; a route naming a process that is not present
   * counts as absent meanwhile.
   */
  ownRoutes(setPrefix: string, routePrefix: string): void;
  /** Runs one heartbeat now (tests; the timer runs them on its own). */
  beat(): Promise<void>;
  /**
   * Stops the heartbeat and leaves the cluster at once: removes this
   * process's presence and keys and tells the other processes, as if it had
   * been found dead (after whatever this process sent before), then closes
   * both connections.
   */
  close(): Promise<void>;
}

/** Redis could not be reached when the cluster was started. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

// Claimed process `p` (dead or leaving): its hashes (ARGV[first + 1 … first + n] .. p, n =
// ARGV[first]) go at once (UNLINK: freed off Redis's main thread), and it is listed in the set of
// processes whose routes are still to be cleared (KEYS[2]).
//
// `sweep` then deletes at most `budget` of those routes (ARGV[first - 1]) per call: for each route
// family after the hashes (a pair: index-set prefix, route-key prefix) it pops ids off the index
// set `{set}{p}` and deletes each route key that still names p (a session taken over by another
// process keeps its route). A process listed but present again (declared dead while alive: it
// writes its routes again) keeps them. Clearing 50,000 routes in one script stopped Redis for
// ~150 ms (bench:redis-costs); routes of a process not present count as absent meanwhile.
const CLEAR = `
local function claim(p, first)
  local n = tonumber(ARGV[first])
  for i = first + 1, first + n do redis.call('UNLINK', ARGV[i] .. p) end
  redis.call('SADD', KEYS[2], p)
end
local function sweep(first)
  local budget = tonumber(ARGV[first - 1])
  local n = tonumber(ARGV[first])
  for _, p in ipairs(redis.call('SMEMBERS', KEYS[2])) do
    if budget <= 0 then return end
    if redis.call('ZSCORE', KEYS[1], p) then
      redis.call('SREM', KEYS[2], p)
    else
      local left = 0
      for i = first + n + 1, #ARGV, 2 do
        local set = ARGV[i] .. p
        if budget > 0 then
          local ids = redis.call('SPOP', set, budget)
          budget = budget - #ids
          for _, id in ipairs(ids) do
            local key = ARGV[i + 1] .. id
            if redis.call('GET', key) == p then redis.call('DEL', key) end
          end
        end
        left = left + redis.call('SCARD', set)
      end
      if left == 0 then redis.call('SREM', KEYS[2], p) end
    end
  end
end
`;

// The heartbeat: record this process as alive (by Redis's clock, so process clocks need not agree),
// then claim every process silent for longer than the TTL. ZREM answers 1 to one claimer only,
// so exactly one process claims each dead process and publishes its death; then a slice of the
// routes still to clear. Its cost is one ZADD per process per period, whatever the number of
// clients, and at most `clearBatch` route deletions.
const BEAT = `${CLEAR}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
local stale = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
for _, p in ipairs(stale) do
  if redis.call('ZREM', KEYS[1], p) == 1 then
    claim(p, 5)
    redis.call('PUBLISH', ARGV[3], p)
  end
end
sweep(5)
return #stale
`;

// A clean exit: the same as being found dead, at once (ARGV[1] is this process).
const LEAVE = `${CLEAR}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  claim(ARGV[1], 4)
  redis.call('PUBLISH', ARGV[2], ARGV[1])
end
sweep(4)
return 1
`;

/**
 * Connects this process to Redis for scale-out. ioredis is imported here,
 * on demand: a process started without Redis never loads it.
 *
 * @throws {RedisUnavailableError} when Redis cannot be reached at start.
 *
 * @example
 * ```ts
 * const cluster = await connectRedis('redis://127.0.0.1:6379', { logger });
 * const router = redisRouter<ServerMessage>(cluster, serverCodec());
 * ```
 */
export async function connectRedis(url: string, options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const { Redis } = await import('ioredis');
  const log = options.logger ?? silentLogger;
  const ttl = options.ttl ?? 15_000;
  const period = options.heartbeat ?? Math.floor(ttl / 3);
  const prefix = options.prefix ?? 'sb:';
  const clearBatch = options.clearBatch ?? 5000;
  if (!(Number.isInteger(clearBatch) && clearBatch > 0)) {
    throw new RangeError(`connectRedis(): clearBatch must be a positive integer, got ${options.clearBatch}`);
  }
  const self = options.process ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  let started = false;
  // Before the first connection: fail fast. Afterwards: retry for ever, backing off to 2 s.
  const retryStrategy = (times: number) => (started ? Math.min(times * 100, 2000) : null);
  const common = { lazyConnect: true, retryStrategy, maxRetriesPerRequest: 1, connectTimeout: 5000 };
  const redis = new Redis(url, { ...common, enableOfflineQueue: false });
  const sub = new Redis(url, { ...common, enableOfflineQueue: true });
  const handlers = new Map<string, (message: string) => void>();
  const beats: ((pipeline: ChainableCommander) => void)[] = [];
  const deadHooks: ((process: string) => void)[] = [];
  const stateHooks: ((state: RedisState) => void)[] = [];
  const owned: string[] = [];
  const routes: string[] = [];
  /** What `claim` and `sweep` in the scripts take: the batch, the owned hash prefixes counted, then the route families. */
  const clearArgs = () => [String(clearBatch), String(owned.length), ...owned, ...routes];
  const clearKeys = [`${prefix}procs`, `${prefix}clearing`] as const;
  let state: RedisState = 'down';
  let closed = false;
  /**
   * The subscriber's channels are subscribed. ioredis reports `ready` after a
   * reconnection before its own SUBSCRIBE has been answered, so without this
   * a process would count as up (and write, and be answered) while the
   * replies to what it wrote could still pass it by.
   */
  let subscribed = true;

  const update = () => {
    const next: RedisState = redis.status === 'ready' && sub.status === 'ready' && subscribed ? 'up' : 'down';
    if (next === state || !started || closed) return;
    state = next;
    if (next === 'down') log.warn('redis lost', { process: self, work: 'local only until it returns' });
    else log.info('redis back', { process: self });
    // Present again before anything the hooks write goes out on the same connection: a swarm
    // request filed again, met by another process's pairing, must not count as a dead process's.
    if (next === 'up') void beat();
    for (const hook of stateHooks) hook(next);
  };
  for (const client of [redis, sub]) {
    client.on('ready', update);
    client.on('close', update);
    client.on('end', update);
    // ioredis reports every failed attempt; the state change above is what gets logged.
    client.on('error', () => {});
  }
  sub.on('message', (channel: string, message: string) => handlers.get(channel)?.(message));
  sub.on('close', () => {
    if (started) subscribed = false;
  });
  sub.on('ready', () => {
    if (!started || subscribed || closed) return;
    // Subscribed again (Redis takes a repeated SUBSCRIBE as a no-op) before counting as up.
    const channels = [...handlers.keys()];
    sub.subscribe(...channels).then(
      () => {
        subscribed = true;
        update();
      },
      () => {
        // Lost again on the way: the next `ready` tries again.
      },
    );
  });

  try {
    await Promise.all([redis.connect(), sub.connect()]);
  } catch (error) {
    redis.disconnect();
    sub.disconnect();
    throw new RedisUnavailableError(`cannot reach Redis at ${redactUrl(url)}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  started = true;
  state = 'up';

  const deadChannel = `${prefix}dead`;
  const beat = async () => {
    if (closed || state === 'down') return;
    const pipeline = redis.pipeline();
    pipeline.eval(BEAT, 2, ...clearKeys, self, String(ttl), deadChannel, ...clearArgs());
    for (const hook of beats) hook(pipeline);
    try {
      await pipeline.exec();
    } catch {
      // Redis went away mid-beat: the state change logs it; the next beat after it returns catches up.
    }
  };
  const cluster: RedisCluster = {
    process: self,
    prefix,
    ttl,
    redis,
    get state() {
      return state;
    },
    async subscribe(channel, handler) {
      handlers.set(channel, handler);
      await sub.subscribe(channel);
    },
    onBeat: (hook) => void beats.push(hook),
    onDead: (hook) => void deadHooks.push(hook),
    onState: (hook) => void stateHooks.push(hook),
    ownKeys: (keyPrefix) => void owned.push(keyPrefix),
    ownRoutes: (setPrefix, routePrefix) => void routes.push(setPrefix, routePrefix),
    beat,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      try {
        // On the command connection, after every change this process published: they arrive first.
        if (state === 'up') await redis.eval(LEAVE, 2, ...clearKeys, self, deadChannel, ...clearArgs());
      } catch {
        // Gone already: another process finds this one dead later and clears the rest.
      }
      redis.disconnect();
      sub.disconnect();
    },
  };
  await cluster.subscribe(deadChannel, (process) => {
    if (closed) return;
    for (const hook of deadHooks) hook(process);
  });
  // Present at once: a route naming this process counts only while it is.
  await beat();
  const timer = setInterval(() => void beat(), period);
  timer.unref();
  return cluster;
}

/** `url` without its password, for messages. */
function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparsable URL)';
  }
}
