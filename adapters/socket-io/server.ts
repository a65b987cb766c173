import type { IncomingMessage, Server as HttpServer } from 'node:http';
import mitt from 'mitt';
import { Server, type ServerOptions, type Socket } from 'socket.io';
import { frameEvents, type EventCodec } from '../../src/event-codec.js';
import {
  createTransport,
  subscriber,
  type ConnectionCheck,
  type ConnectionInfo,
  type Frame,
  type TransportControl,
  type TransportImpl,
  type TransportServer,
  type TransportServerEvents,
} from '../../src/transport.js';
import { claimUpgrades, clientAddress, runChecks } from '../websocket/server.js';
import { trimConnection, trimUpgraded, trimUpgrades } from './trim.js';

/**
 * Options of {@link socketIoServer}.
 *
 * @example
 * ```ts
 * const init: SocketIoServerInit = { server: http, events: serverSocketIoEvents(), maxHttpBufferSize: 256 * 1024 };
 * ```
 */
export interface SocketIoServerInit {
  /**
   * The HTTP(S) server to attach to. socket.io takes the requests and upgrades
   * under `path` and passes every other request on to the `request`
   * listeners the server had when this was called (register the app's own
   * handler first, as `createServer(handler)` does).
   */
  server: HttpServer;
  /**
   * How events map to frames and back.
   * @default frameEvents: each frame is one `message` event
   */
  events?: EventCodec;
  /**
   * socket.io's path.
   * @default '/socket.io'
   */
  path?: string;
  /**
   * Largest packet accepted, in bytes (socket.io's `maxHttpBufferSize`). A
   * bigger one closes the connection. Keep it above the protocol's own frame
   * cap so that a large message gets the protocol's error instead.
   * @default 1048576 (1 MiB)
   */
  maxHttpBufferSize?: number;
  /**
   * Behind a reverse proxy: take the client's address from the last entry of
   * `X-Forwarded-For`, as `webSocketServer` does.
   * @default false
   */
  trustProxy?: boolean;
  /**
   * Anything else for socket.io's `Server` (`cors`, `allowRequest`,
   * `transports`, `pingInterval`, `serveClient` …), passed as is.
   * @default socket.io's defaults, except `serveClient: false`
   */
  options?: Partial<ServerOptions>;
}

/**
 * A {@link TransportServer} for socket.io connections, as {@link socketIoServer} returns it.
 *
 * @example
 * ```ts
 * const server: SocketIoTransportServer = socketIoServer({ server: http });
 * console.log(server.connections, server.io.engine.clientsCount);
 * ```
 */
export interface SocketIoTransportServer extends TransportServer {
  /** Connections whose socket has not disconnected. */
  readonly connections: number;
  /** Adds a check every new connection must pass before it is accepted; returns the function that removes it. */
  verify(check: ConnectionCheck): () => void;
  /** The socket.io server, for middleware (`io.use`) or inspection. Do not close it directly: call `close()`. */
  readonly io: Server;
}

const CLOSE_GRACE = 1000;

type Listener = (...args: unknown[]) => void;
const attached = ['request', 'upgrade', 'close', 'listening'] as const;
type Attached = Record<(typeof attached)[number], Listener[]>;
const listenersOf = (server: HttpServer) =>
  Object.fromEntries(attached.map((event) => [event, server.listeners(event) as Listener[]])) as Attached;

/** How a socket.io disconnect reason reads as a WebSocket-style close code. */
function closeCode(reason: string): number {
  switch (reason) {
    case 'client namespace disconnect':
    case 'server namespace disconnect':
      return 1000;
    case 'server shutting down':
    case 'forced server close':
      return 1001;
    case 'parse error':
      return 1002;
    default:
      return 1006;
  }
}

