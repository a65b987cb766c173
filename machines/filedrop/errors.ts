import { defineErrorClass, ErrorCode, type ProtocolErrorOptions } from '../../src/errors.js';
import { fileTransferCodes, type FileTransferFailure } from '../transfer/transfer.js';

/**
 * Why a transfer (or a sender or receiver) ended without success: the
 * reasons every file request shares ({@link FileTransferFailure}), and
 * filedrop's own. The reason is the typed part; {@link FileDropError.code}
 * groups reasons by the library-wide {@link ErrorCode}.
 */
export type TransferFailure =
  | FileTransferFailure
  /** The other side cancelled or gave up; `error.remote` holds its own reason. */
  | 'remote-cancelled'
  /** A sender that serves one receiver is busy with another. */
  | 'busy'
  /** The code is not 8 characters of the peer-id alphabet (`invalid peer id`). */
  | 'invalid-code';

const codes: Record<TransferFailure, ErrorCode> = {
  ...fileTransferCodes,
  'remote-cancelled': ErrorCode.Cancelled,
  busy: ErrorCode.NotPermitted,
  'invalid-code': ErrorCode.InvalidField,
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
