import * as v from 'valibot';
import { jsonDepth, type Codec } from '../../src/codec.js';
import { checkDetail, clip, knownType, nestedAtMost, parseEnvelope } from '../../src/envelope.js';
import { ErrorCode, ProtocolError } from '../../src/errors.js';
import {
  clientMessageTypes,
  isId,
  relayTypes,
  type RelayType,
  serverOnlyTypes,
  type ClientMessage,
  type ClientMessageType,
  type ServerMessage,
  type ServerMessageType,
} from './protocol.js';

export interface WorkroomsCodecOptions {
  /** Largest accepted frame, in characters. @default 65536 (server), 1048576 (client) */
  maxFrameSize?: number;
}

/** Most calls one `register` or `hangup` may name. */
export const MAX_CALLS = 64;
/** Most profile sources (`github`, …) one `userprofile` may carry. */
export const MAX_PROFILES = 8;
/** Longest `autocomplete` search, in characters. */
export const MAX_SEARCH = 128;
/** Deepest nesting of objects and arrays in one `userprofile` (`{ github: {…} }` is 2). */
export const MAX_PROFILE_DEPTH = 16;
/** Deepest nesting of objects and arrays in the `detail` of one `offer`, `answer` or `ice` (`{ sdp: { type, sdp } }` is 2). */
export const MAX_RELAY_DEPTH = 16;
/** Largest `userprofile`, in characters of its JSON: the server sends it to every caller and searcher. */
export const MAX_PROFILE_SIZE = 16384;

const id = v.custom<string>(isId, 'must be 22 to 64 characters of A-Z a-z 0-9 - _');
const profile = v.record(v.string(), v.unknown());
const profiles = v.pipe(
  v.record(v.pipe(v.string(), v.minLength(1), v.maxLength(32)), profile),
  v.check((value) => Object.keys(value).length <= MAX_PROFILES, `at most ${MAX_PROFILES} profile sources`),
  // JSON.stringify recurses: a profile nested thousands deep would throw in every session that sends it on.
  nestedAtMost(MAX_PROFILE_DEPTH),
  v.check(
    // (valibot runs every check: measure only what the depth check let through)
    (value) =>
      jsonDepth(value, MAX_PROFILE_DEPTH) > MAX_PROFILE_DEPTH || JSON.stringify(value).length <= MAX_PROFILE_SIZE,
    `larger than ${MAX_PROFILE_SIZE} characters of JSON`,
  ),
);
// Relays: the server needs callid and peerid to route; `sdp` and `candidate`
// (and any other key) are the two clients' business and go through as sent.
// Only their nesting is bounded: the relay is re-encoded with JSON.stringify,
// which recurses. The bound is checked on the detail as received: valibot's
// output leaves out keys such as `constructor`, which the relay still carries.
const relay = (payload: 'sdp' | 'candidate') =>
  v.pipe(v.unknown(), nestedAtMost(MAX_RELAY_DEPTH), v.looseObject({ callid: id, peerid: id, [payload]: v.unknown() }));
const calls = <T extends v.GenericSchema>(item: T, min: number) =>
  v.pipe(v.array(item), v.minLength(min), v.maxLength(MAX_CALLS, `at most ${MAX_CALLS} calls`));

// Clients: strict objects, a stray key is an error (but for the relays, above). `register`'s calls are the
// client's copies of outboundcall / inboundcall: only `callid` matters.
const clientDetails: Record<ClientMessageType, v.GenericSchema> = {
  register: v.strictObject({
    sessionid: id,
    calls: calls(
      v.object({
        callid: id,
        fromsessionid: v.optional(v.string()),
        tosessionid: v.optional(v.string()),
      }),
      0,
    ),
  }),
  userprofile: profiles,
  call: v.strictObject({ to: id }),
  hangup: v.strictObject({ calls: calls(v.strictObject({ callid: id, sessionid: v.optional(v.string()) }), 1) }),
  autocomplete: v.strictObject({
    search: v.pipe(v.string(), v.maxLength(MAX_SEARCH)),
    // The seed's form carries `results`; a client need not fill them, and they are ignored, but for their
    // size (it counts toward the answer's budget: the server re-encodes the request to measure it, so their
    // nesting is bounded like the server's own answer's: the array, an entry, then its profiles).
    results: v.optional(v.pipe(v.array(v.unknown()), nestedAtMost(MAX_PROFILE_DEPTH + 2))),
  }),
  offer: relay('sdp'),
  answer: relay('sdp'),
  ice: relay('candidate'),
};

