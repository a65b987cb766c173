/**
 * Model-based tests of the filedrop sender: the sender itself
 * (`filedropSender`) and its per-receiver transfer (`filedropSenderTransfer`).
 *
 * Both run on a real sender whose `signalling` is a memory transport to a
 * server end the test writes raw frames to, whose `rtc` actors report only
 * what a path says ({@link scriptedRtc}), whose transfers are the real ones
 * (uploading a memory source whose reads the test releases, over the
 * scripted rtc actor's memory data channel), and whose clock is a
 * SimulatedClock.
 *
 * - The transfer model is the transfer machine with inert effects; its
 *   events are what receiver R (through the server), R's rtc actor, the
 *   upload, the application (`cancel`) and the clock can do to one transfer,
 *   which the test starts with R's `request`. After every step the real
 *   transfer's state and context, the frames the sender sent, the commands
 *   R's rtc actor got, the events the sender emitted and the chunks on the
 *   data channel are checked.
 * - The sender model is the sender machine with inert children; its events
 *   are what the server, receivers R1 and R2, their rtc actors, the
 *   application and whole transfers (completing, failing, crashing) can do
 *   to it, for a sender that serves everyone and one that serves `once`.
 *   A transfer's whole course is one step: the test plays it out on the
 *   real transfer (an offer, the channel, the upload, the verdict). After
 *   every step the sender's state, its transfers, its children, what it sent
 *   and emitted are checked.
 *
 * The last test checks that the real actors took every state and every
 * transition of both machines.
 */
import { describe, expect, it } from 'vitest';
import { fromCallback, type AnyActorRef, type AnyMachineSnapshot, type InspectionEvent } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { CHUNK_SIZE, decodeChunk } from '../machines/transfer/chunks.js';
import type { TransferFailure } from '../machines/filedrop/errors.js';
import { memorySource, type FileSource } from '../machines/transfer/files.js';
import type { FileInfo } from '../machines/filedrop/protocol.js';
import {
  filedropSender,
  filedropSenderTransfer,
  type SenderContext,
  type TransferContext,
} from '../machines/filedrop/sender.machine.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import type { RtcCommand } from '../src/rtc/rtc.actor.js';
import type { Transport } from '../src/transport.js';
import { bytes } from './filedrop-helpers.js';
import { chainedModel, filedropClientWorld, type Chained, type SentFrame } from './filedrop-model-helpers.js';
import {
  coverageCount,
  coverageTracker,
  expectFullCoverage,
  expectPlanned,
  expectVisited,
  planPaths,
  replayEach,
  settle,
  stubTransport,
} from './model-helpers.js';

const ME = 'K7PQ2MZA';
/** The receiver of the transfer model, and the first receiver of the sender model. */
const R = 'H3XN8RTW';
const R1 = R;
const R2 = 'M4TQ9WXY';
const STRANGER = 'ZZZZ9999';
const MAX_RETRIES = 1;
const OFFER_TIMEOUT_MS = 120_000;
const CONNECT_TIMEOUT_MS = 30_000;
const LOST_TIMEOUT_MS = 10_000;
const TIMING = {
  maxRetries: MAX_RETRIES,
  offerTimeout: OFFER_TIMEOUT_MS,
  connectTimeout: CONNECT_TIMEOUT_MS,
  lostTimeout: LOST_TIMEOUT_MS,
};
/** Two and a half chunks: the upload reads it at once and sends three frames. */
const SIZE = 2 * CHUNK_SIZE + CHUNK_SIZE / 2;
const HALF = Math.floor(SIZE / 2);
const CONTENT = bytes(SIZE, 3);
const FILE: FileInfo = fileInfo(memorySource(CONTENT, { name: 'a.bin', type: 'application/octet-stream' }));
/** The file as the sender announces it: also under the original project's keys. */
const ANNOUNCED = { ...FILE, fileName: FILE.name, fileSize: FILE.size };
/** What the sender says after its last chunk: the original's `done`, with the digest. */
const doneFrame = (peer: string): SentFrame => ({ type: 'done', detail: { peer, data: { sha256: FILE.sha256 } } });
const CANDIDATE = { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 };

function fileInfo(source: FileSource): FileInfo {
  return { name: source.name, size: source.size, type: source.type, sha256: source.sha256! };
}

const inert = fromCallback(() => {}) as never;
const CRASH = 'xstate.error.actor.';

/** A memory source whose reads wait until the test releases (or fails) them. */
function gatedSource() {
  const inner = memorySource(CONTENT, { name: FILE.name, type: FILE.type });
  const arm = () => {
    let release!: () => void;
    let refuse!: (error: Error) => void;
    const gate = new Promise<void>((resolve, reject) => {
      release = resolve;
      refuse = reject;
    });
    gate.catch(() => {});
    return { gate, release, refuse };
  };
  let current = arm();
  const control = {
    reads: 0,
    closed: false,
    release: () => current.release(),
    refuse: (error: Error) => current.refuse(error),
    /** Reads wait again (the upload of a fresh connection), until the next release. */
    rearm: () => void (current = arm()),
  };
  const source: FileSource = {
    ...inner,
    async read(offset, length) {
      control.reads++;
      await current.gate;
      return inner.read(offset, length);
    },
    close() {
      control.closed = true;
    },
  };
  return { source, control };
}

/** The real sender of a path, with what the test watches of it. */
function senderWorld(input: { once?: boolean }, inspect: (event: InspectionEvent) => void) {
  const { source, control } = gatedSource();
  const w = filedropClientWorld(filedropSender, { ...TIMING, ...input, source }, inspect);
  /** Frames the far end of each receiver's data channel got. */
  const chunks = new Map<string, Uint8Array[]>();
  return Object.assign(w, {
    source: control,
    chunks,
    commandsRead: new Map<string, number>(),
    /** Opens the data channel of `peer`'s rtc actor; collects what comes down it. */
    openChannel(peer: string): Transport {
      const remote = w.rtc.open(peer);
      const got: Uint8Array[] = [];
      chunks.set(peer, got);
      remote.on('message', (frame) => got.push(frame as Uint8Array));
      return remote;
    },
    /** Commands the rtc actor of `peer` got since the last call. */
    commands(peer: string): RtcCommand[] {
      const script = w.rtc.live.get(peer) ?? w.rtc.scripts.findLast((s) => s.input.label === peer);
      if (!script) return [];
      const from = this.commandsRead.get(script.id) ?? 0;
      this.commandsRead.set(script.id, script.commands.length);
      return script.commands.slice(from);
    },
  });
}

