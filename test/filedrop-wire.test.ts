/**
 * Wire fidelity for filedrop: frames as other implementations send them
 * (the seed says `string, any` for every payload) go through the real
 * server on 127.0.0.1, over raw WebSocket and over socket.io-client alike,
 * and the other side gets them JSON-equal to what was sent. Then our own
 * sender and receiver machines against a raw client that sends the other
 * forms (SDP text, candidate strings, `null` candidates, the original's file
 * info, foreign progress, `done`).
 */
import { io, type Socket } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { createActor, waitFor } from 'xstate';
import { socketIoTransport } from '../adapters/socket-io/client.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { memorySink, memorySource, sha256Hex } from '../machines/transfer/files.js';
import { filedropReceiver, type ReceiverEmitted } from '../machines/filedrop/receiver.machine.js';
import { filedropSender } from '../machines/filedrop/sender.machine.js';
import { clientSocketIoEvents } from '../machines/filedrop/socket-io.js';
import { fromRtc } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import { bytes, rawClient } from './filedrop-helpers.js';
import { until } from './socket-helpers.js';
import { WERIFT_LOOPBACK } from './rtc-helpers.js';

let server: SignalboxServer;
let base: string;
const cleanups: Array<() => void> = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${server.address.port}`;
});
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});
afterAll(async () => {
  await server.close();
  await new Promise((resolve) => setTimeout(resolve, 100));
});

/** What one end got: the event, who it came from, and its data if it had any. */
interface Got {
  type: string;
  from?: unknown;
  data?: unknown;
  /** Whether a data argument (or `detail.data`) was there at all. */
  hasData: boolean;
}

/** A client of the seed with no signalbox code: raw JSON frames over WebSocket, or socket.io-client events. */
interface WireEnd {
  readonly id: string;
  readonly kind: 'WebSocket' | 'socket.io';
  /** Sends `type` to `peer`, with `data` unless it is {@link NO_DATA}. */
  send(type: string, peer: unknown, data?: unknown): void;
  next(ms?: number): Promise<Got>;
}

const NO_DATA = Symbol('no data');

function queue<T>() {
  const inbox: T[] = [];
  const waiters: Array<(item: T) => void> = [];
  return {
    push(item: T) {
      const waiter = waiters.shift();
      if (waiter) waiter(item);
      else inbox.push(item);
    },
    next(ms = 3000): Promise<T> {
      const queued = inbox.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      return new Promise<T>((resolve, reject) => {
        const done = (item: T) => {
          clearTimeout(timer);
          resolve(item);
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(done), 1);
          reject(new Error(`nothing within ${ms} ms`));
        }, ms);
        waiters.push(done);
      });
    },
  };
}

async function webSocketEnd(): Promise<WireEnd> {
  const client = await rawClient(await webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`));
  cleanups.push(() => client.transport.close());
  return {
    id: client.id,
    kind: 'WebSocket',
    send(type, peer, data = NO_DATA) {
      client.send({ type, detail: data === NO_DATA ? { peer } : { peer, data } });
    },
    async next(ms) {
      const frame = await client.next(ms);
      const detail = frame.detail ?? {};
      const notice = ['invalid peer id', 'peer not exists', 'error'].includes(frame.type);
      if (notice) return { type: frame.type, data: detail, hasData: true };
      return { type: frame.type, from: detail.peer, data: detail.data, hasData: 'data' in detail };
    },
  };
}

async function socketIoEnd(): Promise<WireEnd> {
  const socket: Socket = io(base, { reconnection: false, forceNew: true, transports: ['websocket'] });
  cleanups.push(() => socket.disconnect());
  const got = queue<Got>();
  socket.onAny((type: string, ...args: unknown[]) => {
    const notice = ['invalid peer id', 'peer not exists', 'error'].includes(type);
    if (notice) got.push({ type, data: args[0], hasData: args.length > 0 });
    else got.push({ type, from: args[0], data: args[1], hasData: args.length > 1 });
  });
  const assign = await got.next();
  expect(assign.type).toBe('assign');
  return {
    id: assign.from as string,
    kind: 'socket.io',
    send(type, peer, data = NO_DATA) {
      if (data === NO_DATA) socket.emit(type, peer);
      else socket.emit(type, peer, data);
    },
    next: (ms) => got.next(ms),
  };
}

