import { fromCallback, fromPromise } from 'xstate';
import { DEFAULT_HIGH_WATER_MARK, sendWithBackpressure } from '../../src/backpressure.js';
import { ErrorCode, TransportError } from '../../src/errors.js';
import type { Transport } from '../../src/transport.js';
import { CHUNK_SIZE, decodeChunk, encodeChunk } from './chunks.js';
import {
  isResumable,
  sha256Stream,
  type DoneData,
  type FileInfo,
  type FileSink,
  type FileSource,
  type SinkOpener,
} from './files.js';

/**
 * Why a file request ended without success, in the terms filedrop and
 * registry share (each adds reasons of its own): the reason part of their
 * errors. {@link fileTransferCodes} gives each its library-wide code.
 */
export type FileTransferFailure =
  /** `cancel` was sent to the machine, or its client left. */
  | 'cancelled'
  /** No peer has that code or id. */
  | 'no-such-peer'
  /** The other side left the server, or its data channel closed mid-transfer. */
  | 'peer-gone'
  /** The WebRTC connection failed (in filedrop: and the ICE restarts ran out). */
  | 'rtc-failed'
  /** A step took longer than its timeout. */
  | 'timeout'
  /** More or fewer bytes than announced. */
  | 'size-mismatch'
  /** The SHA-256 of the bytes is not the one announced. */
  | 'digest-mismatch'
  /** The file source could not be read. */
  | 'source-failed'
  /** The file sink could not be opened or written. */
  | 'sink-failed'
  /** The signalling connection closed or could not be opened. */
  | 'signalling-lost'
  /** The server or the peer sent something the protocol does not allow. */
  | 'protocol';

/** The library-wide {@link ErrorCode} of each {@link FileTransferFailure}. */
export const fileTransferCodes: Readonly<Record<FileTransferFailure, ErrorCode>> = {
  cancelled: ErrorCode.Cancelled,
  'no-such-peer': ErrorCode.PeerGone,
  'peer-gone': ErrorCode.PeerGone,
  'rtc-failed': ErrorCode.RtcFailed,
  timeout: ErrorCode.Timeout,
  'size-mismatch': ErrorCode.Integrity,
  'digest-mismatch': ErrorCode.Integrity,
  'source-failed': ErrorCode.Io,
  'sink-failed': ErrorCode.Io,
  'signalling-lost': ErrorCode.TransportClosed,
  protocol: ErrorCode.InvalidField,
};

/**
 * Why an upload stopped on its own: the source could not be read, or the data
 * channel closed under it.
 */
export type UploadFailure = Extract<FileTransferFailure, 'source-failed' | 'peer-gone'>;

/**
 * Why a download failed: a malformed or out-of-order frame, more or fewer bytes
 * than announced, a SHA-256 that does not match, or a sink that would not write.
 */
export type DownloadFailure = Extract<
  FileTransferFailure,
  'protocol' | 'size-mismatch' | 'digest-mismatch' | 'sink-failed'
>;

/**
 * Default {@link UploadInput.window}: 32 MiB. A receiver whose sink is slower
 * than the network holds at most this much in memory; at the receiver's
 * 250 ms progress interval it caps a transfer at about 128 MiB/s.
 */
export const DEFAULT_WINDOW = 32 * 1024 * 1024;

