/**
 * What `socketIoServer` lets go of in socket.io's and engine.io's objects once
 * a connection is handed out, to cut what an idle connection costs (issue 13;
 * bench/README.md, "`idle.bench.ts`"). Every trim here reaches into socket.io
 * 4.8 / engine.io 6.6 internals: each checks the shape it relies on at run
 * time and does nothing when it is not there, so a socket.io release that
 * changes it costs memory, never behaviour. test/socket-io-trim.test.ts fails
 * when a trim stops applying.
 */
import { EventEmitter } from 'node:events';
import { ServerResponse, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import type { ParsedUrlQuery } from 'node:querystring';
import type { Duplex } from 'node:stream';
import type { Server, Socket } from 'socket.io';

type Listener = (...args: unknown[]) => void;

const isArray = (value: unknown): value is unknown[] => Array.isArray(value);

/**
 * Replaces `holder[key]` by a copy of exact size. V8 gives an array that
 * grew by `push` from empty room for 17 entries (152 B); socket.io and
 * engine.io push one or two listeners into several per connection and never
 * more. Later pushes grow the copy as before.
 */
function compact(holder: unknown, key: string): void {
  if (typeof holder !== 'object' || holder === null) return;
  const record = holder as Record<string, unknown>;
  const array = record[key];
  if (isArray(array)) record[key] = array.slice();
}

const NO_HEADERS: IncomingHttpHeaders = Object.freeze({});
/** The `auth` of a client that sent none (socket.io gives each such socket an empty object of its own). */
const NO_AUTH: Record<string, unknown> = Object.freeze({});

/** The fields {@link CompactHandshake} keeps as they were. */
const KEPT = ['address', 'xdomain', 'secure', 'issued', 'url', 'auth'] as const;

const parseQuery = (url: string): ParsedUrlQuery => Object.fromEntries(new URL(url, 'https://socket.io').searchParams);

function sameQuery(a: ParsedUrlQuery, b: ParsedUrlQuery): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key]);
}

