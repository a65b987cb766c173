import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import mitt from 'mitt';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
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
import type { Clock } from '../../src/clock.js';

/**
 * Options of {@link webSocketServer}.
 *
 * @example
 * ```ts
 * const init: WebSocketServerInit = {
 *   server: http,
 *   path: (pathname) => pathname.startsWith('/ws/'),
 *   maxPayload: 64 * 1024,
 *   verifyUpgrade: (info) => info.headers.origin === 'https://game.example',
 * };
 * ```
 */
export interface WebSocketServerInit {
  /**
   * The HTTP(S) server to attach to. This server listens for its `upgrade`
   * event and takes only the requests for `path`, so several protocol servers
   * (and other WebSocket libraries) can share one port.
   */
  server: Server;
  /** The request paths (without the query) this server accepts: one exact path, or a predicate. */
  path: string | ((pathname: string) => boolean);
  /**
   * Largest frame accepted, in bytes. A bigger one closes the connection with 1009.
   * @default 1048576 (1 MiB)
   */
  maxPayload?: number;
  /**
   * Decides whether to accept an upgrade for one of our paths, before the
   * checks added with `verify()`. A false (or a rejection) answers 403
   * Forbidden, a number answers with that HTTP status (401, 403, 503).
   * @default accept every request
   */
  verifyUpgrade?: (info: ConnectionInfo, request: IncomingMessage) => boolean | number | Promise<boolean | number>;
  /**
   * Behind a reverse proxy: take the client's address (`remoteAddress`) from
   * the last entry of `X-Forwarded-For`, the one the proxy added, instead of
   * the socket's (the proxy's). Only with one proxy you run in front: a
   * client reaching the server directly could write the header itself.
   * @default false
   */
  trustProxy?: boolean;
  /**
   * `drain` is emitted when a connection's `bufferedAmount` falls to
   * `lowWaterMark` after it rose above `highWaterMark`.
   * @default 1048576 (1 MiB)
   */
  highWaterMark?: number;
  /** @default 262144 (256 KiB) */
  lowWaterMark?: number;
  /**
   * Every this many milliseconds each connection is sent a WebSocket ping
   * (browsers and `ws` answer on their own); one that answered nothing,
   * neither pong nor frame, since the previous ping is cut off (close 1006),
   * so a client whose network vanished without a FIN does not hold its
   * session forever. `false`: no pings.
   * @default 30000
   */
  heartbeatInterval?: number | false;
  /** Timer source of the heartbeat (XState's `SimulatedClock` in tests). @default the global timers */
  clock?: Clock;
}

/**
 * A {@link TransportServer} for WebSocket connections, as {@link webSocketServer} returns it.
 *
 * @example
 * ```ts
 * const server: WebSocketTransportServer = webSocketServer({ server: http, path: '/swarm' });
 * console.log(server.connections);
 * ```
 */
export interface WebSocketTransportServer extends TransportServer {
  /** Connections whose socket has not finished closing. */
  readonly connections: number;
  /** Adds a check every new connection must pass before it is accepted; returns the function that removes it. */
  verify(check: ConnectionCheck): () => void;
}

type PathMatcher = (pathname: string) => boolean;

interface Claims {
  matchers: Set<PathMatcher>;
  rejecting?: () => void;
}

// Which paths the webSocketServers on each HTTP server accept, so that
// rejectUnroutedUpgrades can refuse the rest whatever the listener order.
const claims = new WeakMap<Server, Claims>();
// Requests one of our servers took, so that two servers claiming the same
// path never both handle one upgrade: the first registered wins.
const taken = new WeakSet<IncomingMessage>();

function claimsOf(server: Server): Claims {
  let entry = claims.get(server);
  if (!entry) claims.set(server, (entry = { matchers: new Set() }));
  return entry;
}

// Split by hand: `new URL('//a/b', base)` would read `a` as a host.
function targetOf(request: IncomingMessage): { pathname: string; search: string } {
  let target = request.url ?? '/';
  if (!target.startsWith('/')) {
    try {
      const url = new URL(target);
      target = url.pathname + url.search;
    } catch {
      return { pathname: '', search: '' };
    }
  }
  const q = target.indexOf('?');
  return q < 0 ? { pathname: target, search: '' } : { pathname: target.slice(0, q), search: target.slice(q + 1) };
}

