import { and, assertEvent, assign, emit, enqueueActions, not, setup } from 'xstate';
import type { SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import {
  assigning,
  clientActors,
  failOnSignalling,
  signallingFailures,
  isOwnFailure,
  remoteError,
  send,
  signallingError,
  type SignallingFailure,
} from './client.js';
import { FileDropError, type TransferFailure } from './errors.js';
import { isResumable, type FileSink, type SinkOpener } from '../transfer/files.js';
import {
  isPeerId,
  normalizeCode,
  type DoneData,
  type FileInfo,
  type MessageOf,
  type ServerMessage,
} from './protocol.js';
import { download, openSink, resumeOffset, type DownloadCommand, type DownloadEvent } from '../transfer/transfer.js';
import { isFault, readCandidate, readDescription, readDone, readResponse } from './wire.js';

export interface ReceiverInput {
  /** The sender's code (its peer id), as typed: spaces, dashes and case do not matter. */
  code: string;
  /**
   * Where the file goes: a sink, or a function that opens one once the file
   * is known. The function may refuse the file by throwing (`sink-failed`).
   */
  sink: SinkOpener;
  /** How many ICE restarts (`retry` from the sender) to go through on each connection before giving up. @default 3 */
  maxRetries?: number;
  /**
   * How many times in a row to open a fresh connection, resuming from the
   * bytes stored, when the data channel is lost mid-transfer, or an ICE
   * restart is impossible (here, or on a signalbox sender's side: a `retry`
   * after a restart that brought no byte); the count starts again once
   * bytes flow. Only with a sink that can resume (`ResumableSink`:
   * `memorySink`, `fileSink`); 0 waits for the sender's word as before and
   * then fails `peer-gone` (or, on `retry`, restarts ICE as before).
   * @default 3
   */
  maxReconnects?: number;
  /**
   * How many times in a row to reconnect to the server, when the signalling
   * connection drops (or cannot be opened again) once the file is known, and
   * ask the same code again for the rest ("Lost server connections" in the
   * filedrop README); the count starts again once bytes flow. Only with a
   * sink that can resume; 0 ends `signalling-lost` at once.
   * @default 5
   */
  maxRejoins?: number;
  /**
   * Wait before the first reconnection to the server; each further one in a
   * row waits twice as long as the one before (1, 2, 4, 8, 16 s by default).
   * @default 1000
   */
  rejoinDelay?: number;
  /** How long the sender has to answer `request`. @default 15000 */
  responseTimeout?: number;
  /** How long the data channel has to open after each offer (the first, and each ICE restart). @default 30000 */
  connectTimeout?: number;
  /** Least time between two `progress` messages to the sender. @default 250 */
  progressInterval?: number;
  /**
   * After the data channel closed early, how long to wait for the sender's
   * word (a `response` with its reason, or `peer not exists`) before calling
   * it gone.
   * @default 10000
   */
  lostTimeout?: number;
}

export interface ReceiverContext {
  /** The code in canonical form. */
  readonly code: string;
  readonly opener: SinkOpener;
  readonly maxRetries: number;
  readonly maxReconnects: number;
  readonly maxRejoins: number;
  readonly rejoinDelay: number;
  readonly responseTimeout: number;
  readonly connectTimeout: number;
  readonly progressInterval: number;
  readonly lostTimeout: number;
  /** Our own peer id, from `assign`. */
  id?: string;
  /** `request` went out: from then on the sender hears of our failures. */
  requested: boolean;
  /** What the sender's `response` announced. */
  file?: FileInfo;
  sink?: FileSink;
  transport?: Transport;
  /**
   * Where this connection's download starts: the bytes the sink held when
   * the offer went out (a `.part` of an earlier attempt, or what this
   * transfer stored before its connection dropped).
   */
  offset: number;
  /** Fresh connections opened since bytes last flowed. */
  reconnects: number;
  /** Reconnections to the server since bytes last flowed. */
  rejoins: number;
  received: number;
  /** `received` as of the last `progress` sent. */
  reported: number;
  retries: number;
  /** An ICE restart was asked of the rtc actor and its new offer has not come out yet. */
  restarting: boolean;
  /**
   * `received` when the last ICE restart was asked for, until bytes flow
   * past it (the restart helped) or a fresh connection replaces this one: a
   * `retry` meanwhile says that the restart did not help.
   */
  restartedAt?: number;
  /**
   * This connection replaced an earlier one of the same transfer (a fresh
   * connection) and the sender has not answered its offer yet (nor has its
   * channel opened). A `retry` meanwhile is about the earlier connection:
   * the sender sent it before our fresh offer reached it (the server relays
   * each client's messages in order, and the sender answers the fresh offer
   * before it can see this connection's ICE fail), so it is ignored.
   */
  unanswered: boolean;
  /** Every byte is in (`download.arrived`): the data channel and the sender are no longer needed, unless for the digest. */
  arrived: boolean;
  /** The sender's `done` (with the digest, when the file's `trailer` promised it). */
  trailer?: DoneData;
  /** SHA-256 of what was received, once stored. */
  sha256?: string;
  /** `sha256` was compared with the sender's digest (false: no digest was announced; the size was checked). */
  verified?: boolean;
  error?: FileDropError;
}

/** Events a receiver accepts from the application. */
export type ReceiverCommand = { type: 'cancel' };

export type ReceiverEvent = ServerMessage | SignallingEvent | RtcEmitted | DownloadEvent | ReceiverCommand;

/** Emitted by a receiver (subscribe with `actor.on(type, …)` or `dispatchEmitted`). */
export type ReceiverEmitted =
  /** `assign` arrived: our own peer id. */
  | { type: 'assigned'; detail: { id: string } }
  /** The sender described its file; the sink is being opened. */
  | { type: 'file'; detail: { file: FileInfo } }
  /** More bytes arrived. */
  | { type: 'progress'; detail: { received: number; total: number } }
  /** The sender asked for an ICE restart (`retry`); `attempt` counts from 1. */
  | { type: 'retrying'; detail: { attempt: number } }
  /**
   * The sink holds `offset` bytes of this file (a `.part` of an earlier
   * attempt, or this transfer's before its connection dropped): the offer
   * asks the sender for the rest. `reconnect` counts fresh connections from
   * 1 (0: the first offer).
   */
  | { type: 'resuming'; detail: { offset: number; total: number; reconnect: number } }
  /**
   * The signalling connection dropped (`error` says how) once the file was
   * known: in `delay` ms the receiver connects to the server again
   * (`attempt` of at most `maxRejoins` in a row) and asks the same code for
   * the rest.
   */
  | { type: 'rejoining'; detail: { attempt: number; maxRejoins: number; delay: number; error: FileDropError } }
  /** Back on the server (`id` is the new peer id) and the sender described the same file: the transfer resumes. */
  | { type: 'rejoined'; detail: { id: string } }
  /**
   * After `resuming`, the first chunk came: the sender resumed at `offset`,
   * or (`offset` 0) it starts over, as a sender that does not know offsets
   * does, and the sink was emptied.
   */
  | { type: 'resumed'; detail: { offset: number } }
  /**
   * Every byte arrived, the size matched, and the sink was closed. `sha256`
   * is of the bytes received; `verified` says it matched the sender's digest
   * (false: the sender announced none, so only the size was checked).
   */
  | { type: 'completed'; detail: { file: FileInfo; sha256: string; verified: boolean } }
  /** The receiver ended: `error` is set unless it completed. */
  | { type: 'stopped'; detail: { error?: FileDropError } };

/**
 * Failures that say nothing against the bytes stored: a sink that can keep
 * them (`keep`) does, so that the next attempt resumes. Integrity and
 * protocol failures, and a sink that failed, discard them.
 */
const KEEPS_BYTES: ReadonlySet<TransferFailure> = new Set<TransferFailure>([
  'cancelled',
  'remote-cancelled',
  'peer-gone',
  'rtc-failed',
  'timeout',
  'signalling-lost',
  // A once sender still serving a receiver that lost its server connection: the bytes are good.
  'busy',
]);

/**
 * True when a receiver that failed for `reason` keeps what its sink stored
 * (calls `keep` rather than `abort`, where the sink has it): the connection,
 * the peer or a timeout failed, or someone cancelled; nothing was wrong with
 * the bytes.
 */
export function keepsBytes(reason: TransferFailure): boolean {
  return KEEPS_BYTES.has(reason);
}

/** What the sender's `response` says (a fault when it cannot be read). */
const responseOf = (event: MessageOf<ServerMessage, 'response'>) => readResponse(event.detail.data);

/** The `fail` action with `reason` and a message written from the context. */
const failWith = (reason: TransferFailure, message: (context: ReceiverContext) => string) =>
  ({
    type: 'fail',
    params: ({ context }: { context: ReceiverContext }) => ({ reason, message: message(context) }),
  }) as const;

/** The sender's digest is to come in its `done`, which has not come yet. */
const awaitsTrailer = (context: ReceiverContext) =>
  context.file?.sha256 === undefined && context.file?.trailer === 'sha256' && context.trailer === undefined;

/** The wait before reconnection `attempt` (from 1) to the server: `rejoinDelay`, doubled for each further one. */
const rejoinDelayOf = (context: ReceiverContext, attempt: number) => context.rejoinDelay * 2 ** (attempt - 1);

/**
 * A signalling connection that closed, or could not be opened again
 * (`signalling.closed` either way; a crash of the signalling actor is a bug
 * and is not retried): once the file is known and the sink can resume, the
 * receiver connects again (`rejoining`); otherwise it ends as before
 * ({@link failOnSignalling}).
 */
const rejoinOrFail = [
  {
    guard: 'canRejoin',
    target: '#filedropReceiver.rejoining',
    actions: {
      type: 'rejoin',
      params: ({ event }: { event: SignallingFailure }) => ({ error: signallingError(event) }),
    },
  },
  failOnSignalling,
] as const;

/**
 * The receiver's types and named implementations (actions that read their
 * event take its fields as typed `params`, computed at each transition), from
 * which {@link filedropReceiver} is made. Wiring one of them to a transition
 * whose event lacks what it reads does not compile (`test/filedrop-types.test-d.ts`).
 */
export const filedropReceiverSetup = setup({
  types: {
    context: {} as ReceiverContext,
    events: {} as ReceiverEvent,
    input: {} as ReceiverInput,
    emitted: {} as ReceiverEmitted,
  },
  actors: { ...clientActors, openSink, resumeOffset, download },
  delays: {
    responseTimeout: ({ context }) => context.responseTimeout,
    connectTimeout: ({ context }) => context.connectTimeout,
    progressInterval: ({ context }) => context.progressInterval,
    lostTimeout: ({ context }) => context.lostTimeout,
    rejoinDelay: ({ context }) => rejoinDelayOf(context, context.rejoins),
  },
  guards: {
    isValidCode: ({ context }) => isPeerId(context.code),
    isFromSender: ({ context, event }) => {
      assertEvent(event, ['response', 'answer', 'candidate', 'retry', 'done']);
      return event.detail.peer === context.code;
    },
    /** A `peer not exists` about the sender: naming it, or bare (the original server's, about the one peer we name). */
    isAboutSender: ({ context, event }) => {
      assertEvent(event, 'peer not exists');
      return event.detail.peer === undefined || event.detail.peer === context.code;
    },
    isRefusal: ({ event }) => {
      assertEvent(event, 'response');
      const reading = responseOf(event);
      return !isFault(reading) && 'refusal' in reading.value;
    },
    isUnreadable: ({ event }) => {
      switch (event.type) {
        case 'response':
          return isFault(responseOf(event));
        case 'answer':
          return isFault(readDescription(event.detail.data, 'answer'));
        case 'candidate':
          return isFault(readCandidate(event.detail.data));
        case 'done':
          return isFault(readDone(event.detail.data));
        default:
          return false;
      }
    },
    /** Every byte is in and nothing more is needed from the sender: its leaving or closing the channel is no failure. */
    isSettling: ({ context }) => context.arrived && !awaitsTrailer(context),
    canRetry: ({ context }) => context.retries < context.maxRetries,
    /** A fresh connection can carry on from what is stored. */
    canReconnect: ({ context }) =>
      context.sink !== undefined && isResumable(context.sink) && context.reconnects < context.maxReconnects,
    /**
     * The signalling connection is lost once the file is known, and the sink
     * can resume: a new one asks the same code again (`rejoining`).
     */
    canRejoin: ({ context }) =>
      context.file !== undefined &&
      context.sink !== undefined &&
      isResumable(context.sink) &&
      context.rejoins < context.maxRejoins &&
      // Every byte is in and the sink is being closed: leaving now would stop that.
      !(context.arrived && !awaitsTrailer(context)),
    /** This `request` went out on a new signalling connection, for a file whose sink is open already. */
    isRejoin: ({ context }) => context.sink !== undefined,
    isBusy: ({ event }) => {
      assertEvent(event, 'response');
      const reading = responseOf(event);
      return !isFault(reading) && 'refusal' in reading.value && reading.value.refusal === 'busy';
    },
    /** The sender describes the file the sink holds part of (same name and size, and SHA-256 when both have one). */
    isSameFile: ({ context, event }) => {
      assertEvent(event, 'response');
      const reading = responseOf(event);
      if (isFault(reading) || !('file' in reading.value) || !context.file) return false;
      const { file } = reading.value;
      const known = context.file;
      return (
        file.name === known.name &&
        file.size === known.size &&
        (file.sha256 === undefined || known.sha256 === undefined || file.sha256 === known.sha256)
      );
    },
    hasUnreported: ({ context }) => context.received > context.reported,
    isRestarting: ({ context }) => context.restarting,
    /** A `retry` that belongs to the connection a fresh one replaced (see `ReceiverContext.unanswered`). */
    isStaleRetry: ({ context }) => context.unanswered,
    /**
     * The sender asks for another ICE restart although no byte came since the
     * last one: that restart did not help (its side cannot apply a restart
     * offer, as node-datachannel's cannot). The sender's response carried
     * signalbox's `sha256` or `trailer` key, so it takes a fresh offer; the
     * original project's sender gets the restarts it asks for, as before.
     */
    isUnhelpedRestart: ({ context }) =>
      context.restartedAt !== undefined && (context.file?.sha256 !== undefined || context.file?.trailer !== undefined),
  },
  actions: {
    fail: assign((_, { reason, message }: { reason: TransferFailure; message: string }) => ({
      error: new FileDropError(reason, message),
    })),
    recordSignallingError: assign((_, failure: SignallingFailure) => ({ error: signallingError(failure) })),
    recordRefusal: assign({
      error: ({ event }) => {
        assertEvent(event, 'response');
        const reading = responseOf(event);
        return remoteError(!isFault(reading) && 'refusal' in reading.value ? reading.value.refusal : '', 'sender');
      },
    }),
    /** The sender's message could not be read: the fault names the field. */
    recordFault: assign({
      error: ({ event }) => {
        assertEvent(event, ['response', 'answer', 'candidate', 'done']);
        const { data } = event.detail;
        const reading =
          event.type === 'response'
            ? readResponse(data)
            : event.type === 'answer'
              ? readDescription(data, 'answer')
              : event.type === 'candidate'
                ? readCandidate(data)
                : readDone(data);
        return new FileDropError(
          'protocol',
          `the sender sent what cannot be read: ${isFault(reading) ? reading.fault : event.type}`,
        );
      },
    }),
    sendRequest: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ requested: true });
      enqueue.sendTo('signalling', send({ type: 'request', detail: { peer: context.code } }));
    }),
    keepId: enqueueActions(({ enqueue }, { id }: { id: string }) => {
      enqueue.assign({ id });
      enqueue.emit({ type: 'assigned', detail: { id } });
    }),
    keepFile: enqueueActions(({ event, enqueue }) => {
      assertEvent(event, 'response');
      const reading = responseOf(event);
      if (isFault(reading) || !('file' in reading.value)) return;
      const { file } = reading.value;
      enqueue.assign({ file });
      enqueue.emit({ type: 'file', detail: { file } });
    }),
    sendSignal: enqueueActions(
      ({ context, enqueue }, e: Extract<RtcEmitted, { type: 'rtc.description' | 'rtc.candidate' }>) => {
        const peer = context.code;
        if (e.type === 'rtc.candidate') {
          enqueue.sendTo('signalling', send({ type: 'candidate', detail: { peer, data: e.candidate } }));
          return;
        }
        enqueue.assign({ restarting: false });
        // A connection's first offer names where to start: always on a fresh connection (so the
        // sender knows it is one), on the first when there is something to skip. An ICE restart's
        // offer renegotiates the same connection and carries none.
        const offset =
          !context.restarting && (context.reconnects > 0 || context.offset > 0) ? context.offset : undefined;
        enqueue.sendTo(
          'signalling',
          send({
            type: 'offer',
            detail: { peer, data: { type: 'offer', sdp: e.description.sdp, ...(offset !== undefined && { offset }) } },
          }),
        );
      },
    ),
    applyAnswer: enqueueActions(({ event, enqueue }) => {
      assertEvent(event, 'answer');
      const reading = readDescription(event.detail.data, 'answer');
      if (isFault(reading)) return;
      enqueue.assign({ unanswered: false });
      enqueue.sendTo('rtc', { type: 'rtc.remoteDescription', description: reading.value } satisfies RtcCommand);
    }),
    /** A candidate goes to the rtc actor; the end of candidates (`null`) needs nothing. */
    applyCandidate: enqueueActions(({ event, enqueue }) => {
      assertEvent(event, 'candidate');
      const reading = readCandidate(event.detail.data);
      if (isFault(reading) || reading.value === null) return;
      enqueue.sendTo('rtc', { type: 'rtc.remoteCandidate', candidate: reading.value } satisfies RtcCommand);
    }),
    keepTrailer: assign({
      trailer: ({ event }) => {
        assertEvent(event, 'done');
        const reading = readDone(event.detail.data);
        return isFault(reading) ? {} : reading.value;
      },
    }),
    passTrailer: enqueueActions(({ context, enqueue }) => {
      if (context.trailer) {
        enqueue.sendTo('download', { type: 'download.trailer', trailer: context.trailer } satisfies DownloadCommand);
      }
    }),
    recordArrival: assign({ arrived: true }),
    restartIce: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ retries: context.retries + 1, restarting: true, restartedAt: context.received });
      enqueue.emit({ type: 'retrying', detail: { attempt: context.retries + 1 } });
      enqueue.sendTo('rtc', { type: 'rtc.restartIce' } satisfies RtcCommand);
    }),
    /** Counts one more reconnection to the server and says why and when it comes. */
    rejoin: enqueueActions(({ context, enqueue }, { error }: { error: FileDropError }) => {
      const attempt = context.rejoins + 1;
      enqueue.assign({ rejoins: attempt });
      enqueue.emit({
        type: 'rejoining',
        detail: { attempt, maxRejoins: context.maxRejoins, delay: rejoinDelayOf(context, attempt), error },
      });
    }),
    /**
     * The sender described the same file on the new connection: it starts a
     * new transfer for our new id, so nothing of the old one carries over
     * (its digest comes again, its ICE restarts count from 0).
     */
    rejoined: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ trailer: undefined, retries: 0, restartedAt: undefined });
      enqueue.emit({ type: 'rejoined', detail: { id: context.id! } });
    }),
    /** The channel is open: the sender is on this connection, whatever it answered. */
    keepTransport: assign((_, { transport }: { transport: Transport }) => ({ transport, unanswered: false })),
    /** The sink holds `offset` bytes: the next offer asks for the rest. */
    keepOffset: enqueueActions(
      ({ context, enqueue }, { offset, reconnect }: { offset: number; reconnect: boolean }) => {
        const reconnects = reconnect ? context.reconnects + 1 : context.reconnects;
        enqueue.assign({
          offset,
          received: offset,
          reported: offset,
          reconnects,
          transport: undefined,
          arrived: false,
          // A fresh connection's offer is no ICE restart, whatever the old connection was doing,
          // and the new connection gets maxRetries restarts of its own, as on the sender's side.
          restarting: false,
          restartedAt: undefined,
          unanswered: reconnect,
          ...(reconnect && { retries: 0 }),
        });
        if (offset > 0 || reconnect) {
          enqueue.emit({ type: 'resuming', detail: { offset, total: context.file!.size, reconnect: reconnects } });
        }
      },
    ),
    recordStart: enqueueActions(({ enqueue }, { offset }: { offset: number }) => {
      enqueue.assign({ offset, received: offset });
      enqueue.emit({ type: 'resumed', detail: { offset } });
    }),
    recordProgress: enqueueActions(({ context, enqueue }, { received }: { received: number }) => {
      // Bytes flow on this connection: a later loss gets the full number of fresh connections again.
      if (received > context.offset) enqueue.assign({ reconnects: 0, rejoins: 0 });
      // Bytes flow after an ICE restart: it helped, and a later `retry` gets another.
      if (context.restartedAt !== undefined && received > context.restartedAt)
        enqueue.assign({ restartedAt: undefined });
      enqueue.assign({ received });
      enqueue.emit({ type: 'progress', detail: { received, total: context.file!.size } });
    }),
    sendProgress: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ reported: context.received });
      enqueue.sendTo(
        'signalling',
        send({
          type: 'progress',
          detail: { peer: context.code, data: { received: context.received, total: context.file!.size } },
        }),
      );
    }),
    recordDownloadFailure: assign(
      (_, { reason, message, received }: Extract<DownloadEvent, { type: 'download.failed' }>) => ({
        received,
        error: new FileDropError(reason, message),
      }),
    ),
    recordDone: assign(({ event }) => {
      assertEvent(event, 'download.done');
      const { received, sha256, verified } = event;
      return { received, sha256, verified };
    }),
    /** Our verdict for a signalbox sender, then the original's `done` for any other. */
    sendDone: enqueueActions(({ context, enqueue }) => {
      const total = context.file!.size;
      const peer = context.code;
      enqueue.sendTo(
        'signalling',
        send({ type: 'progress', detail: { peer, data: { received: total, total, done: true } } }),
      );
      enqueue.sendTo('signalling', send({ type: 'done', detail: { peer } }));
    }),
    tellSender: enqueueActions(({ context, enqueue }) => {
      if (!context.requested || !context.error || !isOwnFailure(context.error.reason)) return;
      enqueue.sendTo(
        'signalling',
        send({
          type: 'progress',
          detail: {
            peer: context.code,
            data: { received: context.received, total: context.file?.size ?? 0, error: context.error.reason },
          },
        }),
      );
    }),
    /**
     * The sink gives up its bytes, or, when nothing was wrong with them (the
     * connection, the peer or a timeout failed, or a cancel) and it can,
     * keeps them for a later resume.
     */
    abortSink: ({ context }) => {
      const { sink, error } = context;
      if (!sink) return;
      const keep = sink.keep && error !== undefined && KEEPS_BYTES.has(error.reason);
      // A sink's failure to clean up has nobody left to tell.
      Promise.resolve()
        .then(() => (keep ? sink.keep!(error) : sink.abort(error)))
        .catch(() => {});
    },
    announceDone: enqueueActions(({ context, enqueue }) => {
      enqueue.emit({
        type: 'completed',
        detail: { file: context.file!, sha256: context.sha256!, verified: context.verified ?? false },
      });
      enqueue.emit({ type: 'stopped', detail: {} });
    }),
    announceFailure: emit(({ context }) => ({ type: 'stopped' as const, detail: { error: context.error } })),
  },
});

