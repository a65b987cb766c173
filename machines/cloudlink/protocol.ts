import type { Message } from '../../src/message.js';

/** The seed's opcodes, by name. */
export const Opcode = {
  VIOLATION: 0,
  KEEPALIVE: 1,
  INIT: 2,
  INIT_OK: 3,
  CONFIG_HOST: 4,
  CONFIG_PEER: 5,
  ACK_PEER: 6,
  ACK_HOST: 7,
  NEW_PEER: 8,
  NEW_HOST: 9,
  MAKE_OFFER: 10,
  ANTICIPATE_OFFER: 11,
  ACCEPT_OFFER: 12,
  RETURN_OFFER: 13,
  MAKE_ANSWER: 14,
  ANTICIPATE_ANSWER: 15,
  ACK_CHECK: 16,
  ACK_READY: 17,
  SHUTDOWN: 18,
  SHUTDOWN_ACK: 19,
  SHUTDOWN_WRN: 20,
} as const;

export type OpcodeName = keyof typeof Opcode;

/** Opcode number → name. */
export const opcodeNames: readonly OpcodeName[] = Object.keys(Opcode) as OpcodeName[];

/** Protocol versions this implementation speaks (the `v` query parameter). */
export const supportedVersions: readonly number[] = [0];

type Empty = Record<string, never>;
/** One message type per name, so `Extract<…, { type: 'X' }>` narrows. */
type Each<T extends string, D> = T extends string ? Message<T, D> : never;

/**
 * A session description as a client reads it from ANTICIPATE_OFFER,
 * RETURN_OFFER or ANTICIPATE_ANSWER: the SDP text, or the browser's
 * `RTCSessionDescriptionInit` (`JSON.stringify(pc.localDescription)`), whose
 * `type`, when present, must be the one the opcode carries. Our clients send
 * the object form.
 */
export type Description = string | { type?: 'offer' | 'answer'; sdp: string };

/**
 * Frames a client sends. `rx` names the recipient; `tx` is never allowed. The
 * `payload` of INIT and of the relayed opcodes is any JSON value: the server
 * relays it untouched.
 */
export type ClientMessage =
  | Message<'KEEPALIVE', Empty>
  | Message<'INIT', { payload?: unknown }>
  | Each<'CONFIG_HOST' | 'CONFIG_PEER', { payload: string }>
  | Each<'MAKE_OFFER' | 'ACCEPT_OFFER' | 'MAKE_ANSWER', { payload: unknown; rx: string }>
  | Each<'ACK_CHECK' | 'ACK_READY' | 'SHUTDOWN_WRN', { rx: string }>
  | Message<'SHUTDOWN', Empty>;

/**
 * Frames the server sends. `tx` names the originating peer. `TRelayed` is the
 * relayed `payload`: any JSON as the server sends it, a {@link Description}
 * once the client codec has read it.
 */
export type ServerMessage<TRelayed = unknown> =
  | Message<'VIOLATION', { payload: string }>
  | Message<'KEEPALIVE', Empty>
  | Message<'INIT_OK', { payload: string }>
  | Each<'ACK_HOST' | 'ACK_PEER', { payload: string }>
  | Each<'NEW_PEER' | 'NEW_HOST', { payload: string }>
  | Each<'ANTICIPATE_OFFER' | 'RETURN_OFFER' | 'ANTICIPATE_ANSWER', { payload: TRelayed; tx: string }>
  | Each<'ACK_CHECK' | 'ACK_READY' | 'SHUTDOWN_ACK', { tx: string }>;

/** What a client receives: relayed payloads already read as descriptions by `clientCodec()`. */
export type ClientBoundMessage = ServerMessage<Description>;

export type ClientMessageType = ClientMessage['type'];
export type ServerMessageType = ServerMessage['type'];

export type { MessageOf } from '../../src/message.js';

/** Close code the server uses after a VIOLATION (WebSocket "policy violation"). */
export const VIOLATION_CLOSE_CODE = 1008;
