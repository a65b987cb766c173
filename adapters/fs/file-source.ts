/** A Node {@link FileSource} over a file on disk (`signalbox/fs`). */
import { open, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { basename, extname } from 'node:path';
import { sha256OfSource, type FileSource } from '../../machines/transfer/files.js';

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
export function fileSource(path: string, init: FileSourceInit = {}): Promise<FileSource> {
  return openFileSource(path, init);
}

/**
 * @internal {@link fileSource}, with `check` run on the opened file before
 * anything is read from it (it may throw: the handle is closed and the error
 * passes through), and a digest it may already know for what was opened
 * (`known`: computed when it returns nothing). The size is the opened file's,
 * so a file replaced between a caller's checks and the open is judged as what
 * was opened.
 */
export async function openFileSource(
  path: string,
  init: FileSourceInit = {},
  check?: (handle: FileHandle, info: Stats) => Promise<void>,
  known?: (info: Stats) => string | undefined,
): Promise<FileSource> {
  const handle = await open(path, 'r');
  let info: Stats;
  try {
    info = await handle.stat();
    await check?.(handle, info);
    if (!info.isFile()) throw new Error(`${path} is not a regular file`);
  } catch (error) {
    await handle.close();
    throw error;
  }
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
  const digest = init.sha256 ?? known?.(info) ?? true;
  try {
    if (digest === true) source.sha256 = await sha256OfSource(source);
    else if (typeof digest === 'string') source.sha256 = digest;
  } catch (error) {
    await source.close!();
    throw error;
  }
  return source;
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