/**
 * A `retry` after an ICE restart that did not help: where the sink can
 * resume and the sender takes fresh offers, a fresh connection replaces
 * this one (`reconnecting`) instead of restarting it again. The sender's
 * side may be unable to restart ICE at all (node-datachannel, as answerer,
 * rejects a restart offer), and a restart it cannot apply would only use up
 * the retries.
 */
const freshAfterRestart = {
  guard: and(['isFromSender', 'isUnhelpedRestart', 'canReconnect']),
  target: '#filedropReceiver.active.engaged.reconnecting',
} as const;

/**
 * A state that asks the sink what it holds (`resumeOffset`) and then opens a
 * connection whose offer asks for the rest: the first connection
 * (`reconnect` false: `resuming`) or a fresh one after the last was lost
 * (`reconnecting`, which counts it against `maxReconnects`).
 */
const resumeFromSink = (reconnect: boolean) =>
  ({
    invoke: {
      id: 'resumeOffset',
      src: 'resumeOffset',
      input: ({ context }: { context: ReceiverContext }) => ({ sink: context.sink!, file: context.file! }),
      onDone: {
        target: 'transferring',
        actions: {
          type: 'keepOffset',
          params: ({ event }: { event: { output: number } }) => ({ offset: event.output, reconnect }),
        },
      },
      onError: {
        target: '#filedropReceiver.active.failing',
        actions: {
          type: 'fail',
          params: ({ event }: { event: { error: unknown } }) => ({
            reason: 'sink-failed' as const,
            message: `reading what the sink holds failed: ${describe(event.error)}`,
          }),
        },
      },
    },
  }) as const;