// The server's frames: unknown extra keys are ignored (forward compatible).
const text = v.string();
const callInfo = { callid: text, fromsessionid: text, tosessionid: text, userprofiles: profiles };
const serverDetails: Record<ServerMessageType, v.GenericSchema> = {
  registered: v.object({ sessionid: text, calls: v.array(text) }),
  outboundcall: v.object({ ...callInfo, outbound: v.literal(true) }),
  inboundcall: v.object({ ...callInfo, inbound: v.literal(true) }),
  hangup: v.object({ calls: v.array(v.object({ callid: text, sessionid: text })) }),
  autocomplete: v.object({
    search: text,
    results: v.array(v.object({ sessionid: text, userprofiles: profiles })),
    // Ours: more matched than the answer carries. Another server may send false, or nothing.
    truncated: v.optional(v.boolean()),
  }),
  // Read (both forms) by the client machine, which ends the call on one it cannot use.
  offer: v.object({ callid: text, peerid: text, sdp: v.unknown() }),
  answer: v.object({ callid: text, peerid: text, sdp: v.unknown() }),
  ice: v.object({ callid: text, peerid: text, candidate: v.unknown() }),
  error: v.object({ code: text, message: text, event: v.optional(text) }),
};

const isRelay = (type: string): type is RelayType => (relayTypes as readonly string[]).includes(type);

/** A `detail` checked with its schema; keys of the path are quoted to 64 characters. */
function check(schema: v.GenericSchema, type: string, detail: unknown): unknown {
  if (typeof detail !== 'object' || detail === null || Array.isArray(detail)) {
    throw new ProtocolError(ErrorCode.InvalidField, `${type}: \`detail\` must be an object`);
  }
  return checkDetail(schema, type, detail, { key: clip(64) });
}

/**
 * Why the server would refuse `value` as a `userprofile` (too many sources,
 * too deep, too large, not JSON), or undefined when it would take it. A
 * client checks its own profile with it before sending: one it cannot even
 * encode would crash its signalling connection.
 *
 * @example
 * ```ts
 * profileError({ github: { login: 'ada' } }); // undefined
 * profileError({ github: { id: 1n } }); // 'Do not know how to serialize a BigInt'
 * ```
 */
export function profileError(value: unknown): string | undefined {
  try {
    check(clientDetails.userprofile, 'userprofile', value);
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/** The server's codec error for a decoded `type`, so its `error` reply can name the message. */
export class WorkroomsDecodeError extends ProtocolError {
  constructor(
    code: ProtocolError['code'],
    message: string,
    readonly event?: ClientMessageType,
  ) {
    super(code, message);
  }
}

/**
 * The server's codec: JSON text `{"type": …, "detail": {…}}`, checked
 * field by field (valibot). It rejects server-only and unknown types, wrong,
 * missing or extra fields, ids that are not 22–64 URL-safe characters, and
 * frames over `maxFrameSize`, each with a {@link ProtocolError} whose code
 * the session sends back in `error`. The relays (`offer`, `answer`, `ice`)
 * are checked only for what routing needs (`callid`, `peerid`), the presence
 * of `sdp` / `candidate`, and nesting: their payload and any other key of
 * `detail` pass as sent.
 *
 * @example
 * ```ts
 * serverCodec().decode('{"type":"call","detail":{"to":"q2R0bW9yZ2VuLXNlc3Npb24"}}');
 * // { type: 'call', detail: { to: 'q2R0bW9yZ2VuLXNlc3Npb24' } }
 * ```
 */
export function serverCodec(options: WorkroomsCodecOptions = {}): Codec<ClientMessage, ServerMessage> {
  const max = options.maxFrameSize ?? 65536;
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max);
      const event = knownType(type, clientMessageTypes, serverOnlyTypes);
      try {
        const checked = check(clientDetails[event], type, detail);
        // A relay goes on as it came: the parsed detail itself, not the schema's copy.
        return { type, detail: isRelay(event) ? detail : checked } as ClientMessage;
      } catch (error) {
        if (!(error instanceof ProtocolError)) throw error;
        throw new WorkroomsDecodeError(error.code, error.message, event);
      }
    },
    encode,
  };
}

/**
 * The client's codec, the mirror of {@link serverCodec}.
 *
 * @example
 * ```ts
 * fromTransport(() => webSocketTransport('wss://example.org/workrooms'), clientCodec());
 * ```
 */
export function clientCodec(options: WorkroomsCodecOptions = {}): Codec<ServerMessage, ClientMessage> {
  const max = options.maxFrameSize ?? 1 << 20;
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max);
      return { type, detail: check(serverDetails[knownType(type, serverDetails)], type, detail) } as ServerMessage;
    },
    encode,
  };
}

function encode(message: ClientMessage | ServerMessage): string {
  return JSON.stringify({ type: message.type, detail: message.detail });
}
