/**
 * Node file sources and sinks for filedrop (`signalbox/fs`): read a file in
 * ranges as a sender streams it, write one chunk at a time as a receiver
 * gets it. Nothing is ever held whole in memory. Node only.
 *
 * @packageDocumentation
 */
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { safeFileName, type FileSink } from '../../machines/transfer/files.js';
import type { FileInfo } from '../../machines/transfer/files.js';

export { fileSource, type FileSourceInit } from './file-source.js';
export { directoryProvider, type DirectoryProviderInit } from './directory-source.js';
export { directoryStore, type DirectoryStoreInit } from './directory-store.js';

/** Options of {@link fileSink} and {@link directorySink}. */
export interface FileSinkInit {
  /** Replace a file that is already there. @default false (fail with EEXIST) */
  overwrite?: boolean;
}

/**
 * A {@link FileSink} that writes to `${path}.part` and renames it to `path`
 * on `close()`, so a failed or cancelled transfer never leaves a partial
 * file under the real name (`abort()` deletes the `.part`).
 *
 * @throws EEXIST when `path` (or its `.part`) exists and `overwrite` is not set.
 *
 * @example
 * ```ts
 * const receiver = createActor(logic, { input: { code, sink: await fileSink('./out/photo.jpg') } });
 * ```
 */
export async function fileSink(path: string, init: FileSinkInit = {}): Promise<FileSink> {
  const temporary = `${path}.part`;
  if (!init.overwrite && (await exists(path))) {
    throw Object.assign(new Error(`EEXIST: ${path} already exists`), { code: 'EEXIST' });
  }
  const handle: FileHandle = await open(temporary, init.overwrite ? 'w' : 'wx');
  let state: 'open' | 'closing' | 'closed' | 'aborted' = 'open';
  /** Every operation runs after the previous one, so an abort never races a write. */
  let queue: Promise<unknown> = Promise.resolve();
  const then = <T>(op: () => Promise<T>): Promise<T> => {
    const next = queue.then(op);
    queue = next.catch(() => {});
    return next;
  };
  return {
    write: (chunk) =>
      then(async () => {
        if (state !== 'open') throw new Error(`write() on a ${state} file sink`);
        let at = 0;
        while (at < chunk.byteLength) at += (await handle.write(chunk, at, chunk.byteLength - at)).bytesWritten;
      }),
    close: () =>
      then(async () => {
        if (state !== 'open') return;
        state = 'closing';
        await handle.close();
        await rename(temporary, path);
        state = 'closed';
      }),
    abort: () =>
      then(async () => {
        // After a close that failed (state still `closing`) the `.part` is still there: remove it.
        if (state === 'closed' || state === 'aborted') return;
        state = 'aborted';
        await handle.close().catch(() => {});
        await rm(temporary, { force: true });
      }),
  };
}

/**
 * A sink opener for a receiver: each file goes into `dir` under its
 * announced name, made safe ({@link safeFileName}: no directories, no `..`).
 *
 * @example
 * ```ts
 * const receiver = createActor(logic, { input: { code, sink: directorySink('./downloads') } });
 * ```
 */
export function directorySink(dir: string, init: FileSinkInit = {}): (file: FileInfo) => Promise<FileSink> {
  return (file) => fileSink(join(dir, safeFileName(file.name)), init);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
