import { createMemoryNetwork, type MemoryNetwork } from '../adapters/memory/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer } from '../cli/server.js';
import { memoryRegistry, type PeerRegistry } from '../machines/filedrop/registry.js';
import { createFileDropServer, type FileDropServer, type FileDropServerOptions } from '../machines/filedrop/server.js';
import { serve } from '../src/runtime.js';
import type { CloseInfo, Transport } from '../src/transport.js';

/** A frame as the server sends it, parsed. */
export interface Frame {
  type: string;
  detail?: Record<string, unknown> & { peer?: string };
}

/** A hand-driven filedrop client speaking raw JSON frames, for server tests. */
export interface RawClient {
  readonly transport: Transport;
  /** Its id, from the `assign` that `connect` waited for. */
  readonly id: string;
  send(frame: unknown): void;
  /** The next frame from the server (fails after `ms` if none comes). */
  next(ms?: number): Promise<Frame>;
  /** Frames received and not yet taken with `next`. */
  readonly inbox: Frame[];
  readonly closed: Promise<CloseInfo>;
}

/** Wraps a transport; resolves once the server's `assign` arrived (unless `waitForAssign` is false). */
export async function rawClient(transport: Transport, waitForAssign = true): Promise<RawClient> {
  const inbox: Frame[] = [];
  const waiters: Array<(frame: Frame) => void> = [];
  transport.on('message', (frame) => {
    const parsed = JSON.parse(frame as string) as Frame;
    const waiter = waiters.shift();
    if (waiter) waiter(parsed);
    else inbox.push(parsed);
  });
  const closed = new Promise<CloseInfo>((resolve) => transport.on('close', resolve));
  const client = {
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
  if (waitForAssign) {
    const assign = await client.next();
    if (assign.type !== 'assign') throw new Error(`expected assign, got ${JSON.stringify(assign)}`);
    client.id = assign.detail!.peer!;
  }
  return client;
}

export interface Testbed {
  server: FileDropServer;
  registry: PeerRegistry;
  /** Connects a raw client and waits for its `assign`. */
  connect(): Promise<RawClient>;
  /** Connects without waiting for anything. */
  open(): Promise<Transport>;
  close(): Promise<void>;
}

export interface MemoryTestbed extends Testbed {
  network: MemoryNetwork;
}

/** A filedrop server on a memory network. */
export function filedropTestbed(options: FileDropServerOptions = {}): MemoryTestbed {
  const network = createMemoryNetwork();
  const registry = options.registry ?? memoryRegistry();
  const server = createFileDropServer({ registry, ...options });
  const listener = network.listen('filedrop');
  serve(listener, server);
  const open = () => network.connect('filedrop', { path: '/filedrop' });
  return {
    network,
    registry,
    server,
    open,
    connect: async () => rawClient(await open()),
    async close() {
      await server.close();
      await listener.close();
    },
  };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, filedrop at `/filedrop`. */
export async function filedropSocketTestbed(options: FileDropServerOptions = {}): Promise<Testbed> {
  const registry = options.registry ?? memoryRegistry();
  const running = await startServer({ port: 0, host: '127.0.0.1', filedrop: { registry, ...options } });
  const open = () => webSocketTransport(`ws://127.0.0.1:${running.address.port}/filedrop`);
  return {
    registry,
    server: running.filedrop,
    open,
    connect: async () => rawClient(await open()),
    close: () => running.close(),
  };
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
