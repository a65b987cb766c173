/**
 * Soak: does the server hand memory back? Churn (connect, get registered,
 * disconnect), then clients that stop reading, as issue 12 found them:
 * a filedrop client sent relays, a workrooms client asking `autocomplete`
 * 100 times a second of 20 sessions with ~15 KB profiles, and a registry
 * peer while 1,000-file lists pour in (see bench/README.md).
 *
 *   npm run bench:soak -- --steps 10000,30000,50000 --concurrency 50 --slow-seconds 10 --payload 60000
 *   npm run bench:soak -- --scenarios workrooms,registry
 *
 * The server (`startServer()` as the package ships it, see built-server.ts)
 * runs alone in a child process, so that the heap and RSS printed are the
 * server's; this process generates the load. At most `concurrency` + 24
 * sockets are open at once, far below any open-file limit.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'ws';
import { builtStartServer, bundleServer } from './built-server.js';

function option(name: string, fallback: string): string {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  if (at >= 0 && args[at + 1] !== undefined) return args[at + 1]!;
  return process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`] ?? fallback;
}

const SCENARIOS = ['churn', 'filedrop', 'workrooms', 'registry'] as const;
type Scenario = (typeof SCENARIOS)[number];

const steps = option('steps', '10000,30000,50000')
  .split(',')
  .map((n) => Number(n));
const concurrency = Number(option('concurrency', '50'));
const slowSeconds = Number(option('slow-seconds', '10'));
const payload = Number(option('payload', '60000'));
const scenarios = option('scenarios', SCENARIOS.join(',')).split(',') as Scenario[];
for (const [name, value] of Object.entries({
  concurrency,
  'slow-seconds': slowSeconds,
  payload,
  steps: Math.min(...steps),
})) {
  if (!(Number.isInteger(value) && value > 0)) throw new Error(`bench:soak: --${name} must be a positive integer`);
}
for (const s of scenarios) {
  if (!SCENARIOS.includes(s)) throw new Error(`bench:soak: --scenarios takes ${SCENARIOS.join(', ')}, got "${s}"`);
}

/** The ceiling: a client that stops reading may grow the server's RSS by this much at most. */
const GOAL = 64 * 1024 * 1024;
const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);

/* ------------------------------------------------------------------ */
/* The server's process.                                               */
/* ------------------------------------------------------------------ */

type Protocol = 'filedrop' | 'workrooms' | 'registry';

/** What the parent asks the server's process. */
type Ask = { type: 'memory' } | { type: 'peak' } | { type: 'connections' } | { type: 'stop' };

interface Memory {
  type: 'memory';
  rss: number;
  heapUsed: number;
  external: number;
}

interface Peak {
  type: 'peak';
  /** Since the last `peak`: the largest RSS and bytes queued for one protocol's connections. */
  rss: number;
  buffered: Record<Protocol, number>;
}

/** Each `too slow` the server logged. */
interface TooSlow {
  type: 'too slow';
  protocol: string;
  buffered: number;
}

