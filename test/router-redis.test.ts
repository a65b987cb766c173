import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectRedis, RedisUnavailableError, type RedisCluster } from '../adapters/redis/cluster.js';
import { redisRouter } from '../adapters/redis/router.js';
import { ErrorCode } from '../src/errors.js';
import { RouterError } from '../src/router.js';
import { freePort, hasRedis, startRedis, type TestRedis } from './redis-server.js';
import { jsonEncoder, recordingTransport, routerCompliance } from './router-compliance.js';

// Needs a redis-server binary; `npm test` on a machine with Node alone skips this file.
describe.skipIf(!hasRedis)('Redis router', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  /** Two processes' clusters on one Redis, under a prefix of their own. */
  const twoProcesses = async (options: { clearBatch?: number } = {}): Promise<[RedisCluster, RedisCluster]> => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    return [
      await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000, ...options }),
      await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000, ...options }),
    ];
  };

  routerCompliance('redisRouter', async () => {
    const [ca, cb] = await twoProcesses();
    return {
      a: await redisRouter(ca, jsonEncoder),
      b: await redisRouter(cb, jsonEncoder),
      close: async () => void (await Promise.all([ca.close(), cb.close()])),
    };
  });

  it('beforeDeliver runs for each delivery from another process, before it is written', async () => {
    const [ca, cb] = await twoProcesses();
    try {
      const a = await redisRouter(ca, jsonEncoder);
      const seen: string[] = [];
      const far = recordingTransport();
      const b = await redisRouter(cb, jsonEncoder, {
        beforeDeliver: (id) => void seen.push(`before ${id} (${far.frames.length} written)`),
      });
      b.add('far', far);
      await new Promise((resolve) => setTimeout(resolve, 50));
      a.send('far', { type: 'M', detail: { n: 1 } });
      a.send('far', { type: 'M', detail: { n: 2 } });
      await vi.waitFor(() => expect(far.frames).toHaveLength(2));
      expect(seen).toEqual(['before far (0 written)', 'before far (1 written)']);
      // A delivery from this process itself does not run it.
      b.send('far', { type: 'M', detail: { n: 3 } });
      expect(seen).toHaveLength(2);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('deliver refuses a session no process holds with ERR_PEER_GONE', async () => {
    const [ca, cb] = await twoProcesses();
    try {
      const a = await redisRouter(ca, jsonEncoder);
      await redisRouter(cb, jsonEncoder);
      const error = await a.deliver('nobody', { type: 'M', detail: {} }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(RouterError);
      expect((error as RouterError).code).toBe(ErrorCode.PeerGone);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('an unreadable message on a process channel is dropped with a warn line; odd ids and quoted frames go through', async () => {
    const warnings: string[] = [];
    const logger = { info() {}, error() {}, warn: (message: string) => void warnings.push(message) };
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    try {
      const a = await redisRouter(ca, jsonEncoder);
      const b = await redisRouter(cb, jsonEncoder, { logger });
      const odd = 'm3:x\n"{}';
      const far = recordingTransport();
      b.add(odd, far);
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (const garbage of ['', 'x', 'm', 'm9:short', 'mx:id', 'c2:id[', 'c2:id{}'])
        await ca.redis.publish(`${prefix}p:B`, garbage);
      await a.deliver(odd, { type: 'M', detail: { text: 'a "quoted"\nline' } });
      await vi.waitFor(() => expect(far.frames).toHaveLength(1));
      expect(JSON.parse(far.frames[0] as string)).toEqual({ type: 'M', detail: { text: 'a "quoted"\nline' } });
      expect(warnings.filter((w) => w === 'redis: unreadable delivery dropped')).toHaveLength(7);
      expect(b.remoteReceived).toBe(1);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('routes carry no TTL and the heartbeat writes none: its cost is per process, not per session', async () => {
    const [ca, cb] = await twoProcesses();
    try {
      const a = await redisRouter(ca, jsonEncoder);
      const b = await redisRouter(cb, jsonEncoder);
      b.add('far', recordingTransport());
      await vi.waitFor(async () => expect(await ca.redis.get(`${ca.prefix}r:far`)).toBe('B'));
      expect(await ca.redis.ttl(`${ca.prefix}r:far`)).toBe(-1);
      await ca.redis.del(`${ca.prefix}r:far`);
      await cb.beat();
      expect(await ca.redis.exists(`${ca.prefix}r:far`)).toBe(0);
      const error = await a.deliver('far', { type: 'M', detail: {} }).catch((e: unknown) => e);
      expect((error as RouterError).code).toBe(ErrorCode.PeerGone);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('a process found dead: its routes are refused, then deleted by the process that clears it; a route taken over stays', async () => {
    const [ca, cb] = await twoProcesses();
    try {
      const a = await redisRouter(ca, jsonEncoder);
      const b = await redisRouter(cb, jsonEncoder);
      const moved = recordingTransport();
      b.add('moved', moved);
      // Process G died without a word: present with an old heartbeat, its routes still written.
      const key = (k: string) => `${ca.prefix}${k}`;
      await ca.redis
        .multi()
        .zadd(key('procs'), 0, 'G')
        .set(key('r:ghost'), 'G')
        .sadd(key('rs:G'), 'ghost', 'moved')
        .exec();
      await vi.waitFor(async () => expect(await ca.redis.get(key('r:moved'))).toBe('B'));
      const before = await a.deliver('ghost', { type: 'M', detail: {} }).catch((e: unknown) => e);
      expect((before as RouterError).code).toBe(ErrorCode.PeerGone);

      await ca.beat();
      expect(await ca.redis.zscore(key('procs'), 'G')).toBeNull();
      expect(await ca.redis.exists(key('r:ghost'), key('rs:G'))).toBe(0);
      expect(await ca.redis.get(key('r:moved'))).toBe('B');
      await a.deliver('moved', { type: 'M', detail: { n: 1 } });
      await vi.waitFor(() => expect(moved.frames).toHaveLength(1));
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('a dead process with more routes than clearBatch is cleared a slice per heartbeat, by any process', async () => {
    const [ca, cb] = await twoProcesses({ clearBatch: 2 });
    try {
      await redisRouter(ca, jsonEncoder);
      await redisRouter(cb, jsonEncoder);
      const key = (k: string) => `${ca.prefix}${k}`;
      const ghosts = ['g1', 'g2', 'g3', 'g4', 'g5'];
      const write = ca.redis.multi().zadd(key('procs'), 0, 'G');
      for (const id of ghosts) write.set(key(`r:${id}`), 'G');
      await write.sadd(key('rs:G'), ...ghosts).exec();
      const left = async () => (await ca.redis.mget(...ghosts.map((id) => key(`r:${id}`)))).filter(Boolean).length;

      await ca.beat();
      expect(await ca.redis.zscore(key('procs'), 'G')).toBeNull();
      expect(await left()).toBe(3);
      expect(await ca.redis.smembers(key('clearing'))).toEqual(['G']);
      await cb.beat();
      expect(await left()).toBe(1);
      await ca.beat();
      expect(await left()).toBe(0);
      expect(await ca.redis.exists(key('rs:G'))).toBe(0);
      expect(await ca.redis.smembers(key('clearing'))).toEqual([]);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('a process that leaves clears a slice of its routes itself; the next heartbeats clear the rest', async () => {
    const [ca, cb] = await twoProcesses({ clearBatch: 2 });
    let closed = false;
    try {
      const a = await redisRouter(ca, jsonEncoder);
      await redisRouter(cb, jsonEncoder);
      const ids = ['l1', 'l2', 'l3'];
      for (const id of ids) a.add(id, recordingTransport());
      const key = (k: string) => `${ca.prefix}${k}`;
      const left = async () => (await cb.redis.mget(...ids.map((id) => key(`r:${id}`)))).filter(Boolean).length;
      await vi.waitFor(async () => expect(await left()).toBe(3));
      await ca.close();
      closed = true;
      expect(await cb.redis.zscore(key('procs'), 'A')).toBeNull();
      expect(await left()).toBe(1);
      expect(await cb.redis.smembers(key('clearing'))).toEqual(['A']);
      await cb.beat();
      expect(await left()).toBe(0);
      expect(await cb.redis.exists(key('rs:A'))).toBe(0);
      expect(await cb.redis.smembers(key('clearing'))).toEqual([]);
    } finally {
      await Promise.all([closed ? undefined : ca.close(), cb.close()]);
    }
  });

  it('a process present again before its routes are cleared keeps the rest of them', async () => {
    const [ca, cb] = await twoProcesses({ clearBatch: 1 });
    try {
      await redisRouter(ca, jsonEncoder);
      const key = (k: string) => `${ca.prefix}${k}`;
      await ca.redis
        .multi()
        .zadd(key('procs'), 0, 'G')
        .set(key('r:g1'), 'G')
        .set(key('r:g2'), 'G')
        .sadd(key('rs:G'), 'g1', 'g2')
        .exec();
      await ca.beat();
      expect(await ca.redis.mget(key('r:g1'), key('r:g2'))).toContain(null);
      // G was alive after all: its heartbeat comes back before the next slice.
      await ca.redis.zadd(key('procs'), Date.now(), 'G');
      await cb.beat();
      expect((await ca.redis.mget(key('r:g1'), key('r:g2'))).filter(Boolean)).toEqual(['G']);
      expect(await ca.redis.smembers(key('clearing'))).toEqual([]);
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('refuses a clearBatch that is not a positive integer', async () => {
    await expect(connectRedis(redis.url, { clearBatch: 0 })).rejects.toThrow(/clearBatch/);
    await expect(connectRedis(redis.url, { clearBatch: 1.5 })).rejects.toBeInstanceOf(RangeError);
  });

  it('a process declared dead while alive writes its routes again and is reachable again', async () => {
    const [ca, cb] = await twoProcesses();
    try {
      const a = await redisRouter(ca, jsonEncoder);
      const b = await redisRouter(cb, jsonEncoder);
      const far = recordingTransport();
      b.add('far', far);
      await vi.waitFor(async () => expect(await ca.redis.get(`${ca.prefix}r:far`)).toBe('B'));
      await ca.redis.zadd(`${ca.prefix}procs`, 0, 'B');
      await ca.beat();
      expect(await ca.redis.zscore(`${ca.prefix}procs`, 'B')).toBeNull();
      await vi.waitFor(
        async () => {
          await a.deliver('far', { type: 'M', detail: { n: 1 } });
        },
        { timeout: 5000, interval: 100 },
      );
      await vi.waitFor(() => expect(far.frames.length).toBeGreaterThan(0));
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  });

  it('refuses to start when Redis is unreachable', async () => {
    const port = await freePort();
    await expect(connectRedis(`redis://127.0.0.1:${port}`)).rejects.toBeInstanceOf(RedisUnavailableError);
  });

  it('while Redis is down: local delivery goes on, remote is refused with ERR_UNAVAILABLE; it recovers when Redis returns', async () => {
    const warnings: string[] = [];
    const logger = { info() {}, error() {}, warn: (message: string) => void warnings.push(message) };
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000, logger });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    try {
      const a = await redisRouter(ca, jsonEncoder);
      const b = await redisRouter(cb, jsonEncoder);
      const near = recordingTransport();
      const far = recordingTransport();
      a.add('near', near);
      b.add('far', far);

      await redis.stop();
      await vi.waitFor(() => expect(ca.state).toBe('down'));
      expect(warnings).toContain('redis lost');
      expect(a.send('near', { type: 'M', detail: { n: 1 } })).toBe(true);
      expect(near.frames).toHaveLength(1);
      expect(a.send('far', { type: 'M', detail: { n: 2 } })).toBe(false);
      const error = await a.deliver('far', { type: 'M', detail: {} }).catch((e: unknown) => e);
      expect((error as RouterError).code).toBe(ErrorCode.Unavailable);

      // Redis comes back empty: each process writes its routes again once it is back.
      await redis.start();
      await vi.waitFor(() => expect([ca.state, cb.state]).toEqual(['up', 'up']), { timeout: 10_000 });
      await vi.waitFor(
        async () => {
          await a.deliver('far', { type: 'M', detail: { n: 3 } });
        },
        { timeout: 5000 },
      );
      await vi.waitFor(() => expect(far.frames.length).toBeGreaterThan(0));
    } finally {
      await Promise.all([ca.close(), cb.close()]);
    }
  }, 30_000);
});
