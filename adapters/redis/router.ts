import type { ChainableCommander } from 'ioredis';
import type { Codec } from '../../src/codec.js';
import { ErrorCode, TransportError } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import type { Message } from '../../src/message.js';
import { RouterError, type Router } from '../../src/router.js';
import type { Frame, Transport } from '../../src/transport.js';
import type { RedisCluster } from './cluster.js';

/** A {@link Router} that also reaches sessions held by other processes, through Redis. */
export interface RedisRouter<M extends Message = Message> extends Router<M> {
  /**
   * Delivers `message` to session `id` wherever it is held. Resolves once
   * delivered here or handed to the process that holds it.
   * @throws {RouterError} `ERR_UNAVAILABLE` while Redis is down (and the
   *   session is not here), `ERR_PEER_GONE` when no process holds it.
   */
  deliver(id: string, message: M): Promise<void>;
  /** Messages handed to other processes since start. */
  readonly remoteSent: number;
  /** Messages received from other processes since start. */
  readonly remoteReceived: number;
}

// Looks up the process holding a session and publishes to its channel, in one step on the
// command connection: messages from one process keep their order on the way to another.
// A route naming a process that is not present (found dead, not yet cleared) counts as absent.
const ROUTE = `
local p = redis.call('GET', KEYS[1])
if not p or not redis.call('ZSCORE', KEYS[2], p) then return -1 end
return redis.call('PUBLISH', ARGV[1] .. p, ARGV[2])
`;
const ROUTE_COMMAND = 'signalboxRoute';
// Drops a route only while it names this process: a session taken over elsewhere keeps its new one.
const UNROUTE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('SREM', KEYS[2], ARGV[2])
return 1
`;
type RouteCommand = (key: string, procs: string, channelPrefix: string, message: string) => Promise<number>;

/**
 * What travels on a process's channel: a kind (`m` a text frame, `b` a
 * binary one in base64, `c` a close), the session id with its length in
 * front (`m12:` + id), then the body as it is — a text frame is carried
 * untouched, not escaped inside another JSON document; a close's body is
 * `[code, reason]` in JSON.
 */
type Kind = 'm' | 'b' | 'c';
type Opened =
  | { kind: 'm' | 'b'; id: string; body: string }
  | { kind: 'c'; id: string; code: number | undefined; reason: string | undefined };
const envelope = (kind: Kind, id: string, body: string) => `${kind}${id.length}:${id}${body}`;
/** The envelope `raw` opened, or undefined when it is not one. */
function openEnvelope(raw: string): Opened | undefined {
  const kind = raw[0];
  const colon = raw.indexOf(':');
  const length = Number(raw.slice(1, colon));
  const end = colon + 1 + length;
  if (colon < 2 || !Number.isInteger(length) || end > raw.length) return undefined;
  const id = raw.slice(colon + 1, end);
  const body = raw.slice(end);
  if (kind === 'm' || kind === 'b') return { kind, id, body };
  if (kind !== 'c') return undefined;
  try {
    const [code, reason] = JSON.parse(body) as [number | null, string | null];
    return { kind, id, code: code ?? undefined, reason: reason ?? undefined };
  } catch {
    return undefined;
  }
}

/**
 * A {@link Router} for a cluster of processes sharing one Redis. A session
 * held here is written to directly, as {@link memoryRouter} does; any other
 * is looked up (key `{prefix}r:{id}` → process) and published on that
 * process's channel `{prefix}p:{process}`, which delivers it to the
 * session's transport. Each protocol has its own router, under its own
 * `namespace`.
 *
 * Routes carry no TTL and the heartbeat does not touch them: a route is
 * written when its session arrives (and listed in the process's index set
 * `{prefix}rs:{process}`), deleted when it leaves, and counts as absent while
 * its process is not present; a process found dead has its routes deleted by
 * the heartbeats that follow, a slice at a time (`clearBatch`), and after an outage (Redis back, perhaps
 * empty) each process writes its routes again once. So the steady cost is per
 * process, not per session.
 *
 * `send` stays synchronous: for a remote session it answers true once the
 * message is handed to Redis (false while Redis is down), and a session that
 * left meanwhile drops it, as a local one that left would. Use `deliver` to
 * learn the outcome.
 *
 * @example
 * ```ts
 * const cluster = await connectRedis(url);
 * const router = await redisRouter<ServerMessage>(cluster, serverCodec());
 * createCloudLinkServer({ router });
 * ```
 */
export async function redisRouter<M extends Message>(
  cluster: RedisCluster,
  codec: Pick<Codec<Message, M>, 'encode'>,
  options: {
    logger?: Logger;
    /**
     * Keeps this router's session ids and channel apart from other routers
     * on the same cluster (one per protocol): keys `{prefix}{namespace}:r:{id}`,
     * channel `{prefix}{namespace}:p:{process}`.
     * @default none: `{prefix}r:{id}`, `{prefix}p:{process}`
     */
    namespace?: string;
    /**
     * Runs before a delivery from another process is written to session `id`
     * here: the registry protocol flushes the announcements queued for `id`,
     * so a relay never overtakes the `RegisterPeer` of its sender.
     */
    beforeDeliver?: (id: string) => void;
  } = {},
): Promise<RedisRouter<M>> {
  const log = options.logger ?? silentLogger;
  const { redis, process: self } = cluster;
  const prefix = options.namespace === undefined ? cluster.prefix : `${cluster.prefix}${options.namespace}:`;
  const transports = new Map<string, Transport>();
  const routeKey = (id: string) => `${prefix}r:${id}`;
  const channelPrefix = `${prefix}p:`;
  const procsKey = `${cluster.prefix}procs`;
  let remoteSent = 0;
  let remoteReceived = 0;

  const writeLocal = (id: string, frame: Frame): boolean => {
    const transport = transports.get(id);
    if (!transport?.isOpen) return false;
    try {
      transport.send(frame);
      return true;
    } catch (error) {
      if (error instanceof TransportError) return false;
      throw error;
    }
  };

  await cluster.subscribe(`${channelPrefix}${self}`, (raw) => {
    const opened = openEnvelope(raw);
    if (!opened) return log.warn('redis: unreadable delivery dropped', { size: raw.length });
    remoteReceived++;
    if (opened.kind === 'c') return transports.get(opened.id)?.close(opened.code, opened.reason);
    options.beforeDeliver?.(opened.id);
    writeLocal(opened.id, opened.kind === 'b' ? Buffer.from(opened.body, 'base64') : opened.body);
  });
  const setKey = `${prefix}rs:${self}`;
  cluster.ownRoutes(`${prefix}rs:`, `${prefix}r:`);
  const writeRoute = (pipeline: ChainableCommander, id: string) => pipeline.set(routeKey(id), self).sadd(setKey, id);
  /** Writes every route of this process again: after an outage, or after being declared dead. */
  const rewrite = () => {
    if (transports.size === 0) return;
    const pipeline = redis.pipeline();
    for (const id of transports.keys()) writeRoute(pipeline, id);
    pipeline.exec().catch(() => {
      // Redis went again: the next recovery writes them.
    });
  };
  cluster.onState((state) => {
    if (state === 'up') rewrite();
  });
  cluster.onDead((p) => {
    if (p === self) rewrite();
  });

  // EVALSHA (ioredis falls back to EVAL when Redis has not seen the script, as after a restart).
  redis.defineCommand(ROUTE_COMMAND, { numberOfKeys: 2, lua: ROUTE });
  const route = (redis as unknown as Record<typeof ROUTE_COMMAND, RouteCommand>)[ROUTE_COMMAND].bind(redis);
  const publish = async (id: string, message: string): Promise<void> => {
    if (cluster.state === 'down')
      throw new RouterError(ErrorCode.Unavailable, `cannot reach session ${id}: Redis is unreachable`);
    let result: unknown;
    try {
      result = await route(routeKey(id), procsKey, channelPrefix, message);
    } catch (error) {
      throw new RouterError(ErrorCode.Unavailable, `cannot reach session ${id}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    if (result === -1 || result === 0) throw new RouterError(ErrorCode.PeerGone, `no process holds session ${id}`);
    remoteSent++;
  };
  const envelopeOf = (id: string, frame: Frame): string =>
    typeof frame === 'string'
      ? envelope('m', id, frame)
      : envelope('b', id, Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('base64'));
  const quiet = (promise: Promise<void>) =>
    promise.catch((error: unknown) => {
      if (!(error instanceof RouterError)) log.error('redis: delivery failed', { error: String(error) });
    });

  return {
    add(id, transport) {
      transports.set(id, transport);
      if (cluster.state === 'up')
        void writeRoute(redis.pipeline(), id)
          .exec()
          .catch(() => {});
    },
    remove(id) {
      if (!transports.delete(id)) return;
      if (cluster.state === 'up') void redis.eval(UNROUTE, 2, routeKey(id), setKey, self, id).catch(() => {});
    },
    has: (id) => transports.has(id),
    send(id, message) {
      if (transports.has(id)) return writeLocal(id, codec.encode(message));
      if (cluster.state === 'down') return false;
      void quiet(publish(id, envelopeOf(id, codec.encode(message))));
      return true;
    },
    async deliver(id, message) {
      const frame = codec.encode(message);
      if (transports.has(id)) {
        if (!writeLocal(id, frame)) throw new RouterError(ErrorCode.PeerGone, `session ${id} has closed`);
        return;
      }
      await publish(id, envelopeOf(id, frame));
    },
    close(id, code, reason) {
      const transport = transports.get(id);
      if (transport) transport.close(code, reason);
      else if (cluster.state === 'up')
        void quiet(publish(id, envelope('c', id, JSON.stringify([code ?? null, reason ?? null]))));
    },
    get size() {
      return transports.size;
    },
    get remoteSent() {
      return remoteSent;
    },
    get remoteReceived() {
      return remoteReceived;
    },
  };
}
