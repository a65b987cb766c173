import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis } from '../adapters/redis/cluster.js';
import { redisFileRegistry } from '../adapters/redis/file-registry.js';
import type { Announcement, FileEntry } from '../machines/registry/protocol.js';
import { fileRegistryCompliance } from './file-registry-compliance.js';
import { hasRedis, startRedis, type TestRedis } from './redis-server.js';

// Needs a redis-server binary; `npm test` on a machine with Node alone skips this file.
describe.skipIf(!hasRedis)('Redis registry peer list', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  fileRegistryCompliance('redisFileRegistry', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    return {
      a: await redisFileRegistry(ca),
      b: await redisFileRegistry(cb),
      close: async () => void (await Promise.all([ca.close(), cb.close()])),
    };
  });

  /** An announcer that records what it is given. */
  const recorder = () => {
    const said: string[] = [];
    return {
      said,
      announce: (from: string, message: Announcement) =>
        void said.push(`${message.type} ${from}${'files' in message.detail ? ` ${message.detail.files.length}` : ''}`),
      flush: () => {},
      registerPeer: (peer: string, files: readonly FileEntry[]) =>
        ({ type: 'RegisterPeer', detail: { peer, files: files as FileEntry[] } }) as const,
    };
  };

  it("each change made on another process is announced once to this process's peers; none of its own", async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    try {
      const a = await redisFileRegistry(ca);
      const b = await redisFileRegistry(cb);
      const [ra, rb] = [recorder(), recorder()];
      a.attach!(ra);
      b.attach!(rb);
      a.add('peer-1', [{ path: 'a', size: 1 }]);
      a.update('peer-1', [
        { path: 'a', size: 1 },
        { path: 'b', size: 2 },
      ]);
      a.remove('peer-1');
      await vi.waitFor(() => expect(rb.said).toHaveLength(3));
      expect(rb.said).toEqual(['RegisterPeer peer-1 1', 'UpdatePeer peer-1 2', 'UnregisterPeer peer-1']);
      expect(ra.said).toEqual([]);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it("a dead process's peers are unregistered, and a late process loads the list", async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 1000, heartbeat: 60_000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 1000, heartbeat: 60_000 });
    let cc: Awaited<ReturnType<typeof connectRedis>> | undefined;
    try {
      const a = await redisFileRegistry(ca);
      const b = await redisFileRegistry(cb);
      const ra = recorder();
      a.attach!(ra);
      a.add('peer-a', []);
      b.add('peer-b', [{ path: 'x', size: 3 }]);
      await Promise.all([ca.beat(), cb.beat()]);
      cc = await connectRedis(redis.url, { prefix, process: 'C', ttl: 1000, heartbeat: 60_000 });
      const late = await redisFileRegistry(cc);
      expect(new Map(late.entries())).toEqual(
        new Map<string, unknown>([
          ['peer-a', []],
          ['peer-b', [{ path: 'x', size: 3 }]],
        ]),
      );
      cb.redis.disconnect(); // B goes silent, as if killed
      await new Promise((resolve) => setTimeout(resolve, 1100));
      await ca.beat();
      await vi.waitFor(() => expect(a.has('peer-b')).toBe(false));
      expect(ra.said).toEqual(['RegisterPeer peer-b 1', 'UnregisterPeer peer-b']);
      await vi.waitFor(() => expect(late.has('peer-b')).toBe(false));
    } finally {
      await Promise.all([ca.close(), cb.close(), cc?.close()]);
    }
  });
});
