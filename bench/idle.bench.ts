/**
 * Idle memory per registered connection, for every protocol `signalbox serve`
 * speaks (socket.io included), against a bare `ws` echo server; with an
 * extrapolation to 100,000 clients (see bench/README.md).
 *
 *   npm run bench:idle -- --count 15000 --steps 3 --protocols bare,cloudlink,filedrop,socketio,registry,workrooms,swarm [--snapshot] [--detail] [--welcome batch|single]
 *
 * One file, three roles (argv[2]): no role is the orchestrator, which runs
 * nothing but the others; `server` is a fresh process holding one server under
 * test and measuring it; `client` is its load generator (a child process, so
 * that the server's process holds one descriptor per connection, not two).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { writeHeapSnapshot } from 'node:v8';
import { io, type Socket } from 'socket.io-client';
import { WebSocket, WebSocketServer } from 'ws';
import { builtStartServer, bundleServer } from './built-server.js';
import {
  exited,
  exposeGc,
  flagOption,
  nextMessage,
  readOption,
  report,
  type ErrorReport,
  runMain,
  spawnRole,
  waitFor,
  zeroMask,
} from './harness.js';

const SELF = fileURLToPath(import.meta.url);
const PROTOCOLS = ['bare', 'cloudlink', 'filedrop', 'socketio', 'registry', 'workrooms', 'swarm'] as const;
type Protocol = (typeof PROTOCOLS)[number];
/** The client count the extrapolation is made for. */
const TARGET = 100_000;
/** Issue 13's bound for one process holding {@link TARGET} idle clients: 1.5 GB (10^9 bytes), in MiB. */
const GOAL_MIB = Math.round(1.5e9 / 2 ** 20);

// ---------------------------------------------------------------------------
// Options: `--name value`, `--name=value` or the env BENCH_NAME (see harness.ts).

interface Options {
  /** Connections at the last step. */
  count: number;
  /** Measurements at count/steps, 2·count/steps, …, count. */
  steps: number;
  protocols: Protocol[];
  /** Writes a heap snapshot of each server before and after its connections (for a diff in DevTools). */
  snapshot: boolean;
  /** Prints each step's growth by kind (heapUsed, heapTotal, external, arrayBuffers, rss) and the peaks while connecting. */
  detail: boolean;
  /**
   * How registry clients ask for their `Welcome` list: `batch` as this library's client does
   * (`Connect { batch: true }`: `Batch` frames of up to 256 KiB), `single` as the seed's client
   * (one frame a registered peer).
   */
  welcome: 'batch' | 'single';
}

function parseOptions(): Options {
  const count = Number(readOption('count') ?? 15_000);
  // Each connection is one descriptor in the server's process (and one in the client's):
  // the default open-file limit here is 20,000.
  if (!Number.isInteger(count) || count < 10 || count > 19_000) {
    throw new Error(`--count must be an integer from 10 to 19000, got ${count}`);
  }
  const steps = Number(readOption('steps') ?? 3);
  if (!Number.isInteger(steps) || steps < 1 || steps > 10) throw new Error(`--steps must be 1 to 10, got ${steps}`);
  const protocols = (readOption('protocols') ?? PROTOCOLS.join(',')).split(',').map((p) => {
    const found = PROTOCOLS.find((known) => known === p.trim());
    if (!found) throw new Error(`--protocols: unknown ${JSON.stringify(p)}; known: ${PROTOCOLS.join(', ')}`);
    return found;
  });
  const welcome = readOption('welcome') ?? 'batch';
  if (welcome !== 'batch' && welcome !== 'single') throw new Error(`--welcome is batch or single, got ${welcome}`);
  return { count, steps, protocols, snapshot: flagOption('snapshot'), detail: flagOption('detail'), welcome };
}

// ---------------------------------------------------------------------------
// Servers under test.

interface BenchServer {
  readonly port: number;
  /** Registered connections as the server counts them. */
  connections(): number;
  close(): Promise<void>;
}

