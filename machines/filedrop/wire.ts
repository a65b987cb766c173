/**
 * Reading what another client sent. The server relays `data` as it came
 * (any JSON), so the machine that receives a message reads it here, and
 * takes every form the seed's clients send: an SDP as a string or
 * `{ type, sdp }`, a candidate as an object, a string or `null`, a file as
 * `{ name, size, type?, sha256? }` or `{ fileName, fileSize }`. What cannot be
 * read is a {@link Fault} naming the field; the machine ends with
 * `protocol`.
 */
import type { RtcIceCandidateInit, RtcSessionDescription } from '../../src/rtc/types.js';
import {
  readCandidate as readIce,
  readDescription as readSdp,
  wireProblem,
  type WireRead,
} from '../../src/rtc/wire.js';
import type { DoneData, FileInfo } from './protocol.js';

/** Why a message's `data` could not be read: `"offer: `data.sdp` must be …"`. */
export interface Fault {
  fault: string;
}

/** A value read from the wire, or why not. */
export type Reading<T> = { value: T } | Fault;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const fault = (event: string, field: string, must: string): Fault => ({ fault: `${event}: \`${field}\` ${must}` });

/** Longest file name taken from a peer, in characters. */
const MAX_NAME = 1024;
/** Longest MIME type taken from a peer. */
const MAX_TYPE = 255;
/** Longest refusal reason taken from a peer. */
const MAX_REASON = 64;

const SHA256 = /^[0-9a-fA-F]{64}$/;

/** A read of the shared reader (`src/rtc/wire.ts`) as a {@link Reading} whose fault names the message. */
const asReading = <T>(event: string, read: WireRead<T>): Reading<T> =>
  read.problem === undefined ? { value: read.value } : { fault: `${event}: ${wireProblem(read)}` };

/**
 * An SDP offer or answer: `{ type, sdp }` (what `pc.localDescription`
 * serialises to) or the SDP text alone, read as every protocol reads one
 * (`src/rtc/wire.ts`). A `type` other than the expected one is a fault; a
 * missing one is taken as the expected one.
 *
 * @example
 * ```ts
 * readDescription('v=0…', 'offer'); // { value: { type: 'offer', sdp: 'v=0…' } }
 * readDescription({ type: 'answer', sdp: 'v=0…' }, 'offer'); // { fault: 'offer: `data.type` is "answer", expected "offer"' }
 * ```
 */
export const readDescription = <T extends 'offer' | 'answer'>(
  data: unknown,
  type: T,
): Reading<RtcSessionDescription & { type: T }> => asReading(type, readSdp(data, type, 'data'));

/**
 * The `offset` of a receiver's `offer` (not in the seed; its senders ignore
 * it): present, this offer opens a fresh connection whose transfer starts
 * at that byte (the receiver holds the bytes before it). Read as a number
 * when it is one; whether it can start this file (whole chunks, below the
 * size) the sender decides, and it sends from 0 when not. `undefined`
 * when absent: the connection's first offer starts at 0, and any later
 * one is an ICE restart.
 *
 * @example
 * ```ts
 * readOffset({ type: 'offer', sdp: 'v=0…', offset: 65536 }); // 65536
 * readOffset('v=0…'); // undefined
 * ```
 */
export function readOffset(data: unknown): number | undefined {
  if (!isRecord(data) || typeof data.offset !== 'number' || !Number.isFinite(data.offset)) return undefined;
  return data.offset;
}

/**
 * An ICE candidate, read as every protocol reads one (`src/rtc/wire.ts`):
 * an `RTCIceCandidateInit` object, or the candidate line alone (taken as the
 * first m-line's, the data channel's). `null`, nothing, `''` and an init
 * without a candidate line are the end of candidates, read as `null`: there
 * is nothing to add.
 *
 * @example
 * ```ts
 * readCandidate(null); // { value: null }
 * readCandidate('candidate:1 1 udp 1 127.0.0.1 5000 typ host'); // { value: { candidate: '…', sdpMLineIndex: 0 } }
 * ```
 */
export const readCandidate = (data: unknown): Reading<RtcIceCandidateInit | null> =>
  asReading('candidate', readIce(data, 'data'));

/** What a `response` says: the file, or that the sender refuses or withdraws it. */
export type ResponseReading = { file: FileInfo } | { refusal: string };

