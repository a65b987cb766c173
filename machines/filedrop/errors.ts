import { defineErrorClass, ErrorCode, type ProtocolErrorOptions } from '../../src/errors.js';

/**
 * Why a transfer (or a sender or receiver) ended without success. The
 * reason is the typed part; {@link FileDropError.code} groups reasons by the
 * library-wide {@link ErrorCode}.
 */
export type TransferFailure =
  /** `cancel` was sent to this machine. */
  | 'cancelled'
  /** The other side cancelled or gave up; `error.remote` holds its own reason. */
  | 'remote-cancelled'
  /** A sender that serves one receiver is busy with another. */
  | 'busy'
  /** No peer has that code (`peer not exists` in answer to `request`). */
  | 'no-such-peer'
  /** The code is not 8 characters of the peer-id alphabet (`invalid peer id`). */
  | 'invalid-code'
  /** The other side left the server or its data channel closed mid-transfer. */
  | 'peer-gone'
  /** WebRTC failed and the ICE restarts (`retry`) ran out. */
  | 'rtc-failed'
  /** A step took longer than its timeout. */
  | 'timeout'
  /** More or fewer bytes than `size`. */
  | 'size-mismatch'
  /** The SHA-256 of the bytes is not the one the sender announced. */
  | 'digest-mismatch'
  /** The file source could not be read. */
  | 'source-failed'
  /** The file sink could not be opened or written. */
  | 'sink-failed'
  /** The signalling connection closed or could not be opened. */
  | 'signalling-lost'
  /** The server or the peer sent something this protocol does not allow. */
  | 'protocol';

const codes: Record<TransferFailure, ErrorCode> = {
  cancelled: ErrorCode.Cancelled,
  'remote-cancelled': ErrorCode.Cancelled,
  busy: ErrorCode.NotPermitted,
  'no-such-peer': ErrorCode.PeerGone,
  'invalid-code': ErrorCode.InvalidField,
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

/** Every {@link TransferFailure}, for validating what a peer reports. */
export const transferFailures = Object.keys(codes) as TransferFailure[];

/**
 * How a filedrop sender or receiver failed: `reason` says why in this
 * protocol's terms, `code` in the library's.
 *
 * @example
 * ```ts
 * receiver.subscribe((s) => {
 *   if (s.value === 'failed' && s.context.error.reason === 'digest-mismatch') console.error('corrupted');
 * });
 * ```
 */
export class FileDropError extends defineErrorClass('FileDropError', codes) {
  /** For `remote-cancelled`: the reason the other side gave (one of its {@link TransferFailure}s, or `busy`). */
  readonly remote?: string;
  constructor(reason: TransferFailure, message: string, options: ProtocolErrorOptions & { remote?: string } = {}) {
    super(reason, message, options);
    if (options.remote !== undefined) this.remote = options.remote;
  }
}
