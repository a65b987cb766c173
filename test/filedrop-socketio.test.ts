import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { WebSocket } from 'ws';
import { createActor, waitFor } from 'xstate';
import { socketIoTransport } from '../adapters/socket-io/client.js';
import { socketIoServer, type SocketIoTransportServer } from '../adapters/socket-io/server.js';
import { rejectUnroutedUpgrades, webSocketServer } from '../adapters/websocket/server.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { memorySink, memorySource, sha256Hex } from '../machines/transfer/files.js';
import { isPeerId } from '../machines/filedrop/protocol.js';
import { filedropReceiver } from '../machines/filedrop/receiver.machine.js';
import { filedropSender, type SenderEmitted } from '../machines/filedrop/sender.machine.js';
import { clientSocketIoEvents, serverSocketIoEvents } from '../machines/filedrop/socket-io.js';
import { ErrorCode, TransportError } from '../src/errors.js';
import { frameEvents } from '../src/event-codec.js';
import { fromRtc } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import type { Transport, TransportServerEvents } from '../src/transport.js';
import { bytes, rawClient } from './filedrop-helpers.js';
import { NDC_LOOPBACK, WERIFT_LOOPBACK } from './rtc-helpers.js';
import { transportCompliance } from './transport-compliance.js';

type Event = [event: string, ...args: unknown[]];

/** A socket.io 4 client of the seed, written with socket.io-client only: no signalbox code on its side. */
interface SeedClient {
  readonly socket: Socket;
  /** Its id, from `assign`. */
  readonly id: string;
  /** The next event the server emitted, as `[event, ...args]`. */
  next(ms?: number): Promise<Event>;
  /** Resolves once the socket disconnected, with socket.io's reason. */
  readonly disconnected: Promise<string>;
}

