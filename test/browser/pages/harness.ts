/**
 * What the browser tests run inside a Chromium page: the library's browser
 * entry points (from source, bundled by esbuild) and a few flows on top, put
 * on `window.harness` so a test calls one with `page.evaluate`.
 */
import { createActor, waitFor } from 'xstate';
import { fromRtc, fromTransport, type Transport } from '../../../src/index.js';
import { clientCodec as cloudlinkCodec, cloudlinkHost, cloudlinkPeer } from '../../../machines/cloudlink/index.js';
import {
  blobSource,
  clientCodec as filedropCodec,
  createFileDropServer,
  filedropReceiver,
  filedropSender,
  memorySink,
  sha256Hex,
} from '../../../machines/filedrop/index.js';
import { broadcastChannelServer, broadcastChannelTransport } from '../../../adapters/broadcast-channel/index.js';
import { webSocketTransport } from '../../../adapters/websocket/index.js';
import { serve } from '../../../src/runtime.js';
import { milestoneRecorder, type Milestones } from '../../../bench/connect-trace.js';

const rtc = (trickle: boolean) => fromRtc({ RTCPeerConnection, trickle, config: { iceServers: [] } });
const wsUrl = (path: string) => `ws://${location.host}${path}`;

/** The same bytes as the Node side's `patterned()`: byte i is (i * 31 + seed) & 255. */
export function patterned(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 255;
  return bytes;
}

type Signalling = () => Transport | Promise<Transport>;
const overWebSocket: Signalling = () => webSocketTransport(wsUrl('/filedrop'));

interface SendResult {
  code: string;
  sha256: string;
  done: Promise<{ error?: string }>;
}

async function send(size: number, seed: number, signalling: Signalling = overWebSocket): Promise<SendResult> {
  const bytes = patterned(size, seed);
  const file = new File([bytes as BlobPart], 'pattern.bin', { type: 'application/octet-stream' });
  const sender = createActor(
    filedropSender.provide({
      actors: { signalling: fromTransport(signalling, filedropCodec()), rtc: rtc(true) },
    }),
    { input: { source: blobSource(file), once: true } },
  );
  const done = new Promise<{ error?: string }>((resolve) =>
    sender.on('stopped', ({ detail }) => resolve(detail.error ? { error: detail.error.reason } : {})),
  );
  sender.start();
  const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 10_000 })).context.id!;
  return { code, sha256: await sha256Hex(bytes), done };
}

interface ReceiveResult {
  error?: string;
  name?: string;
  size?: number;
  /** What the receiver verified against (from the sender's response). */
  verified?: string;
  /** Our own digest of the bytes that landed in the sink. */
  sha256?: string;
  progressEvents: number;
}

async function receive(code: string, signalling: Signalling = overWebSocket): Promise<ReceiveResult> {
  const sink = memorySink();
  const receiver = createActor(
    filedropReceiver.provide({
      actors: { signalling: fromTransport(signalling, filedropCodec()), rtc: rtc(true) },
    }),
    { input: { code, sink } },
  );
  let progressEvents = 0;
  receiver.on('progress', () => progressEvents++);
  const result = new Promise<ReceiveResult>((resolve) => {
    receiver.on('completed', async ({ detail }) => {
      const bytes = sink.bytes();
      resolve({
        name: detail.file.name,
        size: bytes.byteLength,
        verified: detail.sha256,
        sha256: await sha256Hex(bytes),
        progressEvents,
      });
    });
    receiver.on('stopped', ({ detail }) => detail.error && resolve({ error: detail.error.reason, progressEvents }));
  });
  receiver.start();
  return result;
}

/** CloudLink: host or join `lobby`, link, then send `say` to whoever links and resolve with the first text heard. */
async function cloudlink(role: 'host' | 'peer', ugi: string, lobby: string, say: string) {
  const machine = role === 'host' ? cloudlinkHost : cloudlinkPeer;
  const actor = createActor(
    (machine as typeof cloudlinkPeer).provide({
      actors: {
        signalling: fromTransport(() => webSocketTransport(wsUrl(`/ws/${ugi}?v=0`)), cloudlinkCodec()),
        rtc: rtc(false),
      },
    }),
    { input: { lobby, name: role } },
  );
  const heard = new Promise<{ from: string; text: string }>((resolve, reject) => {
    actor.on('linked', ({ detail }) => {
      detail.transport.on('message', (frame) => resolve({ from: detail.id, text: String(frame) }));
      detail.transport.send(say);
    });
    actor.on('stopped', ({ detail }) => reject(new Error(detail.error?.message ?? 'stopped')));
  });
  actor.start();
  const { id } = (await waitFor(actor, (s) => s.context.id !== undefined, { timeout: 10_000 })).context;
  return { id: id!, heard };
}

/** What one side of a timed connection reports, in ms since the call (see bench/connect.bench.ts). */
interface Timed {
  /** CloudLink: INIT … NEW_PEER / NEW_HOST done, the handshake begins. */
  introduced?: number;
  /** CloudLink: `linked`; bare: the data channel is open. */
  open: number;
  /** CloudLink: when each step happened (bench/connect-trace.ts). */
  milestones?: Milestones;
}

