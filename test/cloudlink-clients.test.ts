import { afterEach, describe, expect, it } from 'vitest';
import { createActor, waitFor, type AnyActorRef } from 'xstate';
import { createMemoryNetwork } from '../adapters/memory/index.js';
import { clientCodec } from '../machines/cloudlink/codec.js';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import { fromTransport } from '../src/runtime.js';
import type { ClientEmitted } from '../machines/cloudlink/client.js';
import { createCloudLinkWorld, type CloudLinkWorld } from '../testing/index.js';
import type { Transport } from '../src/transport.js';
import { settle } from './socket-helpers.js';

let world: CloudLinkWorld;
afterEach(async () => {
  await world?.close();
});

type Emitted<T extends ClientEmitted['type']> = Extract<ClientEmitted, { type: T }>;

/** Records what an actor emits. */
function record(actor: AnyActorRef) {
  const events: ClientEmitted[] = [];
  actor.on('*', (e: ClientEmitted) => events.push(e));
  return {
    events,
    of: <T extends ClientEmitted['type']>(type: T) => events.filter((e): e is Emitted<T> => e.type === type),
  };
}

function nextMessage(transport: Transport): Promise<string | Uint8Array> {
  return new Promise((resolve) => {
    const off = transport.on('message', (frame) => {
      off();
      resolve(frame);
    });
  });
}

