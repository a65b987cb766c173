import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis, type RedisCluster } from '../adapters/redis/cluster.js';
import { redisPeerRegistry } from '../adapters/redis/filedrop-registry.js';
import { peerRegistryCompliance, type Deliver } from './filedrop-registry-compliance.js';
import { hasRedis, startRedis, type TestRedis } from './redis-server.js';

// Needs a redis-server binary; `npm test` on a machine with Node alone skips this file.
describe.skipIf(!hasRedis)('Redis filedrop registry', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  const twoProcesses = async (): Promise<[RedisCluster, RedisCluster]> => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    return [
      await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 }),
      await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 }),
    ];
  };
  const routerOf = (deliver: Deliver, closed: string[] = []) => ({
    send: deliver,
    close: (id: string) => void closed.push(id),
  });

  peerRegistryCompliance('redisPeerRegistry', async (deliver) => {
    const [ca, cb] = await twoProcesses();
    return {
      a: await redisPeerRegistry(ca, { router: routerOf(deliver) }),
      b: await redisPeerRegistry(cb, { router: routerOf(deliver) }),
      close: async () => void (await Promise.all([ca.close(), cb.close()])),
    };
  });

  it('draw hands out codes already claimed in Redis for this process, never the same twice', async () => {
    const [ca, cb] = await twoProcesses();
    try {
      let n = 0;
      // Both processes draw from the same short sequence: the claim decides who gets each.
      const generate = () => `CODE${n++ % 40}`;
      const a = await redisPeerRegistry(ca, { router: routerOf(() => true), generate, pool: 8 });
      const b = await redisPeerRegistry(cb, { router: routerOf(() => true), generate, pool: 8 });
      const drawn = [...Array(4)].flatMap(() => [a.draw(), b.draw()]);
      expect(new Set(drawn).size).toBe(drawn.length);
      for (const [i, code] of drawn.entries()) {
        expect(await ca.redis.get(`${ca.prefix}fd:c:${code}`)).toBe(i % 2 === 0 ? 'A' : 'B');
      }
      expect(a.add(drawn[0]!)).toBe(true);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('two processes taking one code at once: one keeps it, the other closes its session (1013)', async () => {
    const [ca, cb] = await twoProcesses();
    try {
      const closedA: string[] = [];
      const closedB: string[] = [];
      const a = await redisPeerRegistry(ca, { router: routerOf(() => true, closedA) });
      const b = await redisPeerRegistry(cb, { router: routerOf(() => true, closedB) });
      // Neither has heard of the other's yet: both take it here; Redis settles it.
      expect([a.add('SAMECODE'), b.add('SAMECODE')]).toEqual([true, true]);
      await vi.waitFor(() => expect([...closedA, ...closedB]).toEqual(['SAMECODE']));
      const winner = closedA.length ? 'B' : 'A';
      expect(await ca.redis.get(`${ca.prefix}fd:c:SAMECODE`)).toBe(winner);
      const loser = winner === 'A' ? b : a;
      const kept = winner === 'A' ? a : b;
      expect(kept.has('SAMECODE')).toBe(true);
      await vi.waitFor(() => expect(loser.has('SAMECODE')).toBe(true));
      expect(loser.add('SAMECODE')).toBe(false);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it("a dead process's codes are dropped and its partners here told; a closed one's at once", async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 1000, heartbeat: 60_000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 1000, heartbeat: 60_000 });
    const cc = await connectRedis(redis.url, { prefix, process: 'C', ttl: 1000, heartbeat: 60_000 });
    const told: string[] = [];
    try {
      const deliver: Deliver = (id, m) => told.push(`${id}: ${m.type} ${(m.detail as { peer: string }).peer}`) > 0;
      const a = await redisPeerRegistry(ca, { router: routerOf(deliver) });
      const b = await redisPeerRegistry(cb, { router: routerOf(() => true) });
      const c = await redisPeerRegistry(cc, { router: routerOf(() => true) });
      a.add('RECEIVE1');
      a.add('RECEIVE2');
      b.add('SENDERB1');
      c.add('SENDERC1');
      await vi.waitFor(() => expect(a.has('SENDERB1') && a.has('SENDERC1')).toBe(true));
      a.link('RECEIVE1', 'SENDERB1');
      a.link('RECEIVE2', 'SENDERC1');
      // B goes silent (as if killed: its command link cut, so it cannot come back): once its
      // presence is older than the TTL, the next heartbeat of another process clears it.
      await Promise.all([ca.beat(), cb.beat(), cc.beat()]);
      cb.redis.disconnect();
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await cc.beat();
      await ca.beat();
      await vi.waitFor(() => expect(a.has('SENDERB1')).toBe(false));
      expect(told).toEqual(['RECEIVE1: peer not exists SENDERB1']);
      expect(await ca.redis.exists(`${prefix}fd:m:B`)).toBe(0);
      // C closes: its codes go at once, without waiting for the TTL.
      await cc.close();
      await vi.waitFor(() => expect(a.has('SENDERC1')).toBe(false));
      expect(told).toEqual(['RECEIVE1: peer not exists SENDERB1', 'RECEIVE2: peer not exists SENDERC1']);
    } finally {
      await Promise.all([ca.close(), cb.close(), cc.close()]);
    }
  });
});
