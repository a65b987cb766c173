/**
 * swarm (`signalbox/swarm`): a matchmaking server pairs peers over
 * WebSocket, the pairs connect over WebRTC (non-trickle), and the peers
 * exchange resources named by their SHA-256 over the data channels,
 * verified on receipt, fetched from a peer's own peers when not urgent
 * (tier 2). The server session, the peer and its match (one matchmaking
 * request and its WebRTC connection), alice (fetch) and bob (serve)
 * machines, as XState machines; the codecs; the server factory; the
 * resource store. Browser-safe.
 *
 * @packageDocumentation
 */
export {
  swarmPeer,
  candidatesFor,
  type PeerInput,
  type PeerContext,
  type PeerEvent,
  type PeerEmitted,
  type PeerCommand,
  type PeerLink,
  type FetchJob,
  type UnlinkReason,
} from './peer.machine.js';
export {
  swarmMatch,
  type MatchInput,
  type MatchContext,
  type MatchEvent,
  type MatchMessage,
  type MatchReport,
  type MatchOutput,
  type MatchRole,
} from './match.machine.js';
export {
  swarmAlice,
  type AliceInput,
  type AliceContext,
  type AliceEvent,
  type AliceOutput,
  type Miss,
} from './alice.machine.js';
export {
  swarmBob,
  type BobInput,
  type BobContext,
  type BobEvent,
  type BobReserve,
  type ReserveResult,
} from './bob.machine.js';
export {
  swarmSession,
  type SwarmSessionActor,
  type SessionContext,
  type SessionEvent,
  type SessionInput,
  type SessionServices,
} from './server.machine.js';
export { createSwarmServer, type SwarmServer, type SwarmServerOptions } from './server.js';
export { memoryRegistry, type MatchRegistry, type Match, type PendingRequest, type RequestEnd } from './registry.js';
export { clientCodec, serverCodec, peerCodec, type SwarmCodecOptions, type Chunk } from './codec.js';
export { memoryStore, type ResourceStore, type ResourceWriter, type MemoryStore } from './store.js';
export { collect, resourceSource, type CollectInput, type CollectCommand, type CollectEvent } from './transfer.js';
export { linkChannel, sendFrame, type LinkEvent, type LinkRef, type LinkRequest, type LinkReply } from './link.js';
export { createSwarmPeer, type SwarmPeer, type SwarmPeerOptions } from './client.js';
export { SwarmError, type SwarmFailure } from './errors.js';
export {
  isHash,
  MAX_ID_LENGTH,
  MAX_PEER_LIST,
  clientMessageTypes,
  serverMessageTypes,
  peerMessageTypes,
  peerRequestTypes,
  peerReplyTypes,
  type Hash,
  type ClientMessage,
  type ServerMessage,
  type ClientMessageType,
  type ServerMessageType,
  type PeerMessage,
  type PeerMessageType,
  type PeerRequest,
  type PeerReply,
  type ServerErrorCode,
  type PeerErrorCode,
  type MessageOf,
} from './protocol.js';
