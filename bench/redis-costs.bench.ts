/**
 * What the Redis capacity plan's two one-off costs take, measured on the
 * project's own code: `connectRedis` and `redisRouter` as `signalbox serve`
 * runs them (one router per protocol, namespaces cl, fd, wr, rg, sw).
 *
 * For each size N, on a throw-away redis-server:
 * 1. Process A's CloudLink router takes N sessions (`router.add`, which
 *    writes each route: SET `{prefix}cl:r:{id}` → A, SADD to A's index set).
 * 2. Redis is killed and started again empty on the same port; A reconnects
 *    and its routers write every route back in one pipeline (the rewrite on
 *    `up`). Measured: the time inside those SETs and SADDs (`INFO
 *    commandstats` usec), the CPU time of Redis's main thread over the
 *    rewrite (`INFO cpu`), and the wall time from A's `up` to the reply of a
 *    PING sent after the pipeline on the same connection.
 *    Baseline: N plain SETs of keys of the same shape, pipelined.
 * 3. Process B joins, A's command connection is cut (no LEAVE: as if
 *    killed), and after B's TTL B's heartbeat claims A, and its beats clear
 *    A's routes a slice of `clearBatch` (5,000) each, beat after beat.
 *    Measured: the number of beats, the longest EVAL and all of them in
 *    Redis's `SLOWLOG` (slower than 100 µs: not the GETs and DELs inside), CPU
 *    and the wall time of the beats. Baseline: the N baseline keys deleted
 *    by N plain DELs, pipelined.
 *
 * Each step checks its outcome (N routes written back, one EVAL a beat, none
 * left after the clear) and throws otherwise. The figure for 1,000,000 routes is a linear
 * extrapolation of the largest N, printed as such.
 *
 *   npm run bench:redis-costs
 *   npm run bench:redis-costs -- --sizes 10000,50000
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { connectRedis, type RedisCluster } from '../adapters/redis/cluster.js';
import { redisRouter, type RedisRouter } from '../adapters/redis/router.js';
import type { Message } from '../src/message.js';
import type { Transport } from '../src/transport.js';
import { hasRedis, startRedis, type TestRedis } from '../test/redis-server.js';
import { readOption, runMain } from './harness.js';

/** The namespaces `signalbox serve` gives its five routers (cli/server.ts): a clear walks all five. */
const NAMESPACES = ['cl', 'fd', 'wr', 'rg', 'sw'] as const;
const PREFIX = 'sb:';
/** B's presence TTL: A counts as dead this long after its last beat. */
const TTL = 1000;
/** `connectRedis`'s default `clearBatch`: routes deleted per heartbeat script. */
const CLEAR_BATCH = 5000;

/** The routers only store a session's transport; nothing is sent to it here. */
const idle: Transport = {
  isOpen: true,
  bufferedAmount: 0,
  send() {},
  on: () => () => {},
  close() {},
};
const encoder = { encode: (message: Message) => JSON.stringify(message) };

type Stats = Map<string, { calls: number; usec: number }>;
/**
 * `INFO commandstats` as command → { calls, usec } (usec: time inside the
 * commands, without reading, parsing and replying), and the CPU time of
 * Redis's main thread so far in ms (all of it: I/O, parsing, replies).
 */
