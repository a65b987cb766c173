/**
 * Node file sources and sinks for filedrop (`signalbox/fs`): read a file in
 * ranges as a sender streams it, write one chunk at a time as a receiver
 * gets it. Nothing is ever held whole in memory. Node only.
 *
 * @packageDocumentation
 */
import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { safeFileName, sha256OfSource, type FileSink, type FileSource } from '../../machines/filedrop/files.js';
import type { FileInfo } from '../../machines/filedrop/protocol.js';

export { directoryProvider, type DirectoryProviderInit } from './directory-source.js';
export { directoryStore, type DirectoryStoreInit } from './directory-store.js';

/** Options of {@link fileSource}. */
export interface FileSourceInit {
  /** The name the receiver sees. @default the file's base name */
  name?: string;
  /** The MIME type. @default guessed from the extension, else 'application/octet-stream' */
  type?: string;
  /**
   * `true` reads the file once to compute its SHA-256 (streaming, 1 MiB at a
   * time), so receivers can check it; a string is announced as is; `false`
   * announces none (receivers then check the size only).
   * @default true
   */
  sha256?: boolean | string;
}

/**
 * A {@link FileSource} over a file on disk. It keeps one file handle open
 * until `close()` (the sender calls it when it ends) and reads only the
 * ranges asked for.
 *
 * @throws the `fs` error (ENOENT, EISDIR, …) when the file cannot be opened.
 *
 * @example
 * ```ts
 * const source = await fileSource('./holiday.jpg');
 * const sender = createActor(logic, { input: { source } }).start();
 * ```
 */
export async function fileSource(path: string, init: FileSourceInit = {}): Promise<FileSource> {
  const info = await stat(path);
  if (!info.isFile()) throw new Error(`${path} is not a regular file`);
  const handle = await open(path, 'r');
  let closed: Promise<void> | undefined;
  const source: FileSource = {
    name: init.name ?? basename(path),
    size: info.size,
    type: init.type ?? guessType(path),
    async read(offset, length) {
      const buffer = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return filled === length ? buffer : buffer.subarray(0, filled);
    },
    close: () => (closed ??= handle.close()),
  };
  const digest = init.sha256 ?? true;
  try {
    if (digest === true) source.sha256 = await sha256OfSource(source);
    else if (typeof digest === 'string') source.sha256 = digest;
  } catch (error) {
    await source.close!();
    throw error;
  }
  return source;
}

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
        if (state !== 'open') return;
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

const TYPES: Record<string, string> = {
  '.txt': 'text/plain',
  '.html': 'text/html',
  '.css': 'text/css',
  '.js': 'text/javascript',
  '.json': 'application/json',
  '.pdf': 'application/pdf',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.mp3': 'audio/mpeg',
  '.mp4': 'video/mp4',
  '.webm': 'video/webm',
};

function guessType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? 'application/octet-stream';
}
