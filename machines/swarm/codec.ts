import * as v from 'valibot';
import type { Codec } from '../../src/codec.js';
import { checkDetail, knownType, nestedAtMost, parseEnvelope } from '../../src/envelope.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import type { Message } from '../../src/message.js';
import { CHUNK_HEADER, CHUNK_SIZE, decodeChunk } from '../transfer/chunks.js';
import {
  clientMessageTypes,
  MAX_ID_LENGTH,
  MAX_PEER_LIST,
  serverMessageTypes,
  type ClientMessage,
  type PeerMessage,
  type PeerMessageType,
  type ServerMessage,
} from './protocol.js';

export interface SwarmCodecOptions {
  /** Largest accepted text frame, in characters. @default 65536 (server, data channel), 1048576 (client) */
  maxFrameSize?: number;
}

const id = v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_ID_LENGTH));
const hash = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'must be a SHA-256: 64 lowercase hex digits'));
const size = v.pipe(v.number(), v.safeInteger(), v.minValue(0));

/** Deepest nesting of objects and arrays in a relayed offer's or answer's `detail` (`{ offer: { type, sdp } }` is 2). */
export const MAX_RELAY_DEPTH = 32;

/**
 * An offer or answer the server relays: it checks the `context_id` it
 * routes on and the nesting depth; the description and any other key go on
 * as received (the receiving match reads them).
 */
const relay = <TEntries extends v.ObjectEntries>(entries: TEntries) =>
  v.pipe(v.looseObject(entries), nestedAtMost(MAX_RELAY_DEPTH));

// What clients send: strict (a stray key is an error), except the relays.
const clientDetails: Record<ClientMessage['type'], v.GenericSchema> = {
  i_am: v.strictObject({ client_id: id }),
  requesting_peers: v.strictObject({ context_id: id }),
  sending_offer: relay({ offer: v.unknown(), context_id: id }),
  sending_answer: relay({ answer: v.unknown(), context_id: id }),
};

// What the server sends: unknown extra keys are ignored (forward compatible).
const serverDetails: Record<ServerMessage['type'], v.GenericSchema> = {
  requesting_offer: v.object({ context_id: id }),
  wait_for_offer: v.object({ context_id: id }),
  forwarding_offer: relay({ offer: v.unknown(), context_id: id }),
  forwarding_answer: relay({ answer: v.unknown(), context_id: id }),
  error: v.object({
    code: v.string(),
    message: v.string(),
    event: v.optional(v.string()),
    context_id: v.optional(v.string()),
  }),
};

// Data channel: strict both ways, a peer is as untrusted as a client.
const peerDetails: Record<PeerMessageType, v.GenericSchema> = {
  i_am: v.strictObject({ client_id: id }),
  requesting_peer_list: v.strictObject({}),
  sending_peer_list: v.strictObject({ peer_list: v.pipe(v.array(id), v.maxLength(MAX_PEER_LIST)) }),
  querying_resource: v.strictObject({ hash }),
  reserve_resource: v.strictObject({ hash }),
  resource_found: v.strictObject({ hash, size }),
  resource_not_found: v.strictObject({ hash }),
  requesting_resource: v.strictObject({ hash }),
  transferring_resource: v.strictObject({ hash }),
  error: v.strictObject({
    code: v.pipe(v.string(), v.maxLength(64)),
    message: v.pipe(v.string(), v.maxLength(1024)),
    hash: v.optional(hash),
  }),
};

/** Types only the server sends: a client sending one is refused as not permitted, not as unknown. */
const serverOnlyTypes = serverMessageTypes.filter((type) => !(clientMessageTypes as readonly string[]).includes(type));

/** The `detail` of a message of a type `schemas` knows, checked; a missing `detail` is checked as `{}`. */
function check(
  schemas: Record<string, v.GenericSchema>,
  type: string,
  detail: unknown,
  serverOnly: readonly string[] = [],
): unknown {
  return checkDetail(schemas[knownType(type, schemas, serverOnly)]!, type, detail ?? {});
}

const encode = (message: Message): string => JSON.stringify({ type: message.type, detail: message.detail });

/**
 * The server's codec: JSON text `{"type": …, "detail": {…}}` with the seed's
 * client actions. It rejects server-only and unknown types, wrong or extra
 * fields, binary frames and frames over `maxFrameSize`. In `sending_offer` and
 * `sending_answer` it checks only `context_id` and the nesting depth
 * ({@link MAX_RELAY_DEPTH}): the description (an SDP string, `{ type, sdp }`,
 * any JSON) and extra keys are relayed as received.
 *
 * @example
 * ```ts
 * serverCodec().decode('{"type":"i_am","detail":{"client_id":"laptop-1"}}');
 * // { type: 'i_am', detail: { client_id: 'laptop-1' } }
 * ```
 */
export function serverCodec(options: SwarmCodecOptions = {}): Codec<ClientMessage, ServerMessage> {
  const max = options.maxFrameSize ?? 65536;
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max);
      return { type, detail: check(clientDetails, type, detail, serverOnlyTypes) } as ClientMessage;
    },
    encode,
  };
}

/**
 * The client's codec, the mirror of {@link serverCodec}.
 *
 * @example
 * ```ts
 * fromTransport(() => webSocketTransport('wss://example.org/swarm'), clientCodec());
 * ```
 */
export function clientCodec(options: SwarmCodecOptions = {}): Codec<ServerMessage, ClientMessage> {
  const max = options.maxFrameSize ?? 1 << 20;
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max);
      return { type, detail: check(serverDetails, type, detail) } as ServerMessage;
    },
    encode,
  };
}

/** A binary data-channel frame: one piece of a resource's bytes. */
export interface Chunk {
  type: 'chunk';
  detail: { seq: number; data: Uint8Array };
}

/**
 * The data-channel codec: text frames are {@link PeerMessage}s (checked as
 * strictly as the server checks clients), binary frames are chunks of a
 * resource (4-byte big-endian sequence number, then at most 16 KiB).
 * `encode` takes messages only: send chunks with `encodeChunk`.
 *
 * @example
 * ```ts
 * peerCodec().decode('{"type":"querying_resource","detail":{"hash":"9f86…"}}');
 * peerCodec().decode(encodeChunk(0, bytes)); // { type: 'chunk', detail: { seq: 0, data } }
 * ```
 */
export function peerCodec(options: SwarmCodecOptions = {}): Codec<PeerMessage | Chunk, PeerMessage> {
  const max = options.maxFrameSize ?? 65536;
  return {
    decode(frame) {
      if (typeof frame !== 'string') {
        const chunk = decodeChunk(frame);
        if ('invalid' in chunk) {
          const code =
            frame.byteLength > CHUNK_HEADER + CHUNK_SIZE ? ErrorCode.FrameTooLarge : ErrorCode.MalformedFrame;
          throw new ProtocolError(code, chunk.invalid);
        }
        return { type: 'chunk', detail: chunk };
      }
      const { type, detail } = parseEnvelope(frame, max);
      return { type, detail: check(peerDetails, type, detail) } as PeerMessage;
    },
    encode,
  };
}