/**
 * A filedrop receiver: it asks the sender whose code it was given for its
 * file (`request`), opens a sink once the `response` describes it, makes the
 * WebRTC offer and the data channel (trickle ICE), writes the chunks that
 * arrive, reports `progress` to the sender, and checks the size and the
 * SHA-256. It ends `done`, or `failed` with a {@link FileDropError} whose
 * `reason` says why; then nothing of it runs any more.
 *
 * Provide `signalling` (a transport to the server's `/filedrop`, with
 * `clientCodec()`) and `rtc` (`fromRtc({ RTCPeerConnection, trickle: true })`).
 */
export const filedropReceiver = filedropReceiverSetup.createMachine({
  id: 'filedropReceiver',
  context: ({ input }) => ({
    code: normalizeCode(String(input.code ?? '')),
    opener: input.sink,
    maxRetries: input.maxRetries ?? 3,
    maxReconnects: input.maxReconnects ?? 3,
    maxRejoins: input.maxRejoins ?? 5,
    rejoinDelay: input.rejoinDelay ?? 1000,
    responseTimeout: input.responseTimeout ?? 15_000,
    connectTimeout: input.connectTimeout ?? 30_000,
    progressInterval: input.progressInterval ?? 250,
    lostTimeout: input.lostTimeout ?? 10_000,
    requested: false,
    offset: 0,
    reconnects: 0,
    rejoins: 0,
    received: 0,
    reported: 0,
    retries: 0,
    restarting: false,
    unanswered: false,
    arrived: false,
  }),
  initial: 'checking',
  states: {
    checking: {
      always: [
        { guard: 'isValidCode', target: 'active' },
        {
          target: 'failed',
          actions: failWith(
            'invalid-code',
            (context) => `"${context.code}" is not a code: 8 characters of 2-9 and A-Z without I, L, O, U`,
          ),
        },
      ],
    },
    active: {
      invoke: { id: 'signalling', src: 'signalling' },
      on: {
        ...signallingFailures,
        // A lost server connection is carried over where the sink allows it.
        'signalling.closed': rejoinOrFail,
        'xstate.error.actor.rtc': {
          target: '.failing',
          actions: {
            type: 'fail',
            params: ({ event }: { event: { error?: unknown } }) => ({
              reason: 'rtc-failed' as const,
              message: describe(event.error),
            }),
          },
        },
        cancel: {
          target: '.failing',
          actions: { type: 'fail', params: { reason: 'cancelled', message: 'the receiver cancelled' } },
        },
      },
      initial: 'connecting',
      states: {
        ...assigning('requesting'),
        requesting: {
          entry: 'sendRequest',
          after: {
            responseTimeout: {
              target: 'failing',
              actions: failWith(
                'timeout',
                (context) => `no response from ${context.code} within ${context.responseTimeout} ms`,
              ),
            },
          },
          on: {
            response: [
              {
                guard: and(['isFromSender', 'isUnreadable']),
                target: 'failing',
                actions: 'recordFault',
              },
              // Asked again after a lost server connection, a once sender may still be serving our
              // old self (its server had not noticed the loss): it frees up within its lostTimeout.
              {
                guard: and(['isFromSender', 'isRejoin', 'isBusy', 'canRejoin']),
                target: '#filedropReceiver.rejoining',
                actions: {
                  type: 'rejoin',
                  params: () => ({
                    error: new FileDropError('busy', 'the sender is still serving our lost connection'),
                  }),
                },
              },
              {
                guard: and(['isFromSender', 'isRefusal']),
                target: '#filedropReceiver.failed',
                actions: 'recordRefusal',
              },
              // Asked again after a lost server connection: the same file resumes into the open sink.
              {
                guard: and(['isFromSender', 'isRejoin', 'isSameFile']),
                target: 'engaged.resuming',
                actions: 'rejoined',
              },
              {
                guard: and(['isFromSender', 'isRejoin']),
                target: '#filedropReceiver.failed',
                actions: failWith('peer-gone', (context) => `the code ${context.code} now offers another file`),
              },
              { guard: 'isFromSender', target: 'engaged', actions: 'keepFile' },
            ],
            'peer not exists': [
              {
                guard: and(['isAboutSender', 'isRejoin']),
                target: '#filedropReceiver.failed',
                actions: failWith('peer-gone', (context) => `the sender ${context.code} left while we reconnected`),
              },
              {
                guard: 'isAboutSender',
                target: '#filedropReceiver.failed',
                actions: failWith('no-such-peer', (context) => `no sender has the code ${context.code}`),
              },
            ],
            'invalid peer id': {
              target: '#filedropReceiver.failed',
              actions: failWith('invalid-code', (context) => `the server refused the code ${context.code}`),
            },
          },
        },
        engaged: {
          on: {
            response: {
              guard: and(['isFromSender', 'isRefusal']),
              target: '#filedropReceiver.failed',
              actions: 'recordRefusal',
            },
            'peer not exists': {
              guard: and(['isAboutSender', not('isSettling')]),
              target: '#filedropReceiver.failed',
              actions: failWith('peer-gone', (context) => `the sender ${context.code} left`),
            },
            // The sender pushed its last chunk (the original's `done`), with the digest if it promised one.
            done: [
              { guard: and(['isFromSender', 'isUnreadable']), target: 'failing', actions: 'recordFault' },
              { guard: 'isFromSender', actions: 'keepTrailer' },
            ],
          },
          initial: 'openingSink',
          states: {
            openingSink: {
              invoke: {
                id: 'openSink',
                src: 'openSink',
                input: ({ context }) => ({ sink: context.opener, file: context.file! }),
                onDone: { target: 'resuming', actions: assign({ sink: ({ event }) => event.output }) },
                onError: {
                  target: '#filedropReceiver.active.failing',
                  actions: {
                    type: 'fail',
                    params: ({ event }) => ({ reason: 'sink-failed', message: `no sink: ${describe(event.error)}` }),
                  },
                },
              },
            },
            // What the sink holds already (a `.part` of this file, say): the offer asks for the rest.
            resuming: resumeFromSink(false),
            // The connection was lost mid-transfer: a fresh one resumes from what is stored.
            reconnecting: resumeFromSink(true),
            transferring: {
              invoke: {
                id: 'rtc',
                src: 'rtc',
                input: ({ context }) => ({ label: context.code, role: 'offerer' }) satisfies RtcInput,
              },
              on: {
                'rtc.description': { actions: { type: 'sendSignal', params: ({ event }) => event } },
                'rtc.candidate': { actions: { type: 'sendSignal', params: ({ event }) => event } },
                answer: [
                  {
                    guard: and(['isFromSender', 'isUnreadable']),
                    target: '#filedropReceiver.active.failing',
                    actions: 'recordFault',
                  },
                  { guard: 'isFromSender', actions: 'applyAnswer' },
                ],
                candidate: [
                  {
                    guard: and(['isFromSender', 'isUnreadable']),
                    target: '#filedropReceiver.active.failing',
                    actions: 'recordFault',
                  },
                  { guard: 'isFromSender', actions: 'applyCandidate' },
                ],
                retry: [
                  freshAfterRestart,
                  { guard: and(['isFromSender', 'canRetry']), actions: 'restartIce' },
                  {
                    guard: 'isFromSender',
                    target: '#filedropReceiver.active.failing',
                    actions: failWith('rtc-failed', (context) => `WebRTC failed after ${context.retries} ICE restarts`),
                  },
                ],
                // Our own ICE failures are the sender's to act on (it asks for `retry`), but not one of
                // the restart it asked for: node-datachannel, say, cannot restart ICE at all. A fresh
                // connection then carries on from what is stored, where the sink allows it.
                'rtc.failed': [
                  { guard: and(['isRestarting', 'canReconnect']), target: 'reconnecting' },
                  {
                    guard: 'isRestarting',
                    target: '#filedropReceiver.active.failing',
                    actions: {
                      type: 'fail',
                      params: ({ event }) => ({
                        reason: 'rtc-failed',
                        message: `the ICE restart the sender asked for failed: ${event.error.message}`,
                      }),
                    },
                  },
                ],
                // The channel closed before every byte was in: a fresh connection resumes where the sink
                // allows it; otherwise the sender's reason may be on its way. Once every byte is in, the
                // sender (the original's, say) may close it: the sink finishes.
                'rtc.closed': [
                  { guard: and([not('isSettling'), 'canReconnect']), target: 'reconnecting' },
                  { guard: not('isSettling'), target: 'lost' },
                ],
              },
              initial: 'connecting',
              states: {
                connecting: {
                  after: {
                    connectTimeout: {
                      target: '#filedropReceiver.active.failing',
                      actions: failWith(
                        'timeout',
                        (context) => `the data channel did not open within ${context.connectTimeout} ms`,
                      ),
                    },
                  },
                  on: {
                    'rtc.open': {
                      target: 'receiving',
                      actions: { type: 'keepTransport', params: ({ event }) => ({ transport: event.transport }) },
                    },
                    // Each ICE restart gets a full connectTimeout. A `retry` the sender sent before our
                    // fresh offer reached it is about the connection this one replaced: not this one's.
                    retry: [
                      { guard: and(['isFromSender', 'isStaleRetry']) },
                      freshAfterRestart,
                      {
                        guard: and(['isFromSender', 'canRetry']),
                        target: 'connecting',
                        reenter: true,
                        actions: 'restartIce',
                      },
                    ],
                  },
                },
                receiving: {
                  invoke: {
                    id: 'download',
                    src: 'download',
                    input: ({ context }) => ({
                      transport: context.transport!,
                      sink: context.sink!,
                      file: context.file!,
                      offset: context.offset,
                      ...(context.trailer && { trailer: context.trailer }),
                    }),
                  },
                  // `progress { received: 0 }` at once: the sender paces itself by our reports from now on.
                  entry: 'sendProgress',
                  on: {
                    'download.progress': {
                      actions: { type: 'recordProgress', params: ({ event }) => ({ received: event.received }) },
                    },
                    'download.arrived': { actions: 'recordArrival' },
                    'download.started': {
                      actions: { type: 'recordStart', params: ({ event }) => ({ offset: event.offset }) },
                    },
                    // While the download runs, the digest goes to it too (before, it goes in with its input).
                    done: [
                      {
                        guard: and(['isFromSender', 'isUnreadable']),
                        target: '#filedropReceiver.active.failing',
                        actions: 'recordFault',
                      },
                      { guard: 'isFromSender', actions: ['keepTrailer', 'passTrailer'] },
                    ],
                    'download.done': { target: '#filedropReceiver.active.completing', actions: 'recordDone' },
                    'download.failed': {
                      target: '#filedropReceiver.active.failing',
                      actions: { type: 'recordDownloadFailure', params: ({ event }) => event },
                    },
                  },
                  // `progress` to the sender at most once per progressInterval.
                  initial: 'cooling',
                  states: {
                    idle: {
                      on: {
                        'download.progress': {
                          target: 'cooling',
                          actions: [
                            { type: 'recordProgress', params: ({ event }) => ({ received: event.received }) },
                            'sendProgress',
                          ],
                        },
                      },
                    },
                    cooling: {
                      after: {
                        progressInterval: [
                          { guard: 'hasUnreported', target: 'cooling', reenter: true, actions: 'sendProgress' },
                          { target: 'idle' },
                        ],
                      },
                    },
                  },
                },
              },
            },
            lost: {
              after: {
                lostTimeout: {
                  target: '#filedropReceiver.failed',
                  actions: {
                    type: 'fail',
                    params: { reason: 'peer-gone', message: 'the data channel closed before the file was complete' },
                  },
                },
              },
            },
          },
        },
        // What the sender must hear goes out before leaving `active` stops the signalling actor.
        completing: { entry: 'sendDone', always: '#filedropReceiver.done' },
        failing: { entry: 'tellSender', always: '#filedropReceiver.failed' },
      },
    },
    // The server connection was lost once the file was known: a new one asks the same code for the rest.
    rejoining: {
      after: { rejoinDelay: 'active' },
      on: {
        cancel: {
          target: 'failed',
          actions: { type: 'fail', params: { reason: 'cancelled', message: 'the receiver cancelled' } },
        },
      },
    },
    done: { type: 'final', entry: 'announceDone' },
    failed: { type: 'final', entry: ['abortSink', 'announceFailure'] },
  },
  output: ({ context }) => ({
    file: context.file,
    sha256: context.sha256,
    verified: context.verified,
    error: context.error,
  }),
});

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