/** The baseline: `http` + `ws`, echoing each text frame; nothing kept per connection but the socket. */
async function startBare(): Promise<BenchServer> {
  const http: Server = createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server: http });
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  return {
    port: (http.address() as AddressInfo).port,
    connections: () => wss.clients.size,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

async function startImpl(protocol: Protocol): Promise<BenchServer> {
  if (protocol === 'bare') return startBare();
  // The server as the package ships it, not as tsx compiles it (see built-server.ts).
  const startServer = await builtStartServer();
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    // Every client comes from 127.0.0.1: admission limits out of reach, everything else as deployed.
    maxConnections: 100_000,
    maxConnectionsPerIp: 100_000,
  });
  const name = protocol === 'socketio' ? 'filedrop' : protocol;
  return {
    port: server.address.port,
    connections: () => server.health().connections[name],
    close: () => server.close(),
  };
}

// ---------------------------------------------------------------------------
// Role `client`: opens connections and registers each the protocol's way.

type ClientTask =
  { kind: 'open'; port: number; protocol: Protocol; count: number; welcome: Options['welcome'] } | { kind: 'close' };
type ClientReport = { type: 'opened'; total: number; ms: number };

/** Resolves when `ws` receives a text frame `accept` takes; answers CloudLink's KEEPALIVE meanwhile and after. */
function webSocketClient(url: string, first: string[], accept: (text: string) => boolean): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, generateMask: zeroMask });
    let registered = false;
    ws.once('error', reject);
    ws.on('open', () => {
      for (const frame of first) ws.send(frame);
      // Servers that answer nothing to their first message (swarm's `i_am`):
      // a pong comes after every frame sent before the ping was read.
      if (first.length > 0 && accept('')) ws.ping();
    });
    ws.on('pong', () => {
      if (!registered && accept('')) {
        registered = true;
        resolve(ws);
      }
    });
    ws.on('message', (data) => {
      const text = String(data);
      if (text === '{"opcode":1}') ws.send(text);
      else if (!registered && accept(text)) {
        registered = true;
        resolve(ws);
      }
    });
  });
}

const uid = () => randomBytes(16).toString('base64url');

function openOne(port: number, protocol: Protocol, welcome: Options['welcome']): Promise<WebSocket | Socket> {
  const base = `ws://127.0.0.1:${port}`;
  switch (protocol) {
    case 'bare':
      return webSocketClient(`${base}/`, ['hello'], (t) => t === 'hello');
    case 'cloudlink':
      // INIT, then host of a lobby of its own: registered, in the directory, keepalive running.
      return webSocketClient(
        `${base}/ws/bench`,
        ['{"opcode":2,"payload":"idle"}', `{"opcode":4,"payload":"${uid()}"}`],
        (t) => t.startsWith('{"opcode":7,'),
      );
    case 'filedrop':
      return webSocketClient(`${base}/filedrop`, [], (t) => t.startsWith('{"type":"assign"'));
    case 'registry':
      return webSocketClient(
        `${base}/registry`,
        [
          welcome === 'batch'
            ? '{"type":"Connect","detail":{"files":[],"batch":true}}'
            : '{"type":"Connect","detail":{"files":[]}}',
        ],
        (t) => t.startsWith('{"type":"Welcome"'),
      );
    case 'workrooms':
      return webSocketClient(
        `${base}/workrooms`,
        [`{"type":"register","detail":{"sessionid":"${uid()}","calls":[]}}`],
        (t) => t.startsWith('{"type":"registered"'),
      );
    case 'swarm':
      return webSocketClient(`${base}/swarm`, [`{"type":"i_am","detail":{"client_id":"${uid()}"}}`], (t) => t === '');
    case 'socketio':
      return new Promise((resolve, reject) => {
        const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
        socket.once('assign', () => resolve(socket));
        socket.once('connect_error', reject);
      });
  }
}

