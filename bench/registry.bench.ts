/**
 * Registry at scale: N peers join one registry server while `/health` is
 * polled. Prints the time until every peer has its whole `Welcome` list, how
 * many failed, the `/health` latency (p50, p99, max) while they join, and
 * the CPU each process used.
 *
 *   npm run bench:registry -- --peers 5000 --concurrency 200
 *
 * Three processes, so that each figure is its own: this one polls `/health`
 * and prints; the server (`startServer()` as the package ships it, see
 * built-server.ts) runs alone in a child; the peers in another. The server
 * and the peers each hold `peers` sockets plus a few, well under a 20,000
 * open-file limit for the default 5,000. See bench/README.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { builtStartServer, bundleServer } from './built-server.js';

function option(name: string, fallback: string): string {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  if (at >= 0 && args[at + 1] !== undefined) return args[at + 1]!;
  return process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`] ?? fallback;
}

const peers = Number(option('peers', '5000'));
const concurrency = Number(option('concurrency', '200'));
/** How long a peer may take from opening its socket to having its whole list. */
const joinTimeout = Number(option('join-timeout', '60000'));
/** `batch`: peers say they read `Batch` frames (as this library's client does); `single`: as a seed client. */
const welcome = option('welcome', 'batch');
if (welcome !== 'batch' && welcome !== 'single') throw new Error('bench:registry: --welcome is batch or single');
/** Writes a V8 CPU profile of the server's process (`--cpu-prof`) to this directory. */
const profile = option('profile', '');
for (const [name, value] of Object.entries({ peers, concurrency, 'join-timeout': joinTimeout })) {
  if (!(Number.isInteger(value) && value > 0)) throw new Error(`bench:registry: --${name} must be a positive integer`);
}

/** What the peers' process reports: once a second while joining, and once at the end (`done`). */
interface PeersReport {
  type: 'progress' | 'done';
  joined: number;
  failed: number;
  firstError?: string;
  ms: number;
  /** CPU time of the peers' process since it started, in ms. */
  cpu: number;
}

/** What the server's process answers to `stats`. */
interface ServerReport {
  type: 'stats';
  stats: { connections: number; peers: number; files: number };
  /** CPU time of the server's process since `start`, in ms. */
  cpu: number;
  rss: number;
  /**
   * The server's event-loop delay since `start`, in ms (p50, p99, max): how
   * long a timer was late, so about the longest synchronous stretch, the
   * time `/health` or any other connection waited for the server to look.
   */
  loopDelay: { p50: number; p99: number; max: number };
  /**
   * The CPU time of the server's process between two turns of its event
   * loop, in ms (p99, max, over the turns that did anything): the longest
   * synchronous stretch by the work done, which, unlike the delay, a
   * loaded machine does not stretch.
   */
  turnCpu: { p99: number; max: number };
}

const cpuMs = (since?: NodeJS.CpuUsage) => {
  const { user, system } = process.cpuUsage(since);
  return (user + system) / 1000;
};

/** The `"type":"RegisterPeer"` announcements in one frame: itself, or those inside a `Batch`. */
function registerPeers(frame: string): number {
  if (frame.startsWith('{"type":"RegisterPeer"')) return 1;
  if (!frame.startsWith('{"type":"Batch"')) return 0;
  let n = 0;
  for (let at = frame.indexOf('"RegisterPeer"'); at >= 0; at = frame.indexOf('"RegisterPeer"', at + 14)) n++;
  return n;
}