async function serverRole(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const startServer = await builtStartServer();
  // Senders as fast as the server takes them: the slow reader is the point, not the sender's rate.
  // workrooms keeps the defaults: the 100 searches a second are within them.
  const lifted = { messagesPerSecond: 1_000_000, messageBurst: 1_000_000, bytesPerSecond: 1 << 30, byteBurst: 1 << 30 };
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    heartbeatInterval: false,
    filedropSocketIo: false,
    static: false,
    maxConnectionsPerIp: concurrency + 64,
    filedrop: { limits: lifted },
    registry: { limits: lifted },
    logger: {
      info() {},
      error: (m, f) => console.log('  server error:', m, f),
      warn: (m, f) =>
        void (
          m === 'too slow' &&
          process.send!({ type: 'too slow', protocol: String(f?.protocol), buffered: Number(f?.buffered) })
        ),
    },
  });
  const zero = (): Record<Protocol, number> => ({ filedrop: 0, workrooms: 0, registry: 0 });
  let peak = { rss: 0, buffered: zero() };
  // Sampled, so that the peak between two asks is seen (cheap: no GC, one syscall).
  const sampler = setInterval(() => {
    peak.rss = Math.max(peak.rss, process.memoryUsage.rss());
    for (const protocol of ['filedrop', 'workrooms', 'registry'] as const) {
      peak.buffered[protocol] = Math.max(peak.buffered[protocol], server[protocol].buffered());
    }
  }, 20);
  process.on('message', (ask: Ask) => {
    if (ask.type === 'memory') {
      for (let i = 0; i < 4; i++) gc();
      const { rss, heapUsed, external } = process.memoryUsage();
      process.send!({ type: 'memory', rss, heapUsed, external } satisfies Memory);
    } else if (ask.type === 'peak') {
      process.send!({ type: 'peak', ...peak } satisfies Peak);
      peak = { rss: process.memoryUsage.rss(), buffered: zero() };
    } else if (ask.type === 'connections') {
      process.send!({ type: 'connections', total: server.health().connections.total });
    } else if (ask.type === 'stop') {
      clearInterval(sampler);
      void server.close().then(() => process.exit(0));
    }
  });
  process.send!({ type: 'listening', port: server.address.port });
}

/* ------------------------------------------------------------------ */
/* The load generator (this process).                                  */
/* ------------------------------------------------------------------ */

let server: ChildProcess;
const tooSlow: TooSlow[] = [];

function ask<T extends { type: string }>(question: Ask): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (message: T) => {
      if (message.type !== question.type) return;
      server.off('message', onMessage);
      server.off('exit', onExit);
      resolve(message);
    };
    const onExit = (code: number | null) => reject(new Error(`the server's process exited (${code})`));
    server.on('message', onMessage);
    server.once('exit', onExit);
    server.send(question);
  });
}

const memory = () => ask<Memory>({ type: 'memory' });
const shown = (m: Memory) => `heap ${mib(m.heapUsed)} MiB (+ external ${mib(m.external)} MiB), rss ${mib(m.rss)} MiB`;

async function drained(): Promise<void> {
  while ((await ask<{ type: 'connections'; total: number }>({ type: 'connections' })).total > 0) await sleep(10);
}

/** A raw client of `path`: its frames (parsed, unless `raw`), and a way to stop reading. */
async function client(url: string) {
  const ws = new WebSocket(url);
  const frames: Array<{ type: string; detail: Record<string, unknown> }> = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as (typeof frames)[number]));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const until = async (test: () => boolean, what: string) => {
    const end = Date.now() + 30_000;
    while (!test()) {
      if (Date.now() > end) throw new Error(`bench:soak: no ${what} within 30 s`);
      await sleep(2);
    }
  };
  return {
    ws,
    frames,
    until,
    send: (value: unknown) => ws.send(typeof value === 'string' ? value : JSON.stringify(value)),
    pause: () => (ws as unknown as { _socket: { pause(): void } })._socket.pause(),
  };
}