/** Input of the {@link upload} actor. */
export interface UploadInput {
  transport: Transport;
  source: FileSource;
  /** Frames are sent while the channel buffers at most this much. @default 262144 (256 KiB) */
  highWaterMark?: number;
  /** Bytes read from the source at a time (rounded up to a multiple of the chunk size). @default 262144 */
  readSize?: number;
  /**
   * Where to start: bytes the receiver already holds, a multiple of
   * `CHUNK_SIZE` below `source.size` (anything else is taken as 0). The
   * first frame is chunk `offset / CHUNK_SIZE`, as if the chunks before it
   * had been sent. With `hash`, the bytes before `offset` are read and
   * hashed first, so the digest is still of the whole file.
   * @default 0
   */
  offset?: number;
  /**
   * Most bytes sent beyond what the receiver last reported it stored
   * (`upload.ack`). It applies once the receiver has reported anything at
   * all (`acked` in the input, or a first `upload.ack`): a receiver that
   * never sends `progress` is not held up.
   * @default DEFAULT_WINDOW (32 MiB)
   */
  window?: number;
  /** What the receiver had reported before the upload started, if anything. @default undefined (nothing yet) */
  acked?: number;
  /**
   * Hash the bytes as they are read and report their SHA-256 with
   * `upload.done`: for a source that did not know its digest up front, so
   * that the file is read once. @default false
   */
  hash?: boolean;
}

/** What the {@link upload} actor reports to its parent. */
export type UploadEvent =
  /**
   * Every chunk was handed to the data channel (not yet received: wait for
   * the receiver's `progress`). `sha256`: of the bytes sent, with `hash`.
   */
  { type: 'upload.done'; sha256?: string } | { type: 'upload.failed'; reason: UploadFailure; message: string };

/** What the {@link upload} actor takes: the receiver stored `received` bytes (its `progress`). */
export type UploadCommand = { type: 'upload.ack'; received: number };

/**
 * Sends a file over an open data channel: reads the source `readSize` bytes
 * at a time and sends it as chunks (4-byte big-endian sequence number, at
 * most 16 KiB of data) with {@link sendWithBackpressure}, so the channel's
 * buffer stays under `highWaterMark`. A data channel cannot stop its
 * receiver's reads, so the receiver's memory is bounded here: once the
 * receiver reports progress, the upload stays at most `window` bytes ahead
 * of what it last reported stored (`upload.ack`). Stopping it stops between
 * chunks.
 */
export const upload = fromCallback<UploadCommand, UploadInput>(({ input, sendBack, receive }) => {
  let stopped = false;
  const report = (event: UploadEvent) => {
    if (!stopped) sendBack(event);
  };
  const { transport, source } = input;
  const highWaterMark = input.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  // Whole chunks per read, so that chunk n always carries the bytes from n × CHUNK_SIZE (what a resume relies on).
  const readSize = Math.max(1, Math.ceil((input.readSize ?? 16 * CHUNK_SIZE) / CHUNK_SIZE)) * CHUNK_SIZE;
  const start = isResumeOffset(input.offset, source.size) ? input.offset : 0;
  const window = Math.max(CHUNK_SIZE, input.window ?? DEFAULT_WINDOW);
  /** What the receiver reported stored; undefined until it reports anything. */
  let acked = input.acked;
  /** Resolves the wait for an ack, if the upload is waiting. */
  let wake: (() => void) | undefined;
  receive((event) => {
    if (event?.type !== 'upload.ack' || !Number.isFinite(event.received)) return;
    acked = Math.max(acked ?? 0, event.received);
    wake?.();
  });
  /** Waits until `end` (bytes sent once the next chunk is) is within the window. */
  const roomFor = async (end: number) => {
    while (!stopped && acked !== undefined && end - acked > window) {
      await new Promise<void>((resolve) => (wake = resolve));
      wake = undefined;
    }
  };

  const hash = input.hash ? sha256Stream() : undefined;

  void (async () => {
    let seq = start / CHUNK_SIZE;
    // With `hash`, the bytes before `start` (the receiver has them) are read and hashed, not sent:
    // the digest in `done` is of the whole file all the same.
    for (let offset = hash ? 0 : start; offset < source.size;) {
      const length = Math.min(readSize, (offset < start ? start : source.size) - offset);
      let block: Uint8Array;
      try {
        block = await source.read(offset, length);
      } catch (error) {
        report({
          type: 'upload.failed',
          reason: 'source-failed',
          message: `reading the file failed: ${describe(error)}`,
        });
        return;
      }
      if (stopped) return;
      if (block.byteLength !== length) {
        report({
          type: 'upload.failed',
          reason: 'source-failed',
          message: `the file gave ${block.byteLength} bytes at ${offset} instead of ${length}: did it change?`,
        });
        return;
      }
      hash?.update(block);
      for (let at = 0; offset >= start && at < length; at += CHUNK_SIZE) {
        const data = block.subarray(at, at + CHUNK_SIZE);
        const end = offset + at + data.byteLength;
        // Checked here first, so that the common case (within the window) costs no await.
        if (acked !== undefined && end - acked > window) await roomFor(end);
        if (stopped) return;
        try {
          await sendWithBackpressure(transport, encodeChunk(seq++, data), highWaterMark);
        } catch (error) {
          report({
            type: 'upload.failed',
            reason: error instanceof TransportError ? 'peer-gone' : 'source-failed',
            message: `the data channel refused a chunk: ${describe(error)}`,
          });
          return;
        }
        if (stopped) return;
      }
      offset += length;
    }
    report(hash ? { type: 'upload.done', sha256: hash.hex() } : { type: 'upload.done' });
  })();

  return () => {
    stopped = true;
    wake?.();
  };
});

