import { defineErrorClass, ErrorCode } from '../../src/errors.js';
import { fileTransferCodes, type FileTransferFailure } from '../transfer/transfer.js';

/**
 * Why a registry client, or one of its file requests, failed: the reasons
 * every file request shares ({@link FileTransferFailure}), and the
 * registry's own. The reason is the typed part; {@link RegistryError.code}
 * groups reasons by the library-wide {@link ErrorCode}.
 */
export type RegistryFailure =
  | FileTransferFailure
  /** The peer does not list that path (checked here, and again by the peer). */
  | 'not-listed'
  /** The path is not a clean relative path: `..`, absolute, NUL bytes, backslashes… */
  | 'invalid-path'
  /** The file resolves outside the holder's shared directory (a symlink pointing out). */
  | 'outside-root'
  /** A file list that is not an array of unique, clean `{ path, size, sha256? }` entries. */
  | 'invalid-files';

const codes: Record<RegistryFailure, ErrorCode> = {
  ...fileTransferCodes,
  'not-listed': ErrorCode.NotPermitted,
  'invalid-path': ErrorCode.InvalidField,
  'outside-root': ErrorCode.NotPermitted,
  'invalid-files': ErrorCode.InvalidField,
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
