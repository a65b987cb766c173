import { fromCallback, fromPromise, type EventObject } from 'xstate';
import type { Transport } from '../../src/transport.js';
import { abortQuietly, sha256OfSource, type FileSink, type FileSource } from '../transfer/files.js';
import type { OpenSinkInput } from '../transfer/transfer.js';
import { channelCodec, checkFileList, checkOutgoingList, copyFiles, type ListLimits } from './codec.js';
import { RegistryError, type RegistryFailure } from './errors.js';
import type { FileProvider } from './files.js';
import type { ChannelMessage, FileEntry } from './protocol.js';

/** What the {@link firstFrame} actor reports. */
export type FirstFrameEvent =
  { type: 'channel.message'; message: ChannelMessage } | { type: 'channel.invalid'; message: string };

/**
 * Reads exactly one text frame from a data channel and stops listening at
 * once, so the frames after it (the file's chunks) wait in the transport for
 * the next listener, the `download` actor.
 */
export const firstFrame = fromCallback<EventObject, { transport: Transport }>(({ input, sendBack }) => {
  let stopped = false;
  const off = input.transport.on('message', (frame) => {
    off();
    if (stopped) return;
    let message: ChannelMessage;
    try {
      message = channelCodec.decode(frame);
    } catch (error) {
      sendBack({ type: 'channel.invalid', message: describeError(error) } satisfies FirstFrameEvent);
      return;
    }
    sendBack({ type: 'channel.message', message } satisfies FirstFrameEvent);
  });
  return () => {
    stopped = true;
    off();
  };
});

/** What a job tells its {@link keeper}: how to let go of what it opened. */
export type KeepEvent = { type: 'keep'; release: () => unknown };

/**
 * Holds what a job opened (the holder's source, the requester's sink) and
 * lets go of it when the job stops, however it stops: done, failed, or
 * stopped along with its client (`actor.stop()`, which runs no entry
 * actions), so no file handle or `.part` file outlives its job.
 */
export const keeper = fromCallback<KeepEvent>(({ receive }) => {
  let release: (() => unknown) | undefined;
  receive((event) => {
    release = event.release;
  });
  return () => {
    const letGo = release;
    if (letGo)
      void Promise.resolve()
        .then(letGo)
        .catch(() => {});
  };
});

/** Input of {@link openSource}. */
export interface OpenSourceInput {
  provider: FileProvider;
  path: string;
}

/**
 * Opens a listed path through the provider and makes sure its digest is
 * known (computing it when the source has none). Rejects with a
 * {@link RegistryError}. A source that opens after the job ended (the
 * requester left while a large file was hashed) is closed, not leaked.
 */
export const openSource = fromPromise<FileSource, OpenSourceInput>(async ({ input, signal }) => {
  let source: FileSource;
  try {
    source = await input.provider.open(input.path);
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw new RegistryError('source-failed', `opening ${input.path} failed: ${describeError(error)}`, { cause: error });
  }
  const close = () => Promise.resolve(source.close?.()).catch(() => {});
  if (signal.aborted) {
    await close();
    throw new RegistryError('cancelled', `${input.path} opened after its request ended`);
  }
  if (source.sha256 !== undefined) return source;
  try {
    const sha256 = await sha256OfSource(source);
    if (signal.aborted) throw new RegistryError('cancelled', `${input.path} was hashed after its request ended`);
    return { ...source, read: source.read.bind(source), close: source.close?.bind(source), sha256 };
  } catch (error) {
    await close();
    if (error instanceof RegistryError) throw error;
    throw new RegistryError('source-failed', `reading ${input.path} failed: ${describeError(error)}`, { cause: error });
  }
});

/**
 * filedrop's `openSink` for a fetch: opens the sink (an opener is called
 * with the file's name and size), and aborts a sink that opens after the
 * fetch ended, so no half-made file (a `fileSink`'s `.part`) is left.
 */
export const openSink = fromPromise<FileSink, OpenSinkInput>(async ({ input, signal }) => {
  const sink = typeof input.sink === 'function' ? await input.sink(input.file) : input.sink;
  if (signal.aborted)
    await abortQuietly(sink, new RegistryError('cancelled', 'the fetch ended before its sink opened'));
  return sink;
});

/** Input of {@link listFiles}: a list as is, or a provider to ask. */
export interface ListFilesInput {
  files?: FileEntry[];
  provider?: FileProvider;
  /** The server's limits ({@link checkOutgoingList}). @default only a clean list is required */
  limits?: ListLimits;
}

/**
 * The list to announce, checked ({@link checkOutgoingList}, or
 * {@link checkFileList} without limits) and copied; rejects with a
 * {@link RegistryError}.
 */
export const listFiles = fromPromise<FileEntry[], ListFilesInput>(async ({ input }) => {
  let files: FileEntry[];
  try {
    files = input.files ?? (input.provider ? await input.provider.list() : []);
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw new RegistryError('source-failed', `listing the files failed: ${describeError(error)}`, { cause: error });
  }
  const problem = input.limits ? checkOutgoingList(files, input.limits) : checkFileList(files);
  if (problem) throw new RegistryError('invalid-files', problem);
  return copyFiles(files);
});

/** The `fail` action of a fetch or serve job, with its parameters. */
export const failWith = (reason: RegistryFailure, message: string) =>
  ({ type: 'fail', params: { reason, message } }) as const;

/**
 * How a fetch or serve job (the machine `id`) ends from any of its states:
 * its peer left, it was cancelled, a signal for it could not be read, or its
 * WebRTC connection failed or closed. `words` are the job's own messages.
 */
export const jobEnds = <TId extends string>(id: TId, words: { gone: string; cancelled: string; closed: string }) => {
  const failed = `#${id}.failed` as const;
  return {
    'peer.gone': { target: failed, actions: failWith('peer-gone', words.gone) },
    cancel: { target: failed, actions: failWith('cancelled', words.cancelled) },
    'signal.invalid': {
      target: failed,
      actions: {
        type: 'fail',
        params: ({ event }: { event: { message: string } }) => ({
          reason: 'protocol' as const,
          message: event.message,
        }),
      },
    },
    'rtc.failed': {
      target: failed,
      actions: {
        type: 'fail',
        params: ({ event }: { event: { error: Error } }) => ({
          reason: 'rtc-failed' as const,
          message: event.error.message,
        }),
      },
    },
    'rtc.closed': { target: failed, actions: failWith('peer-gone', words.closed) },
  } as const;
};

/** An error's message, or the thrown value as text. */
export function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