/**
 * A `response`: `{ error }` (a refusal), this library's
 * `{ name, size, type?, sha256?, trailer? }`, or the original's
 * `{ fileName, fileSize }`. Other keys are ignored; a `sha256` is
 * lower-cased; a `trailer` other than `'sha256'` is ignored.
 *
 * @example
 * ```ts
 * readResponse({ fileName: 'a.txt', fileSize: 5 }); // { value: { file: { name: 'a.txt', size: 5, type: '' } } }
 * readResponse({ error: 'busy' }); // { value: { refusal: 'busy' } }
 * ```
 */
export function readResponse(data: unknown): Reading<ResponseReading> {
  if (!isRecord(data)) return fault('response', 'data', 'must be a file { name, size } or { fileName, fileSize }');
  if ('error' in data && !('name' in data) && !('fileName' in data)) {
    const reason = data.error;
    if (typeof reason !== 'string' || reason === '' || reason.length > MAX_REASON) {
      return fault('response', 'data.error', `must be a reason of 1 to ${MAX_REASON} characters`);
    }
    return { value: { refusal: reason } };
  }
  const original = !('name' in data) && 'fileName' in data;
  const [nameKey, sizeKey] = original ? ['fileName', 'fileSize'] : ['name', 'size'];
  const name = data[nameKey];
  const size = data[sizeKey];
  if (typeof name !== 'string' || name === '' || name.length > MAX_NAME) {
    return fault('response', `data.${nameKey}`, `must be a file name of 1 to ${MAX_NAME} characters`);
  }
  if (!Number.isSafeInteger(size) || (size as number) < 0) {
    return fault('response', `data.${sizeKey}`, 'must be a whole number of bytes ≥ 0');
  }
  const type = data.type ?? data.fileType ?? '';
  if (typeof type !== 'string' || type.length > MAX_TYPE) {
    return fault('response', `data.${'type' in data ? 'type' : 'fileType'}`, `must be a string of at most ${MAX_TYPE}`);
  }
  const file: FileInfo = { name, size: size as number, type };
  if (data.sha256 !== undefined) {
    if (typeof data.sha256 !== 'string' || !SHA256.test(data.sha256)) {
      return fault('response', 'data.sha256', 'must be 64 hex digits');
    }
    file.sha256 = data.sha256.toLowerCase();
  } else if (data.trailer === 'sha256') {
    file.trailer = 'sha256';
  }
  return { value: { file } };
}

/** What a sender reads of a `progress`: anything it cannot read is left out. */
export interface ProgressReading {
  /** Bytes the receiver has stored, when it says so as a number ≥ 0. */
  received?: number;
  /** The receiver has the whole file. */
  done?: true;
  /** The receiver gave up, for this reason. */
  error?: string;
}

/**
 * A `progress`. The seed leaves its shape open (`string, any`) and other
 * clients use it only to draw a bar, so a sender reads what it can and
 * ignores the rest; it never fails a transfer over a report's shape:
 * `received` (a number ≥ 0), `done: true`, and `error` (a reason string).
 *
 * @example
 * ```ts
 * readProgress({ received: 65536 }); // { received: 65536 }
 * readProgress(0.5); // {}
 * ```
 */
export function readProgress(data: unknown): ProgressReading {
  if (!isRecord(data)) return {};
  const reading: ProgressReading = {};
  const { received, done, error } = data;
  if (typeof received === 'number' && Number.isFinite(received) && received >= 0) reading.received = received;
  if (done === true) reading.done = true;
  if (typeof error === 'string' && error !== '') reading.error = error.slice(0, MAX_REASON);
  return reading;
}

/**
 * A `done`. The original's carries nothing; a signalbox sender's carries
 * `{ sha256 }`. Anything but an object is read as no data; a `sha256` that
 * is not 64 hex digits is a fault (it would be checked against the file).
 *
 * @example
 * ```ts
 * readDone(undefined); // { value: {} }
 * readDone({ sha256: 'AB…' }); // { value: { sha256: 'ab…' } }
 * ```
 */
export function readDone(data: unknown): Reading<DoneData> {
  if (!isRecord(data) || data.sha256 === undefined) return { value: {} };
  if (typeof data.sha256 !== 'string' || !SHA256.test(data.sha256)) {
    return fault('done', 'data.sha256', 'must be 64 hex digits');
  }
  return { value: { sha256: data.sha256.toLowerCase() } };
}

/** True when `reading` is a {@link Fault}. */
export const isFault = <T extends object>(reading: T | Fault): reading is Fault => 'fault' in reading;
