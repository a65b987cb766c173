import { sha256Hex, sha256Stream } from '../../src/sha256.js';

/**
 * One file as the two ends of a transfer describe it. filedrop sends it as its
 * `response` data; registry and swarm build it from their own listings.
 */
export interface FileInfo {
  /** The file name, without any directory (the receiver sanitises it anyway). */
  name: string;
  /** Size in bytes. */
  size: number;
  /** MIME type; `''` when unknown. */
  type: string;
  /** SHA-256 of the content, 64 lowercase hex digits. When present the receiver checks it. */
  sha256?: string;
  /**
   * `'sha256'`: the SHA-256 was not known when the description went out (a
   * browser `File` is not read twice); the sender sends it in its trailer
   * ({@link DoneData}) once the last chunk is sent, and the receiver checks it
   * before it keeps the file. Clients that do not know this key ignore it.
   */
  trailer?: 'sha256';
}

/**
 * The trailer a sender sends once the last chunk is on the data channel
 * (filedrop's `done` data): the SHA-256 of what it sent.
 */
export interface DoneData {
  /** SHA-256 of the bytes sent, 64 lowercase hex digits. */
  sha256?: string;
}

export { sha256Hex, sha256Stream, type Sha256Stream } from '../../src/sha256.js';

/**
 * The file a sender offers. The machines never touch a file system: they
 * read through this. `read` may be called for any range, several times, by
 * several transfers at once.
 *
 * Implementations: {@link memorySource}, {@link blobSource} (browser `File`s),
 * `fileSource(path)` from `signalbox/fs` (Node, streaming).
 */
export interface FileSource extends FileInfo {
  /** Resolves with exactly `length` bytes from `offset` (the caller never reads past `size`). */
  read(offset: number, length: number): Promise<Uint8Array>;
  /** Called once when the sender that owns the source ends. Optional. */
  close?(): void | Promise<void>;
}

/**
 * Where a receiver writes the file. Calls never overlap: each waits for the
 * previous one to settle.
 *
 * Implementations: {@link memorySink}, `fileSink(path)` and
 * `directorySink(dir)` from `signalbox/fs` (Node, write to a temporary file,
 * rename on `close`).
 */
export interface FileSink {
  /** Appends `chunk`. The bytes may be kept: they are not reused. */
  write(chunk: Uint8Array): void | Promise<void>;
  /** All bytes were written and verified: commit them. */
  close(): void | Promise<void>;
  /**
   * The transfer failed: discard what was written. It may come after
   * `close` was called (a cancel racing the last write): a sink that already
   * committed keeps the file. A second call does nothing.
   */
  abort(reason: unknown): void | Promise<void>;
  /**
   * Resume support, optional (see {@link ResumableSink}): how many bytes
   * the sink holds now, from an earlier attempt at this same file or from
   * this transfer before its connection dropped.
   */
  size?(): number | Promise<number>;
  /** Resume support: `length` stored bytes from `offset`, to hash what is already there. */
  read?(offset: number, length: number): Promise<Uint8Array>;
  /** Resume support: drops every byte from `length` on; the next `write` appends at `length`. */
  truncate?(length: number): void | Promise<void>;
  /**
   * Resume support, optional even then: the transfer stopped for a reason
   * that says nothing against the bytes written (the connection or the peer
   * went away, a cancel, a timeout): close, but keep them so that a later
   * sink for the same file resumes (`fileSink` with `resume` keeps its
   * `.part`). Without it the receiver calls `abort`. Never called after
   * `close`.
   */
  keep?(reason: unknown): void | Promise<void>;
}

/**
 * A sink a receiver can resume into: it can say how much it holds, read it
 * back (the receiver hashes the whole file, the part already stored
 * included) and drop a tail (to a chunk boundary, or all of it when the
 * sender starts over).
 */
export type ResumableSink = FileSink & Required<Pick<FileSink, 'size' | 'read' | 'truncate'>>;

/** True when `sink` implements `size`, `read` and `truncate`: a receiver may resume into it. */
export function isResumable(sink: FileSink): sink is ResumableSink {
  return typeof sink.size === 'function' && typeof sink.read === 'function' && typeof sink.truncate === 'function';
}

/**
 * Aborts a failed transfer's sink (if it has one) with `reason`, and
 * settles however that goes: a sink's failure to clean up, thrown or
 * rejected, has nobody left to tell.
 */
export function abortQuietly(sink: FileSink | undefined, reason: unknown): Promise<void> {
  if (!sink) return Promise.resolve();
  return Promise.resolve()
    .then(() => sink.abort(reason))
    .then(
      () => {},
      () => {},
    );
}

/** What a receiver is given: a sink, or a function that opens one once the file is known (it may refuse by throwing). */
export type SinkOpener = FileSink | ((file: FileInfo) => FileSink | Promise<FileSink>);

/** SHA-256 of a whole source, read in `blockSize` pieces (never all at once). */
export async function sha256OfSource(source: Pick<FileSource, 'size' | 'read'>, blockSize = 1 << 20): Promise<string> {
  const hash = sha256Stream();
  for (let offset = 0; offset < source.size; offset += blockSize) {
    hash.update(await source.read(offset, Math.min(blockSize, source.size - offset)));
  }
  return hash.hex();
}