type SenderWorld = ReturnType<typeof senderWorld>;

/** The file as it came down the data channel from byte `offset` on: chunks in order, joined. */
function received(frames: Uint8Array[], offset = 0): Uint8Array {
  const out = new Uint8Array(frames.reduce((n, f) => n + f.byteLength - 4, 0));
  let at = 0;
  frames.forEach((frame, i) => {
    const seq = offset / CHUNK_SIZE + i;
    const chunk = decodeChunk(frame);
    if ('invalid' in chunk || chunk.seq !== seq) throw new Error(`chunk ${seq} is not one`);
    out.set(chunk.data, at);
    at += chunk.data.byteLength;
  });
  return out;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

const senderTracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'filedropSender');
const transferTracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'filedropSenderTransfer');
const inspectBoth = (event: InspectionEvent) => {
  senderTracker.inspect(event);
  transferTracker.inspect(event);
};

const response = (peer: string, data: unknown): SentFrame => ({ type: 'response', detail: { peer, data } });
const msg = (type: string, detail: Record<string, unknown>) => ({ type, detail });

// ===========================================================================
// The transfer.
// ===========================================================================

const T_AFTER_OFFER = 'xstate.after.offerTimeout.filedropSenderTransfer.awaitingOffer';
const T_AFTER_CONNECT = 'xstate.after.connectTimeout.filedropSenderTransfer.connecting';
const T_AFTER_LOST = 'xstate.after.lostTimeout.filedropSenderTransfer.lost';
const T_DELAY: Record<string, number> = {
  [T_AFTER_OFFER]: OFFER_TIMEOUT_MS,
  [T_AFTER_CONNECT]: CONNECT_TIMEOUT_MS,
  [T_AFTER_LOST]: LOST_TIMEOUT_MS,
};

type TMsg = { type: string; detail: Record<string, unknown> };
type TEvent =
  | TMsg
  | { type: 'rtc.description'; label: string; description: { type: 'answer'; sdp: string } }
  | { type: 'rtc.candidate'; label: string; candidate: typeof CANDIDATE }
  | { type: 'rtc.open'; label: string; transport: object }
  | { type: 'rtc.failed'; label: string; error: { code: string; message: string } }
  | { type: 'rtc.closed'; label: string }
  | { type: 'upload.done' }
  | { type: 'upload.failed'; reason: 'source-failed' | 'peer-gone'; message: string }
  | { type: 'cancel' }
  | { type: 'transfer.abort'; message: string }
  | { type: typeof T_AFTER_OFFER | typeof T_AFTER_CONNECT | typeof T_AFTER_LOST };

type TSnapshot = AnyMachineSnapshot & { context: TransferContext };

const transferModel = filedropSenderTransfer.provide({ actions: { report: () => {} }, actors: { upload: inert } });

const progressOf = (data: Record<string, unknown>) => msg('progress', { peer: R, data: { total: SIZE, ...data } });

/** Forms other receivers send, and what cannot be read. */
const NULL_CANDIDATE = msg('candidate', { peer: R, data: null });
const BAD_CANDIDATE = msg('candidate', { peer: R, data: 7 });
const FOREIGN_PROGRESS = msg('progress', { peer: R, data: { percent: 50 } });
const STRING_OFFER = msg('offer', { peer: R, data: 'receiver-offer-text' });
const BAD_OFFER = msg('offer', { peer: R, data: { type: 'answer', sdp: 'not an offer' } });
/**
 * An offer with an `offset`: the receiver has the first chunk and asks for the rest, on a fresh
 * connection (its first offer, or one after its channel was lost or its ICE restart failed).
 */
const FRESH_OFFER = msg('offer', { peer: R, data: { type: 'offer', sdp: 'receiver-offer-2', offset: CHUNK_SIZE } });
/** The original's receiver: it has written everything. */
const RECEIVER_DONE = msg('done', { peer: R });

const isEvent = (event: TEvent, model: TMsg) => JSON.stringify(event) === JSON.stringify(model);

const transferEverywhere: TEvent[] = [
  msg('candidate', { peer: R, data: CANDIDATE }),
  NULL_CANDIDATE,
  BAD_CANDIDATE,
  FOREIGN_PROGRESS,
  RECEIVER_DONE,
  { type: 'rtc.description', label: R, description: { type: 'answer', sdp: 'sender-answer' } },
  { type: 'rtc.candidate', label: R, candidate: CANDIDATE },
  // The `received: 0` a receiver sends as its channel opens: nothing new, but from now on it paces the upload.
  progressOf({ received: 0 }),
  progressOf({ received: HALF }),
  progressOf({ received: SIZE }),
  progressOf({ received: SIZE, done: true }),
  // The receiver's own failure, an integrity one: the file it got is not the file we announced.
  progressOf({ received: SIZE, error: 'digest-mismatch' }),
  msg('peer not exists', { peer: R }),
  { type: 'rtc.closed', label: R },
  { type: 'cancel' },
  { type: 'transfer.abort', message: 'the rtc actor crashed: rtc crashed (simulated)' },
];

function transferEvents(snapshot: AnyMachineSnapshot): TEvent[] {
  if (snapshot.status !== 'active') return [];
  const where = snapshot.value as string;
  const events = [...transferEverywhere];
  const offer = msg('offer', { peer: R, data: { type: 'offer', sdp: 'receiver-offer' } });
  const failed: TEvent = { type: 'rtc.failed', label: R, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } };
  switch (where) {
    case 'awaitingOffer':
      events.push(offer, STRING_OFFER, BAD_OFFER, FRESH_OFFER, { type: T_AFTER_OFFER });
      break;
    case 'connecting':
      events.push(offer, BAD_OFFER, failed, { type: 'rtc.open', label: R, transport: stubTransport });
      events.push({ type: T_AFTER_CONNECT });
      break;
    case 'sending':
      events.push(offer, BAD_OFFER, failed, { type: 'upload.done' });
      events.push({ type: 'upload.failed', reason: 'source-failed', message: 'reading the file failed' });
      events.push({ type: 'upload.failed', reason: 'peer-gone', message: 'the data channel refused a chunk' });
      break;
    case 'finishing':
      events.push(offer, BAD_OFFER, failed);
      break;
    case 'lost':
      events.push({ type: T_AFTER_LOST });
      break;
  }
  // One fresh connection per path, from any state with a connection (a bound on the model).
  if (where !== 'awaitingOffer' && (snapshot as TSnapshot).context.offset === 0) events.push(FRESH_OFFER);
  return events;
}

