import { SimulatedClock } from 'xstate';
import type { MemoryNetwork } from '../adapters/memory/index.js';
import { memoryDirectory, type LobbyDirectory } from '../machines/cloudlink/directory.js';
import type { Transport } from '../src/transport.js';
import {
  createCloudLinkServer,
  type CloudLinkServer,
  type CloudLinkServerOptions,
} from '../machines/cloudlink/server.js';
import { rawSocket, servedInMemory, servedOnSocket, type RawSocket } from './socket-helpers.js';

export { settle } from './socket-helpers.js';

export interface RawFrame {
  opcode: number;
  payload?: unknown;
  tx?: string;
  rx?: string;
}

/** A hand-driven CloudLink client speaking raw JSON frames, for server tests. */
export interface RawClient extends RawSocket<RawFrame> {
  send(frame: RawFrame | string): void;
  /** INIT and wait for INIT_OK; returns our id. */
  init(name?: string): Promise<string>;
}

export function rawClient(transport: Transport): RawClient {
  const client: RawClient = Object.assign(rawSocket<RawFrame>(transport), {
    async init(name?: string) {
      client.send(name === undefined ? { opcode: 2 } : { opcode: 2, payload: name });
      const ok = await client.next();
      if (ok.opcode !== 3) throw new Error(`expected INIT_OK, got ${JSON.stringify(ok)}`);
      return ok.payload as string;
    },
  });
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
  const clock = new SimulatedClock();
  const directory = options.directory ?? memoryDirectory();
  const server = createCloudLinkServer({ clock, keepaliveInterval: 1000, initTimeout: 1000, directory, ...options });
  const served = servedInMemory(server, 'cloudlink');
  const testbed: MemoryTestbed = {
    network: served.network,
    directory,
    server,
    clock,
    connect: async (ugi = 'game', query) => rawClient(await served.open(`/ws/${ugi}`, query)),
    join: (role, lobby, ugi) => join(testbed, role, lobby, ugi),
    close: served.close,
  };
  return testbed;
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, its timers on a SimulatedClock. */
export async function cloudlinkSocketTestbed(options: CloudLinkServerOptions = {}): Promise<Testbed> {
  const clock = new SimulatedClock();
  const served = await servedOnSocket({ cloudlink: { clock, keepaliveInterval: 1000, initTimeout: 1000, ...options } });
  const testbed: Testbed = {
    server: served.running.cloudlink,
    clock,
    connect: async (ugi = 'game', query) => rawClient(await served.open(`/ws/${ugi}`, query)),
    join: (role, lobby, ugi) => join(testbed, role, lobby, ugi),
    close: served.close,
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
