import { fromCallback, type EventObject } from 'xstate';
import { ErrorCode, ProtocolError, TransportError } from '../../src/errors.js';
import type { Transport } from '../../src/transport.js';
import { peerCodec } from './codec.js';
import type { PeerMessage, PeerReply, PeerRequest } from './protocol.js';

/**
 * What a link's `channel` actor reports to the peer, and what the peer
 * forwards to its alice and bob children. `link` names the data channel
 * (the `context_id` of the match that made it).
 */
export type LinkEvent =
  | { type: 'link.message'; link: string; message: PeerMessage }
  /** One binary frame: a piece of the resource being transferred. */
  | { type: 'link.chunk'; link: string; seq: number; data: Uint8Array }
  /** A frame the codec refused; `binary` when it was a binary frame (the byte stream is then broken). */
  | { type: 'link.error'; link: string; error: ProtocolError; binary: boolean }
  | { type: 'link.closed'; link: string };

/** A request from the remote, as the peer forwards it to the link's bob. */
export type LinkRequest = { type: 'link.message'; link: string; message: PeerRequest };
/** A reply from the remote, as the peer forwards it to the alice waiting for it. */
export type LinkReply = { type: 'link.message'; link: string; message: PeerReply };

/** One open data channel with a remote peer. */
export interface LinkRef {
  link: string;
  transport: Transport;
}

const codec = peerCodec();

/**
 * Sends one data-channel message. A channel that closed meanwhile is not an
 * error here: its close reaches the peer as `link.closed`.
 */
export function sendFrame(transport: Transport, message: PeerMessage): void {
  try {
    transport.send(codec.encode(message));
  } catch (error) {
    if (!(error instanceof TransportError)) throw error;
  }
}

/**
 * The `channel` actor of one link: decodes every frame of the data channel
 * with {@link peerCodec} and reports it to the peer as a {@link LinkEvent}.
 * Stopping it stops listening; closing the channel is the peer's business.
 */
export const linkChannel = fromCallback<EventObject, LinkRef>(({ input, sendBack }) => {
  const { link, transport } = input;
  const offMessage = transport.on('message', (frame) => {
    let decoded;
    try {
      decoded = codec.decode(frame);
    } catch (error) {
      const protocolError =
        error instanceof ProtocolError ? error : new ProtocolError(ErrorCode.MalformedFrame, String(error));
      sendBack({
        type: 'link.error',
        link,
        error: protocolError,
        binary: typeof frame !== 'string',
      } satisfies LinkEvent);
      return;
    }
    if (decoded.type === 'chunk') {
      sendBack({ type: 'link.chunk', link, seq: decoded.detail.seq, data: decoded.detail.data } satisfies LinkEvent);
    } else sendBack({ type: 'link.message', link, message: decoded } satisfies LinkEvent);
  });
  // Reported a microtask later: a child of the peer (alice, bob) that closes a link itself must not
  // have the peer take a step inside its own action. Nothing comes after a close, so order holds.
  const closed = () => queueMicrotask(() => sendBack({ type: 'link.closed', link } satisfies LinkEvent));
  const offClose = transport.on('close', closed);
  if (!transport.isOpen) closed();
  return () => {
    offMessage();
    offClose();
  };
});
