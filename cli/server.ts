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
import { socketIoServer, type SocketIoServerInit } from '../adapters/socket-io/server.js';
import { createRegistryServer, type RegistryServer, type RegistryServerOptions } from '../machines/registry/server.js';
import {
  createWorkroomsServer,
  type WorkroomsServer,
  type WorkroomsServerOptions,
} from '../machines/workrooms/server.js';
import { createSwarmServer, type SwarmServer, type SwarmServerOptions } from '../machines/swarm/server.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { serve, type ProtocolServer } from '../src/runtime.js';
import type { TransportServer } from '../src/transport.js';

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
  /** @default silentLogger */
  logger?: Logger;
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
  /** Open connections in all, and per protocol. */
  connections: { total: number } & Record<Protocol, number>;
  lobbies: { cloudlink: number };
}

/** The protocols one `signalbox serve` process serves. */
export type Protocol = 'cloudlink' | 'filedrop' | 'registry' | 'workrooms' | 'swarm';

/** One protocol served at one path. */
interface Mount {
  protocol: Protocol;
  /** The path as logged. */
  shown: string;
  path: string | ((path: string) => boolean);
  server: ProtocolServer & { stats(): { connections: number } };
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
  const cloudlink = createCloudLinkServer({ logger: log, ...options.cloudlink });
  const filedrop = createFileDropServer({ logger: log, ...options.filedrop });
  const swarm = createSwarmServer({ logger: log, ...options.swarm });
  const workrooms = createWorkroomsServer({ logger: log, ...options.workrooms });
  const registry = createRegistryServer({ logger: log, ...options.registry });

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
      ...(Object.fromEntries(perProtocol) as Record<Protocol, number>),
    };
    return {
      status: 'ok',
      uptime: (Date.now() - started) / 1000,
      connections,
      lobbies: { cloudlink: cloudlink.stats().lobbies },
    };
  };

  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method === 'GET' && path === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(health()));
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found', path }));
    }
  });

  const transports: TransportServer[] = [];
  const stops: (() => void)[] = [];
  for (const { protocol, path, server, maxFrameSize } of mounts) {
    const transport = webSocketServer({
      server: http,
      path,
      maxPayload: maxFrameSize * 3 + 1024,
      ...(options.heartbeatInterval !== undefined && { heartbeatInterval: options.heartbeatInterval }),
    });
    transports.push(transport);
    stops.push(serve(transport, server));
    transport.on('connection', ({ info }) =>
      log.info('connection', { protocol, path: info.path, remote: info.remoteAddress }),
    );
  }
  if (options.filedropSocketIo !== false) {
    // The seed's socket.io 4 events, through the same filedrop server: socket.io and WebSocket clients meet.
    const socketIo = socketIoServer({
      server: http,
      events: serverSocketIoEvents(),
      maxHttpBufferSize: (options.filedrop?.maxFrameSize ?? 65536) * 3 + 1024,
      options: options.filedropSocketIo?.options,
    });
    transports.push(socketIo);
    stops.push(serve(socketIo, filedrop));
    socketIo.on('connection', ({ info }) =>
      log.info('connection', { protocol: 'filedrop', path: info.path, remote: info.remoteAddress, socketIo: true }),
    );
  }
  rejectUnroutedUpgrades(http);

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 8080, options.host ?? '0.0.0.0', () => {
      http.off('error', reject);
      resolve();
    });
  });
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
        await Promise.all(mounts.map((m) => m.server.close()));
        await new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeAllConnections();
        log.info('closed');
      })();
      return closing;
    },
  };
}