const ends = { WebSocket: webSocketEnd, 'socket.io': socketIoEnd } as const;
type Kind = keyof typeof ends;
const pairs: Array<[Kind, Kind]> = [
  ['WebSocket', 'WebSocket'],
  ['socket.io', 'socket.io'],
  ['WebSocket', 'socket.io'],
  ['socket.io', 'WebSocket'],
];

/** A sender end and a receiver end, the receiver having sent `request`. */
async function linked(senderKind: Kind, receiverKind: Kind) {
  const sender = await ends[senderKind]();
  const receiver = await ends[receiverKind]();
  receiver.send('request', sender.id);
  expect(await sender.next()).toEqual({ type: 'request', from: receiver.id, hasData: false });
  return { sender, receiver };
}

const SDP = 'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n';
const DIGEST = sha256Hex(new Uint8Array([1, 2, 3]));

/** Frames as other implementations send them: who sends, the event, and the data (or none). */
const fixtures: Array<{ name: string; by: 'sender' | 'receiver'; type: string; data: unknown }> = [
  { name: "the original's file info", by: 'sender', type: 'response', data: { fileName: 'photo.jpg', fileSize: 2048 } },
  {
    name: 'a file info with extra fields, nested',
    by: 'sender',
    type: 'response',
    data: { name: 'a.bin', size: 3, type: '', sha256: DIGEST, lastModified: 1e12, tags: ['x', { y: null }] },
  },
  {
    name: 'a file info in another alphabet',
    by: 'sender',
    type: 'response',
    data: { fileName: 'naïve 😀 файл.txt', fileSize: 1 },
  },
  {
    name: 'a file whose digest follows',
    by: 'sender',
    type: 'response',
    data: { name: 'a', size: 1, trailer: 'sha256' },
  },
  { name: 'a refusal', by: 'sender', type: 'response', data: { error: 'busy' } },
  { name: 'a response that is a string', by: 'sender', type: 'response', data: 'photo.jpg' },
  { name: 'an offer as SDP text', by: 'receiver', type: 'offer', data: SDP },
  { name: 'an offer as { type, sdp }', by: 'receiver', type: 'offer', data: { type: 'offer', sdp: SDP } },
  { name: 'an answer as SDP text', by: 'sender', type: 'answer', data: SDP },
  { name: 'an answer with extra fields', by: 'sender', type: 'answer', data: { type: 'answer', sdp: SDP, x: 1 } },
  {
    name: 'an RTCIceCandidateInit',
    by: 'receiver',
    type: 'candidate',
    data: {
      candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host',
      sdpMid: '0',
      sdpMLineIndex: 0,
      usernameFragment: 'abcd',
    },
  },
  { name: 'a candidate string', by: 'sender', type: 'candidate', data: 'candidate:1 1 udp 1 127.0.0.1 9 typ host' },
  { name: 'the end of candidates (null)', by: 'receiver', type: 'candidate', data: null },
  { name: 'the end of candidates ({ candidate: "" })', by: 'sender', type: 'candidate', data: { candidate: '' } },
  { name: "a progress of another client's shape", by: 'receiver', type: 'progress', data: { received: 65536 } },
  { name: 'a progress as a fraction', by: 'receiver', type: 'progress', data: 0.5 },
  { name: 'a progress as text', by: 'receiver', type: 'progress', data: '50%' },
  { name: 'our verdict', by: 'receiver', type: 'progress', data: { received: 3, total: 3, done: true } },
  { name: "the original sender's done", by: 'sender', type: 'done', data: NO_DATA },
  { name: "the original receiver's done", by: 'receiver', type: 'done', data: NO_DATA },
  { name: 'our sender done, with the digest', by: 'sender', type: 'done', data: { sha256: DIGEST } },
  { name: 'a retry', by: 'sender', type: 'retry', data: NO_DATA },
  {
    name: 'data nested 32 levels deep (the most relayed)',
    by: 'receiver',
    type: 'progress',
    data: JSON.parse(`${'['.repeat(31)}{"a":1}${']'.repeat(31)}`),
  },
];

