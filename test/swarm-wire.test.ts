/**
 * Wire fixtures for swarm: offers and answers as other implementations send
 * them (a bare SDP string, `JSON.stringify(pc.localDescription)`, extra keys),
 * sent over the real `signalbox serve` stack on 127.0.0.1 from raw `ws`
 * sockets, and what the other side receives, JSON for JSON. Then our peer
 * matched with a raw werift peer that answers with a bare SDP string.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import WebSocket from 'ws';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { createSwarmPeer, type SwarmPeer } from '../machines/swarm/client.js';
import { memoryStore } from '../machines/swarm/store.js';
import { WERIFT_LOOPBACK } from './rtc-helpers.js';
import { until } from './swarm-helpers.js';

type Json = { type: string; detail?: Record<string, unknown> };

let server: SignalboxServer;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await server.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

/** A raw `ws` socket speaking JSON text frames. */
interface Raw {
  send(frame: unknown): void;
  /** The next frame, parsed (fails after 5 s). */
  next(): Promise<Json>;
  readonly queued: Json[];
}

async function raw(clientId: string): Promise<Raw> {
  const socket = new WebSocket(`ws://127.0.0.1:${server.address.port}/swarm`);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  cleanup.push(() => socket.close());
  const queued: Json[] = [];
  const waiting: Array<(frame: Json) => void> = [];
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Json;
    const take = waiting.shift();
    if (take) take(frame);
    else queued.push(frame);
  });
  const client: Raw = {
    queued,
    send: (frame) => socket.send(JSON.stringify(frame)),
    next: () => {
      const frame = queued.shift();
      if (frame) return Promise.resolve(frame);
      return new Promise<Json>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no frame within 5 s')), 5000);
        waiting.push((f) => {
          clearTimeout(timer);
          resolve(f);
        });
      });
    },
  };
  client.send({ type: 'i_am', detail: { client_id: clientId } });
  return client;
}

/** Two raw clients matched: alice was told `requesting_offer`, bob `wait_for_offer`. */
async function matched() {
  const alice = await raw(`alice-${Math.random()}`);
  alice.send({ type: 'requesting_peers', detail: { context_id: 'a1' } });
  await until(() => server.swarm.stats().pending > 0);
  const bob = await raw(`bob-${Math.random()}`);
  bob.send({ type: 'requesting_peers', detail: { context_id: 'b1' } });
  expect(await alice.next()).toEqual({ type: 'requesting_offer', detail: { context_id: 'a1' } });
  expect(await bob.next()).toEqual({ type: 'wait_for_offer', detail: { context_id: 'b1' } });
  return { alice, bob };
}

const SDP = 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n';

/** Offers and answers as other implementations write them; `context_id` is the sender's. */
const fixtures: Array<{ name: string; offer: Record<string, unknown>; answer: Record<string, unknown> }> = [
  { name: 'bare SDP strings', offer: { offer: SDP }, answer: { answer: SDP } },
  {
    name: '{ type, sdp } objects (JSON.stringify(pc.localDescription))',
    offer: { offer: { type: 'offer', sdp: SDP } },
    answer: { answer: { type: 'answer', sdp: SDP } },
  },
  {
    name: 'keys we do not know, inside and beside the description',
    offer: { offer: { type: 'offer', sdp: SDP, x: [1, { y: null }] }, trickle: false },
    answer: { answer: SDP, agent: 'other/1.0' },
  },
  {
    name: 'values we would not send (for the receiver to judge)',
    offer: { offer: 42 },
    answer: { answer: null },
  },
];

describe('swarm wire fixtures: the real server relays offers and answers untouched', () => {
  for (const { name, offer, answer } of fixtures) {
    it(`relays ${name} exactly as sent, with context_id set to the recipient’s`, async () => {
      const { alice, bob } = await matched();
      alice.send({ type: 'sending_offer', detail: { ...offer, context_id: 'a1' } });
      expect(await bob.next()).toEqual({ type: 'forwarding_offer', detail: { ...offer, context_id: 'b1' } });
      bob.send({ type: 'sending_answer', detail: { ...answer, context_id: 'b1' } });
      expect(await alice.next()).toEqual({ type: 'forwarding_answer', detail: { ...answer, context_id: 'a1' } });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect([...alice.queued, ...bob.queued]).toEqual([]);
    });
  }

  it('refuses an offer nested deeper than 32, for safety, and forwards nothing', async () => {
    const { alice, bob } = await matched();
    const deep = JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`);
    alice.send({ type: 'sending_offer', detail: { offer: deep, context_id: 'a1' } });
    expect(await alice.next()).toEqual({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/nested deeper than 32/) },
    });
    // Still matched: the offer that follows goes through.
    alice.send({ type: 'sending_offer', detail: { offer: SDP, context_id: 'a1' } });
    expect(await bob.next()).toEqual({ type: 'forwarding_offer', detail: { offer: SDP, context_id: 'b1' } });
  });

  it('still refuses an offer outside a match (routing)', async () => {
    const lone = await raw('lone');
    lone.send({ type: 'sending_offer', detail: { offer: { type: 'offer', sdp: SDP }, context_id: 'zz' } });
    expect(await lone.next()).toMatchObject({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', event: 'sending_offer', context_id: 'zz' },
    });
  });
});

describe('swarm wire: our peer and a raw peer that answers with a bare SDP string', () => {
  let peer: SwarmPeer | undefined;
  afterEach(() => peer?.actor.stop());

  it('links: our offer arrives as { type, sdp }, the string answer is applied, i_am goes both ways', async () => {
    peer = createSwarmPeer({
      clientId: 'ours',
      signalling: () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/swarm`),
      rtc: { RTCPeerConnection, config: WERIFT_LOOPBACK },
      store: memoryStore(),
    });
    const linked = new Promise<{ peer: string }>((resolve) =>
      peer!.actor.on('linked', ({ detail }) => resolve(detail)),
    );
    const before = server.swarm.stats().pending;
    peer.connect();
    await until(() => server.swarm.stats().pending > before);
    const other = await raw('raw-bob');
    other.send({ type: 'requesting_peers', detail: { context_id: 'r1' } });
    expect(await other.next()).toEqual({ type: 'wait_for_offer', detail: { context_id: 'r1' } });
    const offer = await other.next();
    expect(offer).toEqual({
      type: 'forwarding_offer',
      detail: { offer: { type: 'offer', sdp: expect.stringMatching(/^v=0\r\n/) }, context_id: 'r1' },
    });

    const pc = new RTCPeerConnection(WERIFT_LOOPBACK);
    cleanup.push(() => pc.close());
    pc.onDataChannel.subscribe((channel) => {
      channel.onMessage.subscribe((frame) => {
        const message = JSON.parse(String(frame)) as Json;
        // alice speaks first; bob answers her i_am with his.
        if (message.type === 'i_am') channel.send(JSON.stringify({ type: 'i_am', detail: { client_id: 'raw-bob' } }));
      });
    });
    await pc.setRemoteDescription(offer.detail!.offer as never);
    await pc.setLocalDescription(await pc.createAnswer());
    await until(() => pc.iceGatheringState === 'complete');
    other.send({ type: 'sending_answer', detail: { answer: pc.localDescription!.sdp, context_id: 'r1' } });
    expect(await linked).toMatchObject({ peer: 'raw-bob' });
  });
});
