/**
 * Time to a usable link: a CloudLink host and peer through the real server
 * until both emit `linked`, against a bare data channel of the same WebRTC
 * implementation (two plain `RTCPeerConnection`s, trickle ICE, signalled
 * through a two-socket WebSocket relay), measured in the same run (see
 * bench/README.md).
 *
 *   npm run bench:connect -- --rounds 7 --backends werift,node-datachannel,chromium
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { WebSocket, WebSocketServer } from 'ws';
import { createActor } from 'xstate';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { clientCodec } from '../machines/cloudlink/codec.js';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import { fromRtc, type RtcActorInit } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import { milestoneRecorder, now, type Milestones } from './connect-trace.js';

// Loopback-only configs, as in test/rtc-helpers.ts (not imported: it pulls in vitest).
const WERIFT_LOOPBACK = {
  iceServers: [],
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
};
const NDC_LOOPBACK = { iceServers: [], bindAddress: '127.0.0.1' };

const NODE_BACKENDS = {
  werift: { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK },
  'node-datachannel': { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK },
} satisfies Record<string, RtcActorInit>;
type Backend = keyof typeof NODE_BACKENDS | 'chromium';

// ---------------------------------------------------------------------------
// Options: `--name value`, `--name=value` or the env BENCH_NAME.

function readOption(name: string): string | undefined {
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === `--${name}`) return args[i + 1];
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return process.env[`BENCH_${name.toUpperCase().replace(/-/g, '_')}`];
}

const ROUNDS = Math.max(1, Math.round(Number(readOption('rounds') ?? 7)));
const backends = (readOption('backends') ?? 'werift,node-datachannel,chromium').split(',').map((b) => b.trim());
for (const b of backends) {
  if (!(b in NODE_BACKENDS) && b !== 'chromium')
    throw new Error(`unknown backend ${b}: werift, node-datachannel or chromium`);
}
const quietOption = readOption('quiet-period');
/** `fromRtc`'s `gatheringQuietPeriod` for signalbox; `Infinity` waits for gathering to complete. */
const QUIET = quietOption === undefined ? undefined : Number(quietOption);
if (QUIET !== undefined && !(QUIET >= 0)) throw new Error('--quiet-period must be a number >= 0 or Infinity');
/**
 * `--host-ahead MS`: start the host MS ms before the peer, and time the round
 * from the peer's start (a game's host waits in its lobby before anyone
 * joins). 0, the default: both start together, as the bare channel's sides do.
 */
