import { assertEvent, assign, not, sendTo, setup } from 'xstate';
import type { RtcEmitted } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import type { FileSource } from '../transfer/files.js';
import { upload, type UploadEvent } from '../transfer/transfer.js';
import { channelCodec } from './codec.js';
import { RegistryError, type RegistryFailure } from './errors.js';
import type { FileProvider } from './files.js';
import type { JobCommand, JobTiming } from './fetch.machine.js';
import { checkPath, type ChannelMessage, type FileEntry, type Refusal } from './protocol.js';
import { describeError, failWith, firstFrame, jobEnds, keeper, openSource, type FirstFrameEvent } from './transfer.js';

export interface ServeInput extends JobTiming {
  /** The parent's key of this connection (the label of its `rtc` actor). */
  key: string;
  /** The requester. */
  peer: string;
  provider: FileProvider;
  /** What this client lists right now: only these paths are served. */
  files: readonly FileEntry[];
}

export interface ServeContext extends ServeInput {
  transport?: Transport;
  /** The requested path, once asked. */
  path?: string;
  source?: FileSource;
  /** Why the request is refused (sent to the requester as `Error`). */
  refusal?: RegistryError;
  error?: RegistryError;
}

export type ServeEvent = RtcEmitted | FirstFrameEvent | UploadEvent | JobCommand;

export interface ServeOutput {
  key: string;
  path?: string;
  error?: RegistryError;
}

const requestedPath = (message: ChannelMessage) => (message.type === 'RequestFile' ? message.detail.path : undefined);
const refusals: readonly RegistryFailure[] = [
  'not-listed',
  'invalid-path',
  'outside-root',
  'source-failed',
  'protocol',
];

/**
 * The holder's side of one file connection: once the data channel is open
 * it reads the requester's one `RequestFile`, serves only a clean path of
 * its current list, opens it through the {@link FileProvider} (which refuses
 * anything outside what it shares), announces `File` (path, size, SHA-256)
 * and sends the content with filedrop's `upload` actor (16 KiB chunks,
 * backpressure). A refused request gets an `Error` on the channel. Either
 * way it then waits for the requester to close the connection.
 */