describe('cloudlink host and peer machines (memory network, memory WebRTC)', () => {
  it('link a host and two peers, each pair exchanging messages both ways', async () => {
    world = createCloudLinkWorld();
    const host = world.host({ lobby: 'L', name: 'host' });
    const hostLog = record(host);
    await waitFor(host, (s) => s.matches({ active: { protocol: 'hosting' } }));
    const peers = [world.peer({ lobby: 'L' }), world.peer({ lobby: 'L' })];
    const peerLogs = peers.map(record);

    await waitFor(host, (s) => Object.values(s.context.links).filter((l) => l.stage === 'ready').length === 2);
    for (const peer of peers) await waitFor(peer, (s) => s.matches({ active: { protocol: { linking: 'linked' } } }));

    const hostId = host.getSnapshot().context.id!;
    for (const [i, peer] of peers.entries()) {
      const peerId = peer.getSnapshot().context.id!;
      const fromHost = hostLog.of('linked').find((e) => e.detail.id === peerId)!;
      const fromPeer = peerLogs[i]!.of('linked')[0]!;
      expect(fromPeer.detail.id).toBe(hostId);
      const got = nextMessage(fromPeer.detail.transport);
      fromHost.detail.transport.send(`hi ${i}`);
      expect(await got).toBe(`hi ${i}`);
      const back = nextMessage(fromHost.detail.transport);
      fromPeer.detail.transport.send(new Uint8Array([i, 1, 2]));
      expect(await back).toEqual(new Uint8Array([i, 1, 2]));
    }
    expect(hostLog.of('initialized')[0]!.detail.id).toBe(hostId);
  });

  it('sends the peer back to the lobby when the host leaves, and links it to the next host', async () => {
    world = createCloudLinkWorld();
    const first = world.host({ lobby: 'L' });
    const peer = world.peer({ lobby: 'L' });
    const peerLog = record(peer);
    await waitFor(peer, (s) => s.matches({ active: { protocol: { linking: 'linked' } } }));
    const firstId = first.getSnapshot().context.id;
    first.send({ type: 'leave' });
    expect(first.getSnapshot().value).toBe('closed');
    await waitFor(peer, (s) => s.matches({ active: { protocol: 'lobby' } }) && s.context.hosts.length === 0);
    // The host's data channels close as it stops, racing its SHUTDOWN through
    // the server: the peer sees the link lost or the host left, once.
    expect(peerLog.of('unlinked')).toHaveLength(1);
    expect(peerLog.of('unlinked')[0]!.detail).toEqual({ id: firstId, reason: expect.stringMatching(/^(left|lost)$/) });

    const second = world.host({ lobby: 'L' });
    await waitFor(peer, (s) => s.matches({ active: { protocol: { linking: 'linked' } } }));
    expect(peer.getSnapshot().context.host).toBe(second.getSnapshot().context.id);
  });

  it('drops the link on the host when a peer vanishes mid-handshake, leaving nothing in the server', async () => {
    world = createCloudLinkWorld();
    const host = world.host({ lobby: 'L' });
    const hostLog = record(host);
    const peer = world.peer({ lobby: 'L' });
    // Stop the peer the moment the host has sent its offer.
    await waitFor(host, (s) => Object.values(s.context.links).some((l) => l.stage === 'awaitingReturnOffer'));
    const peerId = peer.getSnapshot().context.id!;
    peer.stop();
    await waitFor(host, (s) => Object.keys(s.context.links).length === 0);
    expect(hostLog.of('unlinked')).toEqual([{ type: 'unlinked', detail: { id: peerId, reason: 'left' } }]);
    await settle();
    expect(world.server.stats()).toEqual({ connections: 1, lobbies: 1 });
  });

  it('reports a failed WebRTC link as unlinked (failed) on both sides, then the host offers again and they relink', async () => {
    world = createCloudLinkWorld();
    const host = world.host({ lobby: 'L' });
    const hostLog = record(host);
    const peer = world.peer({ lobby: 'L' });
    const peerLog = record(peer);
    await waitFor(peer, (s) => s.matches({ active: { protocol: { linking: 'linked' } } }));
    world.rtc.fail();
    await waitFor(peer, () => peerLog.of('unlinked').length === 1 && hostLog.of('unlinked').length === 1);
    expect(peerLog.of('unlinked')[0]!.detail.reason).toBe('failed');
    expect(hostLog.of('unlinked')[0]!.detail.reason).toBe('failed');
    // Both stay in good standing with the server, and the pair heals.
    await waitFor(peer, () => peerLog.of('linked').length === 2);
    await waitFor(host, (s) => s.context.links[peer.getSnapshot().context.id!]?.stage === 'ready');
    expect(host.getSnapshot().context.links[peer.getSnapshot().context.id!]).toMatchObject({
      generation: 2,
      failures: 0,
    });
    expect(world.server.stats().connections).toBe(2);
  });

  it('gives up on a peer that never answers after handshakeTimeout, offering offerAttempts times', async () => {
    world = createCloudLinkWorld();
    const host = world.host({ lobby: 'L', handshakeTimeout: 5000, offerAttempts: 2 });
    const hostLog = record(host);
    await waitFor(host, (s) => s.matches({ active: { protocol: 'hosting' } }));
    // A peer that joins but never takes offers: a raw client.
    const mute = await world.network.connect('cloudlink', { path: '/ws/game' });
    mute.send('{"opcode":2}');
    mute.send('{"opcode":5,"payload":"L"}');
    await waitFor(host, (s) => Object.values(s.context.links).some((l) => l.stage === 'awaitingReturnOffer'));
    world.clock.increment(5000);
    await waitFor(host, (s) =>
      Object.values(s.context.links).some((l) => l.generation === 2 && l.stage === 'awaitingReturnOffer'),
    );
    world.clock.increment(5000);
    await settle();
    expect(host.getSnapshot().context.links).toEqual({});
    expect(hostLog.of('unlinked').map((e) => e.detail.reason)).toEqual(['timeout', 'timeout']);
    mute.close();
  });

  it('answers the server KEEPALIVE and stays connected across many intervals', async () => {
    world = createCloudLinkWorld({ server: { keepaliveInterval: 1000 } });
    const host = world.host({ lobby: 'L', serverTimeout: 2500 });
    await waitFor(host, (s) => s.matches({ active: { protocol: 'hosting' } }));
    for (let i = 0; i < 10; i++) {
      world.clock.increment(1000);
      await settle();
    }
    expect(host.getSnapshot().matches({ active: { protocol: 'hosting' } })).toBe(true);
    expect(world.server.stats().connections).toBe(1);
  });

  it('fails with ERR_KEEPALIVE_TIMEOUT when the server goes quiet', async () => {
    world = createCloudLinkWorld({ server: { keepaliveInterval: 60_000 } });
    const peer = world.peer({ lobby: 'L', serverTimeout: 5000 });
    const log = record(peer);
    await waitFor(peer, (s) => s.matches({ active: { protocol: 'lobby' } }));
    world.clock.increment(5000);
    expect(peer.getSnapshot().value).toBe('failed');
    expect(peer.getSnapshot().context.error?.code).toBe('ERR_KEEPALIVE_TIMEOUT');
    expect(log.of('stopped')[0]!.detail.error?.code).toBe('ERR_KEEPALIVE_TIMEOUT');
  });

  it('fails with the server reason when it answers VIOLATION', async () => {
    world = createCloudLinkWorld();
    const host = world.host({ lobby: 'L', version: '9' });
    await waitFor(host, (s) => s.status === 'done');
    expect(host.getSnapshot().value).toBe('failed');
    expect(host.getSnapshot().context.error).toMatchObject({
      code: 'ERR_VIOLATION',
      message: expect.stringContaining('unsupported version 9'),
    });
  });

  it('fails with ERR_CONNECT_FAILED when the server cannot be reached', async () => {
    const signalling = fromTransport(() => createMemoryNetwork().connect('nobody-listens'), clientCodec());
    const peer = createActor(cloudlinkPeer.provide({ actors: { signalling } }), { input: { lobby: 'L' } }).start();
    await waitFor(peer, (s) => s.status === 'done');
    expect(peer.getSnapshot().value).toBe('failed');
    expect(peer.getSnapshot().context.error?.code).toBe('ERR_CONNECT_FAILED');
  });

  it('tells the caller how to provide a missing signalling actor', async () => {
    const actor = createActor(cloudlinkHost, { input: { lobby: 'L' } });
    actor.start();
    await waitFor(actor, (s) => s.status === 'done');
    expect(actor.getSnapshot().context.error?.message).toMatch(
      /No `signalling` actor was provided: use machine.provide/,
    );
  });
});