/**
 * True when `offset` can start a resumed transfer of a `size`-byte file: a
 * whole number of chunks, below `size` (at least one chunk is always sent,
 * and its sequence number tells the receiver where the sender started).
 */
export function isResumeOffset(offset: unknown, size: number): offset is number {
  return (
    typeof offset === 'number' &&
    Number.isSafeInteger(offset) &&
    offset >= 0 &&
    offset % CHUNK_SIZE === 0 &&
    (offset === 0 || offset < size)
  );
}

/** Input of the {@link download} actor. */
export interface DownloadInput {
  transport: Transport;
  sink: FileSink;
  file: FileInfo;
  /**
   * Bytes the sink holds already, which the receiver asked the sender to
   * skip (see {@link resumeOffset}); the sink must then be a
   * `ResumableSink`. The first chunk says what the sender did: chunk
   * `offset / CHUNK_SIZE` (it resumed: the stored bytes are read back and
   * hashed, so the digest covers the whole file) or chunk 0 (it starts
   * over, as a sender that does not know the offset does: the sink is
   * truncated to 0).
   * @default 0
   */
  offset?: number;
  /** Report `download.progress` each time this many more bytes were written. @default 262144 */
  reportEvery?: number;
  /** The sender's `done`, if it came before the download started (it carries the digest `file.trailer` promised). */
  trailer?: DoneData;
}

/** What the {@link download} actor takes: the sender's `done` arrived (with the digest, when `file.trailer` promised one). */
export type DownloadCommand = { type: 'download.trailer'; trailer: DoneData };

/** What the {@link download} actor reports to its parent. */
export type DownloadEvent =
  /** `received` bytes are written to the sink (not only arrived): what the sender paces by. */
  | { type: 'download.progress'; received: number }
  /**
   * With an `offset`: the first chunk came, and the sender started at
   * `offset` (it resumed) or at 0 (it starts over; the sink is emptied).
   */
  | { type: 'download.started'; offset: number }
  /** Every byte is in: the data channel is no longer needed (the sink may still be writing). */
  | { type: 'download.arrived'; received: number }
  /**
   * Every byte arrived, matched the size (and the digest, when `verified`),
   * was written, and the sink was closed. `sha256` is of the bytes received;
   * `verified` is false when the sender gave no digest to compare it with.
   */
  | { type: 'download.done'; received: number; sha256: string; verified: boolean }
  | {
      type: 'download.failed';
      reason: DownloadFailure;
      message: string;
      received: number;
    };

