import { SimulatedClock } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork } from '../adapters/memory/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer } from '../cli/server.js';
import { memoryDirectory, type LobbyDirectory } from '../machines/cloudlink/directory.js';
import { serve } from '../src/runtime.js';
import type { CloseInfo, Transport } from '../src/transport.js';
import {
  createCloudLinkServer,
  type CloudLinkServer,
  type CloudLinkServerOptions,
} from '../machines/cloudlink/server.js';

export interface RawFrame {
  opcode: number;
  payload?: unknown;
  tx?: string;
  rx?: string;
}

/** A hand-driven CloudLink client speaking raw JSON frames, for server tests. */
export interface RawClient {
  readonly transport: Transport;
  send(frame: RawFrame | string): void;
  /** The next frame from the server (fails after `ms` if none comes). */
  next(ms?: number): Promise<RawFrame>;
  /** Frames received and not yet taken with `next`. */
  readonly inbox: RawFrame[];
  readonly closed: Promise<CloseInfo>;
  /** INIT and wait for INIT_OK; returns our id. */
  init(name?: string): Promise<string>;
}

export function rawClient(transport: Transport): RawClient {
  const inbox: RawFrame[] = [];
  const waiters: Array<(frame: RawFrame) => void> = [];
  transport.on('message', (frame) => {
    const parsed = JSON.parse(frame as string) as RawFrame;
    const waiter = waiters.shift();
    if (waiter) waiter(parsed);
    else inbox.push(parsed);
  });
  const closed = new Promise<CloseInfo>((resolve) => transport.on('close', resolve));
  const client: RawClient = {
    transport,
    inbox,
    closed,
    send: (frame) => transport.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    next(ms = 2000) {
      const queued = inbox.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`no frame within ${ms} ms`));
        }, ms);
        const done = (frame: RawFrame) => {
          clearTimeout(timer);
          resolve(frame);
        };
        waiters.push(done);
      });
    },
    async init(name) {
      client.send(name === undefined ? { opcode: 2 } : { opcode: 2, payload: name });
      const ok = await client.next();
      if (ok.opcode !== 3) throw new Error(`expected INIT_OK, got ${JSON.stringify(ok)}`);
      return ok.payload as string;
    },
  };
  return client;
}

export interface Testbed {
  server: CloudLinkServer;
  clock: SimulatedClock;
  connect(ugi?: string, query?: Record<string, string> | string): Promise<RawClient>;
  /** Connects, INITs and configures as host or peer of `lobby`; returns the client and its id. */
  join(role: 'host' | 'peer', lobby: string, ugi?: string): Promise<RawClient & { id: string }>;
  close(): Promise<void>;
}

export interface MemoryTestbed extends Testbed {
  network: MemoryNetwork;
  directory: LobbyDirectory;
}

/** A CloudLink server on a memory network, its timers on a SimulatedClock. */
export function cloudlinkTestbed(options: CloudLinkServerOptions = {}): MemoryTestbed {
  const network = createMemoryNetwork();
  const clock = new SimulatedClock();
  const directory = options.directory ?? memoryDirectory();
  const server = createCloudLinkServer({ clock, keepaliveInterval: 1000, initTimeout: 1000, directory, ...options });
  const listener = network.listen('cloudlink');
  serve(listener, server);
  const testbed: MemoryTestbed = {
    network,
    directory,
    server,
    clock,
    async connect(ugi = 'game', query) {
      return rawClient(await network.connect('cloudlink', { path: `/ws/${ugi}`, query }));
    },
    join: (role, lobby, ugi) => join(testbed, role, lobby, ugi),
    async close() {
      await server.close();
      await listener.close();
    },
  };
  return testbed;
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, its timers on a SimulatedClock. */
export async function cloudlinkSocketTestbed(options: CloudLinkServerOptions = {}): Promise<Testbed> {
  const clock = new SimulatedClock();
  const running = await startServer({
    port: 0,
    host: '127.0.0.1',
    cloudlink: { clock, keepaliveInterval: 1000, initTimeout: 1000, ...options },
  });
  const testbed: Testbed = {
    server: running.cloudlink,
    clock,
    async connect(ugi = 'game', query) {
      const search = query === undefined ? '' : `?${new URLSearchParams(query)}`;
      return rawClient(await webSocketTransport(`ws://127.0.0.1:${running.address.port}/ws/${ugi}${search}`));
    },
    join: (role, lobby, ugi) => join(testbed, role, lobby, ugi),
    close: () => running.close(),
  };
  return testbed;
}

async function join(testbed: Testbed, role: 'host' | 'peer', lobby: string, ugi?: string) {
  const client = await testbed.connect(ugi);
  const id = await client.init();
  client.send({ opcode: role === 'host' ? 4 : 5, payload: lobby });
  const ack = await client.next();
  if (ack.opcode !== (role === 'host' ? 7 : 6)) throw new Error(`expected ACK, got ${JSON.stringify(ack)}`);
  return Object.assign(client, { id });
}

/** Lets queued microtasks and the memory network's deliveries run. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve));
}
