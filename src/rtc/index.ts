/**
 * The `rtc` actor and the data-channel transport. The WebRTC implementation is
 * injected (browser global, werift, node-datachannel): nothing here imports one.
 *
 * @module
 */
export { fromRtc } from './rtc.actor.js';
export type { RtcActorInit, RtcActorLogic, RtcCommand, RtcEmitted, RtcInput, RtcLocalMedia } from './rtc.actor.js';
export { dataChannelTransport } from './data-channel-transport.js';
export type { DataChannelTransportInit } from './data-channel-transport.js';
export type {
  RTCDataChannelLike,
  RTCPeerConnectionLike,
  RtcEventListener,
  RtcEventTargetLike,
  RtcIceCandidateInit,
  RtcMediaTrackLike,
  RtcSessionDescription,
  RtcSessionDescriptionLike,
} from './types.js';
