/**
 * Wire fidelity of CloudLink: frames as other implementations send them
 * (browser descriptions `{type, sdp}`, bare SDP, extra keys, INIT with any
 * payload or none), sent with a raw `ws` client to the real `signalbox serve`
 * stack, and what the other side receives, frame by frame. Then our host and
 * peer machines against a hand-written foreign client (werift for its WebRTC)
 * that sends descriptions as bare SDP or as the browser's objects.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import WebSocket from 'ws';
import { createActor, waitFor, type Actor } from 'xstate';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import type { ClientEmitted } from '../machines/cloudlink/client.js';
import { clientCodec } from '../machines/cloudlink/codec.js';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import { Opcode as O } from '../machines/cloudlink/protocol.js';
import { fromRtc } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import { RtcPeer, stopPeers, WERIFT_LOOPBACK } from './rtc-helpers.js';

let server: SignalboxServer;
let lobbies = 0;
const sockets: WebSocket[] = [];
const actors: Array<{ stop(): void }> = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
});
afterEach(() => {
  for (const actor of actors.splice(0)) actor.stop();
  for (const socket of sockets.splice(0)) socket.terminate();
  stopPeers();
});
afterAll(async () => {
  await server.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

const url = (ugi: string) => `ws://127.0.0.1:${server.address.port}/ws/${ugi}?v=0`;

/** A client on a bare `ws` socket: sends text as given, and hands out each text frame it receives, parsed. */
interface Raw {
  socket: WebSocket;
  /** Sends `frame` as JSON text, or a string as it is. */
  send(frame: unknown): void;
  /** The next frame, parsed (the raw text is kept in `texts`). */
  next(ms?: number): Promise<Record<string, unknown>>;
  texts: string[];
  closed: Promise<number>;
}

