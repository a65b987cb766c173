/**
 * signalbox core: the message, transport and codec contracts, errors, the
 * runtime that connects machines to transports, and the WebRTC actor.
 * Browser-safe: nothing here imports Node or a WebRTC library.
 *
 * @packageDocumentation
 */
export { message, type Message, type MessageOf } from './message.js';
export {
  defineErrorClass,
  type ProtocolErrorOptions,
  type ProtocolErrorClass,
  ErrorCode,
  SignalboxError,
  TransportError,
  ProtocolError,
  RtcError,
  errorCodeOf,
  isSignalboxError,
} from './errors.js';
export {
  createTransport,
  subscriber,
  type Frame,
  type CloseInfo,
  type Transport,
  type TransportEvents,
  type TransportServer,
  type TransportServerEvents,
  type ConnectionInfo,
  type ConnectionCheck,
  type TransportControl,
  type TransportImpl,
} from './transport.js';
export { jsonCodec, parseJson, textOf, utf8, type Codec, type JsonCodecOptions } from './codec.js';
export { frameEvents, type EventCodec } from './event-codec.js';
export {
  toCustomEvent,
  fromCustomEvent,
  dispatchEmitted,
  forwardEvents,
  type EmittingActor,
  type EventSink,
} from './events.js';
export {
  fromTransport,
  serve,
  type SignallingEvent,
  type SignallingCommand,
  type TransportSource,
  type ProtocolServer,
} from './runtime.js';
export { memoryRouter, type Router } from './router.js';
export { sessionHost, type IdDraw, type SessionHost, type SessionHostInit } from './session-host.js';
export {
  protocolServer,
  type HostedProtocolServer,
  type HubOptions,
  type ProtocolServerInit,
  hubOptions,
  rateLimitedError,
} from './protocol-server.js';
export {
  connectionLimiter,
  defaultLimits,
  RATE_LIMITED,
  tokenBucket,
  type ConnectionLimiter,
  type ConnectionLimits,
  type TokenBucket,
} from './limits.js';
export { closeReasonLabel, type ServerMetrics } from './metrics.js';
export { jsonLogger, silentLogger, truncateUtf8, type Logger } from './logger.js';
export type { Clock } from './clock.js';
export { joinTransports } from './duplex.js';
export * from './backpressure.js';
export * from './rtc/index.js';
export { sha256Hex, sha256Stream, type Sha256Stream } from './sha256.js';
