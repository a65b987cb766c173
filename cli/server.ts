import { Counter } from 'prom-client';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rejectUnroutedUpgrades, webSocketServer } from '../adapters/websocket/server.js';
import {
  createCloudLinkServer,
  type CloudLinkServer,
  type CloudLinkServerOptions,
} from '../machines/cloudlink/server.js';
import { createFileDropServer, type FileDropServer, type FileDropServerOptions } from '../machines/filedrop/server.js';
import { serverSocketIoEvents } from '../machines/filedrop/socket-io.js';
import { socketIoServer, type SocketIoServerInit, type SocketIoTransportServer } from '../adapters/socket-io/server.js';
import {
  createRegistryServer,
  encodeOnce,
  type RegistryServer,
  type RegistryServerOptions,
} from '../machines/registry/server.js';
import { serverCodec as registryCodec } from '../machines/registry/codec.js';
import type { ServerMessage as RegistryMessage } from '../machines/registry/protocol.js';
import { serverCodec as swarmCodec } from '../machines/swarm/codec.js';
import type { ServerMessage as SwarmMessage } from '../machines/swarm/protocol.js';
import {
  createWorkroomsServer,
  type WorkroomsServer,
  type WorkroomsServerOptions,
} from '../machines/workrooms/server.js';
import { createSwarmServer, type SwarmServer, type SwarmServerOptions } from '../machines/swarm/server.js';
import { connectionLimiter, type ConnectionLimits } from '../src/limits.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { serve, type ProtocolServer } from '../src/runtime.js';
import type { ConnectionCheck, ConnectionInfo, Transport, TransportServer } from '../src/transport.js';
import { prometheusMetrics, type RefusalReason } from './metrics.js';
import { defaultStaticRoot, staticFiles } from './static.js';
import { createInspectorHub } from './inspector.js';
import type { RedisCluster, RedisClusterOptions, RedisState } from '../adapters/redis/cluster.js';
import { serverCodec as cloudlinkCodec } from '../machines/cloudlink/codec.js';
import { serverCodec as filedropCodec } from '../machines/filedrop/codec.js';
import type { ServerMessage as FileDropMessage } from '../machines/filedrop/protocol.js';
import { serverCodec as workroomsCodec } from '../machines/workrooms/codec.js';
import type { ServerMessage as WorkroomsMessage } from '../machines/workrooms/protocol.js';
import type { ServerMessage as CloudLinkMessage } from '../machines/cloudlink/protocol.js';