export const registryServe = setup({
  types: {
    context: {} as ServeContext,
    events: {} as ServeEvent,
    input: {} as ServeInput,
    output: {} as ServeOutput,
    // Every child named: a child map with both named and unnamed children fails a consumer's tsc (TS2411).
    children: {} as { keeper: 'keeper'; firstFrame: 'firstFrame'; openSource: 'openSource'; upload: 'upload' },
  },
  actors: { firstFrame, openSource, upload, keeper },
  delays: {
    connectTimeout: ({ context }) => context.connectTimeout,
    responseTimeout: ({ context }) => context.responseTimeout,
    lingerTimeout: ({ context }) => context.lingerTimeout,
  },
  guards: {
    isRequest: ({ event }) => {
      assertEvent(event, 'channel.message');
      return requestedPath(event.message) !== undefined;
    },
    hasCleanPath: ({ context }) => checkPath(context.path) === undefined,
    hasListedPath: ({ context }) => context.files.some((file) => file.path === context.path),
    isChannelGone: ({ event }) => {
      assertEvent(event, 'upload.failed');
      return event.reason === 'peer-gone';
    },
  },
  actions: {
    fail: assign((_, { reason, message }: { reason: RegistryFailure; message: string }) => ({
      error: new RegistryError(reason, message),
    })),
    refuse: assign((_, { reason, message }: { reason: Refusal; message: string }) => ({
      refusal: new RegistryError(reason, message),
    })),
    keepTransport: assign({
      transport: ({ event }) => {
        assertEvent(event, 'rtc.open');
        return event.transport;
      },
    }),
    keepPath: assign({
      path: ({ event }) => {
        assertEvent(event, 'channel.message');
        return requestedPath(event.message);
      },
    }),
    sendHeader: ({ context }) => {
      const { source, path } = context;
      send(context, { type: 'File', detail: { path: path!, size: source!.size, sha256: source!.sha256! } });
    },
    sendRefusal: ({ context }) => {
      const { reason, message } = context.refusal!;
      send(context, { type: 'Error', detail: { reason: reason as Refusal, message: message.slice(0, 1024) } });
    },
    recordRefusal: assign({ error: ({ context }) => context.refusal }),
    recordUploadFailure: assign({
      error: ({ event }) => {
        assertEvent(event, 'upload.failed');
        return new RegistryError(event.reason, event.message);
      },
    }),
    keepSource: sendTo('keeper', ({ context }) => ({
      type: 'keep' as const,
      release: () => context.source?.close?.(),
    })),
  },
}).createMachine({
  id: 'registryServe',
  context: ({ input }) => ({ ...input }),
  // Closes the source once this job stops, however it stops.
  invoke: { id: 'keeper', src: 'keeper' },
  initial: 'active',
  states: {
    active: {
      on: jobEnds('registryServe', {
        gone: 'the requester left',
        cancelled: 'serving was cancelled',
        closed: 'the requester closed the connection early',
      }),
      initial: 'connecting',
      states: {
        connecting: {
          after: {
            connectTimeout: {
              target: '#registryServe.failed',
              actions: failWith('timeout', 'the data channel did not open in time'),
            },
          },
          on: { 'rtc.open': { target: 'awaitingRequest', actions: 'keepTransport' } },
        },
        awaitingRequest: {
          invoke: { id: 'firstFrame', src: 'firstFrame', input: ({ context }) => ({ transport: context.transport! }) },
          after: {
            responseTimeout: {
              target: '#registryServe.failed',
              actions: failWith('timeout', 'no RequestFile came in time'),
            },
          },
          on: {
            'channel.message': [
              {
                guard: 'isRequest',
                target: 'checking',
                actions: 'keepPath',
              },
              {
                target: 'refusing',
                actions: {
                  type: 'refuse',
                  params: { reason: 'protocol', message: 'the first frame must be RequestFile' },
                },
              },
            ],
            'channel.invalid': {
              target: 'refusing',
              actions: { type: 'refuse', params: ({ event }) => ({ reason: 'protocol', message: event.message }) },
            },
          },
        },
        checking: {
          always: [
            {
              guard: not('hasCleanPath'),
              target: 'refusing',
              actions: {
                type: 'refuse',
                params: ({ context }) => ({
                  reason: 'invalid-path',
                  message: `${JSON.stringify(context.path!.slice(0, 256))}: ${checkPath(context.path)}`,
                }),
              },
            },
            {
              guard: not('hasListedPath'),
              target: 'refusing',
              actions: {
                type: 'refuse',
                params: ({ context }) => ({
                  reason: 'not-listed',
                  message: `${JSON.stringify(context.path!.slice(0, 256))} is not in this peer's list`,
                }),
              },
            },
            { target: 'opening' },
          ],
        },
        opening: {
          invoke: {
            id: 'openSource',
            src: 'openSource',
            input: ({ context }) => ({ provider: context.provider, path: context.path! }),
            onDone: { target: 'sending', actions: [assign({ source: ({ event }) => event.output }), 'keepSource'] },
            onError: {
              target: 'refusing',
              actions: {
                type: 'refuse',
                params: ({ event }) => {
                  const error = event.error;
                  const reason =
                    error instanceof RegistryError && refusals.includes(error.reason) ? error.reason : 'source-failed';
                  return { reason: reason as Refusal, message: describeError(error) };
                },
              },
            },
          },
        },
        sending: {
          entry: 'sendHeader',
          invoke: {
            id: 'upload',
            src: 'upload',
            input: ({ context }) => ({ transport: context.transport!, source: context.source! }),
          },
          on: {
            'upload.done': 'finishing',
            'upload.failed': [
              {
                guard: 'isChannelGone',
                target: '#registryServe.failed',
                actions: failWith('peer-gone', 'the data channel closed mid-file'),
              },
              { target: '#registryServe.failed', actions: 'recordUploadFailure' },
            ],
          },
        },
        // Every chunk is with the data channel: the requester closes the connection once it verified them.
        finishing: {
          after: { lingerTimeout: '#registryServe.done' },
          on: { 'rtc.closed': '#registryServe.done' },
        },
        refusing: {
          entry: 'sendRefusal',
          after: { lingerTimeout: { target: '#registryServe.failed', actions: 'recordRefusal' } },
          on: { 'rtc.closed': { target: '#registryServe.failed', actions: 'recordRefusal' } },
        },
      },
    },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({
    key: context.key,
    ...(context.path !== undefined && { path: context.path }),
    ...(context.error && { error: context.error }),
  }),
});

function send(context: ServeContext, message: ChannelMessage): void {
  try {
    context.transport!.send(channelCodec.encode(message));
  } catch {
    // The channel closed: `rtc.closed` follows.
  }
}
