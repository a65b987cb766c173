/**
 * Every server over real sockets (`startServer` on 127.0.0.1 port 0) while
 * hostile clients send it frames that fast-check makes up: any text and
 * bytes, frames shaped like the protocol's, valid frames with a field or
 * two changed. Meanwhile an honest pair completes the cheapest exchange of
 * the protocol over the same server. Afterwards every connection is gone
 * from `/health` (polled with a deadline) and the server still answers; once
 * every protocol has had its turn, the heap (after a full GC) is within
 * {@link HEAP_BOUND} of what it was before the first.
 *
 * The frames are drawn with a fixed seed per protocol, so a failure comes
 * back the same way; the seed is in the test's name.
 */
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { io as socketIo } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type Health, type SignalboxServer } from '../cli/server.js';
import { Opcode as O } from '../machines/cloudlink/protocol.js';
import { clientMessageTypes as filedropTypes } from '../machines/filedrop/protocol.js';
import { clientMessageTypes as registryTypes } from '../machines/registry/protocol.js';
import { clientMessageTypes as swarmTypes } from '../machines/swarm/protocol.js';
import { clientMessageTypes as workroomsTypes, generateId } from '../machines/workrooms/protocol.js';
import type { Frame, Transport } from '../src/transport.js';
import { anyFrame, clientSamples, envelopes, leaf, mutated, opcodeFrames, plausibleJson } from './fuzz-frames.js';

const HOSTILE_CLIENTS = 4;
const FRAMES_EACH = 150;
/**
 * How much the heap may grow over the whole file, server and clients (one
 * process): generous, since compiled code and caches grow too, but far below
 * what one session kept per hostile frame would cost (3,600 frames, up to
 * 64 K characters each).
 */
const HEAP_BOUND = 32 * 1024 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** This isolate's heap after a full collection, in bytes. */
function heapAfterGc(): number {
  for (let i = 0; i < 3; i++) gc();
  return getHeapStatistics().used_heap_size;
}

let server: SignalboxServer;
let heapAtStart: number;
beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
  heapAtStart = heapAfterGc();
});
afterAll(async () => {
  await server?.close();
});

const url = (path: string) => `ws://127.0.0.1:${server.address.port}${path}`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

type Parsed = Record<string, unknown> & { type?: string; opcode?: number; detail?: Record<string, unknown> };

/** An honest client: sends JSON, and waits for the first frame (received so far or later) that matches. */
async function honest(path: string) {
  const transport = await webSocketTransport(url(path));
  const frames: Parsed[] = [];
  transport.on('message', (frame) => {
    if (typeof frame === 'string') frames.push(JSON.parse(frame) as Parsed);
  });
  return {
    transport,
    send: (value: unknown) => transport.send(JSON.stringify(value)),
    async waitFor(match: (frame: Parsed) => boolean, ms = 5000): Promise<Parsed> {
      const end = Date.now() + ms;
      for (;;) {
        const found = frames.find(match);
        if (found) return found;
        if (Date.now() > end)
          throw new Error(`no such frame within ${ms} ms; got ${JSON.stringify(frames).slice(0, 600)}`);
        await sleep(5);
      }
    },
  };
}

/** A hostile client: sends `frames` as fast as it can, until the server closes on it. */
async function hostile(path: string, frames: readonly Frame[]): Promise<Transport> {
  const transport = await webSocketTransport(url(path));
  for (const [i, frame] of frames.entries()) {
    if (!transport.isOpen) break;
    try {
      transport.send(frame);
    } catch {
      break; // closed by the server between the check and the send
    }
    // Let the honest pair's frames in between.
    if (i % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
  }
  return transport;
}

const hostileFrames = (protocol: keyof typeof clientSamples, shaped: fc.Arbitrary<string>, seed: number) =>
  fc.sample(
    fc.oneof(
      anyFrame(65536),
      { weight: 2, arbitrary: shaped },
      { weight: 3, arbitrary: mutated(clientSamples[protocol]) },
    ),
    { numRuns: HOSTILE_CLIENTS * FRAMES_EACH, seed },
  );

/** `promise`, or a failure naming `what` after `ms`. */
function within<T>(promise: Promise<T>, what: string, ms = 5000): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${ms} ms`)), ms);
    promise.then(
      (value) => (clearTimeout(timer), resolve(value)),
      (error: unknown) => (clearTimeout(timer), reject(error as Error)),
    );
  });
}

async function health(): Promise<Health> {
  const response = await fetch(`http://127.0.0.1:${server.address.port}/health`);
  expect(response.status).toBe(200);
  return (await response.json()) as Health;
}