const tSerialize = (snapshot: AnyMachineSnapshot) => {
  const { context } = snapshot as TSnapshot;
  if (snapshot.status !== 'active') return JSON.stringify([snapshot.value, context.error?.reason ?? null]);
  return JSON.stringify([snapshot.value, context.retries, context.received, context.uploaded, context.offset]);
};

function tFormatEvent(event: TEvent): string {
  if (event.type in T_DELAY) return `${T_DELAY[event.type]} ms pass`;
  if (isEvent(event, FOREIGN_PROGRESS)) return 'progress({ percent: 50 })';
  if (isEvent(event, NULL_CANDIDATE)) return 'candidate(null)';
  if (isEvent(event, BAD_CANDIDATE)) return 'candidate(7)';
  if (isEvent(event, STRING_OFFER)) return 'offer(SDP text)';
  if (isEvent(event, BAD_OFFER)) return 'offer(an answer)';
  if (isEvent(event, FRESH_OFFER)) return `offer(offset ${CHUNK_SIZE})`;
  if (event.type === 'done') return "receiver's done";
  if (event.type === 'progress') {
    const { data } = (event as TMsg).detail as { data: { received: number; done?: true; error?: string } };
    return `progress(${data.received}${data.done ? ', done' : ''}${data.error ? `, ${data.error}` : ''})`;
  }
  if (event.type === 'upload.failed') return `upload fails (${(event as { reason: string }).reason})`;
  if (event.type === 'transfer.abort') return 'rtc actor crashes';
  return event.type;
}

function tDescribe(path: StatePath<AnyMachineSnapshot, TEvent>): string {
  const { context } = path.state as TSnapshot;
  const end =
    path.state.status === 'active'
      ? `${String(path.state.value)}${context.retries ? ` after ${context.retries} retry` : ''}`
      : `${String(path.state.value)}${context.error ? ` (${context.error.reason})` : ''}`;
  return `reaches ${end} after ${
    path.steps
      .slice(1)
      .map((s) => tFormatEvent(s.event))
      .join(' → ') || 'the request'
  }`;
}

const transferPlan = planPaths<TEvent>({
  model: transferModel,
  machine: filedropSenderTransfer,
  inputs: [{ peer: R, source: memorySource(CONTENT, { name: FILE.name, type: FILE.type }), ...TIMING }],
  events: transferEvents,
  serializeState: tSerialize,
  describe: tDescribe,
  // Every event in every control state; ICE failures also with and without retries left.
  edgeClass: (from, event) =>
    `${JSON.stringify(from.value)} ${JSON.stringify(event)}${
      event.type === 'rtc.failed' && (from.context as TransferContext).retries >= MAX_RETRIES
        ? ' (no retries left)'
        : ''
    }`,
});

/** Why the transfer fails on `event` in `prev`, by the protocol; undefined if it does not. */
function transferFailure(prev: TSnapshot, event: TEvent): TransferFailure | undefined {
  const where = prev.value as string;
  const data = (event as TMsg).detail?.data as { done?: true; error?: string } | undefined;
  switch (event.type) {
    case 'progress':
      return data?.error !== undefined && !data.done ? 'remote-cancelled' : undefined;
    case 'candidate':
      return isEvent(event, BAD_CANDIDATE) ? 'protocol' : undefined;
    case 'offer':
      return isEvent(event, BAD_OFFER) && where !== 'lost' ? 'protocol' : undefined;
    case 'peer not exists':
    case T_AFTER_LOST:
      return 'peer-gone';
    case 'cancel':
      return 'cancelled';
    case 'transfer.abort':
      return 'rtc-failed';
    case T_AFTER_OFFER:
    case T_AFTER_CONNECT:
      return 'timeout';
    case 'rtc.failed':
      return (where === 'connecting' || where === 'sending') && prev.context.retries >= MAX_RETRIES
        ? 'rtc-failed'
        : undefined;
    case 'upload.failed':
      return (event as { reason: string }).reason === 'source-failed' ? 'source-failed' : undefined;
    default:
      return undefined;
  }
}

/**
 * Whether the transfer succeeds on `event`: our receiver's verdict (`progress` with `done`), or the
 * original's `done` once every chunk went out.
 */
const transferSucceeds = (prev: TSnapshot | undefined, event: TEvent) =>
  (event.type === 'progress' && ((event as TMsg).detail.data as { done?: true }).done === true) ||
  (event.type === 'done' && prev?.context.uploaded === true);

/** Failures the receiver must be told of (`response` with `error`): ours, not its own or the server's. */
const toldFailures: TransferFailure[] = ['cancelled', 'rtc-failed', 'timeout', 'source-failed', 'protocol'];

interface TExpectation {
  frames: SentFrame[];
  commands: RtcCommand[];
  emitted: Array<{ type: string; detail: unknown }>;
}

function transferExpectation(prev: TSnapshot | undefined, event: TEvent): TExpectation {
  const out: TExpectation = { frames: [], commands: [], emitted: [] };
  if (!prev) {
    // The request: the file is described at once.
    out.frames.push(response(R, ANNOUNCED));
    out.emitted.push({ type: 'requested', detail: { peer: R } });
    return out;
  }
  const where = prev.value as string;
  const failure = transferFailure(prev, event);
  const { retries } = prev.context;
  switch (event.type) {
    case 'offer':
      if (isEvent(event, FRESH_OFFER)) {
        // Where it starts, and on a fresh connection (a new rtc actor) past the first.
        out.emitted.push({
          type: 'resuming',
          detail: { peer: R, offset: CHUNK_SIZE, reconnect: where !== 'awaitingOffer' },
        });
        out.commands.push({ type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'receiver-offer-2' } });
      } else if (where !== 'lost' && !failure) {
        const sdp = isEvent(event, STRING_OFFER) ? 'receiver-offer-text' : 'receiver-offer';
        out.commands.push({ type: 'rtc.remoteDescription', description: { type: 'offer', sdp } });
      }
      break;
    case 'candidate':
      // The end of candidates needs nothing.
      if (!failure && !isEvent(event, NULL_CANDIDATE))
        out.commands.push({ type: 'rtc.remoteCandidate', candidate: CANDIDATE });
      break;
    case 'upload.done':
      out.frames.push(doneFrame(R));
      break;
    case 'rtc.description':
      out.frames.push({ type: 'answer', detail: { peer: R, data: { type: 'answer', sdp: 'sender-answer' } } });
      break;
    case 'rtc.candidate':
      out.frames.push({ type: 'candidate', detail: { peer: R, data: CANDIDATE } });
      break;
    case 'rtc.failed':
      // ICE failed here: the receiver is asked to restart it (the seed's `retry`), while retries last.
      if (['connecting', 'sending', 'finishing'].includes(where) && retries < MAX_RETRIES) {
        out.frames.push({ type: 'retry', detail: { peer: R } });
        out.emitted.push({ type: 'retrying', detail: { peer: R, attempt: retries + 1 } });
      }
      break;
    case 'progress': {
      const data = (event as TMsg).detail.data as { received: number; done?: true; error?: string };
      if (!data.error && data.received !== undefined && data.received > prev.context.received) {
        out.emitted.push({ type: 'progress', detail: { peer: R, received: data.received, total: SIZE } });
      }
      break;
    }
  }
  if (failure && toldFailures.includes(failure)) out.frames.push(response(R, { error: failure }));
  if (failure)
    out.emitted.push({ type: 'failed', detail: { peer: R, error: expect.objectContaining({ reason: failure }) } });
  if (transferSucceeds(prev, event)) out.emitted.push({ type: 'completed', detail: { peer: R } });
  return out;
}

