import mitt from 'mitt';
import { ErrorCode, TransportError } from '../../src/errors.js';
import {
  createTransport,
  type ConnectionInfo,
  type Frame,
  type Transport,
  type TransportControl,
  type TransportServer,
  type TransportServerEvents,
} from '../../src/transport.js';

/*
 * Wire format. A BroadcastChannel delivers every message to every other
 * channel object with the same name (in any tab, worker or worker_thread of
 * the origin / process), in the order each sender posted them, as a
 * structured clone. Many clients and a hub share one name, so every message
 * is an envelope saying whom it is for, and everyone else drops it:
 *
 *   { signalbox: 1, kind, to: 'hub' | 'client', conn?, hub?, ... }
 *
 *   hello  client → any hub   { conn }                      "I want a connection with this id"
 *   accept hub → client       { conn, hub, heartbeat }      "hub <hub> can take it" (stateless)
 *   open   client → one hub   { conn, hub, heartbeat, path, query }
 *                                                          "I take hub <hub>": the hub emits `connection`
 *   opened hub → client       { conn, hub }                 the client's promise resolves
 *   frame  either way         { conn, hub, frame }          one frame: a string or a Uint8Array
 *   close  either way         { conn, hub, code, reason }   the sender closed the connection
 *   beat   either way         { hub, conn? }                "still here" (the hub's covers all its clients)
 *   down   hub → clients      { hub }                       the hub closed
 *
 * `conn` is a 128-bit random id chosen by the client; `hub` one chosen by the
 * hub. A hub keeps no state for a hello, so when several hubs answer, the
 * client simply opens with the first and the others never hear from it again.
 * The client repeats its hello until a hub accepts (a hub may still be
 * starting) and gives up after `connectTimeout`, or at once on a `down` from
 * the hub it chose. Each side posts its own envelopes in order, which
 * BroadcastChannel keeps; nothing orders one sender against another, and
 * nothing here needs it to.
 */

const VERSION = 1;

type Direction = 'hub' | 'client';

type Envelope =
  | { signalbox: 1; kind: 'hello'; to: 'hub'; conn: string }
  | { signalbox: 1; kind: 'accept'; to: 'client'; conn: string; hub: string; heartbeat: number }
  | { signalbox: 1; kind: 'open'; to: 'hub'; conn: string; hub: string; heartbeat: number; path: string; query: string }
  | { signalbox: 1; kind: 'opened'; to: 'client'; conn: string; hub: string }
  | { signalbox: 1; kind: 'frame'; to: Direction; conn: string; hub: string; frame: Frame }
  | { signalbox: 1; kind: 'close'; to: Direction; conn: string; hub: string; code: number; reason: string }
  | { signalbox: 1; kind: 'beat'; to: Direction; hub: string; conn?: string }
  | { signalbox: 1; kind: 'down'; to: 'client'; hub: string };

/**
 * The part of the W3C `BroadcastChannel` this adapter uses. The browser's and
 * Node's (a global since Node 18) both provide it.
 *
 * @example
 * ```ts
 * const channel: BroadcastChannelLike = new BroadcastChannel('signalbox');
 * ```
 */
export interface BroadcastChannelLike {
  postMessage(message: unknown): void;
  close(): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
}

/**
 * A `BroadcastChannel` constructor: `globalThis.BroadcastChannel`, or a
 * stand-in with the same behaviour (a polyfill, a test double).
 *
 * @example
 * ```ts
 * const Impl: BroadcastChannelConstructor = BroadcastChannel;
 * ```
 */
export type BroadcastChannelConstructor = new (name: string) => BroadcastChannelLike;

/**
 * Options that the hub and the client share.
 *
 * Liveness: a context that dies without closing (a terminated worker, a
 * crashed or killed tab) sends nothing, and BroadcastChannel does not tell
 * anyone. So each side posts a small heartbeat every `heartbeatInterval` and
 * presumes the other side dead after `heartbeatTimeout` without hearing from
 * it (any frame counts, not only heartbeats). Each side announces its
 * interval in the handshake, and never expects beats from a side that does
 * not send them.
 *
 * @example
 * ```ts
 * // Workers only, no background tabs: detect a terminated worker within about 3 s.
 * const init: BroadcastChannelOptions = { heartbeatInterval: 1000, heartbeatTimeout: 3000 };
 * ```
 */
