export {
  connectRedis,
  RedisUnavailableError,
  type RedisCluster,
  type RedisClusterOptions,
  type RedisState,
} from './cluster.js';
export { redisRouter, type RedisRouter } from './router.js';
export { redisLobbyDirectory } from './cloudlink-directory.js';
export { redisPeerRegistry, type RedisPeerRegistry, type RedisPeerRegistryOptions } from './filedrop-registry.js';
export { redisWorkroomsRegistry, type RedisWorkroomsRegistry } from './workrooms-registry.js';
export { redisFileRegistry, type RedisFileRegistry } from './file-registry.js';
export { redisMatchRegistry } from './swarm-registry.js';
