import mitt from 'mitt';
import { ErrorCode, TransportError } from '../../src/errors.js';
import {
  createTransport,
  subscriber,
  type ConnectionInfo,
  type Frame,
  type Transport,
  type TransportControl,
  type TransportServer,
  type TransportServerEvents,
} from '../../src/transport.js';

/**
 * The timer functions the memory network schedules delivery with. XState's `SimulatedClock` fits.
 *
 * @example
 * ```ts
 * const clock: MemoryClock = new SimulatedClock();
 * ```
 */
export interface MemoryClock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

/**
 * Options of {@link createMemoryNetwork} and {@link memoryPair}.
 *
 * @example
 * ```ts
 * const clock = new SimulatedClock();
 * const [a, b] = memoryPair({ latency: () => 10 + Math.random() * 5, clock });
 * ```
 */
export interface MemoryNetworkInit {
  /**
   * One-way delay of every frame and close, in ms, or a function drawn once
   * per frame (for jitter). Frames still arrive in the order they were sent:
   * one never overtakes an earlier one. 0 delivers on a microtask, still
   * after `send()` returns.
   * @default 0
   */
  latency?: number | (() => number);
  /**
   * The timers used when latency is above 0. Pass a `SimulatedClock` from
   * `xstate` to drive the network from a test with `clock.increment(ms)`.
   * @default globalThis.setTimeout / globalThis.clearTimeout
   */
  clock?: MemoryClock;
}

/**
 * Who is connecting, as the server will see it in {@link ConnectionInfo}.
 *
 * @example
 * ```ts
 * await network.connect('hub', { path: '/ws/my-game', query: { v: '1' }, remoteAddress: '10.0.0.7' });
 * ```
 */
export interface MemoryConnectInit {
  /** @default '/' */
  path?: string;
  /** @default no query */
  query?: Record<string, string> | string;
  /** @default 'memory:<n>', unique per connection */
  remoteAddress?: string;
  /** @default {} */
  headers?: Record<string, string | string[] | undefined>;
}

/**
 * A {@link TransportServer} listening on a memory network address.
 *
 * @example
 * ```ts
 * const server: MemoryServer = network.listen('hub');
 * server.on('connection', ({ transport, info }) => transport.send(`welcome to ${info.path}`));
 * ```
 */
export interface MemoryServer extends TransportServer {
  readonly address: string;
  /** Connections of this server that are still open at either end. */
  readonly connections: number;
}

/**
 * An in-process network: servers listen on names, clients connect to them.
 *
 * @example
 * ```ts
 * const network: MemoryNetwork = createMemoryNetwork();
 * network.listen('hub');
 * const client = await network.connect('hub');
 * network.sever(client); // both ends close with 1006
 * ```
 */
export interface MemoryNetwork {
  /** Starts a server on `address`. Throws if the address is taken. */
  listen(address: string): MemoryServer;
  /**
   * Connects to the server on `address`; rejects with `ERR_CONNECT_FAILED` if
   * none listens there. Resolves on a microtask: latency applies to frames
   * and closes, not to the connection itself.
   */
  connect(address: string, init?: MemoryConnectInit): Promise<Transport>;
  /**
   * Drops the link `transport` belongs to (either end may be passed), as if
   * the cable were cut: frames in flight are lost and both ends emit `close`
   * with code 1006 and initiator `remote` before `sever()` returns.
   */
  sever(transport: Transport): void;
  /** {@link MemoryNetwork.sever | Severs} every open link of this network. */
  severAll(): void;
  /** Links of this network that are still open at either end. */
  readonly connections: number;
}

interface Timing {
  latency: () => number;
  clock: MemoryClock;
}

interface Link {
  readonly ends: readonly [Transport, Transport];
  sever(): void;
}

type Item =
  | { kind: 'frame'; frame: Frame; bytes: number; ready: boolean; timer?: unknown }
  | { kind: 'close'; code: number; reason: string; ready: boolean; timer?: unknown };

const defaultClock: MemoryClock = {
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (id) => globalThis.clearTimeout(id as ReturnType<typeof globalThis.setTimeout>),
};

function timingOf(init: MemoryNetworkInit): Timing {
  const { latency = 0, clock = defaultClock } = init;
  return { latency: typeof latency === 'function' ? latency : () => latency, clock };
}

// A listener that throws must not stall delivery of the frames behind it; it
// is reported the way an EventTarget reports one, as an uncaught error.
function report(error: unknown) {
  queueMicrotask(() => {
    throw error;
  });
}

function utf8Length(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x800) n += c >= 0xd800 && c < 0xdc00 ? 1 : 2;
    else if (c >= 0x80) n += 1;
  }
  return n;
}

