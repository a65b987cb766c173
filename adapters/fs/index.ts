/**
 * Node file sources and sinks for filedrop (`signalbox/fs`): read a file in
 * ranges as a sender streams it, write one chunk at a time as a receiver
 * gets it. Nothing is ever held whole in memory. Node only.
 *
 * @packageDocumentation
 */
import { open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { safeFileName, type ResumableSink } from '../../machines/transfer/files.js';
import type { FileInfo } from '../../machines/transfer/files.js';

export { fileSource, type FileSourceInit } from './file-source.js';
export { directoryProvider, type DirectoryProviderInit } from './directory-source.js';
export { directoryStore, type DirectoryStoreInit } from './directory-store.js';

/** Options of {@link fileSink} and {@link directorySink}. */
export interface FileSinkInit {
  /** Replace a file that is already there. @default false (fail with EEXIST) */
  overwrite?: boolean;
  /**
   * The file being received (the sender's announcement), to resume it: a
   * `${path}.part` that an earlier attempt at this same file left (same
   * name and size, and the same SHA-256 when both announced one: recorded
   * in `${path}.part.json` when the `.part` was made) is opened where it
   * stopped instead of failing with EEXIST; a `.part` of another file, or
   * one without its record, still fails with EEXIST. The sink also
   * implements `keep`: a transfer that stops for a reason that says nothing
   * against the bytes (the connection or the peer went away, a cancel, a
   * timeout) leaves the `.part` and its record for the next attempt. The
   * receiver verifies the whole file at the end, the resumed part included.
   * @default undefined (no resume: an existing `.part` fails with EEXIST, and a failed transfer removes its `.part`)
   */
  resume?: FileInfo;
}

/** What `${path}.part.json` records of the file a `.part` belongs to. */
interface PartRecord {
  name: string;
  size: number;
  sha256?: string;
}

/**
 * A {@link FileSink} that writes to `${path}.part` and renames it to `path`
 * on `close()`, so a failed or cancelled transfer never leaves a partial
 * file under the real name (`abort()` deletes the `.part`; with `resume`,
 * `keep()` leaves it for the next attempt). It is a `ResumableSink`: a
 * receiver whose connection drops resumes into it.
 *
 * @throws EEXIST when `path` exists and `overwrite` is not set, or its `.part` exists and is not a part of `resume`'s file.
 *
 * @example
 * ```ts
 * const receiver = createActor(logic, { input: { code, sink: await fileSink('./out/photo.jpg') } });
 * ```
 */
export async function fileSink(path: string, init: FileSinkInit = {}): Promise<ResumableSink> {
  const temporary = `${path}.part`;
  const recordPath = `${temporary}.json`;
  if (!init.overwrite && (await exists(path))) {
    throw Object.assign(new Error(`EEXIST: ${path} already exists`), { code: 'EEXIST' });
  }
  const { resume } = init;
  let handle: FileHandle;
  /** Where the next write goes: the bytes the `.part` holds. */
  let position = 0;
  if (resume && !init.overwrite && (await exists(temporary))) {
    const record = await readRecord(recordPath);
    if (!record || !isPartOf(record, resume)) {
      throw Object.assign(
        new Error(
          `EEXIST: ${temporary} already exists and is ${record ? 'a part of another file' : 'not known to be a part of this one'}`,
        ),
        { code: 'EEXIST' },
      );
    }
    handle = await open(temporary, 'r+');
    position = (await handle.stat()).size;
  } else {
    handle = await open(temporary, init.overwrite ? 'w+' : 'wx+');
    if (resume) {
      const record: PartRecord = { name: resume.name, size: resume.size };
      if (resume.sha256 !== undefined) record.sha256 = resume.sha256;
      await writeFile(recordPath, JSON.stringify(record)).catch(async (error: unknown) => {
        await handle.close().catch(() => {});
        await rm(temporary, { force: true });
        throw error;
      });
    }
  }
  let state: 'open' | 'closing' | 'closed' | 'aborted' | 'kept' = 'open';
  /** Every operation runs after the previous one, so an abort never races a write. */
  let queue: Promise<unknown> = Promise.resolve();
  const then = <T>(op: () => Promise<T>): Promise<T> => {
    const next = queue.then(op);
    queue = next.catch(() => {});
    return next;
  };
  const removeRecord = () => (resume ? rm(recordPath, { force: true }) : Promise.resolve());
  const sink: ResumableSink = {
    write: (chunk) =>
      then(async () => {
        if (state !== 'open') throw new Error(`write() on a ${state} file sink`);
        let at = 0;
        while (at < chunk.byteLength) {
          const { bytesWritten } = await handle.write(chunk, at, chunk.byteLength - at, position);
          at += bytesWritten;
          position += bytesWritten;
        }
      }),
    size: () => then(async () => position),
    read: (offset, length) =>
      then(async () => {
        if (state !== 'open') throw new Error(`read() on a ${state} file sink`);
        const buffer = new Uint8Array(length);
        let filled = 0;
        while (filled < length) {
          const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
          if (bytesRead === 0) break;
          filled += bytesRead;
        }
        return filled === length ? buffer : buffer.subarray(0, filled);
      }),
    truncate: (length) =>
      then(async () => {
        if (state !== 'open') throw new Error(`truncate() on a ${state} file sink`);
        await handle.truncate(length);
        position = Math.min(position, length);
      }),
    close: () =>
      then(async () => {
        if (state !== 'open') return;
        state = 'closing';
        await handle.close();
        await rename(temporary, path);
        await removeRecord();
        state = 'closed';
      }),
    abort: () =>
      then(async () => {
        // After a close that failed (state still `closing`) the `.part` is still there: remove it.
        if (state === 'closed' || state === 'aborted') return;
        state = 'aborted';
        await handle.close().catch(() => {});
        await rm(temporary, { force: true });
        await removeRecord();
      }),
  };
  if (resume) {
    sink.keep = () =>
      then(async () => {
        if (state !== 'open') return;
        state = 'kept';
        await handle.close();
      });
  }
  return sink;
}

/** The record of a `.part`, or undefined when there is none or it cannot be read. */
async function readRecord(path: string): Promise<PartRecord | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(path, 'utf8'));
    if (typeof value !== 'object' || value === null) return undefined;
    const { name, size, sha256 } = value as Record<string, unknown>;
    if (typeof name !== 'string' || typeof size !== 'number') return undefined;
    return { name, size, ...(typeof sha256 === 'string' && { sha256 }) };
  } catch {
    return undefined;
  }
}

/** Same name and size, and the same SHA-256 when both have one (the end-to-end check covers the rest). */
function isPartOf(record: PartRecord, file: FileInfo): boolean {
  if (record.name !== file.name || record.size !== file.size) return false;
  return record.sha256 === undefined || file.sha256 === undefined || record.sha256 === file.sha256;
}

/**
 * A sink opener for a receiver: each file goes into `dir` under its
 * announced name, made safe ({@link safeFileName}: no directories, no `..`).
 * With `resume: true`, a `.part` an earlier attempt at the same file left
 * there is resumed (see {@link FileSinkInit.resume}).
 *
 * @example
 * ```ts
 * const receiver = createActor(logic, { input: { code, sink: directorySink('./downloads', { resume: true }) } });
 * ```
 */
export function directorySink(
  dir: string,
  init: Omit<FileSinkInit, 'resume'> & { resume?: boolean } = {},
): (file: FileInfo) => Promise<ResumableSink> {
  const { resume, ...rest } = init;
  return (file) => fileSink(join(dir, safeFileName(file.name)), { ...rest, ...(resume && { resume: file }) });
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
