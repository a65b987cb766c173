/**
 * workrooms (`signalbox/workrooms`): calls between clients that find each
 * other in a directory of profiles, several at once, each its own WebRTC
 * connection, kept across signalling reconnects. The server session, the
 * client, the codecs, the server factory, and a friendly `EventTarget`
 * client. Browser-safe.
 *
 * @packageDocumentation
 */
export {
  workroomsClient,
  errorFrom,
  rtcId,
  type ClientInput,
  type ClientContext,
  type ClientCall,
  type ClientCommand,
  type ClientEvent,
  type ClientEmitted,
  type HangupReason,
} from './client.machine.js';
export {
  createWorkroomsClient,
  type WorkroomsClient,
  type WorkroomsClientOptions,
  type WorkroomsClientEventMap,
} from './client.js';
export {
  workroomsSession,
  CLOSE_TAKEN_OVER,
  type WorkroomsSessionActor,
  type SessionContext,
  type SessionEvent,
  type SessionInput,
  type SearchBudget,
  type SessionServices,
  type TakenOver,
} from './server.machine.js';
export { createWorkroomsServer, type WorkroomsServer, type WorkroomsServerOptions } from './server.js';
export {
  clientCodec,
  serverCodec,
  WorkroomsDecodeError,
  profileError,
  MAX_CALLS,
  MAX_PROFILES,
  MAX_SEARCH,
  MAX_PROFILE_DEPTH,
  MAX_PROFILE_SIZE,
  MAX_RELAY_DEPTH,
  type WorkroomsCodecOptions,
} from './codec.js';
export { memoryRegistry, type WorkroomsRegistry, type CallRecord } from './registry.js';
export { readDescription, readCandidate, wireProblem, type WireProblem, type WireRead } from '../../src/rtc/wire.js';
export {
  isId,
  generateId,
  clientMessageTypes,
  serverOnlyTypes,
  relayTypes,
  type RelayType,
  type UserProfiles,
  type CallInfo,
  type RegisteredCall,
  type HangupEntry,
  type DirectoryEntry,
  type SdpRelay,
  type IceRelay,
  type SentSdpRelay,
  type SentIceRelay,
  type ServerErrorCode,
  type ClientMessage,
  type ServerMessage,
  type ClientMessageType,
  type ServerMessageType,
  type MessageOf,
} from './protocol.js';