/**
 * Serves socket.io 4 clients on an existing HTTP server (at socket.io's own
 * `/socket.io/` path, WebSocket and HTTP long-polling) and hands each
 * connection to the main namespace out as a {@link Transport} with its
 * {@link ConnectionInfo}. Node only.
 *
 * socket.io carries events, not frames: `init.events` maps each event a
 * client emits to the frame the transport delivers, and each frame given to
 * `send()` to the event emitted, so that a protocol's server (filedrop's, with
 * `serverSocketIoEvents()`) runs unchanged. Acknowledgement callbacks are
 * dropped; a socket.io close carries no code, so `close(code, reason)` only
 * disconnects. Upgrades for other paths are left to other listeners, as
 * `webSocketServer` does: call `rejectUnroutedUpgrades` once so that a path
 * nobody serves gets a 404 (this server claims socket.io's path for it).
 * `close()` disconnects every client, stops socket.io and gives the HTTP
 * server back as it found it (it does not close it).
 *
 * To save memory on idle connections, what socket.io and engine.io keep of
 * the first request is let go once a connection is handed out (see
 * `trim.ts`): `socket.request` is null (as socket.io's memory guide
 * suggests); the stand-in response engine.io gives a WebSocket upgrade's
 * middlewares (`io.engine.use`) loses its `req` once the upgrade completes,
 * and its `close` event unless a middleware listens for it then; and once
 * every `io.on('connection')` listener has run, `socket.handshake.headers` is
 * empty (the rest of the handshake reads as before). Read headers in an
 * `io.use` middleware, a `connection` listener or from `ConnectionInfo`.
 *
 * @example
 * ```ts
 * const http = createServer(app);
 * const filedrop = createFileDropServer();
 * serve(socketIoServer({ server: http, events: serverSocketIoEvents() }), filedrop);
 * http.listen(3000);
 * ```
 */
export function socketIoServer(init: SocketIoServerInit): SocketIoTransportServer {
  const { server, events = frameEvents } = init;
  const path = (init.path ?? '/socket.io').replace(/\/$/, '');
  const emitter = mitt<TransportServerEvents>();
  const sockets = new Map<Socket, Channel>();
  // The engine.io connection's side of each channel, for the listeners on it (outbound bytes).
  const channels = new WeakMap<EngineSocket, Channel>();
  const checks: ConnectionCheck[] = [];
  let closing: Promise<void> | undefined;

  // engine.io's one hook before a handshake is accepted: a refusal is its 403 (it has no other status).
  const userAllow = init.options?.allowRequest;
  const allowRequest: ServerOptions['allowRequest'] = (request, callback) => {
    const run = () => {
      if (checks.length === 0) return callback(null, true);
      runChecks(checks, requestInfo(request, init.trustProxy)).then(
        (verdict) => callback(verdict === true ? null : `refused (${verdict})`, verdict === true),
        () => callback('refused', false),
      );
    };
    if (!userAllow) return run();
    userAllow(request, (error, ok) => (ok ? run() : callback(error, false)));
  };

  // socket.io (engine.io) takes over the server's request listeners and adds its own; remember
  // what it changed so that close() can undo it.
  const before = listenersOf(server);
  const io = new Server(server, {
    serveClient: false,
    // rejectUnroutedUpgrades answers upgrades nobody claimed; engine.io's own timer is not needed.
    destroyUpgrade: false,
    ...init.options,
    allowRequest,
    path,
    maxHttpBufferSize: init.maxHttpBufferSize ?? 1 << 20,
  });
  const after = listenersOf(server);
  const release = claimUpgrades(server, (pathname) => pathname.startsWith(`${path}/`));
  trimUpgrades(io);

  // One listener of each kind for every connection (socket.io and engine.io call them with the
  // socket as `this`), not closures per connection.
  function onAny(this: Socket, event: unknown, ...args: unknown[]) {
    if (typeof args[args.length - 1] === 'function') args.pop();
    sockets.get(this)?.control.receive(events.receive(event, args));
  }
  function onDisconnect(this: Socket, reason: string) {
    const channel = sockets.get(this);
    sockets.delete(this);
    channel?.control.closed(closeCode(reason), reason);
  }
  function onPacketCreate(this: EngineSocket, packet: EnginePacket) {
    const channel = channels.get(this);
    if (channel) channel.queued += packetSize(packet);
  }
  function onFlush(this: EngineSocket, packets: EnginePacket[]) {
    const channel = channels.get(this);
    if (channel) for (const packet of packets) channel.queued -= packetSize(packet);
  }

  function onUpgrade(this: EngineSocket) {
    const channel = channels.get(this);
    if (channel) trimUpgraded(channel.socket);
  }

  const connect = (socket: Socket) => {
    const channel = new Channel(socket, events);
    const conn = socket.conn as unknown as EngineSocket;
    channels.set(conn, channel);
    conn.on('packetCreate', onPacketCreate);
    conn.on('flush', onFlush);
    sockets.set(socket, channel);
    socket.onAny(onAny);
    // No `error` listener: socket.io adds a no-op one itself, and what arrives there is either an
    // `error` event a client emitted (which `onAny` saw, and the codec refuses) or a middleware
    // refusal, neither of which ends the connection.
    socket.on('disconnect', onDisconnect);
    const url = new URL(socket.handshake.url, 'http://localhost');
    const info: ConnectionInfo = {
      path: url.pathname,
      query: url.searchParams,
      remoteAddress: clientAddress(socket.handshake.address, socket.handshake.headers, init.trustProxy),
      headers: socket.handshake.headers,
    };
    // What an idle connection need not keep (see trim.ts), once every `connection` listener of `io`
    // (they run after this one) has seen the request and the handshake.
    queueMicrotask(() => trimConnection(socket));
    if (conn.transport.name === 'polling') conn.once('upgrade', onUpgrade);
    emitter.emit('connection', { transport: channel.control.transport, info });
  };

  io.on('connection', (socket) => {
    if (closing) socket.disconnect(true);
    else connect(socket);
  });

  return {
    io,
    get connections() {
      return sockets.size;
    },
    on: subscriber(emitter),
    verify(check) {
      checks.push(check);
      return () => {
        const at = checks.indexOf(check);
        if (at >= 0) checks.splice(at, 1);
      };
    },
    close() {
      return (closing ??= (async () => {
        release();
        for (const [socket, { control }] of [...sockets]) {
          control.transport.close(1001, 'server closing');
          sockets.delete(socket);
        }
        io.disconnectSockets(true);
        io.engine.close();
        for (const event of attached) {
          for (const listener of after[event]) {
            if (!before[event].includes(listener)) server.off(event, listener);
          }
          const removed = before[event].filter((listener) => !server.listeners(event).includes(listener));
          for (const listener of removed.reverse()) server.prependListener(event, listener);
        }
        emitter.emit('close', undefined);
        emitter.all.clear();
      })());
    },
  };
}

