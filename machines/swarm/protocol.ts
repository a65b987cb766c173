import type { ServerRefusalCode } from '../../src/errors.js';
import type { Message, MessageOf } from '../../src/message.js';

/**
 * The swarm protocol (seed 000): a matchmaking server pairs clients over
 * WebSocket, the pair connects over WebRTC, and the peers then exchange
 * resources named by their SHA-256 over the data channel.
 *
 * Two channels, two meanings of alice and bob:
 * - WebSocket: alice makes the offer, bob the answer (the server decides per match).
 * - Data channel: alice asks for a resource, bob answers and transfers it
 *   (per request; both peers of a link play both roles).
 */

/** A resource's name: its SHA-256 as 64 lowercase hex digits. */
export type Hash = string;

const HASH = /^[0-9a-f]{64}$/;

/** True when `value` is a resource name: 64 lowercase hex digits. */
export function isHash(value: unknown): value is Hash {
  return typeof value === 'string' && HASH.test(value);
}

/** Longest `client_id` and `context_id`, in characters. */
export const MAX_ID_LENGTH = 128;

// ---- WebSocket (matchmaking) -------------------------------------------------------

/** Error codes of the server's `error` message. */
export type ServerErrorCode = ServerRefusalCode | 'ERR_PEER_GONE' | 'ERR_TIMEOUT';

/** What a client sends to the server. */
export type ClientMessage =
  /** The client introduces itself; must come first, once. */
  | Message<'i_am', { client_id: string }>
  /** The client looks for a peer; `context_id` names this request among the client's own. */
  | Message<'requesting_peers', { context_id: string }>
  /**
   * alice: the offer for the match her `requesting_offer` named (non-trickle:
   * every candidate inside). The server relays it untouched: this library
   * sends `{ type: 'offer', sdp }`, others may send the SDP string.
   */
  | Message<'sending_offer', { offer: unknown; context_id: string }>
  /** bob: the answer to the offer of the match his `wait_for_offer` named (relayed untouched, as the offer). */
  | Message<'sending_answer', { answer: unknown; context_id: string }>;

/** What the server sends to a client. `context_id` is always the receiving client's own. */
export type ServerMessage =
  /** A match was found: you are alice, make the offer. */
  | Message<'requesting_offer', { context_id: string }>
  /** A match was found: you are bob, an offer will come. */
  | Message<'wait_for_offer', { context_id: string }>
  /** bob: alice's offer, as she sent it: an SDP string or `{ type, sdp }` (read with `readDescription`). */
  | Message<'forwarding_offer', { offer: unknown; context_id: string }>
  /** alice: bob's answer, as he sent it; the match is complete and forgotten by the server. */
  | Message<'forwarding_answer', { answer: unknown; context_id: string }>
  /**
   * A message the server refused (nothing was forwarded), or, with
   * `context_id`, the end of a match in progress: `ERR_PEER_GONE` (the other
   * side left) or `ERR_TIMEOUT` (the answer did not come in time).
   */
  | Message<'error', { code: ServerErrorCode; message: string; event?: string; context_id?: string }>;

export type ClientMessageType = ClientMessage['type'];
export type ServerMessageType = ServerMessage['type'];

export type { MessageOf } from '../../src/message.js';

/** Every message type a client may send, in the seed's order. */
export const clientMessageTypes: readonly ClientMessageType[] = [
  'i_am',
  'requesting_peers',
  'sending_offer',
  'sending_answer',
];

/** Every message type the server sends, in the seed's order. */
export const serverMessageTypes: readonly ServerMessageType[] = [
  'requesting_offer',
  'wait_for_offer',
  'forwarding_offer',
  'forwarding_answer',
  'error',
];

// ---- Data channel (resources) -------------------------------------------------------

/** Error codes of a peer's `error` message on the data channel. */
export type PeerErrorCode =
  'ERR_MALFORMED_FRAME' | 'ERR_FRAME_TOO_LARGE' | 'ERR_UNKNOWN_MESSAGE' | 'ERR_INVALID_FIELD' | 'ERR_NOT_PERMITTED';

/**
 * A text frame on the data channel. After `transferring_resource` the bytes
 * follow as binary frames (a 4-byte big-endian sequence number, then at most
 * 16 KiB), exactly the `size` that `resource_found` announced.
 */
export type PeerMessage =
  /** Each side introduces itself as the channel opens, before anything else. */
  | Message<'i_am', { client_id: string }>
  /** Asks for the `client_id`s the other side is connected to. */
  | Message<'requesting_peer_list', Record<string, never>>
  /** The answer to `requesting_peer_list` (the asker left out). */
  | Message<'sending_peer_list', { peer_list: string[] }>
  /** alice: do you have `hash`? */
  | Message<'querying_resource', { hash: Hash }>
  /** alice: do you have `hash`, or can you get it from your own peers (alice's tier 2)? Not urgent. */
  | Message<'reserve_resource', { hash: Hash }>
  /** bob: I have `hash`, `size` bytes. */
  | Message<'resource_found', { hash: Hash; size: number }>
  /** bob: I do not have `hash` (and, for a reserve, could not get it). Not in the seed: see the README. */
  | Message<'resource_not_found', { hash: Hash }>
  /** alice: send me `hash`. */
  | Message<'requesting_resource', { hash: Hash }>
  /** bob: the bytes of `hash` follow. */
  | Message<'transferring_resource', { hash: Hash }>
  /** A frame refused. Not in the seed: see the README. */
  | Message<'error', { code: PeerErrorCode; message: string; hash?: Hash }>;

export type PeerMessageType = PeerMessage['type'];

/** Every data-channel message type. */
export const peerMessageTypes: readonly PeerMessageType[] = [
  'i_am',
  'requesting_peer_list',
  'sending_peer_list',
  'querying_resource',
  'reserve_resource',
  'resource_found',
  'resource_not_found',
  'requesting_resource',
  'transferring_resource',
  'error',
];

/** Data-channel messages that ask (bob answers them). */
export const peerRequestTypes = [
  'requesting_peer_list',
  'querying_resource',
  'reserve_resource',
  'requesting_resource',
] as const satisfies readonly PeerMessageType[];

/** Data-channel messages that answer (they go to whoever asked). */
export const peerReplyTypes = [
  'sending_peer_list',
  'resource_found',
  'resource_not_found',
  'transferring_resource',
  'error',
] as const satisfies readonly PeerMessageType[];

export type PeerRequest = MessageOf<PeerMessage, (typeof peerRequestTypes)[number]>;
export type PeerReply = MessageOf<PeerMessage, (typeof peerReplyTypes)[number]>;

/** Most entries in a `sending_peer_list`. */
export const MAX_PEER_LIST = 256;
