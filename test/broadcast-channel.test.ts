import { Worker } from 'node:worker_threads';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  broadcastChannelServer,
  broadcastChannelTransport,
  type BroadcastChannelConstructor,
  type BroadcastChannelLike,
  type BroadcastChannelTransportInit,
  type BroadcastChannelTransportServer,
} from '../adapters/broadcast-channel/index.js';
import { ErrorCode, TransportError } from '../src/errors.js';
import type { CloseInfo, Frame, Transport, TransportServerEvents } from '../src/transport.js';
import { nextEvent, nextFrames, transportCompliance } from './transport-compliance.js';

type Connection = TransportServerEvents['connection'];

let names = 0;
/** A channel name no other test uses. */
const unique = (label = 'test') => `signalbox-bc-${label}-${process.pid}-${names++}`;

const nextConnection = (server: BroadcastChannelTransportServer) =>
  new Promise<Connection>((resolve) => {
    const off = server.on('connection', (connection) => {
      off();
      resolve(connection);
    });
  });

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Open BroadcastChannels (and other MessagePorts) of this process: each one keeps Node running. */
const openPorts = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;

/** Records every message, error and close of `transport`. */
function record(transport: Transport) {
  const log = { frames: [] as Frame[], errors: [] as TransportError[], closes: [] as CloseInfo[] };
  transport.on('message', (frame) => log.frames.push(frame));
  transport.on('error', (error) => log.errors.push(error));
  transport.on('close', (info) => log.closes.push(info));
  return log;
}

// Every test, compliance included, must leave no BroadcastChannel open.
let portsBefore = 0;
beforeEach(() => {
  portsBefore = openPorts();
});
afterEach(() => {
  expect(openPorts()).toBe(portsBefore);
});

transportCompliance('broadcast-channel (client a, hub b)', async () => {
  const name = unique('compliance');
  const server = broadcastChannelServer({ name });
  const accepted = nextConnection(server);
  const a = await broadcastChannelTransport(name);
  return { a, b: (await accepted).transport, teardown: () => server.close() };
});

transportCompliance('broadcast-channel with a 10 ms heartbeat and two bystander clients', async () => {
  const name = unique('compliance-busy');
  const beat = { heartbeatInterval: 10, heartbeatTimeout: 1000 };
  const server = broadcastChannelServer({ name, ...beat });
  const bystanders = [await broadcastChannelTransport(name, beat), await broadcastChannelTransport(name, beat)];
  const accepted = nextConnection(server);
  const a = await broadcastChannelTransport(name, beat);
  const b = (await accepted).transport;
  // Both bystanders get (and must drop) everything the hub sends to a, and send to the hub themselves.
  const chatter = setInterval(() => bystanders.forEach((t) => t.isOpen && t.send('noise')), 1);
  return {
    a,
    b,
    teardown: async () => {
      clearInterval(chatter);
      for (const bystander of bystanders) bystander.close();
      await server.close();
    },
  };
});