function requestInfo(request: IncomingMessage, trustProxy: boolean | undefined): ConnectionInfo {
  const url = new URL(request.url ?? '/', 'http://localhost');
  return {
    path: url.pathname,
    query: url.searchParams,
    remoteAddress: clientAddress(request.socket.remoteAddress, request.headers, trustProxy),
    headers: request.headers,
  };
}

interface EnginePacket {
  data?: unknown;
}

/** What this adapter uses of engine.io's connection (socket.io's `socket.conn`). */
interface EngineSocket {
  on(event: 'packetCreate', listener: (this: EngineSocket, packet: EnginePacket) => void): void;
  on(event: 'flush', listener: (this: EngineSocket, packets: EnginePacket[]) => void): void;
  once(event: 'close', listener: () => void): void;
  once(event: 'upgrade', listener: (this: EngineSocket) => void): void;
  close(discard: boolean): void;
  /** The WebSocket transport's `ws` socket; none on long-polling. */
  transport: { name: string; socket?: { bufferedAmount?: number } };
}

/**
 * One connection's side of its transport: what {@link createTransport} calls
 * to send and close, and the bytes engine.io holds for it.
 */
class Channel implements TransportImpl {
  readonly control: TransportControl;
  /**
   * Bytes of the packets engine.io holds until its transport can write (a
   * long-polling client that has not polled, a WebSocket whose last write is
   * not done), counted as they are created and flushed.
   */
  queued = 0;
  readonly socket: Socket;
  private readonly events: EventCodec;

  constructor(socket: Socket, events: EventCodec) {
    this.socket = socket;
    this.events = events;
    this.control = createTransport(this);
  }

  send(frame: Frame): void {
    const [event, ...args] = this.events.send(frame);
    this.socket.emit(event, ...args);
  }

  close(): void {
    // Read before the disconnect, which may let go of it.
    const conn = this.socket.conn as unknown as EngineSocket;
    this.socket.disconnect(true);
    // engine.io holds the connection until its queue drains: one whose client does not take it
    // within a second (it stopped polling or reading) is cut off, and its queue let go.
    const timer = setTimeout(() => conn.close(true), CLOSE_GRACE);
    timer.unref();
    conn.once('close', () => clearTimeout(timer));
  }

  /** {@link queued}, plus what the WebSocket under engine.io has buffered. */
  bufferedAmount(): number {
    const conn = this.socket.conn as unknown as EngineSocket;
    return this.queued + (conn.transport.socket?.bufferedAmount ?? 0);
  }
}

function packetSize(packet: EnginePacket): number {
  const { data } = packet;
  if (typeof data === 'string') return data.length;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}
