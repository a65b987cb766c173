/**
 * Filedrop transfer throughput against a raw data channel of the same WebRTC
 * backend, measured in the same run (see bench/README.md).
 *
 *   npm run bench:transfer -- --mib 64 --rounds 2 --backends werift,node-datachannel
 *
 * For each backend: first the raw channel (two `rtc` actors joined directly,
 * `sendWithBackpressure` of 16 KiB + 4-byte frames under the same high-water
 * mark), then filedrop (real server on 127.0.0.1:0, sender and receiver in this
 * process, a memory source and a counting sink). Both send the same bytes.
 */
import { performance } from 'node:perf_hooks';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { createActor, setup, waitFor, type AnyActorRef } from 'xstate';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer } from '../cli/server.js';
import { CHUNK_HEADER, CHUNK_SIZE, encodeChunk } from '../machines/transfer/chunks.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { memorySource, type FileSink } from '../machines/transfer/files.js';
import { filedropReceiver } from '../machines/filedrop/receiver.machine.js';
import { filedropSender } from '../machines/filedrop/sender.machine.js';
import { DEFAULT_HIGH_WATER_MARK, sendWithBackpressure } from '../src/backpressure.js';
import { fromRtc, type RtcActorInit, type RtcCommand, type RtcEmitted } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';

// Loopback-only configs, as in test/rtc-helpers.ts (not imported: it pulls in vitest).
const WERIFT_LOOPBACK = {
  // werift adds stun:stun.l.google.com:19302 unless told otherwise.
  iceServers: [],
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
};
const NDC_LOOPBACK = { iceServers: [], bindAddress: '127.0.0.1' };

const BACKENDS = {
  werift: { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true },
  'node-datachannel': { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK, trickle: true },
} satisfies Record<string, RtcActorInit>;
type Backend = keyof typeof BACKENDS;

// ---------------------------------------------------------------------------
// Options: `--name value`, `--name=value` or the env BENCH_NAME.

function readOption(name: string): string | undefined {
  const args = process.argv.slice(2);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === `--${name}`) return args[i + 1];
    if (arg.startsWith(`--${name}=`)) return arg.slice(name.length + 3);
  }
  return process.env[`BENCH_${name.toUpperCase()}`];
}

const mib = Number(readOption('mib') ?? 64);
if (!Number.isFinite(mib) || mib < 1 || mib > 1024) throw new Error(`--mib must be a number from 1 to 1024`);
const SIZE = Math.round(mib * 1024 * 1024);
const backends = (readOption('backends') ?? 'werift,node-datachannel').split(',').map((b) => b.trim()) as Backend[];
for (const b of backends) if (!(b in BACKENDS)) throw new Error(`unknown backend ${b}: werift or node-datachannel`);
const TIMEOUT = Number(readOption('timeout') ?? 300) * 1000;
const ROUNDS = Math.max(1, Math.round(Number(readOption('rounds') ?? 3)));

/** `size` pseudo-random bytes (xorshift), the same for every run. */
function payload(size: number): Uint8Array {
  const data = new Uint8Array(size);
  const words = new Uint32Array(data.buffer, 0, size >>> 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  return data;
}

const mibPerSec = (bytes: number, ms: number) => bytes / (1024 * 1024) / (ms / 1000);

interface Result {
  /** First byte received → last byte received (filedrop: → `completed`, after the digest check and sink close). */
  transferMs: number;
  /** filedrop only: `request` sent → first byte written to the sink. */
  requestToFirstByteMs?: number;
  /** filedrop only: `request` sent → `completed`. */
  totalMs?: number;
}

// ---------------------------------------------------------------------------
// Raw: two rtc actors joined directly, the sender loop of filedrop's upload.

function rtcPeer(init: RtcActorInit, role: 'offerer' | 'answerer') {
  const listeners = new Set<(event: RtcEmitted) => void>();
  const machine = setup({ types: { events: {} as RtcEmitted }, actors: { rtc: fromRtc(init) } }).createMachine({
    invoke: { id: 'rtc', src: 'rtc', input: { label: role, role } },
    on: { '*': { actions: ({ event }) => listeners.forEach((l) => l(event)) } },
  });
  const actor = createActor(machine);
  return {
    actor,
    listeners,
    send: (command: RtcCommand) => (actor.getSnapshot().children.rtc as AnyActorRef | undefined)?.send(command),
  };
}

async function raw(backend: Backend, data: Uint8Array): Promise<Result> {
  const init = BACKENDS[backend];
  const a = rtcPeer(init, 'offerer');
  const b = rtcPeer(init, 'answerer');
  const open = (peer: typeof a) =>
    new Promise<Transport>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`raw ${backend}: no rtc.open`)), 20_000);
      peer.listeners.add((event) => {
        if (event.type === 'rtc.open') {
          clearTimeout(timer);
          resolve(event.transport);
        }
        if (event.type === 'rtc.failed') reject(new Error(`raw ${backend}: ${event.error.message}`));
      });
    });
  const forward = (from: typeof a, to: typeof a) =>
    from.listeners.add((event) => {
      if (event.type === 'rtc.description') to.send({ type: 'rtc.remoteDescription', description: event.description });
      if (event.type === 'rtc.candidate') to.send({ type: 'rtc.remoteCandidate', candidate: event.candidate });
    });
  forward(a, b);
  forward(b, a);
  const openA = open(a);
  const openB = open(b);
  b.actor.start();
  a.actor.start();
  try {
    const [ta, tb] = await Promise.all([openA, openB]);
    let received = 0;
    let first = 0;
    let last = 0;
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`raw ${backend}: timed out at ${received} B`)), TIMEOUT);
      tb.on('message', (frame) => {
        if (received === 0) first = performance.now();
        received += (frame as Uint8Array).byteLength - CHUNK_HEADER;
        if (received >= data.byteLength) {
          last = performance.now();
          clearTimeout(timer);
          resolve();
        }
      });
    });
    let seq = 0;
    for (let at = 0; at < data.byteLength; at += CHUNK_SIZE) {
      await sendWithBackpressure(ta, encodeChunk(seq++, data.subarray(at, at + CHUNK_SIZE)), DEFAULT_HIGH_WATER_MARK);
    }
    await done;
    ta.close();
    tb.close();
    return { transferMs: last - first };
  } finally {
    a.actor.stop();
    b.actor.stop();
  }
}