async function clientRole() {
  const held: Array<WebSocket | Socket> = [];
  const started = performance.now();
  process.on('message', (task: ClientTask) => {
    if (task.kind === 'close') {
      for (const c of held) {
        if (c instanceof WebSocket) c.terminate();
        else c.disconnect();
      }
      process.disconnect();
      return;
    }
    void (async () => {
      let next = 0;
      const worker = async () => {
        while (next < task.count) {
          next++;
          held.push(await openOne(task.port, task.protocol, task.welcome));
        }
      };
      await Promise.all(Array.from({ length: Math.min(64, task.count) }, worker));
      report({ type: 'opened', total: held.length, ms: performance.now() - started } satisfies ClientReport);
    })().catch((error: unknown) => report({ type: 'error', message: String(error) } satisfies ErrorReport));
  });
}

// ---------------------------------------------------------------------------
// Role `server`: one server under test, measured after each step.

interface Point {
  connections: number;
  heapPerConn: number;
  rssPerConn: number;
}

interface ServerReport {
  type: 'measured';
  protocol: Protocol;
  points: Point[];
  baseRss: number;
}

async function settle(gc: () => void): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 4; i++) {
    await sleep(50);
    gc();
  }
  return process.memoryUsage();
}

async function serverRole(protocol: Protocol, options: Options) {
  const gc = exposeGc();
  const server = await startImpl(protocol);
  const client = spawnRole(SELF, ['client']);
  try {
    // With --detail: the highest figures seen while connecting (sampled every 50 ms), against what stays.
    const peak = { rss: 0, heapTotal: 0, arrayBuffers: 0 };
    const sampler = options.detail
      ? setInterval(() => {
          const m = process.memoryUsage();
          for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
        }, 50)
      : undefined;
    sampler?.unref();
    const open = async (count: number, total: number) => {
      client.send({ kind: 'open', port: server.port, protocol, count, welcome: options.welcome } satisfies ClientTask);
      await nextMessage(client, 'opened', 600_000);
      await waitFor(`${total} connections`, () => server.connections() === total, 60_000);
    };
    // Warm-up: the first connections compile and allocate one-time things. They stay open:
    // what is measured is the growth from here.
    const warm = 100;
    await open(warm, warm);
    const before = await settle(gc);
    const snapshot = (when: string) => {
      if (!options.snapshot) return;
      const file = writeHeapSnapshot(join(tmpdir(), `signalbox-idle-${protocol}-${when}-${process.pid}.heapsnapshot`));
      console.log(`${protocol}: heap snapshot ${when} written to ${file}`);
    };
    snapshot('before');
    const points: Point[] = [];
    let total = warm;
    for (let step = 1; step <= options.steps; step++) {
      const target = Math.round((options.count * step) / options.steps);
      await open(target - (total - warm), target + warm);
      total = target + warm;
      const after = await settle(gc);
      if (options.detail) {
        const per = (k: keyof NodeJS.MemoryUsage) => `${k} ${kb((after[k] - before[k]) / target)}`;
        const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
        console.log(
          `${protocol} at ${target}: KiB/conn ${(['heapUsed', 'heapTotal', 'external', 'arrayBuffers', 'rss'] as const).map(per).join(', ')}; ` +
            `MiB now rss ${mib(after.rss)}, heapTotal ${mib(after.heapTotal)}; peak while connecting rss ${mib(peak.rss)}, ` +
            `heapTotal ${mib(peak.heapTotal)}, arrayBuffers ${mib(peak.arrayBuffers)}`,
        );
      }
      points.push({
        connections: target,
        heapPerConn: (after.heapUsed + after.external - before.heapUsed - before.external) / target,
        rssPerConn: (after.rss - before.rss) / target,
      });
    }
    snapshot('after');
    if (sampler) clearInterval(sampler);
    report({ type: 'measured', protocol, points, baseRss: before.rss } satisfies ServerReport);
  } finally {
    client.send({ kind: 'close' } satisfies ClientTask);
    await sleep(200);
    client.kill('SIGKILL');
    await server.close();
  }
  process.disconnect();
}

