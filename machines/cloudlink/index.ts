/**
 * CloudLink Omega (`signalbox/cloudlink`): the server session, the
 * game host and the game peer, as XState machines; the codecs; the server
 * factory. Browser-safe.
 *
 * @packageDocumentation
 */
export { cloudlinkHost, type HostContext, type HostLink, type HostLinkStage } from './host.machine.js';
export { cloudlinkPeer, type PeerContext } from './peer.machine.js';
export {
  cloudlinkSession,
  type CloudLinkSessionActor,
  type SessionContext,
  type SessionEvent,
  type SessionInput,
  type SessionServices,
  type SessionTiming,
} from './server.machine.js';
export { createCloudLinkServer, type CloudLinkServer, type CloudLinkServerOptions } from './server.js';
export { clientCodec, serverCodec, type CloudLinkCodecOptions } from './codec.js';
export { memoryDirectory, Stage, type LobbyDirectory, type Role } from './directory.js';
export {
  Opcode,
  opcodeNames,
  supportedVersions,
  VIOLATION_CLOSE_CODE,
  type ClientMessage,
  type ClientBoundMessage,
  type ServerMessage,
  type ClientMessageType,
  type ServerMessageType,
  type MessageOf,
  type OpcodeName,
} from './protocol.js';
export type { ClientInput, ClientCommand, ClientEvent, ClientEmitted } from './client.js';