// An error on a socket nobody else owns yet (the client went away) must not
// crash the process: nothing is left to do with it.
const ignoreError = () => {};

/** The client's address: the socket's, or behind a trusted proxy the last `X-Forwarded-For` entry. */
export function clientAddress(
  socketAddress: string | undefined,
  headers: IncomingMessage['headers'],
  trustProxy: boolean | undefined,
): string {
  const forwarded = trustProxy ? headers['x-forwarded-for'] : undefined;
  const list = Array.isArray(forwarded) ? forwarded.join(',') : forwarded;
  const last = list?.split(',').pop()?.trim();
  return last || (socketAddress ?? '');
}

const STATUS_TEXT: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};

/** Runs `checks` in order; the first refusal is the answer (an HTTP status), else true. */
export async function runChecks(
  checks: readonly ((info: ConnectionInfo) => boolean | number | Promise<boolean | number>)[],
  info: ConnectionInfo,
): Promise<true | number> {
  for (const check of checks) {
    let verdict: boolean | number;
    try {
      verdict = await check(info);
    } catch {
      return 403;
    }
    if (verdict === true) continue;
    return typeof verdict === 'number' && verdict >= 400 && verdict <= 599 ? verdict : 403;
  }
  return true;
}

function refuse(socket: Duplex, status: number, text = STATUS_TEXT[status] ?? 'Forbidden') {
  socket.on('error', ignoreError);
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  socket.once('finish', () => socket.destroy());
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}

const CLOSE_GRACE = 1000;

/**
 * Serves WebSocket connections on `init.path` of an existing HTTP server and
 * hands each out as a {@link Transport} with its {@link ConnectionInfo}
 * (pathname, query, remote address, headers). Node only.
 *
 * Upgrades for other paths are left to other listeners; call
 * {@link rejectUnroutedUpgrades} once so that a path nobody serves gets a 404
 * instead of a socket left hanging. `close()` stops accepting, closes every
 * connection with 1001 and resolves once their sockets are closed.
 *
 * Text frames arrive as `string`, binary as `Uint8Array`.
 *
 * @example
 * ```ts
 * const http = createServer();
 * const cloudlink = webSocketServer({ server: http, path: (p) => p.startsWith('/ws/') });
 * const workrooms = webSocketServer({ server: http, path: '/workrooms' });
 * rejectUnroutedUpgrades(http);
 * cloudlink.on('connection', ({ transport, info }) => console.log(info.path, info.query.get('v')));
 * http.listen(3000);
 * ```
 */
