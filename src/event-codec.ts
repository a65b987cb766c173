import type { Frame } from './transport.js';

/**
 * Turns the events of an evented channel (socket.io's `emit(event, ...args)`)
 * into the frames a {@link Transport} carries, and back. An adapter for such a
 * channel takes one, so that a protocol's machines and codecs see the same
 * frames whichever channel they run over.
 *
 * `receive` MUST NOT throw: an event the protocol does not define becomes a
 * frame that the protocol's codec rejects with its usual typed error.
 *
 * @example
 * ```ts
 * const events: EventCodec = {
 *   receive: (event, args) => JSON.stringify({ type: event, detail: args[0] }),
 *   send: (frame) => {
 *     const { type, detail } = JSON.parse(frame as string);
 *     return [type, detail];
 *   },
 * };
 * ```
 */
export interface EventCodec {
  /** The frame to deliver for an event the remote emitted (acknowledgement callbacks already removed). */
  receive(event: unknown, args: readonly unknown[]): Frame;
  /** The event, and its arguments, to emit for a frame given to `send()`. */
  send(frame: Frame): readonly [event: string, ...args: unknown[]];
}

/**
 * The {@link EventCodec} that carries frames as they are: every frame is one
 * `message` event with the frame (a string or bytes) as its only argument.
 * It lets an evented channel serve as a plain frame transport. An event with
 * another name, or without exactly one string or binary argument, arrives as
 * a JSON text frame `{"event": …, "args": […]}` so that nothing is lost silently.
 *
 * @example
 * ```ts
 * frameEvents.send('hello'); // ['message', 'hello']
 * frameEvents.receive('message', ['hello']); // 'hello'
 * ```
 */
export const frameEvents: EventCodec = {
  receive(event, args) {
    if (event === 'message' && args.length === 1) {
      const [frame] = args;
      if (typeof frame === 'string') return frame;
      if (frame instanceof ArrayBuffer) return new Uint8Array(frame);
      if (ArrayBuffer.isView(frame)) return new Uint8Array(frame.buffer, frame.byteOffset, frame.byteLength);
    }
    return safeJson({ event, args });
  },
  send: (frame) => ['message', frame],
};

/** `JSON.stringify` for values that came off a wire: never throws. */
export function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch {
    return 'null';
  }
}