async function transferExec(w: TransferWorld, prev: TSnapshot, event: TEvent): Promise<void> {
  if (isEvent(event, FRESH_OFFER) && prev.value !== 'awaitingOffer') {
    // A fresh connection: a new rtc actor, and an upload whose reads wait for the test again.
    w.connections++;
    w.source.rearm();
  }
  const script = w.rtc.live.get(R);
  if (event.type === 'progress' && !isEvent(event, FOREIGN_PROGRESS)) w.reported = true;
  switch (event.type) {
    case 'rtc.description':
    case 'rtc.candidate':
    case 'rtc.failed':
      script!.emit(
        event.type === 'rtc.failed'
          ? { type: 'rtc.failed', label: R, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') }
          : (event as never),
      );
      break;
    case 'rtc.open':
      w.openChannel(R);
      break;
    case 'rtc.closed':
      script!.channel?.remote.close();
      script!.emit({ type: 'rtc.closed', label: R });
      break;
    case 'upload.done':
      w.source.release();
      break;
    case 'upload.failed':
      if ((event as { reason: string }).reason === 'source-failed') w.source.refuse(new Error('disk gone (simulated)'));
      else {
        // The channel closes under the upload (the rtc actor has not said so yet).
        script!.channel!.local.close();
        w.source.release();
      }
      break;
    case 'cancel':
      w.actor.send({ type: 'cancel', peer: R });
      break;
    case 'transfer.abort':
      w.crashRtc(rtcOf(w));
      break;
    default:
      if (event.type in T_DELAY) w.clock.increment(T_DELAY[event.type]!);
      else w.send(event.type, (event as TMsg).detail);
  }
  await settle();
}

type TransferWorld = SenderWorld & { transfer: AnyActorRef; reported: boolean; connections: number };

/** The id of the transfer's rtc actor: one per connection. */
const rtcOf = (w: TransferWorld) => `rtc:${R}#1${w.connections > 0 ? `.${w.connections}` : ''}`;

async function startTransfer(): Promise<TransferWorld> {
  const w = senderWorld({}, inspectBoth);
  w.open();
  await settle();
  w.send('assign', { peer: ME });
  await settle();
  expect(w.emitted()).toEqual([{ type: 'assigned', detail: { id: ME } }]);
  w.send('request', { peer: R });
  await settle();
  const transfer = w.actor.getSnapshot().children[`transfer:${R}#1`] as AnyActorRef;
  expect(transfer).toBeDefined();
  /** The receiver has sent `progress`. */
  return Object.assign(w, { transfer, reported: false, connections: 0 });
}

async function transferCheck(w: TransferWorld, prev: TSnapshot | undefined, event: TEvent, next: TSnapshot) {
  const real = w.transfer.getSnapshot() as TSnapshot;
  transferTracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);

  const want = transferExpectation(prev, event);
  expect(w.take()).toEqual(want.frames);
  expect(w.commands(R)).toEqual(want.commands);
  expect(w.emitted()).toEqual(want.emitted);

  const sender = w.actor.getSnapshot() as AnyMachineSnapshot & { context: SenderContext };
  // The sender goes on serving whatever becomes of one transfer.
  expect(sender.value).toEqual({ active: 'serving' });
  const failure = prev ? transferFailure(prev, event) : undefined;
  if (next.status !== 'active') {
    expect(real.value).toBe(transferSucceeds(prev, event) ? 'done' : 'failed');
    expect(real.context.error?.reason).toBe(failure);
    // The transfer is forgotten, and its actors stopped.
    expect(sender.context.transfers).toEqual({});
    expect(Object.keys(sender.children)).toEqual(['signalling']);
    expect(w.rtc.scripts.filter((s) => !s.stopped && !s.crashing)).toEqual([]);
    expect(sender.context.completed).toBe(transferSucceeds(prev, event) ? 1 : 0);
    expect(Object.values(w.actor.system.getSnapshot()._scheduledEvents).filter((s) => s.source === w.transfer)).toEqual(
      [],
    );
    return;
  }
  expect(real.context.retries).toBe(next.context.retries);
  expect(real.context.received).toBe(next.context.received);
  expect(real.context.uploaded).toBe(next.context.uploaded);
  // Paced from the receiver's first report on.
  expect(real.context.paced).toBe(w.reported);
  expect(real.context.error).toBeUndefined();
  expect(real.context.offset).toBe(next.context.offset);
  expect(sender.context.transfers).toEqual({ [R]: { generation: 1, connection: w.connections } });
  expect(Object.keys(sender.children).sort()).toEqual(['signalling', `transfer:${R}#1`, rtcOf(w)].sort());
  expect(Object.keys(real.children)).toEqual(next.value === 'sending' ? ['upload'] : []);
  expect(w.rtc.live.get(R)?.input).toEqual({ label: R, role: 'answerer' });
  // Once the upload is done every chunk is on the channel, in order.
  const { offset } = next.context;
  if (next.value === 'finishing') {
    expect(sameBytes(received(w.chunks.get(R)!, offset), CONTENT.subarray(offset))).toBe(true);
  }
}

// ===========================================================================
// The sender.
// ===========================================================================

/** Requests are taken until this many transfers were started: a bound on the model. */
const MAX_GENERATION = 2;