export interface SignalboxServerOptions {
  /** TCP port; 0 picks a free one. @default 8080 */
  port?: number;
  /** Interface to bind. @default '0.0.0.0' */
  host?: string;
  /** CloudLink Omega options (keepalive, frame cap, …), served at `/ws/{ugi}`. */
  cloudlink?: CloudLinkServerOptions;
  /** filedrop options (frame cap, id generator, …), served at `/filedrop`. */
  filedrop?: FileDropServerOptions;
  /**
   * filedrop for socket.io 4 clients, at socket.io's `/socket.io/` path, by the
   * same filedrop server (`cors`, `allowRequest`, … for socket.io), or `false`
   * to serve WebSocket only.
   * @default served, with socket.io's defaults
   */
  filedropSocketIo?: false | { options?: SocketIoServerInit['options'] };
  /** registry options (frame cap, list size, connect timeout, …), served at `/registry`. */
  registry?: RegistryServerOptions;
  /** workrooms options (frame cap, grace period, profile check, …), served at `/workrooms`. */
  workrooms?: WorkroomsServerOptions;
  /** swarm options (frame cap, requests per connection, intro timeout, …), served at `/swarm`. */
  swarm?: SwarmServerOptions;
  /**
   * WebSocket pings to every connection of every protocol this often, in ms;
   * one that answered nothing since the last is cut off, so its session ends
   * (socket.io has its own). `false`: none.
   * @default 30000
   */
  heartbeatInterval?: number | false;
  /**
   * Most connections open at once, over every protocol and socket.io; more
   * are refused with HTTP 503 before the upgrade. Keep it below the
   * process's open-file limit (`ulimit -n`).
   * @default 10000
   */
  maxConnections?: number;
  /** Most connections open at once from one client address; more get 503. @default 256 */
  maxConnectionsPerIp?: number;
  /**
   * Behind one reverse proxy: the client's address is the last entry of
   * `X-Forwarded-For` (for the per-address limit, logs and `authorize`).
   * @default false
   */
  trustProxy?: boolean;
  /**
   * The page origins (`https://game.example`) whose browsers may connect; an
   * upgrade from another `Origin` gets 403, and socket.io answers CORS for
   * these only. A request without `Origin` (not from a browser) is let
   * through: authenticate those with `authorize`.
   * @default any origin (logged as a warning at startup)
   */
  allowOrigins?: readonly string[];
  /**
   * Decides whether a client may connect to any protocol, from its path,
   * query, headers and address; it may be async. `true` accepts; `false`
   * answers 403, a number (401, 403) that status, before the upgrade
   * (socket.io can only answer 403). A protocol's own `authorize` runs after it.
   * @default every client is accepted
   */
  authorize?: ConnectionCheck;
  /**
   * Outbound buffer cap and rate limits for every connection of every
   * protocol; a protocol's own `limits` override these.
   * @default {@link defaultLimits}
   */
  limits?: ConnectionLimits;
  /** Serve `GET /metrics` in Prometheus text format. @default true */
  metrics?: boolean;
  /**
   * Scale-out: a Redis URL (`redis://HOST:PORT`), or the URL with cluster
   * options. Every process given the same Redis serves as one network:
   * CloudLink hosts and peers meet across processes, a filedrop receiver
   * reaches a sender on another process by its code, workrooms clients find
   * and call each other across processes, registry peers see each other's
   * lists, swarm requests are paired across processes. ioredis is loaded only
   * when this is given. Redis unreachable at start rejects with
   * `RedisUnavailableError`.
   * @default none: everything in this process's memory
   */
  redis?: string | ({ url: string } & RedisClusterOptions);
  /** @default silentLogger */
  logger?: Logger;
  /**
   * A directory whose files are served over plain `GET` (the demo at `/`), or
   * `false` for none.
   * @default the built demo (`dist/demo/`), when it was built
   */
  static?: string | false;
  /**
   * The live inspector: every session's inspection events streamed at the
   * WebSocket `/inspect` (shown by the `/inspect` page of the demo), where
   * browser clients may send their own. `signalbox serve --inspect`.
   * @default false
   */
  inspect?: boolean;
}

export interface SignalboxServer {
  /** The bound address, once listening. */
  readonly address: { host: string; port: number };
  readonly http: Server;
  readonly cloudlink: CloudLinkServer;
  readonly filedrop: FileDropServer;
  readonly swarm: SwarmServer;
  readonly workrooms: WorkroomsServer;
  readonly registry: RegistryServer;
  /** What `GET /health` returns. */
  health(): Health;
  /** Stops accepting, closes every connection and session. */
  close(): Promise<void>;
}

export interface Health {
  status: 'ok';
  uptime: number;
  /**
   * Open connections in all, and per protocol; `socketIo` counts the
   * socket.io ones on their own (filedrop's count includes them).
   */
  connections: { total: number; socketIo: number } & Record<Protocol, number>;
  lobbies: { cloudlink: number };
  /** With `redis`: this process's id, and whether Redis is reachable (`down`: cross-process work is refused). */
  redis?: { state: RedisState; process: string };
}

/** The protocols one `signalbox serve` process serves. */
export type Protocol = 'cloudlink' | 'filedrop' | 'registry' | 'workrooms' | 'swarm';

/** One protocol served at one path. */
interface Mount {
  protocol: Protocol;
  /** The path as logged. */
  shown: string;
  path: string | ((path: string) => boolean);
  server: ProtocolServer & { stats(): { connections: number }; buffered(): number };
  maxFrameSize: number;
}

/**
 * Starts one HTTP server that serves every protocol at its own path
 * (CloudLink Omega at `/ws/{ugi}`, filedrop at `/filedrop` and for socket.io 4
 * clients at `/socket.io/`, registry at
 * `/registry`, workrooms at `/workrooms`, swarm at `/swarm`) plus `GET /health`.
 *
 * @example
 * ```ts
 * const server = await startServer({ port: 0, host: '127.0.0.1' });
 * console.log(`ws://127.0.0.1:${server.address.port}/ws/my-game`);
 * await server.close();
 * ```
 */
