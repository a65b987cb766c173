import * as v from 'valibot';
import type { Codec } from '../../src/codec.js';
import { checkDetail, knownType, nestedAtMost, parseEnvelope, verbatim } from '../../src/envelope.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import {
  clientMessageTypes,
  serverOnlyTypes,
  type ClientMessage,
  type ClientMessageType,
  type RelayedMessage,
  type ServerMessage,
} from './protocol.js';

export interface FileDropCodecOptions {
  /** Largest accepted frame, in characters. @default 65536 (server), 1048576 (client) */
  maxFrameSize?: number;
}

/**
 * What the server codec produces for a frame that is fine except for its
 * `peer`: missing or not a string. The session answers it with the seed's
 * `invalid peer id`. (A string nobody holds is `peer not exists`, as the
 * original server answers.)
 */
export interface InvalidPeer {
  type: 'session.invalidPeer';
  detail: { event: ClientMessageType };
}

/** Deepest nesting of objects and arrays in a relayed `data` (`{ a: [1] }` is 2). */
export const MAX_DATA_DEPTH = 32;

/** A relayed payload: any JSON the frame held, as it is, if it does not nest too deeply. */
const payload = v.pipe(v.unknown(), nestedAtMost(MAX_DATA_DEPTH, `nests deeper than ${MAX_DATA_DEPTH} levels`));

/**
 * Whether each message carries `data`: request and retry never (the seed's
 * `string`), done may (the original's has none; ours carries the digest),
 * the others always (the seed's `string, any`: `null` is data too).
 */
const dataOf: Record<ClientMessageType, 'none' | 'optional' | 'required'> = {
  request: 'none',
  retry: 'none',
  done: 'optional',
  response: 'required',
  offer: 'required',
  answer: 'required',
  candidate: 'required',
  progress: 'required',
};

// Clients: `detail` is exactly `{ peer, data? }` (strict: a stray key is an error).
const anyPeer = v.optional(v.unknown());
const clientDetails = Object.fromEntries(
  clientMessageTypes.map((type) => {
    const data = dataOf[type];
    if (data === 'none') return [type, v.strictObject({ peer: anyPeer })];
    return [type, v.strictObject({ peer: anyPeer, data: data === 'optional' ? v.optional(payload) : payload })];
  }),
) as unknown as Record<ClientMessageType, v.GenericSchema>;

// The server's frames: unknown extra keys are ignored (forward compatible); `data` is read by the machines.
const peer = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const serverDetails: Record<ServerMessage['type'], v.GenericSchema> = {
  ...(Object.fromEntries(
    clientMessageTypes.map((type) => [
      type,
      dataOf[type] === 'none' ? v.object({ peer }) : v.object({ peer, data: v.optional(v.unknown()) }),
    ]),
  ) as unknown as Record<ClientMessageType, v.GenericSchema>),
  assign: v.object({ peer }),
  'invalid peer id': v.object({ event: v.optional(v.string()) }),
  'peer not exists': v.object({ peer: v.optional(v.string()), event: v.optional(v.string()) }),
  error: v.object({ code: v.string(), message: v.string(), event: v.optional(v.string()) }),
};

/**
 * The server's codec: JSON text `{"type": …, "detail": {"peer": …, "data"?: …}}`.
 * It rejects server-only and unknown types, extra fields, a missing or
 * unexpected `data`, `data` nested deeper than {@link MAX_DATA_DEPTH}, and
 * frames over `maxFrameSize`; what `data` holds is not its business. A frame
 * whose only fault is its `peer` (not a string) decodes to {@link InvalidPeer}.
 *
 * @example
 * ```ts
 * serverCodec().decode('{"type":"request","detail":{"peer":"K7PQ2MZA"}}');
 * // { type: 'request', detail: { peer: 'K7PQ2MZA' } }
 * ```
 */
export function serverCodec(options: FileDropCodecOptions = {}): Codec<RelayedMessage | InvalidPeer, ServerMessage> {
  const max = options.maxFrameSize ?? 65536;
  return {
    decode(frame) {
      // filedrop errors quote the sender's type and keys in full (the frame cap bounds them).
      const { type, detail } = parseEnvelope(frame, max, verbatim);
      const event = knownType(type, clientMessageTypes, serverOnlyTypes);
      if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) {
        throw new ProtocolError(ErrorCode.InvalidField, `${type}: \`detail\` must be an object { peer, data? }`);
      }
      const output = checkDetail(clientDetails[event], type, detail) as { peer: unknown };
      if (typeof output.peer !== 'string') return { type: 'session.invalidPeer', detail: { event } };
      return { type: event, detail: output } as RelayedMessage;
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
export function clientCodec(options: FileDropCodecOptions = {}): Codec<ServerMessage, ClientMessage> {
  const max = options.maxFrameSize ?? 1 << 20;
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max, verbatim);
      const known = knownType(type, serverDetails);
      // The original server's notices carry nothing (the seed's "(None)"): read as no detail.
      if (detail === undefined && (known === 'invalid peer id' || known === 'peer not exists')) {
        return { type: known, detail: {} } as ServerMessage;
      }
      return { type, detail: checkDetail(serverDetails[known], type, detail) } as ServerMessage;
    },
    encode,
  };
}

function encode(message: ClientMessage | RelayedMessage | ServerMessage): string {
  return JSON.stringify({ type: message.type, detail: message.detail });
}
