import { and, assertEvent, assign, not, sendParent, sendTo, setup } from 'xstate';
import type { RtcEmitted } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import { abortQuietly, type FileSink, type SinkOpener } from '../transfer/files.js';
import { download, type DownloadEvent } from '../transfer/transfer.js';
import { channelCodec } from './codec.js';
import { RegistryError, type RegistryFailure } from './errors.js';
import type { ChannelMessage, FileEntry, MessageOf } from './protocol.js';
import { describeError, failWith, firstFrame, jobEnds, keeper, openSink, type FirstFrameEvent } from './transfer.js';

/** Timing of each file connection, in milliseconds. */
export interface JobTiming {
  /** How long the data channel has to open. @default 30000 */
  connectTimeout: number;
  /** Requester: how long the holder has to answer `RequestFile`; holder: how long the requester has to send it. @default 15000 */
  responseTimeout: number;
  /** Holder: after the last chunk (or a refusal), how long to wait for the requester to close the connection. @default 10000 */
  lingerTimeout: number;
}

export interface FetchInput extends JobTiming {
  /** The parent's key of this connection (the label of its `rtc` actor). */
  key: string;
  peer: string;
  path: string;
  /** The entry the peer listed: the size (and digest) the file must have. */
  expected: FileEntry;
  sink: SinkOpener;
}

export interface FetchContext extends Omit<FetchInput, 'sink'> {
  readonly opener: SinkOpener;
  transport?: Transport;
  sink?: FileSink;
  /** What the holder announced in `File`. */
  file?: MessageOf<ChannelMessage, 'File'>['detail'];
  received: number;
  sha256?: string;
  error?: RegistryError;
}

/**
 * Commands from the client machine: the peer left the server, the
 * application cancelled, or the peer signalled something this client cannot
 * read (`message` names the field).
 */
export type JobCommand = { type: 'peer.gone' } | { type: 'cancel' } | { type: 'signal.invalid'; message: string };

export type FetchEvent = RtcEmitted | FirstFrameEvent | DownloadEvent | JobCommand;

/** What a fetch tells the client machine while it runs. */
export type FetchReport = { type: 'job.progress'; key: string; received: number; total: number };

export interface FetchOutput {
  key: string;
  size: number;
  sha256?: string;
  error?: RegistryError;
}

/** The `File` announcement in a channel message, if that is what it is. */
function fileOf(message: ChannelMessage): MessageOf<ChannelMessage, 'File'>['detail'] | undefined {
  return message.type === 'File' ? message.detail : undefined;
}

/**
 * The requester's side of one `RequestFile`: once its data channel is open
 * (the client machine runs the `rtc` actor and relays the signalling), it
 * sends `RequestFile` with the path, checks the holder's `File` against what
 * the holder listed (size, and digest when listed), opens the sink and
 * receives the chunks with filedrop's `download` actor, which verifies the
 * size and the SHA-256. Ends `done`, or `failed` with a {@link RegistryError}
 * (the sink is aborted).
 */
