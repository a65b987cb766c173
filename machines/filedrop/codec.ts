import * as v from 'valibot';
import type { Codec } from '../../src/codec.js';
import { checkDetail, knownType, parseEnvelope, verbatim } from '../../src/envelope.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import {
  clientMessageTypes,
  isPeerId,
  serverOnlyTypes,
  type ClientMessage,
  type ClientMessageType,
  type ServerMessage,
} from './protocol.js';

export interface FileDropCodecOptions {
  /** Largest accepted frame, in characters. @default 65536 (server), 1048576 (client) */
  maxFrameSize?: number;
  /** Server only: what counts as a well-formed peer id. @default isPeerId */
  isPeerId?: (value: unknown) => boolean;
}

/**
 * What the server codec produces for a frame that is fine except for its
 * `peer`: not a string, or not in peer-id form. The session answers it with
 * the seed's `invalid peer id`.
 */
export interface InvalidPeer {
  type: 'session.invalidPeer';
  detail: { event: ClientMessageType; peer: unknown };
}

const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const reason = v.pipe(v.string(), v.minLength(1), v.maxLength(64));
const description = <T extends 'offer' | 'answer'>(type: T) =>
  v.object({ type: v.literal(type), sdp: v.pipe(v.string(), v.minLength(1)) });
const candidate = v.object({
  candidate: v.string(),
  sdpMid: v.optional(v.nullable(v.string())),
  sdpMLineIndex: v.optional(v.nullable(count)),
  usernameFragment: v.optional(v.nullable(v.string())),
});
const fileInfo = v.object({
  name: v.pipe(v.string(), v.minLength(1), v.maxLength(1024)),
  size: count,
  type: v.pipe(v.string(), v.maxLength(255)),
  sha256: v.optional(v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits'))),
});
const responseData = v.union(
  [v.object({ error: reason }), fileInfo],
  'must be a file ({ name, size, type }) or { error }',
);
const progress = v.object({
  received: count,
  total: count,
  done: v.optional(v.literal(true)),
  error: v.optional(reason),
});

/** The `data` of each relayed message; request and retry carry none. */
const dataOf: Record<ClientMessageType, v.GenericSchema | undefined> = {
  request: undefined,
  retry: undefined,
  response: responseData,
  offer: description('offer'),
  answer: description('answer'),
  candidate,
  progress,
};

// Clients: `detail` is exactly `{ peer, data? }` (strict: a stray key is an error).
const anyPeer = v.optional(v.unknown());
const clientDetails = Object.fromEntries(
  clientMessageTypes.map((type) => {
    const data = dataOf[type];
    return [type, v.strictObject(data ? { peer: anyPeer, data } : { peer: anyPeer })];
  }),
) as unknown as Record<ClientMessageType, v.GenericSchema>;

// The server's frames: unknown extra keys are ignored (forward compatible).
const peer = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const serverDetails: Record<ServerMessage['type'], v.GenericSchema> = {
  ...(Object.fromEntries(
    clientMessageTypes.map((type) => {
      const data = dataOf[type];
      return [type, v.object(data ? { peer, data } : { peer })];
    }),
  ) as unknown as Record<ClientMessageType, v.GenericSchema>),
  assign: v.object({ peer }),
  'invalid peer id': v.object({ event: v.string(), peer: v.optional(v.string()) }),
  'peer not exists': v.object({ peer: v.string(), event: v.optional(v.string()) }),
  error: v.object({ code: v.string(), message: v.string(), event: v.optional(v.string()) }),
};

/**
 * The server's codec: JSON text `{"type": …, "detail": {"peer": …, "data"?: …}}`.
 * It rejects server-only and unknown types, wrong or extra fields, and
 * frames over `maxFrameSize`; a frame whose only fault is its `peer` decodes
 * to {@link InvalidPeer}.
 *
 * @example
 * ```ts
 * serverCodec().decode('{"type":"request","detail":{"peer":"K7PQ2MZA"}}');
 * // { type: 'request', detail: { peer: 'K7PQ2MZA' } }
 * ```
 */
export function serverCodec(options: FileDropCodecOptions = {}): Codec<ClientMessage | InvalidPeer, ServerMessage> {
  const max = options.maxFrameSize ?? 65536;
  const validId = options.isPeerId ?? isPeerId;
  return {
    decode(frame) {
      // filedrop errors quote the sender's type and keys in full (the frame cap bounds them).
      const { type, detail } = parseEnvelope(frame, max, verbatim);
      const event = knownType(type, clientMessageTypes, serverOnlyTypes);
      if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) {
        throw new ProtocolError(ErrorCode.InvalidField, `${type}: \`detail\` must be an object { peer, data? }`);
      }
      const output = checkDetail(clientDetails[event], type, detail) as { peer: unknown };
      if (!validId(output.peer)) return { type: 'session.invalidPeer', detail: { event, peer: output.peer } };
      return { type: event, detail: output } as ClientMessage;
    },
    encode,
  };
}

/**
 * The client's codec, the mirror of {@link serverCodec}: senders and
 * receivers use it with `fromTransport`.
 *
 * @example
 * ```ts
 * fromTransport(() => webSocketTransport('wss://example.org/filedrop'), clientCodec());
 * ```
 */
export function clientCodec(options: Omit<FileDropCodecOptions, 'isPeerId'> = {}): Codec<ServerMessage, ClientMessage> {
  const max = options.maxFrameSize ?? 1 << 20;
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max, verbatim);
      return {
        type,
        detail: checkDetail(serverDetails[knownType(type, serverDetails)], type, detail),
      } as ServerMessage;
    },
    encode,
  };
}

function encode(message: ClientMessage | ServerMessage): string {
  return JSON.stringify({ type: message.type, detail: message.detail });
}