describe.each(pairs)('filedrop wire fixtures: %s sender, %s receiver, through the real server', (s, r) => {
  it.each(fixtures)('relays $name ($type) exactly as sent', async ({ by, type, data }) => {
    const { sender, receiver } = await linked(s, r);
    const [from, to] = by === 'sender' ? [sender, receiver] : [receiver, sender];
    from.send(type, to.id, data);
    const got = await to.next();
    // JSON-equal: what arrives is what was sent, once both are written as JSON.
    expect(JSON.stringify(got)).toBe(
      JSON.stringify(
        data === NO_DATA ? { type, from: from.id, hasData: false } : { type, from: from.id, data, hasData: true },
      ),
    );
  });

  it('answers any string id nobody holds with peer not exists, and only a non-string with invalid peer id', async () => {
    const { sender, receiver } = await linked(s, r);
    for (const nobody of ['k7pq-0oil', 'ZZZZZZZZ', 'a peer from another server']) {
      receiver.send('offer', nobody, SDP);
      expect(await receiver.next()).toEqual({
        type: 'peer not exists',
        data: { peer: nobody, event: 'offer' },
        hasData: true,
      });
    }
    sender.send('answer', 42, SDP);
    expect(await sender.next()).toEqual({ type: 'invalid peer id', data: { event: 'answer' }, hasData: true });
  });
});

describe("the client codec reads the original server's notices, which carry nothing", () => {
  it.each([
    ['WebSocket', (type: string) => JSON.stringify({ type })],
    ['socket.io', (type: string) => clientSocketIoEvents().receive(type, []) as string],
  ])('over %s', (_, frame) => {
    const codec = clientCodec();
    expect(codec.decode(frame('peer not exists'))).toEqual({ type: 'peer not exists', detail: {} });
    expect(codec.decode(frame('invalid peer id'))).toEqual({ type: 'invalid peer id', detail: {} });
  });
});

// ---- our machines against a raw client that sends the other forms ------------------------------

