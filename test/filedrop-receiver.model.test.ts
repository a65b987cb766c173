/**
 * Model-based test of the filedrop receiver (`filedropReceiver`).
 *
 * The model is the receiver machine itself with inert child actors (its
 * effects are messages to them and to the application); its events are what
 * a scripted server (the sender's messages, relayed, and the server's own),
 * a scripted WebRTC connection, the file coming down the data channel, the
 * sink, the application (`cancel`) and the clock can do to one receiver.
 * Each path @xstate/graph plans runs on a fresh real receiver: its
 * `signalling` is a memory transport to a server end the test writes raw
 * frames to, its `rtc` reports only what the path says, its `openSink` and
 * `download` are the real ones writing to an in-memory sink whose opening,
 * writes and commit the test controls, and its clock is a SimulatedClock.
 * The file is 256 KiB and 100 bytes, so the download reports progress twice
 * (at 256 KiB and at the end). After every step the receiver's state and
 * context, its children, the frames it sent the server, the commands its
 * rtc actor got, the events it emitted and the sink are checked.
 */
import { describe, expect, it } from 'vitest';
import { fromCallback, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { CHUNK_SIZE, encodeChunk } from '../machines/transfer/chunks.js';
import { isOwnFailure } from '../machines/filedrop/client.js';
import type { TransferFailure } from '../machines/filedrop/errors.js';
import { memorySink, sha256Hex, type FileSink } from '../machines/transfer/files.js';
import type { FileInfo } from '../machines/filedrop/protocol.js';
import { filedropReceiver, type ReceiverContext } from '../machines/filedrop/receiver.machine.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import type { RtcCommand } from '../src/rtc/rtc.actor.js';
import { bytes } from './filedrop-helpers.js';
import { chainedModel, filedropClientWorld, type Chained, type SentFrame } from './filedrop-model-helpers.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle, stubTransport } from './model-helpers.js';

const SENDER = 'K7PQ2MZA';
const ME = 'H3XN8RTW';
const STRANGER = 'ZZZZ9999';
const RESPONSE_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 30_000;
const PROGRESS_INTERVAL_MS = 250;
const LOST_TIMEOUT_MS = 10_000;
const MAX_RETRIES = 1;
/** One fresh connection after a lost channel (then the receiver waits for the sender's word, as before). */
const MAX_RECONNECTS = 1;
/** Two reconnections to the server in a row after a lost signalling connection (a `busy` answer costs one), then `signalling-lost` as before. */
const MAX_REJOINS = 2;
const REJOIN_DELAY_MS = 1000;
/** The download reports progress every 256 KiB and at the end: twice for this file. */
const STEP = 256 * 1024;
const SIZE = STEP + 100;
const CONTENT = bytes(SIZE, 7);
const FILE: FileInfo = { name: 'a.bin', size: SIZE, type: 'application/octet-stream', sha256: sha256Hex(CONTENT) };
/** The same file announced with a digest that does not match its bytes. */
const BAD_FILE: FileInfo = { ...FILE, sha256: '0'.repeat(64) };
/** The same file whose digest follows in the sender's `done` (a sender that could not hash it first). */
const TRAILED_FILE: FileInfo = { name: FILE.name, size: SIZE, type: FILE.type, trailer: 'sha256' };
/** The same file as the original project's sender describes it: no digest at all. */
const ORIGINAL_FILE = { fileName: FILE.name, fileSize: SIZE };
const ORIGINAL_READ: FileInfo = { name: FILE.name, size: SIZE, type: '' };
/** A file info that cannot be read (no size). */
const UNREADABLE_FILE = { name: FILE.name };
const WRONG_DIGEST = '0'.repeat(64);

const TIMING = {
  maxRetries: MAX_RETRIES,
  maxReconnects: MAX_RECONNECTS,
  maxRejoins: MAX_REJOINS,
  rejoinDelay: REJOIN_DELAY_MS,
  responseTimeout: RESPONSE_TIMEOUT_MS,
  connectTimeout: CONNECT_TIMEOUT_MS,
  progressInterval: PROGRESS_INTERVAL_MS,
  lostTimeout: LOST_TIMEOUT_MS,
};
const CODE = 'k7pq-2mza';
const BAD_CODE = 'hello';

const AFTER_RESPONSE = 'xstate.after.responseTimeout.filedropReceiver.active.requesting';
const AFTER_CONNECT = 'xstate.after.connectTimeout.filedropReceiver.active.engaged.transferring.connecting';
const AFTER_PROGRESS = 'xstate.after.progressInterval.filedropReceiver.active.engaged.transferring.receiving.cooling';
const AFTER_LOST = 'xstate.after.lostTimeout.filedropReceiver.active.engaged.lost';
const AFTER_REJOIN = 'xstate.after.rejoinDelay.filedropReceiver.rejoining';
const DELAY: Record<string, number> = {
  [AFTER_RESPONSE]: RESPONSE_TIMEOUT_MS,
  [AFTER_CONNECT]: CONNECT_TIMEOUT_MS,
  [AFTER_PROGRESS]: PROGRESS_INTERVAL_MS,
  [AFTER_LOST]: LOST_TIMEOUT_MS,
};
const CANDIDATE = { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 };

type Msg = { type: string; detail: Record<string, unknown> };
type ModelEvent = Chained<
  | Msg
  | { type: 'signalling.open' }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: 'signalling.error'; error: { code: string; message: string }; frame: string }
  | { type: 'cancel' }
  | { type: 'xstate.error.actor.signalling' | 'xstate.error.actor.rtc'; error: { message: string } }
  | { type: 'xstate.done.actor.openSink'; output: object }
  | { type: 'xstate.error.actor.openSink'; error: { message: string } }
  | { type: 'xstate.done.actor.resumeOffset'; output: number }
  | { type: 'xstate.error.actor.resumeOffset'; error: { message: string } }
  | { type: 'download.started'; offset: number }
  | { type: 'rtc.description'; label: string; description: { type: 'offer'; sdp: string } }
  | { type: 'rtc.candidate'; label: string; candidate: typeof CANDIDATE }
  | { type: 'rtc.open'; label: string; transport: object }
  | { type: 'rtc.failed'; label: string; error: { code: string; message: string } }
  | { type: 'rtc.closed'; label: string }
  | { type: 'download.progress'; received: number }
  | { type: 'download.arrived'; received: number }
  | { type: 'download.done'; received: number; sha256: string; verified: boolean }
  | {
      type: 'download.failed';
      reason: 'protocol' | 'size-mismatch' | 'digest-mismatch' | 'sink-failed';
      message: string;
      received: number;
      /** How the real download comes to it. */
      how: 'text frame' | 'oversized chunk' | 'write fails' | 'commit fails' | 'digest' | 'no digest in done';
    }
  | {
      type:
        typeof AFTER_RESPONSE | typeof AFTER_CONNECT | typeof AFTER_PROGRESS | typeof AFTER_LOST | typeof AFTER_REJOIN;
    }
