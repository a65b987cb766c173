import * as v from 'valibot';
import { jsonDepth, parseJson, textOf, type Codec } from '../../src/codec.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import { readDescription as readSdp } from '../../src/rtc/wire.js';
import type { Frame } from '../../src/transport.js';
import {
  Opcode,
  opcodeNames,
  type ClientBoundMessage,
  type ClientMessage,
  type Description,
  type OpcodeName,
  type ServerMessage,
} from './protocol.js';

export interface CloudLinkCodecOptions {
  /** Largest accepted frame, in characters. @default 65536 */
  maxFrameSize?: number;
}

/** Deepest nesting of objects and arrays in a frame a client sends: the frame is 1, `{type, sdp}` in it 2. */
export const MAX_FRAME_DEPTH = 32;

const peerId = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const lobbyId = v.pipe(v.string('the lobby ID payload must be a string'), v.minLength(1), v.maxLength(128));
/** Relayed untouched: any JSON value, `null` included, but present. */
const relayed = v.unknown();

/**
 * Shape of each frame a client may send: only what the server routes by is
 * checked. Keys a frame does not use are ignored (other implementations add
 * their own), but `tx`, which only the server sets, is refused before this.
 */
const clientFrames: Partial<Record<OpcodeName, v.GenericSchema>> = {
  KEEPALIVE: v.looseObject({}),
  INIT: v.looseObject({ payload: v.optional(relayed) }),
  CONFIG_HOST: v.looseObject({ payload: lobbyId }),
  CONFIG_PEER: v.looseObject({ payload: lobbyId }),
  MAKE_OFFER: v.looseObject({ payload: relayed, rx: peerId }),
  ACCEPT_OFFER: v.looseObject({ payload: relayed, rx: peerId }),
  MAKE_ANSWER: v.looseObject({ payload: relayed, rx: peerId }),
  ACK_CHECK: v.looseObject({ rx: peerId }),
  ACK_READY: v.looseObject({ rx: peerId }),
  SHUTDOWN: v.looseObject({}),
  SHUTDOWN_WRN: v.looseObject({ rx: peerId }),
};

/** Client opcodes that relay a payload: what nearly every frame under load is. */
const RELAYS_PAYLOAD = new Set<OpcodeName>(['MAKE_OFFER', 'ACCEPT_OFFER', 'MAKE_ANSWER']);

/** What `peerId` accepts, checked by hand on the hot path of {@link decodeWith}. */
const isPeerId = (value: unknown): value is string =>
  typeof value === 'string' && value.length >= 1 && value.length <= 128;

/** Shape of each frame the server sends; unknown extra keys are ignored (forward compatible). */
const serverFrames: Partial<Record<OpcodeName, v.GenericSchema>> = {
  VIOLATION: v.object({ payload: v.optional(v.string(), '') }),
  KEEPALIVE: v.object({}),
  INIT_OK: v.object({ payload: peerId }),
  ACK_HOST: v.object({ payload: v.optional(v.string(), '') }),
  ACK_PEER: v.object({ payload: v.optional(v.string(), '') }),
  NEW_PEER: v.object({ payload: peerId }),
  NEW_HOST: v.object({ payload: peerId }),
  ANTICIPATE_OFFER: v.object({ payload: relayed, tx: peerId }),
  RETURN_OFFER: v.object({ payload: relayed, tx: peerId }),
  ANTICIPATE_ANSWER: v.object({ payload: relayed, tx: peerId }),
  ACK_CHECK: v.object({ tx: peerId }),
  ACK_READY: v.object({ tx: peerId }),
  SHUTDOWN_ACK: v.object({ tx: peerId }),
};

/** The description each relayed opcode carries, which a client reads with {@link readDescription}. */
const descriptionType: Partial<Record<OpcodeName, 'offer' | 'answer'>> = {
  ANTICIPATE_OFFER: 'offer',
  RETURN_OFFER: 'offer',
  ANTICIPATE_ANSWER: 'answer',
};