let server: SignalboxServer;
let base: string;
const sockets: Socket[] = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${server.address.port}`;
});
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.disconnect();
});
afterAll(async () => {
  await server.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

function listen(socket: Socket): Pick<SeedClient, 'next' | 'disconnected'> {
  const inbox: Event[] = [];
  const waiters: Array<(event: Event) => void> = [];
  socket.onAny((...event: Event) => {
    const waiter = waiters.shift();
    if (waiter) waiter(event);
    else inbox.push(event);
  });
  return {
    disconnected: new Promise((resolve) => socket.once('disconnect', resolve)),
    next(ms = 2000) {
      const queued = inbox.shift();
      if (queued) return Promise.resolve(queued);
      return new Promise<Event>((resolve, reject) => {
        const done = (event: Event) => {
          clearTimeout(timer);
          resolve(event);
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`no event within ${ms} ms`));
        }, ms);
        waiters.push(done);
      });
    },
  };
}

/** Connects a seed client to the shared server and waits for its `assign`. */
async function seedClient(options: Partial<ManagerOptions & SocketOptions> = {}, url = base): Promise<SeedClient> {
  const socket = io(url, { reconnection: false, forceNew: true, transports: ['websocket'], ...options });
  sockets.push(socket);
  const client = listen(socket);
  const [event, id] = await client.next();
  expect(event).toBe('assign');
  return { socket, id: id as string, ...client };
}

/** A receiver `receiver` that has sent `request` to a sender `sender`, which saw it. */
async function linked(): Promise<{ sender: SeedClient; receiver: SeedClient }> {
  const sender = await seedClient();
  const receiver = await seedClient();
  receiver.socket.emit('request', sender.id);
  expect(await sender.next()).toEqual(['request', receiver.id]);
  return { sender, receiver };
}

const until = async (check: () => boolean) => {
  for (let i = 0; i < 250 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
};

const offer = { type: 'offer' as const, sdp: 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n' };
const answer = { type: 'answer' as const, sdp: 'v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\n' };
const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
const file = { name: 'notes.txt', size: 1234, type: 'text/plain' };

describe('the socket.io event codecs (sans-IO)', () => {
  const server = serverSocketIoEvents();
  const client = clientSocketIoEvents();

  it("server: emit(event, peerId, data?) arrives as the WebSocket codec's frame", () => {
    expect(JSON.parse(server.receive('request', ['K7PQ2MZA']) as string)).toEqual({
      type: 'request',
      detail: { peer: 'K7PQ2MZA' },
    });
    expect(JSON.parse(server.receive('offer', ['K7PQ2MZA', offer]) as string)).toEqual({
      type: 'offer',
      detail: { peer: 'K7PQ2MZA', data: offer },
    });
    // Arguments past data become keys the codec refuses; no arguments leave `peer` out.
    expect(JSON.parse(server.receive('retry', ['K7PQ2MZA', 1, 2]) as string).detail).toEqual({
      peer: 'K7PQ2MZA',
      data: 1,
      argument3: 2,
    });
    expect(JSON.parse(server.receive(7, []) as string)).toEqual({ type: 7, detail: {} });
  });

  it('server: each message leaves as the seed event', () => {
    const out = (message: object) => server.send(JSON.stringify(message));
    expect(out({ type: 'assign', detail: { peer: 'K7PQ2MZA' } })).toEqual(['assign', 'K7PQ2MZA']);
    expect(out({ type: 'retry', detail: { peer: 'K7PQ2MZA' } })).toEqual(['retry', 'K7PQ2MZA']);
    expect(out({ type: 'answer', detail: { peer: 'K7PQ2MZA', data: answer } })).toEqual(['answer', 'K7PQ2MZA', answer]);
    expect(out({ type: 'response', detail: { peer: 'K7PQ2MZA', data: { error: 'busy' } } })).toEqual([
      'response',
      'K7PQ2MZA',
      { error: 'busy' },
    ]);
    const notice = { peer: 'K7PQ2MZA', event: 'offer' };
    expect(out({ type: 'peer not exists', detail: notice })).toEqual(['peer not exists', notice]);
  });

  it('client: its messages leave as emit(event, peerId, data?) and the server events come back as frames', () => {
    const codec = clientCodec();
    expect(client.send(codec.encode({ type: 'request', detail: { peer: 'K7PQ2MZA' } }))).toEqual([
      'request',
      'K7PQ2MZA',
    ]);
    expect(client.send(codec.encode({ type: 'offer', detail: { peer: 'K7PQ2MZA', data: offer } }))).toEqual([
      'offer',
      'K7PQ2MZA',
      offer,
    ]);
    expect(codec.decode(client.receive('assign', ['K7PQ2MZA']))).toEqual({
      type: 'assign',
      detail: { peer: 'K7PQ2MZA' },
    });
    expect(codec.decode(client.receive('invalid peer id', [{ event: 'request' }]))).toEqual({
      type: 'invalid peer id',
      detail: { event: 'request' },
    });
    expect(() => codec.decode(client.receive('surprise', [1]))).toThrow(/unknown message type/);
  });

  it('send() of a frame that is not a filedrop message throws a TypeError that says what it takes', () => {
    expect(() => server.send('not json')).toThrow(TypeError);
    expect(() => client.send(new Uint8Array([1]))).toThrow(/frames of the filedrop codecs/);
  });

  it('frameEvents carries frames as `message` events, and anything else as JSON', () => {
    expect(frameEvents.send('hi')).toEqual(['message', 'hi']);
    expect(frameEvents.receive('message', ['hi'])).toBe('hi');
    expect(frameEvents.receive('message', [new Uint8Array([1, 2]).buffer])).toEqual(new Uint8Array([1, 2]));
    expect(frameEvents.receive('message', [Buffer.from([3])])).toEqual(new Uint8Array([3]));
    expect(frameEvents.receive('other', [1, 'x'])).toBe('{"event":"other","args":[1,"x"]}');
  });
});

describe('filedrop over socket.io 4: the seed spoken by a plain socket.io-client', () => {
  it.each([['websocket'], ['polling']] as const)('assigns a peer id on connect (%s)', async (transport) => {
    const client = await seedClient({ transports: [transport] });
    expect(isPeerId(client.id)).toBe(true);
    expect(server.filedrop.sessions.has(client.id)).toBe(true);
  });

  it('relays request, response, offer, answer, candidate, retry, progress and done as (fromId, data)', async () => {
    const { sender, receiver } = await linked();
    sender.socket.emit('response', receiver.id, file);
    expect(await receiver.next()).toEqual(['response', sender.id, file]);
    receiver.socket.emit('offer', sender.id, offer);
    expect(await sender.next()).toEqual(['offer', receiver.id, offer]);
    sender.socket.emit('answer', receiver.id, answer);
    expect(await receiver.next()).toEqual(['answer', sender.id, answer]);
    receiver.socket.emit('candidate', sender.id, candidate);
    expect(await sender.next()).toEqual(['candidate', receiver.id, candidate]);
    sender.socket.emit('candidate', receiver.id, candidate);
    expect(await receiver.next()).toEqual(['candidate', sender.id, candidate]);
    sender.socket.emit('retry', receiver.id);
    expect(await receiver.next()).toEqual(['retry', sender.id]);
    receiver.socket.emit('progress', sender.id, { received: 617, total: 1234 });
    expect(await sender.next()).toEqual(['progress', receiver.id, { received: 617, total: 1234 }]);
    sender.socket.emit('done', receiver.id);
    expect(await receiver.next()).toEqual(['done', sender.id]);
    receiver.socket.emit('done', sender.id);
    expect(await sender.next()).toEqual(['done', receiver.id]);
  });

  it('works over HTTP long-polling too', async () => {
    const sender = await seedClient({ transports: ['polling'] });
    const receiver = await seedClient({ transports: ['polling'] });
    receiver.socket.emit('request', sender.id);
    expect(await sender.next()).toEqual(['request', receiver.id]);
    sender.socket.emit('response', receiver.id, file);
    expect((await receiver.next()).slice(0, 2)).toEqual(['response', sender.id]);
  });

  it('keeps relaying after a client upgrades from long-polling to WebSocket', async () => {
    // socket.io-client's default: long-polling first, then the upgrade (engine.io's middlewares run on it too).
    const sender = await seedClient({ transports: ['polling', 'websocket'] });
    const receiver = await seedClient({ transports: ['polling', 'websocket'] });
    for (const client of [sender, receiver]) {
      if (client.socket.io.engine.transport.name !== 'websocket') {
        await new Promise((resolve) => client.socket.io.engine.once('upgrade', resolve));
      }
      expect(client.socket.io.engine.transport.name).toBe('websocket');
    }
    receiver.socket.emit('request', sender.id);
    expect(await sender.next()).toEqual(['request', receiver.id]);
    sender.socket.emit('response', receiver.id, file);
    expect((await receiver.next()).slice(0, 2)).toEqual(['response', sender.id]);
  });

  it('relays a response in the { fileName, fileSize } shape untouched', async () => {
    const { sender, receiver } = await linked();
    sender.socket.emit('response', receiver.id, { fileName: 'photo.jpg', fileSize: 2048 });
    expect(await receiver.next()).toEqual(['response', sender.id, { fileName: 'photo.jpg', fileSize: 2048 }]);
  });

  it('handles what a client emits before its assign arrived, after the assign', async () => {
    const sender = await seedClient();
    const socket = io(base, { reconnection: false, forceNew: true, transports: ['websocket'] });
    sockets.push(socket);
    const early = listen(socket);
    // Emitted at once, as the existing clients do: socket.io sends it once connected.
    socket.emit('request', sender.id);
    const [assign, id] = await early.next();
    expect(assign).toBe('assign');
    expect(await sender.next()).toEqual(['request', id]);
  });

  it('ignores an acknowledgement callback and relays the event', async () => {
    const { sender, receiver } = await linked();
    sender.socket.emit('retry', receiver.id, () => {});
    expect(await receiver.next()).toEqual(['retry', sender.id]);
  });

  describe('errors: each is answered, nothing is forwarded, the connection stays', () => {
    it.each([
      ['a number', [42]],
      ['null', [null]],
      ['an object', [{ id: 'K7PQ2MZA' }]],
      ['nothing', []],
    ])('a peer id that is %s gets `invalid peer id`', async (_, args) => {
      const client = await seedClient();
      client.socket.emit('request', ...args);
      expect(await client.next()).toEqual(['invalid peer id', { event: 'request' }]);
    });

    it('a string peer id nobody holds, in any form, gets `peer not exists`, as from the original server', async () => {
      const client = await seedClient();
      client.socket.emit('offer', 'not-a-code', offer);
      expect(await client.next()).toEqual(['peer not exists', { peer: 'not-a-code', event: 'offer' }]);
    });

    it('an unknown peer gets `peer not exists`', async () => {
      const client = await seedClient();
      const nobody = client.id === 'ZZZZZZZZ' ? 'YYYYYYYY' : 'ZZZZZZZZ';
      client.socket.emit('request', nobody);
      expect(await client.next()).toEqual(['peer not exists', { peer: nobody, event: 'request' }]);
    });

    it('a peer that left gets `peer not exists`, and its partner is told it left', async () => {
      const { sender, receiver } = await linked();
      receiver.socket.disconnect();
      expect(await sender.next()).toEqual(['peer not exists', { peer: receiver.id }]);
      sender.socket.emit('answer', receiver.id, answer);
      expect(await sender.next()).toEqual(['peer not exists', { peer: receiver.id, event: 'answer' }]);
    });

    it('a response to a peer that never asked gets ERR_NOT_PERMITTED', async () => {
      const a = await seedClient();
      const b = await seedClient();
      a.socket.emit('response', b.id, file);
      expect(await a.next()).toEqual([
        'error',
        {
          code: ErrorCode.NotPermitted,
          message: expect.stringContaining('has not sent you a request'),
          event: 'response',
        },
      ]);
      b.socket.emit('offer', a.id, offer);
      expect(await b.next()).toEqual(['error', expect.objectContaining({ code: ErrorCode.NotPermitted })]);
    });

    it('an unknown event gets ERR_UNKNOWN_MESSAGE, as over WebSocket', async () => {
      const client = await seedClient();
      client.socket.emit('upload', client.id, { name: 'x' });
      expect(await client.next()).toEqual([
        'error',
        { code: ErrorCode.UnknownMessage, message: 'unknown message type `upload`' },
      ]);
    });

    it.each([['assign'], ['error'], ['peer not exists']])(
      'the server-only event `%s` gets ERR_NOT_PERMITTED',
      async (event) => {
        const client = await seedClient();
        client.socket.emit(event, client.id);
        expect(await client.next()).toEqual(['error', expect.objectContaining({ code: ErrorCode.NotPermitted })]);
      },
    );

    it.each([
      ['an offer without data', ['offer']],
      ['a candidate nested 40 levels deep', ['candidate', JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`)]],
      ['a request with data', ['request', { name: 'x' }]],
      ['a done with an extra argument', ['done', {}, 'more']],
      ['a retry with an extra argument', ['retry', 1]],
      ['a response with a third argument', ['response', file, 'more']],
    ])('%s gets ERR_INVALID_FIELD', async (_, [event, ...rest]) => {
      const { sender, receiver } = await linked();
      const from = event === 'offer' || event === 'candidate' || event === 'progress' ? receiver : sender;
      const to = from === sender ? receiver : sender;
      from.socket.emit(event as string, to.id, ...rest);
      expect(await from.next()).toEqual([
        'error',
        { code: ErrorCode.InvalidField, message: expect.stringContaining(`${event as string}:`) },
      ]);
    });

    it('a payload over the frame cap gets ERR_FRAME_TOO_LARGE', async () => {
      const { sender, receiver } = await linked();
      sender.socket.emit('response', receiver.id, { ...file, name: 'x'.repeat(70_000) });
      expect(await sender.next()).toEqual(['error', expect.objectContaining({ code: ErrorCode.FrameTooLarge })]);
    });

    it('a packet over maxHttpBufferSize disconnects that client only', async () => {
      const { sender, receiver } = await linked();
      sender.socket.emit('response', receiver.id, { ...file, name: 'x'.repeat(300_000) });
      expect(await sender.disconnected).toMatch(/^transport (close|error)$/);
      expect(await receiver.next()).toEqual(['peer not exists', { peer: sender.id }]);
      receiver.socket.emit('request', receiver.id);
      expect(await receiver.next()).toEqual(['error', expect.objectContaining({ code: ErrorCode.NotPermitted })]);
    });

    /** A raw engine.io / socket.io connection over ws, speaking packets as text (`40` connects, `42[…]` is an event). */
    async function rawSocketIo() {
      const ws = new WebSocket(`ws://127.0.0.1:${server.address.port}/socket.io/?EIO=4&transport=websocket`);
      const packets: string[] = [];
      ws.on('message', (data, isBinary) => packets.push(isBinary ? '<binary>' : data.toString()));
      const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
      await new Promise((resolve) => ws.once('open', resolve));
      ws.send('40');
      await until(() => packets.some((p) => p.startsWith('42["assign"')));
      const events = () => packets.filter((p) => p.startsWith('42')).map((p) => JSON.parse(p.slice(2)) as unknown[]);
      return { ws, packets, closed, events };
    }

    it('packets no socket.io client emits: numeric event names and binary attachments get errors, bad payloads close that client only', async () => {
      const { sender, receiver } = await linked();
      const raw = await rawSocketIo();
      raw.ws.send('42[7,"K7PQ2MZA"]');
      await until(() => raw.events().length > 1);
      expect(raw.events()[1]).toEqual(['error', expect.objectContaining({ code: ErrorCode.InvalidField })]);
      // A binary attachment where the offer belongs: it arrives as Buffer JSON, which the codec refuses.
      raw.ws.send(`451-["offer","${sender.id}",{"_placeholder":true,"num":0}]`);
      raw.ws.send(Buffer.from([1, 2, 3]));
      await until(() => raw.events().length > 2);
      expect(raw.events()[2]).toEqual([
        'error',
        expect.objectContaining({ code: ErrorCode.InvalidField, message: expect.stringContaining('offer:') }),
      ]);
      // With an acknowledgement id: accepted, the ack never called, nothing forwarded to a stranger.
      raw.ws.send(`421["request","${sender.id}"]`);
      expect(await sender.next()).toEqual(['request', expect.any(String)]);
      // A payload socket.io itself refuses (not an array, a reserved event name): that connection closes.
      raw.ws.send('42{"type":"request"}');
      await raw.closed;
      expect(await sender.next()).toEqual(['peer not exists', { peer: expect.any(String) }]);
      const reserved = await rawSocketIo();
      reserved.ws.send('42["disconnect","x"]');
      await reserved.closed;
      // Everyone else is still served.
      receiver.socket.emit('offer', sender.id, offer);
      expect(await sender.next()).toEqual(['offer', receiver.id, offer]);
      expect((await fetch(`${base}/health`)).status).toBe(200);
    });

    it('the connection and the server stay up after every error', async () => {
      const { sender, receiver } = await linked();
      receiver.socket.emit('nonsense');
      receiver.socket.emit('request', 7);
      receiver.socket.emit('offer', sender.id);
      receiver.socket.emit('error', 'boom');
      for (let i = 0; i < 4; i++) expect((await receiver.next())[0]).not.toBe('offer');
      receiver.socket.emit('offer', sender.id, offer);
      expect(await sender.next()).toEqual(['offer', receiver.id, offer]);
      expect(receiver.socket.connected).toBe(true);
      const health = await fetch(`${base}/health`);
      expect(health.status).toBe(200);
    });
  });

  it('drops the session and the registry entries when a socket.io client disconnects', async () => {
    await until(() => server.filedrop.stats().connections === 0);
    const { sender, receiver } = await linked();
    expect(server.filedrop.stats()).toEqual({ connections: 2, pairs: 1 });
    expect(server.health().connections.filedrop).toBe(2);
    receiver.socket.disconnect();
    sender.socket.disconnect();
    await until(() => server.filedrop.stats().connections === 0);
    expect(server.filedrop.stats()).toEqual({ connections: 0, pairs: 0 });
    expect(server.filedrop.sessions.has(sender.id)).toBe(false);
    expect(server.filedrop.sessions.has(receiver.id)).toBe(false);
    expect(server.health().connections.filedrop).toBe(0);
  });

  it('a socket.io client and a WebSocket client exchange signalling through one filedrop server', async () => {
    const sender = await seedClient();
    const ws = await rawClient(await webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`));
    try {
      ws.send({ type: 'request', detail: { peer: sender.id } });
      expect(await sender.next()).toEqual(['request', ws.id]);
      sender.socket.emit('response', ws.id, file);
      expect(await ws.next()).toEqual({ type: 'response', detail: { peer: sender.id, data: file } });
      ws.send({ type: 'offer', detail: { peer: sender.id, data: offer } });
      expect(await sender.next()).toEqual(['offer', ws.id, offer]);
      sender.socket.emit('answer', ws.id, answer);
      expect(await ws.next()).toEqual({ type: 'answer', detail: { peer: sender.id, data: answer } });
      ws.send({ type: 'candidate', detail: { peer: sender.id, data: candidate } });
      expect(await sender.next()).toEqual(['candidate', ws.id, candidate]);
      sender.socket.disconnect();
      expect(await ws.next()).toEqual({ type: 'peer not exists', detail: { peer: sender.id } });
    } finally {
      ws.transport.close();
    }
  });

  it('leaves the rest of the HTTP server alone: /health, 404s, and upgrades nobody serves', async () => {
    const polling = await fetch(`${base}/socket.io/?EIO=4&transport=polling`);
    expect(polling.status).toBe(200);
    expect(await polling.text()).toMatch(/^0\{"sid":/);
    expect((await fetch(`${base}/health`)).status).toBe(200);
    expect((await fetch(`${base}/nowhere`)).status).toBe(404);
    const refused = await new Promise<number>((resolve) => {
      const socket = new WebSocket(`ws://127.0.0.1:${server.address.port}/nowhere`);
      socket.on('unexpected-response', (_, response) => resolve(response.statusCode ?? 0));
      socket.on('error', () => {});
    });
    expect(refused).toBe(404);
  });
});