/**
 * Receives a file from an open data channel: checks each chunk's sequence
 * number, hashes the bytes as they come (SHA-256, incrementally), writes
 * them to the sink one write at a time, and once `file.size` bytes are in,
 * compares the digest and closes the sink. The digest is `file.sha256`, or,
 * when `file.trailer` is `'sha256'`, the one in the sender's `done`
 * (`download.trailer`), which it waits for; without either it checks the
 * size only (`verified: false`). It never aborts the sink: its
 * parent does, when the transfer fails. Chunks that arrive while the sink
 * is busy wait in memory; `download.progress` counts the bytes written, so
 * that the sender, which paces itself by the `progress` it is sent, keeps
 * that queue under its window (see {@link upload}).
 */
export const download = fromCallback<DownloadCommand, DownloadInput>(({ input, sendBack, receive }) => {
  const { transport, sink, file } = input;
  /** The sender's `done`, once it came. */
  let trailer = input.trailer;
  /** Every byte is written and the digest to compare is in the sender's `done`, which has not come yet. */
  let verify: (() => void) | undefined;
  receive((event) => {
    if (event?.type !== 'download.trailer' || trailer) return;
    trailer = event.trailer;
    verify?.();
  });
  const reportEvery = input.reportEvery ?? 256 * 1024;
  /** What the sink held at the start and the sender was asked to skip (0 unless resuming). */
  const asked = input.offset !== undefined && isResumeOffset(input.offset, file.size) ? input.offset : 0;
  /** Hashes the file from byte 0: bytes written (or, resuming, read back) go in, in order. */
  let hash = sha256Stream();
  let stopped = false;
  /** Every byte is in: no more frames are taken. */
  let complete = false;
  /** The outcome was reported. */
  let settled = false;
  /** The first chunk, which says where the sender started, is still to come. */
  let first = true;
  let expected = asked / CHUNK_SIZE;
  let received = asked;
  /** Bytes the sink has taken. */
  let written = asked;
  let reported = asked;
  let writes: Promise<void> = Promise.resolve();

  const settle = (event: Exclude<DownloadEvent, { type: 'download.progress' }>) => {
    if (settled) return;
    settled = true;
    off();
    if (!stopped) sendBack(event);
  };
  const fail = (reason: Extract<DownloadEvent, { type: 'download.failed' }>['reason'], message: string) =>
    settle({ type: 'download.failed', reason, message, received });
  /** Compares the digest (if there is one to compare with) and closes the sink. */
  const conclude = async () => {
    verify = undefined;
    if (settled || stopped) return;
    const digest = hash.hex();
    const expected = file.sha256 ?? (file.trailer === 'sha256' ? trailer?.sha256 : undefined);
    if (file.sha256 === undefined && file.trailer === 'sha256' && expected === undefined) {
      fail('protocol', 'done: `data.sha256` is missing, but the response promised it (trailer: sha256)');
      return;
    }
    if (expected !== undefined && digest !== expected) {
      fail('digest-mismatch', `SHA-256 of the ${received} bytes is ${digest}, the sender announced ${expected}`);
      return;
    }
    try {
      await sink.close();
    } catch (error) {
      fail('sink-failed', `closing failed: ${describe(error)}`);
      return;
    }
    settle({ type: 'download.done', received, sha256: digest, verified: expected !== undefined });
  };
  const finish = () => {
    complete = true;
    off();
    if (!stopped) sendBack({ type: 'download.arrived', received } satisfies DownloadEvent);
    // After a failed write the download has settled already: nothing more to do.
    void writes.then(() => {
      if (settled || stopped) return;
      const waiting = file.sha256 === undefined && file.trailer === 'sha256' && trailer === undefined;
      if (waiting) verify = () => void conclude();
      else void conclude();
    });
  };

  /** The sender resumed: the bytes already stored go into the hash first, read back from the sink. */
  const hashStored = async () => {
    if (stopped || settled || !isResumable(sink)) return;
    try {
      for (let at = 0; at < asked && !stopped && !settled; at += READ_BACK) {
        const length = Math.min(READ_BACK, asked - at);
        const block = await sink.read(at, length);
        if (block.byteLength !== length) throw new Error(`${block.byteLength} bytes at ${at} instead of ${length}`);
        hash.update(block);
      }
    } catch (error) {
      fail('sink-failed', `reading back the ${asked} bytes already stored failed: ${describe(error)}`);
    }
  };
  /** The sender starts over (it does not know about offsets): so does the sink. */
  const startOver = async () => {
    if (stopped || settled || !isResumable(sink)) return;
    try {
      await sink.truncate(0);
    } catch (error) {
      fail('sink-failed', `emptying the sink to start over failed: ${describe(error)}`);
      return;
    }
    hash = sha256Stream();
    written = 0;
    reported = 0;
    if (!stopped && !settled) sendBack({ type: 'download.progress', received: 0 } satisfies DownloadEvent);
  };

  const off = transport.on('message', (frame) => {
    if (complete || settled || stopped) return;
    if (typeof frame === 'string') return fail('protocol', 'a text frame on the data channel: only chunks may come');
    const chunk = decodeChunk(frame);
    if ('invalid' in chunk) return fail('protocol', chunk.invalid);
    if (first && asked > 0) {
      // Chunk n carries the bytes from n × CHUNK_SIZE: the first one says where the sender started.
      if (chunk.seq === 0) {
        expected = 0;
        received = 0;
        writes = writes.then(startOver);
      } else if (chunk.seq === expected) {
        writes = writes.then(hashStored);
      } else {
        return fail('protocol', `chunk ${chunk.seq} arrived where ${expected} (resuming) or 0 was due`);
      }
      if (!stopped) sendBack({ type: 'download.started', offset: received } satisfies DownloadEvent);
    }
    first = false;
    if (chunk.seq !== expected) return fail('protocol', `chunk ${chunk.seq} arrived where ${expected} was due`);
    expected++;
    if (received + chunk.data.byteLength > file.size) {
      return fail('size-mismatch', `more than the announced ${file.size} bytes arrived`);
    }
    received += chunk.data.byteLength;
    const data = chunk.data;
    writes = writes.then(async () => {
      if (stopped || settled) return;
      hash.update(data);
      try {
        await sink.write(data);
      } catch (error) {
        fail('sink-failed', `writing failed: ${describe(error)}`);
        return;
      }
      written += data.byteLength;
      if (written - reported >= reportEvery || written === file.size) {
        reported = written;
        if (!stopped && !settled) sendBack({ type: 'download.progress', received: written } satisfies DownloadEvent);
      }
    });
    if (received === file.size) finish();
  });

  if (file.size === 0) finish();

  return () => {
    stopped = true;
    off();
  };
});