>;

type ModelSnapshot = AnyMachineSnapshot & { context: ReceiverContext };

const inert = fromCallback(() => {}) as never;
/** The receiver with inert children: what it does is all messages to them, so it is its own model. */
const model = chainedModel(
  filedropReceiver.provide({
    actors: { signalling: inert, rtc: inert, openSink: inert, resumeOffset: inert, download: inert },
  }),
);

/** What the model's sink is: one a receiver can resume into (the real one is `controlledSink`). */
const RESUMABLE_SINK = {
  write() {},
  close() {},
  abort() {},
  size: () => 0,
  read: async () => new Uint8Array(0),
  truncate() {},
};

/** Where a fresh connection resumes: what is stored, in whole chunks, below the size. */
const resumeAt = (stored: number) =>
  Math.min(Math.floor(stored / CHUNK_SIZE), Math.floor((SIZE - 1) / CHUNK_SIZE)) * CHUNK_SIZE;

/** The receiver's check of what its sink holds, chained after the step that starts it. */
const offsetFound = (offset: number): ModelEvent => ({ type: 'xstate.done.actor.resumeOffset', output: offset });

const msg = (type: string, detail: Record<string, unknown>): ModelEvent => ({ type, detail });

/** What the server (and the sender through it) may send at any time once connected. */
const serverFrames: ModelEvent[] = [
  msg('assign', { peer: ME }),
  msg('response', { peer: SENDER, data: FILE }),
  msg('response', { peer: SENDER, data: BAD_FILE }),
  msg('response', { peer: SENDER, data: TRAILED_FILE }),
  msg('response', { peer: SENDER, data: ORIGINAL_FILE }),
  msg('response', { peer: SENDER, data: UNREADABLE_FILE }),
  msg('response', { peer: SENDER, data: { error: 'busy' } }),
  msg('response', { peer: SENDER, data: { error: 'cancelled' } }),
  msg('response', { peer: STRANGER, data: FILE }),
  msg('peer not exists', { peer: STRANGER }),
  msg('invalid peer id', { event: 'request' }),
  // The original server's notices carry nothing.
  msg('invalid peer id', {}),
  msg('peer not exists', {}),
  msg('error', { code: 'ERR_NOT_PERMITTED', message: 'offer: you have not sent K7PQ2MZA a request', event: 'offer' }),
  { type: 'signalling.error', error: { code: ErrorCode.MalformedFrame, message: 'not JSON' }, frame: 'nope' },
  { type: 'signalling.closed', info: { code: 1001, reason: 'server closing', initiator: 'remote' } },
  { type: 'cancel' },
  { type: 'xstate.error.actor.signalling', error: { message: 'the codec broke (simulated)' } },
];

type Where =
  | 'rejoining'
  | 'connecting'
  | 'awaitingAssign'
  | 'requesting'
  | 'openingSink'
  | 'lost'
  | 'transferring.connecting'
  | 'receiving.idle'
  | 'receiving.cooling';

/** The control state, flattened: `requesting`, `transferring.connecting`, `receiving.cooling`, … */
function whereOf(snapshot: AnyMachineSnapshot): Where | undefined {
  if (snapshot.value === 'rejoining') return 'rejoining';
  const active = (snapshot.value as { active?: unknown }).active;
  if (active === undefined) return undefined;
  if (typeof active === 'string') return active as Where;
  const engaged = (active as { engaged: unknown }).engaged;
  if (typeof engaged === 'string') return engaged as Where;
  const transferring = (engaged as { transferring: unknown }).transferring;
  if (typeof transferring === 'string') return `transferring.${transferring}` as Where;
  return `receiving.${(transferring as { receiving: string }).receiving}` as Where;
}
const isEngaged = (where: Where | undefined) =>
  where !== undefined && !['rejoining', 'connecting', 'awaitingAssign', 'requesting'].includes(where);

/** A sink is open: the receiver's `request` (again) follows a lost server connection. */
const isRejoin = (context: ReceiverContext) => context.sink !== undefined;

/** The receiver connects to the server again when it loses it (see `canRejoin`). */
function canRejoin(context: ReceiverContext): boolean {
  const settling = context.arrived && verdictOf(context) !== 'pending';
  return context.file !== undefined && context.sink !== undefined && context.rejoins < MAX_REJOINS && !settling;
}

/**
 * A `retry` from the sender now opens a fresh connection, not another ICE
 * restart: the last restart brought no byte (the sender's side could not
 * apply it), the sender announced a digest (signalbox's, which takes fresh
 * offers), and the receiver may still make one.
 */
function freshOnRetry(context: ReceiverContext): boolean {
  const ours = context.file?.sha256 !== undefined || context.file?.trailer !== undefined;
  return context.restartedAt !== undefined && ours && context.reconnects < MAX_RECONNECTS;
}

/**
 * A `retry` on a fresh connection that the sender has not answered yet (nor
 * its channel opened) is about the connection it replaced: the sender sent it
 * before our fresh offer reached it. It is ignored.
 */
const isStaleRetry = (where: Where | undefined, context: ReceiverContext) =>
  where === 'transferring.connecting' && context.unanswered;