type SEvent = Chained<
  | TMsg
  | { type: 'signalling.open' }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: 'signalling.error'; error: { code: string; message: string }; frame: string }
  | { type: 'cancel'; peer?: string }
  | { type: `xstate.error.actor.${string}`; error: { message: string }; actorId?: string }
  | { type: `xstate.done.actor.${string}`; output: { peer: string; received: number; error?: object }; actorId: string }
  | { type: 'rtc.description'; label: string; description: { type: 'answer'; sdp: string } }
  | { type: 'rtc.candidate'; label: string; candidate: typeof CANDIDATE }
  | { type: 'rtc.failed'; label: string; error: { code: string; message: string } }
  | { type: 'rtc.open'; label: string; transport: object }
  | { type: 'rtc.closed'; label: string }
  | { type: 'transfer.signal'; message: TMsg }
  | { type: 'transfer.rtc'; peer: string; command: RtcCommand }
  | { type: 'transfer.progress'; peer: string; received: number; total: number }
  | { type: 'transfer.retrying'; peer: string; attempt: number }
  | { type: 'transfer.resuming'; peer: string; offset: number; fresh: boolean }
>;

type SSnapshot = AnyMachineSnapshot & { context: SenderContext };

const senderModel = chainedModel(
  filedropSender.provide({ actors: { signalling: inert, rtc: inert, transfer: inert } }),
);

/** How a whole transfer ends, as one step; the sender sees the events in `then`. */
type Outcome =
  | 'completes'
  | 'completes on a fresh connection'
  | 'is refused'
  | 'loses its receiver'
  | 'is cancelled'
  | 'loses its rtc actor';

/** The transfer outcome a sender event stands for, if it does. */
const outcomeOf = (event: SEvent): Outcome | undefined => (event as { outcome?: Outcome }).outcome;

/** `events` in a row, as one model step. */
function chain(...events: SEvent[]): SEvent {
  return events.reduceRight((then: SEvent | undefined, event) => (then ? { ...event, then } : event)) as SEvent;
}

const signalOf = (message: TMsg): SEvent => ({ type: 'transfer.signal', message });

function outcomeEvent(peer: string, generation: number, outcome: Outcome): SEvent {
  const id = `transfer:${peer}#${generation}`;
  const done = (error?: { reason: TransferFailure }, got = 0) =>
    ({
      type: `xstate.done.actor.${id}`,
      actorId: id,
      output: { peer, received: got, ...(error && { error }) },
    }) as SEvent;
  const offer = msg('offer', { peer, data: { type: 'offer', sdp: 'receiver-offer' } });
  const applied: SEvent = {
    type: 'transfer.rtc',
    peer,
    command: { type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'receiver-offer' } },
  };
  const head = (event: SEvent, ...rest: SEvent[]) => ({ ...chain(event, ...rest), outcome }) as unknown as SEvent;
  switch (outcome) {
    case 'completes':
      // An offer, ICE failing once (`retry`, and the receiver offers again), the channel, the upload, the verdict.
      return head(
        offer,
        applied,
        { type: 'rtc.failed', label: peer, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } },
        signalOf(msg('retry', { peer })),
        { type: 'transfer.retrying', peer, attempt: 1 },
        offer,
        applied,
        { type: 'rtc.open', label: peer, transport: stubTransport },
        signalOf(doneFrame(peer) as TMsg),
        progressOfPeer(peer, { received: SIZE, done: true }),
        { type: 'transfer.progress', peer, received: SIZE, total: SIZE },
        done(undefined, SIZE),
      );
    case 'completes on a fresh connection': {
      // The channel is lost; the receiver resumes past its first chunk on a fresh connection (a new rtc actor).
      const fresh = msg('offer', { peer, data: { type: 'offer', sdp: 'receiver-offer-2', offset: CHUNK_SIZE } });
      return head(
        offer,
        applied,
        { type: 'rtc.open', label: peer, transport: stubTransport },
        { type: 'rtc.closed', label: peer },
        fresh,
        { type: 'transfer.resuming', peer, offset: CHUNK_SIZE, fresh: true },
        {
          type: 'transfer.rtc',
          peer,
          command: { type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'receiver-offer-2' } },
        },
        { type: 'rtc.open', label: peer, transport: stubTransport },
        signalOf(doneFrame(peer) as TMsg),
        progressOfPeer(peer, { received: SIZE, done: true }),
        { type: 'transfer.progress', peer, received: SIZE, total: SIZE },
        done(undefined, SIZE),
      );
    }
    case 'is refused':
      return head(progressOfPeer(peer, { received: 0, error: 'sink-failed' }), done({ reason: 'remote-cancelled' }));
    case 'loses its receiver':
      return head(msg('peer not exists', { peer }), done({ reason: 'peer-gone' }));
    case 'is cancelled':
      return head(
        { type: 'cancel', peer },
        signalOf(msg('response', { peer, data: { error: 'cancelled' } })),
        done({ reason: 'cancelled' }),
      );
    case 'loses its rtc actor':
      return head(
        {
          type: `xstate.error.actor.rtc:${peer}#${generation}`,
          actorId: `rtc:${peer}#${generation}`,
          error: { message: 'rtc crashed (simulated)' },
        } as SEvent,
        signalOf(msg('response', { peer, data: { error: 'rtc-failed' } })),
        done({ reason: 'rtc-failed' }),
      );
  }
}

function progressOfPeer(peer: string, data: Record<string, unknown>): TMsg {
  return msg('progress', { peer, data: { total: SIZE, ...data } });
}

const OUTCOMES: Outcome[] = [
  'completes',
  'completes on a fresh connection',
  'is refused',
  'loses its receiver',
  'is cancelled',
  'loses its rtc actor',
];

const whereS = (s: AnyMachineSnapshot): string =>
  typeof s.value === 'string' ? s.value : (s.value as { active: string }).active;

