import { SimulatedClock } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork } from '../adapters/memory/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer } from '../cli/server.js';
import type { FileEntry } from '../machines/registry/protocol.js';
import { memoryFileRegistry, type FileRegistry } from '../machines/registry/registry.js';
import { createRegistryServer, type RegistryServer, type RegistryServerOptions } from '../machines/registry/server.js';
import { serve } from '../src/runtime.js';
import type { CloseInfo, Transport } from '../src/transport.js';

/** A frame as the server sends it, parsed. */
export interface Frame {
  type: string;
  detail?: Record<string, unknown>;
}

/** A hand-driven registry client speaking raw JSON frames, for server tests. */
export interface RawClient {
  readonly transport: Transport;
  /** Its id, from `Welcome` (once `connect` waited for it). */
  id: string;
  send(frame: unknown): void;
  /** The next frame from the server (fails after `ms` if none comes). */
  next(ms?: number): Promise<Frame>;
  /** Frames received and not yet taken with `next`. */
  readonly inbox: Frame[];
  readonly closed: Promise<CloseInfo>;
}

export function rawClient(transport: Transport): RawClient {
  const inbox: Frame[] = [];
  const waiters: Array<(frame: Frame) => void> = [];
  transport.on('message', (frame) => {
    const parsed = JSON.parse(frame as string) as Frame;
    const waiter = waiters.shift();
    if (waiter) waiter(parsed);
    else inbox.push(parsed);
  });
  const closed = new Promise<CloseInfo>((resolve) => transport.on('close', resolve));
  return {
    transport,
    id: '',
    inbox,
    closed,
    send: (frame: unknown) =>
      transport.send(typeof frame === 'string' || frame instanceof Uint8Array ? frame : JSON.stringify(frame)),
    next(ms = 2000) {
      const queued = inbox.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise<Frame>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`no frame within ${ms} ms`));
        }, ms);
        const done = (frame: Frame) => {
          clearTimeout(timer);
          resolve(frame);
        };
        waiters.push(done);
      });
    },
  };
}

/** Sends `Connect` with `files`, waits for `Welcome` and the `RegisterPeer` of the `existing` peers. */
export async function register(client: RawClient, files: FileEntry[], existing = 0): Promise<Frame[]> {
  client.send({ type: 'Connect', detail: { files } });
  const welcome = await client.next();
  if (welcome.type !== 'Welcome') throw new Error(`expected Welcome, got ${JSON.stringify(welcome)}`);
  client.id = welcome.detail!.id as string;
  const peers: Frame[] = [];
  for (let i = 0; i < existing; i++) peers.push(await client.next());
  return peers;
}

export interface Testbed {
  server: RegistryServer;
  registry: FileRegistry;
  /** Opens a connection (no `Connect` sent). */
  open(): Promise<RawClient>;
  close(): Promise<void>;
}

export interface MemoryTestbed extends Testbed {
  network: MemoryNetwork;
  clock: SimulatedClock;
}

/** A registry server on a memory network and a SimulatedClock. */
export function registryTestbed(options: RegistryServerOptions = {}): MemoryTestbed {
  const network = createMemoryNetwork();
  const clock = new SimulatedClock();
  const registry = options.registry ?? memoryFileRegistry();
  const server = createRegistryServer({ registry, clock, ...options });
  const listener = network.listen('registry');
  serve(listener, server);
  return {
    network,
    clock,
    registry,
    server,
    open: async () => rawClient(await network.connect('registry', { path: '/registry' })),
    async close() {
      await server.close();
      await listener.close();
    },
  };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, registry at `/registry`. */
export async function registrySocketTestbed(options: RegistryServerOptions = {}): Promise<Testbed> {
  const registry = options.registry ?? memoryFileRegistry();
  const running = await startServer({ port: 0, host: '127.0.0.1', registry: { registry, ...options } });
  return {
    registry,
    server: running.registry,
    open: async () => rawClient(await webSocketTransport(`ws://127.0.0.1:${running.address.port}/registry`)),
    close: () => running.close(),
  };
}

/** Lets queued microtasks and the memory network's deliveries run. */
export async function settle(rounds = 3): Promise<void> {
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

export { createRegistryWorld as registryWorld, type RegistryWorld } from '../testing/registry.js';

/** Records what an actor emits. */
export function record<E extends { type: string }>(actor: { on(type: '*', fn: (e: E) => void): unknown }) {
  const events: E[] = [];
  actor.on('*', (e: E) => events.push(e));
  return {
    events,
    of: <T extends E['type']>(type: T) => events.filter((e): e is Extract<E, { type: T }> => e.type === type),
  };
}
