import {
  and,
  assertEvent,
  assign,
  emit,
  enqueueActions,
  not,
  or,
  sendParent,
  sendTo,
  setup,
  type DoneActorEvent,
  type ErrorActorEvent,
} from 'xstate';
import type { SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import {
  assigning,
  clientActors,
  failOnSignalling,
  signallingFailures,
  remoteError,
  send,
  signallingError,
  type SignallingFailure,
} from './client.js';
import { FileDropError, type TransferFailure } from './errors.js';
import type { FileSource } from '../transfer/files.js';
import type { ClientMessage, FileInfo, MessageOf, ServerMessage } from './protocol.js';
import { DEFAULT_WINDOW, isResumeOffset, upload, type UploadCommand, type UploadEvent } from '../transfer/transfer.js';
import { isFault, readCandidate, readDescription, readOffset, readProgress } from './wire.js';

/* ------------------------------------------------------------------------ */
/* One transfer: the sender's side of one receiver's request.               */
/* ------------------------------------------------------------------------ */

/** Timing and limits of each transfer, in milliseconds. */
export interface TransferTiming {
  /** ICE restarts (`retry`) to ask for on each connection (a fresh one gets as many again) before giving up. @default 3 */
  maxRetries: number;
  /** How long the receiver has to send its offer after our `response` (it may be asking its user). @default 120000 */
  offerTimeout: number;
  /** How long the data channel has to open after each offer. @default 30000 */
  connectTimeout: number;
  /** After the data channel closed early, how long to wait for the receiver's last word before calling it gone. @default 10000 */
  lostTimeout: number;
  /**
   * Most bytes sent beyond what the receiver last reported stored (its
   * `progress`), once it has reported anything: the bound on what a receiver
   * with a slow sink holds in memory (see the `upload` actor).
   * @default 33554432 (32 MiB)
   */
  window: number;
}

export interface TransferInput extends TransferTiming {
  /** The receiver. */
  peer: string;
  source: FileSource;
}

export interface TransferContext extends TransferTiming {
  readonly peer: string;
  readonly source: FileSource;
  readonly file: FileInfo;
  retries: number;
  /** Bytes the receiver reported. */
  received: number;
  /** The receiver has reported a count in `progress`: it reports as it stores, and the upload paces itself by it. */
  paced: boolean;
  /** Every chunk went out and `done` was sent: a receiver's `done` now means it has the file. */
  uploaded: boolean;
  /** Where the upload on the current connection starts: the receiver's `offset`, when it can start this file. */
  offset: number;
  transport?: Transport;
  error?: FileDropError;
}

/** What a transfer tells its sender: a message to send, an rtc command, news for the application. */
export type TransferReport =
  | { type: 'transfer.signal'; message: ClientMessage }
  | { type: 'transfer.rtc'; peer: string; command: RtcCommand }
  | { type: 'transfer.progress'; peer: string; received: number; total: number }
  | { type: 'transfer.retrying'; peer: string; attempt: number }
  /**
   * The receiver asked to start at `offset` (it holds the bytes before it).
   * `fresh`: its offer opens a new connection, replacing the old one (whose
   * channel was lost): the sender replaces this transfer's rtc actor before
   * it relays the offer.
   */
  | { type: 'transfer.resuming'; peer: string; offset: number; fresh: boolean };

/** What a transfer ends with (its output). */
export interface TransferOutput {
  peer: string;
  received: number;
  error?: FileDropError;
}

export type TransferEvent =
  | MessageOf<ServerMessage, 'offer' | 'candidate' | 'progress' | 'done' | 'peer not exists'>
  | RtcEmitted
  | UploadEvent
  | { type: 'cancel' }
  /** The sender lost this transfer's rtc actor (it crashed). */
  | { type: 'transfer.abort'; message: string };

const signal = (message: ClientMessage): TransferReport => ({ type: 'transfer.signal', message });
const rtcCommand = (peer: string, command: RtcCommand): TransferReport => ({ type: 'transfer.rtc', peer, command });

type TransferArgs = { context: TransferContext; event: TransferEvent };

/** What the receiver's `progress` says, as far as it can be read. */
const progressOf = (event: TransferEvent) => {
  assertEvent(event, 'progress');
  return readProgress(event.detail.data);
};

/** The receiver's offer as it came: a description, or a fault naming the field. */
const offerOf = (event: TransferEvent) => {
  assertEvent(event, 'offer');
  return readDescription(event.detail.data, 'offer');
};

/** Where the receiver's offer asks to start, when this file can start there; else 0 (the receiver copes with that). */
const offsetOf = (context: TransferContext, event: TransferEvent) => {
  assertEvent(event, 'offer');
  const offset = readOffset(event.detail.data);
  return isResumeOffset(offset, context.file.size) ? offset : 0;
};

/**
 * An offer that opens a connection: its transfer starts at the offer's
 * offset. Before the relayed offer, the sender hears where, unless it is
 * the first connection's start at 0 (and, on a fresh connection, replaces
 * the rtc actor).
 */
const startAt = (fresh: boolean) =>
  [
    {
      type: 'report',
      params: ({ context, event }: TransferArgs): TransferReport => ({
        type: 'transfer.resuming',
        peer: context.peer,
        offset: offsetOf(context, event),
        fresh,
      }),
    },
    'keepOffset',
  ] as const;

/** The receiver's offer (first, or after an ICE restart) goes to our rtc actor (an unreadable one failed the transfer before). */
const applyOffer = {
  type: 'report',
  params: ({ context, event }: TransferArgs) => {
    const reading = offerOf(event);
    return rtcCommand(
      context.peer,
      isFault(reading) ? { type: 'rtc.close' } : { type: 'rtc.remoteDescription', description: reading.value },
    );
  },
} as const;

/** Every chunk is on the channel: `done` (the original's word for it) carries the digest of what was sent. */
const sendDone = [
  'markUploaded',
  {
    type: 'report',
    params: ({ context, event }: TransferArgs) => {
      assertEvent(event, 'upload.done');
      const sha256 = context.file.sha256 ?? event.sha256;
      return signal({ type: 'done', detail: { peer: context.peer, data: sha256 === undefined ? {} : { sha256 } } });
    },
  },
] as const;

/**
 * An offer with an `offset` opens a fresh connection (the receiver lost the
 * old one, or one side could not restart its ICE): a new rtc actor answers
 * it, with `maxRetries` ICE restarts of its own, and the upload starts again
 * at the offset once its channel opens.
 */
const freshConnection = {
  guard: 'isFreshOffer',
  target: 'connecting',
  reenter: true,
  actions: [...startAt(true), 'resetRetries', applyOffer],
} as const;

/** An offer or candidate that cannot be read ends the transfer (`protocol`), before anything else looks at it. */
const refuseUnreadable = { guard: 'isUnreadable', target: 'failing', actions: 'recordFault' } as const;

/** News for the application: the receiver has `received` bytes. */
const reportProgress = {
  type: 'report',
  params: ({ context, event }: TransferArgs): TransferReport => ({
    type: 'transfer.progress',
    peer: context.peer,
    received: progressOf(event).received ?? context.received,
    total: context.file.size,
  }),
} as const;

/** ICE failed here: ask the receiver for an ICE restart (the seed's `retry`); {@link retryOrFail} when none may be left. */
const askRetry = [
  {
    type: 'report',
    params: ({ context }: TransferArgs) => signal({ type: 'retry', detail: { peer: context.peer } }),
  },
  {
    type: 'report',
    params: ({ context }: TransferArgs): TransferReport => ({
      type: 'transfer.retrying',
      peer: context.peer,
      attempt: context.retries + 1,
    }),
  },
  'countRetry',
] as const;

/** ICE failed while connecting or sending: {@link askRetry}, or, with no retries left, fail `rtc-failed`. */
const retryOrFail = [
  { guard: 'canRetry', actions: askRetry },
  {
    target: 'failing',
    actions: {
      type: 'fail',
      params: ({ event }: TransferArgs) => {
        assertEvent(event, 'rtc.failed');
        return { reason: 'rtc-failed', message: `${event.error.message}; no retries left` } as const;
      },
    },
  },
] as const;

/**
 * The file as `response` describes it: with its `sha256` when the source
 * knows it, else with `trailer: 'sha256'`, the promise that the digest
 * follows in `done` (computed while the file is sent, so it is read once).
 */
export function fileInfoOf(source: FileSource): FileInfo {
  const info: FileInfo = { name: source.name, size: source.size, type: source.type };
  if (source.sha256 !== undefined) info.sha256 = source.sha256;
  else info.trailer = 'sha256';
  return info;
}

/**
 * The types and named implementations of {@link filedropSenderTransfer} (what reads its event
 * takes it as typed `params`, computed at each transition, or checks it with
 * `assertEvent`). Wiring one of them to a transition whose event lacks what it
 * reads does not compile (`test/filedrop-types.test-d.ts`).
 */
export const filedropSenderTransferSetup = setup({
  types: {
    context: {} as TransferContext,
    events: {} as TransferEvent,
    input: {} as TransferInput,
    output: {} as TransferOutput,
  },
  actors: { upload },
  delays: {
    offerTimeout: ({ context }) => context.offerTimeout,
    connectTimeout: ({ context }) => context.connectTimeout,
    lostTimeout: ({ context }) => context.lostTimeout,
  },
  guards: {
    canRetry: ({ context }) => context.retries < context.maxRetries,
    isVerdictDone: ({ event }) => progressOf(event).done === true,
    isVerdictError: ({ event }) => progressOf(event).error !== undefined,
    isReport: not(or(['isVerdictDone', 'isVerdictError'])),
    /** The report carries a count (the seed leaves `progress` open: one without is only ignored). */
    hasCount: ({ event }) => progressOf(event).received !== undefined,
    isUnreadable: ({ event }) => {
      assertEvent(event, ['offer', 'candidate']);
      return isFault(event.type === 'offer' ? offerOf(event) : readCandidate(event.detail.data));
    },
    isUploaded: ({ context }) => context.uploaded,
    isChannelGone: (_, { reason }: { reason: TransferFailure }) => reason === 'peer-gone',
    isAnswer: (_, { description }: { description: { type: string } }) => description.type === 'answer',
    isNewProgress: ({ context, event }) => (progressOf(event).received ?? -1) > context.received,
    /** The offer asks to start past byte 0, at an offset that this file can start at. */
    isResumingOffer: ({ context, event }) => offsetOf(context, event) > 0,
    /** A readable offer that names an `offset`: it opens a fresh connection (an ICE restart's offer names none). */
    isFreshOffer: ({ event }) => {
      assertEvent(event, 'offer');
      return !isFault(offerOf(event)) && readOffset(event.detail.data) !== undefined;
    },
  },
  actions: {
    fail: assign((_, { reason, message }: { reason: TransferFailure; message: string }) => ({
      error: new FileDropError(reason, message),
    })),
    /** Everything a transfer tells its sender goes through here (tests replace it to watch). */
    report: sendParent((_, report: TransferReport) => report),
    countRetry: assign({ retries: ({ context }) => context.retries + 1 }),
    resetRetries: assign({ retries: 0 }),
    keepTransport: assign((_, { transport }: { transport: Transport }) => ({ transport })),
    keepReceived: assign({
      received: ({ context, event }) => Math.max(context.received, progressOf(event).received ?? 0),
      paced: true,
    }),
    recordFault: assign({
      error: ({ event }) => {
        assertEvent(event, ['offer', 'candidate']);
        const reading = event.type === 'offer' ? offerOf(event) : readCandidate(event.detail.data);
        return new FileDropError(
          'protocol',
          `the receiver sent what cannot be read: ${isFault(reading) ? reading.fault : event.type}`,
        );
      },
    }),
    markUploaded: assign({ uploaded: true }),

    /** A connection starts at the offer's offset: nothing of it is uploaded yet, and the receiver has that much. */
    keepOffset: assign(({ context, event }) => {
      const offset = offsetOf(context, event);
      return { offset, received: offset, uploaded: false, transport: undefined };
    }),
    /** The receiver's report goes to the upload, which keeps within `window` of it. */
    ackUpload: sendTo('upload', ({ context }): UploadCommand => ({ type: 'upload.ack', received: context.received })),
    recordRemoteFailure: assign(({ context, event }) => {
      const { error, received } = progressOf(event);
      return { received: received ?? context.received, error: remoteError(error!, 'receiver') };
    }),
    recordUploadFailure: assign((_, { reason, message }: Extract<UploadEvent, { type: 'upload.failed' }>) => ({
      error: new FileDropError(reason, message),
    })),
  },
});

/**
 * The sender's side of one transfer, spawned by {@link filedropSender} for
 * each `request`: `response` with the file, the receiver's offer answered,
 * the chunks sent once the data channel is open, then the receiver's verdict
 * (`progress` with `done` or `error`). A failed ICE asks for an ICE restart
 * (`retry`), at most `maxRetries` times. Its rtc actor belongs to the
 * sender, which routes messages both ways.
 */
export const filedropSenderTransfer = filedropSenderTransferSetup.createMachine({
  id: 'filedropSenderTransfer',
  context: ({ input }) => ({
    peer: input.peer,
    source: input.source,
    file: fileInfoOf(input.source),
    maxRetries: input.maxRetries,
    offerTimeout: input.offerTimeout,
    connectTimeout: input.connectTimeout,
    lostTimeout: input.lostTimeout,
    window: input.window,
    retries: 0,
    received: 0,
    paced: false,
    uploaded: false,
    offset: 0,
  }),
  on: {
    candidate: [
      { ...refuseUnreadable, target: '.failing' },
      {
        // The end of candidates (`null`) needs nothing.
        actions: enqueueActions(({ context, event, enqueue }) => {
          const reading = readCandidate(event.detail.data);
          if (isFault(reading) || reading.value === null) return;
          enqueue({
            type: 'report',
            params: rtcCommand(context.peer, { type: 'rtc.remoteCandidate', candidate: reading.value }),
          });
        }),
      },
    ],
    'rtc.description': {
      guard: { type: 'isAnswer', params: ({ event }) => event },
      // The browser's form: `{ type: 'answer', sdp }`.
      actions: {
        type: 'report',
        params: ({ context, event }) =>
          signal({
            type: 'answer',
            detail: { peer: context.peer, data: { type: 'answer', sdp: event.description.sdp } },
          }),
      },
    },
    'rtc.candidate': {
      actions: {
        type: 'report',
        params: ({ context, event }) =>
          signal({ type: 'candidate', detail: { peer: context.peer, data: event.candidate } }),
      },
    },
    progress: [
      {
        guard: and(['isVerdictDone', 'isNewProgress']),
        target: '.done',
        actions: ['keepReceived', reportProgress],
      },
      { guard: 'isVerdictDone', target: '.done' },
      { guard: 'isVerdictError', target: '.failed', actions: 'recordRemoteFailure' },
      { guard: 'isNewProgress', actions: ['keepReceived', reportProgress] },
      // Nothing new (say the `received: 0` a receiver sends as its channel opens): it reports, so it paces.
      { guard: 'hasCount', actions: 'keepReceived' },
    ],
    // The original's receiver says `done` once it has written everything; before our last chunk it cannot be.
    done: { guard: 'isUploaded', target: '.done' },
    'peer not exists': {
      target: '.failed',
      actions: { type: 'fail', params: { reason: 'peer-gone', message: 'the receiver left' } },
    },
    // The channel closed under us: the receiver's verdict may still be on its way through the server.
    'rtc.closed': '.lost',
    cancel: {
      target: '.failing',
      actions: { type: 'fail', params: { reason: 'cancelled', message: 'the sender cancelled' } },
    },
    'transfer.abort': {
      target: '.failing',
      actions: { type: 'fail', params: ({ event }) => ({ reason: 'rtc-failed', message: event.message }) },
    },
  },
  initial: 'awaitingOffer',
  states: {
    awaitingOffer: {
      entry: {
        type: 'report',
        // Under both its keys and the original project's (`fileName`, `fileSize`), which its receivers read.
        params: ({ context }) =>
          signal({
            type: 'response',
            detail: {
              peer: context.peer,
              data: { ...context.file, fileName: context.file.name, fileSize: context.file.size },
            },
          }),
      },
      after: {
        offerTimeout: {
          target: 'failing',
          actions: {
            type: 'fail',
            params: ({ context }) => ({
              reason: 'timeout',
              message: `no offer from ${context.peer} within ${context.offerTimeout} ms`,
            }),
          },
        },
      },
      on: {
        offer: [
          refuseUnreadable,
          // The receiver holds part of the file already (an earlier attempt's): the sender hears where it starts.
          { guard: 'isResumingOffer', target: 'connecting', actions: [...startAt(false), applyOffer] },
          { target: 'connecting', actions: ['keepOffset', applyOffer] },
        ],
      },
    },
    connecting: {
      after: {
        connectTimeout: {
          target: 'failing',
          actions: {
            type: 'fail',
            params: ({ context }) => ({
              reason: 'timeout',
              message: `the data channel did not open within ${context.connectTimeout} ms`,
            }),
          },
        },
      },
      on: {
        // A re-offer (ICE restart) gets a full connectTimeout; so does a fresh connection.
        offer: [refuseUnreadable, freshConnection, { target: 'connecting', reenter: true, actions: applyOffer }],
        'rtc.open': {
          target: 'sending',
          actions: { type: 'keepTransport', params: ({ event }) => ({ transport: event.transport }) },
        },
        'rtc.failed': retryOrFail,
      },
    },
    sending: {
      invoke: {
        id: 'upload',
        src: 'upload',
        input: ({ context }) => ({
          transport: context.transport!,
          source: context.source,
          window: context.window,
          offset: context.offset,
          ...(context.paced && { acked: context.received }),
          hash: context.file.sha256 === undefined,
        }),
      },
      on: {
        offer: [refuseUnreadable, freshConnection, { actions: applyOffer }],
        // The receiver's reports pace the upload; its verdicts are handled above.
        progress: [
          { guard: and(['isReport', 'isNewProgress']), actions: ['keepReceived', reportProgress, 'ackUpload'] },
          { guard: and(['isReport', 'hasCount']), actions: ['keepReceived', 'ackUpload'] },
        ],
        'upload.done': { target: 'finishing', actions: sendDone },
        'upload.failed': [
          { guard: { type: 'isChannelGone', params: ({ event }) => event }, target: 'lost' },
          { target: 'failing', actions: { type: 'recordUploadFailure', params: ({ event }) => event } },
        ],
        'rtc.failed': retryOrFail,
      },
    },
    finishing: {
      // Every chunk is with the data channel: waiting for `progress` with `done` (or `error`), or `done`.
      on: {
        offer: [refuseUnreadable, freshConnection, { actions: applyOffer }],
        'rtc.failed': { guard: 'canRetry', actions: askRetry },
      },
    },
    // The channel closed: the receiver's verdict may be on its way, or a fresh offer (it resumes).
    lost: {
      on: { offer: freshConnection },
      after: {
        lostTimeout: {
          target: 'failed',
          actions: {
            type: 'fail',
            params: { reason: 'peer-gone', message: 'the data channel closed and the receiver went quiet' },
          },
        },
      },
    },
    // Only our own failures come through here (the receiver's verdict, its leaving and a lost
    // channel go straight to `failed`): the receiver hears why before the transfer ends.
    failing: {
      always: {
        target: 'failed',
        actions: {
          type: 'report',
          params: ({ context }) =>
            signal({ type: 'response', detail: { peer: context.peer, data: { error: context.error!.reason } } }),
        },
      },
    },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({
    peer: context.peer,
    received: context.received,
    ...(context.error && { error: context.error }),
  }),
});

/* ------------------------------------------------------------------------ */
/* The sender.                                                              */
/* ------------------------------------------------------------------------ */

export interface SenderInput extends Partial<TransferTiming> {
  /** The file. It is read only while a transfer runs; `close()` is called when the sender ends. */
  source: FileSource;
  /**
   * Serve one receiver only: the first `request` is answered, later ones get
   * a refusal (`busy`) while it runs, and the sender ends with that
   * transfer's outcome. Except when the transfer failed on the receiver's
   * side (it refused or gave up: `remote-cancelled`, say its disk failed,
   * unless it found the bytes other than announced; or it left: `peer-gone`):
   * then the sender keeps its id and answers the next `request`, so the same
   * code works for another try.
   * @default false (serve every request, until `cancel`)
   */
  once?: boolean;
}

export interface SenderContext {
  readonly source: FileSource;
  readonly once: boolean;
  readonly timing: TransferTiming;
  /** Our peer id, from `assign`: the code a receiver types. */
  id?: string;
  /**
   * Running transfers by receiver id; `generation` is part of their actors'
   * ids, `connection` counts the fresh connections of one transfer (its rtc
   * actor's id ends `.<connection>` from the first on).
   */
  transfers: Record<string, { generation: number; connection: number }>;
  /** Counts transfers started, for actor ids. */
  generation: number;
  /** Transfers that completed. */
  completed: number;
  error?: FileDropError;
}

/** Events a sender accepts from the application: `cancel` ends everything; with `peer`, one transfer. */
export type SenderCommand = { type: 'cancel'; peer?: string };

export type SenderEvent =
  | ServerMessage
  | SignallingEvent
  | RtcEmitted
  | TransferReport
  | SenderCommand
  | DoneActorEvent<TransferOutput>
  | ErrorActorEvent;

/** Emitted by a sender (subscribe with `actor.on(type, …)` or `dispatchEmitted`). */
export type SenderEmitted =
  /** `assign` arrived: `id` is the code receivers type. */
  | { type: 'assigned'; detail: { id: string } }
  /** A receiver asked for the file; its transfer starts. */
  | { type: 'requested'; detail: { peer: string } }
  /** A receiver reported progress. */
  | { type: 'progress'; detail: { peer: string; received: number; total: number } }
  /** WebRTC failed for a receiver: an ICE restart was asked for. */
  | { type: 'retrying'; detail: { peer: string; attempt: number } }
  /**
   * A receiver asked for the file from `offset` on (it has the bytes before
   * it); `reconnect`: on a fresh connection, its earlier one lost.
   */
  | { type: 'resuming'; detail: { peer: string; offset: number; reconnect: boolean } }
  /** A receiver has the whole file, verified. */
  | { type: 'completed'; detail: { peer: string } }
  /** A transfer failed. */
  | { type: 'failed'; detail: { peer: string; error: FileDropError } }
  /** The sender ended: `error` is set unless it was a `once` sender whose transfer completed. */
  | { type: 'stopped'; detail: { error?: FileDropError } };

/**
 * A transfer that failed on the receiver's side: the receiver refused or gave
 * up for a reason of its own (`remote-cancelled`: its disk, its target, its
 * user, its WebRTC), or it left (`peer-gone`). Its code stays good for
 * another try. Not when it found the bytes other than announced
 * (`size-mismatch`, `digest-mismatch`): that is this side's file.
 */
function isReceiversFailure(error: FileDropError | undefined): boolean {
  if (error?.reason === 'peer-gone') return true;
  return error?.reason === 'remote-cancelled' && error.remote !== 'size-mismatch' && error.remote !== 'digest-mismatch';
}

const transferId = (peer: string, generation: number) => `transfer:${peer}#${generation}`;
const rtcId = (peer: string, generation: number, connection = 0) =>
  `rtc:${peer}#${generation}${connection > 0 ? `.${connection}` : ''}`;
/** `transfer:<peer>#<n>` or `rtc:<peer>#<n>[.<c>]` → its parts. */
function parseChildId(id: string): { kind: string; peer: string; generation: number; connection: number } {
  const colon = id.indexOf(':');
  const hash = id.lastIndexOf('#');
  const [generation, connection = '0'] = id.slice(hash + 1).split('.');
  return {
    kind: id.slice(0, colon),
    peer: id.slice(colon + 1, hash),
    generation: Number(generation),
    connection: Number(connection),
  };
}

/*
 * A child's end comes under a wildcard (`xstate.done.actor.*`), which `assertEvent` cannot name, and the
 * guards read by `and()` take no `params`: these narrow the event for them.
 */
const isDoneEvent = (event: SenderEvent): event is DoneActorEvent<TransferOutput> =>
  event.type.startsWith('xstate.done.actor.');
const isErrorEvent = (event: SenderEvent): event is ErrorActorEvent => event.type.startsWith('xstate.error.actor.');

/**
 * `actorId` is that of the transfer running for its peer (not of one that ended before). XState
 * always sets it; an event made by hand may lack it, and then names no child of ours.
 */
function isRunningTransfer(context: SenderContext, actorId: string | undefined): boolean {
  const { kind, peer, generation } = parseChildId(actorId ?? '');
  return kind === 'transfer' && context.transfers[peer]?.generation === generation;
}

/** What a sender hands on to one transfer: a receiver's message, or what that receiver's rtc actor said. */
type Forwarded = MessageOf<ServerMessage, 'offer' | 'candidate' | 'progress' | 'done' | 'peer not exists'> | RtcEmitted;

/**
 * The types and named implementations of {@link filedropSender} (what reads its event
 * takes it as typed `params`, computed at each transition, or checks it with
 * `assertEvent`). Wiring one of them to a transition whose event lacks what it
 * reads does not compile (`test/filedrop-types.test-d.ts`).
 */
export const filedropSenderSetup = setup({
  types: {
    context: {} as SenderContext,
    events: {} as SenderEvent,
    input: {} as SenderInput,
    emitted: {} as SenderEmitted,
  },
  actors: { ...clientActors, transfer: filedropSenderTransfer },
  guards: {
    isRunning: ({ context }, { peer }: { peer: string }) => peer in context.transfers,
    isBusy: ({ context }) => context.once && (Object.keys(context.transfers).length > 0 || context.completed > 0),
    hasPeer: (_, { peer }: SenderCommand) => peer !== undefined,
    isTransferDone: ({ context, event }) => isDoneEvent(event) && isRunningTransfer(context, event.actorId),
    isChildCrash: (_, { actorId }: { actorId?: string }) => /^(transfer|rtc):/.test(actorId ?? ''),
    isTransferCrash: ({ context, event }) => isErrorEvent(event) && isRunningTransfer(context, event.actorId),
    isOnce: ({ context }) => context.once,
    isSuccess: ({ event }) => isDoneEvent(event) && event.output?.error === undefined,
    /** The transfer failed on the receiver's side: it refused or gave up (its disk, its user), or it left. */
    isReceiversFailure: ({ event }) => isDoneEvent(event) && isReceiversFailure(event.output?.error),
  },
  actions: {
    recordSignallingError: assign((_, failure: SignallingFailure) => ({ error: signallingError(failure) })),
    recordCancel: assign({ error: () => new FileDropError('cancelled', 'the sender cancelled') }),
    keepId: enqueueActions(({ enqueue }, { id }: { id: string }) => {
      enqueue.assign({ id });
      enqueue.emit({ type: 'assigned', detail: { id } });
    }),
    refuseBusy: enqueueActions(({ enqueue }, { peer }: { peer: string }) => {
      enqueue.sendTo('signalling', send({ type: 'response', detail: { peer, data: { error: 'busy' } } }));
    }),
    startTransfer: enqueueActions(({ context, enqueue }, { peer }: { peer: string }) => {
      const generation = context.generation + 1;
      enqueue.assign({ generation, transfers: { ...context.transfers, [peer]: { generation, connection: 0 } } });
      enqueue.spawnChild('rtc', {
        id: rtcId(peer, generation),
        input: { label: peer, role: 'answerer' } satisfies RtcInput,
      });
      enqueue.spawnChild('transfer', {
        id: transferId(peer, generation),
        input: { peer, source: context.source, ...context.timing },
      });
      enqueue.emit({ type: 'requested', detail: { peer } });
    }),
    /** Sends what arrived from a receiver (or its rtc actor, by label) to that receiver's transfer. */
    forward: enqueueActions(({ context, enqueue }, event: Forwarded) => {
      // A bare `peer not exists` (the original server's) names no transfer.
      const peer = 'label' in event ? event.label : event.detail.peer;
      if (peer === undefined) return;
      const running = context.transfers[peer];
      if (running) enqueue.sendTo(transferId(peer, running.generation), event satisfies TransferEvent);
    }),
    cancelOne: enqueueActions(({ context, enqueue }, { peer }: SenderCommand) => {
      if (peer === undefined) return;
      const running = context.transfers[peer];
      if (running) enqueue.sendTo(transferId(peer, running.generation), { type: 'cancel' });
    }),
    relaySignal: enqueueActions(({ enqueue }, { message }: { message: ClientMessage }) =>
      enqueue.sendTo('signalling', send(message)),
    ),
    relayRtc: enqueueActions(({ context, enqueue }, { peer, command }: { peer: string; command: RtcCommand }) => {
      const running = context.transfers[peer];
      if (running) enqueue.sendTo(rtcId(peer, running.generation, running.connection), command);
    }),
    /** A transfer starts at an offset; on a fresh connection, a new rtc actor replaces the old. */
    resume: enqueueActions(
      ({ context, enqueue }, { peer, offset, fresh }: Extract<TransferReport, { type: 'transfer.resuming' }>) => {
        const running = context.transfers[peer];
        if (!running) return;
        if (fresh) {
          const connection = running.connection + 1;
          enqueue.stopChild(rtcId(peer, running.generation, running.connection));
          enqueue.assign({ transfers: { ...context.transfers, [peer]: { ...running, connection } } });
          enqueue.spawnChild('rtc', {
            id: rtcId(peer, running.generation, connection),
            input: { label: peer, role: 'answerer' } satisfies RtcInput,
          });
        }
        if (offset > 0 || fresh) enqueue.emit({ type: 'resuming', detail: { peer, offset, reconnect: fresh } });
      },
    ),
    announceProgress: emit((_, { peer, received, total }: { peer: string; received: number; total: number }) => ({
      type: 'progress' as const,
      detail: { peer, received, total },
    })),
    announceRetry: emit((_, { peer, attempt }: { peer: string; attempt: number }) => ({
      type: 'retrying' as const,
      detail: { peer, attempt },
    })),
    endTransfer: enqueueActions(
      ({ context, enqueue }, { actorId, output }: { actorId: string; output: TransferOutput }) => {
        const { peer, generation } = parseChildId(actorId);
        // A done child stays among the children until stopped.
        enqueue.stopChild(actorId);
        enqueue.stopChild(rtcId(peer, generation, context.transfers[peer]?.connection));
        enqueue.assign({
          transfers: Object.fromEntries(Object.entries(context.transfers).filter(([id]) => id !== peer)),
        });
        if (output.error) {
          enqueue.emit({ type: 'failed', detail: { peer, error: output.error } });
          // A once sender ends with it, unless the receiver's side failed: then it serves on.
          if (context.once && !isReceiversFailure(output.error)) enqueue.assign({ error: output.error });
        } else {
          enqueue.assign({ completed: context.completed + 1 });
          enqueue.emit({ type: 'completed', detail: { peer } });
        }
      },
    ),
    /** A transfer or rtc actor crashed: the transfer fails (rtc) or is dropped (transfer). */
    handleCrash: enqueueActions(({ context, enqueue }, { actorId, error }: { actorId: string; error: unknown }) => {
      const { kind, peer, generation, connection } = parseChildId(actorId);
      const running = context.transfers[peer];
      if (running?.generation !== generation || (kind === 'rtc' && running.connection !== connection)) return;
      const message = `the ${kind} actor crashed: ${error instanceof Error ? error.message : String(error)}`;
      if (kind === 'rtc') {
        enqueue.sendTo(transferId(peer, generation), { type: 'transfer.abort', message });
        return;
      }
      // A crashed child stays among the children until stopped.
      enqueue.stopChild(actorId);
      enqueue.stopChild(rtcId(peer, generation, running.connection));
      enqueue.assign({
        transfers: Object.fromEntries(Object.entries(context.transfers).filter(([id]) => id !== peer)),
      });
      const failure = new FileDropError('protocol', message, { cause: error });
      enqueue.emit({ type: 'failed', detail: { peer, error: failure } });
      if (context.once) enqueue.assign({ error: failure });
    }),
    /** Tells every receiver still being served that we cancelled. */
    tellReceivers: enqueueActions(({ context, enqueue }) => {
      for (const peer of Object.keys(context.transfers)) {
        enqueue.sendTo('signalling', send({ type: 'response', detail: { peer, data: { error: 'cancelled' } } }));
      }
    }),
    closeSource: ({ context }) => {
      Promise.resolve()
        .then(() => context.source.close?.())
        .catch(() => {});
    },
    announceStop: emit(({ context }) => ({ type: 'stopped' as const, detail: { error: context.error } })),
  },
});

/**
 * A filedrop sender: it offers one file under the id the server assigns (the
 * code a receiver types) and answers each `request` with a transfer of its
 * own ({@link filedropSenderTransfer}), several at once. It runs until
 * `cancel` (then `failed` with reason `cancelled`), or, with `once`, until
 * its one transfer ends (one that failed on the receiver's side does not
 * count: see {@link SenderInput.once}).
 *
 * Provide `signalling` (a transport to the server's `/filedrop`, with
 * `clientCodec()`) and `rtc` (`fromRtc({ RTCPeerConnection, trickle: true })`).
 */
export const filedropSender = filedropSenderSetup.createMachine({
  id: 'filedropSender',
  context: ({ input }) => ({
    source: input.source,
    once: input.once ?? false,
    timing: {
      maxRetries: input.maxRetries ?? 3,
      offerTimeout: input.offerTimeout ?? 120_000,
      connectTimeout: input.connectTimeout ?? 30_000,
      lostTimeout: input.lostTimeout ?? 10_000,
      window: input.window ?? DEFAULT_WINDOW,
    },
    transfers: {},
    generation: 0,
    completed: 0,
  }),
  initial: 'active',
  states: {
    active: {
      invoke: { id: 'signalling', src: 'signalling' },
      on: {
        ...signallingFailures,
        'invalid peer id': failOnSignalling,
        cancel: [
          {
            guard: { type: 'hasPeer', params: ({ event }) => event },
            actions: { type: 'cancelOne', params: ({ event }) => event },
          },
          { target: '.cancelling', actions: 'recordCancel' },
        ],
      },
      initial: 'connecting',
      states: {
        ...assigning('serving'),
        serving: {
          on: {
            request: [
              { guard: { type: 'isRunning', params: ({ event }) => event.detail } },
              { guard: 'isBusy', actions: { type: 'refuseBusy', params: ({ event }) => event.detail } },
              { actions: { type: 'startTransfer', params: ({ event }) => event.detail } },
            ],
            offer: { actions: { type: 'forward', params: ({ event }) => event } },
            candidate: { actions: { type: 'forward', params: ({ event }) => event } },
            progress: { actions: { type: 'forward', params: ({ event }) => event } },
            done: { actions: { type: 'forward', params: ({ event }) => event } },
            'peer not exists': { actions: { type: 'forward', params: ({ event }) => event } },
            'rtc.description': { actions: { type: 'forward', params: ({ event }) => event } },
            'rtc.candidate': { actions: { type: 'forward', params: ({ event }) => event } },
            'rtc.open': { actions: { type: 'forward', params: ({ event }) => event } },
            'rtc.failed': { actions: { type: 'forward', params: ({ event }) => event } },
            'rtc.closed': { actions: { type: 'forward', params: ({ event }) => event } },
            'transfer.signal': { actions: { type: 'relaySignal', params: ({ event }) => event } },
            'transfer.rtc': { actions: { type: 'relayRtc', params: ({ event }) => event } },
            'transfer.progress': { actions: { type: 'announceProgress', params: ({ event }) => event } },
            'transfer.retrying': { actions: { type: 'announceRetry', params: ({ event }) => event } },
            'transfer.resuming': { actions: { type: 'resume', params: ({ event }) => event } },
            'xstate.done.actor.*': [
              {
                guard: and(['isTransferDone', 'isOnce', 'isSuccess']),
                target: '#filedropSender.done',
                actions: { type: 'endTransfer', params: ({ event }) => event },
              },
              {
                guard: and(['isTransferDone', 'isOnce', not('isReceiversFailure')]),
                target: '#filedropSender.failed',
                actions: { type: 'endTransfer', params: ({ event }) => event },
              },
              {
                guard: 'isTransferDone',
                actions: { type: 'endTransfer', params: ({ event }) => event },
              },
            ],
            'xstate.error.actor.*': [
              // A once sender ends with its transfer, even one that crashed.
              {
                guard: and(['isTransferCrash', 'isOnce']),
                target: '#filedropSender.failed',
                actions: { type: 'handleCrash', params: ({ event }) => event },
              },
              {
                guard: { type: 'isChildCrash', params: ({ event }) => event },
                actions: { type: 'handleCrash', params: ({ event }) => event },
              },
            ],
          },
        },
        // What receivers must hear goes out before leaving `active` stops the signalling actor.
        cancelling: { entry: 'tellReceivers', always: '#filedropSender.failed' },
      },
    },
    done: { type: 'final', entry: ['closeSource', 'announceStop'] },
    failed: { type: 'final', entry: ['closeSource', 'announceStop'] },
  },
});