describe('startServer and socket.io', () => {
  it('closing the server disconnects socket.io clients and leaves no session', async () => {
    const own = await startServer({ port: 0, host: '127.0.0.1' });
    const client = await seedClient({}, `http://127.0.0.1:${own.address.port}`);
    expect(own.filedrop.sessions.has(client.id)).toBe(true);
    await own.close();
    expect(await client.disconnected).toBe('io server disconnect');
    expect(own.filedrop.sessions.size).toBe(0);
    expect(own.filedrop.stats()).toEqual({ connections: 0, pairs: 0 });
    expect(own.http.listening).toBe(false);
  });

  it('filedropSocketIo: false serves no socket.io, and its upgrades are refused', async () => {
    const own = await startServer({ port: 0, host: '127.0.0.1', filedropSocketIo: false });
    try {
      const url = `http://127.0.0.1:${own.address.port}`;
      expect((await fetch(`${url}/socket.io/?EIO=4&transport=polling`)).status).toBe(404);
      const socket = io(url, { reconnection: false, forceNew: true, transports: ['websocket'] });
      sockets.push(socket);
      const error = await new Promise<Error>((resolve) => socket.once('connect_error', resolve));
      expect(error.message).toMatch(/websocket error/);
      expect(own.filedrop.stats().connections).toBe(0);
    } finally {
      await own.close();
    }
  });
});