function createLink(timing: Timing, onClosed: () => void): Link {
  const controls: TransportControl[] = [];
  // queues[i] holds what end i sent and end 1 - i has not yet received.
  const queues: [Item[], Item[]] = [[], []];
  const inFlight: [number, number] = [0, 0];
  let openEnds = 2;

  const pump = (from: 0 | 1) => {
    const queue = queues[from];
    const to = controls[1 - from]!;
    const hadBytes = inFlight[from] > 0;
    while (queue[0]?.ready) {
      const item = queue.shift()!;
      try {
        if (item.kind === 'frame') {
          inFlight[from] -= item.bytes;
          to.receive(item.frame);
        } else {
          to.closed(item.code, item.reason);
        }
      } catch (error) {
        report(error);
      }
    }
    if (hadBytes && inFlight[from] === 0) controls[from]!.drained();
  };

  const enqueue = (from: 0 | 1, item: Item) => {
    queues[from].push(item);
    const fire = () => {
      item.ready = true;
      pump(from);
    };
    const ms = timing.latency();
    if (ms > 0) item.timer = timing.clock.setTimeout(fire, ms);
    else queueMicrotask(fire);
  };

  const end = (from: 0 | 1) =>
    createTransport({
      send(frame) {
        const copy = typeof frame === 'string' ? frame : new Uint8Array(frame);
        const bytes = typeof copy === 'string' ? utf8Length(copy) : copy.byteLength;
        inFlight[from] += bytes;
        enqueue(from, { kind: 'frame', frame: copy, bytes, ready: false });
      },
      close(code, reason) {
        enqueue(from, { kind: 'close', code, reason, ready: false });
      },
      bufferedAmount: () => inFlight[from],
    });

  controls.push(end(0), end(1));
  for (const control of controls) {
    control.transport.on('close', () => {
      if (--openEnds === 0) onClosed();
    });
  }

  return {
    ends: [controls[0]!.transport, controls[1]!.transport],
    sever() {
      for (const queue of queues) {
        for (const item of queue.splice(0)) {
          if (item.timer !== undefined) timing.clock.clearTimeout(item.timer);
        }
      }
      inFlight[0] = inFlight[1] = 0;
      for (const control of controls) control.closed(1006, 'link severed');
    },
  };
}

/**
 * Two connected in-process transports: what one sends, the other receives.
 * A real implementation of the {@link Transport} contract, for tests and for
 * joining two actors in one process.
 *
 * @example
 * ```ts
 * const [a, b] = memoryPair();
 * b.on('message', (frame) => console.log(frame)); // 'hello'
 * a.send('hello');
 * ```
 */
export function memoryPair(options: MemoryNetworkInit = {}): [Transport, Transport] {
  const { ends } = createLink(timingOf(options), () => {});
  return [ends[0], ends[1]];
}

/**
 * An in-process network with named addresses, so that a server and its
 * clients run in one process (a test, a worker) with no sockets. `latency`
 * and `clock` let a test put the network on simulated time.
 *
 * @example
 * ```ts
 * const clock = new SimulatedClock();
 * const network = createMemoryNetwork({ latency: 20, clock });
 * const server = network.listen('signalbox');
 * server.on('connection', ({ transport, info }) => transport.send(`hello ${info.query.get('name')}`));
 * const client = await network.connect('signalbox', { path: '/ws/game', query: { name: 'ada' } });
 * client.on('message', (frame) => console.log(frame)); // after clock.increment(20): 'hello ada'
 * ```
 */
export function createMemoryNetwork(options: MemoryNetworkInit = {}): MemoryNetwork {
  const timing = timingOf(options);
  const servers = new Map<string, { accept(link: Link, info: ConnectionInfo): void }>();
  // Kept after a link closes, so that severing a closed connection is a no-op
  // while severing a stranger's transport is reported.
  const linkOf = new WeakMap<Transport, Link>();
  const open = new Set<Link>();
  let nextClient = 1;

  return {
    listen(address) {
      if (servers.has(address)) {
        throw new Error(`memory address '${address}' is already in use: close its server first`);
      }
      const emitter = mitt<TransportServerEvents>();
      const own = new Set<Transport>();
      let closing: Promise<void> | undefined;
      servers.set(address, {
        accept(link, info) {
          const transport = link.ends[1];
          own.add(transport);
          transport.on('close', () => own.delete(transport));
          emitter.emit('connection', { transport, info });
        },
      });
      return {
        address,
        get connections() {
          return own.size;
        },
        on: subscriber(emitter),
        close() {
          return (closing ??= (async () => {
            servers.delete(address);
            for (const transport of [...own]) transport.close(1001, 'server closing');
            emitter.emit('close', undefined);
            emitter.all.clear();
          })());
        },
      };
    },

    async connect(address, init = {}) {
      await Promise.resolve();
      const server = servers.get(address);
      if (!server) {
        throw new TransportError(ErrorCode.ConnectFailed, `nothing listens on memory address '${address}'`);
      }
      const link = createLink(timing, () => open.delete(link));
      open.add(link);
      for (const end of link.ends) linkOf.set(end, link);
      server.accept(link, {
        path: init.path ?? '/',
        query: new URLSearchParams(init.query),
        remoteAddress: init.remoteAddress ?? `memory:${nextClient++}`,
        headers: { ...init.headers },
      });
      return link.ends[0];
    },

    sever(transport) {
      const link = linkOf.get(transport);
      if (!link) throw new TypeError('sever() takes a transport of this memory network (either end of a connection)');
      link.sever();
    },

    severAll() {
      for (const link of [...open]) link.sever();
    },

    get connections() {
      return open.size;
    },
  };
}
