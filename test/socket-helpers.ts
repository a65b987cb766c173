/**
 * Shared machinery of the server tests of every protocol: a raw client that
 * speaks JSON frames to a server by hand, a server under test on a memory
 * network or on the real `signalbox serve` stack, and the small waits and
 * data those tests use. Each protocol's helpers (`<protocol>-helpers.ts`)
 * build their raw client and testbeds on these.
 */
import { createMemoryNetwork, type MemoryNetwork } from '../adapters/memory/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer, type SignalboxServerOptions } from '../cli/server.js';
import { serve, type ProtocolServer } from '../src/runtime.js';
import type { CloseInfo, Transport } from '../src/transport.js';

/** A `{ type, detail }` frame as a server sends it, parsed. */
export interface Frame {
  type: string;
  detail?: Record<string, unknown>;
}

/** A hand-driven client speaking raw JSON frames, for server tests. */
export interface RawSocket<TFrame = Frame> {
  readonly transport: Transport;
  /** Sends `frame` as JSON; a string or bytes go as they are (for malformed frames). */
  send(frame: unknown): void;
  /** The next frame from the server (fails after `ms` if none comes). */
  next(ms?: number): Promise<TFrame>;
  /** Frames received and not yet taken with `next`. */
  readonly inbox: TFrame[];
  readonly closed: Promise<CloseInfo>;
}

/** Reads `transport` as JSON frames, queued for {@link RawSocket.next}, from the moment it is called. */
export function rawSocket<TFrame = Frame>(transport: Transport): RawSocket<TFrame> {
  const inbox: TFrame[] = [];
  const waiters: Array<(frame: TFrame) => void> = [];
  transport.on('message', (frame) => {
    const parsed = JSON.parse(frame as string) as TFrame;
    const waiter = waiters.shift();
    if (waiter) waiter(parsed);
    else inbox.push(parsed);
  });
  const closed = new Promise<CloseInfo>((resolve) => transport.on('close', resolve));
  return {
    transport,
    inbox,
    closed,
    send: (frame: unknown) =>
      transport.send(typeof frame === 'string' || frame instanceof Uint8Array ? frame : JSON.stringify(frame)),
    next(ms = 2000) {
      const queued = inbox.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise<TFrame>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`no frame within ${ms} ms`));
        }, ms);
        const done = (frame: TFrame) => {
          clearTimeout(timer);
          resolve(frame);
        };
        waiters.push(done);
      });
    },
  };
}

/** A server under test: where a test opens connections to it, and how it stops. */
export interface Served {
  /** Opens a connection to `path` (with `query`); nothing is sent on it yet. */
  open(path: string, query?: Record<string, string> | string): Promise<Transport>;
  /** Closes the server and stops accepting. */
  close(): Promise<void>;
}

/** `server` on a fresh memory network, listening at `address`. */
export function servedInMemory(server: ProtocolServer, address: string): Served & { network: MemoryNetwork } {
  const network = createMemoryNetwork();
  const listener = network.listen(address);
  serve(listener, server);
  return {
    network,
    open: (path, query) => network.connect(address, { path, query }),
    async close() {
      await server.close();
      await listener.close();
    },
  };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, every protocol at its path. */
export async function servedOnSocket(
  options: Omit<SignalboxServerOptions, 'port' | 'host'>,
): Promise<Served & { running: SignalboxServer }> {
  const running = await startServer({ port: 0, host: '127.0.0.1', ...options });
  return {
    running,
    open(path, query) {
      const search = query === undefined ? '' : `?${new URLSearchParams(query)}`;
      return webSocketTransport(`ws://127.0.0.1:${running.address.port}${path}${search}`);
    },
    close: () => running.close(),
  };
}

/** Lets queued microtasks and the memory network's deliveries run: `rounds` turns of the event loop. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Waits (real time, bounded) until `predicate` holds; fails the test otherwise. */
export async function until(predicate: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A promise the test settles when it says. */
export function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