describe('socketIoServer on an HTTP server of its own', () => {
  let http: Server;
  let port: number;
  const original = () => {};

  beforeAll(async () => {
    http = createServer((_, res) => res.writeHead(404).end());
    http.on('request', original);
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    port = (http.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => http.close(() => resolve())));

  it('close() disconnects every client, then gives the HTTP server back as it found it', async () => {
    const listeners = (['request', 'upgrade', 'close', 'listening'] as const).map((e) => http.listeners(e));
    const transports = socketIoServer({ server: http, events: serverSocketIoEvents() });
    expect(http.listeners('request')).not.toEqual(listeners[0]);
    const accepted = new Promise<TransportServerEvents['connection']>((resolve) =>
      transports.on('connection', resolve),
    );
    const socket = io(`http://127.0.0.1:${port}`, { reconnection: false, forceNew: true, transports: ['websocket'] });
    sockets.push(socket);
    const { transport, info } = await accepted;
    expect(info.path).toBe('/socket.io/');
    expect(info.query.get('EIO')).toBe('4');
    expect(info.remoteAddress).toMatch(/127\.0\.0\.1/);
    expect(transports.connections).toBe(1);
    const disconnected = new Promise((resolve) => socket.once('disconnect', resolve));
    const closed = new Promise((resolve) => transport.on('close', resolve));
    await transports.close();
    expect(await closed).toEqual({ code: 1001, reason: 'server closing', initiator: 'local' });
    expect(await disconnected).toBe('io server disconnect');
    expect(transports.connections).toBe(0);
    expect((['request', 'upgrade', 'close', 'listening'] as const).map((e) => http.listeners(e))).toEqual(listeners);
    expect(http.listening).toBe(true);
    expect((await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`)).status).toBe(404);
  });

  it('a lost connection closes the client transport with 1006, and socket.io does not reconnect', async () => {
    const transports = socketIoServer({ server: http });
    try {
      const accepted = new Promise<Transport>((resolve) => transports.on('connection', (c) => resolve(c.transport)));
      // Reconnection on, as io() defaults: a reconnect would be a new session with a new id.
      const socket = io(`http://127.0.0.1:${port}`, { forceNew: true, transports: ['websocket'] });
      sockets.push(socket);
      const client = await socketIoTransport(socket);
      const server = await accepted;
      const closed = new Promise((resolve) => client.on('close', resolve));
      const serverClosed = new Promise((resolve) => server.on('close', resolve));
      // Cut the engine.io connection under socket.io, as a network failure would.
      for (const socket of transports.io.sockets.sockets.values()) socket.conn.close();
      expect(await closed).toEqual({ code: 1006, reason: 'transport close', initiator: 'remote' });
      expect(await serverClosed).toMatchObject({ initiator: 'remote' });
      expect(socket.active).toBe(false);
      expect(client.isOpen).toBe(false);
    } finally {
      await transports.close();
    }
  });

  it("lets go of a WebSocket upgrade's request once connected; middlewares still add headers to the upgrade", async () => {
    const transports = socketIoServer({ server: http });
    const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`);
    try {
      const standIns: Array<{ req: unknown }> = [];
      transports.io.engine.use((_req: IncomingMessage, res: ServerResponse, next: () => void) => {
        // An upgrade's middlewares get engine.io's stand-in, not a ServerResponse.
        const response: object = res;
        if (!(response instanceof ServerResponse)) {
          standIns.push(response as { req: unknown });
          res.setHeader('x-upgrade', 'seen');
        }
        next();
      });
      const accepted = new Promise<TransportServerEvents['connection']>((resolve) =>
        transports.on('connection', resolve),
      );
      const upgrade = new Promise<IncomingMessage>((resolve) => ws.once('upgrade', resolve));
      // engine.io's open packet, then socket.io's CONNECT to the main namespace.
      ws.once('message', () => ws.send('40'));
      expect((await upgrade).headers['x-upgrade']).toBe('seen');
      const { transport, info } = await accepted;
      expect(transport.isOpen).toBe(true);
      expect(standIns).toHaveLength(1);
      expect(standIns[0]!.req).toBeNull();
      const [socket] = transports.io.sockets.sockets.values();
      expect(socket!.conn.request).toBeNull();
      // What the connection needs from the request was taken before.
      expect(info.headers.upgrade).toBe('websocket');
    } finally {
      ws.terminate();
      await transports.close();
    }
  });

  it('rejectUnroutedUpgrades leaves socket.io upgrades to socket.io', async () => {
    const ws = webSocketServer({ server: http, path: '/other' });
    const stop = rejectUnroutedUpgrades(http);
    const transports = socketIoServer({ server: http });
    try {
      const socket = io(`http://127.0.0.1:${port}`, { reconnection: false, forceNew: true, transports: ['websocket'] });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
      expect(socket.connected).toBe(true);
    } finally {
      stop();
      await transports.close();
      await ws.close();
    }
  });
});

describe('socketIoTransport (the client adapter)', () => {
  it('rejects with ERR_CONNECT_FAILED when the server refuses, and stops the socket', async () => {
    const socket = io(`${base}/no-such-namespace`, { reconnection: true, forceNew: true, transports: ['websocket'] });
    sockets.push(socket);
    const error = await socketIoTransport(socket).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TransportError);
    expect((error as TransportError).code).toBe(ErrorCode.ConnectFailed);
    expect(socket.active).toBe(false);
  });

  it('carries filedrop messages with the client events: assign, request, and the close', async () => {
    const sender = await seedClient();
    const socket = io(base, { forceNew: true, transports: ['websocket'] });
    sockets.push(socket);
    const transport = await socketIoTransport(socket, { events: clientSocketIoEvents() });
    const codec = clientCodec();
    const frames: Array<ReturnType<typeof codec.decode>> = [];
    transport.on('message', (frame) => frames.push(codec.decode(frame)));
    await until(() => frames.length > 0);
    expect(frames[0]).toEqual({ type: 'assign', detail: { peer: expect.any(String) } });
    const id = (frames[0] as { detail: { peer: string } }).detail.peer;
    transport.send(codec.encode({ type: 'request', detail: { peer: sender.id } }));
    expect(await sender.next()).toEqual(['request', id]);
    sender.socket.emit('response', id, file);
    await until(() => frames.length > 1);
    expect(frames[1]).toEqual({ type: 'response', detail: { peer: sender.id, data: file } });
    const closed = new Promise((resolve) => transport.on('close', resolve));
    transport.close();
    expect(await closed).toEqual({ code: 1000, reason: '', initiator: 'local' });
    expect(socket.connected).toBe(false);
    // The adapter left no listener on the socket.
    expect(socket.listenersAny()).toEqual([]);
    expect(['connect', 'connect_error', 'disconnect'].map((event) => socket.listeners(event).length)).toEqual([
      0, 0, 0,
    ]);
    expect(await sender.next()).toEqual(['peer not exists', { peer: id }]);
    expect(() => transport.send('{}')).toThrow(TransportError);
  });
});

