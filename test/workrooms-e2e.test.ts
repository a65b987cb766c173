/**
 * workrooms end to end: the real `signalbox serve` stack on 127.0.0.1, two
 * `createWorkroomsClient`s over `ws`, werift peers on loopback.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MediaStream, MediaStreamTrack, RTCPeerConnection, RtpHeader, RtpPacket } from 'werift';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { createWorkroomsClient, type WorkroomsClient } from '../machines/workrooms/client.js';
import type { ClientEmitted } from '../machines/workrooms/client.machine.js';
import type { RtcActorInit } from '../src/rtc/index.js';
import type { Transport } from '../src/transport.js';
import { WERIFT_LOOPBACK } from './rtc-helpers.js';

let server: SignalboxServer;
let clients: WorkroomsClient[] = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1', workrooms: { grace: 10_000 } });
});
afterEach(async () => {
  await Promise.all(clients.map((c) => c.leave()));
  clients = [];
});
afterAll(async () => {
  await server.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

type Detail<T extends ClientEmitted['type']> = Extract<ClientEmitted, { type: T }>['detail'];

/** Resolves with the detail of the next `type` event `client` dispatches. */
function next<T extends ClientEmitted['type']>(client: WorkroomsClient, type: T, ms = 10_000): Promise<Detail<T>> {
  return new Promise<Detail<T>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${ms} ms`)), ms);
    client.addEventListener(
      type,
      (event) => {
        clearTimeout(timer);
        (resolve as (value: unknown) => void)((event as CustomEvent).detail);
      },
      { once: true },
    );
  });
}

function nextFrame(transport: Transport): Promise<unknown> {
  return new Promise((resolve) => {
    const off = transport.on('message', (frame) => {
      off();
      resolve(frame);
    });
  });
}

/** A client whose signalling sockets are kept, so a test can drop the current one. */
function client(profile?: Record<string, Record<string, unknown>>, media?: RtcActorInit['media']) {
  const sockets: Transport[] = [];
  const errors: unknown[] = [];
  const c = createWorkroomsClient({
    connect: async () => {
      const socket = await webSocketTransport(`ws://127.0.0.1:${server.address.port}/workrooms`);
      sockets.push(socket);
      return socket;
    },
    rtc: { RTCPeerConnection, config: WERIFT_LOOPBACK, ...(media && { media }) },
    reconnectDelay: 50,
    ...(profile && { profile }),
  });
  c.addEventListener('error', (e) => errors.push(e.detail));
  clients.push(c);
  return { client: c, sockets, errors };
}

async function until(predicate: () => boolean, ms = 5000) {
  for (let waited = 0; waited < ms && !predicate(); waited += 10) await new Promise((r) => setTimeout(r, 10));
  expect(predicate()).toBe(true);
}

/** Alice finds Bob in the directory, calls him, and both data channels open. */
async function call(media: { alice?: RtcActorInit['media']; bob?: RtcActorInit['media'] } = {}) {
  const alice = client({ github: { login: 'alice' } }, media.alice);
  const bob = client({ github: { login: 'bob', name: 'Bob Example' } }, media.bob);
  await Promise.all([next(alice.client, 'registered'), next(bob.client, 'registered')]);
  await until(() => server.workrooms.stats().sessions >= 2);
  let found: Awaited<ReturnType<WorkroomsClient['search']>> = [];
  // The profile goes out right after register: search until the server has it.
  for (let i = 0; i < 50 && found.length === 0; i++) found = await alice.client.search('example');
  expect(found).toEqual([
    { sessionid: bob.client.sessionid, userprofiles: { github: { login: 'bob', name: 'Bob Example' } } },
  ]);
  const inbound = next(bob.client, 'inboundcall');
  const connectedA = next(alice.client, 'connected');
  const connectedB = next(bob.client, 'connected');
  alice.client.call(bob.client.sessionid);
  expect((await inbound).userprofiles).toEqual({ github: { login: 'alice' } });
  const [a, b] = await Promise.all([connectedA, connectedB]);
  expect(a.callid).toBe(b.callid);
  expect(a.peerid).toBe(bob.client.sessionid);
  expect(b.peerid).toBe(alice.client.sessionid);
  return { alice, bob, callid: a.callid, ta: a.transport, tb: b.transport };
}

async function exchange(ta: Transport, tb: Transport, tag: string) {
  const atB = nextFrame(tb);
  ta.send(`${tag}: alice → bob`);
  expect(await atB).toBe(`${tag}: alice → bob`);
  const atA = nextFrame(ta);
  tb.send(new TextEncoder().encode(`${tag}: bob → alice`));
  expect(new TextDecoder().decode((await atA) as Uint8Array)).toBe(`${tag}: bob → alice`);
}