export interface BroadcastChannelOptions {
  /**
   * The BroadcastChannel implementation.
   * @default globalThis.BroadcastChannel
   */
  BroadcastChannel?: BroadcastChannelConstructor;
  /**
   * How often this side posts a heartbeat, in ms. 0 sends none; the other
   * side then never times this one out.
   * @default 5000
   */
  heartbeatInterval?: number;
  /**
   * How long this side waits without hearing from the other before it
   * closes the connection with 1006 and an `ERR_KEEPALIVE_TIMEOUT` error, in
   * ms; never less than twice the other side's interval. 0 never times out.
   * The default outlasts the one timer wake-up per minute that Chrome allows
   * a tab hidden for five minutes; lower it where no tab can be in the
   * background (worker_threads, dedicated workers of a visible page).
   * @default 75000
   */
  heartbeatTimeout?: number;
}

/**
 * Options of {@link broadcastChannelServer}.
 *
 * @example
 * ```ts
 * const init: BroadcastChannelServerInit = { name: 'signalbox', heartbeatTimeout: 10_000 };
 * ```
 */
export interface BroadcastChannelServerInit extends BroadcastChannelOptions {
  /** The channel name the hub listens on; its clients connect to the same name. */
  name: string;
}

/**
 * Options of {@link broadcastChannelTransport}.
 *
 * @example
 * ```ts
 * const init: BroadcastChannelTransportInit = { name: 'signalbox', path: '/ws/my-game', query: { v: '1' } };
 * ```
 */
export interface BroadcastChannelTransportInit extends BroadcastChannelOptions {
  /** The channel name the hub listens on. */
  name: string;
  /**
   * The path the hub sees in {@link ConnectionInfo} (a hub serving several
   * protocols routes on it).
   * @default the channel name
   */
  path?: string;
  /**
   * The query the hub sees in {@link ConnectionInfo}.
   * @default no query
   */
  query?: Record<string, string> | string;
  /**
   * How long to wait for a hub to answer, in ms. The client repeats its
   * hello meanwhile, so a hub that starts a little later (a worker still
   * booting) is found.
   * @default 2000
   */
  connectTimeout?: number;
}

/**
 * A {@link TransportServer} on a BroadcastChannel, as {@link broadcastChannelServer} returns it.
 *
 * @example
 * ```ts
 * const hub: BroadcastChannelTransportServer = broadcastChannelServer({ name: 'signalbox' });
 * console.log(hub.name, hub.connections);
 * ```
 */
export interface BroadcastChannelTransportServer extends TransportServer {
  /** The channel name. */
  readonly name: string;
  /** Connections that are open on the hub's side. */
  readonly connections: number;
}

const HELLO_REPEAT = 200;
const DEFAULTS = { heartbeatInterval: 5000, heartbeatTimeout: 75_000, connectTimeout: 2000 };

function constructorOf(init: BroadcastChannelOptions): BroadcastChannelConstructor {
  const Impl =
    init.BroadcastChannel ?? (globalThis as { BroadcastChannel?: BroadcastChannelConstructor }).BroadcastChannel;
  if (!Impl) {
    throw new TypeError(
      'No BroadcastChannel implementation: pass one as `init.BroadcastChannel` ' +
        '(browsers, workers and Node 18+ have a global one).',
    );
  }
  return Impl;
}

function milliseconds(value: number | undefined, fallback: number, option: string): number {
  const ms = value ?? fallback;
  if (!(ms >= 0) || ms === Infinity) throw new RangeError(`${option} must be a finite number of ms >= 0, got ${ms}`);
  return ms;
}

function randomId(): string {
  const bytes = new Uint8Array(16);
  // getRandomValues, unlike randomUUID, also exists outside secure contexts (a page on plain http).
  globalThis.crypto.getRandomValues(bytes);
  let id = '';
  for (const byte of bytes) id += byte.toString(16).padStart(2, '0');
  return id;
}

function isEnvelope(data: unknown): data is Envelope {
  const e = data as Partial<Record<string, unknown>> | null;
  return (
    typeof e === 'object' &&
    e !== null &&
    e.signalbox === VERSION &&
    typeof e.kind === 'string' &&
    (e.to === 'hub' || e.to === 'client')
  );
}

/**
 * A copy holding exactly the frame's bytes: structured clone copies a view's
 * whole buffer (a `Buffer` from Node's pool is a view on 8 KiB of unrelated
 * data), and a view on a SharedArrayBuffer would stay shared with the sender.
 */
const wireFrame = (frame: Frame): Frame => (typeof frame === 'string' ? frame : new Uint8Array(frame));

const badFrame = () =>
  new TransportError(
    ErrorCode.TransportFailed,
    'BroadcastChannel delivered a frame that is neither text nor a Uint8Array',
  );