/** One slow-reader run's figures: what it sent, what the server held and its RSS before, at the peak and after. */
async function slowRun(
  protocol: Protocol,
  setUp: () => Promise<{ drive: (stop: () => boolean) => Promise<number>; close: () => void }>,
) {
  const start = await memory();
  console.log(`  start       ${shown(start)}`);
  const { drive, close } = await setUp();
  const ready = await memory();
  await ask<Peak>({ type: 'peak' });
  const cutOff = tooSlow.length;
  const end = performance.now() + slowSeconds * 1000;
  const sent = await drive(() => performance.now() >= end || tooSlow.length > cutOff);
  // The server lets go of a closed slow reader after a grace of one second.
  await sleep(1200);
  const peak = await ask<Peak>({ type: 'peak' });
  const cut = tooSlow.slice(cutOff).find((t) => t.protocol === protocol);
  console.log(`  set up      ${shown(ready)}`);
  console.log(
    `  sent ${sent}; peak buffered for ${protocol} ${mib(peak.buffered[protocol])} MiB; ` +
      `peak rss ${mib(peak.rss)} MiB (+${mib(peak.rss - ready.rss)} MiB over the set-up; goal +${mib(GOAL)} MiB: ` +
      `${peak.rss - ready.rss <= GOAL ? 'within' : 'OVER'}, ${((peak.rss - ready.rss) / GOAL).toFixed(2)} of it)`,
  );
  console.log(
    cut
      ? `  the server closed the slow reader (1008 too slow) with ${mib(cut.buffered)} MiB buffered`
      : '  the slow reader was not closed',
  );
  close();
  await drained();
  const after = await memory();
  console.log(`  after       ${shown(after)}`);
  const kept = after.rss - start.rss;
  const heapKept = after.heapUsed + after.external - (start.heapUsed + start.external);
  console.log(
    `  handed back: rss ${mib(kept)} MiB over the start, heap + external ${mib(heapKept)} MiB` +
      (kept > 8 * 1024 * 1024 && heapKept < 2 * 1024 * 1024
        ? ' (the JS heap is back: the rest is likely pages the allocator keeps for reuse; not checked)'
        : ''),
  );
}