async function raw(ugi: string): Promise<Raw> {
  const socket = new WebSocket(url(ugi));
  sockets.push(socket);
  const inbox: string[] = [];
  const waiters: Array<(text: string) => void> = [];
  const texts: string[] = [];
  socket.on('message', (data) => {
    const text = String(data);
    texts.push(text);
    const waiter = waiters.shift();
    if (waiter) waiter(text);
    else inbox.push(text);
  });
  const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  return {
    socket,
    texts,
    closed,
    send: (frame) => socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    async next(ms = 3000) {
      const queued = inbox.shift();
      const text =
        queued ??
        (await new Promise<string>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no frame within ${ms} ms`)), ms);
          waiters.push((t) => {
            clearTimeout(timer);
            resolve(t);
          });
        }));
      return JSON.parse(text) as Record<string, unknown>;
    },
  };
}

/** A host and a peer of a fresh lobby on raw sockets, introduced to each other; returns them with their ids. */
async function pair(ugi = 'wire') {
  const lobby = `lobby-${++lobbies}`;
  const join = async (config: number) => {
    const client = await raw(ugi);
    client.send({ opcode: O.INIT });
    const ok = await client.next();
    client.send({ opcode: config, payload: lobby });
    await client.next(); // ACK_HOST / ACK_PEER
    return Object.assign(client, { id: ok.payload as string });
  };
  const host = await join(O.CONFIG_HOST);
  const peer = await join(O.CONFIG_PEER);
  expect(await host.next()).toEqual({ opcode: O.NEW_PEER, payload: peer.id });
  expect(await peer.next()).toEqual({ opcode: O.NEW_HOST, payload: host.id });
  return { host, peer };
}

const SDP =
  'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n';

/** Payloads as other implementations send them; each must arrive as it was sent. */
const payloads: Array<[string, unknown]> = [
  ['a browser description { type, sdp }', { type: 'offer', sdp: SDP }],
  ['bare SDP text', SDP],
  ['a description with fields of its own', { type: 'answer', sdp: SDP, extra: { n: 1, list: [true, null] } }],
  ['null', null],
  ['a number', 42.5],
  ['an array', ['offer', SDP]],
  ['text with escapes and non-ASCII', 'é ✓ "quoted" \\ \u0000 😀'],
  ['an object nested 30 deep', JSON.parse(`${'{"a":'.repeat(30)}1${'}'.repeat(30)}`)],
];

/** The relayed opcodes, in the order a handshake allows them, and what the recipient receives. */
const relays = [
  { sent: 'MAKE_OFFER', from: 'host', received: 'ANTICIPATE_OFFER' },
  { sent: 'ACCEPT_OFFER', from: 'peer', received: 'RETURN_OFFER' },
  { sent: 'MAKE_ANSWER', from: 'host', received: 'ANTICIPATE_ANSWER' },
  { sent: 'MAKE_ANSWER', from: 'peer', received: 'ANTICIPATE_ANSWER' },
] as const;

describe('cloudlink on the wire: the real server relays payloads untouched (raw ws clients)', () => {
  for (const [what, payload] of payloads) {
    it(`relays ${what} in MAKE_OFFER, ACCEPT_OFFER and MAKE_ANSWER both ways, as sent`, async () => {
      const sides = await pair();
      const ids = { host: sides.host.id, peer: sides.peer.id };
      for (const relay of relays) {
        const [sender, receiver] = relay.from === 'host' ? [sides.host, sides.peer] : [sides.peer, sides.host];
        const other = relay.from === 'host' ? 'peer' : 'host';
        sender.send({ opcode: O[relay.sent], payload, rx: ids[other] });
        const got = await receiver.next();
        expect(got, `${relay.sent} → ${relay.received}`).toEqual({
          opcode: O[relay.received],
          payload,
          tx: ids[relay.from],
        });
        // The payload's JSON is the sender's, re-encoded and nothing else.
        expect(receiver.texts.at(-1)).toBe(
          `{"opcode":${O[relay.received]},"payload":${JSON.stringify(payload)},"tx":"${ids[relay.from]}"}`,
        );
      }
    });
  }

  it('ignores top-level keys it does not use, and relays without them', async () => {
    const { host, peer } = await pair();
    host.send({ opcode: O.KEEPALIVE, sent: Date.now() });
    host.send({ opcode: O.MAKE_OFFER, payload: { type: 'offer', sdp: SDP }, rx: peer.id, id: 7, listener: 'x' });
    expect(await peer.next()).toEqual({
      opcode: O.ANTICIPATE_OFFER,
      payload: { type: 'offer', sdp: SDP },
      tx: host.id,
    });
    peer.send({ opcode: O.ACCEPT_OFFER, payload: SDP, rx: host.id, origin: 'game-client/2.1' });
    expect(await host.next()).toEqual({ opcode: O.RETURN_OFFER, payload: SDP, tx: peer.id });
    host.send({ opcode: O.ACK_CHECK, rx: peer.id, payload: 'ignored' });
    expect(await peer.next()).toEqual({ opcode: O.ACK_CHECK, tx: host.id });
    peer.send({ opcode: O.ACK_READY, rx: host.id, payload: { ready: true } });
    expect(await host.next()).toEqual({ opcode: O.ACK_READY, tx: peer.id });
    expect(server.health().connections.cloudlink).toBeGreaterThanOrEqual(2);
  });

  it.each<[string, Record<string, unknown>, string | undefined]>([
    ['no payload', { opcode: O.INIT }, undefined],
    ['a display name', { opcode: O.INIT, payload: 'ada' }, 'ada'],
    ['an object', { opcode: O.INIT, payload: { username: 'ada', avatar: 3 } }, undefined],
    ['null', { opcode: O.INIT, payload: null }, undefined],
    ['a number', { opcode: O.INIT, payload: 7 }, undefined],
    ['a long name', { opcode: O.INIT, payload: 'n'.repeat(200) }, 'n'.repeat(64)],
    ['extra keys', { opcode: O.INIT, payload: 'bo', version: '0.1.5' }, 'bo'],
  ])('answers INIT with %s with INIT_OK, and keeps a name only from a string', async (_, frame, name) => {
    const client = await raw('wire');
    client.send(frame);
    const ok = await client.next();
    expect(ok).toEqual({ opcode: O.INIT_OK, payload: expect.any(String) });
    const session = server.cloudlink.sessions.get(ok.payload as string)!;
    expect(session.getSnapshot().context.name).toBe(name);
    // And it goes on as any client: it can host.
    client.send({ opcode: O.CONFIG_HOST, payload: 'after-init' });
    expect(await client.next()).toEqual({ opcode: O.ACK_HOST, payload: 'after-init' });
  });

  it('still refuses a client frame carrying tx, and one nested deeper than 32', async () => {
    const { host, peer } = await pair();
    peer.send({ opcode: O.KEEPALIVE, tx: host.id });
    expect(await peer.next()).toMatchObject({ opcode: O.VIOLATION, payload: expect.stringMatching(/`tx`/) });
    expect(await peer.closed).toBe(1008);
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: peer.id });
    const deep = JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`) as unknown;
    host.send({ opcode: O.INIT, payload: deep });
    expect(await host.next()).toMatchObject({ opcode: O.VIOLATION, payload: expect.stringMatching(/deeper than 32/) });
    expect(await host.closed).toBe(1008);
  });
});

// ---------------------------------------------------------------------------
// Our machines and a foreign client that sends either form.
// ---------------------------------------------------------------------------

type Form = 'string' | 'object';
const rtcInit = { RTCPeerConnection, config: WERIFT_LOOPBACK };
const signalling = (ugi: string) => fromTransport(() => webSocketTransport(url(ugi)), clientCodec());
const inForm = (form: Form, description: { type: 'offer' | 'answer'; sdp: string }) =>
  form === 'string' ? description.sdp : { type: description.type, sdp: description.sdp };
