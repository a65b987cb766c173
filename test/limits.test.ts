import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { setup, SimulatedClock } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { socketIoServer } from '../adapters/socket-io/server.js';
import { webSocketServer } from '../adapters/websocket/server.js';
import { createCloudLinkServer } from '../machines/cloudlink/server.js';
import { createFileDropServer } from '../machines/filedrop/server.js';
import { announcer, WELCOME_BATCH_SIZE } from '../machines/registry/announce.js';
import type { ServerMessage } from '../machines/registry/protocol.js';
import { memoryFileRegistry } from '../machines/registry/registry.js';
import { createRegistryServer } from '../machines/registry/server.js';
import { jsonCodec } from '../src/codec.js';
import type { ConnectionLimits } from '../src/limits.js';
import type { Logger } from '../src/logger.js';
import type { Message } from '../src/message.js';
import { protocolServer } from '../src/protocol-server.js';
import type { Router } from '../src/router.js';
import { serve } from '../src/runtime.js';
import type { CloseInfo, ConnectionInfo, Transport } from '../src/transport.js';
import { rawClient } from './cloudlink-helpers.js';
import { rawSocket } from './socket-helpers.js';

/** A session that answers `blast` with `count` frames of `size` characters, and counts what it was fed. */
const blaster = setup({
  types: {
    events: {} as Message,
    input: {} as { transport: Transport; fed: Message[]; peak: { buffered: number } },
    context: {} as { transport: Transport; fed: Message[]; peak: { buffered: number } },
  },
}).createMachine({
  context: ({ input }) => input,
  on: {
    '*': {
      actions: ({ context, event }) => {
        context.fed.push(event);
        if (event.type !== 'blast') return;
        const { count, size } = event.detail as { count: number; size: number };
        const frame = JSON.stringify({ type: 'data', detail: 'x'.repeat(size) });
        for (let i = 0; i < count && context.transport.isOpen; i++) {
          context.transport.send(frame);
          context.peak.buffered = Math.max(context.peak.buffered, context.transport.bufferedAmount);
        }
      },
    },
  },
});

function blastServer(limits: ConnectionLimits, extra: { clock?: SimulatedClock; log?: Logger } = {}) {
  const fed: Message[] = [];
  const peak = { buffered: 0 };
  const closes: CloseInfo[] = [];
  const warnings: Array<[string, Record<string, unknown> | undefined]> = [];
  const limited: string[] = [];
  let next = 0;
  const server = protocolServer({
    protocol: 'blast',
    logic: blaster,
    codec: jsonCodec(),
    limits,
    clock: extra.clock,
    logger: extra.log ?? { info() {}, error() {}, warn: (message, fields) => warnings.push([message, fields]) },
    rateLimited: (id) => limited.push(id),
    open(transport) {
      transport.on('close', (info) => closes.push(info));
      const id = `b${++next}`;
      return { id, input: { transport, fed, peak } };
    },
  });
  return { server, fed, peak, closes, warnings, limited };
}