function senderEvents(snapshot: AnyMachineSnapshot): SEvent[] {
  if (snapshot.status !== 'active') return [];
  const { context } = snapshot as SSnapshot;
  const where = whereS(snapshot);
  if (where === 'connecting') {
    return [
      { type: 'signalling.open' },
      { type: 'signalling.closed', info: { code: 1006, reason: 'connection refused', initiator: 'remote' } },
      { type: 'cancel' },
    ];
  }
  const events: SEvent[] = [
    msg('assign', { peer: ME }),
    msg('error', {
      code: 'ERR_NOT_PERMITTED',
      message: 'answer: H3XN8RTW has not sent you a request',
      event: 'answer',
    }),
    msg('invalid peer id', { event: 'response', peer: 'nope' }),
    { type: 'signalling.error', error: { code: ErrorCode.MalformedFrame, message: 'not JSON' }, frame: 'nope' },
    { type: 'signalling.closed', info: { code: 1001, reason: 'server closing', initiator: 'remote' } },
    { type: 'xstate.error.actor.signalling', error: { message: 'the codec broke (simulated)' } },
    { type: 'cancel' },
  ];
  if (where !== 'serving' && where !== 'awaitingAssign') return events;
  // Before `assign` a request is not for us yet; once serving, anyone may ask, up to the model's bound.
  if (context.generation < MAX_GENERATION || where === 'awaitingAssign') {
    events.push(msg('request', { peer: R1 }), msg('request', { peer: R2 }));
  }
  if (where === 'awaitingAssign') return events;
  // Messages and rtc events for a receiver that has no transfer (a stranger, or one whose transfer ended).
  events.push(
    msg('offer', { peer: STRANGER, data: { type: 'offer', sdp: 'stray-offer' } }),
    msg('candidate', { peer: STRANGER, data: CANDIDATE }),
    progressOfPeer(STRANGER, { received: 1 }),
    msg('done', { peer: STRANGER }),
    msg('peer not exists', { peer: STRANGER }),
    { type: 'rtc.open', label: STRANGER, transport: stubTransport },
    { type: 'rtc.closed', label: STRANGER },
    { type: 'cancel', peer: STRANGER },
  );
  const running = context.transfers[R1];
  if (running) {
    const { generation } = running;
    // What R1 and its rtc actor may do that leaves its transfer awaiting the offer.
    events.push(
      chain(msg('candidate', { peer: R1, data: CANDIDATE }), {
        type: 'transfer.rtc',
        peer: R1,
        command: { type: 'rtc.remoteCandidate', candidate: CANDIDATE },
      }),
      chain(
        { type: 'rtc.description', label: R1, description: { type: 'answer', sdp: 'sender-answer' } },
        signalOf(msg('answer', { peer: R1, data: { type: 'answer', sdp: 'sender-answer' } })),
      ),
      chain(
        { type: 'rtc.candidate', label: R1, candidate: CANDIDATE },
        signalOf(msg('candidate', { peer: R1, data: CANDIDATE })),
      ),
      { type: 'rtc.failed', label: R1, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } },
      {
        type: `xstate.error.actor.transfer:${R1}#${generation}`,
        actorId: `transfer:${R1}#${generation}`,
        error: { message: 'the transfer crashed' },
      } as SEvent,
    );
    for (const outcome of OUTCOMES) events.push(outcomeEvent(R1, generation, outcome));
  }
  return events;
}

const sSerialize = (snapshot: AnyMachineSnapshot) => {
  const { context } = snapshot as SSnapshot;
  if (snapshot.status !== 'active')
    return JSON.stringify([snapshot.value, context.once, context.error?.reason ?? null]);
  return JSON.stringify([snapshot.value, context.once, context.transfers, context.generation, context.completed]);
};

function sFormatEvent(event: SEvent): string {
  const outcome = outcomeOf(event);
  if (outcome) return `the transfer of R1 ${outcome}`;
  const peerName = (p: unknown) => (p === R1 ? 'R1' : p === R2 ? 'R2' : p === STRANGER ? 'stranger' : String(p));
  if (event.type.startsWith(CRASH)) return `${event.type.slice(CRASH.length).replace(/:.*$/, '')} actor crashes`;
  if (event.type === 'cancel') return 'peer' in event && event.peer ? `cancel(${peerName(event.peer)})` : 'cancel';
  if ('label' in event) return `${event.type}(${peerName(event.label)})`;
  if (event.type === 'signalling.closed') return (event as { info: { reason: string } }).info.reason;
  if (event.type === 'signalling.error') return 'bad frame';
  if ('detail' in event && event.type !== 'error' && event.type !== 'invalid peer id' && event.type !== 'assign')
    return `${event.type}(${peerName((event as TMsg).detail.peer)})`;
  return event.type;
}

function sDescribe(path: StatePath<AnyMachineSnapshot, SEvent>): string {
  const { context } = path.state as SSnapshot;
  const once = (path.steps[0]!.state.context as SenderContext).once ? 'once ' : '';
  const running = Object.keys(context.transfers)
    .map((p) => (p === R1 ? 'R1' : 'R2'))
    .join('+');
  const end =
    path.state.status === 'active'
      ? `${whereS(path.state)}${running ? ` ${running}` : ''}`
      : `${String(path.state.value)}${context.error ? ` (${context.error.reason})` : ''}`;
  return `${once}reaches ${end} after ${
    path.steps
      .slice(1)
      .map((s) => sFormatEvent(s.event))
      .join(' → ') || 'starting'
  }`;
}

/** Sender transitions that the sender model does not plan, and why: none, every one is planned. */
const senderNotPlanned: Record<string, string> = {};

/** One plan per kind of sender: serving everyone, and serving once. */
const senderPlans = [false, true].map((once) =>
  planPaths<SEvent>({
    model: senderModel,
    machine: filedropSender,
    inputs: [{ source: memorySource(CONTENT), ...TIMING, once }],
    events: senderEvents,
    serializeState: sSerialize,
    describe: sDescribe,
    notPlanned: senderNotPlanned,
    // Every event in every control state, with each set of running transfers.
    edgeClass: (from, event) =>
      `${JSON.stringify(from.value)} ${Object.keys((from.context as SenderContext).transfers).join('+')} ${sFormatEvent(event)}`,
  }),
);
const senderPaths = senderPlans.flatMap((plan) => plan.paths);