/** In the peers' child: open `peers` registry clients, `concurrency` joining at once; report, then hold them open. */
async function peersRole(url: string): Promise<void> {
  const sockets: WebSocket[] = [];
  let joined = 0;
  let failed = 0;
  let firstError: string | undefined;
  const started = performance.now();
  const report = (type: PeersReport['type']) =>
    process.send!({ type, joined, failed, firstError, ms: performance.now() - started, cpu: cpuMs() });
  const progress = setInterval(() => report('progress'), 1000);
  const join = () =>
    new Promise<void>((resolve) => {
      // The frames are read as the server's own encoding: only `Welcome` is parsed, the rest
      // counted by their opening, so that this process stays cheap next to the server.
      const ws = new WebSocket(url, { skipUTF8Validation: true });
      sockets.push(ws);
      let awaiting: number | undefined;
      const timer = setTimeout(() => done(new Error('no whole Welcome list in time')), joinTimeout);
      let settled = false;
      const done = (error?: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.removeAllListeners('message');
        // Later announcements are read and dropped, as a client that keeps up would.
        ws.on('message', () => {});
        if (error) {
          failed++;
          firstError ??= error.message;
        } else joined++;
        resolve();
      };
      const connect = { type: 'Connect', detail: { files: [], ...(welcome === 'batch' && { batch: true }) } };
      ws.once('open', () => ws.send(JSON.stringify(connect)));
      ws.on('message', (data) => {
        const frame = String(data);
        if (awaiting === undefined) {
          const message = JSON.parse(frame) as { type: string; detail: { peers?: number } };
          if (message.type === 'Welcome') awaiting = message.detail.peers ?? 0;
          else if (message.type === 'Error') return done(new Error(`Error ${JSON.stringify(message.detail)}`));
        } else awaiting -= registerPeers(frame);
        if (awaiting !== undefined && awaiting <= 0) done();
      });
      ws.once('error', (error) => done(error));
      ws.once('close', (code) => done(new Error(`closed ${code}`)));
    });
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, peers) }, async () => {
      while (next < peers) {
        next++;
        await join();
      }
    }),
  );
  clearInterval(progress);
  report('done');
  process.once('message', () => {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  });
}

/** In the server's child: `startServer()` as built; answers `stats`, stops on `stop`. */
async function serverRole(): Promise<void> {
  const startServer = await builtStartServer();
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    heartbeatInterval: false,
    filedropSocketIo: false,
    static: false,
    maxConnections: peers + 100,
    maxConnectionsPerIp: peers + 100,
    logger: { info() {}, warn() {}, error: (m, f) => console.log('  server error:', m, f) },
  });
  let since = process.cpuUsage();
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  // A timer each turn (1 ms, so due at every one): the CPU used since the last one is one turn's work.
  let turns: number[] = [];
  let lastCpu = process.cpuUsage();
  setInterval(() => {
    const cpu = process.cpuUsage();
    const ms = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
    lastCpu = cpu;
    if (ms >= 0.5) turns.push(ms);
  }, 1).unref();
  process.on('message', (message: { type: string }) => {
    if (message.type === 'start') {
      since = process.cpuUsage();
      loop.reset();
      turns = [];
    } else if (message.type === 'stats') {
      const ns = (n: number) => n / 1e6;
      const report: ServerReport = {
        type: 'stats',
        stats: server.registry.stats(),
        cpu: cpuMs(since),
        rss: process.memoryUsage().rss,
        loopDelay: { p50: ns(loop.percentile(50)), p99: ns(loop.percentile(99)), max: ns(loop.max) },
        turnCpu: (() => {
          const sorted = turns.toSorted((a, b) => a - b);
          return { p99: percentile(sorted, 99), max: sorted.at(-1) ?? 0 };
        })(),
      };
      process.send!(report);
    } else if (message.type === 'stop') void server.close().then(() => process.exit(0));
  });
  process.send!({ type: 'listening', port: server.address.port });
}

const SELF = fileURLToPath(import.meta.url);

/** A child of this file in `role`; fork() reuses process.execArgv, so it runs under tsx too. */
function spawnRole(args: string[], env: Record<string, string> = {}, execArgv: string[] = []): ChildProcess {
  return fork(SELF, args, {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
    execArgv: [...process.execArgv, ...execArgv],
  });
}

