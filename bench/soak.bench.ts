/**
 * Soak: does the server hand memory back? Churn (connect, get registered,
 * disconnect) through the real `signalbox serve` stack, printing heap and RSS
 * after each step, then a slow reader: a filedrop client that stops reading
 * while another sends it relays as fast as it can (see bench/README.md).
 *
 *   npm run bench:soak -- --steps 10000,30000,50000 --concurrency 50 --slow-seconds 10 --payload 60000
 *
 * Everything runs in this process on 127.0.0.1; at most `concurrency` + 2
 * sockets are open at once, far below any open-file limit.
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WebSocket } from 'ws';
import { startServer, type SignalboxServer } from '../cli/server.js';

function option(name: string, fallback: string): string {
  const args = process.argv.slice(2);
  const at = args.indexOf(`--${name}`);
  if (at >= 0 && args[at + 1] !== undefined) return args[at + 1]!;
  return process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`] ?? fallback;
}

const steps = option('steps', '10000,30000,50000')
  .split(',')
  .map((n) => Number(n));
const concurrency = Number(option('concurrency', '50'));
const slowSeconds = Number(option('slow-seconds', '10'));
const payload = Number(option('payload', '60000'));
for (const [name, value] of Object.entries({
  concurrency,
  'slow-seconds': slowSeconds,
  payload,
  steps: Math.min(...steps),
})) {
  if (!(Number.isInteger(value) && value > 0)) throw new Error(`bench:soak: --${name} must be a positive integer`);
}

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const mib = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
function memory(): string {
  gc();
  const { heapUsed, rss } = process.memoryUsage();
  return `heap ${mib(heapUsed)} MiB, rss ${mib(rss)} MiB`;
}

/** Opens a WebSocket; resolves once its first frame (filedrop's `assign`) came. */
function registered(url: string): Promise<{ ws: WebSocket; id: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('message', (data) =>
      resolve({ ws, id: (JSON.parse(String(data)) as { detail: { peer: string } }).detail.peer }),
    );
    ws.once('error', reject);
  });
}

async function churn(server: SignalboxServer, url: string) {
  console.log(`churn: connect, get an id, disconnect; ${concurrency} at a time`);
  console.log(`  start       ${memory()}`);
  let done = 0;
  const started = performance.now();
  for (const target of steps) {
    const worker = async () => {
      while (done < target) {
        done++;
        const { ws } = await registered(url);
        await new Promise<void>((resolve) => {
          ws.once('close', () => resolve());
          ws.close();
        });
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    while (server.health().connections.total > 0) await sleep(10);
    const seconds = (performance.now() - started) / 1000;
    console.log(`  ${String(target).padStart(6)} cycles ${memory()}, ${(done / seconds).toFixed(0)} cycles/s`);
  }
}

async function slowReader(server: SignalboxServer, url: string) {
  console.log(`slow reader: ${payload}-character relays to a filedrop client that stopped reading, ${slowSeconds} s`);
  console.log(`  start       ${memory()}`);
  const slow = await registered(url);
  const fast = await registered(url);
  // The receiver asks the sender, so candidates may flow to it (relayed as they are); then the sender stops reading.
  fast.ws.send(JSON.stringify({ type: 'request', detail: { peer: slow.id } }));
  (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  const frame = JSON.stringify({
    type: 'candidate',
    detail: { peer: slow.id, data: { candidate: 'x'.repeat(payload) } },
  });
  const cutOff = tooSlow.length;
  const end = performance.now() + slowSeconds * 1000;
  let sent = 0;
  let peak = 0;
  while (performance.now() < end && fast.ws.readyState === WebSocket.OPEN && tooSlow.length === cutOff) {
    // The sender keeps at most 1 MiB in flight of its own; the server's pace is the limit.
    if (fast.ws.bufferedAmount < 1 << 20) {
      fast.ws.send(frame);
      sent++;
    } else {
      await sleep(1);
    }
    peak = Math.max(peak, server.filedrop.buffered());
    if (sent % 50 === 0) await sleep(0);
  }
  const { rss } = process.memoryUsage();
  console.log(
    `  sent ${sent} frames (${mib(sent * frame.length)} MiB); peak buffered ${mib(peak)} MiB; rss ${mib(rss)} MiB`,
  );
  console.log(
    tooSlow.length > cutOff
      ? `  the server closed the slow reader (1008 too slow) with ${mib(tooSlow.at(-1)!)} MiB buffered`
      : '  the slow reader was not closed',
  );
  fast.ws.close();
  slow.ws.terminate();
  while (server.health().connections.total > 0) await sleep(10);
  console.log(`  after        ${memory()}`);
}

/** The `buffered` figure of each `too slow` warning the server logged. */
const tooSlow: number[] = [];
const server = await startServer({
  port: 0,
  host: '127.0.0.1',
  heartbeatInterval: false,
  filedropSocketIo: false,
  maxConnectionsPerIp: concurrency + 16,
  // The slow reader is the point, not the sender's rate.
  limits: { messagesPerSecond: 1_000_000, messageBurst: 1_000_000, bytesPerSecond: 1 << 30, byteBurst: 1 << 30 },
  logger: {
    info() {},
    error: (m, f) => console.log('  server error:', m, f),
    warn: (m, f) => void (m === 'too slow' && tooSlow.push(Number(f?.buffered))),
  },
});
const url = `ws://127.0.0.1:${server.address.port}/filedrop`;
try {
  await churn(server, url);
  await slowReader(server, url);
} finally {
  await server.close();
}
