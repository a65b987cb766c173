import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { createMemoryNetwork, memoryPair, type MemoryNetwork } from '../adapters/memory/index.js';
import { ErrorCode, TransportError } from '../src/errors.js';
import type { CloseInfo, Frame, Transport, TransportServerEvents } from '../src/transport.js';
import { nextEvent, nextFrames, transportCompliance } from './transport-compliance.js';

transportCompliance('memoryPair', async () => {
  const [a, b] = memoryPair();
  return { a, b };
});

transportCompliance('memory network connection', async () => {
  const network = createMemoryNetwork();
  const server = network.listen('compliance');
  const accepted = new Promise<Transport>((resolve) => server.on('connection', ({ transport }) => resolve(transport)));
  const a = await network.connect('compliance');
  return { a, b: await accepted, teardown: () => server.close() };
});

transportCompliance('memory network with jittery latency', async () => {
  let n = 0;
  const [a, b] = memoryPair({ latency: () => [3, 0, 1, 2][n++ % 4]! });
  return { a, b };
});

/** Records every message and close of `transport`. */
function record(transport: Transport) {
  const log = { frames: [] as Frame[], closes: [] as CloseInfo[] };
  transport.on('message', (frame) => log.frames.push(frame));
  transport.on('close', (info) => log.closes.push(info));
  return log;
}

const microtasks = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve();
};

describe('memoryPair', () => {
  it('never delivers inside send()', async () => {
    const [a, b] = memoryPair();
    const log = record(b);
    a.send('x');
    expect(log.frames).toEqual([]);
    await microtasks();
    expect(log.frames).toEqual(['x']);
  });

  it('copies binary frames on send', async () => {
    const [a, b] = memoryPair();
    const received = nextEvent(b, 'message');
    const bytes = Uint8Array.of(1, 2, 3);
    a.send(bytes);
    bytes[0] = 99;
    expect(Array.from((await received) as Uint8Array)).toEqual([1, 2, 3]);
  });

  it('delivers frames only after the latency has passed on a SimulatedClock', async () => {
    const clock = new SimulatedClock();
    const [a, b] = memoryPair({ latency: 50, clock });
    const log = record(b);
    a.send('one');
    clock.increment(20);
    a.send('two');
    await microtasks();
    expect(log.frames).toEqual([]);
    clock.increment(29);
    await microtasks();
    expect(log.frames).toEqual([]);
    clock.increment(1);
    await microtasks();
    expect(log.frames).toEqual(['one']);
    clock.increment(20);
    await microtasks();
    expect(log.frames).toEqual(['one', 'two']);
  });

  it('never lets a frame overtake an earlier one, whatever the latency of each', async () => {
    const clock = new SimulatedClock();
    const latencies = [100, 10, 50, 0, 30];
    const [a, b] = memoryPair({ latency: () => latencies.shift()!, clock });
    const log = record(b);
    for (const frame of ['1', '2', '3', '4', '5']) a.send(frame);
    clock.increment(99);
    await microtasks();
    expect(log.frames).toEqual([]);
    clock.increment(1);
    await microtasks();
    expect(log.frames).toEqual(['1', '2', '3', '4', '5']);
  });

  it('delivers a close after the frames sent before it, with the same latency', async () => {
    const clock = new SimulatedClock();
    const [a, b] = memoryPair({ latency: 10, clock });
    const log = record(b);
    a.send('last words');
    a.close(4000, 'bye');
    expect(b.isOpen).toBe(true);
    clock.increment(10);
    await microtasks();
    expect(log.frames).toEqual(['last words']);
    expect(log.closes).toEqual([{ code: 4000, reason: 'bye', initiator: 'remote' }]);
  });

  it('reports bytes in flight as bufferedAmount and emits drain once they arrive', async () => {
    const clock = new SimulatedClock();
    const [a, b] = memoryPair({ latency: 10, clock });
    record(b);
    let drains = 0;
    a.on('drain', () => drains++);
    a.send('héllo');
    a.send(new Uint8Array(10));
    expect(a.bufferedAmount).toBe(6 + 10);
    clock.increment(10);
    await microtasks();
    expect(a.bufferedAmount).toBe(0);
    expect(drains).toBe(1);
  });
});

