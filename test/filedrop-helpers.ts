import type { MemoryNetwork } from '../adapters/memory/index.js';
import { memoryRegistry, type PeerRegistry } from '../machines/filedrop/registry.js';
import { createFileDropServer, type FileDropServer, type FileDropServerOptions } from '../machines/filedrop/server.js';
import type { Transport } from '../src/transport.js';
import { rawSocket, servedInMemory, servedOnSocket, type RawSocket } from './socket-helpers.js';

export { bytes } from './socket-helpers.js';

/** A frame as the server sends it, parsed. */
export interface Frame {
  type: string;
  detail?: Record<string, unknown> & { peer?: string };
}

/** A hand-driven filedrop client speaking raw JSON frames, for server tests. */
export interface RawClient extends RawSocket<Frame> {
  /** Its id, from the `assign` that `connect` waited for. */
  readonly id: string;
}

/** Wraps a transport; resolves once the server's `assign` arrived (unless `waitForAssign` is false). */
export async function rawClient(transport: Transport, waitForAssign = true): Promise<RawClient> {
  const client = Object.assign(rawSocket<Frame>(transport), { id: '' });
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
  const registry = options.registry ?? memoryRegistry();
  const server = createFileDropServer({ registry, ...options });
  const served = servedInMemory(server, 'filedrop');
  const open = () => served.open('/filedrop');
  return {
    network: served.network,
    registry,
    server,
    open,
    connect: async () => rawClient(await open()),
    close: served.close,
  };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, filedrop at `/filedrop`. */
export async function filedropSocketTestbed(options: FileDropServerOptions = {}): Promise<Testbed> {
  const registry = options.registry ?? memoryRegistry();
  const served = await servedOnSocket({ filedrop: { registry, ...options } });
  const open = () => served.open('/filedrop');
  return {
    registry,
    server: served.running.filedrop,
    open,
    connect: async () => rawClient(await open()),
    close: served.close,
  };
}