// ---------------------------------------------------------------------------
// Orchestrator.

const kb = (bytes: number) => (bytes / 1024).toFixed(1);

async function orchestrate(options: Options) {
  await bundleServer();
  console.log(
    `idle bench: node ${process.version}; ${options.count} connections per protocol in ${options.steps} step(s); ` +
      `registry Welcome lists ${options.welcome === 'batch' ? 'in Batch frames' : 'a frame a peer'}; ` +
      `KiB per registered idle connection (heap = heapUsed + external), growth over 100 warm connections`,
  );
  const results = new Map<Protocol, Point[]>();
  const bases = new Map<Protocol, number>();
  for (const protocol of options.protocols) {
    const child = spawnRole(SELF, ['server', protocol, ...process.argv.slice(2)]);
    try {
      const m = await nextMessage<ServerReport>(child, 'measured', 1_200_000);
      results.set(protocol, m.points);
      bases.set(protocol, m.baseRss);
      const steps = m.points.map((p) => `${p.connections}: ${kb(p.heapPerConn)}/${kb(p.rssPerConn)}`).join(', ');
      console.log(`${protocol.padEnd(10)} heap/rss KiB per conn at ${steps}`);
    } finally {
      await exited(child, 60_000);
    }
  }

  const bare = results.get('bare')?.at(-1);
  console.log('');
  console.log(
    `${'protocol'.padEnd(10)} ${'heap KiB/conn'.padStart(13)} ${'rss KiB/conn'.padStart(12)} ${'÷ bare heap'.padStart(11)} ${'÷ bare rss'.padStart(10)}  rss of one process with ${TARGET.toLocaleString('en-US')} clients (extrapolated)`,
  );
  for (const [protocol, points] of results) {
    const last = points.at(-1)!;
    // Least squares through the measured points: rss = base + slope·n.
    const n = points.length;
    const mx = points.reduce((s, p) => s + p.connections, 0) / n;
    const total = points.map((p) => p.rssPerConn * p.connections);
    const my = total.reduce((s, y) => s + y, 0) / n;
    const sxx = points.reduce((s, p) => s + (p.connections - mx) ** 2, 0);
    const slope =
      n > 1 && sxx > 0 ? points.reduce((s, p, i) => s + (p.connections - mx) * (total[i]! - my), 0) / sxx : my / mx;
    const projected = my + slope * (TARGET - mx);
    const base = bases.get(protocol)!;
    const totalMiB = (base + projected) / 1024 / 1024;
    const ratio = (x: number, y: number | undefined) => (y === undefined ? '' : (x / y).toFixed(2));
    console.log(
      `${protocol.padEnd(10)} ${kb(last.heapPerConn).padStart(13)} ${kb(last.rssPerConn).padStart(12)} ` +
        `${ratio(last.heapPerConn, bare?.heapPerConn).padStart(11)} ${ratio(last.rssPerConn, bare?.rssPerConn).padStart(10)}  ` +
        `${totalMiB.toFixed(0)} MiB = ${(base / 1024 / 1024).toFixed(0)} base + ${(projected / 1024 / 1024).toFixed(0)} growth ` +
        `(slope ${kb(slope)} KiB/conn; goal ≤ ${GOAL_MIB} MiB: ${totalMiB <= GOAL_MIB ? 'met' : 'missed'})`,
    );
  }
  console.log(
    `(measured up to ${options.count} connections, each a descriptor in the server's process and one in its client's; ` +
      `the open-file limit (ulimit -n) stops the measurement before ${TARGET.toLocaleString('en-US')}, so that figure is extrapolated)`,
  );
}

async function main() {
  const role = process.argv[2];
  if (role === 'client') return clientRole();
  if (role === 'server') return serverRole(process.argv[3] as Protocol, parseOptions());
  await orchestrate(parseOptions());
}

runMain(main);