const keepaliveError = (who: string, ms: number) =>
  new TransportError(
    ErrorCode.KeepaliveTimeout,
    `nothing heard from the ${who} for ${ms} ms: its context is gone (a terminated worker, a closed tab) or frozen`,
  );

/** How long to wait for the other side, given our timeout and its announced interval; 0 for never. */
const deadlineOf = (timeout: number, peerInterval: unknown) =>
  timeout > 0 && typeof peerInterval === 'number' && peerInterval > 0 ? Math.max(timeout, 2 * peerInterval) : 0;

/** A repeating timer; returns its stop function. */
function every(ms: number, fn: () => void): () => void {
  const id = setInterval(fn, ms);
  return () => clearInterval(id);
}

interface HubConnection {
  readonly control: TransportControl;
  readonly deadline: number;
  lastHeard: number;
}

/**
 * A hub on a BroadcastChannel: accepts the connections of
 * {@link broadcastChannelTransport} clients on the same channel name, in any
 * tab, worker or Node worker_thread that can reach it, and hands each out as
 * a {@link Transport} with its {@link ConnectionInfo}: `path` and `query` as
 * the client passed them (`path` defaults to the channel name),
 * `remoteAddress` `broadcast:<connection id>`, no headers.
 *
 * It opens one BroadcastChannel; every connection shares it. `close()` closes
 * every connection with 1001 and then the channel (an open BroadcastChannel
 * keeps Node running). Text frames arrive as `string`, binary as
 * `Uint8Array`; `bufferedAmount` is always 0 and `drain` never fires
 * (`postMessage` copies the frame at once).
 *
 * Run one hub per name. With several, each client connects to whichever
 * answers first. Every message on a name reaches every channel with that
 * name, so all clients of a hub receive (and drop) each other's frames: fine
 * for tens of clients, not for thousands.
 *
 * @example
 * ```ts
 * const hub = broadcastChannelServer({ name: 'signalbox' });
 * hub.on('connection', ({ transport, info }) => {
 *   transport.on('message', (frame) => transport.send(`echo ${String(frame)}`));
 *   console.log('connected', info.remoteAddress, info.query.get('name'));
 * });
 * // In a worker: const transport = await broadcastChannelTransport('signalbox');
 * ```
 */
export function broadcastChannelServer(init: BroadcastChannelServerInit): BroadcastChannelTransportServer {
  const Impl = constructorOf(init);
  const { name } = init;
  if (typeof name !== 'string') throw new TypeError('broadcastChannelServer() needs `init.name`, the channel name');
  const heartbeatInterval = milliseconds(init.heartbeatInterval, DEFAULTS.heartbeatInterval, 'heartbeatInterval');
  const heartbeatTimeout = milliseconds(init.heartbeatTimeout, DEFAULTS.heartbeatTimeout, 'heartbeatTimeout');
  const hub = randomId();
  const emitter = mitt<TransportServerEvents>();
  const connections = new Map<string, HubConnection>();
  const channel = new Impl(name);
  let closing: Promise<void> | undefined;
  let shut = false;
  let stopBeats: (() => void) | undefined;
  let stopWatch: (() => void) | undefined;

  const post = (envelope: Envelope) => channel.postMessage(envelope);

  // Timers run only while there are connections.
  const timers = () => {
    if (connections.size === 0 || shut) {
      stopBeats?.();
      stopWatch?.();
      stopBeats = stopWatch = undefined;
      return;
    }
    if (heartbeatInterval > 0) {
      stopBeats ??= every(heartbeatInterval, () => post({ signalbox: 1, kind: 'beat', to: 'client', hub }));
    }
    if (heartbeatTimeout > 0) stopWatch ??= every(Math.max(1, heartbeatTimeout / 4), watch);
  };

  const watch = () => {
    const now = Date.now();
    for (const [conn, entry] of connections) {
      if (entry.deadline === 0 || now - entry.lastHeard <= entry.deadline) continue;
      connections.delete(conn);
      // Tell a client that is alive after all (a frozen tab) that it lost its connection.
      post({ signalbox: 1, kind: 'close', to: 'client', conn, hub, code: 1006, reason: 'heartbeat timeout' });
      entry.control.failed(keepaliveError('client', entry.deadline));
      entry.control.closed(1006, 'heartbeat timeout');
    }
    timers();
  };

  const open = (message: Extract<Envelope, { kind: 'open' }>) => {
    const { conn } = message;
    if (connections.has(conn)) return;
    const control = createTransport({
      send: (frame) => post({ signalbox: 1, kind: 'frame', to: 'client', conn, hub, frame: wireFrame(frame) }),
      close(code, reason) {
        connections.delete(conn);
        timers();
        post({ signalbox: 1, kind: 'close', to: 'client', conn, hub, code, reason });
      },
    });
    connections.set(conn, {
      control,
      deadline: deadlineOf(heartbeatTimeout, message.heartbeat),
      lastHeard: Date.now(),
    });
    timers();
    // Before `connection`: what its listeners send must reach the client after this.
    post({ signalbox: 1, kind: 'opened', to: 'client', conn, hub });
    const info: ConnectionInfo = {
      path: typeof message.path === 'string' ? message.path : name,
      query: new URLSearchParams(typeof message.query === 'string' ? message.query : ''),
      remoteAddress: `broadcast:${conn}`,
      headers: {},
    };
    emitter.emit('connection', { transport: control.transport, info });
  };

  channel.addEventListener('message', ({ data }) => {
    if (shut || !isEnvelope(data) || data.to !== 'hub' || typeof data.conn !== 'string') return;
    if (data.kind === 'hello') {
      post({ signalbox: 1, kind: 'accept', to: 'client', conn: data.conn, hub, heartbeat: heartbeatInterval });
      return;
    }
    if (data.hub !== hub) return;
    if (data.kind === 'open') return open(data);
    const entry = connections.get(data.conn);
    if (!entry) return;
    entry.lastHeard = Date.now();
    if (data.kind === 'frame') {
      const { frame } = data;
      if (typeof frame === 'string' || frame instanceof Uint8Array) entry.control.receive(frame);
      else entry.control.failed(badFrame());
    } else if (data.kind === 'close') {
      connections.delete(data.conn);
      timers();
      entry.control.closed(Number(data.code) || 1005, String(data.reason ?? ''));
    }
  });

  return {
    name,
    get connections() {
      return connections.size;
    },
    on(type, handler) {
      const h = handler as (event: unknown) => void;
      emitter.on(type, h);
      return () => emitter.off(type, h);
    },
    close() {
      return (closing ??= (async () => {
        shut = true;
        timers();
        for (const { control } of [...connections.values()]) control.transport.close(1001, 'server closing');
        // A client whose `open` is still on its way learns at once that it gets no connection.
        post({ signalbox: 1, kind: 'down', to: 'client', hub });
        // What was posted is still delivered after close().
        channel.close();
        emitter.emit('close', undefined);
        emitter.all.clear();
      })());
    },
  };
}

