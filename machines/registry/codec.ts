import * as v from 'valibot';
import type { Codec } from '../../src/codec.js';
import {
  checkDetail,
  clip,
  describeIssue,
  knownType,
  nestedAtMost,
  parseEnvelope,
  type IssueQuoting,
} from '../../src/envelope.js';
import { ProtocolError } from '../../src/errors.js';
import {
  checkPath,
  clientMessageTypes,
  isConnectionId,
  serverOnlyTypes,
  type ChannelMessage,
  type ClientMessage,
  type ClientMessageType,
  type FileEntry,
  type ServerMessage,
} from './protocol.js';

export interface RegistryCodecOptions {
  /** Largest accepted frame, in characters. @default 262144 (server), 4194304 (client) */
  maxFrameSize?: number;
  /** Most entries in one file list. @default 1000 (server), 100000 (client) */
  maxFiles?: number;
}

/** What the sender wrote is quoted short: 64 characters of a key, 256 of a message. */
const quoting: IssueQuoting = { key: clip(64, '…'), message: clip(256, '…') };

const check = (schema: v.GenericSchema, type: string, detail: unknown) => checkDetail(schema, type, detail, quoting);

const count = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
const sha256 = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lowercase hex digits'));
const path = v.pipe(
  v.string(),
  v.check(
    (value) => checkPath(value) === undefined,
    (issue) => checkPath(issue.input) ?? 'invalid path',
  ),
);
const entry = v.strictObject({ path, size: count, sha256: v.optional(sha256) });

/** A file list: at most `max` clean, unique entries. */
export function fileListSchema(max: number) {
  return v.pipe(
    v.array(entry),
    v.maxLength(max, `a file list has at most ${max} entries`),
    v.check(
      (files) => new Set(files.map((f) => f.path)).size === files.length,
      'a file list must not name a path twice',
    ),
  );
}

/**
 * Checks a file list as a client is about to send it, or as a peer announced
 * it; returns why it is refused, or `undefined`.
 *
 * @example
 * ```ts
 * checkFileList([{ path: 'a.txt', size: 1 }, { path: 'a.txt', size: 2 }]); // 'a file list must not name a path twice'
 * ```
 */
export function checkFileList(files: unknown, max = 100_000): string | undefined {
  const result = v.safeParse(fileListSchema(max), files);
  if (result.success) return undefined;
  const { key, message } = describeIssue(result.issues[0], quoting);
  return `${key ? `files.${key}: ` : ''}${message}`;
}

/** The server's limits on one list a client sends. */
export interface ListLimits {
  /** Most entries. */
  maxFiles: number;
  /** Most characters in the `Connect` / `UpdateFiles` frame that carries it. */
  maxFrameSize: number;
}

/**
 * Checks a list a client is about to send against the server's limits: a
 * clean list ({@link checkFileList}) of at most `maxFiles` entries whose
 * frame fits in `maxFrameSize` characters. Returns why it is refused, or
 * `undefined`.
 *
 * @example
 * ```ts
 * checkOutgoingList(files, { maxFiles: 1000, maxFrameSize: 262144 });
 * // 'the list makes a frame of 300021 characters, over the server's cap of 262144: share fewer files'
 * ```
 */
export function checkOutgoingList(files: unknown, limits: ListLimits): string | undefined {
  const problem = checkFileList(files, limits.maxFiles);
  if (problem) return problem;
  // `UpdateFiles` is the longer of the two envelopes.
  const size = JSON.stringify({ type: 'UpdateFiles', detail: { files } }).length;
  if (size <= limits.maxFrameSize) return undefined;
  return `the list makes a frame of ${size} characters, over the server's cap of ${limits.maxFrameSize}: share fewer files`;
}

const peerId = v.pipe(v.string(), v.minLength(1), v.maxLength(128));
const connection = v.pipe(
  v.string(),
  v.check((value) => isConnectionId(value), 'a connection id is 1 to 64 characters of A-Z a-z 0-9 _ -'),
);
const side = v.picklist(['requester', 'holder']);

/** Deepest nesting of objects and arrays in a relayed message's `detail` (`{ sdp: { type, sdp } }` is 2). */
export const MAX_RELAY_DEPTH = 32;

/**
 * A relayed message: the server checks what it routes on (`peer`,
 * `connection`, `from`) and the nesting depth; `sdp`, `candidate` and any
 * other key are relayed as received (the receiving client reads them).
 */
const relay = <TEntries extends v.ObjectEntries>(entries: TEntries) =>
  v.pipe(v.looseObject(entries), nestedAtMost(MAX_RELAY_DEPTH));
const description = relay({ peer: peerId, connection, sdp: v.unknown() });
const candidate = relay({ peer: peerId, connection, from: side, candidate: v.unknown() });

