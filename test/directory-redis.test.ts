import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe } from 'vitest';
import { redisLobbyDirectory } from '../adapters/redis/cloudlink-directory.js';
import { connectRedis } from '../adapters/redis/cluster.js';
import { directoryCompliance } from './directory-compliance.js';
import { hasRedis, startRedis, type TestRedis } from './redis-server.js';

// Needs a redis-server binary; `npm test` on a machine with Node alone skips this file.
describe.skipIf(!hasRedis)('Redis lobby directory', () => {
  let redis: TestRedis;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  directoryCompliance('redisLobbyDirectory', async () => {
    const prefix = `t${randomUUID().slice(0, 8)}:`;
    const ca = await connectRedis(redis.url, { prefix, process: 'A', ttl: 3000 });
    const cb = await connectRedis(redis.url, { prefix, process: 'B', ttl: 3000 });
    return {
      a: await redisLobbyDirectory(ca),
      b: await redisLobbyDirectory(cb),
      close: async () => void (await Promise.all([ca.close(), cb.close()])),
    };
  });
});