/** Waits (real time, bounded) until `/health` counts no connection at all. */
async function drained(ms = 10_000): Promise<Health> {
  const end = Date.now() + ms;
  for (;;) {
    const now = await health();
    if (now.connections.total === 0) return now;
    if (Date.now() > end) throw new Error(`connections left after ${ms} ms: ${JSON.stringify(now.connections)}`);
    await sleep(20);
  }
}

interface Scenario {
  protocol: keyof typeof clientSamples;
  path: string;
  /** Frames shaped like this protocol's (beside any frame and mutated valid ones). */
  shaped: fc.Arbitrary<string>;
  seed: number;
  /** The honest pair's exchange; resolves when it is complete, and returns the pair to close. */
  exchange(): Promise<Transport[]>;
}

const scenarios: Scenario[] = [
  {
    protocol: 'cloudlink',
    path: '/ws/fuzz-game?v=0',
    shaped: opcodeFrames,
    seed: 1201,
    async exchange() {
      // A lobby nobody else can guess: the hostile clients play in the same game.
      const lobby = `lobby-${generateId()}`;
      const join = async (config: number, ack: number) => {
        const client = await honest('/ws/fuzz-game?v=0');
        client.send({ opcode: O.INIT });
        const id = (await client.waitFor((f) => f.opcode === O.INIT_OK)).payload as string;
        client.send({ opcode: config, payload: lobby });
        await client.waitFor((f) => f.opcode === ack);
        return Object.assign(client, { id });
      };
      const host = await join(O.CONFIG_HOST, O.ACK_HOST);
      const peer = await join(O.CONFIG_PEER, O.ACK_PEER);
      await host.waitFor((f) => f.opcode === O.NEW_PEER && f.payload === peer.id);
      const relay = async (
        from: typeof host,
        to: typeof host,
        sent: { opcode: number; payload?: string },
        received: number,
      ) => {
        from.send({ ...sent, rx: to.id });
        await to.waitFor((f) => f.opcode === received && f.tx === from.id && f.payload === sent.payload);
      };
      await relay(host, peer, { opcode: O.MAKE_OFFER, payload: 'v=0 host offer' }, O.ANTICIPATE_OFFER);
      await relay(peer, host, { opcode: O.ACCEPT_OFFER, payload: 'v=0 peer offer' }, O.RETURN_OFFER);
      await relay(host, peer, { opcode: O.MAKE_ANSWER, payload: 'v=0 host answer' }, O.ANTICIPATE_ANSWER);
      await relay(peer, host, { opcode: O.MAKE_ANSWER, payload: 'v=0 peer answer' }, O.ANTICIPATE_ANSWER);
      await relay(host, peer, { opcode: O.ACK_CHECK }, O.ACK_CHECK);
      await relay(peer, host, { opcode: O.ACK_READY }, O.ACK_READY);
      return [host.transport, peer.transport];
    },
  },
  {
    protocol: 'filedrop',
    path: '/filedrop',
    shaped: envelopes(filedropTypes),
    seed: 1202,
    async exchange() {
      const connect = async () => {
        const client = await honest('/filedrop');
        const id = (await client.waitFor((f) => f.type === 'assign')).detail!.peer as string;
        return Object.assign(client, { id });
      };
      const [sender, receiver] = [await connect(), await connect()];
      receiver.send({ type: 'request', detail: { peer: sender.id } });
      await sender.waitFor((f) => f.type === 'request' && f.detail?.peer === receiver.id);
      const file = { name: 'a.txt', size: 5, type: 'text/plain' };
      sender.send({ type: 'response', detail: { peer: receiver.id, data: file } });
      const response = await receiver.waitFor((f) => f.type === 'response' && f.detail?.peer === sender.id);
      expect(response.detail!.data).toMatchObject(file);
      return [sender.transport, receiver.transport];
    },
  },
  {
    protocol: 'workrooms',
    path: '/workrooms',
    shaped: envelopes(workroomsTypes),
    seed: 1203,
    async exchange() {
      const register = async () => {
        const client = await honest('/workrooms');
        const sessionid = generateId();
        client.send({ type: 'register', detail: { sessionid, calls: [] } });
        await client.waitFor((f) => f.type === 'registered' && f.detail?.sessionid === sessionid);
        return Object.assign(client, { sessionid });
      };
      const [a, b] = [await register(), await register()];
      a.send({ type: 'call', detail: { to: b.sessionid } });
      const inbound = await b.waitFor((f) => f.type === 'inboundcall' && f.detail?.fromsessionid === a.sessionid);
      const callid = inbound.detail!.callid as string;
      a.send({ type: 'offer', detail: { callid, peerid: b.sessionid, sdp: 'v=0 offer' } });
      await b.waitFor((f) => f.type === 'offer' && f.detail?.callid === callid && f.detail.peerid === a.sessionid);
      b.send({ type: 'answer', detail: { callid, peerid: a.sessionid, sdp: 'v=0 answer' } });
      await a.waitFor((f) => f.type === 'answer' && f.detail?.callid === callid && f.detail.sdp === 'v=0 answer');
      return [a.transport, b.transport];
    },
  },
  {
    protocol: 'registry',
    path: '/registry',
    shaped: envelopes(registryTypes),
    seed: 1204,
    async exchange() {
      const connect = async (path: string) => {
        const client = await honest('/registry');
        client.send({ type: 'Connect', detail: { files: [{ path, size: 5 }] } });
        const id = (await client.waitFor((f) => f.type === 'Welcome')).detail!.id as string;
        return Object.assign(client, { id });
      };
      const [a, b] = [await connect('a.txt'), await connect('b.txt')];
      await a.waitFor((f) => f.type === 'RegisterPeer' && f.detail?.peer === b.id);
      b.send({ type: 'Offer', detail: { peer: a.id, connection: 'honest-1', sdp: 'v=0 offer' } });
      await a.waitFor((f) => f.type === 'Offer' && f.detail?.peer === b.id && f.detail.connection === 'honest-1');
      a.send({ type: 'Answer', detail: { peer: b.id, connection: 'honest-1', sdp: 'v=0 answer' } });
      await b.waitFor((f) => f.type === 'Answer' && f.detail?.peer === a.id && f.detail.sdp === 'v=0 answer');
      return [a.transport, b.transport];
    },
  },
  {
    protocol: 'swarm',
    path: '/swarm',
    shaped: envelopes(swarmTypes),
    seed: 1205,
    async exchange() {
      // The server pairs any two requests of different clients, the hostile ones' too: alice and bob
      // keep asking (and answer whatever they are paired with) until one of alice's matches is bob.
      const connect = async (client_id: string) => {
        const client = await honest('/swarm');
        client.send({ type: 'i_am', detail: { client_id } });
        return client;
      };
      const [alice, bob] = [await connect(`alice-${generateId()}`), await connect(`bob-${generateId()}`)];
      const offered = new Set<string>();
      const answered = new Set<string>();
      for (let round = 0; round < 40; round++) {
        alice.send({ type: 'requesting_peers', detail: { context_id: `a${round}` } });
        bob.send({ type: 'requesting_peers', detail: { context_id: `b${round}` } });
        const deadline = Date.now() + 300;
        while (Date.now() < deadline) {
          const toOffer = await alice
            .waitFor((f) => f.type === 'requesting_offer' && !offered.has(f.detail!.context_id as string), 20)
            .catch(() => undefined);
          if (toOffer) {
            const context_id = toOffer.detail!.context_id as string;
            offered.add(context_id);
            alice.send({ type: 'sending_offer', detail: { offer: 'v=0 from alice', context_id } });
          }
          const toAnswer = await bob
            .waitFor(
              (f) =>
                f.type === 'forwarding_offer' &&
                f.detail?.offer === 'v=0 from alice' &&
                !answered.has(f.detail.context_id as string),
              20,
            )
            .catch(() => undefined);
          if (toAnswer) {
            const context_id = toAnswer.detail!.context_id as string;
            answered.add(context_id);
            bob.send({ type: 'sending_answer', detail: { answer: 'v=0 from bob', context_id } });
          }
          const done = await alice
            .waitFor((f) => f.type === 'forwarding_answer' && f.detail?.answer === 'v=0 from bob', 20)
            .catch(() => undefined);
          if (done) return [alice.transport, bob.transport];
        }
      }
      throw new Error('alice and bob were never paired');
    },
  },
];