/** The sender describes the file the sink holds part of (same name and size, same digest where both have one). */
function isSameFile(context: ReceiverContext, data: unknown): boolean {
  if (JSON.stringify(data) === JSON.stringify(UNREADABLE_FILE)) return false;
  const d = data as { name?: string; fileName?: string; size?: number; fileSize?: number; sha256?: string };
  const known = context.file!;
  return (
    (d.name ?? d.fileName) === known.name &&
    (d.size ?? d.fileSize) === known.size &&
    (d.sha256 === undefined || known.sha256 === undefined || d.sha256 === known.sha256)
  );
}

/** What the `rejoining` event says for attempt `rejoins + 1`. */
const rejoiningOf = (context: ReceiverContext, reason: TransferFailure) => ({
  type: 'rejoining',
  detail: {
    attempt: context.rejoins + 1,
    maxRejoins: MAX_REJOINS,
    delay: REJOIN_DELAY_MS * 2 ** context.rejoins,
    error: expect.objectContaining({ reason }),
  },
});
const isTransferring = (where: Where | undefined) =>
  where === 'transferring.connecting' || where?.startsWith('receiving.') === true;

/** The sender's `done` in its forms: with the right digest, a wrong one, an unreadable one, and the original's (none). */
const DONES: ModelEvent[] = [
  msg('done', { peer: SENDER, data: { sha256: FILE.sha256 } }),
  msg('done', { peer: SENDER, data: { sha256: WRONG_DIGEST } }),
  msg('done', { peer: SENDER, data: { sha256: 'xyz' } }),
  msg('done', { peer: SENDER }),
];

/**
 * What the download will make of the bytes once they are all in: `ok` (they match the digest, or
 * there is none to match), `bad` (they do not), `no digest` (the trailer came without one), or
 * `pending` (the digest is to come in the sender's `done`).
 */
function verdictOf(context: ReceiverContext): 'ok' | 'bad' | 'no digest' | 'pending' {
  const { file, trailer } = context;
  if (file?.sha256 !== undefined) return file.sha256 === FILE.sha256 ? 'ok' : 'bad';
  if (file?.trailer !== 'sha256') return 'ok';
  if (trailer === undefined) return 'pending';
  if (trailer.sha256 === undefined) return 'no digest';
  return trailer.sha256 === FILE.sha256 ? 'ok' : 'bad';
}

