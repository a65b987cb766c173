import { Opcode } from '../../machines/cloudlink/protocol.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { hasRedis, startRedis, type TestRedis } from '../redis-server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

if (!hasRedis)
  throw new Error('npm run test:cluster needs redis-server on the PATH (Debian: apt-get install redis-server)');

/** The presence TTL the cluster tests' processes run with (ms). */
export const TTL = 2000;
/** A killed process is cleared within TTL + TTL/3 (ms). */
export const BOUND = Math.round(TTL + TTL / 3);

/** One `signalbox serve` process, its JSON log lines and its port. */
export interface ServeProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** Every log line so far, parsed. */
  readonly lines: { level: string; msg: string; [key: string]: unknown }[];
  health(): Promise<{ lobbies: { cloudlink: number }; redis?: { state: string; process: string } }>;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
  /** SIGKILL: no goodbye to Redis. */
  kill(): Promise<void>;
}

/** Runs `signalbox serve` (through tsx, without npx in between: a kill reaches the server itself). */
export function runServe(args: string[]): {
  child: ChildProcess;
  exited: Promise<number | null>;
  output: () => string;
} {
  const child = spawn(process.execPath, ['--import', 'tsx', 'cli/bin.ts', 'serve', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SIGNALBOX_REDIS_URL: '' },
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Starts `signalbox serve --port 0` on Redis and waits for its "listening" line. */
export async function startServe(redisUrl: string, ttl: number): Promise<ServeProcess> {
  const { child, exited, output } = runServe([
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--keepalive',
    '1000',
    '--redis',
    redisUrl,
    '--redis-ttl',
    String(ttl),
  ]);
  const lines: ServeProcess['lines'] = [];
  let pending = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${output()}`)), 30_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const part of parts) {
        try {
          const line = JSON.parse(part) as ServeProcess['lines'][number];
          lines.push(line);
          if (line.msg === 'listening') {
            clearTimeout(timer);
            resolve(line.port as number);
          }
        } catch {
          // Not a log line.
        }
      }
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code}:\n${output()}`)));
  });
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  return {
    port,
    child,
    lines,
    async health() {
      const res = await fetch(`http://127.0.0.1:${port}/health`);
      return (await res.json()) as Awaited<ReturnType<ServeProcess['health']>>;
    },
    stop: () => end('SIGTERM'),
    kill: () => end('SIGKILL'),
  };
}

/** A redis-server and two `signalbox serve` processes on it: the setup most cluster tests share. */
export interface TwoProcesses {
  readonly redis: TestRedis;
  readonly a: ServeProcess;
  readonly b: ServeProcess;
  /** Stops both processes (SIGTERM, waiting for their exit), then Redis. */
  stop(): Promise<void>;
}

/**
 * Starts a redis-server and two `signalbox serve` processes on it with presence TTL `ttl` ms.
 * When a start fails, what did start is stopped again before the error is thrown.
 *
 * @example
 * let redis: TestRedis, a: ServeProcess, b: ServeProcess, stop: (() => Promise<void>) | undefined;
 * beforeAll(async () => void ({ redis, a, b, stop } = await twoProcesses(TTL)));
 * afterAll(() => stop?.());
 */
export async function twoProcesses(ttl: number): Promise<TwoProcesses> {
  const redis = await startRedis();
  const starts = await Promise.allSettled([startServe(redis.url, ttl), startServe(redis.url, ttl)]);
  const started = starts.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const stop = async () => {
    await Promise.all(started.map((p) => p.stop()));
    await redis.stop();
  };
  const failed = starts.find((s) => s.status === 'rejected');
  if (failed) {
    await stop();
    throw failed.reason;
  }
  const [a, b] = started as [ServeProcess, ServeProcess];
  return { redis, a, b, stop };
}

export interface Frame {
  opcode: number;
  payload?: unknown;
  tx?: string;
  rx?: string;
}