describe('broadcastChannelServer and broadcastChannelTransport', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** A hub closed after the test. */
  function hub(init: Partial<Parameters<typeof broadcastChannelServer>[0]> = {}) {
    const server = broadcastChannelServer({ name: unique(), ...init });
    cleanup.push(() => server.close());
    return server;
  }

  /** A client closed after the test. */
  async function connect(name: string, init: Omit<BroadcastChannelTransportInit, 'name'> = {}) {
    const transport = await broadcastChannelTransport(name, init);
    cleanup.push(() => transport.close());
    return transport;
  }

  it('refuses to connect with ERR_CONNECT_FAILED when no hub answers within connectTimeout', async () => {
    const started = Date.now();
    const attempt = broadcastChannelTransport({ name: unique('nobody'), connectTimeout: 150 });
    await expect(attempt).rejects.toBeInstanceOf(TransportError);
    await expect(attempt).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
  });

  it('finds a hub that starts after the client began connecting', async () => {
    const name = unique('late');
    const attempt = broadcastChannelTransport({ name, connectTimeout: 2000 });
    await delay(300);
    const server = hub({ name });
    const accepted = nextConnection(server);
    const client = await attempt;
    cleanup.push(() => client.close());
    const { transport } = await accepted;
    const reply = nextEvent(client, 'message');
    transport.send('found you');
    expect(await reply).toBe('found you');
    expect(server.connections).toBe(1);
  });

  it('hands the hub path, query and a broadcast: remote address', async () => {
    const server = hub();
    const infos: Connection['info'][] = [];
    server.on('connection', ({ info }) => infos.push(info));
    await connect(server.name);
    await connect(server.name, { path: '/ws/my-game', query: { v: '1', name: 'ada' } });
    await connect(server.name, { query: '?room=x' });
    await vi.waitFor(() => expect(infos).toHaveLength(3));
    expect(infos.map((i) => i.path)).toEqual([server.name, '/ws/my-game', server.name]);
    expect(infos[1]!.query.get('v')).toBe('1');
    expect(infos[1]!.query.get('name')).toBe('ada');
    expect(infos[2]!.query.get('room')).toBe('x');
    expect(infos[0]!.query.size).toBe(0);
    for (const info of infos) {
      expect(info.remoteAddress).toMatch(/^broadcast:[0-9a-f]{32}$/);
      expect(info.headers).toEqual({});
    }
    expect(new Set(infos.map((i) => i.remoteAddress)).size).toBe(3);
  });

  it('keeps hubs on different names apart', async () => {
    const one = hub();
    const two = hub();
    const seen: string[] = [];
    one.on('connection', () => seen.push('one'));
    two.on('connection', () => seen.push('two'));
    await connect(one.name);
    await connect(one.name);
    await connect(two.name);
    await vi.waitFor(() => expect(seen).toHaveLength(3));
    expect(seen.sort()).toEqual(['one', 'one', 'two']);
    expect(one.connections).toBe(2);
    expect(two.connections).toBe(1);
    await expect(broadcastChannelTransport({ name: unique('third'), connectTimeout: 100 })).rejects.toMatchObject({
      code: ErrorCode.ConnectFailed,
    });
  });

  it('gives each client of one hub its own connection: nobody sees the frames of another', async () => {
    const server = hub();
    const byQuery = new Map<string, Transport>();
    server.on('connection', ({ transport, info }) => byQuery.set(info.query.get('n')!, transport));
    const clients = [];
    for (const n of ['0', '1', '2']) clients.push(await connect(server.name, { query: { n } }));
    await vi.waitFor(() => expect(byQuery.size).toBe(3));
    const clientLogs = clients.map(record);
    const hubLogs = ['0', '1', '2'].map((n) => record(byQuery.get(n)!));

    for (const n of [0, 1, 2]) {
      byQuery.get(String(n))!.send(`to ${n}`);
      byQuery.get(String(n))!.send(Uint8Array.of(n));
      clients[n]!.send(`from ${n}`);
    }
    await vi.waitFor(() => {
      for (const log of clientLogs) expect(log.frames).toHaveLength(2);
      for (const log of hubLogs) expect(log.frames).toHaveLength(1);
    });
    await delay(50);
    clientLogs.forEach((log, n) => expect(log.frames).toEqual([`to ${n}`, Uint8Array.of(n)]));
    hubLogs.forEach((log, n) => expect(log.frames).toEqual([`from ${n}`]));

    // Closing one client closes its connection only.
    const closed = nextEvent(byQuery.get('1')!, 'close');
    clients[1]!.close(4003, 'bye from 1');
    expect(await closed).toEqual({ code: 4003, reason: 'bye from 1', initiator: 'remote' });
    expect(server.connections).toBe(2);
    expect(clients[0]!.isOpen && clients[2]!.isOpen).toBe(true);
  });

  it('closing the hub closes every client with 1001, then emits close once and stops accepting', async () => {
    const server = hub();
    let serverCloses = 0;
    server.on('close', () => serverCloses++);
    const clients = [await connect(server.name), await connect(server.name)];
    await vi.waitFor(() => expect(server.connections).toBe(2));
    const closes = clients.map((client) => nextEvent(client, 'close'));
    await server.close();
    await server.close();
    for (const info of await Promise.all(closes)) {
      expect(info).toEqual({ code: 1001, reason: 'server closing', initiator: 'remote' });
    }
    expect(serverCloses).toBe(1);
    expect(server.connections).toBe(0);
    await expect(broadcastChannelTransport({ name: server.name, connectTimeout: 100 })).rejects.toMatchObject({
      code: ErrorCode.ConnectFailed,
    });
  });

  it('refuses with ERR_CONNECT_FAILED at once when the hub closes during the handshake', async () => {
    const name = unique('race');
    // A hub that answers the hello and closes before the client's `open` reaches it.
    const ClosingOnAccept = class extends BroadcastChannel {
      override postMessage(message: unknown) {
        super.postMessage(message);
        if ((message as { kind?: string }).kind === 'accept') void racing.close();
      }
    };
    const racing: BroadcastChannelTransportServer = broadcastChannelServer({ name, BroadcastChannel: ClosingOnAccept });
    let connections = 0;
    racing.on('connection', () => connections++);
    const started = Date.now();
    await expect(broadcastChannelTransport(name, { connectTimeout: 5000 })).rejects.toMatchObject({
      code: ErrorCode.ConnectFailed,
      message: expect.stringMatching(/closed while we connected/),
    });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(connections).toBe(0);
  });

  it('resolves only once the hub has its side of the connection', async () => {
    const server = hub();
    let connected = 0;
    server.on('connection', ({ transport }) => {
      connected++;
      transport.send('sent from the connection handler');
    });
    const client = await connect(server.name);
    expect(connected).toBe(1);
    expect(server.connections).toBe(1);
    expect(await nextEvent(client, 'message')).toBe('sent from the connection handler');
  });

  it('connects each client to one hub only when two hubs share a name', async () => {
    const name = unique('twins');
    const first = hub({ name });
    const second = hub({ name });
    const clients = [await connect(name), await connect(name), await connect(name)];
    await vi.waitFor(() => expect(first.connections + second.connections).toBe(3));
    await delay(50);
    expect(first.connections + second.connections).toBe(3);
    for (const client of clients) expect(client.isOpen).toBe(true);
  });

  it('sends a copy of exactly the bytes given: no later mutation, no rest of the buffer', async () => {
    const server = hub();
    const accepted = nextConnection(server);
    const client = await connect(server.name);
    const { transport } = await accepted;
    const frames = nextFrames(transport, 2);
    const backing = Uint8Array.from({ length: 64 }, (_, i) => i);
    const view = backing.subarray(10, 14);
    client.send(view);
    const mutable = Uint8Array.of(1, 2, 3);
    client.send(mutable);
    mutable.fill(0);
    view.fill(0);
    const [first, second] = (await frames) as Uint8Array[];
    expect(first).toBeInstanceOf(Uint8Array);
    expect(Array.from(first!)).toEqual([10, 11, 12, 13]);
    expect(first!.buffer.byteLength).toBe(4);
    expect(Array.from(second!)).toEqual([1, 2, 3]);
  });

  it('ignores messages on the channel that are not its own', async () => {
    const server = hub();
    const accepted = nextConnection(server);
    const client = await connect(server.name);
    const { transport } = await accepted;
    const log = record(transport);
    const clientLog = record(client);
    const stranger = new BroadcastChannel(server.name);
    for (const junk of [
      null,
      'text',
      42,
      { type: 'x' },
      { signalbox: 1 },
      { signalbox: 1, kind: 'frame', to: 'hub' },
    ]) {
      stranger.postMessage(junk);
    }
    stranger.postMessage({ signalbox: 1, kind: 'close', to: 'client', conn: 'nope', hub: 'nope', code: 1000 });
    stranger.close();
    client.send('still fine');
    await vi.waitFor(() => expect(log.frames).toEqual(['still fine']));
    expect(log.errors).toEqual([]);
    expect(clientLog.closes).toEqual([]);
    expect(server.connections).toBe(1);
  });

  it('keeps an idle connection open: heartbeats stand in for traffic', async () => {
    const beat = { heartbeatInterval: 20, heartbeatTimeout: 250 };
    const server = hub(beat);
    const accepted = nextConnection(server);
    const client = await connect(server.name, beat);
    const { transport } = await accepted;
    const logs = [record(client), record(transport)];
    await delay(750);
    for (const log of logs) expect(log.closes).toEqual([]);
    expect(client.isOpen && transport.isOpen).toBe(true);
  });

  it('never times out a side that announced it sends no heartbeat', async () => {
    const server = hub({ heartbeatInterval: 0, heartbeatTimeout: 40 });
    const accepted = nextConnection(server);
    const client = await connect(server.name, { heartbeatInterval: 0, heartbeatTimeout: 40 });
    const { transport } = await accepted;
    await delay(200);
    expect(client.isOpen && transport.isOpen).toBe(true);
  });

  it('drops a client that went silent (frozen) with ERR_KEEPALIVE_TIMEOUT and 1006, and tells it so', async () => {
    let muted = false;
    // The client's context stops posting (a frozen tab), but still receives.
    const Freezable: BroadcastChannelConstructor = class extends BroadcastChannel {
      override postMessage(message: unknown) {
        if (!muted) super.postMessage(message);
      }
    };
    const server = hub({ heartbeatInterval: 10, heartbeatTimeout: 80 });
    const accepted = nextConnection(server);
    const client = await connect(server.name, { heartbeatInterval: 10, BroadcastChannel: Freezable });
    const { transport } = await accepted;
    const hubLog = record(transport);
    const clientClosed = nextEvent(client, 'close');
    muted = true;
    const info = await nextEvent(transport, 'close', 2000);
    expect(info).toEqual({ code: 1006, reason: 'heartbeat timeout', initiator: 'remote' });
    expect(hubLog.errors.map((e) => e.code)).toEqual([ErrorCode.KeepaliveTimeout]);
    expect(await clientClosed).toEqual({ code: 1006, reason: 'heartbeat timeout', initiator: 'remote' });
    expect(server.connections).toBe(0);
  });

  it('throws at once without a BroadcastChannel implementation, and on bad options', () => {
    vi.stubGlobal('BroadcastChannel', undefined);
    try {
      expect(() => broadcastChannelTransport('x')).toThrow(TypeError);
      expect(() => broadcastChannelServer({ name: 'x' })).toThrow(TypeError);
    } finally {
      vi.unstubAllGlobals();
    }
    expect(() => broadcastChannelServer({ name: 'x', heartbeatInterval: -1 })).toThrow(RangeError);
    expect(() => broadcastChannelTransport('x', { connectTimeout: Number.NaN })).toThrow(RangeError);
  });

  it('accepts the global BroadcastChannel as a BroadcastChannelConstructor', () => {
    const Impl: BroadcastChannelConstructor = BroadcastChannel;
    const channel: BroadcastChannelLike = new Impl(unique());
    channel.close();
  });
});