/** The download's failure for a verdict, chained after the step that brings it. */
function verdictFailure(verdict: 'bad' | 'no digest'): ModelEvent {
  return verdict === 'bad'
    ? { type: 'download.failed', reason: 'digest-mismatch', message: 'wrong digest', received: SIZE, how: 'digest' }
    : {
        type: 'download.failed',
        reason: 'protocol',
        message: 'no digest in done',
        received: SIZE,
        how: 'no digest in done',
      };
}

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { context } = snapshot as ModelSnapshot;
  const where = whereOf(snapshot);
  if (where === 'rejoining') return [{ type: AFTER_REJOIN }, { type: 'cancel' }];
  if (where === 'connecting') {
    return [
      { type: 'signalling.open' },
      { type: 'signalling.closed', info: { code: 1006, reason: 'connection refused', initiator: 'remote' } },
      { type: 'cancel' },
    ];
  }
  // Asked again after a lost server connection, the same file resumes into the open sink: it is asked what it holds.
  const events =
    where === 'requesting' && isRejoin(context)
      ? serverFrames.map((event) => {
          const { type, detail } = event as Msg;
          if (type !== 'response' || detail.peer !== SENDER) return event;
          const data = detail.data as { error?: string };
          return data.error === undefined && isSameFile(context, data)
            ? { ...event, then: offsetFound(resumeAt(context.received)) }
            : event;
        })
      : [...serverFrames];
  events.push(msg('peer not exists', isEngaged(where) ? { peer: SENDER } : { peer: SENDER, event: 'request' }));
  if (where === 'requesting') events.push({ type: AFTER_RESPONSE });
  if (where === 'openingSink') {
    // The sink opens, and the receiver asks it what it holds (nothing: the test's sink starts empty).
    events.push({ type: 'xstate.done.actor.openSink', output: RESUMABLE_SINK, then: offsetFound(0) });
    events.push({
      type: 'xstate.done.actor.openSink',
      output: RESUMABLE_SINK,
      then: { type: 'xstate.error.actor.resumeOffset', error: { message: 'cannot read the sink' } },
    });
    events.push({ type: 'xstate.error.actor.openSink', error: { message: 'no room for it' } });
  }
  if (where === 'lost') events.push({ type: AFTER_LOST });
  // The sender's `done` once engaged (before that it is not listened for), but for the one step that
  // gives the download its digest while it waits: that is below.
  const waiting = where?.startsWith('receiving.') && context.received === SIZE && verdictOf(context) === 'pending';
  if (isEngaged(where) && !waiting) events.push(...DONES);
  if (isTransferring(where)) {
    for (const peer of [SENDER, STRANGER]) {
      events.push(msg('answer', { peer, data: { type: 'answer', sdp: `${peer}-answer` } }));
      events.push(msg('candidate', { peer, data: CANDIDATE }));
      // After a restart that did not help, the sender's retry opens a fresh connection.
      events.push(
        peer === SENDER && freshOnRetry(context) && !isStaleRetry(where, context)
          ? { ...msg('retry', { peer }), then: offsetFound(resumeAt(context.received)) }
          : msg('retry', { peer }),
      );
    }
    // The other forms: an SDP string, the end of candidates, and what cannot be read.
    events.push(msg('answer', { peer: SENDER, data: 'sender-answer-text' }));
    events.push(msg('candidate', { peer: SENDER, data: null }));
    events.push(msg('answer', { peer: SENDER, data: { type: 'offer', sdp: 'not an answer' } }));
    events.push(msg('candidate', { peer: SENDER, data: 7 }));
    events.push({ type: 'xstate.error.actor.rtc', error: { message: 'rtc crashed (simulated)' } });
  }
  if (where === 'transferring.connecting') {
    events.push({ type: 'rtc.description', label: SENDER, description: { type: 'offer', sdp: 'receiver-offer' } });
    events.push({ type: 'rtc.candidate', label: SENDER, candidate: CANDIDATE });
    events.push({ type: 'rtc.open', label: SENDER, transport: stubTransport });
    events.push({ type: AFTER_CONNECT });
  }
  if (isTransferring(where)) {
    // Its own ICE failure is not the receiver's to act on (the sender asks for `retry`), but a failed
    // ICE restart is: the rtc actor could not make the offer the sender waits for.
    const failed: ModelEvent = {
      type: 'rtc.failed',
      label: SENDER,
      error: { code: ErrorCode.RtcFailed, message: 'ICE failed' },
    };
    // A restart that failed: a fresh connection resumes from what is stored, while the receiver may make one.
    if (context.restarting && context.reconnects < MAX_RECONNECTS)
      failed.then = offsetFound(resumeAt(context.received));
    events.push(failed);
    if (where !== 'transferring.connecting' && context.restarting) {
      events.push({ type: 'rtc.description', label: SENDER, description: { type: 'offer', sdp: 'receiver-offer' } });
    }
  }
  if (where?.startsWith('receiving.')) {
    const { received } = context;
    const verdict = verdictOf(context);
    if (where === 'receiving.cooling') events.push({ type: AFTER_PROGRESS });
    // The channel is lost: a fresh connection resumes from what is stored, while the receiver may make one.
    const closed: ModelEvent = { type: 'rtc.closed', label: SENDER };
    const settling = context.arrived && verdict !== 'pending';
    if (!settling && context.reconnects < MAX_RECONNECTS) {
      closed.then = offsetFound(resumeAt(received));
      // ...unless the sink cannot say what it holds.
      events.push({
        type: 'rtc.closed',
        label: SENDER,
        then: { type: 'xstate.error.actor.resumeOffset', error: { message: 'cannot read the sink' } },
      });
    }
    events.push(closed);
    /** The first chunk after a resume says where the sender started: where it was asked to. */
    const first = (event: ModelEvent): ModelEvent =>
      context.offset > 0 && received === context.offset
        ? { type: 'download.started', offset: context.offset, then: event }
        : event;
    if (received < SIZE) {
      events.push({
        type: 'download.failed',
        reason: 'protocol',
        message: 'a text frame',
        received,
        how: 'text frame',
      });
    }
    if (received === 0) {
      events.push({ type: 'download.progress', received: STEP });
      events.push({
        type: 'download.failed',
        reason: 'sink-failed',
        message: 'writing failed',
        received: CHUNK_SIZE,
        how: 'write fails',
      });
    }
    if (received === STEP) {
      // The last chunks: every byte is in, then written (and, with a verdict against them, it fails).
      const written: ModelEvent = { type: 'download.progress', received: SIZE };
      if (verdict === 'bad' || verdict === 'no digest') written.then = verdictFailure(verdict);
      events.push(first({ type: 'download.arrived', received: SIZE, then: written }));
      events.push(
        first({
          type: 'download.failed',
          reason: 'size-mismatch',
          message: 'too many bytes',
          received: STEP,
          how: 'oversized chunk',
        }),
      );
    }
    if (waiting) {
      // The download waits for the digest: the sender's `done` brings it (or not), and it is checked at once.
      for (const done of DONES) {
        const data = (done as Msg).detail.data as { sha256?: string } | undefined;
        const readable = data?.sha256 === undefined || /^[0-9a-f]{64}$/.test(data.sha256);
        const brought = !readable
          ? undefined
          : data?.sha256 === undefined
            ? 'no digest'
            : data.sha256 === FILE.sha256
              ? 'ok'
              : 'bad';
        events.push(brought === 'bad' || brought === 'no digest' ? { ...done, then: verdictFailure(brought) } : done);
      }
    }
    if (received === SIZE && verdict === 'ok') {
      events.push({
        type: 'download.done',
        received: SIZE,
        sha256: FILE.sha256!,
        verified: context.file?.sha256 !== undefined || context.file?.trailer === 'sha256',
      });
      events.push({
        type: 'download.failed',
        reason: 'sink-failed',
        message: 'closing failed',
        received: SIZE,
        how: 'commit fails',
      });
    }
  }
  // After a reconnection to the server, the transfer is explored along its way to the end and to
  // the next loss (what else may happen there, it was explored for before): the model stays small.
  if (context.rejoins > 0 && isEngaged(where)) {
    const along = ['signalling.closed', 'cancel', 'rtc.description', 'rtc.open', AFTER_PROGRESS, AFTER_CONNECT];
    return events.filter(
      (event) =>
        along.includes(event.type) ||
        event.type.startsWith('download.') ||
        (waiting && event.type === 'done' && (event as Msg).detail.peer === SENDER),
    );
  }
  return events;
}

function serializeState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  const file =
    context.file === undefined
      ? null
      : context.file.trailer
        ? 'trailed'
        : context.file.sha256 === undefined
          ? 'plain'
          : context.file.sha256 === FILE.sha256
            ? 'good'
            : 'bad';
  if (snapshot.status !== 'active') return JSON.stringify([snapshot.value, context.error?.reason ?? null]);
  return JSON.stringify([
    snapshot.value,
    file,
    context.trailer ?? null,
    context.arrived,
    context.retries,
    context.restarting,
    context.restartedAt ?? null,
    context.unanswered,
    context.received,
    context.reported,
    context.offset,
    context.reconnects,
    context.rejoins,
  ]);
}