async function snapshot(redis: Redis): Promise<{ stats: Stats; cpuMs: number }> {
  const info = (await redis.call('INFO', 'cpu', 'commandstats')) as string;
  const stats: Stats = new Map();
  for (const line of info.split('\r\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+),/.exec(line);
    if (match) stats.set(match[1]!, { calls: Number(match[2]), usec: Number(match[3]) });
  }
  const cpu = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  const cpuMs = (cpu('used_cpu_user_main_thread') + cpu('used_cpu_sys_main_thread')) * 1000;
  if (!Number.isFinite(cpuMs)) throw new Error('INFO cpu has no main-thread figures (Redis 6.2 or later needed)');
  return { stats, cpuMs };
}
const usecOf = (stats: Stats, ...commands: string[]) =>
  commands.reduce((sum, command) => sum + (stats.get(command)?.usec ?? 0), 0);
const callsOf = (stats: Stats, command: string) => stats.get(command)?.calls ?? 0;

/** Rejects after `ms` with a message naming `what`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    promise,
    sleep(ms, undefined, { ref: false }).then(() => {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }),
  ]);
}

async function routers(cluster: RedisCluster): Promise<RedisRouter[]> {
  const made: RedisRouter[] = [];
  for (const namespace of NAMESPACES) made.push(await redisRouter(cluster, encoder, { namespace }));
  return made;
}

interface Figures {
  n: number;
  /** Inside the SETs and SADDs (commandstats). */
  rewriteCmdMs: number;
  /** Redis's main thread CPU over the rewrite (with A's reconnection and beat). */
  rewriteCpuMs: number;
  rewriteWallMs: number;
  setCmdMs: number;
  setCpuMs: number;
  setWallMs: number;
  /** How many of B's beats cleared A (a slice of `clearBatch` routes each), the longest one's EVAL and all of them, as SLOWLOG timed them. */
  clearBeats: number;
  clearLongestMs: number;
  clearTotalMs: number;
  clearCpuMs: number;
  clearWallMs: number;
  delCmdMs: number;
  delCpuMs: number;
}