// ---------------------------------------------------------------------------
// filedrop: the real server, a sender and a receiver.

async function filedrop(backend: Backend, data: Uint8Array, port: number): Promise<Result> {
  const provide = () => ({
    signalling: fromTransport(() => webSocketTransport(`ws://127.0.0.1:${port}/filedrop`), clientCodec()),
    rtc: fromRtc(BACKENDS[backend]),
  });
  const source = memorySource(data, { name: 'bench.bin', type: 'application/octet-stream' });
  const sender = createActor(filedropSender.provide({ actors: provide() }), { input: { source, once: true } });
  sender.start();
  let receiver: ReturnType<typeof createActor<typeof filedropReceiver>> | undefined;
  try {
    const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 10_000 })).context.id!;
    let written = 0;
    let first = 0;
    const sink: FileSink = {
      write(chunk) {
        if (written === 0) first = performance.now();
        written += chunk.byteLength;
      },
      close() {},
      abort() {},
    };
    receiver = createActor(filedropReceiver.provide({ actors: provide() }), { input: { code, sink } });
    let requested = 0;
    receiver.subscribe((s) => {
      if (requested === 0 && s.context.requested) requested = performance.now();
    });
    let completed = 0;
    receiver.on('completed', () => (completed = performance.now()));
    receiver.start();
    const end = await waitFor(receiver, (s) => s.status === 'done', { timeout: TIMEOUT });
    if (end.value !== 'done' || end.context.error) {
      throw new Error(`filedrop ${backend}: ${end.context.error?.reason}: ${end.context.error?.message}`);
    }
    if (written !== data.byteLength) throw new Error(`filedrop ${backend}: ${written} of ${data.byteLength} B`);
    await waitFor(sender, (s) => s.status === 'done', { timeout: 10_000 });
    return { transferMs: completed - first, requestToFirstByteMs: first - requested, totalMs: completed - requested };
  } finally {
    receiver?.stop();
    sender.stop();
  }
}

/** The round with the median transfer time (the slower of the middle two for an even count). */
function medianRound(results: Result[]): Result {
  const sorted = [...results].sort((a, b) => a.transferMs - b.transferMs);
  return sorted[sorted.length >> 1]!;
}

// ---------------------------------------------------------------------------

async function main() {
  console.log(
    `transfer bench: ${mib} MiB, chunks ${CHUNK_SIZE} B + ${CHUNK_HEADER} B header, high-water mark ${DEFAULT_HIGH_WATER_MARK} B, Node ${process.version}`,
  );
  const data = payload(SIZE);
  const server = await startServer({ port: 0, host: '127.0.0.1' });
  const ratios: Array<{ backend: Backend; ratio: number }> = [];
  try {
    for (const backend of backends) {
      // Rounds alternate raw, filedrop, raw, …; the summary takes the median round of each, so
      // that one lucky (or unlucky) round does not decide the ratio.
      const raws: Result[] = [];
      const fds: Result[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        const r = await raw(backend, data);
        await new Promise((resolve) => setTimeout(resolve, 200));
        const f = await filedrop(backend, data, server.address.port);
        await new Promise((resolve) => setTimeout(resolve, 200));
        console.log(
          `  ${backend} round ${round}: raw ${mibPerSec(SIZE, r.transferMs).toFixed(1)} MiB/s` +
            ` | filedrop ${mibPerSec(SIZE, f.transferMs).toFixed(1)} MiB/s, request → first byte ${f.requestToFirstByteMs!.toFixed(0)} ms`,
        );
        raws.push(r);
        fds.push(f);
      }
      const r = medianRound(raws);
      const f = medianRound(fds);
      const rawRate = mibPerSec(SIZE, r.transferMs);
      const fdRate = mibPerSec(SIZE, f.transferMs);
      ratios.push({ backend, ratio: fdRate / rawRate });
      console.log(
        `${backend.padEnd(16)} raw ${rawRate.toFixed(1)} MiB/s (${r.transferMs.toFixed(0)} ms)` +
          ` | filedrop ${fdRate.toFixed(1)} MiB/s (${f.transferMs.toFixed(0)} ms first byte → completed)` +
          ` | request → first byte ${f.requestToFirstByteMs!.toFixed(0)} ms` +
          ` | request → completed ${mibPerSec(SIZE, f.totalMs!).toFixed(1)} MiB/s` +
          ` | ratio ${(fdRate / rawRate).toFixed(2)}`,
      );
    }
  } finally {
    await server.close();
  }
  const lowest = ratios.reduce((lo, r) => (r.ratio < lo.ratio ? r : lo));
  console.log(`lowest: ${lowest.backend}`);
  console.log(`ratio=${lowest.ratio.toFixed(2)}`);
}

main().then(
  // werift and node-datachannel close their sockets and threads asynchronously.
  () => setTimeout(() => process.exit(0), 300),
  (error: unknown) => {
    console.error(error);
    setTimeout(() => process.exit(1), 100);
  },
);
