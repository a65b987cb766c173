import { SimulatedClock } from 'xstate';
import type { MemoryNetwork } from '../adapters/memory/index.js';
import { generateId } from '../machines/workrooms/protocol.js';
import { memoryRegistry, type WorkroomsRegistry } from '../machines/workrooms/registry.js';
import {
  createWorkroomsServer,
  type WorkroomsServer,
  type WorkroomsServerOptions,
} from '../machines/workrooms/server.js';
import type { Transport } from '../src/transport.js';
import { rawSocket, servedInMemory, servedOnSocket, type RawSocket } from './socket-helpers.js';

export type { Frame } from './socket-helpers.js';
export { settle } from './socket-helpers.js';

/** A hand-driven workrooms client speaking raw JSON frames, for server tests. */
export interface RawClient extends RawSocket {
  /** Its sessionid once `register` was answered. */
  sessionid: string;
  /** Sends `register` and waits for `registered`; returns the calls restored. */
  register(sessionid?: string, calls?: unknown[]): Promise<string[]>;
}

export function rawClient(transport: Transport): RawClient {
  const client: RawClient = Object.assign(rawSocket(transport), {
    sessionid: '',
    async register(sessionid = generateId(), calls: unknown[] = []) {
      client.send({ type: 'register', detail: { sessionid, calls } });
      const reply = await client.next();
      if (reply.type !== 'registered') throw new Error(`expected registered, got ${JSON.stringify(reply)}`);
      client.sessionid = sessionid;
      return reply.detail!.calls as string[];
    },
  });
  return client;
}

export interface Testbed {
  server: WorkroomsServer;
  registry: WorkroomsRegistry;
  /** Connects a raw client (not registered). */
  connect(): Promise<RawClient>;
  /** Connects and registers a raw client under a fresh sessionid. */
  join(): Promise<RawClient>;
  close(): Promise<void>;
}

export interface MemoryTestbed extends Testbed {
  network: MemoryNetwork;
  clock: SimulatedClock;
}

export const GRACE = 5000;

/** A workrooms server on a memory network; its grace periods run on a SimulatedClock. */
export function workroomsTestbed(options: WorkroomsServerOptions = {}): MemoryTestbed {
  const clock = new SimulatedClock();
  const registry = options.registry ?? memoryRegistry();
  const server = createWorkroomsServer({ registry, clock, grace: GRACE, ...options });
  const served = servedInMemory(server, 'workrooms');
  const connect = async () => rawClient(await served.open('/workrooms'));
  return { network: served.network, clock, registry, server, connect, join: () => join(connect), close: served.close };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, workrooms at `/workrooms`. */
export async function workroomsSocketTestbed(options: WorkroomsServerOptions = {}): Promise<Testbed> {
  const registry = options.registry ?? memoryRegistry();
  const served = await servedOnSocket({ workrooms: { registry, ...options } });
  const connect = async () => rawClient(await served.open('/workrooms'));
  return { registry, server: served.running.workrooms, connect, join: () => join(connect), close: served.close };
}

async function join(connect: () => Promise<RawClient>): Promise<RawClient> {
  const client = await connect();
  await client.register();
  return client;
}

/** A call from `a` to `b`: both sides announced. Returns the call id. */
export async function placeCall(a: RawClient, b: RawClient): Promise<string> {
  a.send({ type: 'call', detail: { to: b.sessionid } });
  const inbound = await b.next();
  const outbound = await a.next();
  if (inbound.type !== 'inboundcall' || outbound.type !== 'outboundcall') {
    throw new Error(`expected inboundcall/outboundcall, got ${inbound.type}/${outbound.type}`);
  }
  return outbound.detail!.callid as string;
}
