import { defineErrorClass, ErrorCode, type ProtocolErrorOptions } from '../../src/errors.js';

/**
 * Why a swarm fetch, link or peer failed. The reason is the typed part;
 * {@link SwarmError.code} groups reasons by the library-wide {@link ErrorCode}.
 */
export type SwarmFailure =
  /** Every peer asked answered `resource_not_found` (or failed). */
  | 'not-found'
  /** There was no connected peer to ask. */
  | 'no-peers'
  /** The hash is not 64 lowercase hex digits. */
  | 'invalid-hash'
  /** More or fewer bytes than `resource_found` announced. */
  | 'size-mismatch'
  /** The SHA-256 of the bytes is not the resource's name. */
  | 'digest-mismatch'
  /** The announced size is over this peer's limit. */
  | 'too-large'
  /** Bytes arrived on a link that was not asked for any. */
  | 'unsolicited-bytes'
  /** A frame this protocol does not allow (malformed, unknown, out of turn). */
  | 'protocol'
  /** The peer left, or its data channel closed mid-exchange. */
  | 'peer-gone'
  /** A peer took longer than allowed to answer or to send the bytes. */
  | 'timeout'
  /** Reading or writing the resource store failed. */
  | 'store-failed'
  /** The signalling connection closed or could not be opened. */
  | 'signalling-lost'
  /** A WebRTC connection failed before its data channel opened (`match-failed`). */
  | 'rtc-failed'
  /** This side gave up (`leave`). */
  | 'cancelled';

/** One peer that did not deliver a resource, and why. */
export interface Miss {
  /** The link that was asked. */
  link: string;
  reason: SwarmFailure;
  message: string;
}

const codes: Record<SwarmFailure, ErrorCode> = {
  'not-found': ErrorCode.PeerGone,
  'no-peers': ErrorCode.PeerGone,
  'invalid-hash': ErrorCode.InvalidField,
  'size-mismatch': ErrorCode.Integrity,
  'digest-mismatch': ErrorCode.Integrity,
  'too-large': ErrorCode.NotPermitted,
  'unsolicited-bytes': ErrorCode.NotPermitted,
  protocol: ErrorCode.InvalidField,
  'peer-gone': ErrorCode.PeerGone,
  timeout: ErrorCode.Timeout,
  'store-failed': ErrorCode.Io,
  'signalling-lost': ErrorCode.TransportClosed,
  'rtc-failed': ErrorCode.RtcFailed,
  cancelled: ErrorCode.Cancelled,
};

/**
 * How a swarm fetch, link or peer failed: `reason` in this protocol's terms,
 * `code` in the library's.
 *
 * @example
 * ```ts
 * peer.on('fetch-failed', ({ detail }) => {
 *   if (detail.error.reason === 'not-found') console.log('nobody has', detail.hash);
 * });
 * ```
 */
export class SwarmError extends defineErrorClass('SwarmError', codes) {
  /** For a fetch that failed: each peer asked, in order, and why it did not deliver (`digest-mismatch`, …). */
  readonly misses: readonly Miss[];
  constructor(
    reason: SwarmFailure,
    message: string,
    options: ProtocolErrorOptions & { misses?: readonly Miss[] } = {},
  ) {
    super(reason, message, options);
    this.misses = options.misses ?? [];
  }
}