/** A raw CloudLink client that answers KEEPALIVE and queues everything else. */
export interface Client {
  id: string;
  next(opcode?: number, timeout?: number): Promise<Frame>;
  send(frame: Frame): void;
  /** Frames received and not yet taken. */
  readonly queue: Frame[];
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** The seed's opcodes, as the library names them. */
export const Op = Opcode;

/** Connects to `/ws/{ugi}` on `port`, INITs, and joins `lobby` as `role`. */
export async function join(port: number, ugi: string, lobby: string, role: 'host' | 'peer'): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/${encodeURIComponent(ugi)}?v=0`);
  const queue: Frame[] = [];
  const waiters: (() => void)[] = [];
  ws.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Frame;
    if (frame.opcode === Op.KEEPALIVE) return ws.send(JSON.stringify({ opcode: Op.KEEPALIVE }));
    queue.push(frame);
    for (const wake of waiters.splice(0)) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const client: Client = {
    id: '',
    queue,
    closed,
    send: (frame) => ws.send(JSON.stringify(frame)),
    close: () => ws.close(),
    async next(opcode, timeout = 10_000) {
      const deadline = Date.now() + timeout;
      for (;;) {
        const index = queue.findIndex((f) => opcode === undefined || f.opcode === opcode);
        if (index >= 0) return queue.splice(index, 1)[0]!;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no opcode ${opcode} within ${timeout} ms; queue: ${JSON.stringify(queue)}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
  client.send({ opcode: Op.INIT });
  client.id = (await client.next(Op.INIT_OK)).payload as string;
  client.send({ opcode: role === 'host' ? Op.CONFIG_HOST : Op.CONFIG_PEER, payload: lobby });
  await client.next(role === 'host' ? Op.ACK_HOST : Op.ACK_PEER);
  return client;
}

/** A message of the JSON protocols (filedrop, workrooms, registry, swarm). */
export interface JsonMessage {
  type: string;
  detail?: Record<string, unknown>;
}

/** A raw WebSocket client of a JSON protocol that queues what it receives. */
export interface JsonClient {
  /** The first queued message of `type` (one of them, for a list; any when undefined), waiting up to `timeout` ms. */
  next(type?: string | string[], timeout?: number): Promise<JsonMessage>;
  send(message: JsonMessage): void;
  readonly queue: JsonMessage[];
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** Connects to `ws://127.0.0.1:{port}{path}`. */
export async function jsonClient(port: number, path: string): Promise<JsonClient> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  const inbox = queued<JsonMessage>();
  ws.on('message', (data) => inbox.push(JSON.parse(String(data)) as JsonMessage));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return {
    queue: inbox.items,
    closed,
    send: (message) => ws.send(JSON.stringify(message)),
    close: () => ws.close(),
    next: (type, timeout) =>
      inbox.take((m) => type === undefined || (Array.isArray(type) ? type.includes(m.type) : m.type === type), timeout),
  };
}

/** A queue whose `take` waits for a matching item. */
export function queued<T>() {
  const items: T[] = [];
  const waiters: (() => void)[] = [];
  return {
    items,
    push(item: T) {
      items.push(item);
      for (const wake of waiters.splice(0)) wake();
    },
    async take(match: (item: T) => boolean, timeout = 10_000): Promise<T> {
      const deadline = Date.now() + timeout;
      for (;;) {
        const index = items.findIndex(match);
        if (index >= 0) return items.splice(index, 1)[0]!;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`nothing matching within ${timeout} ms; queue: ${JSON.stringify(items)}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

/** Anything with a `stop` and a `start` of Redis (the test's redis-server). */
interface Restartable {
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** Waits until every process's `/health` says Redis is `state`. */
async function redisStateIs(processes: ServeProcess[], state: 'up' | 'down', timeout: number): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    const states = await Promise.all(processes.map(async (p) => (await p.health()).redis?.state));
    if (states.every((s) => s === state)) return;
    if (Date.now() > deadline) throw new Error(`Redis never ${state} on every process: ${JSON.stringify(states)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Kills redis-server and waits until every process says Redis is down; each
 * must have logged one `warn` line `redis lost`.
 */
export async function loseRedis(redis: Restartable, processes: ServeProcess[]): Promise<void> {
  await redis.stop();
  await redisStateIs(processes, 'down', 10_000);
  // /health can answer before the log line written with the change has been read from the process's stdout.
  const lostOf = (p: ServeProcess) => p.lines.filter((l) => l.msg === 'redis lost');
  const deadline = Date.now() + 5000;
  while (processes.some((p) => lostOf(p).length === 0) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const p of processes) {
    const lost = lostOf(p);
    if (lost.length !== 1 || lost[0]!.level !== 'warn')
      throw new Error(`not one warn line 'redis lost' on :${p.port}: ${JSON.stringify(lost)}`);
  }
}

/**
 * Starts redis-server again on its port (empty) and waits until every
 * process is back on it; none may have crashed or logged at `error`.
 */
export async function restoreRedis(redis: Restartable, processes: ServeProcess[]): Promise<void> {
  await redis.start();
  await redisStateIs(processes, 'up', 15_000);
  for (const p of processes) {
    const errors = p.lines.filter((l) => l.level === 'error');
    if (p.child.exitCode !== null || errors.length > 0)
      throw new Error(`process :${p.port} crashed or logged errors: ${JSON.stringify(errors)}`);
  }
}