/** A signalling actor for our machines over `kind`. */
function signalling(kind: Kind) {
  return kind === 'WebSocket'
    ? fromTransport(() => webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`), clientCodec())
    : fromTransport(
        () =>
          socketIoTransport(io(base, { reconnection: false, forceNew: true, transports: ['websocket'] }), {
            events: clientSocketIoEvents(),
          }),
        clientCodec(),
      );
}
const rtc = fromRtc({ RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true });

/** A werift peer connection whose candidates go to `to` as strings (no sdpMid), then `null`. */
function rawPeer(end: WireEnd, to: () => string | undefined) {
  const pc = new WeriftPeerConnection(WERIFT_LOOPBACK);
  cleanups.push(() => void pc.close());
  pc.onicecandidate = ({ candidate }) => {
    const peer = to();
    if (peer) end.send('candidate', peer, candidate ? candidate.candidate : null);
  };
  return pc;
}

/** Everything `end` gets, from the moment this is called, with `on` for the ones to act upon. */
function script(end: WireEnd) {
  const heard: Got[] = [];
  const handlers = new Map<string, (got: Got) => void | Promise<void>>();
  let stopped = false;
  void (async () => {
    while (!stopped) {
      let got: Got;
      try {
        got = await end.next(60_000);
      } catch {
        return;
      }
      heard.push(got);
      await handlers.get(got.type)?.(got);
    }
  })();
  cleanups.push(() => (stopped = true));
  return { heard, on: (type: string, handler: (got: Got) => void | Promise<void>) => handlers.set(type, handler) };
}

describe.each([['WebSocket'], ['socket.io']] as const)(
  'our machines and a raw client that sends the other forms, over %s (werift, loopback)',
  (kind) => {
    it("a signalbox sender and a raw receiver (SDP text, candidate strings, null, a foreign progress, the original's done)", async () => {
      const data = bytes(200_000, 5);
      const sender = createActor(filedropSender.provide({ actors: { signalling: signalling(kind), rtc } }), {
        input: { source: memorySource(data, { name: 'to-raw.bin', sha256: false }), once: true },
      });
      cleanups.push(() => sender.stop());
      sender.start();
      const code = (await waitFor(sender, (snapshot) => snapshot.context.id !== undefined)).context.id!;

      const end = await ends[kind]();
      const pc = rawPeer(end, () => code);
      const channel = pc.createDataChannel('file');
      const heard = script(end);
      const received: Uint8Array[] = [];
      let size = 0;
      heard.on('answer', async ({ data: answer }) =>
        pc.setRemoteDescription(answer as { type: 'answer'; sdp: string }),
      );
      heard.on('candidate', async ({ data: candidate }) => {
        if (candidate) await pc.addIceCandidate(candidate as { candidate: string });
      });
      const all = new Promise<void>((resolve) => {
        channel.onmessage = ({ data: frame }) => {
          received.push(new Uint8Array((frame as Buffer).subarray(4)));
          size += (frame as Buffer).byteLength - 4;
          // Another client's progress shape, then the original's `done` once everything is in.
          if (size === data.byteLength) {
            end.send('progress', code, { percent: 100 });
            end.send('done', code);
            resolve();
          }
        };
      });
      end.send('request', code);
      await pc.setLocalDescription(await pc.createOffer());
      end.send('offer', code, pc.localDescription!.sdp);
      await all;
      await waitFor(sender, (snapshot) => snapshot.status === 'done', { timeout: 10_000 });
      expect(sender.getSnapshot().value).toBe('done');
      expect(Buffer.compare(Buffer.concat(received), data)).toBe(0);
      // It was told the file in both shapes, that the digest follows, and then the digest, in `done`.
      expect(heard.heard.find((got) => got.type === 'response')?.data).toEqual({
        name: 'to-raw.bin',
        size: data.byteLength,
        type: '',
        trailer: 'sha256',
        fileName: 'to-raw.bin',
        fileSize: data.byteLength,
      });
      expect(heard.heard.find((got) => got.type === 'done')).toEqual({
        type: 'done',
        from: code,
        data: { sha256: sha256Hex(data) },
        hasData: true,
      });
      // Our candidates are RTCIceCandidateInit objects, our answer `{ type, sdp }`.
      expect(heard.heard.find((got) => got.type === 'answer')?.data).toMatchObject({ type: 'answer' });
      const candidates = heard.heard.filter((got) => got.type === 'candidate');
      expect(candidates.length).toBeGreaterThan(0);
      for (const got of candidates) expect(got.data).toMatchObject({ candidate: expect.any(String) });
    }, 30_000);

    it.each([
      ['announces no digest (the original)', false],
      ['sends the digest in done (trailer)', true],
    ] as const)(
      'a raw sender that %s and a signalbox receiver',
      async (_, trailer) => {
        const data = bytes(150_000, 9);
        const end = await ends[kind]();
        let peer: string | undefined;
        const pc = rawPeer(end, () => peer);
        const heard = script(end);
        heard.on('request', ({ from }) => {
          peer = from as string;
          end.send(
            'response',
            peer,
            trailer
              ? { name: 'from-raw.bin', size: data.byteLength, trailer: 'sha256' }
              : { fileName: 'from-raw.bin', fileSize: data.byteLength },
          );
        });
        heard.on('offer', async ({ data: offer }) => {
          // Ours comes as the browser's `{ type, sdp }`.
          await pc.setRemoteDescription(offer as { type: 'offer'; sdp: string });
          await pc.setLocalDescription(await pc.createAnswer());
          end.send('answer', peer, pc.localDescription!.sdp);
        });
        heard.on('candidate', async ({ data: candidate }) => {
          if (candidate) await pc.addIceCandidate(candidate as { candidate: string });
        });
        pc.ondatachannel = ({ channel }) => {
          const push = () => {
            for (let seq = 0, at = 0; at < data.byteLength; seq++, at += 16384) {
              const chunk = data.subarray(at, at + 16384);
              const frame = Buffer.alloc(4 + chunk.byteLength);
              frame.writeUInt32BE(seq, 0);
              frame.set(chunk, 4);
              channel.send(frame);
            }
            end.send('done', peer, trailer ? { sha256: sha256Hex(data) } : NO_DATA);
          };
          if (channel.readyState === 'open') push();
          else channel.onopen = push;
        };

        const sink = memorySink();
        const receiver = createActor(filedropReceiver.provide({ actors: { signalling: signalling(kind), rtc } }), {
          input: { code: end.id, sink },
        });
        cleanups.push(() => receiver.stop());
        const completed: Array<Extract<ReceiverEmitted, { type: 'completed' }>['detail']> = [];
        receiver.on('completed', ({ detail }) => completed.push(detail));
        receiver.start();
        await waitFor(receiver, (snapshot) => snapshot.status === 'done', { timeout: 20_000 });
        expect(receiver.getSnapshot().context.error).toBeUndefined();
        expect(Buffer.compare(sink.bytes(), data)).toBe(0);
        expect(completed).toEqual([
          {
            file: trailer
              ? { name: 'from-raw.bin', size: data.byteLength, type: '', trailer: 'sha256' }
              : { name: 'from-raw.bin', size: data.byteLength, type: '' },
            sha256: sha256Hex(data),
            verified: trailer,
          },
        ]);
        // It says it has the file: our verdict, then the original's `done`.
        await until(() => heard.heard.some((got) => got.type === 'done'));
        const last = heard.heard.filter((got) => got.type === 'progress' || got.type === 'done').slice(-2);
        expect(last).toEqual([
          {
            type: 'progress',
            from: receiver.getSnapshot().context.id,
            data: { received: data.byteLength, total: data.byteLength, done: true },
            hasData: true,
          },
          { type: 'done', from: receiver.getSnapshot().context.id, hasData: false },
        ]);
      },
      30_000,
    );
  },
);

describe('two signalbox peers, the sender unable to hash the file first (werift, loopback)', () => {
  it('verify it end to end through the digest in done', async () => {
    const data = bytes(300_000, 21);
    const sender = createActor(filedropSender.provide({ actors: { signalling: signalling('WebSocket'), rtc } }), {
      input: { source: memorySource(data, { name: 'late.bin', sha256: false }), once: true },
    });
    cleanups.push(() => sender.stop());
    sender.start();
    const code = (await waitFor(sender, (snapshot) => snapshot.context.id !== undefined)).context.id!;
    const sink = memorySink();
    const receiver = createActor(filedropReceiver.provide({ actors: { signalling: signalling('socket.io'), rtc } }), {
      input: { code, sink },
    });
    cleanups.push(() => receiver.stop());
    const completed: Array<Extract<ReceiverEmitted, { type: 'completed' }>['detail']> = [];
    receiver.on('completed', ({ detail }) => completed.push(detail));
    receiver.start();
    await waitFor(receiver, (snapshot) => snapshot.status === 'done', { timeout: 30_000 });
    expect(receiver.getSnapshot().context.error).toBeUndefined();
    await waitFor(sender, (snapshot) => snapshot.status === 'done', { timeout: 10_000 });
    expect(sender.getSnapshot().value).toBe('done');
    expect(Buffer.compare(sink.bytes(), data)).toBe(0);
    expect(completed).toEqual([
      {
        file: { name: 'late.bin', size: data.byteLength, type: '', trailer: 'sha256' },
        sha256: sha256Hex(data),
        verified: true,
      },
    ]);
  }, 60_000);
});
