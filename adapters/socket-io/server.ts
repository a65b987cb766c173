import type { Server as HttpServer } from 'node:http';
import mitt from 'mitt';
import { Server, type ServerOptions, type Socket } from 'socket.io';
import { frameEvents, type EventCodec } from '../../src/event-codec.js';
import {
  createTransport,
  subscriber,
  type ConnectionInfo,
  type Transport,
  type TransportServer,
  type TransportServerEvents,
} from '../../src/transport.js';
import { claimUpgrades } from '../websocket/server.js';

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
  /** The socket.io server, for middleware (`io.use`) or inspection. Do not close it directly: call `close()`. */
  readonly io: Server;
}

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
  const sockets = new Map<Socket, Transport>();
  let closing: Promise<void> | undefined;

  // socket.io (engine.io) takes over the server's request listeners and adds its own; remember
  // what it changed so that close() can undo it.
  const before = listenersOf(server);
  const io = new Server(server, {
    serveClient: false,
    // rejectUnroutedUpgrades answers upgrades nobody claimed; engine.io's own timer is not needed.
    destroyUpgrade: false,
    ...init.options,
    path,
    maxHttpBufferSize: init.maxHttpBufferSize ?? 1 << 20,
  });
  const after = listenersOf(server);
  const release = claimUpgrades(server, (pathname) => pathname.startsWith(`${path}/`));

  const connect = (socket: Socket) => {
    const control = createTransport({
      send(frame) {
        const [event, ...args] = events.send(frame);
        socket.emit(event, ...args);
      },
      close: () => socket.disconnect(true),
    });
    sockets.set(socket, control.transport);
    socket.onAny((event: unknown, ...args: unknown[]) => {
      if (typeof args[args.length - 1] === 'function') args.pop();
      control.receive(events.receive(event, args));
    });
    // No `error` listener: socket.io adds a no-op one itself, and what arrives there is either an
    // `error` event a client emitted (which `onAny` saw, and the codec refuses) or a middleware
    // refusal, neither of which ends the connection.
    socket.on('disconnect', (reason) => {
      sockets.delete(socket);
      control.closed(closeCode(reason), reason);
    });
    const url = new URL(socket.handshake.url, 'http://localhost');
    const info: ConnectionInfo = {
      path: url.pathname,
      query: url.searchParams,
      remoteAddress: socket.handshake.address,
      headers: socket.handshake.headers,
    };
    emitter.emit('connection', { transport: control.transport, info });
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
    close() {
      return (closing ??= (async () => {
        release();
        for (const [socket, transport] of [...sockets]) {
          transport.close(1001, 'server closing');
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
