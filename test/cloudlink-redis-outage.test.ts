import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createActor, waitFor } from 'xstate';
import { createMemoryNetwork } from '../adapters/memory/index.js';
import { redisLobbyDirectory } from '../adapters/redis/cloudlink-directory.js';
import { connectRedis, type RedisCluster } from '../adapters/redis/cluster.js';
import { redisRouter } from '../adapters/redis/router.js';
import type { ClientEmitted } from '../machines/cloudlink/client.js';
import { clientCodec, serverCodec } from '../machines/cloudlink/codec.js';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import { Opcode, type ServerMessage } from '../machines/cloudlink/protocol.js';
import { createCloudLinkServer, type CloudLinkServer } from '../machines/cloudlink/server.js';
import { fromTransport, serve } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import { memoryRtcFabric } from '../testing/memory-rtc.js';
import { hasRedis, startRedis, type TestRedis } from './redis-server.js';

/**
 * A transport that holds back the frames `hold` picks until `release`, to
 * stop a client's handshake at a chosen step.
 */
function gated(connect: Promise<Transport>, hold: (frame: string) => boolean) {
  const held: string[] = [];
  let holding = true;
  let inner: Transport | undefined;
  const transport = connect.then((target) => {
    inner = target;
    return new Proxy(target, {
      get(t, prop) {
        if (prop === 'send')
          return (frame: string | Uint8Array) => {
            if (holding && typeof frame === 'string' && hold(frame)) held.push(frame);
            else t.send(frame);
          };
        const value = Reflect.get(t, prop, t) as unknown;
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(t) : value;
      },
    });
  });
  return {
    transport,
    held,
    release() {
      holding = false;
      for (const frame of held.splice(0)) inner!.send(frame);
    },
  };
}

// Two CloudLink servers in this process, each on its own Redis cluster link (as two `signalbox
// serve` processes), with the real host and peer machines on them.
describe.skipIf(!hasRedis)('CloudLink client machines across two processes while Redis is down', () => {
  let redis: TestRedis;
  const clusters: RedisCluster[] = [];
  const servers: CloudLinkServer[] = [];
  const network = createMemoryNetwork();
  beforeAll(async () => {
    redis = await startRedis();
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    for (const name of ['a', 'b']) {
      const cluster = await connectRedis(redis.url, { prefix, process: name.toUpperCase(), ttl: 2000 });
      await cluster.beat();
      const server = createCloudLinkServer({
        router: await redisRouter<ServerMessage>(cluster, serverCodec(), { namespace: 'cl' }),
        directory: await redisLobbyDirectory(cluster),
      });
      serve(network.listen(name), server);
      clusters.push(cluster);
      servers.push(server);
    }
  });
  afterAll(async () => {
    for (const server of servers) await server.close();
    await Promise.all(clusters.map((c) => c.close()));
    await redis?.stop();
  });

  it('the host is told its unreachable peer left (SHUTDOWN_ACK: unlinked, left); both meet again and link when Redis returns', async () => {
    const fabric = memoryRtcFabric();
    // The host's first MAKE_OFFER is held back until Redis is down.
    const hostLink = gated(
      network.connect('a', { path: '/ws/game' }),
      (frame) => (JSON.parse(frame) as { opcode: number }).opcode === Opcode.MAKE_OFFER,
    );
    const host = createActor(
      cloudlinkHost.provide({
        actors: { signalling: fromTransport(() => hostLink.transport, clientCodec()), rtc: fabric.rtc },
      }),
      { input: { lobby: 'L' } },
    ).start();
    const peer = createActor(
      cloudlinkPeer.provide({
        actors: {
          signalling: fromTransport(() => network.connect('b', { path: '/ws/game' }), clientCodec()),
          rtc: fabric.rtc,
        },
      }),
      { input: { lobby: 'L' } },
    ).start();
    const hostEvents: ClientEmitted[] = [];
    const peerEvents: ClientEmitted[] = [];
    host.on('*', (e: ClientEmitted) => hostEvents.push(e));
    peer.on('*', (e: ClientEmitted) => peerEvents.push(e));
    try {
      await waitFor(host, (s) => s.matches({ active: { protocol: 'hosting' } }));
      await waitFor(peer, (s) => s.matches({ active: { protocol: 'lobby' } }) && s.context.hosts.length === 1);
      const hostId = host.getSnapshot().context.id!;
      const peerId = peer.getSnapshot().context.id!;
      // Introduced across the processes; the host's offer is made, and held.
      await vi.waitFor(() => expect(hostLink.held).toHaveLength(1));

      await redis.stop();
      await vi.waitFor(() => expect(clusters.map((c) => c.state)).toEqual(['down', 'down']), { timeout: 10_000 });
      hostLink.release();
      // SHUTDOWN_ACK for the peer: the host drops the link as a departure, and does not offer again.
      await vi.waitFor(() =>
        expect(hostEvents).toContainEqual({ type: 'unlinked', detail: { id: peerId, reason: 'left' } }),
      );
      expect(host.getSnapshot().context.links).toEqual({});
      expect(host.getSnapshot().status).toBe('active');

      await redis.start();
      await vi.waitFor(() => expect(clusters.map((c) => c.state)).toEqual(['up', 'up']), { timeout: 15_000 });
      // Introduced again on both sides; the handshake starts over and both ends link.
      await vi.waitFor(
        () => {
          expect(hostEvents.some((e) => e.type === 'linked' && e.detail.id === peerId)).toBe(true);
          expect(peerEvents.some((e) => e.type === 'linked' && e.detail.id === hostId)).toBe(true);
        },
        { timeout: 10_000 },
      );
      expect(peer.getSnapshot().status).toBe('active');
    } finally {
      host.stop();
      peer.stop();
    }
  });
});