/** Options of {@link memorySource}. */
export interface MemorySourceInit {
  /** @default 'file' */
  name?: string;
  /** @default '' */
  type?: string;
  /**
   * `true` computes the digest, a string is announced as is (a wrong one makes
   * the receiver fail with `digest-mismatch`), `false` announces none.
   * @default true
   */
  sha256?: boolean | string;
}

/**
 * A {@link FileSource} over bytes in memory.
 *
 * @example
 * ```ts
 * const source = memorySource(new TextEncoder().encode('hello'), { name: 'hello.txt', type: 'text/plain' });
 * ```
 */
export function memorySource(bytes: Uint8Array, init: MemorySourceInit = {}): FileSource {
  const digest = init.sha256 ?? true;
  const source: FileSource = {
    name: init.name ?? 'file',
    size: bytes.byteLength,
    type: init.type ?? '',
    read: async (offset, length) => bytes.slice(offset, offset + length),
  };
  if (digest !== false) source.sha256 = digest === true ? sha256Hex(bytes) : digest;
  return source;
}

/** Something with the `Blob` methods a {@link blobSource} needs: a browser `File` or `Blob`, Node's `Blob`. */
export interface BlobLike {
  readonly size: number;
  readonly type: string;
  readonly name?: string;
  slice(start: number, end: number): { arrayBuffer(): Promise<ArrayBuffer> };
}

/**
 * A {@link FileSource} over a browser `File` (or any `Blob`), read slice by
 * slice. No digest unless `sha256` is passed (compute one with
 * {@link sha256OfSource}).
 *
 * @example
 * ```ts
 * input.onchange = () => start(blobSource(input.files[0]));
 * ```
 */
export function blobSource(blob: BlobLike, init: { name?: string; sha256?: string } = {}): FileSource {
  const source: FileSource = {
    name: init.name ?? blob.name ?? 'file',
    size: blob.size,
    type: blob.type,
    read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()),
  };
  if (init.sha256 !== undefined) source.sha256 = init.sha256;
  return source;
}

/** A {@link FileSink} that keeps the bytes in memory, and what became of it. */
export interface MemorySink extends FileSink {
  /** `open` until `close` (then `closed`) or `abort` (then `aborted`). */
  readonly state: 'open' | 'closed' | 'aborted';
  /** The bytes written so far, joined. */
  bytes(): Uint8Array<ArrayBuffer>;
  /** The `abort` reason. */
  readonly reason?: unknown;
}

/** Options of {@link memorySink}. */
export interface MemorySinkInit {
  /**
   * Bytes the sink holds from the start, as if an earlier attempt had
   * written them: a receiver resumes after them (the sink is a
   * {@link ResumableSink}).
   * @default none
   */
  stored?: Uint8Array;
}

/**
 * A {@link FileSink} in memory, for tests and small files. It is a
 * {@link ResumableSink}: a receiver whose connection drops resumes into it.
 *
 * @example
 * ```ts
 * const sink = memorySink();
 * const receiver = createActor(logic, { input: { code, sink } }).start();
 * // once done: sink.state === 'closed', sink.bytes()
 * ```
 */
export function memorySink(init: MemorySinkInit = {}): MemorySink & ResumableSink {
  let chunks: Uint8Array[] = init.stored ? [init.stored.slice()] : [];
  const length = () => chunks.reduce((n, c) => n + c.byteLength, 0);
  let state: MemorySink['state'] = 'open';
  let reason: unknown;
  const sink: MemorySink & ResumableSink = {
    get state() {
      return state;
    },
    get reason() {
      return reason;
    },
    write(chunk) {
      if (state !== 'open') throw new Error(`write() on a ${state} memory sink`);
      chunks.push(chunk.slice());
    },
    close() {
      if (state === 'open') state = 'closed';
    },
    abort(why) {
      if (state !== 'open') return;
      state = 'aborted';
      reason = why;
    },
    bytes() {
      const out = new Uint8Array(length());
      let at = 0;
      for (const chunk of chunks) {
        out.set(chunk, at);
        at += chunk.byteLength;
      }
      return out;
    },
    size: length,
    async read(offset, size) {
      // Joined once, so that reading a long prefix block by block stays linear.
      if (chunks.length > 1) chunks = [sink.bytes()];
      return (chunks[0] ?? new Uint8Array(0)).slice(offset, offset + size);
    },
    truncate(to) {
      if (state !== 'open') throw new Error(`truncate() on a ${state} memory sink`);
      chunks = [sink.bytes().slice(0, to)];
    },
  };
  return sink;
}

/**
 * A file name from a remote peer made safe to create in a directory: the
 * last path segment only, without control characters or characters Windows
 * refuses, never `''`, `.` or `..`, at most 255 characters.
 *
 * @example
 * ```ts
 * safeFileName('../../etc/passwd'); // 'passwd'
 * safeFileName('..'); // 'download'
 * ```
 */
export function safeFileName(name: string, fallback = 'download'): string {
  const last = name.split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  const cleaned = last.replace(/[\u0000-\u001f\u007f<>:"|?*]/g, '_').trim();
  if (cleaned === '' || /^\.+$/.test(cleaned)) return fallback;
  return cleaned.length > 255 ? cleaned.slice(cleaned.length - 255) : cleaned;
}
