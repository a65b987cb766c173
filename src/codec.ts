import { ErrorCode, ProtocolError } from './errors.js';
import type { Message } from './message.js';
import type { Frame } from './transport.js';

/**
 * Turns frames into messages and back. `decode` throws a {@link ProtocolError}
 * for a bad frame; the runtime turns that into an event, so it never crosses a
 * transport.
 */
export interface Codec<In extends Message = Message, Out extends Message = In> {
  decode(frame: Frame): In;
  encode(message: Out): Frame;
}

export interface JsonCodecOptions {
  /** Largest accepted frame, in UTF-16 code units for text. @default 65536 */
  maxFrameSize?: number;
}

const textDecoder = /* @__PURE__ */ new TextDecoder();

/** Text of a frame, for codecs that only speak text; binary frames are rejected. */
export function textOf(frame: Frame, maxFrameSize: number): string {
  if (typeof frame !== 'string') {
    throw new ProtocolError(ErrorCode.MalformedFrame, 'binary frames are not accepted; send JSON text');
  }
  if (frame.length > maxFrameSize) {
    throw new ProtocolError(
      ErrorCode.FrameTooLarge,
      `frame of ${frame.length} characters exceeds the cap of ${maxFrameSize}`,
    );
  }
  return frame;
}

/** `JSON.parse` that reports a {@link ProtocolError} instead of a SyntaxError. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ProtocolError(ErrorCode.MalformedFrame, 'frame is not valid JSON');
  }
}

/**
 * How deeply `value` nests objects and arrays (a scalar is 0, `{}` is 1),
 * counted without recursion so that a frame of `[[[[…` cannot overflow the
 * stack here, and stopping as soon as it passes `limit`. Servers bound it
 * because `JSON.stringify`, which re-encodes what they relay, does recurse.
 *
 * @example
 * ```ts
 * jsonDepth({ a: [1, { b: 2 }] }, 16); // 3
 * ```
 */
export function jsonDepth(value: unknown, limit: number): number {
  let deepest = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [item, depth] = stack.pop()!;
    if (typeof item !== 'object' || item === null) continue;
    if (depth > deepest) deepest = depth;
    if (deepest > limit) return deepest;
    for (const child of Object.values(item)) stack.push([child, depth + 1]);
  }
  return deepest;
}

/** Decodes UTF-8 bytes (for adapters whose channels hand out buffers). */
export function utf8(bytes: Uint8Array): string {
  return textDecoder.decode(bytes);
}

/**
 * The codec most protocols use: a JSON text frame `{"type": …, "detail": …}`.
 * It checks the envelope only; each protocol validates its own details.
 *
 * @example
 * ```ts
 * const codec = jsonCodec();
 * codec.encode({ type: 'assign', detail: 'K7PQ2MZA' }); // '{"type":"assign","detail":"K7PQ2MZA"}'
 * ```
 */
export function jsonCodec<M extends Message = Message>(options: JsonCodecOptions = {}): Codec<M> {
  const max = options.maxFrameSize ?? 65536;
  return {
    decode(frame) {
      const value = parseJson(textOf(frame, max));
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        throw new ProtocolError(ErrorCode.MalformedFrame, 'frame must be a JSON object');
      }
      const { type, detail } = value as { type?: unknown; detail?: unknown };
      if (typeof type !== 'string' || type.length === 0) {
        throw new ProtocolError(ErrorCode.InvalidField, '`type` must be a non-empty string');
      }
      return { type, detail } as M;
    },
    encode(message) {
      return JSON.stringify({ type: message.type, detail: message.detail });
    },
  };
}