/** The SDP of a description our machines sent: they send the browser's form. */
function sdpFrom(payload: unknown, type: 'offer' | 'answer'): string {
  expect(payload).toEqual({ type, sdp: expect.stringMatching(/^v=0\r\n/) });
  return (payload as { sdp: string }).sdp;
}

function linkedOf(actor: Actor<typeof cloudlinkHost> | Actor<typeof cloudlinkPeer>) {
  return new Promise<{ id: string; transport: Transport }>((resolve) =>
    actor.on('linked', (e: Extract<ClientEmitted, { type: 'linked' }>) => resolve(e.detail)),
  );
}

/** Data sent on one side arrives on the other: ours is `transport`, theirs `out` (they send) and `in` (they receive). */
async function expectBytesFlow(transport: Transport, theirs: { out: RtcPeer; in: RtcPeer }) {
  const [theirOut, theirIn] = await Promise.all([theirs.out.waitFor('rtc.open'), theirs.in.waitFor('rtc.open')]);
  const toThem = new Promise((resolve) => theirIn.transport.on('message', resolve));
  transport.send('to them');
  expect(await toThem).toBe('to them');
  const toUs = new Promise((resolve) => transport.on('message', resolve));
  theirOut.transport.send('to us');
  expect(await toUs).toBe('to us');
}

describe.each<Form>(['string', 'object'])('cloudlink machines with a foreign client sending the %s form', (form) => {
  it('our host links with a foreign peer', async () => {
    const host = createActor(
      cloudlinkHost.provide({ actors: { rtc: fromRtc(rtcInit), signalling: signalling('mix') } }),
      {
        input: { lobby: `${form}-1` },
      },
    );
    const linked = linkedOf(host);
    actors.push(host.start());
    await waitFor(host, (s) => s.matches({ active: { protocol: 'hosting' } }), { timeout: 5000 });

    const peer = await raw('mix');
    peer.send({ opcode: O.INIT });
    await peer.next(); // INIT_OK
    peer.send({ opcode: O.CONFIG_PEER, payload: `${form}-1` });
    expect(await peer.next()).toMatchObject({ opcode: O.ACK_PEER });
    expect(await peer.next()).toMatchObject({ opcode: O.NEW_HOST });
    const offer = await peer.next(10_000);
    expect(offer.opcode).toBe(O.ANTICIPATE_OFFER);
    const hostId = offer.tx as string;
    // The peer answers the host's offer on one connection and offers on another (the seed's steps 8–10).
    const theirIn = new RtcPeer(
      { label: 'in', role: 'answerer', remoteOffer: sdpFrom(offer.payload, 'offer') },
      rtcInit,
    );
    const theirOut = new RtcPeer({ label: 'out', role: 'offerer' }, rtcInit);
    const ourOffer = await theirOut.waitFor('rtc.description');
    peer.send({ opcode: O.ACCEPT_OFFER, payload: inForm(form, ourOffer.description), rx: hostId });
    const answer = await peer.next(10_000);
    expect(answer).toMatchObject({ opcode: O.ANTICIPATE_ANSWER, tx: hostId });
    theirOut.send({
      type: 'rtc.remoteDescription',
      description: { type: 'answer', sdp: sdpFrom(answer.payload, 'answer') },
    });
    const ourAnswer = await theirIn.waitFor('rtc.description');
    peer.send({ opcode: O.MAKE_ANSWER, payload: inForm(form, ourAnswer.description), rx: hostId });
    expect(await peer.next(10_000)).toEqual({ opcode: O.ACK_CHECK, tx: hostId });
    await Promise.all([theirOut.waitFor('rtc.open'), theirIn.waitFor('rtc.open')]);
    peer.send({ opcode: O.ACK_READY, rx: hostId });

    const link = await linked;
    await expectBytesFlow(link.transport, { out: theirOut, in: theirIn });
  });

  it('our peer links with a foreign host', async () => {
    const host = await raw('mix');
    host.send({ opcode: O.INIT });
    const hostId = (await host.next()).payload; // INIT_OK
    host.send({ opcode: O.CONFIG_HOST, payload: `${form}-2` });
    expect(await host.next()).toMatchObject({ opcode: O.ACK_HOST });

    const peer = createActor(
      cloudlinkPeer.provide({ actors: { rtc: fromRtc(rtcInit), signalling: signalling('mix') } }),
      {
        input: { lobby: `${form}-2` },
      },
    );
    const linked = linkedOf(peer);
    actors.push(peer.start());
    const joined = await host.next();
    expect(joined.opcode).toBe(O.NEW_PEER);
    const peerId = joined.payload as string;

    const theirOut = new RtcPeer({ label: 'out', role: 'offerer' }, rtcInit);
    const offer = await theirOut.waitFor('rtc.description');
    host.send({ opcode: O.MAKE_OFFER, payload: inForm(form, offer.description), rx: peerId });
    const returned = await host.next(10_000);
    expect(returned).toMatchObject({ opcode: O.RETURN_OFFER, tx: peerId });
    const theirIn = new RtcPeer(
      { label: 'in', role: 'answerer', remoteOffer: sdpFrom(returned.payload, 'offer') },
      rtcInit,
    );
    const answer = await theirIn.waitFor('rtc.description');
    host.send({ opcode: O.MAKE_ANSWER, payload: inForm(form, answer.description), rx: peerId });
    const theirsAnswered = await host.next(10_000);
    expect(theirsAnswered).toMatchObject({ opcode: O.ANTICIPATE_ANSWER, tx: peerId });
    theirOut.send({
      type: 'rtc.remoteDescription',
      description: { type: 'answer', sdp: sdpFrom(theirsAnswered.payload, 'answer') },
    });
    host.send({ opcode: O.ACK_CHECK, rx: peerId });
    expect(await host.next(10_000)).toEqual({ opcode: O.ACK_READY, tx: peerId });

    const link = await linked;
    expect(link.id).toBe(hostId);
    await expectBytesFlow(link.transport, { out: theirOut, in: theirIn });
  });
});

