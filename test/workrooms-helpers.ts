import { SimulatedClock } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork } from '../adapters/memory/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer } from '../cli/server.js';
import { generateId } from '../machines/workrooms/protocol.js';
import { memoryRegistry, type WorkroomsRegistry } from '../machines/workrooms/registry.js';
import {
  createWorkroomsServer,
  type WorkroomsServer,
  type WorkroomsServerOptions,
} from '../machines/workrooms/server.js';
import { serve } from '../src/runtime.js';
import type { CloseInfo, Transport } from '../src/transport.js';

/** A frame as the server sends it, parsed. */
export interface Frame {
  type: string;
  detail?: Record<string, unknown>;
}

/** A hand-driven workrooms client speaking raw JSON frames, for server tests. */
export interface RawClient {
  readonly transport: Transport;
  /** Its sessionid once `register` was answered. */
  sessionid: string;
  send(frame: unknown): void;
  /** The next frame from the server (fails after `ms` if none comes). */
  next(ms?: number): Promise<Frame>;
  /** Frames received and not yet taken with `next`. */
  readonly inbox: Frame[];
  readonly closed: Promise<CloseInfo>;
  /** Sends `register` and waits for `registered`; returns the calls restored. */
  register(sessionid?: string, calls?: unknown[]): Promise<string[]>;
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
  const client: RawClient = {
    transport,
    sessionid: '',
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
    async register(sessionid = generateId(), calls = []) {
      client.send({ type: 'register', detail: { sessionid, calls } });
      const reply = await client.next();
      if (reply.type !== 'registered') throw new Error(`expected registered, got ${JSON.stringify(reply)}`);
      client.sessionid = sessionid;
      return reply.detail!.calls as string[];
    },
  };
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
  const network = createMemoryNetwork();
  const clock = new SimulatedClock();
  const registry = options.registry ?? memoryRegistry();
  const server = createWorkroomsServer({ registry, clock, grace: GRACE, ...options });
  const listener = network.listen('workrooms');
  serve(listener, server);
  const connect = async () => rawClient(await network.connect('workrooms', { path: '/workrooms' }));
  return {
    network,
    clock,
    registry,
    server,
    connect,
    async join() {
      const client = await connect();
      await client.register();
      return client;
    },
    async close() {
      await server.close();
      await listener.close();
    },
  };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, workrooms at `/workrooms`. */
export async function workroomsSocketTestbed(options: WorkroomsServerOptions = {}): Promise<Testbed> {
  const registry = options.registry ?? memoryRegistry();
  const running = await startServer({ port: 0, host: '127.0.0.1', workrooms: { registry, ...options } });
  const connect = async () => rawClient(await webSocketTransport(`ws://127.0.0.1:${running.address.port}/workrooms`));
  return {
    registry,
    server: running.workrooms,
    connect,
    async join() {
      const client = await connect();
      await client.register();
      return client;
    },
    close: () => running.close(),
  };
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

/** Lets queued microtasks and the memory network's deliveries run. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}