/**
 * Connects to the {@link broadcastChannelServer | hub} listening on a
 * BroadcastChannel name, from any tab, worker or Node worker_thread that
 * shares the channel namespace with it (same origin in a browser, same
 * process in Node), and resolves with the connection as a {@link Transport}
 * once the hub has emitted `connection` for it. Rejects with a
 * `TransportError` `ERR_CONNECT_FAILED` if no hub answers within
 * `connectTimeout`, or at once if the hub closes during the handshake.
 * Throws a `TypeError` at once if no BroadcastChannel implementation is
 * available, a `RangeError` on a negative or non-finite time option.
 *
 * It opens one BroadcastChannel and closes it when the transport closes
 * (whichever side closes it), so an idle client never keeps Node running.
 * Frames arrive in the order they were sent, text as `string`, binary as
 * `Uint8Array` (a copy of the bytes, made at `send()`). The close code and
 * reason reach the other side. `bufferedAmount` is always 0 and `drain` never
 * fires. A hub that vanishes without closing is detected by the heartbeat
 * (see {@link BroadcastChannelOptions}): `error` with `ERR_KEEPALIVE_TIMEOUT`,
 * then `close` with 1006.
 *
 * @example
 * ```ts
 * // In a worker, with the hub in the page or in another worker:
 * const transport = await broadcastChannelTransport({ name: 'signalbox', path: '/ws/my-game', query: { v: '1' } });
 * transport.on('message', (frame) => console.log(frame));
 * transport.send(JSON.stringify({ opcode: 'INIT' }));
 * ```
 */
