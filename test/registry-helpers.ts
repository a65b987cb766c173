import { SimulatedClock } from 'xstate';
import type { MemoryNetwork } from '../adapters/memory/index.js';
import type { FileEntry } from '../machines/registry/protocol.js';
import { memoryFileRegistry, type FileRegistry } from '../machines/registry/registry.js';
import { createRegistryServer, type RegistryServer, type RegistryServerOptions } from '../machines/registry/server.js';
import type { Transport } from '../src/transport.js';
import {
  rawSocket,
  servedInMemory,
  servedOnSocket,
  settle as settleRounds,
  type Frame,
  type RawSocket,
} from './socket-helpers.js';

export type { Frame } from './socket-helpers.js';
export { bytes, until } from './socket-helpers.js';

/** A hand-driven registry client speaking raw JSON frames, for server tests. */
export interface RawClient extends RawSocket {
  /** Its id, from `Welcome` (once `connect` waited for it). */
  id: string;
}

export function rawClient(transport: Transport): RawClient {
  return Object.assign(rawSocket(transport), { id: '' });
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
  const clock = new SimulatedClock();
  const registry = options.registry ?? memoryFileRegistry();
  const server = createRegistryServer({ registry, clock, ...options });
  const served = servedInMemory(server, 'registry');
  return {
    network: served.network,
    clock,
    registry,
    server,
    open: async () => rawClient(await served.open('/registry')),
    close: served.close,
  };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, registry at `/registry`. */
export async function registrySocketTestbed(options: RegistryServerOptions = {}): Promise<Testbed> {
  const registry = options.registry ?? memoryFileRegistry();
  const served = await servedOnSocket({ registry: { registry, ...options } });
  return {
    registry,
    server: served.running.registry,
    open: async () => rawClient(await served.open('/registry')),
    close: served.close,
  };
}

/** Lets queued microtasks and the memory network's deliveries run (three rounds unless told). */
export const settle = (rounds = 3): Promise<void> => settleRounds(rounds);

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