/** Plays a transfer's whole course on the real sender. */
async function playOutcome(w: SenderWorld, peer: string, generation: number, outcome: Outcome) {
  switch (outcome) {
    case 'completes': {
      w.send('offer', { peer, data: { type: 'offer', sdp: 'receiver-offer' } });
      await settle();
      w.rtc.live.get(peer)!.emit({ type: 'rtc.failed', label: peer, error: new RtcError(ErrorCode.RtcFailed, 'ICE') });
      await settle();
      w.send('offer', { peer, data: { type: 'offer', sdp: 'receiver-offer' } });
      await settle();
      w.openChannel(peer);
      await settle();
      w.source.release();
      await settle();
      expect(sameBytes(received(w.chunks.get(peer)!), CONTENT)).toBe(true);
      w.send('progress', { peer, data: { received: SIZE, total: SIZE, done: true } });
      break;
    }
    case 'completes on a fresh connection': {
      w.send('offer', { peer, data: { type: 'offer', sdp: 'receiver-offer' } });
      await settle();
      const first = w.rtc.live.get(peer)!;
      w.openChannel(peer);
      await settle();
      // The channel is lost while the upload waits for its first read.
      first.channel!.remote.close();
      first.emit({ type: 'rtc.closed', label: peer });
      await settle();
      w.send('offer', { peer, data: { type: 'offer', sdp: 'receiver-offer-2', offset: CHUNK_SIZE } });
      await settle();
      expect(w.rtc.live.get(peer)).not.toBe(first);
      expect(first.stopped).toBe(true);
      w.openChannel(peer);
      await settle();
      w.source.release();
      await settle();
      // Chunk 1 on: the receiver has chunk 0.
      expect(sameBytes(received(w.chunks.get(peer)!, CHUNK_SIZE), CONTENT.subarray(CHUNK_SIZE))).toBe(true);
      w.send('progress', { peer, data: { received: SIZE, total: SIZE, done: true } });
      break;
    }
    case 'is refused':
      w.send('progress', { peer, data: { received: 0, total: SIZE, error: 'sink-failed' } });
      break;
    case 'loses its receiver':
      w.send('peer not exists', { peer });
      break;
    case 'is cancelled':
      w.actor.send({ type: 'cancel', peer });
      break;
    case 'loses its rtc actor':
      w.crashRtc(`rtc:${peer}#${generation}`);
      break;
  }
}

async function senderExec(w: SenderWorld, prev: SSnapshot, event: SEvent): Promise<void> {
  const where = whereS(prev);
  const outcome = outcomeOf(event);
  if (outcome) {
    await playOutcome(w, R1, prev.context.transfers[R1]!.generation, outcome);
    await settle();
    return;
  }
  switch (event.type) {
    case 'signalling.open':
      w.open();
      break;
    case 'signalling.closed':
      if (where === 'connecting') w.refuse(new Error('connection refused'));
      else w.serverEnd.close(1001, 'server closing');
      break;
    case 'signalling.error':
      w.serverEnd.send((event as { frame: string }).frame);
      break;
    case 'cancel':
      w.actor.send({ type: 'cancel', ...('peer' in event && event.peer ? { peer: event.peer } : {}) });
      break;
    case 'xstate.error.actor.signalling':
      w.crashSignalling();
      break;
    case 'rtc.description':
    case 'rtc.candidate':
    case 'rtc.failed': {
      const script = w.rtc.live.get((event as { label: string }).label)!;
      script.emit(
        event.type === 'rtc.failed'
          ? { type: 'rtc.failed', label: R1, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') }
          : (event as never),
      );
      break;
    }
    case 'rtc.open':
    case 'rtc.closed':
      // A late event of an rtc actor whose transfer is gone: it reaches the sender only.
      w.actor.send(event.type === 'rtc.open' ? { type: 'rtc.open', label: STRANGER, transport: stubTransport } : event);
      break;
    default:
      if (event.type.startsWith(`${CRASH}transfer:`)) {
        // A broken rtc actor reports a description without one: the transfer's guard throws, and it crashes.
        w.rtc.live.get(R1)!.emit({ type: 'rtc.description', label: R1 } as never);
      } else w.send(event.type, (event as TMsg).detail);
  }
  await settle();
}

interface SExpectation {
  frames: SentFrame[];
  emitted: Array<{ type: string; detail: unknown }>;
}

/** Why the sender itself ends on `event` in `prev`, if it does. */
function senderFailure(prev: SSnapshot, event: SEvent): TransferFailure | 'done' | undefined {
  const where = whereS(prev);
  switch (event.type) {
    case 'signalling.closed':
    case 'xstate.error.actor.signalling':
      return 'signalling-lost';
    case 'signalling.error':
    case 'error':
    case 'invalid peer id':
      return 'protocol';
    case 'cancel':
      if (!('peer' in event && event.peer)) return 'cancelled';
  }
  // A once sender ends with its transfer: done, failed, or crashed; but one that failed on the
  // receiver's side (it refused, or it left) leaves it serving for another try.
  if (event.type.startsWith(`${CRASH}transfer:`) && prev.context.once) return 'protocol';
  const outcome = outcomeOf(event);
  if (outcome && prev.context.once && where === 'serving') {
    if (outcome === 'is refused' || outcome === 'loses its receiver') return undefined;
    return transferOutcomeReason(outcome) ?? 'done';
  }
  return undefined;
}

function transferOutcomeReason(outcome: Outcome): TransferFailure | undefined {
  switch (outcome) {
    case 'completes':
    case 'completes on a fresh connection':
      return undefined;
    case 'is refused':
      return 'remote-cancelled';
    case 'loses its receiver':
      return 'peer-gone';
    case 'is cancelled':
      return 'cancelled';
    case 'loses its rtc actor':
      return 'rtc-failed';
  }
}

function senderExpectation(prev: SSnapshot | undefined, event: SEvent): SExpectation {
  const out: SExpectation = { frames: [], emitted: [] };
  if (!prev) return out;
  const where = whereS(prev);
  const { transfers, once, completed } = prev.context;
  const ending = senderFailure(prev, event);
  const outcome = outcomeOf(event);
  if (outcome) {
    const reason = transferOutcomeReason(outcome);
    // Ours are told to the receiver; the receiver's own, or its leaving, are not.
    if (reason === 'cancelled' || reason === 'rtc-failed') out.frames.push(response(R1, { error: reason }));
    if (outcome === 'completes on a fresh connection') {
      out.frames.push(doneFrame(R1));
      out.emitted.push({ type: 'resuming', detail: { peer: R1, offset: CHUNK_SIZE, reconnect: true } });
      out.emitted.push({ type: 'progress', detail: { peer: R1, received: SIZE, total: SIZE } });
      out.emitted.push({ type: 'completed', detail: { peer: R1 } });
    } else if (outcome === 'completes') {
      out.frames.push({ type: 'retry', detail: { peer: R1 } }, doneFrame(R1));
      out.emitted.push({ type: 'retrying', detail: { peer: R1, attempt: 1 } });
      out.emitted.push({ type: 'progress', detail: { peer: R1, received: SIZE, total: SIZE } });
      out.emitted.push({ type: 'completed', detail: { peer: R1 } });
    } else out.emitted.push({ type: 'failed', detail: { peer: R1, error: expect.objectContaining({ reason }) } });
  }
  switch (event.type) {
    case 'assign':
      if (where === 'awaitingAssign') out.emitted.push({ type: 'assigned', detail: { id: ME } });
      break;
    case 'request': {
      const peer = (event as TMsg).detail.peer as string;
      if (where !== 'serving' || peer in transfers) break;
      if (once && (Object.keys(transfers).length > 0 || completed > 0))
        out.frames.push(response(peer, { error: 'busy' }));
      else {
        out.frames.push(response(peer, ANNOUNCED));
        out.emitted.push({ type: 'requested', detail: { peer } });
      }
      break;
    }
    case 'rtc.description':
      out.frames.push({ type: 'answer', detail: { peer: R1, data: { type: 'answer', sdp: 'sender-answer' } } });
      break;
    case 'rtc.candidate':
      out.frames.push({ type: 'candidate', detail: { peer: R1, data: CANDIDATE } });
      break;
    case 'cancel':
      // Cancelling all tells every receiver still being served.
      if (!outcome && ending === 'cancelled' && where === 'serving')
        for (const peer of Object.keys(transfers)) out.frames.push(response(peer, { error: 'cancelled' }));
      break;
    default:
      if (event.type.startsWith(`${CRASH}transfer:`)) {
        out.emitted.push({
          type: 'failed',
          detail: { peer: R1, error: expect.objectContaining({ reason: 'protocol' }) },
        });
      }
  }
  if (ending === 'done') out.emitted.push({ type: 'stopped', detail: { error: undefined } });
  else if (ending)
    out.emitted.push({ type: 'stopped', detail: { error: expect.objectContaining({ reason: ending }) } });
  return out;
}

async function senderCheck(w: SenderWorld, prev: SSnapshot | undefined, event: SEvent, next: SSnapshot) {
  const real = w.actor.getSnapshot() as SSnapshot;
  senderTracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);

  const want = senderExpectation(prev, event);
  expect(w.take()).toEqual(want.frames);
  expect(w.emitted()).toEqual(want.emitted);
  if (prev && event.type === 'candidate' && (event as TMsg).detail.peer === R1) {
    expect(w.commands(R1)).toEqual([{ type: 'rtc.remoteCandidate', candidate: CANDIDATE }]);
  }

  if (next.status !== 'active') {
    const ending = prev ? senderFailure(prev, event) : undefined;
    expect(real.context.error?.reason).toBe(ending === 'done' ? undefined : ending);
    // Everything is let go: the connection, every transfer and rtc actor, the timers, the file.
    // (But for a signalling actor that crashed: XState runs no cleanup for a callback actor that
    // threw, so `fromTransport` cannot close its transport then.)
    if (w.connected && event.type !== 'xstate.error.actor.signalling') expect(w.serverEnd.isOpen).toBe(false);
    expect(w.rtc.scripts.filter((s) => !s.stopped && !s.crashing)).toEqual([]);
    expect(Object.values(w.actor.system.getSnapshot()._scheduledEvents)).toEqual([]);
    await settle();
    expect(w.source.closed).toBe(true);
    return;
  }
  expect(real.context.id).toBe(next.context.id);
  expect(real.context.transfers).toEqual(next.context.transfers);
  expect(real.context.generation).toBe(next.context.generation);
  expect(real.context.completed).toBe(next.context.completed);
  // One transfer and one rtc actor per running transfer, named by receiver and generation.
  const children = ['signalling'];
  for (const [peer, { generation }] of Object.entries(next.context.transfers as SenderContext['transfers'])) {
    children.push(`transfer:${peer}#${generation}`, `rtc:${peer}#${generation}`);
  }
  expect(Object.keys(real.children).sort()).toEqual(children.sort());
  expect(Object.keys(next.children).sort()).toEqual(children.sort());
  expect(
    w.rtc.scripts
      .filter((s) => !s.stopped && !s.crashing)
      .map((s) => s.id)
      .sort(),
  ).toEqual(children.filter((c) => c.startsWith('rtc:')).sort());
  // A running transfer waits for its receiver's offer.
  for (const [peer, { generation }] of Object.entries(next.context.transfers as SenderContext['transfers'])) {
    expect((real.children[`transfer:${peer}#${generation}`] as AnyActorRef).getSnapshot().value).toBe('awaitingOffer');
  }
  expect(w.source.closed).toBe(false);
}

