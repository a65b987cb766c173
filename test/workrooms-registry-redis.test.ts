import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis } from '../adapters/redis/cluster.js';
import { redisWorkroomsRegistry } from '../adapters/redis/workrooms-registry.js';
import type { ServerMessage } from '../machines/workrooms/protocol.js';
import { hasRedis, startRedis, type TestRedis } from './redis-server.js';
import { workroomsRegistryCompliance } from './workrooms-registry-compliance.js';

// Needs a redis-server binary; `npm test` on a machine with Node alone skips this file.
describe.skipIf(!hasRedis)('Redis workrooms registry', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  workroomsRegistryCompliance('redisWorkroomsRegistry', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    const evicted: string[] = [];
    const a = await redisWorkroomsRegistry(ca, { router: { send: () => true } });
    const b = await redisWorkroomsRegistry(cb, { router: { send: () => true } });
    a.attach((connection) => evicted.push(connection));
    b.attach((connection) => evicted.push(connection));
    return { a, b, evicted, close: async () => void (await Promise.all([ca.close(), cb.close()])) };
  });

  it("a dead process's sessions are released and the other side of their calls told here", async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 1000, heartbeat: 60_000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 1000, heartbeat: 60_000 });
    const told: [string, ServerMessage][] = [];
    try {
      const a = await redisWorkroomsRegistry(ca, { router: { send: (id, m) => told.push([id, m]) > 0 } });
      const b = await redisWorkroomsRegistry(cb, { router: { send: () => true } });
      a.claim('alice', 'c1');
      b.claim('bob', 'c1');
      await vi.waitFor(() => expect(a.isOnline('bob')).toBe(true));
      a.addCall({ callid: 'call-1', from: 'alice', to: 'bob' });
      await vi.waitFor(() => expect(b.call('call-1')).toBeDefined());
      await Promise.all([ca.beat(), cb.beat()]);
      cb.redis.disconnect(); // B goes silent, as if killed
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await ca.beat();
      await vi.waitFor(() => expect(a.holder('bob')).toBeUndefined());
      expect(told).toEqual([
        ['alice', { type: 'hangup', detail: { calls: [{ callid: 'call-1', sessionid: 'bob' }] } }],
      ]);
      expect(a.size).toEqual({ sessions: 1, online: 1, calls: 0 });
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });
});
