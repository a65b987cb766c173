import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection } from 'werift';
import { createActor, waitFor, type Actor } from 'xstate';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import type { ClientEmitted } from '../machines/cloudlink/client.js';
import { clientCodec } from '../machines/cloudlink/codec.js';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import { fromRtc } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import type { Frame, Transport } from '../src/transport.js';
import { NDC_LOOPBACK, WERIFT_LOOPBACK } from './rtc-helpers.js';

let server: SignalboxServer;
const actors: Array<{ stop(): void }> = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  for (const actor of actors) actor.stop();
  await server.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

const url = (ugi: string) => `ws://127.0.0.1:${server.address.port}/ws/${ugi}?v=0`;
const provide = { rtc: fromRtc({ RTCPeerConnection, config: WERIFT_LOOPBACK }) };

function linkedEvents(actor: Actor<typeof cloudlinkHost> | Actor<typeof cloudlinkPeer>) {
  const linked: Array<{ id: string; transport: Transport }> = [];
  actor.on('linked', (e: Extract<ClientEmitted, { type: 'linked' }>) => linked.push(e.detail));
  return linked;
}

function collect(transport: Transport, count: number): Promise<Frame[]> {
  const frames: Frame[] = [];
  return new Promise((resolve) => {
    const off = transport.on('message', (frame) => {
      frames.push(frame);
      if (frames.length === count) {
        off();
        resolve(frames);
      }
    });
  });
}

describe('cloudlink end to end: real server, ws, werift', () => {
  it('links a host and two peers through INIT … ACK_READY, then moves bytes both ways on every channel', async () => {
    const signalling = (ugi: string) => fromTransport(() => webSocketTransport(url(ugi)), clientCodec());
    const host = createActor(cloudlinkHost.provide({ actors: { ...provide, signalling: signalling('e2e') } }), {
      input: { lobby: 'arena', name: 'host' },
    });
    const hostLinked = linkedEvents(host);
    actors.push(host.start());
    await waitFor(host, (s) => s.matches({ active: { protocol: 'hosting' } }), { timeout: 5000 });

    const peers = [0, 1].map(() => {
      const peer = createActor(cloudlinkPeer.provide({ actors: { ...provide, signalling: signalling('e2e') } }), {
        input: { lobby: 'arena' },
      });
      const linked = linkedEvents(peer);
      actors.push(peer.start());
      return { peer, linked };
    });

    await waitFor(host, (s) => Object.values(s.context.links).filter((l) => l.stage === 'ready').length === 2, {
      timeout: 15_000,
    });
    for (const { peer } of peers) {
      await waitFor(peer, (s) => s.matches({ active: { protocol: { linking: 'linked' } } }), { timeout: 15_000 });
    }
    expect(server.health().connections.cloudlink).toBe(3);
    expect(hostLinked).toHaveLength(2);

    const hostId = host.getSnapshot().context.id;
    for (const { peer, linked } of peers) {
      const peerId = peer.getSnapshot().context.id!;
      expect(linked).toHaveLength(1);
      expect(linked[0]!.id).toBe(hostId);
      const atHost = hostLinked.find((l) => l.id === peerId)!.transport;
      const atPeer = linked[0]!.transport;

      // host → peer: text and binary, in order
      const toPeer = collect(atPeer, 3);
      atHost.send('one');
      atHost.send(new Uint8Array(32 * 1024).fill(7));
      atHost.send(`three from ${hostId}`);
      const got = await toPeer;
      expect(got[0]).toBe('one');
      expect(got[1]).toEqual(new Uint8Array(32 * 1024).fill(7));
      expect(got[2]).toBe(`three from ${hostId}`);

      // peer → host
      const toHost = collect(atHost, 2);
      atPeer.send(`hello from ${peerId}`);
      atPeer.send(new Uint8Array([1, 2, 3]));
      expect(await toHost).toEqual([`hello from ${peerId}`, new Uint8Array([1, 2, 3])]);
    }

    // A peer leaves cleanly: the host drops that link, the other keeps working.
    const [leaving, staying] = peers;
    const leavingId = leaving!.peer.getSnapshot().context.id!;
    leaving!.peer.send({ type: 'leave' });
    await waitFor(host, (s) => !(leavingId in s.context.links), { timeout: 5000 });
    const stayingAtHost = hostLinked.find((l) => l.id === staying!.peer.getSnapshot().context.id)!.transport;
    const still = collect(staying!.linked[0]!.transport, 1);
    stayingAtHost.send('still here');
    expect(await still).toEqual(['still here']);
    await waitFor(host, () => server.health().connections.cloudlink === 2, { timeout: 5000 });
  });
});

describe('cloudlink end to end: node-datachannel', () => {
  it('links a host and a peer whose answering connections hold the offer candidates, each SDP a complete one', async () => {
    // Record every description the clients hand to the server, as the remote sees it.
    const sent: string[] = [];
    const rtc = fromRtc({ RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK });
    const signalling = () => {
      const codec = clientCodec();
      const encode = codec.encode.bind(codec);
      codec.encode = (message) => {
        const frame = encode(message);
        const payload = JSON.parse(String(frame)).payload;
        if (typeof payload?.sdp === 'string') sent.push(payload.sdp);
        return frame;
      };
      return fromTransport(() => webSocketTransport(url('e2e-ndc')), codec);
    };
    const host = createActor(cloudlinkHost.provide({ actors: { rtc, signalling: signalling() } }), {
      input: { lobby: 'ndc' },
    });
    const peer = createActor(cloudlinkPeer.provide({ actors: { rtc, signalling: signalling() } }), {
      input: { lobby: 'ndc' },
    });
    const hostLinked = linkedEvents(host);
    const peerLinked = linkedEvents(peer);
    actors.push(host.start(), peer.start());
    await waitFor(peer, (s) => s.matches({ active: { protocol: { linking: 'linked' } } }), { timeout: 15_000 });
    await waitFor(host, () => hostLinked.length === 1, { timeout: 15_000 });
    // Two offers and two answers, each with its candidates in it.
    expect(sent).toHaveLength(4);
    for (const sdp of sent) expect(sdp).toMatch(/\na=candidate:.* typ host/);
    const heard = collect(hostLinked[0]!.transport, 1);
    peerLinked[0]!.transport.send('over node-datachannel');
    expect(await heard).toEqual(['over node-datachannel']);
    host.send({ type: 'leave' });
    peer.send({ type: 'leave' });
  });
});