function formatEvent(event: ModelEvent): string {
  const chain = event.then ? ` + ${formatEvent(event.then)}` : '';
  if (event.type === AFTER_REJOIN) return `the reconnection delay passes${chain}`;
  if (event.type in DELAY) return `${DELAY[event.type]} ms pass${chain}`;
  if ('how' in event) return `${event.reason} (${event.how})${chain}`;
  if ('received' in event) return `${event.type}(${event.received})${chain}`;
  if ('detail' in event) {
    const { peer, data } = event.detail as { peer?: string; data?: unknown };
    const what = describeData(event.type, data);
    return `${event.type}(${[peer === STRANGER ? 'stranger' : peer === SENDER ? 'sender' : peer, what].filter(Boolean).join(', ')})`;
  }
  if (event.type === 'signalling.closed') return event.info.reason;
  if (event.type === 'signalling.error') return `bad frame ${event.frame}`;
  if (event.type.startsWith('xstate.error.actor.'))
    return `${event.type.slice('xstate.error.actor.'.length)} fails${chain}`;
  if (event.type === 'xstate.done.actor.resumeOffset') return `the sink holds ${event.output}${chain}`;
  if (event.type === 'download.started') return `resumed at ${event.offset}${chain}`;
  if (event.type === 'xstate.done.actor.openSink') return `${event.type}${chain}`;
  if (event.type === 'rtc.closed' || event.type === 'rtc.failed') return `${event.type}${chain}`;
  return event.type;
}

function describeData(type: string, data: unknown): string {
  if (data === null) return 'null';
  if (typeof data === 'string') return 'text';
  if (typeof data === 'number') return String(data);
  const d = (data ?? {}) as {
    error?: string;
    sha256?: string;
    trailer?: string;
    fileName?: string;
    name?: string;
    size?: number;
    type?: string;
  };
  if (d.error) return d.error;
  if (type === 'done')
    return d.sha256 === FILE.sha256
      ? 'digest'
      : d.sha256 === WRONG_DIGEST
        ? 'wrong digest'
        : d.sha256
          ? 'bad digest'
          : 'no digest';
  if (type === 'response') {
    if (d.fileName) return 'original file';
    if (d.trailer) return 'file, digest to follow';
    if (d.size === undefined) return 'unreadable file';
    return d.sha256 === BAD_FILE.sha256 ? 'bad digest' : 'file';
  }
  if (type === 'answer' && d.type === 'offer') return 'an offer';
  return '';
}

function formatState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  if (snapshot.status !== 'active')
    return `${String(snapshot.value)}${context.error ? ` (${context.error.reason})` : ''}`;
  const extra = [
    context.retries ? `${context.retries} retries` : '',
    context.received ? `${context.received} bytes` : '',
  ].filter(Boolean);
  return `${whereOf(snapshot)}${extra.length ? ` (${extra.join(', ')})` : ''}`;
}

function describePath(path: StatePath<AnyMachineSnapshot, ModelEvent>): string {
  const { code } = path.steps[0]!.state.context as ReceiverContext;
  const events = path.steps.slice(1).map((s) => formatEvent(s.event));
  const start = code === SENDER ? '' : `with code "${code}" `;
  return `${start}reaches ${formatState(path.state)} after ${events.join(' → ') || 'starting'}`;
}

const modelInput = (code: string) => ({ code, sink: memorySink(), ...TIMING });

