/**
 * CloudLink across processes on Redis (see bench/README.md): the relay rate
 * with host and peer on two `startServer` processes against both on one, and
 * the time from a peer's CONFIG_PEER to its NEW_HOST across processes.
 *
 *   npm run bench:cluster -- --pairs 20 --seconds 3 --window 8 --payload 512 --joins 50
 *
 * One file, two roles (argv[2]): no role is the orchestrator (redis-server,
 * the load, the figures); `server` is one server process on Redis.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { Opcode } from '../machines/cloudlink/protocol.js';
import { hasRedis, startRedis } from '../test/redis-server.js';
import { builtStartServer, bundleServer } from './built-server.js';

const SELF = fileURLToPath(import.meta.url);

function option(name: string, fallback: number, min: number, max: number): number {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  const raw =
    at >= 0
      ? args[at + 1]
      : (args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? process.env[`BENCH_${name.toUpperCase()}`]);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max)
    throw new Error(`--${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

// ---------------------------------------------------------------------------
// Role `server`: one process of the cluster; tells the orchestrator its port.

async function server(url: string): Promise<void> {
  const startServer = await builtStartServer();
  const running = await startServer({
    port: 0,
    host: '127.0.0.1',
    redis: { url, ttl: 15_000 },
    static: false,
    metrics: false,
    heartbeatInterval: false,
    // Every client comes from 127.0.0.1 and relays as fast as it can: the admission and rate
    // limits stay in the path, but set out of reach (as in bench:relay).
    maxConnections: 100_000,
    maxConnectionsPerIp: 100_000,
    limits: {
      messagesPerSecond: 1e9,
      messageBurst: 1e9,
      bytesPerSecond: 1e12,
      byteBurst: 1e12,
      maxBufferedBytes: 1 << 30,
    },
    cloudlink: { keepaliveInterval: 3_600_000, initTimeout: 3_600_000 },
  });
  process.send!({ port: running.address.port });
  process.on('disconnect', () => void running.close().then(() => process.exit(0)));
}

// ---------------------------------------------------------------------------
// The orchestrator: clients on this thread, servers in child processes.

interface Frame {
  opcode: number;
  payload?: unknown;
  tx?: string;
  rx?: string;
}

/** A raw CloudLink client: answers KEEPALIVE, hands every other frame to `on`. */
async function client(port: number, on: (frame: Frame) => void = () => {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/bench?v=0`);
  const waiters = new Map<number, (frame: Frame) => void>();
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Frame;
    if (frame.opcode === Opcode.KEEPALIVE) return ws.send('{"opcode":0}');
    const wake = waiters.get(frame.opcode);
    if (wake) {
      waiters.delete(frame.opcode);
      wake(frame);
    } else on(frame);
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const next = (opcode: number) => new Promise<Frame>((resolve) => waiters.set(opcode, resolve));
  const send = (frame: Frame | string) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  const init = next(Opcode.INIT_OK);
  send({ opcode: Opcode.INIT });
  const id = (await init).payload as string;
  return {
    id,
    next,
    send,
    set on(handler: (frame: Frame) => void) {
      on = handler;
    },
    close: () => ws.close(),
  };
}
type Client = Awaited<ReturnType<typeof client>>;

/** Joins `lobby` as host on `hostPort` and peer on `peerPort`, through the offer/accept that unlocks answers. */
async function pair(hostPort: number, peerPort: number, lobby: string): Promise<[Client, Client]> {
  const host = await client(hostPort);
  const acked = host.next(Opcode.ACK_HOST);
  host.send({ opcode: Opcode.CONFIG_HOST, payload: lobby });
  await acked;
  const peer = await client(peerPort);
  const met = peer.next(Opcode.NEW_HOST);
  for (;;) {
    peer.send({ opcode: Opcode.CONFIG_PEER, payload: lobby });
    // The host reaches the other process's mirror a moment after its ACK_HOST.
    const first = await Promise.race([met.then(() => 'met' as const), sleep(200).then(() => 'late' as const)]);
    if (first === 'met') break;
  }
  const offered = peer.next(Opcode.ANTICIPATE_OFFER);
  host.send({ opcode: Opcode.MAKE_OFFER, payload: { type: 'offer', sdp: 'o' }, rx: peer.id });
  await offered;
  const accepted = host.next(Opcode.RETURN_OFFER);
  peer.send({ opcode: Opcode.ACCEPT_OFFER, payload: 'ok', rx: host.id });
  await accepted;
  return [host, peer];
}

/** Answers relayed per second over `seconds`, each side of each pair keeping `window` in flight. */
async function relayRate(pairs: [Client, Client][], seconds: number, window: number, payload: number) {
  let counting = false;
  let count = 0;
  const sdp = 'a'.repeat(payload);
  for (const [host, peer] of pairs) {
    for (const [self, other] of [
      [host, peer],
      [peer, host],
    ] as const) {
      const answer = JSON.stringify({ opcode: Opcode.MAKE_ANSWER, payload: { type: 'answer', sdp }, rx: other.id });
      self.on = (frame) => {
        if (frame.opcode !== Opcode.ANTICIPATE_ANSWER) return;
        if (counting) count++;
        self.send(answer);
      };
      for (let i = 0; i < window; i++) self.send(answer);
    }
  }
  await sleep(1000); // warm-up
  counting = true;
  const start = performance.now();
  await sleep(seconds * 1000);
  counting = false;
  const rate = count / ((performance.now() - start) / 1000);
  for (const [host, peer] of pairs) {
    host.on = () => {};
    peer.on = () => {};
  }
  return rate;
}

/** Milliseconds from CONFIG_PEER to NEW_HOST, `n` times, with the host already known everywhere. */
async function joinTimes(hostPort: number, peerPort: number, n: number, tag: string): Promise<number[]> {
  const times: number[] = [];
  const hosts: Client[] = [];
  for (let i = 0; i < n; i++) {
    const host = await client(hostPort);
    const acked = host.next(Opcode.ACK_HOST);
    host.send({ opcode: Opcode.CONFIG_HOST, payload: `join-${tag}-${i}` });
    await acked;
    hosts.push(host);
  }
  await sleep(300);
  for (let i = 0; i < n; i++) {
    const peer = await client(peerPort);
    const met = peer.next(Opcode.NEW_HOST);
    const start = performance.now();
    peer.send({ opcode: Opcode.CONFIG_PEER, payload: `join-${tag}-${i}` });
    await met;
    times.push(performance.now() - start);
    peer.close();
  }
  for (const host of hosts) host.close();
  return times.sort((x, y) => x - y);
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

async function orchestrate(): Promise<void> {
  const pairs = option('pairs', 20, 1, 5000);
  const seconds = option('seconds', 3, 1, 600);
  const window = option('window', 8, 1, 1000);
  const payload = option('payload', 512, 0, 60_000);
  const joins = option('joins', 50, 1, 10_000);
  if (!hasRedis) throw new Error('bench:cluster needs redis-server on the PATH (Debian: apt-get install redis-server)');
  await bundleServer();
  const redis = await startRedis();
  const children: ChildProcess[] = [];
  const stop = () => {
    for (const child of children) child.kill('SIGKILL');
    void redis.stop();
  };
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    const spawnServer = () =>
      new Promise<number>((resolve, reject) => {
        const child = fork(SELF, ['server', redis.url], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        children.push(child);
        child.once('message', (m) => resolve((m as { port: number }).port));
        child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
      });
    const [a, b] = await Promise.all([spawnServer(), spawnServer()]);
    console.log(`bench:cluster: ${pairs} pairs, ${seconds} s, window ${window}, payload ${payload} B, ${joins} joins`);

    const rates: Record<'one' | 'two', number> = { one: 0, two: 0 };
    for (const [name, hostPort, peerPort] of [
      ['one', a, a],
      ['two', a, b],
    ] as const) {
      const made: [Client, Client][] = [];
      for (let i = 0; i < pairs; i++) made.push(await pair(hostPort, peerPort, `relay-${name}-${i}`));
      rates[name] = await relayRate(made, seconds, window, payload);
      for (const [host, peer] of made) {
        host.close();
        peer.close();
      }
      await sleep(300);
    }
    const local = await joinTimes(a, a, joins, 'one');
    const across = await joinTimes(a, b, joins, 'two');
    const ms = (t: number) => `${t.toFixed(2)} ms`;
    console.log('');
    console.log(`relay, host and peer on one process:   ${Math.round(rates.one)} answers/s`);
    console.log(`relay, host and peer on two processes: ${Math.round(rates.two)} answers/s`);
    console.log(`ratio two/one: ${(rates.two / rates.one).toFixed(2)} (goal >= 0.5)`);
    console.log(
      `CONFIG_PEER -> NEW_HOST, one process:   p50 ${ms(quantile(local, 0.5))}, p95 ${ms(quantile(local, 0.95))}`,
    );
    console.log(
      `CONFIG_PEER -> NEW_HOST, two processes: p50 ${ms(quantile(across, 0.5))}, p95 ${ms(quantile(across, 0.95))}`,
    );
  } finally {
    stop();
  }
}

if (process.argv[2] === 'server') await server(process.argv[3]!);
else
  await orchestrate().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