export function broadcastChannelTransport(
  name: string,
  init?: Omit<BroadcastChannelTransportInit, 'name'>,
): Promise<Transport>;
export function broadcastChannelTransport(init: BroadcastChannelTransportInit): Promise<Transport>;
export function broadcastChannelTransport(
  target: string | BroadcastChannelTransportInit,
  more: Omit<BroadcastChannelTransportInit, 'name'> = {},
): Promise<Transport> {
  const init: BroadcastChannelTransportInit = typeof target === 'string' ? { ...more, name: target } : target;
  const Impl = constructorOf(init);
  const { name } = init;
  if (typeof name !== 'string') throw new TypeError('broadcastChannelTransport() needs the channel name');
  const heartbeatInterval = milliseconds(init.heartbeatInterval, DEFAULTS.heartbeatInterval, 'heartbeatInterval');
  const heartbeatTimeout = milliseconds(init.heartbeatTimeout, DEFAULTS.heartbeatTimeout, 'heartbeatTimeout');
  const connectTimeout = milliseconds(init.connectTimeout, DEFAULTS.connectTimeout, 'connectTimeout');
  const path = init.path ?? name;
  const query = new URLSearchParams(init.query).toString();
  const conn = randomId();
  const channel = new Impl(name);
  let hub: string | undefined;
  let control: TransportControl | undefined;
  let lastHeard = Date.now();
  let deadline = 0;
  let channelOpen = true;
  const stops: Array<() => void> = [];

  const post = (envelope: Envelope) => {
    if (channelOpen) channel.postMessage(envelope);
  };
  const release = () => {
    for (const stop of stops.splice(0)) stop();
    if (channelOpen) {
      channelOpen = false;
      channel.close();
    }
  };
  // The hub closed the connection, or went silent.
  const lost = (code: number, reason: string, error?: TransportError) => {
    release();
    if (error) control!.failed(error);
    control!.closed(code, reason);
  };

  return new Promise<Transport>((resolve, reject) => {
    const refuse = (message: string) => {
      // A hub that took our `open` after all must not keep a connection nobody holds.
      if (hub !== undefined) post({ signalbox: 1, kind: 'close', to: 'hub', conn, hub, code: 1006, reason: message });
      release();
      reject(new TransportError(ErrorCode.ConnectFailed, message));
    };

    // The first hub that answers is ours; we tell it so, and wait for it to set up its side.
    const choose = (accept: Extract<Envelope, { kind: 'accept' }>) => {
      hub = accept.hub;
      stopHello();
      deadline = deadlineOf(heartbeatTimeout, accept.heartbeat);
      post({ signalbox: 1, kind: 'open', to: 'hub', conn, hub, heartbeat: heartbeatInterval, path, query });
    };

    const opened = (boundHub: string) => {
      for (const stop of stops.splice(0)) stop();
      control = createTransport({
        send: (frame) => post({ signalbox: 1, kind: 'frame', to: 'hub', conn, hub: boundHub, frame: wireFrame(frame) }),
        close(code, reason) {
          post({ signalbox: 1, kind: 'close', to: 'hub', conn, hub: boundHub, code, reason });
          release();
        },
      });
      if (heartbeatInterval > 0) {
        stops.push(
          every(heartbeatInterval, () => post({ signalbox: 1, kind: 'beat', to: 'hub', conn, hub: boundHub })),
        );
      }
      if (deadline > 0) {
        stops.push(
          every(Math.max(1, heartbeatTimeout / 4), () => {
            if (Date.now() - lastHeard <= deadline) return;
            // Tell a hub that is alive after all (a frozen tab) that this connection is over.
            post({
              signalbox: 1,
              kind: 'close',
              to: 'hub',
              conn,
              hub: boundHub,
              code: 1006,
              reason: 'heartbeat timeout',
            });
            lost(1006, 'heartbeat timeout', keepaliveError('hub', deadline));
          }),
        );
      }
      resolve(control.transport);
    };

    channel.addEventListener('message', ({ data }) => {
      if (!channelOpen || !isEnvelope(data) || data.to !== 'client') return;
      if (hub === undefined) {
        if (data.kind === 'accept' && data.conn === conn && typeof data.hub === 'string') choose(data);
        return;
      }
      if (data.hub !== hub) return;
      lastHeard = Date.now();
      if (!control) {
        if (data.kind === 'opened' && data.conn === conn) opened(hub);
        else if (data.kind === 'down') refuse(`the hub on BroadcastChannel '${name}' closed while we connected`);
        return;
      }
      if (data.kind === 'down') return lost(1001, 'server closing');
      if (data.conn !== conn) return;
      if (data.kind === 'frame') {
        const { frame } = data;
        if (typeof frame === 'string' || frame instanceof Uint8Array) control.receive(frame);
        else control.failed(badFrame());
      } else if (data.kind === 'close') {
        lost(Number(data.code) || 1005, String(data.reason ?? ''));
      }
    });

    const hello = () => post({ signalbox: 1, kind: 'hello', to: 'hub', conn });
    hello();
    const stopHello = every(HELLO_REPEAT, hello);
    stops.push(stopHello);
    const timer = setTimeout(
      () => refuse(`no hub answered on BroadcastChannel '${name}' within ${connectTimeout} ms`),
      connectTimeout,
    );
    stops.push(() => clearTimeout(timer));
  });
}