describe('every server under hostile frames from several clients, while an honest pair completes its exchange', () => {
  for (const s of scenarios) {
    it(`${s.protocol} (seed ${s.seed})`, async () => {
      const frames = hostileFrames(s.protocol, s.shaped, s.seed);
      const attackers = Array.from({ length: HOSTILE_CLIENTS }, (_, i) =>
        hostile(s.path, frames.slice(i * FRAMES_EACH, (i + 1) * FRAMES_EACH)),
      );
      const pair = await s.exchange();
      const hostiles = await Promise.all(attackers);
      expect((await health()).connections[s.protocol]).toBeGreaterThanOrEqual(2);
      for (const transport of [...hostiles, ...pair]) transport.close();
      const after = await drained();
      expect(after.connections).toMatchObject({ total: 0, [s.protocol]: 0 });
      // Still serving: the honest exchange again, on a quiet server.
      const again = await s.exchange();
      for (const transport of again) transport.close();
      await drained();
    });
  }

  it('filedrop over socket.io (seed 1206)', async () => {
    const base = `http://127.0.0.1:${server.address.port}`;
    /** A socket.io client, connected, and its id from `assign` (listened for from the start). */
    const open = async () => {
      const socket = socketIo(base, { transports: ['websocket'], reconnection: false, forceNew: true });
      const id = within(new Promise<string>((resolve) => socket.once('assign', resolve)), 'assign');
      await within(
        new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('connect_error', reject);
        }),
        'connect',
      );
      return { socket, id };
    };
    const events = fc.sample(
      fc.tuple(
        fc.oneof(
          { weight: 4, arbitrary: fc.constantFrom(...filedropTypes, 'error', 'assign') },
          fc.string({ maxLength: 12 }),
        ),
        fc.array(
          fc.oneof(
            { weight: 3, arbitrary: leaf },
            fc.jsonValue({ maxDepth: 4 }),
            plausibleJson.map((text) => JSON.parse(text) as unknown),
            fc.uint8Array({ maxLength: 32 }),
          ),
          { maxLength: 4 },
        ),
      ),
      { numRuns: HOSTILE_CLIENTS * FRAMES_EACH, seed: 1206 },
    );
    // socket.io reserves some event names on the client side; emitting them throws there, not on the server.
    const reserved = new Set([
      'connect',
      'connect_error',
      'disconnect',
      'disconnecting',
      'newListener',
      'removeListener',
    ]);
    const attackers = Array.from({ length: HOSTILE_CLIENTS }, async (_, i) => {
      const { socket } = await open();
      for (const [n, [event, args]] of events.slice(i * FRAMES_EACH, (i + 1) * FRAMES_EACH).entries()) {
        if (!socket.connected) break;
        if (!reserved.has(event)) socket.emit(event, ...args);
        if (n % 16 === 15) await new Promise((resolve) => setImmediate(resolve));
      }
      return socket;
    });
    // The honest pair: a receiver asks a sender for its file, the sender answers.
    const client = async () => {
      const { socket, id } = await open();
      return { socket, id: await id };
    };
    const [sender, receiver] = [await client(), await client()];
    const asked = new Promise<string>((resolve) => sender.socket.on('request', (from: string) => resolve(from)));
    receiver.socket.emit('request', sender.id);
    expect(await within(asked, 'request')).toBe(receiver.id);
    const answered = new Promise<unknown>((resolve) =>
      receiver.socket.on('response', (from: string, data: unknown) => from === sender.id && resolve(data)),
    );
    sender.socket.emit('response', receiver.id, { name: 'a.txt', size: 5, type: 'text/plain' });
    expect(await within(answered, 'response')).toMatchObject({ name: 'a.txt', size: 5 });
    const hostiles = await Promise.all(attackers);
    // socket.io connections count as filedrop's: the honest pair at least is there now.
    expect((await health()).connections.filedrop).toBeGreaterThanOrEqual(2);
    for (const socket of [...hostiles, sender.socket, receiver.socket]) socket.disconnect();
    const after = await drained();
    expect(after.connections.filedrop).toBe(0);
  });

  it(`afterwards the heap is within ${HEAP_BOUND / 1024 / 1024} MiB of the start`, async () => {
    expect((await drained()).connections.total).toBe(0);
    // Closed sockets' last callbacks and the rate limiters' timers run out first.
    await sleep(200);
    const grown = heapAfterGc() - heapAtStart;
    expect(grown).toBeLessThan(HEAP_BOUND);
  });
});