describe('createMemoryNetwork', () => {
  let network: MemoryNetwork;

  afterEach(() => network.severAll());

  it('hands the server each connection with its path, query, remote address and headers', async () => {
    network = createMemoryNetwork();
    const server = network.listen('hub');
    const connected = new Promise<TransportServerEvents['connection']>((resolve) => server.on('connection', resolve));
    const client = await network.connect('hub', {
      path: '/ws/game',
      query: '?v=1&name=ada',
      remoteAddress: '10.0.0.7',
      headers: { origin: 'https://example.test' },
    });
    const { transport, info } = await connected;
    expect(info.path).toBe('/ws/game');
    expect(info.query.get('v')).toBe('1');
    expect(info.query.get('name')).toBe('ada');
    expect(info.remoteAddress).toBe('10.0.0.7');
    expect(info.headers).toEqual({ origin: 'https://example.test' });
    const reply = nextEvent(client, 'message');
    transport.send('welcome');
    expect(await reply).toBe('welcome');
    expect(server.connections).toBe(1);
    expect(network.connections).toBe(1);
  });

  it('gives each connection a distinct default remote address and path /', async () => {
    network = createMemoryNetwork();
    const server = network.listen('hub');
    const infos: TransportServerEvents['connection']['info'][] = [];
    server.on('connection', ({ info }) => infos.push(info));
    await network.connect('hub', { query: { room: 'x' } });
    await network.connect('hub');
    expect(infos.map((i) => i.path)).toEqual(['/', '/']);
    expect(infos[0]!.query.get('room')).toBe('x');
    expect(infos[0]!.remoteAddress).not.toBe(infos[1]!.remoteAddress);
  });

  it('refuses a connection to an address nobody listens on with ERR_CONNECT_FAILED', async () => {
    network = createMemoryNetwork();
    const attempt = network.connect('nowhere');
    await expect(attempt).rejects.toBeInstanceOf(TransportError);
    await expect(attempt).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
  });

  it('refuses to listen twice on one address', () => {
    network = createMemoryNetwork();
    network.listen('hub');
    expect(() => network.listen('hub')).toThrow(/already in use/);
  });

  it('sever() closes both ends at once with 1006, initiator remote, and drops frames in flight', async () => {
    const clock = new SimulatedClock();
    network = createMemoryNetwork({ latency: 10, clock });
    const server = network.listen('hub');
    const accepted = new Promise<Transport>((resolve) =>
      server.on('connection', ({ transport }) => resolve(transport)),
    );
    const client = await network.connect('hub');
    const remote = await accepted;
    const clientLog = record(client);
    const serverLog = record(remote);
    client.send('lost');
    remote.send('lost too');
    network.sever(client);
    expect(clientLog.closes).toEqual([{ code: 1006, reason: expect.any(String), initiator: 'remote' }]);
    expect(serverLog.closes).toEqual([{ code: 1006, reason: expect.any(String), initiator: 'remote' }]);
    expect(client.isOpen).toBe(false);
    expect(remote.isOpen).toBe(false);
    clock.increment(100);
    await microtasks();
    expect(clientLog.frames).toEqual([]);
    expect(serverLog.frames).toEqual([]);
    expect(network.connections).toBe(0);
    expect(server.connections).toBe(0);
    expect(() => network.sever(client)).not.toThrow();
  });

  it('severAll() drops every connection', async () => {
    network = createMemoryNetwork();
    network.listen('hub');
    const clients = await Promise.all([network.connect('hub'), network.connect('hub'), network.connect('hub')]);
    expect(network.connections).toBe(3);
    const closes = clients.map((c) => nextEvent(c, 'close'));
    network.severAll();
    for (const info of await Promise.all(closes)) expect(info).toMatchObject({ code: 1006, initiator: 'remote' });
    expect(network.connections).toBe(0);
  });

  it('sever() rejects a transport that is not of this network', () => {
    network = createMemoryNetwork();
    const [a] = memoryPair();
    expect(() => network.sever(a)).toThrow(TypeError);
  });

  it('counts a connection until both ends have closed', async () => {
    const clock = new SimulatedClock();
    network = createMemoryNetwork({ latency: 10, clock });
    const server = network.listen('hub');
    const client = await network.connect('hub');
    expect(server.connections).toBe(1);
    client.close();
    expect(client.isOpen).toBe(false);
    expect(network.connections).toBe(1);
    expect(server.connections).toBe(1);
    clock.increment(10);
    await microtasks();
    expect(network.connections).toBe(0);
    expect(server.connections).toBe(0);
  });

  it('closing the server closes its connections with 1001, stops accepting and emits close', async () => {
    network = createMemoryNetwork();
    const server = network.listen('hub');
    let serverClosed = 0;
    server.on('close', () => serverClosed++);
    const clients = await Promise.all([network.connect('hub'), network.connect('hub')]);
    const closes = clients.map((c) => nextEvent(c, 'close'));
    await server.close();
    await server.close();
    for (const info of await Promise.all(closes)) expect(info).toMatchObject({ code: 1001, initiator: 'remote' });
    expect(serverClosed).toBe(1);
    expect(server.connections).toBe(0);
    await expect(network.connect('hub')).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
    expect(() => network.listen('hub')).not.toThrow();
  });

  it('keeps frames a client sends before the server subscribes', async () => {
    network = createMemoryNetwork();
    const server = network.listen('hub');
    const accepted = new Promise<Transport>((resolve) =>
      server.on('connection', ({ transport }) => resolve(transport)),
    );
    const client = await network.connect('hub');
    client.send('early');
    client.send('bird');
    await microtasks();
    expect(await nextFrames(await accepted, 2)).toEqual(['early', 'bird']);
  });
});

describe('memory binary frames', () => {
  it('delivers a copy of just the bytes of a view, even of a pooled Node Buffer', async () => {
    const [a, b] = memoryPair();
    const pooled = Buffer.from('abc'); // a view into Node's shared 8 KiB pool
    const got = new Promise<Uint8Array>((resolve) => b.on('message', (f) => resolve(f as Uint8Array)));
    a.send(pooled);
    pooled[0] = 0x7a;
    const frame = await got;
    expect(frame.byteLength).toBe(3);
    expect(frame.buffer.byteLength).toBe(3);
    expect([...frame]).toEqual([0x61, 0x62, 0x63]);
  });
});