/** The next message of `type` from `child`; rejects if the child exits first. */
function next<T extends { type: string }>(child: ChildProcess, type: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onMessage = (message: T) => {
      if (message.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(message);
    };
    const onExit = (code: number | null) => reject(new Error(`a child process exited (${code})`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  await bundleServer();
  const server = spawnRole(
    ['role:server'],
    {},
    profile ? ['--cpu-prof', '--cpu-prof-dir', profile, '--cpu-prof-interval', '200'] : [],
  );
  const children = [server];
  const stop = () => children.forEach((child) => child.kill('SIGKILL'));
  process.once('SIGINT', () => (stop(), process.exit(130)));
  try {
    const { port } = await next<{ type: string; port: number }>(server, 'listening');
    const base = `127.0.0.1:${port}`;
    server.send({ type: 'start' });
    const clients = spawnRole(['role:peers', `ws://${base}/registry`], {
      BENCH_PEERS: String(peers),
      BENCH_CONCURRENCY: String(concurrency),
      BENCH_JOIN_TIMEOUT: String(joinTimeout),
      BENCH_WELCOME: welcome,
    });
    children.push(clients);
    const latencies: number[] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        const started = performance.now();
        try {
          await fetch(`http://${base}/health`, { signal: AbortSignal.timeout(10_000) }).then((r) => r.text());
          latencies.push(performance.now() - started);
        } catch {
          latencies.push(10_000);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    console.log(
      `bench:registry: ${peers} peers join, ${concurrency} at a time, Welcome lists ${welcome === 'batch' ? 'in Batch frames' : 'a frame a peer'}`,
    );
    let lastShown = 0;
    clients.on('message', (message: PeersReport) => {
      if (message.type !== 'progress' || message.ms - lastShown < 5000) return;
      lastShown = message.ms;
      console.log(
        `  ${(message.ms / 1000).toFixed(0).padStart(4)} s: ${message.joined} joined, ${message.failed} failed`,
      );
    });
    const report = await next<PeersReport>(clients, 'done');
    polling = false;
    await poll;
    const serverReport = await (server.send({ type: 'stats' }), next<ServerReport>(server, 'stats'));
    // The server's own count of what it wrote: the work, whatever the machine's load.
    const metrics = await fetch(`http://${base}/metrics`).then((r) => r.text());
    const counter = (name: string) =>
      Number(new RegExp(`^${name}\\{protocol="registry"\\} (\\d+)`, 'm').exec(metrics)?.[1] ?? NaN);
    const sorted = latencies.toSorted((a, b) => a - b);
    const ms = (n: number) => `${n.toFixed(1)} ms`;
    const seconds = report.ms / 1000;
    console.log(`  all joined after   ${seconds.toFixed(2)} s (${report.joined} joined)`);
    console.log(`  failed             ${report.failed}${report.firstError ? ` (first: ${report.firstError})` : ''}`);
    console.log(
      `  /health while joining: ${sorted.length} polls, p50 ${ms(percentile(sorted, 50))}, ` +
        `p99 ${ms(percentile(sorted, 99))}, max ${ms(sorted.at(-1) ?? NaN)}`,
    );
    const { loopDelay } = serverReport;
    console.log(
      `  server event loop  delay p50 ${ms(loopDelay.p50)}, p99 ${ms(loopDelay.p99)}, ` +
        `max ${ms(loopDelay.max)} (the longest synchronous stretch, about)`,
    );
    console.log(
      `  server turn cpu    p99 ${ms(serverReport.turnCpu.p99)}, max ${ms(serverReport.turnCpu.max)} ` +
        `(CPU of one turn of its event loop: the same, by the work done)`,
    );
    console.log(
      `  cpu                server ${(serverReport.cpu / 1000).toFixed(1)} s, ` +
        `peers ${(report.cpu / 1000).toFixed(1)} s (of ${seconds.toFixed(1)} s each could have had)`,
    );
    console.log(
      `  server wrote       ${counter('signalbox_messages_sent_total').toLocaleString('en')} frames, ` +
        `${(counter('signalbox_sent_bytes_total') / 1024 / 1024).toFixed(0)} MiB`,
    );
    console.log(`  server rss         ${(serverReport.rss / 1024 / 1024).toFixed(0)} MiB`);
    console.log(`  registry stats     ${JSON.stringify(serverReport.stats)}`);
    const goal = seconds <= 60 && report.failed === 0 && percentile(sorted, 99) < 100;
    console.log(
      `  goal (${5000} in 60 s, none failing, p99 < 100 ms) ${peers >= 5000 ? (goal ? 'met' : 'NOT met') : 'not tried: fewer than 5000 peers'}`,
    );
    clients.send('stop');
    await new Promise((resolve) => clients.once('exit', resolve));
    server.send({ type: 'stop' });
    await new Promise((resolve) => server.once('exit', resolve));
    if (profile) console.log(`  server cpu profile written to ${profile}`);
  } finally {
    stop();
  }
}

if (process.argv[2] === 'role:peers') await peersRole(process.argv[3]!);
else if (process.argv[2] === 'role:server') await serverRole();
else await main();