const HOST_AHEAD = Math.max(0, Number(readOption('host-ahead') ?? 0));
/** `--trace`: print when each step of the handshake happened (medians over the rounds), see bench/connect-trace.ts. */
const TRACE = process.argv.includes('--trace') || !!process.env.BENCH_TRACE;
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TIMEOUT = 20_000;

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const withTimeout = <T>(what: string, promise: Promise<T>) =>
  Promise.race([
    promise,
    new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: no link in ${TIMEOUT} ms`)), TIMEOUT),
    ),
  ]);

/** One round: total ms until both sides are linked / open; CloudLink: also until the handshake began. */
interface Round {
  total: number;
  introduced?: number;
  /** `--trace`: each milestone's time since the round began. */
  milestones?: Milestones;
}

/** Milestones (epoch ms) as ms since `t0`. */
const since = (t0: number, ...records: Milestones[]): Milestones =>
  Object.fromEntries(records.flatMap((r) => Object.entries(r)).map(([name, t]) => [name, t - t0]));

// ---------------------------------------------------------------------------
// The bare signalling: a WebSocket relay that pairs the first two sockets of
// each path and forwards every text frame to the other one; `{"ready":true}`
// to both once the second is there.

async function startRelay(dir: string) {
  // It also serves the harness page: the signalbox server's static files come
  // with a CSP (`connect-src 'self'`) that would keep the page off this relay.
  const http = createServer((request, response) => {
    const file = request.url === '/' ? 'index.html' : (request.url ?? '').slice(1);
    if (file !== 'index.html' && file !== 'harness.js') {
      response.writeHead(404).end();
      return;
    }
    readFile(join(dir, file)).then(
      (body) => {
        response.writeHead(200, { 'content-type': file.endsWith('.js') ? 'text/javascript' : 'text/html' });
        response.end(body);
      },
      () => response.writeHead(404).end(),
    );
  });
  const wss = new WebSocketServer({ server: http });
  const rooms = new Map<string, WebSocket[]>();
  wss.on('connection', (socket, request) => {
    const room = request.url ?? '/';
    const members = rooms.get(room) ?? [];
    members.push(socket);
    rooms.set(room, members);
    socket.on('message', (data) => {
      for (const other of members) if (other !== socket) other.send(String(data));
    });
    socket.on('close', () => {
      members.splice(members.indexOf(socket), 1);
      if (members.length === 0) rooms.delete(room);
    });
    if (members.length === 2) for (const member of members) member.send('{"ready":true}');
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const port = (http.address() as { port: number }).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    dir,
    url: (room: string) => `ws://127.0.0.1:${port}/bare/${room}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        http.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------------------
// Node: bare and signalbox.

/** One side of a bare data channel in Node (the same steps as the harness page's `bareChannel`). */
async function bareSide(backend: keyof typeof NODE_BACKENDS, url: string, role: 'offerer' | 'answerer') {
  const { RTCPeerConnection, config } = NODE_BACKENDS[backend];
  const ws = new WebSocket(url);
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const pc: any = new (RTCPeerConnection as any)({ ...config });
  // node-datachannel gathers as soon as the channel exists, before the socket is open.
  const unsent: string[] = [];
  ws.on('open', () => unsent.splice(0).forEach((text) => ws.send(text)));
  const send = (message: unknown) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
    else unsent.push(JSON.stringify(message));
  };
  /** Remote candidates wait for the remote description (werift refuses them before). */
  let early: unknown[] | undefined = [];
  pc.addEventListener('icecandidate', (event: { candidate?: { toJSON?: () => unknown; candidate?: string } }) => {
    const c = event.candidate;
    if (!c?.candidate) return;
    const json = (typeof c.toJSON === 'function' ? c.toJSON() : c) as { candidate: string };
    send({ candidate: { ...json, candidate: json.candidate.replace(/^a=/, '') } });
  });
  let fail: (error: unknown) => void = () => {};
  const open = new Promise<void>((resolve, reject) => {
    fail = reject;
    const watch = (channel: { readyState: string; addEventListener: (t: string, l: () => void) => void }) => {
      if (channel.readyState === 'open') resolve();
      else channel.addEventListener('open', () => resolve());
    };
    if (role === 'offerer') watch(pc.createDataChannel('bare'));
    else pc.addEventListener('datachannel', (event: { channel: Parameters<typeof watch>[0] }) => watch(event.channel));
  });
  const addCandidate = (candidate: unknown) => pc.addIceCandidate(candidate).catch(() => {});
  const onMessage = async (message: {
    ready?: boolean;
    description?: { type: 'offer' | 'answer'; sdp: string };
    candidate?: unknown;
  }) => {
    if (message.ready) {
      if (role !== 'offerer') return;
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      send({ description: { type: 'offer', sdp: pc.localDescription?.sdp || offer.sdp } });
    } else if (message.description) {
      const description = message.description;
      await pc.setRemoteDescription(description);
      for (const candidate of early ?? []) await addCandidate(candidate);
      early = undefined;
      if (description.type === 'offer') {
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        send({ description: { type: 'answer', sdp: pc.localDescription?.sdp || answer.sdp } });
      }
    } else if (message.candidate) {
      if (early) early.push(message.candidate);
      else await addCandidate(message.candidate);
    }
  };
  ws.on('message', (data) => void onMessage(JSON.parse(String(data))).catch((error: unknown) => fail(error)));
  return {
    open,
    close: () => {
      ws.close();
      pc.close();
    },
  };
}

type Relay = Awaited<ReturnType<typeof startRelay>>;

async function bareNode(backend: keyof typeof NODE_BACKENDS, relay: Relay, round: number) {
  const url = relay.url(`${backend}-${round}`);
  const t0 = performance.now();
  const a = await bareSide(backend, url, 'offerer');
  const b = await bareSide(backend, url, 'answerer');
  try {
    await withTimeout(`bare ${backend}`, Promise.all([a.open, b.open]));
    return { total: performance.now() - t0 };
  } finally {
    a.close();
    b.close();
  }
}

async function signalboxNode(
  backend: keyof typeof NODE_BACKENDS,
  server: SignalboxServer,
  round: number,
): Promise<Round> {
  const url = `ws://127.0.0.1:${server.address.port}/ws/connect-bench?v=0`;
  const rtc = fromRtc({ ...NODE_BACKENDS[backend], ...(QUIET !== undefined && { gatheringQuietPeriod: QUIET }) });
  const provide = () => ({ rtc, signalling: fromTransport(() => webSocketTransport(url), clientCodec()) });
  const input = { lobby: `${backend}-${round}` };
  const hostTrace = milestoneRecorder('host');
  const peerTrace = milestoneRecorder('peer');
  const host = createActor(cloudlinkHost.provide({ actors: provide() }), { input, inspect: hostTrace.inspect });
  const peer = createActor(cloudlinkPeer.provide({ actors: provide() }), { input, inspect: peerTrace.inspect });
  const linked = (actor: typeof host | typeof peer) =>
    new Promise<number>((resolve, reject) => {
      actor.on('linked', () => resolve(performance.now()));
      actor.on('stopped', ({ detail }) => reject(new Error(`signalbox ${backend}: ${detail.error?.message}`)));
    });
  let introduced = 0;
  host.subscribe((s) => {
    if (!introduced && Object.keys(s.context.links).length > 0) introduced = performance.now();
  });
  const both = Promise.all([linked(host), linked(peer)]);
  host.start();
  // --host-ahead: the host waits in its lobby first, as a game's host does; the round begins with the peer.
  if (HOST_AHEAD > 0) await sleep(HOST_AHEAD);
  const t0 = performance.now();
  const epoch0 = now();
  peer.start();
  try {
    const [h, p] = await withTimeout(`signalbox ${backend}`, both);
    return {
      total: Math.max(h, p) - t0,
      introduced: introduced - t0,
      milestones: since(epoch0, hostTrace.times, peerTrace.times),
    };
  } finally {
    host.send({ type: 'leave' });
    peer.send({ type: 'leave' });
  }
}

// ---------------------------------------------------------------------------
// Chromium: two windows (separate browser contexts) on the harness page of
// test/browser, which bundles the library from source.

async function chromiumWorld(server: SignalboxServer, relay: Relay) {
  const { buildHarness, launch, newPage } = await import('../test/browser/browser.js');
  await buildHarness(relay.dir);
  const browser = await launch();
  const origin = relay.origin;
  const signalbox = JSON.stringify(`ws://127.0.0.1:${server.address.port}`);
  const open = async () => {
    const { page, errors } = await newPage(browser, origin);
    if (process.env.BENCH_DEBUG) page.on('console', (m) => console.log('  [page]', m.text()));
    void errors;
    await page.waitForFunction('"harness" in window');
    return page;
  };
  const [a, b] = [await open(), await open()];
  type Timed = { open: number; introduced?: number; milestones?: Milestones };
  // Strings, not functions: tsx's keepNames would put a `__name` helper into them.
  const call = (page: typeof a, expression: string) => page.evaluate(expression) as Promise<Timed>;
  return {
    async bare(relayUrl: string): Promise<Round> {
      const t0 = performance.now();
      await withTimeout(
        'bare chromium',
        Promise.all([
          call(a, `window.harness.bareChannel(${JSON.stringify(relayUrl)}, 'offerer')`),
          call(b, `window.harness.bareChannel(${JSON.stringify(relayUrl)}, 'answerer')`),
        ]),
      );
      return { total: performance.now() - t0 };
    },
    async signalbox(round: number): Promise<Round> {
      const quiet = QUIET === undefined ? 'undefined' : String(QUIET);
      const timed = (role: string) =>
        `window.harness.timedCloudlink('${role}', 'connect-bench', 'chromium-${round}', ${quiet}, ${signalbox})`;
      const hosting = call(a, timed('host'));
      if (HOST_AHEAD > 0) await sleep(HOST_AHEAD);
      const t0 = performance.now();
      const epoch0 = now();
      try {
        const [host, peer] = await withTimeout('signalbox chromium', Promise.all([hosting, call(b, timed('peer'))]));
        return {
          total: performance.now() - t0,
          // From the host's milestones: its page's own clock began before the round with --host-ahead.
          introduced: (host.milestones?.['host gets NEW_PEER'] ?? NaN) - epoch0,
          milestones: since(epoch0, host.milestones ?? {}, peer.milestones ?? {}),
        };
      } finally {
        await Promise.all([a.evaluate('window.harness.leaveAll()'), b.evaluate('window.harness.leaveAll()')]);
      }
    },
    close: () => browser.close(),
  };
}

// ---------------------------------------------------------------------------

/**
 * `--trace`: each milestone's median time since the round began (over the
 * rounds that saw it), in order, with the step from the one before. The
 * rtc milestones name the connection: `out` (the one we offered), `in` (the
 * one we answered).
 */
function printTrace(backend: string, traces: Milestones[]) {
  const names = [...new Set(traces.flatMap((t) => Object.keys(t)))];
  const rows = names
    .map((name) => ({ name, at: median(traces.flatMap((t) => (name in t ? [t[name]!] : []))) }))
    .sort((x, y) => x.at - y.at);
  console.log(`  ${backend} trace (median ms since the round began | step from the line before):`);
  let previous = 0;
  for (const { name, at } of rows) {
    console.log(`    ${at.toFixed(1).padStart(7)} | +${(at - previous).toFixed(1).padStart(6)}  ${name}`);
    previous = at;
  }
}

async function main() {
  console.log(
    `connect bench: ${ROUNDS} rounds per backend, gatheringQuietPeriod ${QUIET ?? 'default (5 ms)'}, ` +
      `host ahead ${HOST_AHEAD} ms, Node ${process.version}`,
  );
  const dir = await mkdtemp(join(tmpdir(), 'signalbox-connect-'));
  const server = await startServer({ port: 0, host: '127.0.0.1', static: false });
  const relay = await startRelay(dir);
  const summary: string[] = [];
  let worst: { backend: Backend; diff: number } | undefined;
  try {
    for (const backend of backends as Backend[]) {
      let run: { bare: (round: number) => Promise<Round>; signalbox: (round: number) => Promise<Round> };
      let close = async () => {};
      if (backend === 'chromium') {
        if (!existsSync(CHROMIUM)) {
          console.log(`chromium: skipped, no browser at ${CHROMIUM} (set CHROMIUM)`);
          continue;
        }
        const world = await chromiumWorld(server, relay);
        run = { bare: (round) => world.bare(relay.url(`chromium-${round}`)), signalbox: world.signalbox };
        close = world.close;
      } else {
        run = {
          bare: (round) => bareNode(backend, relay, round),
          signalbox: (round) => signalboxNode(backend, server, round),
        };
      }
      // The bare channel is the simplest code that works, not a hardened one: node-datachannel
      // sometimes refuses its remote description ("Got a remote candidate without ICE
      // transport"). Such a round is said and made again (at most twice), not measured.
      const bareRun = run.bare;
      run.bare = async (round) => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await bareRun(round);
          } catch (error) {
            if (attempt === 3) throw error;
            console.log(
              `  ${backend} round ${round}: bare failed (${error instanceof Error ? error.message : String(error)}), again`,
            );
            await sleep(100);
          }
        }
      };
      try {
        // One unmeasured round of each first (JIT, certificates, the browser's first connection).
        await run.bare(0);
        await run.signalbox(0);
        const bare: number[] = [];
        const signalbox: number[] = [];
        const introduced: number[] = [];
        const traces: Milestones[] = [];
        // Rounds alternate bare, signalbox, … so that slow phases of a shared machine hit both.
        for (let round = 1; round <= ROUNDS; round++) {
          await sleep(100);
          const b = await run.bare(round);
          await sleep(100);
          const s = await run.signalbox(round);
          bare.push(b.total);
          signalbox.push(s.total);
          if (s.introduced !== undefined) introduced.push(s.introduced);
          if (s.milestones) traces.push(s.milestones);
          console.log(
            `  ${backend} round ${round}: bare ${b.total.toFixed(0)} ms | signalbox ${s.total.toFixed(0)} ms` +
              (s.introduced !== undefined ? ` (introduced at ${s.introduced.toFixed(0)} ms)` : ''),
          );
        }
        if (TRACE) printTrace(backend, traces);
        const mb = median(bare);
        const ms = median(signalbox);
        const diff = ms - mb;
        if (!worst || diff > worst.diff) worst = { backend, diff };
        summary.push(
          `${backend.padEnd(16)} bare ${mb.toFixed(0)} ms | signalbox ${ms.toFixed(0)} ms` +
            (introduced.length ? ` (introduced at ${median(introduced).toFixed(0)} ms)` : '') +
            ` | difference ${diff >= 0 ? '+' : ''}${diff.toFixed(0)} ms | ratio ${(ms / mb).toFixed(2)}` +
            ` | min–max bare ${Math.min(...bare).toFixed(0)}–${Math.max(...bare).toFixed(0)},` +
            ` signalbox ${Math.min(...signalbox).toFixed(0)}–${Math.max(...signalbox).toFixed(0)}`,
        );
      } finally {
        await close();
      }
    }
  } finally {
    await relay.close();
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
  console.log('medians:');
  for (const line of summary) console.log(line);
  if (worst) {
    console.log(`largest difference: ${worst.backend}`);
    console.log(`difference=${worst.diff.toFixed(0)}ms`);
  }
}

main().then(
  // werift and node-datachannel close their sockets and threads asynchronously.
  () => setTimeout(() => process.exit(0), 300),
  (error: unknown) => {
    console.error(error);
    setTimeout(() => process.exit(1), 100);
  },
);