/** Bytes of a resumed file read back from the sink at a time, to hash them. */
const READ_BACK = 1 << 20;

/** Input of the {@link resumeOffset} actor. */
export interface ResumeOffsetInput {
  sink: FileSink;
  file: FileInfo;
}

/**
 * Where a receiver asks the sender to start: the bytes its sink holds (an
 * earlier attempt's, or this transfer's before its connection dropped),
 * rounded down to whole chunks and kept below the file's size, so that at
 * least one chunk comes and its sequence number shows whether the sender
 * resumed. The sink is truncated to that point. 0 for a sink that is not
 * a `ResumableSink`.
 */
export const resumeOffset = fromPromise<number, ResumeOffsetInput>(async ({ input }) => {
  const { sink, file } = input;
  if (!isResumable(sink) || file.size === 0) return 0;
  const stored = await sink.size();
  const offset = Math.min(Math.floor(stored / CHUNK_SIZE), Math.floor((file.size - 1) / CHUNK_SIZE)) * CHUNK_SIZE;
  if (stored !== offset) await sink.truncate(offset);
  return offset;
});

/** Input of the {@link openSink} actor. */
export interface OpenSinkInput {
  sink: SinkOpener;
  file: FileInfo;
}

/** Opens the receiver's sink for the announced file (the opener may refuse by throwing). */
export const openSink = fromPromise<FileSink, OpenSinkInput>(async ({ input }) =>
  typeof input.sink === 'function' ? await input.sink(input.file) : input.sink,
);

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