async function measure(n: number): Promise<Figures> {
  const redis: TestRedis = await startRedis();
  let probe = new Redis(redis.url, { lazyConnect: true });
  await probe.connect();
  let a: RedisCluster | undefined;
  let b: RedisCluster | undefined;
  try {
    // Process A: its `up` hooks run in the order they were added, so `upAt` is taken before its
    // routers write back, and the PING goes out on the same connection after their pipelines.
    a = await connectRedis(redis.url, { process: 'bench-a', prefix: PREFIX });
    const cluster = a;
    let upAt = 0;
    cluster.onState((state) => {
      if (state === 'up') upAt = performance.now();
    });
    const [cl] = await routers(cluster);
    let rewritten!: (ms: number) => void;
    const rewrite = new Promise<number>((resolve) => (rewritten = resolve));
    cluster.onState((state) => {
      if (state === 'up') void cluster.redis.ping().then(() => rewritten(performance.now() - upAt));
    });

    // 1. N sessions arrive, one route write each.
    const setKey = `${PREFIX}cl:rs:bench-a`;
    for (let i = 0; i < n; i++) cl!.add(randomUUID(), idle);
    await cluster.redis.ping();
    if ((await probe.scard(setKey)) !== n) throw new Error(`${n} sessions added, index set holds fewer`);

    // 2. Redis restarts empty; A writes its routes back. The probe connects afresh and reads
    // the CPU figure while A is still backing off (its first retry waits 100 ms).
    probe.disconnect();
    await redis.stop();
    await redis.start();
    probe = new Redis(redis.url, { lazyConnect: true });
    await probe.connect();
    const beforeRewrite = await snapshot(probe);
    if (callsOf(beforeRewrite.stats, 'sadd') > 0) throw new Error('A wrote back before the measure began: run again');
    const rewriteWallMs = await within(rewrite, 30_000, 'the routes to be written back');
    const written = await probe.scard(setKey);
    if (written !== n) throw new Error(`after the restart, ${written} of ${n} routes were written back`);
    const afterRewrite = await snapshot(probe);
    if (callsOf(afterRewrite.stats, 'set') !== n || callsOf(afterRewrite.stats, 'sadd') !== n)
      throw new Error(`the rewrite ran ${callsOf(afterRewrite.stats, 'set')} SETs, expected ${n}`);
    const rewriteCmdMs = usecOf(afterRewrite.stats, 'set', 'sadd') / 1000;
    const rewriteCpuMs = afterRewrite.cpuMs - beforeRewrite.cpuMs;

    // Baseline: N plain SETs of keys of the same shape, pipelined.
    const baseKeys = Array.from({ length: n }, () => `${PREFIX}cl:x:${randomUUID()}`);
    await probe.config('RESETSTAT');
    const sets = probe.pipeline();
    for (const key of baseKeys) sets.set(key, 'bench-a');
    const beforeSets = await snapshot(probe);
    let start = performance.now();
    await sets.exec();
    const setWallMs = performance.now() - start;
    const afterSets = await snapshot(probe);
    const setCmdMs = usecOf(afterSets.stats, 'set') / 1000;
    const setCpuMs = afterSets.cpuMs - beforeSets.cpuMs;

    // Baseline for the clear: the same keys deleted by N plain DELs, pipelined.
    await probe.config('RESETSTAT');
    const dels = probe.pipeline();
    for (const key of baseKeys) dels.del(key);
    const beforeDels = await snapshot(probe);
    await dels.exec();
    const afterDels = await snapshot(probe);
    const delCmdMs = usecOf(afterDels.stats, 'del') / 1000;
    const delCpuMs = afterDels.cpuMs - beforeDels.cpuMs;

    // 3. B joins while A is present (its first beat must not claim A before B's routers name
    // their route families), then A goes silent without leaving.
    await cluster.beat();
    b = await connectRedis(redis.url, {
      process: 'bench-b',
      prefix: PREFIX,
      ttl: TTL,
      heartbeat: 3_600_000,
      clearBatch: CLEAR_BATCH,
    });
    await routers(b);
    const dead = new Promise<string>((resolve) => b!.onDead(resolve));
    cluster.redis.disconnect();
    await sleep(TTL + 200);
    await probe.config('SET', 'slowlog-log-slower-than', '100');
    await probe.config('SET', 'slowlog-max-len', '1024');
    await probe.slowlog('RESET');
    const beforeClear = await snapshot(probe);
    // B's beats claim A, then clear its routes a slice (clearBatch) per beat until none is left.
    start = performance.now();
    let clearBeats = 0;
    // Done when A is no longer listed as a process whose routes are still to be cleared.
    do {
      await b.beat();
      clearBeats += 1;
      if (clearBeats > n / CLEAR_BATCH + 5) throw new Error(`routes still left after ${clearBeats} beats`);
    } while ((await probe.scard(`${PREFIX}clearing`)) > 0);
    const clearWallMs = performance.now() - start;
    const clearCpuMs = (await snapshot(probe)).cpuMs - beforeClear.cpuMs;
    // What may remain: B's presence (sb:procs), no route and no index set.
    const routesLeft = (await probe.keys(`${PREFIX}*`)).filter((key) => /:rs?:/.test(key));
    if (routesLeft.length > 0) throw new Error(`after the clear, ${routesLeft.length} route keys remain`);
    await probe.config('SET', 'slowlog-log-slower-than', '10000');
    if ((await within(dead, 5000, "B to clear A's routes")) !== 'bench-a') throw new Error('B cleared another process');
    const log = (await probe.slowlog('GET', 1024)) as [number, number, number, string[]][];
    const evals = log.filter((entry) => entry[3][0]?.toLowerCase() === 'eval').map((entry) => entry[2] / 1000);
    if (evals.length !== clearBeats)
      throw new Error(
        `expected ${clearBeats} EVALs in the slowlog, found ${evals.length}: ${log.map((e) => e[3][0]).join(',')}`,
      );
    const clearLongestMs = Math.max(...evals);
    const clearTotalMs = evals.reduce((x, y) => x + y, 0);

    return {
      n,
      rewriteCmdMs,
      rewriteCpuMs,
      rewriteWallMs,
      setCmdMs,
      setCpuMs,
      setWallMs,
      clearBeats,
      clearLongestMs,
      clearTotalMs,
      clearCpuMs,
      clearWallMs,
      delCmdMs,
      delCpuMs,
    };
  } finally {
    await b?.close();
    await a?.close();
    probe.disconnect();
    await redis.stop();
  }
}