export function webSocketServer(init: WebSocketServerInit): WebSocketTransportServer {
  const { server, path, highWaterMark = 1 << 20, lowWaterMark = 1 << 18 } = init;
  const checks: ConnectionCheck[] = [];
  const accepts: PathMatcher = typeof path === 'string' ? (pathname) => pathname === path : path;
  // No clientTracking: `sockets` tracks the connections, and ws's own Set costs a close listener per socket.
  const wss = new WebSocketServer({ noServer: true, clientTracking: false, maxPayload: init.maxPayload ?? 1 << 20 });
  const emitter = mitt<TransportServerEvents>();
  const sockets = new Map<WebSocket, Channel>();
  const pending = new Set<Duplex>();
  let closing: Promise<void> | undefined;

  // One timer for every connection: each round cuts off the silent and pings the rest.
  const heartbeat = init.heartbeatInterval ?? 30_000;
  if (heartbeat !== false && !(Number.isFinite(heartbeat) && heartbeat > 0)) {
    throw new RangeError(
      `webSocketServer(): heartbeatInterval must be a positive number of ms or false, got ${heartbeat}`,
    );
  }
  const clock: Clock = init.clock ?? globalThis;
  const silent = new Set<WebSocket>();
  let beat: unknown;
  const scheduleBeat = () => {
    if (heartbeat === false || closing) return;
    beat = clock.setTimeout(() => {
      for (const ws of sockets.keys()) {
        if (silent.has(ws)) {
          ws.terminate();
          continue;
        }
        silent.add(ws);
        try {
          ws.ping();
        } catch {
          // not open any more: its close event is on the way
        }
      }
      scheduleBeat();
    }, heartbeat);
    (beat as { unref?: () => void } | undefined)?.unref?.();
  };
  scheduleBeat();

  const upgrade = (request: IncomingMessage, socket: Duplex, head: Buffer, info: ConnectionInfo) => {
    pending.delete(socket);
    socket.off('error', ignoreError);
    if (closing || socket.destroyed) {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => {
      if (closing) ws.terminate();
      else connect(ws, info);
    });
  };

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (taken.has(request) || closing) return;
    const { pathname, search } = targetOf(request);
    if (!accepts(pathname)) return;
    taken.add(request);
    const info: ConnectionInfo = {
      path: pathname,
      query: new URLSearchParams(search),
      remoteAddress: clientAddress(request.socket.remoteAddress, request.headers, init.trustProxy),
      headers: request.headers,
    };
    const { verifyUpgrade } = init;
    const all = verifyUpgrade ? [(i: ConnectionInfo) => verifyUpgrade(i, request), ...checks] : checks;
    if (all.length === 0) return upgrade(request, socket, head, info);
    socket.on('error', ignoreError);
    pending.add(socket);
    runChecks(all, info)
      .then((verdict) => (verdict === true ? upgrade(request, socket, head, info) : refuse(socket, verdict)))
      .finally(() => pending.delete(socket));
  };

  // One listener of each kind for every connection (ws calls them with the
  // socket as `this`), not closures per connection.
  function onPong(this: WebSocket) {
    silent.delete(this);
  }
  function onMessage(this: WebSocket, data: RawData, isBinary: boolean) {
    silent.delete(this);
    const buffer = data as Buffer;
    sockets
      .get(this)
      ?.control.receive(
        isBinary ? new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength) : buffer.toString('utf8'),
      );
  }
  function onError(this: WebSocket, error: Error) {
    sockets.get(this)?.control.failed(error);
  }
  function onClose(this: WebSocket, code: number, reason: Buffer) {
    const channel = sockets.get(this);
    sockets.delete(this);
    silent.delete(this);
    channel?.control.closed(code, reason.toString('utf8'));
  }

  const connect = (ws: WebSocket, info: ConnectionInfo) => {
    const channel = new Channel(ws, highWaterMark, lowWaterMark);
    sockets.set(ws, channel);
    ws.on('pong', onPong);
    ws.on('message', onMessage);
    ws.on('error', onError);
    ws.on('close', onClose);
    emitter.emit('connection', { transport: channel.control.transport, info });
  };

  server.on('upgrade', onUpgrade);
  const entry = claimsOf(server);
  entry.matchers.add(accepts);

  return {
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
        server.off('upgrade', onUpgrade);
        entry.matchers.delete(accepts);
        if (beat !== undefined) clock.clearTimeout(beat);
        for (const socket of pending) socket.destroy();
        pending.clear();
        const closed = [...sockets].map(
          ([ws, { control }]) =>
            new Promise<void>((resolve) => {
              // A client that never answers the close frame is cut off.
              const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE);
              ws.once('close', () => {
                clearTimeout(timer);
                resolve();
              });
              control.transport.close(1001, 'server closing');
            }),
        );
        await Promise.all(closed);
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        emitter.emit('close', undefined);
        emitter.all.clear();
      })());
    },
  };
}

/**
 * One connection's side of its transport: what {@link createTransport} calls
 * to send and close, and the state that needs (cork, high-water mark).
 */
class Channel implements TransportImpl {
  readonly control: TransportControl;
  private readonly ws: WebSocket;
  private readonly socket: Socket | undefined;
  private readonly highWaterMark: number;
  private readonly lowWaterMark: number;
  private corked = false;
  private aboveHighWater = false;
  // ws has no drain event; this send callback runs once a frame is written out.
  private written: (() => void) | undefined;

  constructor(ws: WebSocket, highWaterMark: number, lowWaterMark: number) {
    this.ws = ws;
    this.socket = (ws as unknown as { _socket?: Socket })._socket;
    this.highWaterMark = highWaterMark;
    this.lowWaterMark = lowWaterMark;
    this.control = createTransport(this);
  }