describe('across Node worker_threads', () => {
  const workers: Worker[] = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.terminate()));
  });

  type WorkerEvent = { event: string; code?: number; reason?: string; initiator?: string };

  function spawn(data: Record<string, unknown>) {
    const worker = new Worker(new URL('./broadcast-channel.worker.mjs', import.meta.url), { workerData: data });
    workers.push(worker);
    const events: WorkerEvent[] = [];
    const errors: unknown[] = [];
    worker.on('message', (event: WorkerEvent) => events.push(event));
    worker.on('error', (error) => errors.push(error));
    const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
    const next = (event: string) =>
      vi.waitFor(
        () => {
          const found = events.find((e) => e.event === event);
          if (!found) throw new Error(`the worker has not reported '${event}'`);
          return found;
        },
        { timeout: 15_000 },
      );
    return { worker, events, errors, exited, next };
  }

  it('a worker connects to a hub in the main thread; frames flow both ways in order; both shut down', async () => {
    const ports = openPorts();
    const name = unique('worker');
    const server = broadcastChannelServer({ name });
    const accepted = nextConnection(server);
    const burst = 300;
    const child = spawn({ role: 'client', name, burst });
    const { transport, info } = await Promise.race([
      accepted,
      child.exited.then((code) => Promise.reject(new Error(`worker exited with ${code}: ${String(child.errors)}`))),
    ]);
    expect(info.path).toBe(name);
    expect(info.query.get('from')).toBe('worker');
    expect(info.remoteAddress).toMatch(/^broadcast:/);

    const frames = await nextFrames(transport, burst + 2, 15_000);
    expect(frames[0]).toBe('hello from worker');
    expect(frames.slice(1, -1)).toEqual(Array.from({ length: burst }, (_, i) => `n${i}`));
    expect(frames.at(-1)).toBeInstanceOf(Uint8Array);
    expect(Array.from(frames.at(-1) as Uint8Array)).toEqual([1, 2, 3]);

    const replies = nextFrames(transport, 2);
    transport.send('ping');
    transport.send(Uint8Array.of(9, 8, 7));
    const [text, binary] = await replies;
    expect(text).toBe('echo:ping');
    expect(binary).toBeInstanceOf(Uint8Array);
    expect(Array.from(binary as Uint8Array)).toEqual([7, 8, 9]);

    // The worker closes; its thread then ends by itself: nothing of the adapter keeps it alive.
    const closed = nextEvent(transport, 'close');
    transport.send('close');
    expect(await closed).toEqual({ code: 4000, reason: 'worker done', initiator: 'remote' });
    expect(await child.exited).toBe(0);
    expect(child.events.find((e) => e.event === 'close')).toMatchObject({ code: 4000, initiator: 'local' });
    expect(child.errors).toEqual([]);
    expect(server.connections).toBe(0);
    await server.close();
    expect(openPorts()).toBe(ports);
  });

  it('the main thread connects to a hub in a worker that is still starting, and the hub closing ends it', async () => {
    const name = unique('worker-hub');
    const child = spawn({ role: 'hub', name });
    // No waiting for the worker: the client repeats its hello until the hub is up.
    const client = await broadcastChannelTransport(name, { query: { who: 'main' }, connectTimeout: 15_000 });
    const log = record(client);
    await vi.waitFor(() => expect(log.frames).toEqual(['welcome main']));
    const reply = nextEvent(client, 'message');
    client.send('hi');
    expect(await reply).toBe('echo:hi');
    const closed = nextEvent(client, 'close');
    client.send('close'); // the hub's side closes with 4000
    expect(await closed).toEqual({ code: 4000, reason: 'worker done', initiator: 'remote' });
    expect(client.isOpen).toBe(false);
    await child.next('listening');
  });

  it('the hub detects a worker client that was terminated without closing', async () => {
    const name = unique('worker-dies');
    const server = broadcastChannelServer({ name, heartbeatInterval: 20, heartbeatTimeout: 200 });
    const accepted = nextConnection(server);
    const child = spawn({ role: 'client', name, heartbeatInterval: 20 });
    const { transport } = await accepted;
    await child.next('connected');
    const log = record(transport);
    const closed = nextEvent(transport, 'close', 5000);
    await child.worker.terminate();
    const started = Date.now();
    expect(await closed).toEqual({ code: 1006, reason: 'heartbeat timeout', initiator: 'remote' });
    expect(Date.now() - started).toBeLessThan(1000);
    expect(log.errors.map((e) => e.code)).toEqual([ErrorCode.KeepaliveTimeout]);
    expect(server.connections).toBe(0);
    await server.close();
  });

  it('a client detects a worker hub that was terminated without closing', async () => {
    const name = unique('hub-dies');
    const child = spawn({ role: 'hub', name, heartbeatInterval: 20 });
    await child.next('listening');
    const client = await broadcastChannelTransport(name, { heartbeatTimeout: 200 });
    const log = record(client);
    await vi.waitFor(() => expect(log.frames).toHaveLength(1));
    await child.worker.terminate();
    const info = await nextEvent(client, 'close', 5000);
    expect(info).toEqual({ code: 1006, reason: 'heartbeat timeout', initiator: 'remote' });
    expect(log.errors.map((e) => e.code)).toEqual([ErrorCode.KeepaliveTimeout]);
  });
});