export const registryFetch = setup({
  types: {
    context: {} as FetchContext,
    events: {} as FetchEvent,
    input: {} as FetchInput,
    output: {} as FetchOutput,
    // Every child named: a child map with both named and unnamed children fails a consumer's tsc (TS2411).
    children: {} as { keeper: 'keeper'; firstFrame: 'firstFrame'; openSink: 'openSink'; download: 'download' },
  },
  actors: { firstFrame, openSink, download, keeper },
  delays: {
    connectTimeout: ({ context }) => context.connectTimeout,
    responseTimeout: ({ context }) => context.responseTimeout,
  },
  guards: {
    isFile: ({ context, event }) => {
      assertEvent(event, 'channel.message');
      return fileOf(event.message)?.path === context.path;
    },
    isRefusal: ({ event }) => {
      assertEvent(event, 'channel.message');
      return event.message.type === 'Error';
    },
    hasListedSize: ({ context, event }) => {
      assertEvent(event, 'channel.message');
      return fileOf(event.message)?.size === context.expected.size;
    },
    hasListedDigest: ({ context, event }) => {
      assertEvent(event, 'channel.message');
      return context.expected.sha256 === undefined || fileOf(event.message)?.sha256 === context.expected.sha256;
    },
  },
  actions: {
    fail: assign((_, { reason, message }: { reason: RegistryFailure; message: string }) => ({
      error: new RegistryError(reason, message),
    })),
    keepTransport: assign({
      transport: ({ event }) => {
        assertEvent(event, 'rtc.open');
        return event.transport;
      },
    }),
    sendRequest: ({ context }) => {
      try {
        context.transport!.send(channelCodec.encode({ type: 'RequestFile', detail: { path: context.path } }));
      } catch {
        // The channel closed at once: `rtc.closed` follows.
      }
    },
    keepFile: assign({
      file: ({ event }) => {
        assertEvent(event, 'channel.message');
        return fileOf(event.message);
      },
    }),
    recordRefusal: assign({
      error: ({ event }) => {
        assertEvent(event, 'channel.message');
        const { message } = event;
        if (message.type !== 'Error') return new RegistryError('protocol', `the peer answered ${message.type}`);
        return new RegistryError(message.detail.reason, `the peer refused: ${message.detail.message}`);
      },
    }),
    recordInvalid: assign({
      error: ({ event }) => {
        assertEvent(event, ['channel.message', 'channel.invalid']);
        const what =
          event.type === 'channel.invalid'
            ? event.message
            : `expected File for the requested path, got ${event.message.type}`;
        return new RegistryError('protocol', `the peer answered badly: ${what}`);
      },
    }),
    failSize: assign({
      error: ({ context }) =>
        new RegistryError(
          'size-mismatch',
          `the peer listed ${context.expected.size} bytes and now sends ${context.file!.size}`,
        ),
    }),
    failDigest: assign({
      error: ({ context }) =>
        new RegistryError(
          'digest-mismatch',
          `the peer listed SHA-256 ${context.expected.sha256} and now sends ${context.file!.sha256}`,
        ),
    }),
    report: sendParent(({ context }, { received }: { received: number }) => ({
      type: 'job.progress' as const,
      key: context.key,
      received,
      total: context.expected.size,
    })),
    recordProgress: assign((_, { received }: { received: number }) => ({ received })),
    recordDownloadFailure: assign(
      (_, { reason, message, received }: Extract<DownloadEvent, { type: 'download.failed' }>) => ({
        received,
        error: new RegistryError(reason, message),
      }),
    ),
    recordDone: assign((_, { received, sha256 }: Extract<DownloadEvent, { type: 'download.done' }>) => ({
      received,
      sha256,
    })),
    /** Should the job be stopped before it settles (its client stopped), the sink is aborted. */
    keepSink: sendTo('keeper', ({ context }) => ({
      type: 'keep' as const,
      release: () => context.sink?.abort(new RegistryError('cancelled', 'the fetch was stopped')),
    })),
    /** The sink committed the file: nothing to let go. */
    forgetSink: sendTo('keeper', { type: 'keep' as const, release: () => {} }),
    abortSink: ({ context }) => void abortQuietly(context.sink, context.error),
  },
}).createMachine({
  id: 'registryFetch',
  context: ({ input: { sink, ...input } }) => ({ ...input, opener: sink, received: 0 }),
  // Aborts the sink should this job be stopped before it settles.
  invoke: { id: 'keeper', src: 'keeper' },
  initial: 'active',
  states: {
    active: {
      on: jobEnds('registryFetch', {
        gone: 'the peer left',
        cancelled: 'the request was cancelled',
        closed: 'the data channel closed before the file was complete',
      }),
      initial: 'connecting',
      states: {
        connecting: {
          after: {
            connectTimeout: {
              target: '#registryFetch.failed',
              actions: failWith('timeout', 'the data channel did not open in time'),
            },
          },
          on: { 'rtc.open': { target: 'requesting', actions: 'keepTransport' } },
        },
        requesting: {
          entry: 'sendRequest',
          invoke: { id: 'firstFrame', src: 'firstFrame', input: ({ context }) => ({ transport: context.transport! }) },
          after: {
            responseTimeout: {
              target: '#registryFetch.failed',
              actions: failWith('timeout', 'the peer did not answer in time'),
            },
          },
          on: {
            'channel.message': [
              { guard: 'isRefusal', target: '#registryFetch.failed', actions: 'recordRefusal' },
              {
                guard: and(['isFile', not('hasListedSize')]),
                target: '#registryFetch.failed',
                actions: ['keepFile', 'failSize'],
              },
              {
                guard: and(['isFile', not('hasListedDigest')]),
                target: '#registryFetch.failed',
                actions: ['keepFile', 'failDigest'],
              },
              { guard: 'isFile', target: 'openingSink', actions: 'keepFile' },
              { target: '#registryFetch.failed', actions: 'recordInvalid' },
            ],
            'channel.invalid': { target: '#registryFetch.failed', actions: 'recordInvalid' },
          },
        },
        openingSink: {
          invoke: {
            id: 'openSink',
            src: 'openSink',
            input: ({ context }) => ({
              sink: context.opener,
              file: { name: context.path, size: context.file!.size, type: '', sha256: context.file!.sha256 },
            }),
            onDone: { target: 'receiving', actions: [assign({ sink: ({ event }) => event.output }), 'keepSink'] },
            onError: {
              target: '#registryFetch.failed',
              actions: {
                type: 'fail',
                params: ({ event }) => ({ reason: 'sink-failed', message: `no sink: ${describeError(event.error)}` }),
              },
            },
          },
        },
        receiving: {
          invoke: {
            id: 'download',
            src: 'download',
            input: ({ context }) => ({
              transport: context.transport!,
              sink: context.sink!,
              file: { name: context.path, size: context.file!.size, type: '', sha256: context.file!.sha256 },
            }),
          },
          on: {
            'download.progress': {
              actions: [
                { type: 'recordProgress', params: ({ event }) => event },
                { type: 'report', params: ({ event }) => event },
              ],
            },
            'download.done': {
              target: '#registryFetch.done',
              actions: { type: 'recordDone', params: ({ event }) => event },
            },
            'download.failed': {
              target: '#registryFetch.failed',
              actions: { type: 'recordDownloadFailure', params: ({ event }) => event },
            },
          },
        },
      },
    },
    done: { type: 'final', entry: 'forgetSink' },
    failed: { type: 'final', entry: 'abortSink' },
  },
  output: ({ context }) => ({
    key: context.key,
    size: context.received,
    ...(context.sha256 !== undefined && { sha256: context.sha256 }),
    ...(context.error && { error: context.error }),
  }),
});