const plan = planPaths<ModelEvent>({
  model,
  machine: filedropReceiver,
  inputs: [modelInput(CODE), modelInput(BAD_CODE)],
  events: modelEvents,
  serializeState,
  describe: describePath,
  // Every event in every control state.
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${formatEvent(event)}`,
});

// ---------------------------------------------------------------------------
// The system under test.
// ---------------------------------------------------------------------------

const tracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'filedropReceiver');

/** A memory sink whose opening, writes and commit the test controls. */
function controlledSink() {
  const inner = memorySink();
  let commit!: () => void;
  let refuseCommit!: (error: Error) => void;
  const committed = new Promise<void>((resolve, reject) => {
    commit = resolve;
    refuseCommit = reject;
  });
  committed.catch(() => {});
  let openSink!: (sink: FileSink) => void;
  let refuseOpen!: (error: Error) => void;
  const control = {
    inner,
    failWrites: false,
    /** Asking the sink what it holds fails. */
    failSize: false,
    /** The file the receiver asked a sink for. */
    asked: undefined as FileInfo | undefined,
    commit,
    refuseCommit,
    open: () => openSink(sink),
    refuseOpen: (error: Error) => refuseOpen(error),
    closeCalled: false,
  };
  const sink: FileSink = {
    write(chunk) {
      if (control.failWrites) throw new Error('disk full (simulated)');
      inner.write(chunk);
    },
    async close() {
      control.closeCalled = true;
      await committed;
      inner.close();
    },
    abort: (reason) => inner.abort(reason),
    size() {
      if (control.failSize) throw new Error('cannot read the sink (simulated)');
      return inner.size();
    },
    read: (offset, length) => inner.read(offset, length),
    truncate: (length) => inner.truncate(length),
  };
  const opener = (file: FileInfo) => {
    control.asked = file;
    return new Promise<FileSink>((resolve, reject) => {
      openSink = resolve;
      refuseOpen = reject;
    });
  };
  return { control, opener };
}

function world(code: string) {
  const sink = controlledSink();
  const w = filedropClientWorld(filedropReceiver, { ...TIMING, code, sink: sink.opener }, tracker.inspect);
  /** `retry` asked for an ICE restart whose offer has not come yet (tracked by the test, from the protocol). */
  return Object.assign(w, { sink: sink.control, commandsRead: 0, commandsOf: 0, restarting: false, rejoins: 0 });
}

type World = ReturnType<typeof world>;

/** Byte-wise equality (vitest's deep equality is slow on 256 KiB). */
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

/** The far end of the data channel, where the sender's chunks come from. */
const channelOf = (w: World) => w.rtc.live.get(SENDER)!.channel!.remote;

/** Sends the file's chunks from byte `from` to byte `to`, numbered as they must be. */
function sendChunks(w: World, from: number, to: number) {
  for (let at = from; at < to; at += CHUNK_SIZE) {
    channelOf(w).send(encodeChunk(at / CHUNK_SIZE, CONTENT.subarray(at, Math.min(at + CHUNK_SIZE, to))));
  }
}

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  const where = whereOf(prev);
  const script = w.rtc.live.get(SENDER);
  const fromSender = ((event as Msg).detail as { peer?: string } | undefined)?.peer === SENDER;
  if (
    event.type === 'retry' &&
    fromSender &&
    isTransferring(where) &&
    prev.context.retries < MAX_RETRIES &&
    !freshOnRetry(prev.context) &&
    !isStaleRetry(where, prev.context)
  ) {
    w.restarting = true;
  }
  if (event.type === 'rtc.description') w.restarting = false;
  if (event.type === AFTER_REJOIN) {
    w.rejoins += 1;
    // Each reconnection in a row waits twice as long as the one before.
    w.clock.increment(REJOIN_DELAY_MS * 2 ** (prev.context.rejoins - 1));
    await settle();
    return;
  }
  // A fresh connection (after the channel was lost, or a restart failed) is no restart.
  if (event.then?.type === 'xstate.done.actor.resumeOffset') w.restarting = false;
  switch (event.type) {
    case 'download.started':
      // The chunks of the chained step come numbered from where the sender was asked to start.
      return exec(w, prev, event.then!);
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
      w.actor.send({ type: 'cancel' });
      break;
    case 'xstate.error.actor.signalling':
      w.crashSignalling();
      break;
    case 'xstate.error.actor.rtc':
      w.crashRtc('rtc');
      break;
    case 'xstate.done.actor.openSink':
      if (event.then?.type === 'xstate.error.actor.resumeOffset') w.sink.failSize = true;
      w.sink.open();
      break;
    case 'xstate.error.actor.openSink':
      w.sink.refuseOpen(new Error('no room for it'));
      break;
    case 'rtc.description':
    case 'rtc.candidate':
      script!.emit(event as never);
      break;
    case 'rtc.open':
      w.rtc.open(SENDER);
      break;
    case 'rtc.failed':
      script!.emit({ type: 'rtc.failed', label: SENDER, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') });
      break;
    case 'rtc.closed':
      if (event.then?.type === 'xstate.error.actor.resumeOffset') w.sink.failSize = true;
      channelOf(w).close();
      script!.emit({ type: 'rtc.closed', label: SENDER });
      break;
    case 'download.progress':
    case 'download.arrived':
      sendChunks(w, prev.context.received, (event as { received: number }).received);
      break;
    case 'download.done':
      w.sink.commit();
      break;
    case 'download.failed': {
      const { how } = event as { how: string };
      const at = prev.context.received;
      if (how === 'text frame') channelOf(w).send('hello?');
      else if (how === 'oversized chunk') channelOf(w).send(encodeChunk(at / CHUNK_SIZE, new Uint8Array(CHUNK_SIZE)));
      else if (how === 'write fails') {
        w.sink.failWrites = true;
        sendChunks(w, at, at + CHUNK_SIZE);
      } else if (how === 'commit fails') w.sink.refuseCommit(new Error('rename failed (simulated)'));
      break;
    }
    default:
      if (event.type in DELAY) w.clock.increment(DELAY[event.type]!);
      else w.send(event.type, (event as Msg).detail);
  }
  await settle();
}

// ---------------------------------------------------------------------------
// The oracle: what the receiver must do, from the protocol.
// ---------------------------------------------------------------------------

/** The last link of a chained event. */
const lastOf = (event: ModelEvent): ModelEvent => (event.then ? lastOf(event.then) : event);

/** Why the receiver fails on `event` in `prev`, by the protocol; undefined if it does not. */
function failureOf(prev: ModelSnapshot, event: ModelEvent): TransferFailure | undefined {
  const where = whereOf(prev)!;
  const e = lastOf(event);
  const detail = (e as Msg).detail as { peer?: string; data?: { error?: string } } | undefined;
  const fromSender = detail?.peer === SENDER;
  const data = (e as Msg).detail?.data as Record<string, unknown> | string | number | null | undefined;
  switch (e.type) {
    case 'signalling.closed':
      return canRejoin(prev.context) ? undefined : 'signalling-lost';
    case 'xstate.error.actor.signalling':
      return 'signalling-lost';
    case 'signalling.error':
    case 'error':
      return 'protocol';
    case 'cancel':
      return 'cancelled';
    case 'response':
      if (!fromSender || !(where === 'requesting' || isEngaged(where))) return undefined;
      // A file info it cannot read ends a receiver waiting for one; later it is not listened to.
      if (where === 'requesting' && JSON.stringify(data) === JSON.stringify(UNREADABLE_FILE)) return 'protocol';
      // After a lost server connection, a once sender still serving the lost one says busy: the receiver tries again.
      if (where === 'requesting' && isRejoin(prev.context) && detail.data?.error === 'busy' && canRejoin(prev.context))
        return undefined;
      if (detail.data?.error === undefined) {
        return where === 'requesting' && isRejoin(prev.context) && !isSameFile(prev.context, data)
          ? 'peer-gone'
          : undefined;
      }
      return detail.data.error === 'busy' ? 'busy' : 'remote-cancelled';
    case 'answer':
      return fromSender && isTransferring(where) && typeof data === 'object' && data?.type === 'offer'
        ? 'protocol'
        : undefined;
    case 'candidate':
      return fromSender && isTransferring(where) && data === 7 ? 'protocol' : undefined;
    case 'done':
      return fromSender && isEngaged(where) && typeof data === 'object' && data?.sha256 === 'xyz'
        ? 'protocol'
        : undefined;
    case 'peer not exists':
      // A bare one (the original server's) is about the one peer the receiver names: the sender.
      if (!fromSender && detail?.peer !== undefined) return undefined;
      // Asked again after a lost server connection: the sender left meanwhile.
      if (where === 'requesting' && isRejoin(prev.context)) return 'peer-gone';
      // Once every byte is in and nothing more is needed of the sender, its leaving is no failure.
      if (prev.context.arrived && verdictOf(prev.context) !== 'pending') return undefined;
      return where === 'requesting' ? 'no-such-peer' : isEngaged(where) ? 'peer-gone' : undefined;
    case 'invalid peer id':
      return where === 'requesting' ? 'invalid-code' : undefined;
    case AFTER_RESPONSE:
    case AFTER_CONNECT:
      return 'timeout';
    case AFTER_LOST:
      return 'peer-gone';
    case 'xstate.error.actor.openSink':
    case 'xstate.error.actor.resumeOffset':
      return 'sink-failed';
    case 'xstate.error.actor.rtc':
      return 'rtc-failed';
    case 'retry':
      if (isStaleRetry(where, prev.context)) return undefined;
      if (fromSender && isTransferring(where) && freshOnRetry(prev.context)) return undefined;
      return fromSender && prev.context.retries >= MAX_RETRIES ? 'rtc-failed' : undefined;
    case 'rtc.failed':
      // Between a `retry` and the restart offer: the restart failed (node-datachannel cannot restart ICE).
      return prev.context.restarting ? 'rtc-failed' : undefined;
    case 'download.failed':
      return (e as { reason: TransferFailure }).reason;
    default:
      return undefined;
  }
}

interface Expectation {
  frames: SentFrame[];
  commands: RtcCommand[];
  emitted: Array<{ type: string; detail: unknown }>;
}

function expectation(prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot): Expectation {
  const out: Expectation = { frames: [], commands: [], emitted: [] };
  const progress = (data: Record<string, unknown>) =>
    out.frames.push({ type: 'progress', detail: { peer: SENDER, data } });
  if (!prev) {
    if (next.status === 'done') {
      out.emitted.push({ type: 'stopped', detail: { error: expect.objectContaining({ reason: 'invalid-code' }) } });
    }
    return out;
  }
  const where = whereOf(prev)!;
  const failure = failureOf(prev, event);
  const requested = !['connecting', 'awaitingAssign'].includes(where);
  const file = prev.context.file;
  // Each link of a chained event does its part.
  for (let e: ModelEvent | undefined = event; e; e = e.then) {
    const detail = (e as Msg).detail as { peer?: string; data?: unknown } | undefined;
    const fromSender = detail?.peer === SENDER;
    switch (e.type) {
      case 'assign':
        if (where === 'awaitingAssign') {
          out.frames.push({ type: 'request', detail: { peer: SENDER } });
          out.emitted.push({ type: 'assigned', detail: { id: ME } });
        }
        break;
      case 'response':
        if (where === 'requesting' && fromSender && !failure && isRejoin(prev.context)) {
          const busy = (detail.data as { error?: string }).error === 'busy';
          out.emitted.push(busy ? rejoiningOf(prev.context, 'busy') : { type: 'rejoined', detail: { id: ME } });
        } else if (where === 'requesting' && fromSender && !failure) {
          const announced = JSON.stringify(detail.data) === JSON.stringify(ORIGINAL_FILE) ? ORIGINAL_READ : detail.data;
          out.emitted.push({ type: 'file', detail: { file: announced } });
        }
        break;
      case 'rtc.description': {
        // A connection's first offer names where to start: always on a fresh connection, else past 0 only.
        const { restarting, reconnects, offset } = prev.context;
        const named = !restarting && (reconnects > 0 || offset > 0);
        out.frames.push({
          type: 'offer',
          detail: { peer: SENDER, data: { type: 'offer', sdp: 'receiver-offer', ...(named && { offset }) } },
        });
        break;
      }
      case 'xstate.done.actor.resumeOffset': {
        const offset = (e as { output: number }).output;
        // Back on the server, the first connection again: the application hears where it resumes, past 0.
        if (where === 'requesting') {
          if (offset > 0)
            out.emitted.push({ type: 'resuming', detail: { offset, total: SIZE, reconnect: prev.context.reconnects } });
        } else if (where !== 'openingSink') {
          // A fresh connection (not the first): the application hears where it resumes.
          out.emitted.push({
            type: 'resuming',
            detail: { offset, total: SIZE, reconnect: prev.context.reconnects + 1 },
          });
        }
        break;
      }
      case 'download.started':
        out.emitted.push({ type: 'resumed', detail: { offset: (e as { offset: number }).offset } });
        break;
      case 'signalling.closed':
        if (!failure) out.emitted.push(rejoiningOf(prev.context, 'signalling-lost'));
        break;
      case 'rtc.candidate':
        out.frames.push({ type: 'candidate', detail: { peer: SENDER, data: CANDIDATE } });
        break;
      case 'rtc.open':
        // `received: 0` at once: from now on the sender paces its upload by what we report stored.
        progress({ received: prev.context.received, total: SIZE });
        break;
      case 'answer':
        if (fromSender && !failure) {
          const description =
            typeof detail.data === 'string' ? { type: 'answer' as const, sdp: detail.data } : (detail.data as never);
          out.commands.push({ type: 'rtc.remoteDescription', description });
        }
        break;
      case 'candidate':
        // The end of candidates needs nothing.
        if (fromSender && !failure && detail.data !== null)
          out.commands.push({ type: 'rtc.remoteCandidate', candidate: CANDIDATE });
        break;
      case 'retry':
        if (fromSender && !failure && !freshOnRetry(prev.context) && !isStaleRetry(where, prev.context)) {
          out.commands.push({ type: 'rtc.restartIce' });
          out.emitted.push({ type: 'retrying', detail: { attempt: prev.context.retries + 1 } });
        }
        break;
      case 'download.progress': {
        const { received } = e as { received: number };
        out.emitted.push({ type: 'progress', detail: { received, total: SIZE } });
        // At most one `progress` per interval: the first goes out at once, the rest wait.
        if (where === 'receiving.idle') progress({ received, total: SIZE });
        break;
      }
      case AFTER_PROGRESS:
        if (prev.context.received > prev.context.reported) progress({ received: prev.context.received, total: SIZE });
        break;
      case 'download.done': {
        progress({ received: SIZE, total: SIZE, done: true });
        // The original's word for it, for a sender that does not read our `progress`.
        out.frames.push({ type: 'done', detail: { peer: SENDER } });
        const verified = (e as { verified: boolean }).verified;
        out.emitted.push({ type: 'completed', detail: { file, sha256: FILE.sha256, verified } });
        out.emitted.push({ type: 'stopped', detail: {} });
        break;
      }
    }
  }
  if (failure) {
    // Our own failures are told to a sender that was asked; what the sender or the server caused is not,
    // and neither is anything over a signalling connection that failed (closed, or sent what it must not).
    const viaSignalling = ['signalling.closed', 'signalling.error', 'error', 'xstate.error.actor.signalling'];
    // (Nor from `rejoining`: there is no connection to tell it over.)
    if (requested && where !== 'rejoining' && isOwnFailure(failure) && !viaSignalling.includes(lastOf(event).type)) {
      const received =
        lastOf(event).type === 'download.failed'
          ? (lastOf(event) as { received: number }).received
          : prev.context.received;
      progress({ received, total: file?.size ?? 0, error: failure });
    }
    out.emitted.push({ type: 'stopped', detail: { error: expect.objectContaining({ reason: failure }) } });
  }
  return out;
}

/** The children the receiver must have in a control state. */
function childrenOf(snapshot: AnyMachineSnapshot): string[] {
  if (snapshot.status !== 'active') return [];
  const where = whereOf(snapshot)!;
  if (where === 'rejoining') return [];
  const ids = ['signalling'];
  if (where === 'openingSink') ids.push('openSink');
  if (isTransferring(where)) ids.push('rtc');
  if (where.startsWith('receiving.')) ids.push('download');
  return ids.sort();
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.actor.getSnapshot() as ModelSnapshot;
  tracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);

  const want = expectation(prev, event, next);
  expect(w.take()).toEqual(want.frames);
  expect(w.emitted()).toEqual(want.emitted);
  // The commands of the current connection's rtc actor (a fresh connection has a new one).
  const script = w.rtc.scripts.at(-1);
  if (w.rtc.scripts.length !== w.commandsOf) {
    w.commandsOf = w.rtc.scripts.length;
    w.commandsRead = 0;
  }
  const commands = script ? script.commands.slice(w.commandsRead) : [];
  w.commandsRead += commands.length;
  expect(commands).toEqual(want.commands);

  const failure = prev ? failureOf(prev, event) : next.status === 'done' ? 'invalid-code' : undefined;
  expect(real.context.error?.reason).toBe(failure ?? prev?.context.error?.reason);
  expect(Object.keys(real.children).sort()).toEqual(childrenOf(next));
  expect(Object.keys(next.children).sort()).toEqual(childrenOf(next));

  if (next.status !== 'active') {
    // Nothing keeps running: the signalling connection, the rtc actor, the timers.
    // (But for a signalling actor that crashed: XState runs no cleanup for a callback actor that
    // threw, so `fromTransport` cannot close its transport then.)
    if (w.connected && event.type !== 'xstate.error.actor.signalling') expect(w.serverEnd.isOpen).toBe(false);
    expect(w.rtc.scripts.filter((s) => !s.stopped && !s.crashing)).toEqual([]);
    expect(Object.values(w.actor.system.getSnapshot()._scheduledEvents).filter((s) => s.source === w.actor)).toEqual(
      [],
    );
    if (next.status === 'done' && real.value === 'done') {
      expect(w.sink.inner.state).toBe('closed');
      expect(sameBytes(w.sink.inner.bytes(), CONTENT)).toBe(true);
      // (Final states are one model state whatever the path: what was announced is `prev`'s.)
      const file = prev!.context.file!;
      const verified = file.sha256 !== undefined || file.trailer === 'sha256';
      expect(real.output).toEqual({ file, sha256: FILE.sha256, verified, error: undefined });
    } else if (
      w.sink.asked &&
      prev &&
      (isRejoin(prev.context) || !['requesting', 'openingSink'].includes(whereOf(prev)!))
    ) {
      // A sink that was opened is thrown away.
      await settle();
      expect(w.sink.inner.state).toBe('aborted');
    }
    return;
  }

  const where = whereOf(next)!;
  expect(real.context.id).toBe(next.context.id);
  expect(real.context.file).toEqual(next.context.file);
  expect(real.context.retries).toBe(next.context.retries);
  expect(real.context.restarting).toBe(w.restarting);
  expect(real.context.unanswered).toBe(next.context.unanswered);
  expect(real.context.received).toBe(next.context.received);
  expect(real.context.reported).toBe(next.context.reported);
  expect(real.context.offset).toBe(next.context.offset);
  expect(real.context.reconnects).toBe(next.context.reconnects);
  expect(real.context.rejoins).toBe(next.context.rejoins);
  expect(real.context.arrived).toBe(next.context.arrived);
  expect(real.context.trailer).toEqual(next.context.trailer);
  // The sink is asked for once the file is known, and written as chunks come.
  expect(w.sink.asked).toEqual(isEngaged(where) || isRejoin(next.context) ? next.context.file : undefined);
  // One signalling connection, and one more for each reconnection to the server.
  expect(w.signallingConnections).toBe(1 + w.rejoins);
  expect(sameBytes(w.sink.inner.bytes(), CONTENT.subarray(0, next.context.received))).toBe(true);
  if (isTransferring(where)) {
    // One rtc actor per connection: the live one is the last.
    expect(w.rtc.scripts.filter((s) => !s.stopped)).toHaveLength(1);
    expect(w.rtc.scripts.at(-1)!.input).toEqual({ label: SENDER, role: 'offerer' });
  }
}

describe('filedrop receiver, model-based (scripted server and WebRTC, memory sink, SimulatedClock)', () => {
  const ranAll = replayEach('the receiver', plan.paths, {
    start: async (initial) => {
      const w = world((initial.context as ReceiverContext).code === SENDER ? CODE : BAD_CODE);
      await settle();
      return w;
    },
    exec,
    check,
    stop: (w) => void w.actor.stop(),
  });

  it('takes every state node and every transition of the receiver machine', () => {
    expectFullCoverage({
      label: 'filedrop receiver model',
      machine: filedropReceiver,
      plan,
      tracker,
      ranAll: ranAll(),
    });
  });
});
