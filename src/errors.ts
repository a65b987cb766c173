/**
 * Every error signalbox raises or reports carries one of these codes. They are
 * stable: match on `error.code`, never on the message text.
 */
export const ErrorCode = {
  /** `send()` on a transport that has closed. */
  TransportClosed: 'ERR_TRANSPORT_CLOSED',
  /** The underlying channel failed (socket error, data channel error). */
  TransportFailed: 'ERR_TRANSPORT_FAILED',
  /** Could not open the connection at all. */
  ConnectFailed: 'ERR_CONNECT_FAILED',
  /** A frame that is not valid for the codec (not JSON, not an object, binary where text is required). */
  MalformedFrame: 'ERR_MALFORMED_FRAME',
  /** A frame larger than the configured cap. */
  FrameTooLarge: 'ERR_FRAME_TOO_LARGE',
  /** A message type / opcode the protocol does not define. */
  UnknownMessage: 'ERR_UNKNOWN_MESSAGE',
  /** A known message with a missing or wrong-typed field. */
  InvalidField: 'ERR_INVALID_FIELD',
  /** A message addressed to someone the sender may not reach. */
  NotPermitted: 'ERR_NOT_PERMITTED',
  /** The remote stopped answering keepalives. */
  KeepaliveTimeout: 'ERR_KEEPALIVE_TIMEOUT',
  /** The server told us we violated the protocol (CloudLink VIOLATION). */
  Violation: 'ERR_VIOLATION',
  /** A WebRTC peer connection or data channel failed. */
  RtcFailed: 'ERR_RTC_FAILED',
  /** One side cancelled (this one, or the remote: the error says which). */
  Cancelled: 'ERR_CANCELLED',
  /** The peer named does not exist, or left before the exchange ended. */
  PeerGone: 'ERR_PEER_GONE',
  /** A step did not finish in the time allowed. */
  Timeout: 'ERR_TIMEOUT',
  /** Data arrived damaged: wrong size or wrong digest. */
  Integrity: 'ERR_INTEGRITY',
  /** Reading the source or writing the sink failed (a file, a stream). */
  Io: 'ERR_IO',
  /** The server refused a message: the connection sent more, or faster, than its rate limit allows. */
  RateLimited: 'ERR_RATE_LIMITED',
  /** Work that needs another process was refused: the shared store (Redis) is unreachable. */
  Unavailable: 'ERR_UNAVAILABLE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The codes every JSON protocol's server answers a refused message with, in
 * its `error` message (`Error` in registry): what the shared codec refuses a
 * frame for (malformed, too large, an unknown type, a field it cannot take),
 * a message this client may not send there or then, and the rate limit. A
 * protocol adds its own (`ERR_PEER_GONE`, `ERR_TIMEOUT`).
 */
export type ServerRefusalCode =
  | typeof ErrorCode.MalformedFrame
  | typeof ErrorCode.FrameTooLarge
  | typeof ErrorCode.UnknownMessage
  | typeof ErrorCode.InvalidField
  | typeof ErrorCode.NotPermitted
  | typeof ErrorCode.RateLimited;

/** Base class of every signalbox error. */
export class SignalboxError extends Error {
  override readonly name: string = 'SignalboxError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A transport could not deliver, or was used after it closed. */
export class TransportError extends SignalboxError {
  override readonly name = 'TransportError';
}

/**
 * The other side broke the protocol: a bad frame, an unknown message, a
 * message out of order. Reported as data (an event), never thrown across a
 * transport.
 */
export class ProtocolError extends SignalboxError {
  override readonly name = 'ProtocolError';
}

/** A WebRTC connection or data channel failed. */
export class RtcError extends SignalboxError {
  override readonly name = 'RtcError';
}

/** What every per-protocol error takes besides its reason and message. */
export interface ProtocolErrorOptions {
  /** The underlying error, if any. */
  cause?: unknown;
  /** Overrides the {@link ErrorCode} the reason maps to (e.g. a code the remote named). */
  code?: ErrorCode;
}

/**
 * The base of a protocol's typed error: a {@link SignalboxError} named `name`
 * whose `reason` (one of the protocol's failure names) picks its `code` from
 * `codes` unless `options.code` says otherwise. Extend the result so that the
 * public class keeps its own name, docs and extra fields, and `instanceof`
 * works on both it and {@link SignalboxError}.
 *
 * @example
 * ```ts
 * type Failure = 'timeout' | 'peer-gone';
 * const codes: Record<Failure, ErrorCode> = { timeout: ErrorCode.Timeout, 'peer-gone': ErrorCode.PeerGone };
 * export class ChatError extends defineErrorClass('ChatError', codes) {}
 * new ChatError('timeout', 'no answer in 10 s').code; // 'E_TIMEOUT'
 * ```
 */
export function defineErrorClass<Name extends string, Reason extends string>(
  name: Name,
  codes: Readonly<Record<Reason, ErrorCode>>,
): ProtocolErrorClass<Name, Reason> {
  return class extends SignalboxError {
    override readonly name: Name = name;
    constructor(
      /** Why, in the protocol's own terms. */
      readonly reason: Reason,
      message: string,
      options: ProtocolErrorOptions = {},
    ) {
      super(options.code ?? codes[reason], message, options.cause === undefined ? undefined : { cause: options.cause });
    }
  };
}

const errorCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/**
 * A class made by {@link defineErrorClass}. Written out rather than
 * inferred, so the published declarations do not carry the statics of
 * Node's `Error` (`NodeJS.CallSite`), which a browser app's `tsc` rejects.
 */
export interface ProtocolErrorClass<Name extends string, Reason extends string> {
  new (
    reason: Reason,
    message: string,
    options?: ProtocolErrorOptions,
  ): SignalboxError & {
    readonly name: Name;
    /** Why, in the protocol's own terms. */
    readonly reason: Reason;
  };
  readonly prototype: SignalboxError;
}

/**
 * The {@link ErrorCode} a remote (the server, a peer) named in an error
 * message, or `fallback` for a code this library does not define.
 *
 * @example
 * ```ts
 * errorCodeOf('ERR_PEER_GONE'); // 'ERR_PEER_GONE'
 * errorCodeOf('E_UNHAPPY'); // 'ERR_INVALID_FIELD'
 * ```
 */
export function errorCodeOf(code: string, fallback: ErrorCode = ErrorCode.InvalidField): ErrorCode {
  return errorCodes.has(code) ? (code as ErrorCode) : fallback;
}

/** True when `value` is a signalbox error with the given code. */
export function isSignalboxError(value: unknown, code?: ErrorCode): value is SignalboxError {
  return value instanceof SignalboxError && (code === undefined || value.code === code);
}