describe('cloudlink machines and a description they cannot read', () => {
  it.each<[string, unknown, RegExp]>([
    ['a number', 42, /ANTICIPATE_OFFER: `payload`: must be an SDP string or \{ type, sdp \}, not 42/],
    ['an object without sdp', { type: 'offer' }, /ANTICIPATE_OFFER: `payload.sdp`: must be a non-empty string/],
    [
      'an answer where an offer belongs',
      { type: 'answer', sdp: SDP },
      /ANTICIPATE_OFFER: `payload.type`: is "answer", expected "offer"/,
    ],
    ['an empty SDP', '', /ANTICIPATE_OFFER: `payload`: is empty/],
  ])('our peer ends with ERR_INVALID_FIELD naming the field when an offer is %s', async (_, payload, message) => {
    const host = await raw('bad');
    host.send({ opcode: O.INIT });
    await host.next();
    host.send({ opcode: O.CONFIG_HOST, payload: 'L' });
    await host.next();
    const peer = createActor(
      cloudlinkPeer.provide({ actors: { rtc: fromRtc(rtcInit), signalling: signalling('bad') } }),
      {
        input: { lobby: 'L' },
      },
    );
    const stopped = new Promise<Extract<ClientEmitted, { type: 'stopped' }>>((resolve) =>
      peer.on('stopped', (e: Extract<ClientEmitted, { type: 'stopped' }>) => resolve(e)),
    );
    actors.push(peer.start());
    const joined = await host.next();
    host.send({ opcode: O.MAKE_OFFER, payload, rx: joined.payload });
    const { detail } = await stopped;
    expect(detail.error?.code).toBe('ERR_INVALID_FIELD');
    expect(detail.error?.message).toMatch(message);
    expect(peer.getSnapshot().value).toBe('failed');
    // The peer is gone from the lobby: the host hears of it.
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: joined.payload });
  });

  it('our host ends with ERR_INVALID_FIELD naming the field when a returned offer has no SDP', async () => {
    const host = createActor(
      cloudlinkHost.provide({ actors: { rtc: fromRtc(rtcInit), signalling: signalling('bad') } }),
      {
        input: { lobby: 'H' },
      },
    );
    const stopped = new Promise<Extract<ClientEmitted, { type: 'stopped' }>>((resolve) =>
      host.on('stopped', (e: Extract<ClientEmitted, { type: 'stopped' }>) => resolve(e)),
    );
    actors.push(host.start());
    await waitFor(host, (s) => s.matches({ active: { protocol: 'hosting' } }), { timeout: 5000 });
    const peer = await raw('bad');
    peer.send({ opcode: O.INIT });
    await peer.next();
    peer.send({ opcode: O.CONFIG_PEER, payload: 'H' });
    await peer.next(); // ACK_PEER
    const hostId = (await peer.next()).payload; // NEW_HOST
    expect(await peer.next(10_000)).toMatchObject({ opcode: O.ANTICIPATE_OFFER, tx: hostId });
    peer.send({ opcode: O.ACCEPT_OFFER, payload: { type: 'offer', sdp: 7 }, rx: hostId });
    const { detail } = await stopped;
    expect(detail.error?.code).toBe('ERR_INVALID_FIELD');
    expect(detail.error?.message).toMatch(/RETURN_OFFER: `payload.sdp`: must be a non-empty string/);
  });
});
