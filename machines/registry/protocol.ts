import type { ServerRefusalCode } from '../../src/errors.js';
import type { RegistryFailure } from './errors.js';
import type { Message, MessageOf } from '../../src/message.js';

/**
 * One file a peer offers. `path` is relative, `/`-separated, and never
 * leaves the peer's shared root (see {@link checkPath}).
 */
export interface FileEntry {
  /** Relative path, `/`-separated: `docs/a.txt`. */
  path: string;
  /** Size in bytes. */
  size: number;
  /** SHA-256 of the content, 64 lowercase hex digits. When listed, a requester checks it. */
  sha256?: string;
}

/** Most characters in a listed path. */
export const MAX_PATH_LENGTH = 1024;

/**
 * Why `path` may not be listed or requested, or `undefined` when it is a
 * clean relative path: not empty, at most {@link MAX_PATH_LENGTH}
 * characters, no NUL or other control character, no backslash, not
 * absolute (`/x`, `C:x`), no empty, `.` or `..` segment.
 *
 * @example
 * ```ts
 * checkPath('docs/a.txt'); // undefined
 * checkPath('../etc/passwd'); // 'a `..` segment leaves the shared directory'
 * ```
 */
export function checkPath(path: unknown): string | undefined {
  if (typeof path !== 'string') return 'a path must be a string';
  if (path.length === 0) return 'a path must not be empty';
  if (path.length > MAX_PATH_LENGTH) return `a path has at most ${MAX_PATH_LENGTH} characters`;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(path)) return 'a path must not contain NUL or control characters';
  if (path.includes('\\')) return 'a path uses `/` as its separator, never `\\`';
  if (path.startsWith('/') || /^[A-Za-z]:/.test(path)) return 'a path must be relative';
  for (const segment of path.split('/')) {
    if (segment === '') return 'a path must not have empty segments (`//`, or a trailing `/`)';
    if (segment === '.' || segment === '..') return `a \`${segment}\` segment leaves the shared directory`;
  }
  return undefined;
}

/** True when `value` is a connection id: 1 to 64 characters of `A-Z a-z 0-9 _ -`. */
export function isConnectionId(value: unknown): value is string {
  return typeof value === 'string' && /^[\w-]{1,64}$/.test(value);
}

/** Which end of a file connection sent a `Candidate`. */
export type Side = 'requester' | 'holder';

/** Error codes of the server's `Error` message. */
export type ServerErrorCode = ServerRefusalCode | 'ERR_PEER_GONE' | 'ERR_TIMEOUT';

/**
 * Signalling of one file connection: an offer from the requester, the
 * holder's answer, candidates both ways. The server routes them by `peer`
 * and relays `sdp` and `candidate` untouched, whatever JSON they hold: an
 * SDP string or `{ type, sdp }`; an `RTCIceCandidateInit`, a candidate
 * string or `null` (the end of candidates). The receiving client reads them
 * (`readDescription`, `readCandidate`); this library sends `{ type, sdp }`
 * and `RTCIceCandidateInit`.
 */
export type RelayMessage =
  | Message<'Offer', { peer: string; connection: string; sdp: unknown }>
  | Message<'Answer', { peer: string; connection: string; sdp: unknown }>
  | Message<'Candidate', { peer: string; connection: string; from: Side; candidate: unknown }>;

/** What a client sends the server. In relays, `peer` is the recipient. */
export type ClientMessage =
  /**
   * `batch: true` says the client reads `Batch` frames: its `Welcome` list
   * may then come in them (a few large frames instead of one per peer, what
   * keeps thousands of joins cheap). Without it the list comes as the seed
   * has it, one `RegisterPeer` a frame. Not in the seed.
   */
  | Message<'Connect', { files: FileEntry[]; batch?: true }>
  | Message<'UpdateFiles', { files: FileEntry[] }>
  | Message<'Disconnect', Record<string, never> | undefined>
  | RelayMessage;

/** What the server sends. In relays, `peer` is who sent it. */
export type ServerMessage =
  /**
   * The answer to `Connect`: this client's server-assigned id, and how many
   * peers are already there: that many `RegisterPeer` follow at once, before
   * anything else (inside `Batch` frames when the `Connect` said `batch`).
   * (`peers` is always sent by this server; a client takes its absence,
   * from an older one, as 0.)
   */
  | Message<'Welcome', { id: string; peers?: number }>
  | Message<'RegisterPeer', { peer: string; files: FileEntry[] }>
  | Message<'UpdatePeer', { peer: string; files: FileEntry[] }>
  | Message<'UnregisterPeer', { peer: string }>
  /**
   * Several announcements in one frame, to be read as if each had come on
   * its own, in order. The server sends it when more than one announcement
   * for a client piled up in one turn (a burst of joins); a lone one comes
   * as its own frame.
   */
  | Message<'Batch', { events: Announcement[] }>
  | RelayMessage
  /** A message the server refused; nothing was forwarded. */
  | Message<'Error', { code: ServerErrorCode; message: string; event?: string }>;

/** What the server announces about other peers: a join, a new list, a leave. */
export type Announcement = MessageOf<ServerMessage, 'RegisterPeer' | 'UpdatePeer' | 'UnregisterPeer'>;

export type ClientMessageType = ClientMessage['type'];
export type ServerMessageType = ServerMessage['type'];
export type RelayMessageType = RelayMessage['type'];

export type { MessageOf } from '../../src/message.js';

/** Every message type a client may send, in the seed's order, then the relays. */
export const clientMessageTypes: readonly ClientMessageType[] = [
  'Connect',
  'UpdateFiles',
  'Disconnect',
  'Offer',
  'Answer',
  'Candidate',
];

/** Message types only the server sends. */
export const serverOnlyTypes: readonly ServerMessageType[] = [
  'Welcome',
  'RegisterPeer',
  'UpdatePeer',
  'UnregisterPeer',
  'Batch',
  'Error',
];

/** The relayed message types. */
export const relayTypes: readonly RelayMessageType[] = ['Offer', 'Answer', 'Candidate'];

/* ---------------------------------------------------------------------- */
/* Peer to peer, on the data channel of one file connection.              */
/* ---------------------------------------------------------------------- */

/**
 * Why a holder refused a `RequestFile` (the `reason` of a data-channel
 * `Error`), as the {@link RegistryFailure} the requester's fetch ends with:
 * the path is not in the holder's current list (`not-listed`), not a clean
 * relative path ({@link checkPath}: `invalid-path`), resolves outside the
 * holder's shared directory (`outside-root`), or could not be opened or read
 * (`source-failed`); or the first frame was not a `RequestFile` (`protocol`).
 */
export type Refusal = Extract<
  RegistryFailure,
  'not-listed' | 'invalid-path' | 'outside-root' | 'source-failed' | 'protocol'
>;

/**
 * Text frames on a file connection's data channel. The requester sends one
 * `RequestFile`; the holder answers `File` (then the content as binary
 * chunks, as filedrop's) or `Error`.
 */
export type ChannelMessage =
  | Message<'RequestFile', { path: string }>
  | Message<'File', { path: string; size: number; sha256: string }>
  | Message<'Error', { reason: Refusal; message: string }>;