/**
 * CloudLink host or peer for the connect bench: resolves once `linked`; it
 * leaves at {@link leaveAll}. `gatheringQuietPeriod` as `fromRtc` takes it (`Infinity`: wait for
 * ICE gathering to complete, the behaviour before it existed). `server`: the
 * signalbox server's WebSocket origin.
 */
async function timedCloudlink(
  role: 'host' | 'peer',
  ugi: string,
  lobby: string,
  quiet?: number,
  server = `ws://${location.host}`,
): Promise<Timed> {
  const t0 = performance.now();
  const trace = milestoneRecorder(role);
  const machine = role === 'host' ? cloudlinkHost : cloudlinkPeer;
  const rtcLogic = fromRtc({
    RTCPeerConnection,
    config: { iceServers: [] },
    ...(quiet !== undefined && { gatheringQuietPeriod: quiet }),
  });
  const actor = createActor(
    (machine as typeof cloudlinkPeer).provide({
      actors: {
        signalling: fromTransport(() => webSocketTransport(`${server}/ws/${ugi}?v=0`), cloudlinkCodec()),
        rtc: rtcLogic,
      },
    }),
    { input: { lobby }, inspect: trace.inspect },
  );
  const timed: Timed = { open: 0, milestones: trace.times };
  const sub = actor.subscribe((s) => {
    if (timed.introduced !== undefined) return;
    // The host has a link entry once NEW_PEER came; the peer a host once ANTICIPATE_OFFER came.
    const context = s.context as { links?: object; host?: string };
    const introduced = context.links ? Object.keys(context.links).length > 0 : context.host !== undefined;
    if (introduced) timed.introduced = performance.now() - t0;
  });
  linkedActors.add(actor);
  try {
    await new Promise<void>((resolve, reject) => {
      actor.on('linked', () => resolve());
      actor.on('stopped', ({ detail }) => reject(new Error(detail.error?.message ?? 'stopped')));
      actor.start();
    });
    timed.open = performance.now() - t0;
    return timed;
  } finally {
    sub.unsubscribe();
  }
}

/** The actors of {@link timedCloudlink}: they stay until {@link leaveAll}, so that the other side links too. */
const linkedActors = new Set<{ send(event: { type: 'leave' }): void }>();

function leaveAll(): void {
  for (const actor of linkedActors) actor.send({ type: 'leave' });
  linkedActors.clear();
}

/**
 * A bare data channel for the connect bench: plain `RTCPeerConnection`s,
 * trickle ICE, offer, answer and candidates relayed as JSON text by the
 * bench's two-socket WebSocket relay at `url` (it sends `ready` to both once
 * the second socket is there; the offerer then begins). Resolves once the channel is open.
 */
async function bareChannel(url: string, role: 'offerer' | 'answerer'): Promise<Timed> {
  const t0 = performance.now();
  const ws = new WebSocket(url);
  const pc = new RTCPeerConnection({ iceServers: [] });
  const send = (message: unknown) => ws.send(JSON.stringify(message));
  pc.onicecandidate = (event) => event.candidate && send({ candidate: event.candidate.toJSON() });
  const open = new Promise<void>((resolve) => {
    const watch = (channel: RTCDataChannel) => (channel.onopen = () => resolve());
    if (role === 'offerer') watch(pc.createDataChannel('bare'));
    else pc.ondatachannel = (event) => watch(event.channel);
  });
  ws.onmessage = async ({ data }) => {
    const message = JSON.parse(String(data));
    if (message.ready) {
      if (role !== 'offerer') return;
      await pc.setLocalDescription(await pc.createOffer());
      send({ description: pc.localDescription });
    } else if (message.description) {
      await pc.setRemoteDescription(message.description);
      if (message.description.type === 'offer') {
        await pc.setLocalDescription(await pc.createAnswer());
        send({ description: pc.localDescription });
      }
    } else if (message.candidate) {
      await pc.addIceCandidate(message.candidate).catch(() => {});
    }
  };
  await open;
  const timed = { open: performance.now() - t0 };
  ws.close();
  pc.close();
  return timed;
}

const pending = new Map<string, Promise<unknown>>();

/** Keeps a promise in the page under `key` (page.evaluate cannot return one that outlives the call). */
function keep<T>(key: string, promise: Promise<T>): void {
  pending.set(key, promise);
}

const harness = {
  patterned,
  send,
  receive,
  cloudlink,
  timedCloudlink,
  leaveAll,
  bareChannel,
  keep,
  /** Awaits what {@link keep} kept. */
  settle: (key: string) => pending.get(key),
  /** A filedrop hub on a BroadcastChannel in this tab: no server anywhere. */
  broadcastHub(name: string) {
    const hub = broadcastChannelServer({ name });
    serve(hub, createFileDropServer());
    return name;
  },
  overBroadcastChannel:
    (name: string): Signalling =>
    () =>
      broadcastChannelTransport({ name, path: '/filedrop' }),
};

declare global {
  interface Window {
    harness: typeof harness;
  }
}
window.harness = harness;
