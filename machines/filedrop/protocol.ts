import type { ServerRefusalCode } from '../../src/errors.js';
import type { Message } from '../../src/message.js';
import type { RtcIceCandidateInit } from '../../src/rtc/types.js';
import type { DoneData, FileInfo } from '../transfer/files.js';

/**
 * The characters of a peer id: digits and capitals without the look-alikes
 * 0/O, 1/I/L and U (Crockford's choice), so a code read aloud or off a screen
 * is typed right.
 */
export const PEER_ID_ALPHABET = '23456789ABCDEFGHJKMNPQRSTVWXYZ';

/** Length of a peer id: 30^8 ≈ 6.6 × 10^11 codes. */
export const PEER_ID_LENGTH = 8;

const PEER_ID = new RegExp(`^[${PEER_ID_ALPHABET}]{${PEER_ID_LENGTH}}$`);

/** True when `value` is a peer id in the canonical form (8 characters of {@link PEER_ID_ALPHABET}). */
export function isPeerId(value: unknown): value is string {
  return typeof value === 'string' && PEER_ID.test(value);
}

/**
 * A fresh peer id: 8 characters of {@link PEER_ID_ALPHABET} drawn from
 * `crypto.getRandomValues`, without modulo bias.
 *
 * @example
 * ```ts
 * generatePeerId(); // 'K7PQ2MZA'
 * ```
 */
export function generatePeerId(): string {
  const n = PEER_ID_ALPHABET.length;
  // The largest multiple of n that fits a byte: bytes at or above it are redrawn.
  const limit = 256 - (256 % n);
  let id = '';
  const bytes = new Uint8Array(PEER_ID_LENGTH * 2);
  while (id.length < PEER_ID_LENGTH) {
    globalThis.crypto.getRandomValues(bytes);
    for (const byte of bytes) {
      if (byte < limit && id.length < PEER_ID_LENGTH) id += PEER_ID_ALPHABET[byte % n];
    }
  }
  return id;
}

/**
 * A code as a person typed it, in canonical form: capitals, without spaces or
 * dashes (`'k7pq-2mza'` → `'K7PQ2MZA'`). It does not check the result: see
 * {@link isPeerId}.
 */
export function normalizeCode(code: string): string {
  return code.replace(/[\s-]+/g, '').toUpperCase();
}

export type { DoneData, FileInfo };

/** A `response` that refuses or withdraws the file instead of describing it. */
export interface Refusal {
  /**
   * Why: `busy` (a sender serving one receiver only is taken), or the
   * {@link TransferFailure} that ended the sender's side (`cancelled`, `timeout`, …).
   */
  error: string;
}

/**
 * The file as a signalbox sender writes it in `response`: {@link FileInfo}
 * and the same name and size under the original project's keys, so that its
 * receivers read it too.
 */
export interface AnnouncedFile extends FileInfo {
  fileName: string;
  fileSize: number;
}

/** `response` data as a signalbox sender sends it: the file, or a refusal. */
export type ResponseData = AnnouncedFile | Refusal;

/** An SDP offer or answer as it travels in `offer` / `answer`. */
export interface SessionDescription<T extends 'offer' | 'answer' = 'offer' | 'answer'> {
  type: T;
  sdp: string;
}

/**
 * A receiver's `offer` data: the description and, on a connection that is
 * to resume, `offset`, the byte the sender is to start at (the receiver has
 * the bytes before it). Present, it also tells the sender that this offer
 * opens a fresh connection (not an ICE restart of the running one).
 */
export interface OfferData extends SessionDescription<'offer'> {
  offset?: number;
}

/**
 * `progress` data, receiver → sender. `done` (verified and stored) and
 * `error` (the receiver's {@link TransferFailure}) are final.
 */
export interface Progress {
  /** Bytes received so far. */
  received: number;
  /** The file size (0 if the receiver failed before it knew it). */
  total: number;
  done?: true;
  error?: string;
}

/** Error codes of the server's `error` message. */
export type ServerErrorCode = ServerRefusalCode;

type Each<T extends string, D> = T extends string ? Message<T, D> : never;

/**
 * What a client sends. `peer` names the recipient; the server replaces it
 * with the sender's id when it forwards, so socket.io's
 * `emit(event, peerId, data?)` maps to `{ type: event, detail: { peer: peerId, data } }`.
 */
export type ClientMessage =
  | Each<'request' | 'retry', { peer: string }>
  | Message<'response', { peer: string; data: ResponseData }>
  | Message<'offer', { peer: string; data: OfferData }>
  | Message<'answer', { peer: string; data: SessionDescription<'answer'> }>
  | Message<'candidate', { peer: string; data: RtcIceCandidateInit }>
  | Message<'progress', { peer: string; data: Progress }>
  | Message<'done', { peer: string; data?: DoneData }>;

/**
 * A client message as the server takes and forwards it: `peer` names the
 * recipient (from a client) or the sender (from the server), and `data` is
 * any JSON, relayed as it came. The machine that receives it reads `data`
 * (see `wire.ts`), not the server.
 */
export type RelayedMessage = Each<ClientMessageType, { peer: string; data?: unknown }>;

/** What the server sends: the client's own id, relayed messages (their `data` as the other client sent it) and the errors. */
export type ServerMessage =
  | Message<'assign', { peer: string }>
  | RelayedMessage
  /**
   * A message whose `peer` is missing or not a string (`event` names it; our
   * server always says, the original server sends the notice bare).
   */
  | Message<'invalid peer id', { event?: string }>
  /**
   * `peer` is not connected: the answer to a message sent to it (`event` names
   * that message), or, without `event`, news that a peer you exchanged
   * messages with has left. Our server always names `peer`; the original
   * server sends the notice bare, about the peer the client last named.
   */
  | Message<'peer not exists', { peer?: string; event?: string }>
  /** Anything else the server refused; nothing was forwarded. */
  | Message<'error', { code: ServerErrorCode; message: string; event?: string }>;

export type ClientMessageType = ClientMessage['type'];
export type ServerMessageType = ServerMessage['type'];

export type { MessageOf } from '../../src/message.js';

/** Message types only the server sends. */
export const serverOnlyTypes: readonly ServerMessageType[] = ['assign', 'invalid peer id', 'peer not exists', 'error'];

/**
 * Who may send each client message to whom (in the seed's order), once a
 * receiver has sent `request` to a sender: `toSender` messages go receiver →
 * sender, `toReceiver` ones sender → receiver, `either` both ways.
 */
export const direction: Readonly<Record<ClientMessageType, 'request' | 'toSender' | 'toReceiver' | 'either'>> = {
  request: 'request',
  response: 'toReceiver',
  offer: 'toSender',
  answer: 'toReceiver',
  candidate: 'either',
  retry: 'toReceiver',
  progress: 'toSender',
  done: 'either',
};

/** Every message type a client may send, in the seed's order: the keys of {@link direction}. */
export const clientMessageTypes = Object.keys(direction) as readonly ClientMessageType[];