// ===========================================================================

describe('filedrop sender, model-based (scripted server and WebRTC, gated memory source, SimulatedClock)', () => {
  const ran: Array<() => boolean> = [];

  describe('one transfer (filedropSenderTransfer)', () => {
    ran.push(
      replayEach('the transfer', transferPlan.paths, {
        start: () => startTransfer(),
        exec: (w, prev, event) => transferExec(w, prev as TSnapshot, event),
        check: transferCheck,
        stop: (w) => void w.actor.stop(),
      }),
    );
  });

  describe('the sender (filedropSender)', () => {
    ran.push(
      replayEach('the sender', senderPaths, {
        start: async (initial) => {
          const w = senderWorld({ once: (initial.context as SenderContext).once }, inspectBoth);
          await settle();
          return w;
        },
        exec: senderExec,
        check: senderCheck,
        stop: (w) => void w.actor.stop(),
      }),
    );
  });

  it('takes every state node and every transition of the sender and transfer machines', () => {
    // The transfers of the sender paths count too: the real coverage is checked once every path ran.
    const ranAll = ran.every((all) => all());
    expectFullCoverage({
      label: 'filedrop transfer model',
      machine: filedropSenderTransfer,
      plan: transferPlan,
      tracker: transferTracker,
      ranAll,
    });
    // A sender that serves everyone is never busy and never ends with a transfer: those are the once
    // sender's; a once sender serves on only after a transfer that failed on the receiver's side.
    const onceOnly = [
      'filedropSender.active.serving: on request [1]',
      'filedropSender.active.serving: on xstate.done.actor.* [0]',
      'filedropSender.active.serving: on xstate.done.actor.* [1]',
      'filedropSender.active.serving: on xstate.error.actor.* [0]',
    ];
    expect([...senderPlans[0]!.unplanned].sort()).toEqual(onceOnly.map((t) => `transition ${t}`));
    expect(senderPlans[1]!.unplanned).toEqual([]);
    const planned = {
      states: new Set(senderPlans.flatMap((plan) => [...plan.planned.states])),
      transitions: new Set(senderPlans.flatMap((plan) => [...plan.planned.transitions])),
    };
    expectPlanned(filedropSender, planned, senderNotPlanned);
    if (!ranAll) return; // a filtered run
    expectVisited(filedropSender, senderTracker.visited);
    console.info(
      `filedrop sender models: ${senderPlans.map((p) => `${p.size.states} states, ${p.size.edges} edges`).join(' and ')}, ` +
        `${senderPaths.length} paths; ${coverageCount(filedropSender, senderTracker.visited)}`,
    );
  });
});
