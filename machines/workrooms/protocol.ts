import type { ServerRefusalCode } from '../../src/errors.js';
import type { Message } from '../../src/message.js';
import type { RtcIceCandidateInit, RtcSessionDescription } from '../../src/rtc/types.js';

/**
 * What a `sessionid` or a `callid` looks like: 22 to 64 characters of the
 * URL-safe base64 alphabet (`A–Z a–z 0–9 - _`). 22 characters carry 128 bits,
 * so an id drawn at random cannot be guessed; a UUID (36 characters) fits too.
 */
const ID = /^[A-Za-z0-9_-]{22,64}$/;

/** True when `value` is a well-formed `sessionid` or `callid` (see {@link generateId}). */
export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID.test(value);
}

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * A fresh, unguessable id: 22 characters of URL-safe base64 from
 * `crypto.getRandomValues` (132 random bits). Clients draw their `sessionid`
 * with it once per run; the server draws each `callid` with it.
 *
 * @example
 * ```ts
 * generateId(); // 'q2R0bW9yZ2VuLXNlc3Npb24'
 * ```
 */
export function generateId(): string {
  const bytes = new Uint8Array(22);
  globalThis.crypto.getRandomValues(bytes);
  let id = '';
  // 256 is a multiple of 64: no modulo bias.
  for (const byte of bytes) id += BASE64URL[byte & 63];
  return id;
}

/**
 * A user's profiles, by source: `{ github: { login, name, avatar_url, … } }`
 * as the seed shows. The server takes them as given (unless configured with
 * a verify hook) and searches their string fields for `autocomplete`.
 */
export type UserProfiles = Record<string, Record<string, unknown>>;

/**
 * One call as the server announces it (`outboundcall`, `inboundcall`) and as
 * a client hands it back in `register` after a reconnect. `outbound` is set
 * on the caller's side, `inbound` on the callee's.
 */
export interface CallInfo {
  callid: string;
  /** The caller. */
  fromsessionid: string;
  /** The callee. */
  tosessionid: string;
  /** The profiles of the other side (the callee's for the caller and vice versa); `{}` if it sent none. */
  userprofiles: UserProfiles;
  outbound?: true;
  inbound?: true;
}

/** What `register` may carry per call: at least its `callid` (the rest is the client's copy of the {@link CallInfo}). */
export type RegisteredCall = Pick<CallInfo, 'callid'> & Partial<Omit<CallInfo, 'callid'>>;

/** One entry of `hangup`: the call, and (from the server) the session that ended it. */
export interface HangupEntry {
  callid: string;
  /** From a client: optional, ignored. From the server: who hung up, or whose absence ended the call. */
  sessionid?: string;
}

/** One `autocomplete` result: a connected session and its profiles. */
export interface DirectoryEntry {
  sessionid: string;
  userprofiles: UserProfiles;
}

/**
 * `offer` / `answer` detail. `peerid` is the other side: the recipient when a
 * client sends, the sender when the server relays.
 *
 * `sdp` is relayed as it was sent, whatever JSON it holds: a signalbox client
 * sends the browser's form, `{ type, sdp }` (what `JSON.stringify(pc.localDescription)`
 * gives); other clients send the SDP text alone. The receiving client reads
 * both ({@link readDescription}). Other keys of `detail` are relayed too.
 */
export interface SdpRelay {
  callid: string;
  peerid: string;
  sdp: unknown;
}

/**
 * `ice` detail; `peerid` as in {@link SdpRelay}. `candidate` is relayed as it
 * was sent: a signalbox client sends an `RTCIceCandidateInit`; other clients
 * send the candidate line alone, or `null` for the end of candidates (the
 * browser's last `icecandidate` event). The receiving client reads all three
 * ({@link readCandidate}).
 */
export interface IceRelay {
  callid: string;
  peerid: string;
  candidate: unknown;
}

/** What a signalbox client sends in `offer` / `answer`: the browser's form. */
export interface SentSdpRelay extends SdpRelay {
  sdp: RtcSessionDescription;
}

/** What a signalbox client sends in `ice`: an `RTCIceCandidateInit`. */
export interface SentIceRelay extends IceRelay {
  candidate: RtcIceCandidateInit;
}

/**
 * Close code of a connection whose session a `register` of the same
 * `sessionid` on another connection took over. A client that sees it stops
 * instead of reconnecting: someone else holds its sessionid now.
 */
export const CLOSE_TAKEN_OVER = 4001;

/** Error codes of the server's `error` message. */
export type ServerErrorCode =
  | ServerRefusalCode
  | 'ERR_PEER_GONE'
  /** No `register` within the server's `registerTimeout`; the connection is closed (1008) after it. */
  | 'ERR_TIMEOUT';

/** What a client sends. */
export type ClientMessage =
  | Message<'register', { sessionid: string; calls: RegisteredCall[] }>
  | Message<'userprofile', UserProfiles>
  | Message<'call', { to: string }>
  | Message<'hangup', { calls: HangupEntry[] }>
  | Message<'autocomplete', { search: string }>
  | Message<'offer' | 'answer', SdpRelay>
  | Message<'ice', IceRelay>;

/** What the server sends. */
export type ServerMessage =
  /** The answer to `register`: the calls of the list that were restored (the others were hung up). */
  | Message<'registered', { sessionid: string; calls: string[] }>
  | Message<'outboundcall', CallInfo & { outbound: true }>
  | Message<'inboundcall', CallInfo & { inbound: true }>
  | Message<'hangup', { calls: Array<Required<HangupEntry>> }>
  /**
   * The answer to a search. `truncated` is there (`true`; our server never
   * sends `false`) when more profiles matched than it carries: the server's
   * `searchLimit`, or its size budget, cut it short at a result boundary. The
   * seed's answer has no such key; a client that reads only `search` and
   * `results` loses nothing.
   */
  | Message<'autocomplete', { search: string; results: DirectoryEntry[]; truncated?: boolean }>
  | Message<'offer' | 'answer', SdpRelay>
  | Message<'ice', IceRelay>
  /** A message the server refused; nothing else happened. `event` names it when it was decoded. */
  | Message<'error', { code: ServerErrorCode; message: string; event?: string }>;

export type ClientMessageType = ClientMessage['type'];
export type ServerMessageType = ServerMessage['type'];

export type { MessageOf } from '../../src/message.js';

/** Every message type a client may send: the seed's, then the relays it leaves out. */
export const clientMessageTypes: readonly ClientMessageType[] = [
  'register',
  'userprofile',
  'call',
  'hangup',
  'autocomplete',
  'offer',
  'answer',
  'ice',
];

/** Message types only the server sends. */
export const serverOnlyTypes: readonly ServerMessageType[] = ['registered', 'outboundcall', 'inboundcall', 'error'];

/** The relays of one call's WebRTC negotiation: to the other side of that call only. */
export const relayTypes = ['offer', 'answer', 'ice'] as const;
export type RelayType = (typeof relayTypes)[number];