/** Sets `key` on `target` as an own data property (over an accessor of its prototype). */
function own(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/**
 * socket.io's `socket.handshake` without the request's headers: what an idle
 * connection kept of its first request (the headers object and each header's
 * string, the query object, the `time` string: ~550 B with the few headers a
 * Node client sends, more with a browser's cookies and user agent). `url`,
 * `address`, `xdomain`, `secure`, `issued` and `auth` stay as they were (an
 * empty `auth` becomes one shared frozen empty object); `time` and `query`
 * are computed from `issued` and `url` when read, as socket.io and engine.io
 * computed them, unless they differ from that (a middleware changed them):
 * then they are kept, as is anything a middleware added. `headers` is
 * empty. Every field can be assigned, as on socket.io's own object.
 */
export class CompactHandshake {
  address: string;
  xdomain: boolean;
  secure: boolean;
  issued: number;
  url: string;
  auth: Record<string, unknown>;

  constructor(handshake: Socket['handshake']) {
    this.address = handshake.address;
    this.xdomain = handshake.xdomain;
    this.secure = handshake.secure;
    this.issued = handshake.issued;
    this.url = handshake.url;
    this.auth = Object.keys(handshake.auth).length === 0 ? NO_AUTH : handshake.auth;
    const extra = handshake as unknown as Record<string, unknown>;
    for (const key of Object.keys(handshake)) {
      if (key === 'headers' || (KEPT as readonly string[]).includes(key)) continue;
      if (key === 'time' && handshake.time === this.time) continue;
      if (key === 'query' && sameQuery(handshake.query, this.query)) continue;
      own(this, key, extra[key]);
    }
  }

  /** Let go once the connection was handed out: read them in an `io.use` middleware or from `ConnectionInfo`. */
  get headers(): IncomingHttpHeaders {
    return NO_HEADERS;
  }

  set headers(value: IncomingHttpHeaders) {
    own(this, 'headers', value);
  }

  /** When the handshake was made, as socket.io wrote it (`Date.prototype.toString`). */
  get time(): string {
    return new Date(this.issued).toString();
  }

  set time(value: string) {
    own(this, 'time', value);
  }

  /** The handshake URL's query, parsed as engine.io parses it (a new object each time it is read). */
  get query(): ParsedUrlQuery {
    return parseQuery(this.url);
  }

  set query(value: ParsedUrlQuery) {
    own(this, 'query', value);
  }

  toJSON(): Socket['handshake'] {
    const { headers, time, query } = this;
    return { ...this, headers, time, query };
  }
}

/** The fields of socket.io's handshake that {@link CompactHandshake} takes over, with their types. */
function isHandshake(value: unknown): value is Socket['handshake'] {
  if (typeof value !== 'object' || value === null) return false;
  const h = value as Record<string, unknown>;
  return (
    typeof h.address === 'string' &&
    typeof h.xdomain === 'boolean' &&
    typeof h.secure === 'boolean' &&
    typeof h.issued === 'number' &&
    typeof h.url === 'string' &&
    typeof h.auth === 'object' &&
    h.auth !== null
  );
}

/**
 * Node's `once` wraps a listener in a bound function and a state object
 * (~130 B with the property it sets on the bound function). Returns the
 * listener itself for such a wrapper, anything else as it is.
 */
function unwrapOnce(listener: unknown): unknown {
  if (typeof listener !== 'function' || listener.name !== 'bound onceWrapper') return listener;
  const inner = (listener as { listener?: unknown }).listener;
  return typeof inner === 'function' ? inner : listener;
}

/**
 * Node's `EventEmitter` keeps its listeners in `_events`, an object it makes
 * as `{ __proto__: null }`, which V8 holds as a dictionary (a hash table of
 * ~200–300 B for a few events, that a deleted event never shrinks). A copy
 * with the same keys is an ordinary object: ~180 B less. The listener arrays
 * of events with several listeners are copied at their exact size, and the
 * `once` wrappers of the events in `once` are replaced by their listeners:
 * only for events an emitter emits at most once in its life (`close`), or
 * whose listeners are idempotent, where `on` and `once` behave the same.
 * Node reads `_events` afresh on every call (an `emit` under way keeps its
 * own copy of the listeners), so the emitter behaves as before; adding a
 * listener for a new event later extends the copy, and removing an event's
 * last one turns it back into a dictionary.
 */
function compactEvents(emitter: unknown, once: readonly string[] = []): void {
  if (!(emitter instanceof EventEmitter)) return;
  const holder = emitter as unknown as { _events?: unknown };
  const events = holder._events;
  if (typeof events !== 'object' || events === null || Object.getPrototypeOf(events) !== null) return;
  const copy = { ...events } as Record<string | symbol, unknown>;
  for (const key of Reflect.ownKeys(copy)) {
    const listeners = copy[key];
    const unwrap = typeof key === 'string' && once.includes(key);
    if (isArray(listeners)) copy[key] = unwrap ? listeners.map(unwrapOnce) : listeners.slice();
    else if (unwrap) copy[key] = unwrapOnce(listeners);
  }
  holder._events = Object.setPrototypeOf(copy, null);
}

/**
 * The `once` listeners {@link compactEvents} may turn into `on` listeners:
 * engine.io's socket emits `close` once (its `onClose` is guarded by its
 * state); a `ws` socket emits `close` once; engine.io's WebSocket transport
 * emits `close` when its `ws` socket closes, and its `error` listener is
 * engine.io's socket's `onError`, which closes that socket once and ignores
 * every later call.
 */
const ONCE_CONN = ['close'] as const;
const ONCE_TRANSPORT = ['close', 'error'] as const;
const ONCE_WS = ['close'] as const;

interface Emitter {
  listeners(event: string): Listener[];
  off(event: string, listener: Listener): void;
}

const isEmitter = (value: unknown): value is Emitter => value instanceof EventEmitter;

/**
 * Trims a connection's objects once it is handed out and every `connection`
 * listener of `io` has run (`socketIoServer` calls it a microtask after the
 * connection: `io.use` middlewares and `io.on('connection')` listeners still
 * see `socket.request` and the whole handshake).
 *
 * - engine.io keeps the first HTTP request (`socket.conn.request`: the
 *   `IncomingMessage`, its raw headers and parser state, ~1 KB) for the
 *   connection's life; what `ConnectionInfo` and the handshake need was read
 *   from it before (`socket.request` is then null, as socket.io's memory
 *   guide suggests).
 * - `socket.handshake` becomes a {@link CompactHandshake}: no headers.
 * - engine.io's listener for errors before the upgrade stays on the `ws`
 *   socket (its transport has its own).
 * - engine.io's `headers` listener on a WebSocket transport (only long-polling
 *   emits `headers`; a WebSocket handshake's headers go through `ws`).
 * - arrays that grew by one `push` from empty: engine.io's `cleanupFn`,
 *   socket.io's `_anyListeners` (the adapter's `onAny`), and the socket.io
 *   parser's `decoded` listener list.
 * - the listener tables (`_events`) of socket.io's socket, engine.io's
 *   socket, its transport and the `ws` socket under it
 *   ({@link compactEvents}).
 *
 * A long-polling connection's transport is trimmed by {@link trimUpgraded}
 * once it upgrades to WebSocket.
 */
export function trimConnection(socket: Socket): void {
  const conn = socket.conn as unknown as Record<string, unknown>;
  if (conn.request) conn.request = null;
  const { handshake } = socket;
  if (!(handshake instanceof CompactHandshake) && isHandshake(handshake)) {
    // socket.io declares it readonly; it is a plain field that socket.io never reads again.
    (socket as { handshake: unknown }).handshake = new CompactHandshake(handshake);
  }
  const transport = conn.transport as { name?: unknown; socket?: unknown } | undefined;
  const ws = transport?.socket;
  if (isEmitter(ws)) {
    for (const listener of ws.listeners('error')) if (listener.name === 'onUpgradeError') ws.off('error', listener);
  }
  if (transport?.name === 'websocket' && isEmitter(transport)) {
    for (const listener of transport.listeners('headers')) transport.off('headers', listener);
  }
  compact(conn, 'cleanupFn');
  compact(socket, '_anyListeners');
  const client = socket.client as unknown as { decoder?: { _callbacks?: unknown } };
  compact(client.decoder?._callbacks, '$decoded');
  compactEvents(socket);
  compactEvents(conn, ONCE_CONN);
  if (transport?.name === 'websocket') {
    compactEvents(transport, ONCE_TRANSPORT);
    compactEvents(ws, ONCE_WS);
  }
}

/**
 * For a connection that began on long-polling, called when engine.io
 * upgraded it to WebSocket (its `upgrade` event): the listener tables of
 * engine.io's socket, its new transport and the `ws` socket under it, and
 * `cleanupFn` (see {@link trimConnection}).
 */
export function trimUpgraded(socket: Socket): void {
  const conn = socket.conn as unknown as Record<string, unknown>;
  const transport = conn.transport as { name?: unknown; socket?: unknown } | undefined;
  compact(conn, 'cleanupFn');
  compactEvents(conn, ONCE_CONN);
  if (transport?.name === 'websocket') {
    compactEvents(transport, ONCE_TRANSPORT);
    compactEvents(transport.socket, ONCE_WS);
  }
}

/** engine.io's stand-in response for an upgrade's middlewares (`WebSocketResponse`). */
interface UpgradeResponse {
  req: unknown;
  socket: Duplex;
  writeHead(): void;
  listenerCount(event: string): number;
}

/**
 * engine.io's relay of each upgrading TCP socket's `close` to its stand-in
 * response, by socket, from the upgrade until engine.io completes it.
 */
const relays = new WeakMap<Duplex, Listener>();

/**
 * engine.io hands a WebSocket upgrade's middlewares a stand-in response
 * (`WebSocketResponse`) which keeps the request (its `IncomingMessage`, raw
 * headers and streams, ~1.1 KB), and its constructor adds a `close` listener
 * to the TCP socket that keeps the stand-in for the connection's life (for
 * middlewares that wait for a response's `close`, as pino-http does: ~400 B
 * more). This wraps the engine's `handleUpgrade` to note that listener (the
 * one `close` listener its synchronous part adds: the middlewares run after
 * a microtask) and adds a middleware that lets go of both when engine.io
 * writes the stand-in's head, right before it completes the upgrade (after
 * every middleware and `allowRequest`): the request always, the listener
 * when no middleware listens for the stand-in's `close`.
 */
export function trimUpgrades(io: Server): void {
  const engine = io.engine as unknown as {
    handleUpgrade?: (this: unknown, req: IncomingMessage, socket: Duplex, head: Buffer) => void;
    use?(middleware: unknown): void;
  };
  const handleUpgrade = engine.handleUpgrade;
  if (typeof handleUpgrade !== 'function' || typeof engine.use !== 'function') return;
  engine.handleUpgrade = function (this: unknown, req: IncomingMessage, socket: Duplex, head: Buffer) {
    const before = socket.rawListeners('close');
    handleUpgrade.call(this, req, socket, head);
    const added = socket.rawListeners('close').filter((listener) => !before.includes(listener));
    if (added.length === 1) relays.set(socket, added[0] as Listener);
  };
  engine.use(releaseUpgrade);
}

function releaseUpgrade(_request: IncomingMessage, response: ServerResponse, next: (error?: unknown) => void) {
  if (!(response instanceof ServerResponse)) (response as unknown as UpgradeResponse).writeHead = writeHeadAndRelease;
  next();
}

function writeHeadAndRelease(this: UpgradeResponse) {
  (Object.getPrototypeOf(this) as UpgradeResponse).writeHead.call(this);
  this.req = null;
  const relay = relays.get(this.socket);
  if (!relay) return;
  relays.delete(this.socket);
  if (this.listenerCount('close') === 0) this.socket.removeListener('close', relay);
}
