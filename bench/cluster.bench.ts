/**
 * CloudLink across processes on Redis (see bench/README.md): the relay rate
 * with host and peer on two `startServer` processes against both on one, and
 * the time from a peer's CONFIG_PEER to its NEW_HOST across processes.
 *
 *   npm run bench:cluster -- --pairs 20 --seconds 3 --window 8 --payload 512 --joins 50 --rounds 3
 *
 * One file, two roles (argv[2]): no role is the orchestrator (redis-server,
 * the load, the figures); `server` is one server process on Redis.
 *
 * Every failure (a server process that dies, a frame that never comes, a
 * connection closed under a client, a round that relays nothing, any
 * unhandled error) prints one `bench:cluster failed: …` line and exits 1.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { Opcode } from '../machines/cloudlink/protocol.js';
import { hasRedis, startRedis } from '../test/redis-server.js';
import { builtStartServer, bundleServer } from './built-server.js';
import { median, numberOption } from './harness.js';

const SELF = fileURLToPath(import.meta.url);

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

/** How long a client waits for a frame before the run fails. */
const FRAME_TIMEOUT = 15_000;

/** A raw CloudLink client: answers KEEPALIVE, hands every other frame to `on`. */
async function client(port: number, on: (frame: Frame) => void = () => {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/bench?v=0`);
  const waiters = new Map<number, { resolve: (frame: Frame) => void; reject: (error: Error) => void }>();
  let closedBy: string | undefined;
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Frame;
    if (frame.opcode === Opcode.KEEPALIVE) return ws.send('{"opcode":0}');
    if (frame.opcode === Opcode.VIOLATION) closedBy = `VIOLATION ${JSON.stringify(frame.payload)}`;
    const waiter = waiters.get(frame.opcode);
    if (waiter) {
      waiters.delete(frame.opcode);
      waiter.resolve(frame);
    } else on(frame);
  });
  ws.on('close', (code, reason) => {
    closedBy ??= `close ${code} ${String(reason)}`.trim();
    for (const waiter of waiters.values()) waiter.reject(new Error(`connection to :${port} ended (${closedBy})`));
    waiters.clear();
  });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  // After the opening: an error is followed by 'close', which fails any wait.
  ws.on('error', () => {});
  /** The next frame of `opcode`; fails the run after FRAME_TIMEOUT or when the connection ends. */
  const next = (opcode: number) =>
    new Promise<Frame>((resolve, reject) => {
      if (closedBy !== undefined) return reject(new Error(`connection to :${port} ended (${closedBy})`));
      const timer = setTimeout(() => {
        waiters.delete(opcode);
        reject(new Error(`no opcode ${opcode} from :${port} within ${FRAME_TIMEOUT / 1000} s`));
      }, FRAME_TIMEOUT);
      waiters.set(opcode, {
        resolve: (frame) => {
          clearTimeout(timer);
          resolve(frame);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
    });
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
  // Once: a peer that joins before the host reaches its process's mirror is told NEW_HOST when
  // it does. (A second CONFIG_PEER is a VIOLATION that closes the peer: the retry this bench
  // once had made a slow run hang without a word.)
  const met = peer.next(Opcode.NEW_HOST);
  peer.send({ opcode: Opcode.CONFIG_PEER, payload: lobby });
  await met;
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
  if (count === 0) throw new Error(`no answer was relayed in ${seconds} s`);
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

/** Prints why the run failed, on one line, and exits 1. */
function fail(error: unknown): never {
  console.error(`bench:cluster failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}

async function orchestrate(): Promise<void> {
  const pairs = Math.round(numberOption('pairs', 20, 1, 5000));
  const seconds = Math.round(numberOption('seconds', 3, 1, 600));
  const window = Math.round(numberOption('window', 8, 1, 1000));
  const payload = Math.round(numberOption('payload', 512, 0, 60_000));
  const joins = Math.round(numberOption('joins', 50, 1, 10_000));
  const rounds = Math.round(numberOption('rounds', 3, 1, 20));
  if (!hasRedis) throw new Error('bench:cluster needs redis-server on the PATH (Debian: apt-get install redis-server)');
  await bundleServer();
  const redis = await startRedis();
  const children: ChildProcess[] = [];
  let stopping = false;
  const stop = () => {
    stopping = true;
    for (const child of children) child.kill('SIGKILL');
    void redis.stop();
  };
  process.once('SIGINT', () => {
    stop();
    process.exit(130);
  });
  try {
    const spawnServer = (name: string) =>
      new Promise<number>((resolve, reject) => {
        const child = fork(SELF, ['server', redis.url], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        children.push(child);
        child.once('message', (m) => resolve((m as { port: number }).port));
        child.once('exit', (code, signal) => {
          const why = new Error(`server process ${name} exited (code ${code}, signal ${signal})`);
          reject(why);
          // After it started: the run cannot go on without it.
          if (!stopping) {
            stop();
            fail(why);
          }
        });
      });
    const [a, b] = await Promise.all([spawnServer('A'), spawnServer('B')]);
    console.log(
      `bench:cluster: ${pairs} pairs, ${seconds} s x ${rounds} round(s) each, window ${window}, payload ${payload} B, ${joins} joins`,
    );

    // Rounds alternate one process and two, so a slow spell of the machine falls on both.
    const rates: Record<'one' | 'two', number[]> = { one: [], two: [] };
    for (let round = 1; round <= rounds; round++) {
      for (const [name, hostPort, peerPort, where] of [
        ['one', a, a, 'host and peer on one process'],
        ['two', a, b, 'host and peer on two processes'],
      ] as const) {
        const made: [Client, Client][] = [];
        for (let i = 0; i < pairs; i++) made.push(await pair(hostPort, peerPort, `relay-${name}-${round}-${i}`));
        const rate = await relayRate(made, seconds, window, payload).catch((error: unknown) => {
          throw new Error(`round ${round}, ${where}: ${(error as Error).message}`);
        });
        rates[name].push(rate);
        console.log(`round ${round}, ${where}: ${Math.round(rate)} answers/s`);
        for (const [host, peer] of made) {
          host.close();
          peer.close();
        }
        await sleep(300);
      }
    }
    const local = await joinTimes(a, a, joins, 'one');
    const across = await joinTimes(a, b, joins, 'two');
    const one = median(rates.one);
    const two = median(rates.two);
    const ms = (t: number) => `${t.toFixed(2)} ms`;
    console.log('');
    console.log(`relay, host and peer on one process:   ${Math.round(one)} answers/s (median of ${rounds})`);
    console.log(`relay, host and peer on two processes: ${Math.round(two)} answers/s (median of ${rounds})`);
    console.log(`ratio two/one: ${(two / one).toFixed(2)} (goal >= 0.5)`);
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
else {
  process.on('unhandledRejection', fail);
  process.on('uncaughtException', fail);
  await orchestrate().then(() => process.exit(0), fail);
}
