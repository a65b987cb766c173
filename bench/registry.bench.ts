/**
 * Registry at scale: N peers join one registry server while `/health` is
 * polled. Prints the time until every peer has its whole `Welcome` list, how
 * many failed, and the `/health` latency (p50, p99, max) while they join.
 *
 *   npm run bench:registry -- --peers 5000 --concurrency 200
 *
 * The server runs in this process; the peers in a child process (so the
 * server's event loop is not shared with them). Each process holds at most
 * `peers` sockets plus a few, well under a 20,000 open-file limit for the
 * default 5,000. See bench/README.md.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import { startServer } from '../cli/server.js';

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
for (const [name, value] of Object.entries({ peers, concurrency, 'join-timeout': joinTimeout })) {
  if (!(Number.isInteger(value) && value > 0)) throw new Error(`bench:registry: --${name} must be a positive integer`);
}

interface ChildReport {
  joined: number;
  failed: number;
  firstError?: string;
  ms: number;
}

/** In the child: open `peers` registry clients, `concurrency` joining at once; report, then hold them open. */
async function runPeers(url: string): Promise<void> {
  const sockets: WebSocket[] = [];
  let joined = 0;
  let failed = 0;
  let firstError: string | undefined;
  const join = () =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(url);
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
      ws.once('open', () => ws.send(JSON.stringify({ type: 'Connect', detail: { files: [] } })));
      ws.on('message', (data) => {
        const message = JSON.parse(String(data)) as { type: string; detail: { peers?: number } };
        if (message.type === 'Welcome') awaiting = message.detail.peers ?? 0;
        else if (message.type === 'RegisterPeer' && awaiting !== undefined) awaiting--;
        else if (message.type === 'Error') return done(new Error(`Error ${JSON.stringify(message.detail)}`));
        if (awaiting === 0) done();
      });
      ws.once('error', (error) => done(error));
      ws.once('close', (code) => done(new Error(`closed ${code}`)));
    });
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, peers) }, async () => {
      while (next < peers) {
        next++;
        await join();
      }
    }),
  );
  const report: ChildReport = { joined, failed, firstError, ms: performance.now() - started };
  process.send!(report);
  process.once('message', () => {
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  });
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

async function main(): Promise<void> {
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    heartbeatInterval: false,
    filedropSocketIo: false,
    maxConnections: peers + 100,
    maxConnectionsPerIp: peers + 100,
    logger: { info() {}, warn() {}, error: (m, f) => console.log('  server error:', m, f) },
  });
  const base = `127.0.0.1:${server.address.port}`;
  const child: ChildProcess = fork(fileURLToPath(import.meta.url), ['--child', `ws://${base}/registry`], {
    stdio: 'inherit',
    env: {
      ...process.env,
      BENCH_PEERS: String(peers),
      BENCH_CONCURRENCY: String(concurrency),
      BENCH_JOIN_TIMEOUT: String(joinTimeout),
    },
  });
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
  try {
    console.log(`bench:registry: ${peers} peers join, ${concurrency} at a time`);
    const report = await new Promise<ChildReport>((resolve, reject) => {
      child.once('message', (message) => resolve(message as ChildReport));
      child.once('exit', (code) => reject(new Error(`the peers' process exited (${code})`)));
    });
    polling = false;
    await poll;
    const sorted = latencies.toSorted((a, b) => a - b);
    const ms = (n: number) => `${n.toFixed(1)} ms`;
    console.log(`  all joined after   ${(report.ms / 1000).toFixed(2)} s (${report.joined} joined)`);
    console.log(`  failed             ${report.failed}${report.firstError ? ` (first: ${report.firstError})` : ''}`);
    console.log(
      `  /health while joining: ${sorted.length} polls, p50 ${ms(percentile(sorted, 50))}, ` +
        `p99 ${ms(percentile(sorted, 99))}, max ${ms(sorted.at(-1) ?? NaN)}`,
    );
    console.log(`  registry stats     ${JSON.stringify(server.registry.stats())}`);
  } finally {
    polling = false;
    child.removeAllListeners('exit');
    child.send('stop');
    await new Promise((resolve) => child.once('exit', resolve));
    await server.close();
  }
}

if (process.argv[2] === '--child') await runPeers(process.argv[3]!);
else await main();