const until = async (check: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

const info: ConnectionInfo = { path: '/', query: new URLSearchParams(), remoteAddress: '127.0.0.1', headers: {} };

let http: Server | undefined;
afterEach(async () => {
  http?.closeAllConnections();
  await new Promise((resolve) => http?.close(resolve) ?? resolve(undefined));
  http = undefined;
});

async function listen(): Promise<number> {
  http = createServer();
  await new Promise<void>((resolve) => http!.listen(0, '127.0.0.1', resolve));
  return (http.address() as AddressInfo).port;
}

const CAP = 256 * 1024;
const FRAME = 16 * 1024;

describe('outbound buffer cap', () => {
  it('closes a WebSocket client that stops reading with 1008 "too slow", its buffer bounded by the cap', async () => {
    const port = await listen();
    const transports = webSocketServer({ server: http!, path: '/blast', heartbeatInterval: false });
    const { server, peak, closes, warnings } = blastServer({ maxBufferedBytes: CAP });
    serve(transports, server);
    const client = new WebSocket(`ws://127.0.0.1:${port}/blast`);
    await new Promise((resolve) => client.once('open', resolve));
    // Stop reading: what the server sends piles up in the kernel, then in the server's buffers.
    (client as unknown as { _socket: { pause(): void } })._socket.pause();
    client.send(JSON.stringify({ type: 'blast', detail: { count: 2000, size: FRAME } }));
    await until(() => closes.length > 0);
    expect(closes[0]).toMatchObject({ code: 1008, reason: 'too slow', initiator: 'local' });
    // 2000 frames (about 32 MB) were asked for; the server held at most the cap and the frame that crossed it.
    expect(peak.buffered).toBeLessThanOrEqual(CAP);
    expect(warnings).toEqual([
      ['too slow', expect.objectContaining({ protocol: 'blast', session: 'b1', remote: '127.0.0.1' })],
    ]);
    expect(warnings[0]![1]!.buffered).toBeGreaterThan(CAP);
    expect(warnings[0]![1]!.buffered).toBeLessThanOrEqual(CAP + 3 * FRAME);
    // Cut off at once, its buffer dropped: no session and no socket left.
    await until(() => transports.connections === 0);
    expect(server.buffered()).toBe(0);
    client.terminate();
    await transports.close();
  });

  it('keeps a client that reads what it is sent, however much', async () => {
    const port = await listen();
    const transports = webSocketServer({ server: http!, path: '/blast', heartbeatInterval: false });
    const { server, closes } = blastServer({ maxBufferedBytes: CAP });
    serve(transports, server);
    const client = new WebSocket(`ws://127.0.0.1:${port}/blast`);
    await new Promise((resolve) => client.once('open', resolve));
    let received = 0;
    client.on('message', () => received++);
    // Eight frames at a time stay under the cap whatever the client's pace.
    for (let round = 0; round < 10; round++) {
      client.send(JSON.stringify({ type: 'blast', detail: { count: 8, size: FRAME } }));
      await until(() => received === (round + 1) * 8);
    }
    expect(closes).toEqual([]);
    client.close();
    await transports.close();
  });

  it('closes a socket.io client that stops polling with 1008 "too slow", its queue bounded by the cap', async () => {
    const port = await listen();
    const transports = socketIoServer({ server: http! });
    const { server, peak, closes, warnings } = blastServer({ maxBufferedBytes: CAP });
    serve(transports, server);
    const base = `http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`;
    // engine.io by hand: handshake, join the main namespace, then never poll again.
    const open = await (await fetch(base)).text();
    const sid = (JSON.parse(open.slice(open.indexOf('{'))) as { sid: string }).sid;
    const post = (body: string) => fetch(`${base}&sid=${sid}`, { method: 'POST', body }).then((r) => r.text());
    await post('40');
    await fetch(`${base}&sid=${sid}`).then((r) => r.text()); // the namespace's CONNECT answer
    await until(() => server.sessions.size === 1);
    await post(
      `42${JSON.stringify(['message', JSON.stringify({ type: 'blast', detail: { count: 2000, size: FRAME } })])}`,
    );
    await until(() => closes.length > 0);
    expect(closes[0]).toMatchObject({ code: 1008, reason: 'too slow' });
    expect(peak.buffered).toBeLessThanOrEqual(CAP);
    expect(warnings[0]).toEqual(['too slow', expect.objectContaining({ protocol: 'blast' })]);
    expect(warnings[0]![1]!.buffered).toBeGreaterThan(CAP);
    expect(warnings[0]![1]!.buffered).toBeLessThanOrEqual(CAP + 3 * FRAME);
    // engine.io let go of the connection and its queue, though the client never polled again.
    await until(() => transports.connections === 0 && transports.io.engine.clientsCount === 0);
    expect(server.buffered()).toBe(0);
    await transports.close();
  });
});

describe('rate limits', () => {
  it('refuses frames past the burst, refills with the clock, tells the protocol once a run, then closes', async () => {
    const clock = new SimulatedClock();
    const {
      server,
      fed: all,
      closes,
      limited,
    } = blastServer({ messagesPerSecond: 10, messageBurst: 5, rateLimitStrikes: 4 }, { clock });
    const fed = {
      get length() {
        return all.filter((e) => e.type === 'ping').length;
      },
    };
    const [transport, client] = memoryPair();
    server.accept(transport, info);
    const send = (n: number) => {
      for (let i = 0; i < n; i++) client.send('{"type":"ping","detail":null}');
    };
    const tick = () => new Promise((resolve) => setTimeout(resolve, 0));
    send(7);
    await tick();
    expect(fed).toHaveLength(5);
    expect(limited).toEqual(['b1']);
    clock.increment(300); // three tokens back
    send(3);
    await tick();
    expect(fed).toHaveLength(8);
    send(1);
    await tick();
    expect(limited).toEqual(['b1', 'b1']); // a new run of refusals, told again
    expect(closes).toEqual([]);
    send(5);
    await tick();
    expect(closes[0]).toMatchObject({ code: 1008, reason: 'rate limited' });
    expect(fed).toHaveLength(8);
  });

  it('limits bytes as well as messages', async () => {
    const clock = new SimulatedClock();
    const { server, fed, limited } = blastServer({ bytesPerSecond: 100, byteBurst: 100 }, { clock });
    const [transport, client] = memoryPair();
    server.accept(transport, info);
    client.send(JSON.stringify({ type: 'big', detail: 'x'.repeat(60) }));
    client.send(JSON.stringify({ type: 'big', detail: 'x'.repeat(60) }));
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(fed).toHaveLength(1);
    expect(limited).toEqual(['b1']);
  });

  it('a JSON protocol answers with its error and ERR_RATE_LIMITED (filedrop)', async () => {
    const filedrop = createFileDropServer({ limits: { messagesPerSecond: 1, messageBurst: 2 } });
    const [transport, client] = memoryPair();
    const socket = rawSocket(client);
    filedrop.accept(transport, info);
    expect((await socket.next()).type).toBe('assign');
    for (let i = 0; i < 3; i++) socket.send({ type: 'request', detail: { peer: 'ABCDEFGH' } });
    const frames = [await socket.next(), await socket.next(), await socket.next()];
    expect(frames.map((f) => f.detail?.code)).toContain('ERR_RATE_LIMITED');
    expect(frames.find((f) => f.detail?.code === 'ERR_RATE_LIMITED')).toMatchObject({ type: 'error' });
    await filedrop.close();
  });

  it('CloudLink answers VIOLATION and closes with 1008', async () => {
    const cloudlink = createCloudLinkServer({ limits: { messagesPerSecond: 1, messageBurst: 1 } });
    const [transport, client] = memoryPair();
    const socket = rawClient(client);
    cloudlink.accept(transport, { ...info, path: '/ws/game' });
    socket.send({ opcode: 2 });
    expect(await socket.next()).toMatchObject({ opcode: 3 }); // INIT_OK
    socket.send({ opcode: 1 });
    expect(await socket.next()).toEqual({ opcode: 0, payload: 'rate limited' });
    expect(await socket.closed).toMatchObject({ code: 1008, reason: 'rate limited' });
    await cloudlink.close();
  });
});

describe('registry at scale', () => {
  /** A raw registry client on a memory pair: every frame as text, in order. */
  const connect = (server: ReturnType<typeof createRegistryServer>, detail: Record<string, unknown>) => {
    const [transport, client] = memoryPair();
    const frames: string[] = [];
    client.on('message', (frame) => frames.push(frame as string));
    server.accept(transport, info);
    client.send(JSON.stringify({ type: 'Connect', detail }));
    return Object.assign(frames, { client });
  };
  const tick = () => new Promise((resolve) => setImmediate(resolve));
  const unpaced = { sliceSize: Infinity, sliceFrames: Infinity };
  type Announced = { type: string; detail: { peer: string; files?: unknown } };
  /** The Welcome list a raw client got: its frames, and the announcements in them. */
  const welcomeList = (frames: string[]) => {
    const count = (JSON.parse(frames[0]!) as { detail: { peers: number } }).detail.peers;
    const events: Announced[] = [];
    const taken: string[] = [];
    for (const frame of frames.slice(1)) {
      if (events.length >= count) break;
      const message = JSON.parse(frame) as Announced & { detail: { events?: Announced[] } };
      events.push(...(message.type === 'Batch' ? message.detail.events! : [message]));
      taken.push(frame);
    }
    return { frames: taken, events };
  };

  it('a client that says batch gets its Welcome list in Batch frames of at most 64 KiB; one that does not, a frame a peer', async () => {
    const server = createRegistryServer({
      limits: { messagesPerSecond: 1e6, messageBurst: 1e6, byteBurst: 1 << 30 },
      // Every write in the turn it is made: what is sent is the point here, not when.
      pacing: unpaced,
    });
    // 30 peers with ~12 KB lists: ~360 KB of RegisterPeer, more than one Batch holds.
    const list = (i: number) =>
      Array.from({ length: 100 }, (_, n) => ({ path: `peer-${i}/${'p'.repeat(100)}/${n}.bin`, size: n }));
    const members = Array.from({ length: 30 }, (_, i) => connect(server, { files: list(i) }));
    await tick();
    const batched = connect(server, { files: [], batch: true });
    const single = connect(server, { files: [] });
    await tick();
    const welcome = JSON.parse(batched[0]!) as { type: string; detail: { peers: number } };
    expect(welcome).toMatchObject({ type: 'Welcome', detail: { peers: 30 } });
    // ~400 KB in frames of at most 64 KiB, each but the last full (one more ~13.5 KB list would not fit).
    const list1 = welcomeList(batched).frames;
    expect(list1.length).toBeGreaterThan(6);
    expect(list1.map((f) => (JSON.parse(f) as { type: string }).type)).toEqual(list1.map(() => 'Batch'));
    for (const frame of list1) {
      expect(frame.length).toBeLessThanOrEqual(WELCOME_BATCH_SIZE + 64);
      if (frame !== list1.at(-1)) expect(frame.length).toBeGreaterThan(WELCOME_BATCH_SIZE - 14_000);
      // Joined from the events' own frames, it is exactly what encoding the whole Batch gives.
      expect(frame).toBe(JSON.stringify(JSON.parse(frame)));
    }
    const events = list1.flatMap((f) => (JSON.parse(f) as { detail: { events: unknown[] } }).detail.events);
    const peers = [...server.sessions.keys()].slice(0, 30);
    expect(events).toEqual(peers.map((peer, i) => ({ type: 'RegisterPeer', detail: { peer, files: list(i) } })));
    // The seed's way: Welcome, then 31 RegisterPeer (the batched newcomer too), one a frame.
    expect(single.slice(1, 32).map((f) => (JSON.parse(f) as { type: string }).type)).toEqual(
      Array.from({ length: 31 }, () => 'RegisterPeer'),
    );
    // A later newcomer's list is the registry as it is then, though the frames of the last one are reused
    // where nothing changed: the first peer has a new list, the second left.
    members[0]!.client.send(JSON.stringify({ type: 'UpdateFiles', detail: { files: list(99) } }));
    members[1]!.client.close();
    await tick();
    const later = connect(server, { files: [], batch: true });
    await tick();
    const registered = welcomeList(later);
    const now = [...server.sessions.keys()].slice(0, -1);
    expect(registered.events).toHaveLength(31);
    expect(registered.events.map((e) => e.detail.peer)).toEqual(now);
    expect(registered.events[0]).toEqual({ type: 'RegisterPeer', detail: { peer: peers[0], files: list(99) } });
    expect(registered.events.slice(1, 29)).toEqual(events.slice(2));
    // Nothing changed since: the next one gets the same full frames (reused), then the rest.
    const next = connect(server, { files: [], batch: true });
    await tick();
    const again = welcomeList(next);
    expect(again.frames[0]).toBe(registered.frames[0]);
    expect(again.events).toEqual([
      ...registered.events,
      { type: 'RegisterPeer', detail: { peer: [...server.sessions.keys()].at(-2), files: [] } },
    ]);
    await server.close();
  });

  it('refuses a Connect whose batch is anything but true', async () => {
    const server = createRegistryServer();
    const frames = connect(server, { files: [], batch: 'yes' });
    await tick();
    expect(JSON.parse(frames[0]!)).toMatchObject({
      type: 'Error',
      detail: { code: 'ERR_INVALID_FIELD', event: 'Connect' },
    });
    await server.close();
  });

  it('spaces announcement rounds by the crowd: peers / 20 ms', async () => {
    const clock = new SimulatedClock();
    const server = createRegistryServer({ clock, pacing: unpaced });
    const all = Array.from({ length: 60 }, () => connect(server, { files: [] }));
    await tick();
    clock.increment(1000); // the rounds of those joins
    await tick();
    // 60 peers: each join is announced in a round 3 ms after the first announcement of it.
    const before = all[0]!.length;
    connect(server, { files: [] });
    await tick();
    expect(all[0]!.length).toBe(before);
    clock.increment(2);
    await tick();
    expect(all[0]!.length).toBe(before);
    clock.increment(1);
    await tick();
    expect(all[0]!.length).toBe(before + 1);
    expect(JSON.parse(all[0]!.at(-1)!)).toMatchObject({ type: 'RegisterPeer' });
    await server.close();
  });
});

describe('registry: a peer that stops reading while lists pour in', () => {
  it('an announcement made while a round is delivered (a recipient closed, its leave) goes out next round', async () => {
    const files = memoryFileRegistry();
    for (const id of ['a', 'b', 'c']) files.add(id, []);
    const got: Array<[string, ServerMessage]> = [];
    const router = {
      // Every peer is held by this process.
      has: () => true,
      send(to: string, message: ServerMessage) {
        got.push([to, message]);
        // Sending to b closes it (too slow): its session leaves and announces that at once.
        if (to === 'b' && message.type === 'RegisterPeer') {
          files.remove('b');
          announce.announce('b', { type: 'UnregisterPeer', detail: { peer: 'b' } });
        }
        return true;
      },
    } as unknown as Router<ServerMessage>;
    const announce = announcer(router, files);
    files.add('d', []);
    announce.announce('d', announce.registerPeer('d', []));
    await new Promise((resolve) => setImmediate(resolve));
    expect(got.map(([to, m]) => `${to} ${m.type}`)).toEqual(['a RegisterPeer', 'b RegisterPeer', 'c RegisterPeer']);
    await new Promise((resolve) => setImmediate(resolve));
    expect(got.slice(3)).toEqual(['a', 'c', 'd'].map((to) => [to, { type: 'UnregisterPeer', detail: { peer: 'b' } }]));
  });

  it('is closed with 1008 "too slow" at the cap; the other peers keep every announcement and hear it leave', async () => {
    const port = await listen();
    const transports = webSocketServer({ server: http!, path: '/registry', heartbeatInterval: false });
    const warnings: Array<[string, Record<string, unknown> | undefined]> = [];
    const registry = createRegistryServer({
      // The reader's pace is the point, not the updater's rate.
      limits: { maxBufferedBytes: CAP, messagesPerSecond: 10_000, messageBurst: 10_000, byteBurst: 1 << 30 },
      logger: { info() {}, error() {}, warn: (message, fields) => warnings.push([message, fields]) },
    });
    serve(transports, registry);
    const closes: CloseInfo[] = [];
    transports.on('connection', ({ transport }) => transport.on('close', (close) => closes.push(close)));

    /** A registry peer over a raw socket: Connect with no files, its id from Welcome. */
    const peer = async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/registry`);
      const frames: Array<{ type: string; detail: Record<string, unknown> }> = [];
      ws.on('message', (data) => frames.push(JSON.parse(String(data)) as (typeof frames)[number]));
      await new Promise((resolve) => ws.once('open', resolve));
      ws.send(JSON.stringify({ type: 'Connect', detail: { files: [] } }));
      await until(() => frames.some((f) => f.type === 'Welcome'));
      return { ws, frames, id: frames.find((f) => f.type === 'Welcome')!.detail.id as string };
    };
    const [slow, reader, updater] = [await peer(), await peer(), await peer()];
    // The reader was told of both others (the slow one in its Welcome list, the updater since).
    await until(() => reader.frames.filter((f) => f.type === 'RegisterPeer').length === 2);
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();

    // 1,000 files of ~100 characters each: a list of ~100 KB, announced to both other peers.
    const list = (round: number) =>
      Array.from({ length: 1000 }, (_, i) => ({ path: `round-${round}/${'d'.repeat(70)}/file-${i}.bin`, size: i }));
    const updates = () => reader.frames.filter((f) => f.type === 'UpdatePeer' && f.detail.peer === updater.id).length;
    let rounds = 0;
    // One list at a time, each once the reading peer has it: only the slow one falls behind.
    while (!warnings.some(([message]) => message === 'too slow') && rounds < 400) {
      updater.ws.send(JSON.stringify({ type: 'UpdateFiles', detail: { files: list(++rounds) } }));
      await until(() => updates() === rounds);
    }
    const frame = JSON.stringify({ type: 'UpdatePeer', detail: { peer: updater.id, files: list(rounds) } }).length;

    expect(warnings.filter(([message]) => message === 'too slow')).toEqual([
      ['too slow', expect.objectContaining({ protocol: 'registry', session: slow.id, remote: '127.0.0.1' })],
    ]);
    const buffered = warnings.find(([message]) => message === 'too slow')![1]!.buffered as number;
    expect(buffered).toBeGreaterThan(CAP);
    expect(buffered).toBeLessThanOrEqual(CAP + 2 * frame);
    await until(() => closes.length > 0);
    expect(closes[0]).toMatchObject({ code: 1008, reason: 'too slow', initiator: 'local' });
    // Unregistered like any peer that leaves: the others are told, and stay.
    await until(() => reader.frames.some((f) => f.type === 'UnregisterPeer' && f.detail.peer === slow.id));
    await until(() => transports.connections === 2);
    expect(registry.stats()).toMatchObject({ connections: 2, peers: 2 });
    expect(updates()).toBe(rounds);
    expect(updater.frames.filter((f) => f.type === 'Error')).toEqual([]);
    expect([reader.ws.readyState, updater.ws.readyState]).toEqual([WebSocket.OPEN, WebSocket.OPEN]);
    // Still served: one more list reaches the reader.
    updater.ws.send(JSON.stringify({ type: 'UpdateFiles', detail: { files: list(++rounds) } }));
    await until(() => updates() === rounds);
    expect(closes).toHaveLength(1);
    for (const { ws } of [slow, reader, updater]) ws.terminate();
    await registry.close();
    await transports.close();
  });
});
