import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SimulatedClock } from 'xstate';
import { connectRedis } from '../adapters/redis/cluster.js';
import { redisRouter } from '../adapters/redis/router.js';
import { serverCodec } from '../machines/swarm/codec.js';
import { redisMatchRegistry } from '../adapters/redis/swarm-registry.js';
import type { ServerMessage } from '../machines/swarm/protocol.js';
import type { Match } from '../machines/swarm/registry.js';
import { matchRegistryCompliance } from './match-registry-compliance.js';
import { hasRedis, startRedis, type TestRedis } from './redis-server.js';
import { until } from './socket-helpers.js';
import { swarmTestbed } from './swarm-helpers.js';

// Needs a redis-server binary; `npm test` on a machine with Node alone skips this file.
describe.skipIf(!hasRedis)('Redis swarm match registry', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  matchRegistryCompliance('redisMatchRegistry', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    // Present in the cluster: a pairing skips requests of processes that are not.
    await Promise.all([ca.beat(), cb.beat()]);
    return {
      a: await redisMatchRegistry(ca, { router: { send: () => true } }),
      b: await redisMatchRegistry(cb, { router: { send: () => true } }),
      close: async () => void (await Promise.all([ca.close(), cb.close()])),
    };
  });

  it("a swarm server on it: a match Redis decided is told to both ends, and expires on the server's clock", async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const cluster = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    try {
      await cluster.beat();
      const router = await redisRouter<ServerMessage>(cluster, serverCodec(), { namespace: 'sw' });
      const registry = await redisMatchRegistry(cluster, { router });
      const clock = new SimulatedClock();
      const bed = swarmTestbed({ router, registry, clock, matchTimeout: 1000 });
      const alice = await bed.connect('laptop');
      alice.send({ type: 'requesting_peers', detail: { context_id: 'a1' } });
      await until(() => registry.pending === 1);
      const bob = await bed.connect('phone');
      bob.send({ type: 'requesting_peers', detail: { context_id: 'b1' } });
      await until(() => alice.inbox.length > 0 && bob.inbox.length > 0);
      expect(alice.inbox.splice(0)).toEqual([{ type: 'requesting_offer', detail: { context_id: 'a1' } }]);
      expect(bob.inbox.splice(0)).toEqual([{ type: 'wait_for_offer', detail: { context_id: 'b1' } }]);
      expect(bed.server.stats()).toMatchObject({ matches: 1 });
      clock.increment(999);
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect([alice.inbox, bob.inbox]).toEqual([[], []]);
      clock.increment(1);
      await until(() => alice.inbox.length > 0 && bob.inbox.length > 0);
      expect(alice.inbox[0]).toMatchObject({ type: 'error', detail: { code: 'ERR_TIMEOUT', context_id: 'a1' } });
      expect(bob.inbox[0]).toMatchObject({ type: 'error', detail: { code: 'ERR_TIMEOUT', context_id: 'b1' } });
      expect(bed.server.stats()).toMatchObject({ matches: 0 });
      await bed.close();
    } finally {
      await cluster.close();
    }
  });

  it('a match dropped on A (a relay to its end on B failed, Redis up) is over on B, which tells its end', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    const told: [string, ServerMessage][] = [];
    try {
      await Promise.all([ca.beat(), cb.beat()]);
      const a = await redisMatchRegistry(ca, { router: { send: () => true } });
      const b = await redisMatchRegistry(cb, { router: { send: (id, m) => told.push([id, m]) > 0 } });
      a.request({ session: 'alice', client: 'laptop', context: 'c1' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      b.request({ session: 'bob', client: 'phone', context: 'c2' });
      await vi.waitFor(() => expect([a.matches, b.matches]).toEqual([1, 1]));
      expect(a.offer('alice', 'c1')).toEqual({ session: 'bob', context: 'c2' });
      expect(a.drop('alice', 'c1')).toEqual({ session: 'bob', context: 'c2' });
      await vi.waitFor(() => expect(told).toHaveLength(1));
      expect(told[0]).toEqual([
        'bob',
        {
          type: 'error',
          detail: {
            code: 'ERR_PEER_GONE',
            message: 'the other peer of this match could not be reached',
            context_id: 'c2',
          },
        },
      ]);
      expect([b.matches, b.has('bob', 'c2')]).toEqual([0, false]);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it("a dead process's requests are never paired, and the other end of its matches is told here", async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 1000, heartbeat: 60_000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 1000, heartbeat: 60_000 });
    const told: [string, ServerMessage][] = [];
    try {
      await Promise.all([ca.beat(), cb.beat()]);
      const a = await redisMatchRegistry(ca, { router: { send: (id, m) => told.push([id, m]) > 0 } });
      const b = await redisMatchRegistry(cb, { router: { send: () => true } });
      const made: Match[] = [];
      a.attach!((m) => made.push(m));
      b.request({ session: 'bob', client: 'phone', context: 'c1' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      a.request({ session: 'alice', client: 'laptop', context: 'c2' });
      await vi.waitFor(() => expect(made).toHaveLength(1));
      b.request({ session: 'bob', client: 'phone', context: 'c3' }); // queued: nobody else waits
      await new Promise((resolve) => setTimeout(resolve, 100));
      cb.redis.disconnect(); // B goes silent, as if killed
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await ca.beat();
      await vi.waitFor(() => expect(told).toHaveLength(1));
      expect(told[0]).toEqual([
        'alice',
        {
          type: 'error',
          detail: { code: 'ERR_PEER_GONE', message: 'the other peer of this match left', context_id: 'c2' },
        },
      ]);
      expect(a.has('alice', 'c2')).toBe(false);
      // bob's queued request died with B: a new request waits instead of pairing with it.
      a.request({ session: 'carol', client: 'tablet', context: 'c4' });
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(made).toHaveLength(1);
      expect(a.pending).toBe(1);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });
});