/** A socketIoServer on its own HTTP server with the frame events, and a socketIoTransport connected to it. */
async function compliancePair() {
  const http = createServer((_, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const transports: SocketIoTransportServer = socketIoServer({ server: http });
  const accepted = new Promise<Transport>((resolve) => transports.on('connection', (c) => resolve(c.transport)));
  const socket = io(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, {
    reconnection: false,
    forceNew: true,
    transports: ['websocket'],
  });
  const a = await socketIoTransport(socket, { events: frameEvents });
  const b = await accepted;
  return {
    a,
    b,
    teardown: async () => {
      await transports.close();
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

// socket.io has no close codes: a disconnect reads as 1000 (asked for) or 1006 (lost).
transportCompliance('socketIoTransport ↔ socketIoServer (frameEvents)', compliancePair, { closeCode: false });

describe('filedrop end to end over socket.io: real server, werift and node-datachannel, bytes and SHA-256 equal', () => {
  const actors: Array<{ stop(): void }> = [];
  afterAll(() => {
    for (const actor of actors) actor.stop();
  });

  const overSocketIo = () =>
    fromTransport(
      () =>
        socketIoTransport(io(base, { reconnection: false, forceNew: true, transports: ['websocket'] }), {
          events: clientSocketIoEvents(),
        }),
      clientCodec(),
    );
  const overWebSocket = () =>
    fromTransport(() => webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`), clientCodec());
  type Backend = 'werift' | 'node-datachannel';
  const rtc = (backend: Backend) =>
    fromRtc(
      backend === 'werift'
        ? { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true }
        : { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK, trickle: true },
    );

  async function transfer(
    size: number,
    [senderSignalling, senderBackend]: [typeof overSocketIo, Backend],
    [receiverSignalling, receiverBackend]: [typeof overSocketIo, Backend],
  ) {
    const data = bytes(size, 7);
    const sender = createActor(
      filedropSender.provide({ actors: { signalling: senderSignalling(), rtc: rtc(senderBackend) } }),
      { input: { source: memorySource(data, { name: 'ten.bin', type: 'application/octet-stream' }), once: true } },
    );
    const progress: SenderEmitted[] = [];
    sender.on('progress', (e: SenderEmitted) => progress.push(e));
    actors.push(sender.start());
    const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;
    const sink = memorySink();
    const receiver = createActor(
      filedropReceiver.provide({ actors: { signalling: receiverSignalling(), rtc: rtc(receiverBackend) } }),
      { input: { code, sink } },
    );
    actors.push(receiver.start());
    await waitFor(receiver, (s) => s.status === 'done', { timeout: 30_000 });
    expect(receiver.getSnapshot().context.error).toBeUndefined();
    expect(receiver.getSnapshot().value).toBe('done');
    await waitFor(sender, (s) => s.status === 'done', { timeout: 5000 });
    expect(sender.getSnapshot().value).toBe('done');
    const received = sink.bytes();
    expect(received.byteLength).toBe(data.byteLength);
    expect(sha256Hex(received)).toBe(sha256Hex(data));
    expect(Buffer.compare(received, data)).toBe(0);
    expect(progress.at(-1)).toMatchObject({ detail: { received: data.byteLength } });
    await until(() => server.filedrop.stats().connections === 0);
    expect(server.filedrop.stats()).toEqual({ connections: 0, pairs: 0 });
  }

  const TEN_MIB = 10 * 1024 * 1024;

  it('10 MiB werift → werift, both signalling over socket.io', async () => {
    await transfer(TEN_MIB, [overSocketIo, 'werift'], [overSocketIo, 'werift']);
  }, 60_000);

  it('10 MiB node-datachannel → werift, both signalling over socket.io', async () => {
    await transfer(TEN_MIB, [overSocketIo, 'node-datachannel'], [overSocketIo, 'werift']);
  }, 60_000);

  it('10 MiB werift → node-datachannel, both signalling over socket.io', async () => {
    await transfer(TEN_MIB, [overSocketIo, 'werift'], [overSocketIo, 'node-datachannel']);
  }, 60_000);

  it('1 MiB werift → werift, the sender on socket.io and the receiver on WebSocket', async () => {
    await transfer(1024 * 1024, [overSocketIo, 'werift'], [overWebSocket, 'werift']);
  }, 60_000);
});

// ---- clients written against the seed alone --------------------------------------------------

/** Resolves after `ms`. */
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What both seed-only clients share: a socket, and a werift peer connection whose candidates go to `peer()`. */
function seedPeer(peer: () => string | undefined, useRemoteCandidates = true) {
  const socket = io(base, { reconnection: false, forceNew: true, transports: ['websocket'] });
  sockets.push(socket);
  const pc = new WeriftPeerConnection(WERIFT_LOOPBACK);
  // Every candidate, and the end of gathering as `null`, as browsers' onicecandidate reports them.
  pc.onicecandidate = ({ candidate }) => {
    const to = peer();
    if (to) socket.emit('candidate', to, candidate ? candidate.toJSON() : null);
  };
  socket.on('candidate', (from: string, data: unknown) => {
    if (from === peer() && data && useRemoteCandidates) void pc.addIceCandidate(data as { candidate: string });
  });
  const assigned = new Promise<string>((resolve) => socket.once('assign', resolve));
  return { socket, pc, assigned };
}

/**
 * A sender that speaks the seed with socket.io-client and werift, and no
 * signalbox code: it answers a `request` with `{ fileName, fileSize }`, the
 * offer with an answer, sends the file on the receiver's data channel as
 * 4-byte sequence numbers followed by 16 KiB of data, then `done` (no data),
 * as the original project's clients do. `heard` lists the events it got.
 */
async function seedSender(data: Uint8Array, fileName: string) {
  let peer: string | undefined;
  const { socket, pc, assigned } = seedPeer(() => peer);
  const heard: Array<[string, ...unknown[]]> = [];
  socket.onAny((event: string, ...args: unknown[]) => heard.push([event, ...args]));
  socket.on('request', (from: string) => {
    peer ??= from;
    if (from === peer) socket.emit('response', from, { fileName, fileSize: data.byteLength });
  });
  socket.on('offer', async (from: string, offer: { type: 'offer'; sdp: string }) => {
    if (from !== peer) return;
    await pc.setRemoteDescription(offer);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    socket.emit('answer', from, { type: 'answer', sdp: answer.sdp });
  });
  pc.ondatachannel = ({ channel }) => {
    const send = async () => {
      for (let seq = 0, offset = 0; offset < data.byteLength; seq++, offset += 16384) {
        while (channel.bufferedAmount > 256 * 1024) await pause(5);
        const chunk = data.subarray(offset, offset + 16384);
        const frame = Buffer.alloc(4 + chunk.byteLength);
        frame.writeUInt32BE(seq, 0);
        frame.set(chunk, 4);
        channel.send(frame);
      }
      socket.emit('done', peer);
    };
    if (channel.readyState === 'open') void send();
    else channel.onopen = () => void send();
  };
  return { id: await assigned, socket, pc, heard };
}

/**
 * The matching receiver: `request`, then an offer with a data channel once
 * the `response` came; it keeps the bytes, and answers `done` (no data) once
 * it has them all, as the original project's clients do. It never reports
 * `progress` unless `reportDone` (then once, `done: true`, at the end). With
 * `candidatesFirst` it sends all its candidates before its offer, which the
 * seed allows; with `ignoreCandidates` it does not use the sender's, so
 * that the connection depends on the sender using ours. `emitted` lists the
 * events it emitted, in order.
 */
async function seedReceiver(
  code: string,
  options: { candidatesFirst?: boolean; reportDone?: boolean; ignoreCandidates?: boolean } = {},
) {
  const { socket, pc, assigned } = seedPeer(() => code, !options.ignoreCandidates);
  const emitted: string[] = [];
  socket.onAnyOutgoing((event: string) => emitted.push(event));
  const heard: Array<[string, ...unknown[]]> = [];
  socket.onAny((event: string, ...args: unknown[]) => heard.push([event, ...args]));
  const channel = pc.createDataChannel('fileTransfer');
  const info = new Promise<{ fileName: string; fileSize: number }>((resolve) =>
    socket.on('response', (from: string, file: { fileName: string; fileSize: number }) => {
      if (from === code) resolve(file);
    }),
  );
  socket.on('answer', (from: string, answer: { type: 'answer'; sdp: string }) => {
    if (from === code) void pc.setRemoteDescription(answer);
  });
  await assigned;
  socket.emit('request', code);
  const { fileSize } = await info;
  const received = new Uint8Array(fileSize);
  const bytes = new Promise<Uint8Array>((resolve, reject) => {
    let count = 0;
    channel.onmessage = ({ data }) => {
      const frame = data as Buffer;
      const seq = frame.readUInt32BE(0);
      if (seq * 16384 !== count) reject(new Error(`chunk ${seq} out of order`));
      received.set(frame.subarray(4), count);
      count += frame.byteLength - 4;
      if (count >= fileSize) {
        if (options.reportDone) socket.emit('progress', code, { received: count, total: fileSize, done: true });
        socket.emit('done', code);
        resolve(received);
      }
    };
  });
  const gathered = new Promise<void>((resolve) => {
    pc.iceGatheringStateChange.subscribe((state) => state === 'complete' && resolve());
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  if (options.candidatesFirst) await gathered;
  socket.emit('offer', code, { type: 'offer', sdp: pc.localDescription!.sdp });
  return { socket, pc, info: await info, bytes, emitted, heard };
}

describe('existing socket.io clients of the seed work against signalbox unchanged (werift, loopback)', () => {
  it('a seed-only sender and a seed-only receiver exchange 1 MiB through the server', async () => {
    const data = bytes(1024 * 1024, 11);
    const sender = await seedSender(data, 'seed.bin');
    const receiver = await seedReceiver(sender.id);
    try {
      expect(receiver.info).toMatchObject({ fileName: 'seed.bin', fileSize: data.byteLength });
      const received = await receiver.bytes;
      expect(sha256Hex(received)).toBe(sha256Hex(data));
      expect(Buffer.compare(received, data)).toBe(0);
    } finally {
      receiver.socket.disconnect();
      sender.socket.disconnect();
      await Promise.all([receiver.pc.close(), sender.pc.close()]);
    }
    await until(() => server.filedrop.stats().connections === 0);
    expect(server.filedrop.stats()).toEqual({ connections: 0, pairs: 0 });
  }, 30_000);

  it('a signalbox filedropSender and a seed-only receiver that sends its candidates before its offer, never reports progress and ends with done', async () => {
    const data = bytes(1024 * 1024, 17);
    const sender = createActor(
      filedropSender.provide({
        actors: {
          signalling: fromTransport(
            () =>
              socketIoTransport(io(base, { reconnection: false, forceNew: true, transports: ['websocket'] }), {
                events: clientSocketIoEvents(),
              }),
            clientCodec(),
          ),
          rtc: fromRtc({ RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true }),
        },
      }),
      // A window far below the file: a receiver that never reports must not be held to it.
      { input: { source: memorySource(data, { name: 'early.bin' }), once: true, window: 64 * 1024 } },
    );
    sender.start();
    const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;
    // It ignores the sender's candidates: only its own, all sent before the offer, can connect the two.
    const receiver = await seedReceiver(code, { candidatesFirst: true, ignoreCandidates: true });
    try {
      expect(receiver.info).toMatchObject({ fileName: 'early.bin', fileSize: data.byteLength });
      // request, then every candidate, then the offer.
      const offerAt = receiver.emitted.indexOf('offer');
      expect(receiver.emitted[0]).toBe('request');
      expect(receiver.emitted.slice(1, offerAt).length).toBeGreaterThan(0);
      expect(new Set(receiver.emitted.slice(1, offerAt))).toEqual(new Set(['candidate']));
      const received = await receiver.bytes;
      expect(Buffer.compare(received, data)).toBe(0);
      // Its `done` (it has everything) is the sender's success: no progress came.
      await waitFor(sender, (s) => s.status === 'done', { timeout: 5000 });
      expect(sender.getSnapshot().value).toBe('done');
      expect(receiver.emitted).not.toContain('progress');
      // The sender's own `done` after the last chunk carried the digest, which that receiver ignores.
      expect(receiver.heard).toContainEqual(['done', code, { sha256: sha256Hex(data) }]);
    } finally {
      sender.stop();
      receiver.socket.disconnect();
      await receiver.pc.close();
    }
  }, 30_000);

  it('a signalbox filedropReceiver holding part of a file asks a seed-only sender to resume; the sender ignores the offset and sends from 0; the file is right', async () => {
    const data = bytes(512 * 1024, 19);
    const sender = await seedSender(data, 'part.bin');
    // Bytes that are not the file's start: kept, they would make the file wrong.
    const sink = memorySink({ stored: bytes(100_000, 5) });
    const receiver = createActor(
      filedropReceiver.provide({
        actors: {
          signalling: fromTransport(
            () =>
              socketIoTransport(io(base, { reconnection: false, forceNew: true, transports: ['websocket'] }), {
                events: clientSocketIoEvents(),
              }),
            clientCodec(),
          ),
          rtc: fromRtc({ RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true }),
        },
      }),
      { input: { code: sender.id, sink } },
    );
    const resumed: unknown[] = [];
    receiver.on('resumed', (event) => resumed.push(event.detail));
    try {
      receiver.start();
      await waitFor(receiver, (s) => s.status === 'done', { timeout: 20_000 });
      expect(receiver.getSnapshot().context.error).toBeUndefined();
      // The offer named the offset (an extra key the seed's sender passed to setRemoteDescription as it came).
      const offer = sender.heard.find(([event]) => event === 'offer');
      expect(offer?.[2]).toMatchObject({ type: 'offer', offset: 6 * 16384 });
      expect(resumed).toEqual([{ offset: 0 }]);
      expect(Buffer.compare(sink.bytes(), data)).toBe(0);
    } finally {
      receiver.stop();
      sender.socket.disconnect();
      await sender.pc.close();
    }
  }, 30_000);

  // The seed sender sends the moment its channel opens, so on werift the receiver (the offerer)
  // gets the first chunks before its own channel's `open` event: the rtc actor must keep them.
  it.each([
    ['werift', { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK }],
    ['node-datachannel', { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK }],
  ] as const)(
    'a seed-only sender and a signalbox filedropReceiver on %s over socket.io exchange 1 MiB',
    async (_, backend) => {
      const data = bytes(1024 * 1024, 13);
      const sender = await seedSender(data, 'legacy.bin');
      const sink = memorySink();
      const receiver = createActor(
        filedropReceiver.provide({
          actors: {
            signalling: fromTransport(
              () =>
                socketIoTransport(io(base, { reconnection: false, forceNew: true, transports: ['websocket'] }), {
                  events: clientSocketIoEvents(),
                }),
              clientCodec(),
            ),
            rtc: fromRtc({ ...backend, trickle: true }),
          },
        }),
        { input: { code: sender.id, sink } },
      );
      const completed: unknown[] = [];
      receiver.on('completed', (event) => completed.push(event.detail));
      try {
        receiver.start();
        await waitFor(receiver, (s) => s.status === 'done', { timeout: 20_000 });
        expect(receiver.getSnapshot().context.error).toBeUndefined();
        expect(receiver.getSnapshot().value).toBe('done');
        expect(Buffer.compare(sink.bytes(), data)).toBe(0);
        // No digest was announced: the size was checked, and the receiver says only that.
        expect(completed).toEqual([
          { file: { name: 'legacy.bin', size: data.byteLength, type: '' }, sha256: sha256Hex(data), verified: false },
        ]);
        // It answers with our verdict and with the original's `done`.
        await until(() => sender.heard.some(([event]) => event === 'done'));
        expect(sender.heard.filter(([event]) => event === 'progress' || event === 'done').slice(-2)).toEqual([
          ['progress', expect.any(String), { received: data.byteLength, total: data.byteLength, done: true }],
          ['done', expect.any(String)],
        ]);
      } finally {
        receiver.stop();
        sender.socket.disconnect();
        await sender.pc.close();
      }
    },
    30_000,
  );
});