/** Client frames: strict details (a stray key is an error), except the relays'. */
function clientDetails(maxFiles: number): Record<ClientMessageType, v.GenericSchema> {
  const files = fileListSchema(maxFiles);
  return {
    Connect: v.strictObject({ files, batch: v.optional(v.literal(true)) }),
    UpdateFiles: v.strictObject({ files }),
    Disconnect: v.optional(v.strictObject({})),
    Offer: description,
    Answer: description,
    Candidate: candidate,
  };
}

/** Server frames: unknown extra keys are ignored (forward compatible). */
function serverDetails(maxFiles: number): Record<ServerMessage['type'], v.GenericSchema> {
  const files = fileListSchema(maxFiles);
  const announcements = {
    RegisterPeer: v.object({ peer: peerId, files }),
    UpdatePeer: v.object({ peer: peerId, files }),
    UnregisterPeer: v.object({ peer: peerId }),
  };
  const announcement = v.variant(
    'type',
    Object.entries(announcements).map(([type, detail]) => v.object({ type: v.literal(type), detail })),
  );
  return {
    Welcome: v.object({ id: peerId, peers: v.optional(count) }),
    ...announcements,
    Batch: v.object({ events: v.array(announcement) }),
    Offer: description,
    Answer: description,
    Candidate: candidate,
    Error: v.object({ code: v.string(), message: v.string(), event: v.optional(v.string()) }),
  };
}

/**
 * The server codec's error for a frame whose `type` it knew, so the `Error`
 * reply can name the refused message (`event`): a client tells a refused
 * `UpdateFiles` from a refused relay.
 */
export class RegistryDecodeError extends ProtocolError {
  constructor(
    code: ProtocolError['code'],
    message: string,
    readonly event: ClientMessageType,
  ) {
    super(code, message);
  }
}

/**
 * The server's codec: JSON text `{"type": …, "detail": …}` with the seed's
 * message names. It rejects server-only and unknown types, wrong or extra
 * fields, malformed file lists (unclean or repeated paths, too many
 * entries) and frames over `maxFrameSize`, each with a {@link ProtocolError}
 * of a stable code. In `Offer`, `Answer` and `Candidate` it checks only what
 * the server routes on (`peer`, `connection`, `from`) and the nesting depth
 * ({@link MAX_RELAY_DEPTH}): `sdp`, `candidate` and extra keys are relayed as
 * received.
 *
 * @example
 * ```ts
 * serverCodec().decode('{"type":"Connect","detail":{"files":[{"path":"a.txt","size":5}]}}');
 * // { type: 'Connect', detail: { files: [{ path: 'a.txt', size: 5 }] } }
 * ```
 */
export function serverCodec(options: RegistryCodecOptions = {}): Codec<ClientMessage, ServerMessage> {
  const max = options.maxFrameSize ?? 256 * 1024;
  const details = clientDetails(options.maxFiles ?? 1000);
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max);
      const event = knownType(type, clientMessageTypes, serverOnlyTypes);
      try {
        return { type: event, detail: check(details[event], type, detail) } as ClientMessage;
      } catch (error) {
        const { code, message } = error as ProtocolError;
        throw new RegistryDecodeError(code, message, event);
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
 * fromTransport(() => webSocketTransport('wss://example.org/registry'), clientCodec());
 * ```
 */
export function clientCodec(options: RegistryCodecOptions = {}): Codec<ServerMessage, ClientMessage> {
  const max = options.maxFrameSize ?? 4 * 1024 * 1024;
  const details = serverDetails(options.maxFiles ?? 100_000);
  return {
    decode(frame) {
      const { type, detail } = parseEnvelope(frame, max);
      return { type, detail: check(details[knownType(type, details)], type, detail) } as ServerMessage;
    },
    encode,
  };
}

function encode(message: ClientMessage | ServerMessage): string {
  return JSON.stringify(message.detail === undefined ? { type: message.type } : message);
}

const channelDetails: Record<ChannelMessage['type'], v.GenericSchema> = {
  RequestFile: v.strictObject({ path: v.pipe(v.string(), v.maxLength(4096)) }),
  File: v.strictObject({ path: v.string(), size: count, sha256 }),
  Error: v.strictObject({
    reason: v.picklist(['not-listed', 'invalid-path', 'outside-root', 'source-failed', 'protocol']),
    message: v.pipe(v.string(), v.maxLength(1024)),
  }),
};

/**
 * The text frames of a file connection's data channel (`RequestFile`,
 * `File`, `Error`). The path of a `RequestFile` is not checked here: the
 * holder refuses a bad one with its own `Error`.
 */
export const channelCodec: Codec<ChannelMessage> = {
  decode(frame) {
    const { type, detail } = parseEnvelope(frame, 8192);
    return { type, detail: check(channelDetails[knownType(type, channelDetails)], type, detail) } as ChannelMessage;
  },
  encode: (message) => JSON.stringify(message),
};

/** Copies the entries of a checked list (drops nothing, adds nothing). */
export function copyFiles(files: readonly FileEntry[]): FileEntry[] {
  return files.map((f) => (f.sha256 === undefined ? { path: f.path, size: f.size } : { ...f }));
}