describe('workrooms end to end: real server, ws, werift on loopback', () => {
  it('two clients call, exchange data over the call’s data channel both ways, and hang up', async () => {
    const { alice, bob, callid, ta, tb } = await call();
    await exchange(ta, tb, 'first');
    expect(server.workrooms.stats().calls).toBe(1);
    const hungUp = next(bob.client, 'hangup');
    alice.client.hangup(callid);
    expect(await hungUp).toEqual({ callid, sessionid: alice.client.sessionid, reason: 'remote' });
    await until(() => server.workrooms.stats().calls === 0);
    expect(alice.client.calls()).toEqual([]);
    expect(bob.client.calls()).toEqual([]);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('a client that drops its socket registers again with its call, and the call comes back', async () => {
    const { alice, bob, callid, ta, tb } = await call();
    await exchange(ta, tb, 'before');
    const back = next(alice.client, 'registered');
    const disconnected = next(alice.client, 'disconnected');
    alice.sockets.at(-1)!.close(4000, 'test drops the socket');
    expect(await disconnected).toEqual({ attempt: 1 });
    expect(await back).toEqual({ sessionid: alice.client.sessionid, calls: [callid] });
    expect(alice.sockets).toHaveLength(2);
    await until(() => server.workrooms.stats().away === 0 && server.workrooms.stats().connections === 2);
    expect(server.workrooms.stats().calls).toBe(1);
    // The call is the same: its channel still carries data, and the server relays its hangup.
    await exchange(ta, tb, 'after');
    const hungUp = next(alice.client, 'hangup');
    bob.client.hangup(callid);
    expect(await hungUp).toEqual({ callid, sessionid: bob.client.sessionid, reason: 'remote' });
    await until(() => server.workrooms.stats().calls === 0);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('holds two calls at once, each its own WebRTC connection', async () => {
    const { alice, bob, callid: withBob, ta: aliceToBob, tb: bobToAlice } = await call();
    const carol = client();
    await next(carol.client, 'registered');
    const connectedA = next(alice.client, 'connected');
    const connectedC = next(carol.client, 'connected');
    carol.client.call(alice.client.sessionid);
    const [a, c] = await Promise.all([connectedA, connectedC]);
    expect(a.callid).not.toBe(withBob);
    expect(a.peerid).toBe(carol.client.sessionid);
    expect(
      alice.client
        .calls()
        .map((x) => x.info.callid)
        .sort(),
    ).toEqual([withBob, a.callid].sort());
    await exchange(aliceToBob, bobToAlice, 'bob');
    await exchange(a.transport, c.transport, 'carol');
    // Hanging up one leaves the other up.
    const carolHungUp = next(carol.client, 'hangup');
    alice.client.hangup(a.callid);
    expect((await carolHungUp).callid).toBe(a.callid);
    await exchange(aliceToBob, bobToAlice, 'still');
    expect(bob.client.calls()).toHaveLength(1);
  });

  it('carries media next to the data channel: each side gets the other’s track, with its stream, and RTP flows', async () => {
    const microphone = { alice: new MediaStreamTrack({ kind: 'audio' }), bob: new MediaStreamTrack({ kind: 'audio' }) };
    const stream = new MediaStream({ id: 'alice-mic' });
    const tracksAt = (c: WorkroomsClient) => next(c, 'track');
    const peerOfCall: Array<string | undefined> = [];
    const pending: { alice?: Promise<Detail<'track'>>; bob?: Promise<Detail<'track'>> } = {};
    const started = call({
      alice: ({ label }) => {
        // The media callback can tell which call it is for.
        peerOfCall.push(clients[0]!.calls().find((c) => c.info.callid === label)?.peerid);
        return { tracks: [microphone.alice], streams: [stream] };
      },
      bob: () => ({ tracks: [microphone.bob] }),
    });
    // Listen before the call connects: tracks arrive with the remote description.
    await until(() => clients.length === 2);
    pending.alice = tracksAt(clients[0]!);
    pending.bob = tracksAt(clients[1]!);
    const { alice, bob, callid, ta, tb } = await started;
    const [atAlice, atBob] = await Promise.all([pending.alice, pending.bob]);
    expect(atBob).toMatchObject({ callid, peerid: alice.client.sessionid, track: { kind: 'audio' } });
    expect((atBob.streams as MediaStream[]).map((s) => s.id)).toEqual(['alice-mic']);
    expect(atAlice).toMatchObject({ callid, peerid: bob.client.sessionid, track: { kind: 'audio' } });
    expect(peerOfCall).toEqual([bob.client.sessionid]);

    const heard = (from: MediaStreamTrack, at: MediaStreamTrack, words: string) => {
      let sequenceNumber = 0;
      const timer = setInterval(() => {
        sequenceNumber++;
        const header = new RtpHeader({ payloadType: 96, sequenceNumber, timestamp: sequenceNumber * 960, ssrc: 7 });
        from.writeRtp(new RtpPacket(header, Buffer.from(words)));
      }, 20);
      return new Promise<string>((resolve) => {
        const { unSubscribe } = at.onReceiveRtp.subscribe((packet) => {
          unSubscribe();
          resolve(packet.payload.toString());
        });
      }).finally(() => clearInterval(timer));
    };
    expect(
      await Promise.all([
        heard(microphone.alice, atBob.track as MediaStreamTrack, 'hello bob'),
        heard(microphone.bob, atAlice.track as MediaStreamTrack, 'hello alice'),
      ]),
    ).toEqual(['hello bob', 'hello alice']);
    await exchange(ta, tb, 'with media');
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  });

  it('leaves nothing behind on the server once both leave', async () => {
    const { alice, bob } = await call();
    const hungUp = next(bob.client, 'hangup');
    await alice.client.leave();
    expect((await hungUp).reason).toBe('remote');
    await bob.client.leave();
    await until(() => server.workrooms.stats().connections === 0);
    expect(server.workrooms.stats()).toEqual({ connections: 0, sessions: 0, away: 0, calls: 0 });
    expect(server.workrooms.sessions.size).toBe(0);
  });
});
