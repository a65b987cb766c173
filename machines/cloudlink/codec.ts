import * as v from 'valibot';
import { parseJson, textOf, type Codec } from '../../src/codec.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import type { Frame } from '../../src/transport.js';
import { Opcode, opcodeNames, type ClientMessage, type OpcodeName, type ServerMessage } from './protocol.js';

export interface CloudLinkCodecOptions {
  /** Largest accepted frame, in characters. @default 65536 */
  maxFrameSize?: number;
}

const peerId = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const lobbyId = v.pipe(v.string('the lobby ID payload must be a string'), v.minLength(1), v.maxLength(128));
const sdp = v.pipe(v.string('the SDP payload must be a string'), v.minLength(1));
const displayName = v.pipe(v.string('the INIT payload (display name) must be a string'), v.maxLength(64));

/** Shape of each frame a client may send; `strictObject` rejects extra keys (`tx` included). */
const clientFrames: Partial<Record<OpcodeName, v.GenericSchema>> = {
  KEEPALIVE: v.strictObject({ opcode: v.number() }),
  INIT: v.strictObject({ opcode: v.number(), payload: v.optional(displayName) }),
  CONFIG_HOST: v.strictObject({ opcode: v.number(), payload: lobbyId }),
  CONFIG_PEER: v.strictObject({ opcode: v.number(), payload: lobbyId }),
  MAKE_OFFER: v.strictObject({ opcode: v.number(), payload: sdp, rx: peerId }),
  ACCEPT_OFFER: v.strictObject({ opcode: v.number(), payload: sdp, rx: peerId }),
  MAKE_ANSWER: v.strictObject({ opcode: v.number(), payload: sdp, rx: peerId }),
  ACK_CHECK: v.strictObject({ opcode: v.number(), rx: peerId }),
  ACK_READY: v.strictObject({ opcode: v.number(), rx: peerId }),
  SHUTDOWN: v.strictObject({ opcode: v.number() }),
  SHUTDOWN_WRN: v.strictObject({ opcode: v.number(), rx: peerId }),
};

/** Shape of each frame the server sends; unknown extra keys are ignored (forward compatible). */
const serverFrames: Partial<Record<OpcodeName, v.GenericSchema>> = {
  VIOLATION: v.object({ payload: v.optional(v.string(), '') }),
  KEEPALIVE: v.object({}),
  INIT_OK: v.object({ payload: peerId }),
  ACK_HOST: v.object({ payload: v.optional(v.string(), '') }),
  ACK_PEER: v.object({ payload: v.optional(v.string(), '') }),
  NEW_PEER: v.object({ payload: peerId }),
  NEW_HOST: v.object({ payload: peerId }),
  ANTICIPATE_OFFER: v.object({ payload: sdp, tx: peerId }),
  RETURN_OFFER: v.object({ payload: sdp, tx: peerId }),
  ANTICIPATE_ANSWER: v.object({ payload: sdp, tx: peerId }),
  ACK_CHECK: v.object({ tx: peerId }),
  ACK_READY: v.object({ tx: peerId }),
  SHUTDOWN_ACK: v.object({ tx: peerId }),
};

function decodeWith(
  frame: Frame,
  max: number,
  shapes: Partial<Record<OpcodeName, v.GenericSchema>>,
  side: 'client' | 'server',
) {
  const value = parseJson(textOf(frame, max));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError(ErrorCode.MalformedFrame, 'frame must be a JSON object');
  }
  const record = value as Record<string, unknown>;
  const opcode = record.opcode;
  if (typeof opcode !== 'number' || !Number.isInteger(opcode)) {
    throw new ProtocolError(ErrorCode.InvalidField, '`opcode` must be an integer');
  }
  const name = opcodeNames[opcode];
  if (name === undefined) throw new ProtocolError(ErrorCode.UnknownMessage, `unknown opcode ${opcode}`);
  if (side === 'client' && 'tx' in record) {
    throw new ProtocolError(ErrorCode.InvalidField, '`tx` is set by the server only; name the recipient in `rx`');
  }
  const shape = shapes[name];
  if (!shape) {
    const other = side === 'client' ? 'server' : 'client';
    throw new ProtocolError(ErrorCode.NotPermitted, `opcode ${opcode} (${name}) is sent by the ${other} only`);
  }
  const result = v.safeParse(shape, record);
  if (!result.success) {
    const issue = result.issues[0];
    const key = issue.path?.map((item) => String(item.key)).join('.');
    throw new ProtocolError(ErrorCode.InvalidField, `${name}: ${key ? `\`${key}\`: ` : ''}${issue.message}`);
  }
  const { payload, tx, rx } = result.output as { payload?: string; tx?: string; rx?: string };
  const detail: { payload?: string; tx?: string; rx?: string } = {};
  if (payload !== undefined) detail.payload = payload;
  if (tx !== undefined) detail.tx = tx;
  if (rx !== undefined) detail.rx = rx;
  return { type: name, detail };
}

function encode(message: ClientMessage | ServerMessage): string {
  const d = message.detail as { payload?: string; tx?: string; rx?: string };
  // JSON.stringify drops undefined fields: "empty fields omitted".
  return JSON.stringify({ opcode: Opcode[message.type], payload: d.payload, tx: d.tx, rx: d.rx });
}

/**
 * The server's codec: decodes what clients send (rejecting `tx`, server-only
 * opcodes, wrong-typed or extra fields) and encodes what the server sends.
 *
 * @example
 * ```ts
 * const codec = serverCodec({ maxFrameSize: 32_768 });
 * codec.decode('{"opcode":4,"payload":"lobby-1"}'); // { type: 'CONFIG_HOST', detail: { payload: 'lobby-1' } }
 * ```
 */
export function serverCodec(options: CloudLinkCodecOptions = {}): Codec<ClientMessage, ServerMessage> {
  const max = options.maxFrameSize ?? 65536;
  return {
    decode: (frame) => decodeWith(frame, max, clientFrames, 'client') as ClientMessage,
    encode,
  };
}

/**
 * The client's codec, the mirror of {@link serverCodec}: hosts and peers
 * use it with `fromTransport`.
 *
 * @example
 * ```ts
 * fromTransport(() => webSocketTransport(url), clientCodec());
 * ```
 */
export function clientCodec(options: CloudLinkCodecOptions = {}): Codec<ServerMessage, ClientMessage> {
  const max = options.maxFrameSize ?? 1 << 20;
  return {
    decode: (frame) => decodeWith(frame, max, serverFrames, 'server') as ServerMessage,
    encode,
  };
}