export async function startServer(options: SignalboxServerOptions = {}): Promise<SignalboxServer> {
  const log = options.logger ?? silentLogger;
  const started = Date.now();
  const metrics =
    options.metrics === false
      ? undefined
      : prometheusMetrics(() => ({
          connections: Object.fromEntries(mounts.map((m) => [m.protocol, m.server.stats().connections])),
          buffered: Object.fromEntries(mounts.map((m) => [m.protocol, m.server.buffered()])),
          socketIo: socketIo?.connections ?? 0,
        }));
  const inspector = options.inspect ? createInspectorHub() : undefined;
  const shared = {
    logger: log,
    limits: options.limits,
    ...(metrics && { metrics }),
    ...(inspector && { inspect: inspector.inspect }),
  };
  let cluster: RedisCluster | undefined;
  let scaleOut: Pick<CloudLinkServerOptions, 'router' | 'directory'> = {};
  let filedropScaleOut: Pick<FileDropServerOptions, 'router' | 'registry' | 'generateId'> = {};
  let workroomsScaleOut: Pick<WorkroomsServerOptions, 'router' | 'registry'> = {};
  let attachWorkrooms: ((server: WorkroomsServer) => void) | undefined;
  let registryScaleOut: Pick<RegistryServerOptions, 'router' | 'registry'> = {};
  let swarmScaleOut: Pick<SwarmServerOptions, 'router' | 'registry'> = {};
  if (options.redis !== undefined) {
    // Loaded here only: a process without Redis never imports ioredis.
    const redis = await import('../adapters/redis/index.js');
    const { url, ...clusterOptions } = typeof options.redis === 'string' ? { url: options.redis } : options.redis;
    cluster = await redis.connectRedis(url, { logger: log, ...clusterOptions });
    // One router per protocol, each under its own namespace: ids of two protocols never meet.
    const router = await redis.redisRouter<CloudLinkMessage>(cluster, cloudlinkCodec(), {
      logger: log,
      namespace: 'cl',
    });
    scaleOut = { router, directory: await redis.redisLobbyDirectory(cluster, { logger: log }) };
    const filedropRouter = await redis.redisRouter<FileDropMessage>(cluster, filedropCodec(), {
      logger: log,
      namespace: 'fd',
    });
    const filedropRegistry = await redis.redisPeerRegistry(cluster, {
      router: filedropRouter,
      logger: log,
      ...(options.filedrop?.generateId && { generate: options.filedrop.generateId }),
    });
    filedropScaleOut = { router: filedropRouter, registry: filedropRegistry, generateId: filedropRegistry.draw };
    const workroomsRouter = await redis.redisRouter<WorkroomsMessage>(cluster, workroomsCodec(), {
      logger: log,
      namespace: 'wr',
    });
    const workroomsRegistry = await redis.redisWorkroomsRegistry(cluster, { router: workroomsRouter, logger: log });
    workroomsScaleOut = { router: workroomsRouter, registry: workroomsRegistry };
    // A takeover decided on another process evicts the connection it replaced here, as the server's own evict does.
    attachWorkrooms = (server) =>
      workroomsRegistry.attach((connection) => server.sessions.get(connection)?.send({ type: 'session.takenOver' }));
    // A relay from another process is written after the announcements queued for its recipient.
    let flush = (_id: string) => {};
    const registryRouter = await redis.redisRouter<RegistryMessage>(cluster, encodeOnce(registryCodec()), {
      logger: log,
      namespace: 'rg',
      beforeDeliver: (id) => flush(id),
    });
    const fileRegistry = await redis.redisFileRegistry(cluster, { logger: log });
    flush = fileRegistry.flush;
    registryScaleOut = { router: registryRouter, registry: fileRegistry };
    const swarmRouter = await redis.redisRouter<SwarmMessage>(cluster, swarmCodec(), { logger: log, namespace: 'sw' });
    swarmScaleOut = {
      router: swarmRouter,
      registry: await redis.redisMatchRegistry(cluster, { router: swarmRouter, logger: log }),
    };
    const routers = [router, filedropRouter, workroomsRouter, registryRouter, swarmRouter];
    if (metrics)
      new Counter({
        name: 'signalbox_cross_process_messages_total',
        help: 'Messages handed to another process (out) or delivered here from one (in), through Redis',
        labelNames: ['direction'],
        registers: [metrics.registry],
        collect() {
          this.reset();
          this.inc(
            { direction: 'out' },
            routers.reduce((sum, r) => sum + r.remoteSent, 0),
          );
          this.inc(
            { direction: 'in' },
            routers.reduce((sum, r) => sum + r.remoteReceived, 0),
          );
        },
      });
    await cluster.beat();
    log.info('redis connected', { process: cluster.process, ttl: cluster.ttl });
  }
  const cloudlink = createCloudLinkServer({ ...shared, ...scaleOut, ...options.cloudlink });
  const filedrop = createFileDropServer({ ...shared, ...options.filedrop, ...filedropScaleOut });
  const swarm = createSwarmServer({ ...shared, ...options.swarm, ...swarmScaleOut });
  const workrooms = createWorkroomsServer({ ...shared, ...options.workrooms, ...workroomsScaleOut });
  attachWorkrooms?.(workrooms);
  const registry = createRegistryServer({ ...shared, ...options.registry, ...registryScaleOut });

  // Every protocol is one mount: where it listens, its server, and the largest frame it accepts.
  // A frame over the cap must still reach the codec to earn the protocol's own error, so the
  // socket-level limit sits well above it (UTF-8 may take 3 bytes a character).
  const mounts: Mount[] = [
    {
      protocol: 'cloudlink',
      shown: '/ws/{ugi}',
      path: (p) => p.startsWith('/ws/'),
      server: cloudlink,
      maxFrameSize: options.cloudlink?.maxFrameSize ?? 65536,
    },
    {
      protocol: 'filedrop',
      shown: options.filedropSocketIo === false ? '/filedrop' : '/filedrop, /socket.io/',
      path: '/filedrop',
      server: filedrop,
      maxFrameSize: options.filedrop?.maxFrameSize ?? 65536,
    },
    {
      protocol: 'swarm',
      shown: '/swarm',
      path: '/swarm',
      server: swarm,
      maxFrameSize: options.swarm?.maxFrameSize ?? 65536,
    },
    {
      protocol: 'workrooms',
      shown: '/workrooms',
      path: '/workrooms',
      server: workrooms,
      maxFrameSize: options.workrooms?.maxFrameSize ?? 65536,
    },
    {
      protocol: 'registry',
      shown: '/registry',
      path: '/registry',
      server: registry,
      maxFrameSize: options.registry?.maxFrameSize ?? 262144,
    },
  ];

  const health = (): Health => {
    const perProtocol = mounts.map((m) => [m.protocol, m.server.stats().connections] as const);
    const connections = {
      total: perProtocol.reduce((sum, [, n]) => sum + n, 0),
      socketIo: socketIo?.connections ?? 0,
      ...(Object.fromEntries(perProtocol) as Record<Protocol, number>),
    };
    return {
      status: 'ok',
      uptime: (Date.now() - started) / 1000,
      connections,
      lobbies: { cloudlink: cloudlink.stats().lobbies },
      ...(cluster && { redis: { state: cluster.state, process: cluster.process } }),
    };
  };

  const root = options.static === false ? undefined : (options.static ?? defaultStaticRoot());
  const files = root === undefined ? undefined : staticFiles(root);
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const notFound = () =>
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found', path }));
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(health()));
    } else if (req.method === 'GET' && path === '/metrics' && metrics) {
      metrics.text().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (error: unknown) => {
          log.error('metrics failed', { error: String(error) });
          res.writeHead(500).end();
        },
      );
    } else if (files) files(req, res, notFound);
    else notFound();
  });

  // Admission, the same for every path: the origin, then room (total and per address), then
  // `authorize`. The room is checked before the upgrade and taken when the connection opens; one
  // that lost a race for the last place is closed with 1013 (try again later).
  const allowed = options.allowOrigins?.map(normalOrigin);
  if (!allowed) log.warn('any origin allowed', { hint: 'pass --allow-origin to allow only your pages' });
  const limiter = connectionLimiter({
    maxConnections: options.maxConnections ?? 10_000,
    maxPerAddress: options.maxConnectionsPerIp ?? 256,
  });
  const refuse = (reason: RefusalReason, status: number, info: ConnectionInfo) => {
    metrics?.refused(reason, status);
    log.warn('refused', { reason, status, path: info.path, remote: info.remoteAddress });
    return status;
  };
  const admit: ConnectionCheck = async (info) => {
    const origin = info.headers.origin;
    if (allowed && typeof origin === 'string' && !allowed.includes(normalOrigin(origin))) {
      return refuse('origin', 403, info);
    }
    const full = limiter.admits(info.remoteAddress);
    if (full) return refuse(full === 'total' ? 'server full' : 'address full', 503, info);
    if (!options.authorize) return true;
    let verdict: boolean | number;
    try {
      verdict = await options.authorize(info);
    } catch (error) {
      log.error('authorize failed', { path: info.path, remote: info.remoteAddress, error: String(error) });
      verdict = false;
    }
    if (verdict === true) return true;
    return refuse('unauthorized', typeof verdict === 'number' ? verdict : 403, info);
  };
  const hold = (protocol: Protocol, transport: Transport, info: ConnectionInfo, socketIo?: true) => {
    const place = limiter.acquire(info.remoteAddress);
    if (typeof place === 'string') {
      log.warn('refused', { reason: place === 'total' ? 'server full' : 'address full', protocol });
      transport.close(1013, 'server full, try again later');
      return;
    }
    transport.on('close', place.release);
    log.info('connection', { protocol, path: info.path, remote: info.remoteAddress, ...(socketIo && { socketIo }) });
  };

  const transports: TransportServer[] = [];
  const stops: (() => void)[] = [];
  for (const { protocol, path, server, maxFrameSize } of mounts) {
    const transport = webSocketServer({
      server: http,
      path,
      maxPayload: maxFrameSize * 3 + 1024,
      trustProxy: options.trustProxy,
      ...(options.heartbeatInterval !== undefined && { heartbeatInterval: options.heartbeatInterval }),
    });
    transports.push(transport);
    stops.push(transport.verify(admit));
    // Before serve(): a connection refused here is closed before the protocol sees it.
    transport.on('connection', ({ transport: t, info }) => hold(protocol, t, info));
    stops.push(serve(transport, server));
  }
  let socketIo: SocketIoTransportServer | undefined;
  if (options.filedropSocketIo !== false) {
    // The seed's socket.io 4 events, through the same filedrop server: socket.io and WebSocket clients meet.
    const given = options.filedropSocketIo?.options;
    socketIo = socketIoServer({
      server: http,
      events: serverSocketIoEvents(),
      maxHttpBufferSize: (options.filedrop?.maxFrameSize ?? 65536) * 3 + 1024,
      trustProxy: options.trustProxy,
      options: { ...(allowed && { cors: { origin: [...(options.allowOrigins ?? [])] } }), ...given },
    });
    transports.push(socketIo);
    stops.push(socketIo.verify(admit));
    socketIo.on('connection', ({ transport: t, info }) => hold('filedrop', t, info, true));
    stops.push(serve(socketIo, filedrop));
  }
  inspector?.attach(http);
  rejectUnroutedUpgrades(http);

  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(options.port ?? 8080, options.host ?? '0.0.0.0', () => {
        http.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    await cluster?.close();
    throw error;
  }
  const bound = http.address() as AddressInfo;
  const address = { host: bound.address, port: bound.port };
  log.info('listening', { ...address, protocols: Object.fromEntries(mounts.map((m) => [m.protocol, m.shown])) });

  let closing: Promise<void> | undefined;
  return {
    address,
    http,
    cloudlink,
    filedrop,
    registry,
    workrooms,
    swarm,
    health,
    close() {
      closing ??= (async () => {
        for (const stop of stops) stop();
        await Promise.all(transports.map((t) => t.close()));
        await inspector?.close();
        await Promise.all(mounts.map((m) => m.server.close()));
        await new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeAllConnections();
        await cluster?.close();
        log.info('closed');
      })();
      return closing;
    },
  };
}

/** An origin as browsers send it: lower case, no trailing slash. */
function normalOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, '');
}
