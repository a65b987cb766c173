import { fromCallback, fromPromise, type EventObject } from 'xstate';
import type { Transport } from '../../src/transport.js';
import { sha256OfSource, type FileSource } from '../filedrop/files.js';
import { channelCodec, checkFileList } from './codec.js';
import { RegistryError } from './errors.js';
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
      sendBack({ type: 'channel.invalid', message: describe(error) } satisfies FirstFrameEvent);
      return;
    }
    sendBack({ type: 'channel.message', message } satisfies FirstFrameEvent);
  });
  return () => {
    stopped = true;
    off();
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
 * {@link RegistryError}.
 */
export const openSource = fromPromise<FileSource, OpenSourceInput>(async ({ input }) => {
  let source: FileSource;
  try {
    source = await input.provider.open(input.path);
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw new RegistryError('source-failed', `opening ${input.path} failed: ${describe(error)}`, { cause: error });
  }
  if (source.sha256 !== undefined) return source;
  try {
    const sha256 = await sha256OfSource(source);
    return { ...source, read: source.read.bind(source), close: source.close?.bind(source), sha256 };
  } catch (error) {
    await Promise.resolve(source.close?.()).catch(() => {});
    throw new RegistryError('source-failed', `reading ${input.path} failed: ${describe(error)}`, { cause: error });
  }
});

/** Input of {@link listFiles}: a list as is, or a provider to ask. */
export interface ListFilesInput {
  files?: FileEntry[];
  provider?: FileProvider;
}

/** The list to announce, checked ({@link checkFileList}); rejects with a {@link RegistryError}. */
export const listFiles = fromPromise<FileEntry[], ListFilesInput>(async ({ input }) => {
  let files: FileEntry[];
  try {
    files = input.files ?? (input.provider ? await input.provider.list() : []);
  } catch (error) {
    if (error instanceof RegistryError) throw error;
    throw new RegistryError('source-failed', `listing the files failed: ${describe(error)}`, { cause: error });
  }
  const problem = checkFileList(files);
  if (problem) throw new RegistryError('invalid-files', problem);
  return files.map((f) => (f.sha256 === undefined ? { path: f.path, size: f.size } : { ...f }));
});

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
