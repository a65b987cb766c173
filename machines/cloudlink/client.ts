import { ErrorCode, ProtocolError, SignalboxError, TransportError } from '../../src/errors.js';
import { missingActor, type SignallingCommand, type SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import type { ClientMessage, ServerMessage } from './protocol.js';

/** Input shared by the host and peer machines. */
export interface ClientInput {
  /** The lobby to host or join (CONFIG_HOST / CONFIG_PEER payload). */
  lobby: string;
  /** Optional display name sent with INIT. */
  name?: string;
  /**
   * Give up on the server after this long without a KEEPALIVE from it (the
   * server sends one every `keepaliveInterval`, 10 s by default).
   * @default 25000
   */
  serverTimeout?: number;
  /**
   * A pair that is not linked this long after its handshake began is given
   * up (`unlinked` with reason `timeout`): the other side may be busy with
   * someone else, or gone.
   * @default 30000
   */
  handshakeTimeout?: number;
  /**
   * Host only: how many times in a row the host offers to one peer whose link
   * failed, timed out or was lost, before it waits for the peer to come back
   * (a new NEW_PEER). A link that reaches `ready` resets the count.
   * @default 3
   */
  offerAttempts?: number;
}

/** Events a host or peer machine accepts from the application. */
export type ClientCommand = { type: 'leave' };

/** A pair's handshake ran out of time; `generation` tells stale timers apart. */
export type LinkTimeout = { type: 'link.timeout'; peer: string; generation: number };

/** Everything a client machine reacts to. */
export type ClientEvent = ServerMessage | SignallingEvent | RtcEmitted | ClientCommand | LinkTimeout;

/** Why a pair ended. */
export type UnlinkReason = 'left' | 'failed' | 'lost' | 'timeout';

/** Emitted by both client machines (subscribe with `actor.on(type, …)` or {@link dispatchEmitted}). */
export type ClientEmitted =
  /** INIT_OK arrived: `id` is this client's peer id. */
  | { type: 'initialized'; detail: { id: string } }
  /** The other side of a pair is ready: both data channels are open. `transport` sends on ours, receives on theirs. */
  | { type: 'linked'; detail: { id: string; transport: Transport } }
  /**
   * A pair ended: the remote left (SHUTDOWN_ACK), its WebRTC link failed, its
   * channels closed under us (lost), or the handshake took too long.
   */
  | { type: 'unlinked'; detail: { id: string; reason: UnlinkReason } }
  /** The client stopped for good: `error` is set unless it was asked to leave. */
  | { type: 'stopped'; detail: { error?: SignalboxError } };

export type ClientSignallingCommand = SignallingCommand<ClientMessage>;

export const SIGNALLING_HINT =
  'use machine.provide({ actors: { signalling: fromTransport(() => webSocketTransport(url), cloudlink.clientCodec()) } })';
export const RTC_HINT =
  'use machine.provide({ actors: { rtc: fromRtc({ RTCPeerConnection }) } }) with the browser global, werift or node-datachannel';

/** The error a client ends with, from the event that ended it. */
export function errorFrom(event: ClientEvent | { type: string; error?: unknown }): SignalboxError {
  switch (event.type) {
    case 'VIOLATION':
      return new ProtocolError(
        ErrorCode.Violation,
        `server reported a violation: ${(event as { detail: { payload: string } }).detail.payload}`,
      );
    case 'signalling.closed': {
      const e = event as Extract<SignallingEvent, { type: 'signalling.closed' }>;
      return (
        e.error ??
        new TransportError(ErrorCode.TransportClosed, `signalling closed (${e.info.code} ${e.info.reason})`.trim())
      );
    }
    case 'signalling.error':
      return (event as Extract<SignallingEvent, { type: 'signalling.error' }>).error;
    default: {
      const error = (event as { error?: unknown }).error;
      if (error instanceof SignalboxError) return error;
      // `xstate.error.actor.<id>`: a child crashed. Only `signalling` opens the connection.
      const code = event.type === 'xstate.error.actor.signalling' ? ErrorCode.ConnectFailed : ErrorCode.RtcFailed;
      return new SignalboxError(code, error instanceof Error ? error.message : String(error ?? event.type), {
        cause: error,
      });
    }
  }
}

/** The placeholder actors of both client machines, typed as what a caller must provide. */
export const clientActors = {
  signalling: missingActor<ClientSignallingCommand>('signalling', SIGNALLING_HINT),
  rtc: missingActor<RtcCommand, RtcInput>('rtc', RTC_HINT),
};

/** Labels of the two peer connections of a pair: the one we offered and the one we answered. */
export const outLabel = (id: string) => `out:${id}`;
export const inLabel = (id: string) => `in:${id}`;
export function parseLabel(label: string): { side: 'out' | 'in'; id: string } {
  const colon = label.indexOf(':');
  return { side: label.slice(0, colon) as 'out' | 'in', id: label.slice(colon + 1) };
}