async function churn(base: string) {
  const url = `${base}/filedrop`;
  console.log(`churn: connect, get an id, disconnect; ${concurrency} at a time`);
  console.log(`  start       ${shown(await memory())}`);
  let done = 0;
  const started = performance.now();
  for (const target of steps) {
    const worker = async () => {
      while (done < target) {
        done++;
        const { ws, until, frames } = await client(url);
        await until(() => frames.length > 0, 'assign');
        await new Promise<void>((resolve) => {
          ws.once('close', () => resolve());
          ws.close();
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    await drained();
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `  ${String(target).padStart(6)} cycles ${shown(await memory())}, ${(done / seconds).toFixed(0)} cycles/s`,
    );
  }
}

async function filedropSlowReader(base: string) {
  console.log(`slow reader, filedrop: ${payload}-character relays to a client that stopped reading, ${slowSeconds} s`);
  await slowRun('filedrop', async () => {
    const slow = await client(`${base}/filedrop`);
    const fast = await client(`${base}/filedrop`);
    await slow.until(() => slow.frames.length > 0, 'assign');
    await fast.until(() => fast.frames.length > 0, 'assign');
    const id = slow.frames[0]!.detail.peer as string;
    // The receiver asks the sender, so candidates may flow to it (relayed as they are); then the sender stops reading.
    fast.send({ type: 'request', detail: { peer: id } });
    await slow.until(() => slow.frames.some((f) => f.type === 'request'), 'request');
    slow.pause();
    const frame = JSON.stringify({ type: 'candidate', detail: { peer: id, data: { candidate: 'x'.repeat(payload) } } });
    return {
      async drive(stop) {
        let sent = 0;
        while (!stop() && fast.ws.readyState === WebSocket.OPEN) {
          // The sender keeps at most 1 MiB in flight of its own; the server's pace is the limit.
          if (fast.ws.bufferedAmount < 1 << 20) {
            fast.send(frame);
            sent++;
          } else await sleep(1);
          if (sent % 50 === 0) await sleep(0);
        }
        return sent;
      },
      close: () => [fast, slow].forEach((c) => c.ws.terminate()),
    };
  });
}

async function workroomsSlowReader(base: string) {
  const sessions = 20;
  console.log(
    `slow reader, workrooms: ${sessions} sessions with ~15 KB profiles; a client that stopped reading ` +
      `asks autocomplete "zz" 100 times a second, ${slowSeconds} s`,
  );
  await slowRun('workrooms', async () => {
    const id = () => globalThis.crypto.randomUUID().replace(/-/g, '').slice(0, 22);
    const register = async () => {
      const c = await client(`${base}/workrooms`);
      c.send({ type: 'register', detail: { sessionid: id(), calls: [] } });
      await c.until(() => c.frames.some((f) => f.type === 'registered'), 'registered');
      return c;
    };
    const members: Awaited<ReturnType<typeof register>>[] = [];
    for (let i = 0; i < sessions; i++) {
      const member = await register();
      // ~15 KB each, every one matching "zz".
      member.send({
        type: 'userprofile',
        detail: { github: { login: `zz-member-${i}`, name: `Member ${i}`, bio: 'lorem ipsum '.repeat(1250) } },
      });
      members.push(member);
    }
    const slow = await register();
    // The directory has every profile once an answer names all 20 (or is cut by the budget).
    slow.send({ type: 'autocomplete', detail: { search: 'zz' } });
    await slow.until(() => slow.frames.some((f) => f.type === 'autocomplete'), 'autocomplete');
    slow.pause();
    const request = JSON.stringify({ type: 'autocomplete', detail: { search: 'zz' } });
    return {
      async drive(stop) {
        let sent = 0;
        const started = performance.now();
        while (!stop() && slow.ws.readyState === WebSocket.OPEN) {
          slow.send(request);
          sent++;
          // 100 a second, on schedule.
          await sleep(Math.max(0, started + sent * 10 - performance.now()));
        }
        return sent;
      },
      close: () => [slow, ...members].forEach((c) => c.ws.terminate()),
    };
  });
}

async function registrySlowReader(base: string) {
  console.log(`slow reader, registry: a peer that stopped reading while 1,000-file lists pour in, ${slowSeconds} s`);
  await slowRun('registry', async () => {
    const peer = async () => {
      const c = await client(`${base}/registry`);
      c.send({ type: 'Connect', detail: { files: [] } });
      await c.until(() => c.frames.some((f) => f.type === 'Welcome'), 'Welcome');
      return Object.assign(c, { id: c.frames.find((f) => f.type === 'Welcome')!.detail.id as string });
    };
    const [slow, reader, updater] = [await peer(), await peer(), await peer()];
    await reader.until(() => reader.frames.filter((f) => f.type === 'RegisterPeer').length === 2, 'RegisterPeer');
    slow.pause();
    // Those lists are held by the reader and the slow peer's buffer only: the reader drops them.
    reader.ws.removeAllListeners('message');
    let updates = 0;
    reader.ws.on('message', (data) => {
      if (String(data).startsWith('{"type":"UpdatePeer"')) updates++;
    });
    const list = (round: number) =>
      Array.from({ length: 1000 }, (_, i) => ({ path: `round-${round}/${'d'.repeat(70)}/file-${i}.bin`, size: i }));
    return {
      async drive(stop) {
        let sent = 0;
        while (!stop() && updater.ws.readyState === WebSocket.OPEN) {
          updater.send({ type: 'UpdateFiles', detail: { files: list(++sent) } });
          // One list at a time, each once the reading peer has it: only the slow one falls behind.
          await reader.until(() => updates >= sent, 'UpdatePeer');
        }
        return sent;
      },
      close: () => [slow, reader, updater].forEach((c) => c.ws.terminate()),
    };
  });
}

async function main(): Promise<void> {
  await bundleServer();
  server = fork(fileURLToPath(import.meta.url), ['role:server'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  server.on('message', (message: { type: string }) => {
    if (message.type === 'too slow') tooSlow.push(message as TooSlow);
  });
  process.once('SIGINT', () => (server.kill('SIGKILL'), process.exit(130)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      server.on('message', (m: { type: string; port?: number }) => m.type === 'listening' && resolve(m.port!));
      server.once('exit', (code) => reject(new Error(`the server's process exited (${code})`)));
    });
    const base = `ws://127.0.0.1:${port}`;
    if (scenarios.includes('churn')) await churn(base);
    if (scenarios.includes('filedrop')) await filedropSlowReader(base);
    if (scenarios.includes('workrooms')) await workroomsSlowReader(base);
    if (scenarios.includes('registry')) await registrySlowReader(base);
    server.send({ type: 'stop' } satisfies Ask);
    await new Promise((resolve) => server.once('exit', resolve));
  } finally {
    server.kill('SIGKILL');
  }
}

if (process.argv[2] === 'role:server') await serverRole();
else await main();
