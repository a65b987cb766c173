/**
 * The strict `{ type, detail }` envelope that the JSON protocols (filedrop,
 * workrooms, registry) decode: one JSON object with exactly those two keys,
 * a known `type`, and a `detail` checked by a valibot schema. Every refusal
 * is a {@link ProtocolError} with a stable code, whose message quotes the
 * sender only as far as each protocol allows.
 */
import * as v from 'valibot';
import { jsonDepth, parseJson, textOf } from './codec.js';
import { ErrorCode, ProtocolError } from './errors.js';
import type { Frame } from './transport.js';

/** A frame's `type`, and its `detail` not checked yet. */
export interface Envelope {
  type: string;
  detail: unknown;
}

/** How an error message quotes what the sender wrote. */
export type Quote = (text: string) => string;

/** Quotes a text as it is. */
export const verbatim: Quote = (text) => text;

/**
 * A {@link Quote} that keeps at most `max` characters of a text, and marks a
 * text it cut with `mark`.
 *
 * @example
 * ```ts
 * clip(4)('abcdef'); // 'abcd'
 * clip(4, '…')('abcdef'); // 'abcd…'
 * ```
 */
export function clip(max: number, mark = ''): Quote {
  return (text) => (text.length > max ? `${text.slice(0, max)}${mark}` : text);
}

/**
 * Parses a text frame of at most `maxFrameSize` characters as a JSON object
 * of exactly `type` (a non-empty string) and `detail` (anything, checked
 * later). A binary, oversized or unparsable frame, or one that is not an
 * object, is ERR_MALFORMED_FRAME or ERR_FRAME_TOO_LARGE; a missing `type` or
 * a stray key is ERR_INVALID_FIELD, quoting the type and the key with
 * `quote`.
 *
 * @example
 * ```ts
 * parseEnvelope('{"type":"call","detail":{"to":"x"}}', 65536); // { type: 'call', detail: { to: 'x' } }
 * parseEnvelope('{"type":"call","from":"x"}', 65536);
 * // throws ERR_INVALID_FIELD: 'call: unexpected key `from` next to type and detail'
 * ```
 */
export function parseEnvelope(frame: Frame, maxFrameSize: number, quote: Quote = clip(64)): Envelope {
  const value = parseJson(textOf(frame, maxFrameSize));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError(ErrorCode.MalformedFrame, 'frame must be a JSON object { type, detail }');
  }
  const { type, detail, ...rest } = value as Record<string, unknown>;
  if (typeof type !== 'string' || type.length === 0) {
    throw new ProtocolError(ErrorCode.InvalidField, '`type` must be a non-empty string');
  }
  const extra = Object.keys(rest)[0];
  if (extra !== undefined) {
    throw new ProtocolError(
      ErrorCode.InvalidField,
      `${quote(type)}: unexpected key \`${quote(extra)}\` next to type and detail`,
    );
  }
  return { type, detail };
}

/**
 * Narrows a parsed `type` to one this side takes: one of `known` (a list,
 * or the keys of a schema table). A type of `serverOnly` is
 * ERR_NOT_PERMITTED (a client sent what only the server sends); any other
 * unknown type is ERR_UNKNOWN_MESSAGE.
 *
 * @example
 * ```ts
 * knownType('call', clientMessageTypes, serverOnlyTypes); // 'call'
 * knownType('registered', clientMessageTypes, serverOnlyTypes); // throws ERR_NOT_PERMITTED
 * knownType('hello', serverDetails); // throws ERR_UNKNOWN_MESSAGE: 'unknown message type `hello`'
 * ```
 */
export function knownType<T extends string>(
  type: string,
  known: readonly T[] | Readonly<Record<T, unknown>>,
  serverOnly: readonly string[] = [],
): T {
  if (serverOnly.includes(type)) {
    throw new ProtocolError(ErrorCode.NotPermitted, `\`${type}\` is sent by the server only`);
  }
  if (!(Array.isArray(known) ? known.includes(type) : Object.hasOwn(known, type))) {
    throw new ProtocolError(ErrorCode.UnknownMessage, `unknown message type \`${type.slice(0, 64)}\``);
  }
  return type as T;
}

/** How {@link describeIssue} and {@link checkDetail} quote a path's keys and a schema's message. */
export interface IssueQuoting {
  /** Each key of the path (a stray key is the sender's). @default verbatim */
  key?: Quote;
  /** The schema's message (it may quote the sender's value). @default verbatim */
  message?: Quote;
}

/**
 * Where a valibot issue is (`files.0.path`, or undefined at the top) and what
 * it says, quoted with `quoting`.
 *
 * @example
 * ```ts
 * const result = v.safeParse(v.object({ size: v.number() }), { size: 'big' });
 * if (!result.success) describeIssue(result.issues[0]); // { key: 'size', message: 'Invalid type: …' }
 * ```
 */
export function describeIssue(
  issue: v.BaseIssue<unknown>,
  quoting: IssueQuoting = {},
): { key: string | undefined; message: string } {
  const quoteKey = quoting.key ?? verbatim;
  const key = issue.path?.map((item) => quoteKey(String(item.key))).join('.');
  return { key, message: (quoting.message ?? verbatim)(issue.message) };
}

/**
 * Checks the `detail` of a message of type `type` with its schema and returns
 * the schema's output; the first issue is ERR_INVALID_FIELD, naming where it
 * is (`` Connect: `detail.files.0.path`: … ``).
 *
 * @example
 * ```ts
 * checkDetail(v.strictObject({ to: v.string() }), 'call', { to: 'x' }); // { to: 'x' }
 * checkDetail(v.strictObject({ to: v.string() }), 'call', { to: 1 });
 * // throws ERR_INVALID_FIELD: 'call: `detail.to`: Invalid type: Expected string but received 1'
 * ```
 */
export function checkDetail<TSchema extends v.GenericSchema>(
  schema: TSchema,
  type: string,
  detail: unknown,
  quoting: IssueQuoting = {},
): v.InferOutput<TSchema> {
  const result = v.safeParse(schema, detail);
  if (result.success) return result.output;
  const { key, message } = describeIssue(result.issues[0], quoting);
  throw new ProtocolError(ErrorCode.InvalidField, `${type}: \`detail${key ? `.${key}` : ''}\`: ${message}`);
}

/**
 * A valibot check for a payload a server relays untouched (any JSON): it
 * nests objects and arrays at most `maxDepth` deep (counted by {@link jsonDepth}).
 * `message` is the issue text when it does not; protocols keep their own wording.
 *
 * @example
 * ```ts
 * v.pipe(v.looseObject({ peer: v.string(), sdp: v.unknown() }), nestedAtMost(32));
 * ```
 */
export function nestedAtMost<T>(maxDepth: number, message = `nested deeper than ${maxDepth}`) {
  return v.check((value: T) => jsonDepth(value, maxDepth) <= maxDepth, message);
}