runMain(async () => {
  if (!hasRedis)
    throw new Error('bench:redis-costs needs redis-server on the PATH (Debian: apt-get install redis-server)');
  const sizes = (readOption('sizes') ?? '10000,50000').split(',').map(Number);
  if (sizes.some((n) => !Number.isInteger(n) || n < 1 || n > 200_000))
    throw new Error(`--sizes must be whole numbers from 1 to 200000, comma-separated, got ${readOption('sizes')}`);
  console.log(`bench:redis-costs: routes ${sizes.join(', ')}, five routers per process as signalbox serve runs them`);
  const results: Figures[] = [];
  for (const n of sizes) {
    const f = await measure(n);
    results.push(f);
    const ms = (value: number) => `${value.toFixed(1)} ms`;
    console.log('');
    console.log(`N = ${n}`);
    console.log(`rewrite after restart, in SET + SADD (commandstats): ${ms(f.rewriteCmdMs)}`);
    console.log(`rewrite after restart, Redis main-thread CPU:        ${ms(f.rewriteCpuMs)}`);
    console.log(`rewrite after restart, wall (up -> last reply):      ${ms(f.rewriteWallMs)}`);
    console.log(`baseline, ${n} plain SETs pipelined, in SET:        ${ms(f.setCmdMs)}`);
    console.log(`baseline, ${n} plain SETs pipelined, Redis CPU:     ${ms(f.setCpuMs)}`);
    console.log(`baseline, ${n} plain SETs pipelined, wall:          ${ms(f.setWallMs)}`);
    console.log(
      `ratio rewrite/baseline: commandstats ${(f.rewriteCmdMs / f.setCmdMs).toFixed(2)}, CPU ${(f.rewriteCpuMs / f.setCpuMs).toFixed(2)}`,
    );
    console.log(`clear of a dead process, beats (${CLEAR_BATCH} routes each):  ${f.clearBeats}`);
    console.log(`clear of a dead process, longest EVAL (SLOWLOG):     ${ms(f.clearLongestMs)}`);
    console.log(`clear of a dead process, all its EVALs (SLOWLOG):    ${ms(f.clearTotalMs)}`);
    console.log(`clear of a dead process, Redis main-thread CPU:      ${ms(f.clearCpuMs)}`);
    console.log(`clear of a dead process, wall of B's beats:          ${ms(f.clearWallMs)}`);
    console.log(`baseline, ${n} plain DELs pipelined, in DEL:        ${ms(f.delCmdMs)}`);
    console.log(`baseline, ${n} plain DELs pipelined, Redis CPU:     ${ms(f.delCpuMs)}`);
    console.log(
      `ratio clear/baseline: EVALs/in DEL ${(f.clearTotalMs / f.delCmdMs).toFixed(2)}, CPU ${(f.clearCpuMs / f.delCpuMs).toFixed(2)}`,
    );
  }
  const largest = results.reduce((x, y) => (y.n > x.n ? y : x));
  const scale = 1_000_000 / largest.n;
  const s = (value: number) => `${((value * scale) / 1000).toFixed(2)} s`;
  const ms1 = (value: number) => `${value.toFixed(1)} ms`;
  console.log('');
  console.log(`extrapolated linearly from N = ${largest.n} to 1,000,000 routes:`);
  console.log(`rewrite, in SET + SADD: ${s(largest.rewriteCmdMs)}; Redis CPU: ${s(largest.rewriteCpuMs)}`);
  console.log(`rewrite, wall (one process writing them all): ${s(largest.rewriteWallMs)}`);
  console.log(`clear, all EVALs: ${s(largest.clearTotalMs)} in slices of at most ${ms1(largest.clearLongestMs)}`);
});