  send(frame: Frame): void {
    const { ws, socket } = this;
    // Frames sent in one tick leave in one write: the socket is corked at the
    // first send and uncorked on the next tick. One read often carries many
    // frames for one recipient (a relay under load), and on loopback each
    // write is a syscall that costs more than relaying the frame.
    if (!this.corked && socket) {
      this.corked = true;
      socket.cork();
      process.nextTick(uncork, this);
    }
    // A write callback costs on every frame; it is only needed once the
    // buffer is over the high-water mark or when this send may take it
    // there (frames corked in this tick count as buffered).
    const data = typeof frame === 'string' && frame.length >= SHARED_TEXT ? textBytes(frame) : frame;
    const track = this.aboveHighWater || ws.bufferedAmount + frameSize(data) > this.highWaterMark;
    const written = track ? (this.written ??= () => this.drain()) : undefined;
    if (data === frame) ws.send(frame, written);
    else ws.send(data, { binary: false }, written);
    if (ws.bufferedAmount > this.highWaterMark) this.aboveHighWater = true;
  }

  close(code: number, reason: string): void {
    const { ws } = this;
    ws.close(code, reason);
    // A client that does not answer the close within a second (one that stopped reading never
    // sees the close frame queued behind its backlog) is cut off, and its buffer let go.
    const timer = setTimeout(() => ws.terminate(), CLOSE_GRACE);
    timer.unref();
    ws.once('close', () => clearTimeout(timer));
  }

  bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  uncork(): void {
    this.corked = false;
    this.socket?.uncork();
  }

  private drain(): void {
    if (this.aboveHighWater && this.ws.bufferedAmount <= this.lowWaterMark) {
      this.aboveHighWater = false;
      this.control.drained();
    }
  }
}

function uncork(channel: Channel) {
  channel.uncork();
}

/**
 * Tells {@link rejectUnroutedUpgrades} that another library's upgrade
 * listener on `server` serves the paths `accepts` matches (socket.io at
 * `/socket.io/`), so that their upgrades are left to it. Returns the
 * function that withdraws the claim.
 *
 * @example
 * ```ts
 * const release = claimUpgrades(http, (pathname) => pathname.startsWith('/socket.io/'));
 * ```
 */
export function claimUpgrades(server: Server, accepts: (pathname: string) => boolean): () => void {
  const entry = claimsOf(server);
  const matcher: PathMatcher = (pathname) => accepts(pathname);
  entry.matchers.add(matcher);
  return () => void entry.matchers.delete(matcher);
}

/**
 * Answers 404 to every WebSocket upgrade on `server` whose path no
 * {@link webSocketServer} accepts, instead of leaving the socket open. Call
 * once per HTTP server, in any order relative to the `webSocketServer`s; a
 * second call does nothing. Returns a function that removes the listener.
 *
 * An upgrade meant for another library's listener on the same server is
 * refused too, unless that library's paths are claimed with
 * {@link claimUpgrades} (`socketIoServer` claims its own).
 *
 * @example
 * ```ts
 * const http = createServer();
 * webSocketServer({ server: http, path: '/registry' });
 * rejectUnroutedUpgrades(http);
 * ```
 */
export function rejectUnroutedUpgrades(server: Server): () => void {
  const entry = claimsOf(server);
  if (entry.rejecting) return entry.rejecting;
  const onUpgrade = (request: IncomingMessage, socket: Duplex) => {
    const { pathname } = targetOf(request);
    for (const accepts of entry.matchers) if (accepts(pathname)) return;
    refuse(socket, 404, 'Not Found');
  };
  server.on('upgrade', onUpgrade);
  const stop = () => {
    server.off('upgrade', onUpgrade);
    if (entry.rejecting === stop) entry.rejecting = undefined;
  };
  entry.rejecting = stop;
  return stop;
}

/**
 * Text frames from this many characters are encoded to UTF-8 here, once for
 * every connection they are sent to in a row: a broadcast (a registry round
 * written to thousands of peers) hands the same string to each, and each
 * then gets the same bytes, written as they are (no copy, no second
 * encoding) and shared by every socket buffer that holds them. Shorter
 * frames go to `ws` as strings, encoded straight into the socket write.
 */
const SHARED_TEXT = 1024;
let lastText: string | undefined;
let lastBytes: Buffer = Buffer.alloc(0);

/** The UTF-8 bytes of `text`, the last text's own when it is the same. */
function textBytes(text: string): Buffer {
  if (text !== lastText) {
    lastText = text;
    lastBytes = Buffer.from(text);
  }
  return lastBytes;
}

/** Upper bound of a frame's size in bytes (UTF-8 takes at most 3 bytes per UTF-16 unit). */
function frameSize(frame: string | Uint8Array): number {
  return typeof frame === 'string' ? frame.length * 3 : frame.byteLength;
}