/**
 * Reads the `payload` of a relayed frame as a session description of `type`,
 * as every protocol reads one (`src/rtc/wire.ts`): the SDP text, or
 * `{ type, sdp, … }` as a browser serializes `pc.localDescription` (`type`
 * may be missing; other keys are ignored). Returns `{ type, sdp }`; anything
 * else is ERR_INVALID_FIELD naming the field.
 *
 * @example
 * ```ts
 * readDescription('ANTICIPATE_OFFER', { type: 'offer', sdp: 'v=0…' }, 'offer'); // { type: 'offer', sdp: 'v=0…' }
 * readDescription('ANTICIPATE_OFFER', { type: 'answer', sdp: 'v=0…' }, 'offer'); // throws: `payload.type`
 * ```
 */
export function readDescription(name: string, payload: unknown, type: 'offer' | 'answer'): Description {
  const read = readSdp(payload, type, 'payload');
  if (read.problem !== undefined) {
    throw new ProtocolError(ErrorCode.InvalidField, `${name}: \`${read.field}\`: ${read.problem}`);
  }
  return read.value;
}

/** The SDP text of a description read by {@link readDescription}. */
export const sdpOf = (description: Description): string =>
  typeof description === 'string' ? description : description.sdp;

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
  // The server re-encodes what it relays, and JSON.stringify recurses.
  if (side === 'client' && jsonDepth(record, MAX_FRAME_DEPTH) > MAX_FRAME_DEPTH) {
    throw new ProtocolError(
      ErrorCode.MalformedFrame,
      `${name}: objects and arrays nested deeper than ${MAX_FRAME_DEPTH} levels`,
    );
  }
  const shape = shapes[name];
  if (!shape) {
    const other = side === 'client' ? 'server' : 'client';
    throw new ProtocolError(ErrorCode.NotPermitted, `opcode ${opcode} (${name}) is sent by the ${other} only`);
  }
  // The hot path: a relay whose routing fields are right needs no schema run
  // (which copies the whole record into a new object). Same rule as the
  // schema; anything it does not take, every malformed relay included, goes
  // through the schema, which words the error.
  if (side === 'client' && RELAYS_PAYLOAD.has(name) && 'payload' in record && isPeerId(record.rx)) {
    return { type: name, detail: { payload: record.payload, rx: record.rx } };
  }
  const result = v.safeParse(shape, record);
  if (!result.success) {
    const issue = result.issues[0];
    const key = issue.path?.map((item) => String(item.key)).join('.');
    throw new ProtocolError(ErrorCode.InvalidField, `${name}: ${key ? `\`${key}\`: ` : ''}${issue.message}`);
  }
  const { payload, tx, rx } = result.output as { payload?: unknown; tx?: string; rx?: string };
  const detail: { payload?: unknown; tx?: string; rx?: string } = {};
  if (payload !== undefined) {
    const type = side === 'server' ? descriptionType[name] : undefined;
    detail.payload = type === undefined ? payload : readDescription(name, payload, type);
  }
  if (tx !== undefined) detail.tx = tx;
  if (rx !== undefined) detail.rx = rx;
  return { type: name, detail };
}

function encode(message: ClientMessage | ServerMessage): string {
  const d = message.detail as { payload?: unknown; tx?: string; rx?: string };
  // JSON.stringify drops undefined fields: "empty fields omitted". A relayed
  // payload goes out as it came, `null` included.
  return JSON.stringify({ opcode: Opcode[message.type], payload: d.payload, tx: d.tx, rx: d.rx });
}

/**
 * The server's codec: decodes what clients send (refusing `tx`, server-only
 * opcodes, frames nested deeper than {@link MAX_FRAME_DEPTH} and wrong-typed
 * routing fields; a relayed `payload` may be any JSON) and encodes what the
 * server sends.
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
 * use it with `fromTransport`. It reads the relayed descriptions
 * ({@link readDescription}); one it cannot read is a `signalling.error`
 * (ERR_INVALID_FIELD naming the field), which ends the host or peer.
 *
 * @example
 * ```ts
 * fromTransport(() => webSocketTransport(url), clientCodec());
 * ```
 */
export function clientCodec(options: CloudLinkCodecOptions = {}): Codec<ClientBoundMessage, ClientMessage> {
  const max = options.maxFrameSize ?? 1 << 20;
  return {
    decode: (frame) => decodeWith(frame, max, serverFrames, 'server') as ClientBoundMessage,
    encode,
  };
}
