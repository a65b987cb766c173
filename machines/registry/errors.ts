import { defineErrorClass, ErrorCode } from '../../src/errors.js';

/**
 * Why a registry client, or one of its file requests, failed. The reason
 * is the typed part; {@link RegistryError.code} groups reasons by the
 * library-wide {@link ErrorCode}.
 */
export type RegistryFailure =
  /** `cancel` was sent, or the client left. */
  | 'cancelled'
  /** No peer with that id is registered. */
  | 'no-such-peer'
  /** The peer does not list that path (checked here, and again by the peer). */
  | 'not-listed'
  /** The path is not a clean relative path: `..`, absolute, NUL bytes, backslashes… */
  | 'invalid-path'
  /** The file resolves outside the holder's shared directory (a symlink pointing out). */
  | 'outside-root'
  /** A file list that is not an array of unique, clean `{ path, size, sha256? }` entries. */
  | 'invalid-files'
  /** The peer left the server, or its data channel closed mid-transfer. */
  | 'peer-gone'
  /** The WebRTC connection failed. */
  | 'rtc-failed'
  /** A step took longer than its timeout. */
  | 'timeout'
  /** More or fewer bytes than announced. */
  | 'size-mismatch'
  /** The SHA-256 of the bytes is not the one announced. */
  | 'digest-mismatch'
  /** The file could not be read. */
  | 'source-failed'
  /** The sink could not be opened or written. */
  | 'sink-failed'
  /** The signalling connection closed or could not be opened. */
  | 'signalling-lost'
  /** The server or the peer sent something this protocol does not allow. */
  | 'protocol';

const codes: Record<RegistryFailure, ErrorCode> = {
  cancelled: ErrorCode.Cancelled,
  'no-such-peer': ErrorCode.PeerGone,
  'not-listed': ErrorCode.NotPermitted,
  'invalid-path': ErrorCode.InvalidField,
  'outside-root': ErrorCode.NotPermitted,
  'invalid-files': ErrorCode.InvalidField,
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

/** Every {@link RegistryFailure}. */
export const registryFailures = Object.keys(codes) as RegistryFailure[];

/**
 * How a registry client or a file request failed: `reason` says why in this
 * protocol's terms, `code` in the library's.
 *
 * @example
 * ```ts
 * client.addEventListener('fetchfailed', (e) => {
 *   if (e.detail.error.reason === 'not-listed') console.warn('the peer no longer has', e.detail.path);
 * });
 * ```
 */
export class RegistryError extends defineErrorClass('RegistryError', codes) {}
