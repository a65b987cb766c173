import { DEFAULT_HIGH_WATER_MARK, DEFAULT_LOW_WATER_MARK } from '../backpressure.js';
import { ErrorCode, TransportError } from '../errors.js';
import { createTransport, type Frame, type Transport } from '../transport.js';
import { listen, type RTCDataChannelLike } from './types.js';

/** Options of {@link dataChannelTransport}. */
export interface DataChannelTransportInit {
  /**
   * The transport emits `drain` only after `bufferedAmount` went above this
   * mark (and then fell to `lowWaterMark`). Keep it at 256 KiB or less with
   * werift: its throughput collapses with larger buffers.
   * @default 262144 (256 KiB)
   */
  highWaterMark?: number;
  /**
   * Set as the channel's `bufferedAmountLowThreshold`: `drain` fires when the
   * buffer falls to this many bytes.
   * @default 65536 (64 KiB)
   */
  lowWaterMark?: number;
  /**
   * The channel's peer connection. A data channel close carries no code: the
   * transport reports 1000 unless this connection is `failed` when the channel
   * closes (or the channel reported an error), then 1006.
   * @default undefined (only a channel error makes it 1006)
   */
  peerConnection?: { readonly connectionState: string };
  /**
   * The `data` of messages the channel delivered before its `open` event
   * (werift does, when the remote sends at once): delivered first, in order.
   * @default []
   */
  earlyMessages?: readonly unknown[];
}

/**
 * Wraps an open WebRTC data channel (browser, werift, node-datachannel) as a
 * {@link Transport}.
 *
 * - Text frames arrive as `string`, binary frames as `Uint8Array` (werift's
 *   `Buffer`s and the browser's `ArrayBuffer`s are turned into plain
 *   `Uint8Array` views, without a copy). The channel's `binaryType` is set to
 *   `'arraybuffer'`.
 * - Backpressure: `bufferedAmount` is the channel's; the channel's
 *   `bufferedAmountLowThreshold` is set to `lowWaterMark` and `drain` is emitted
 *   when it falls there after having exceeded `highWaterMark`. Pair it with
 *   {@link sendWithBackpressure}.
 * - Close: `close()` closes the channel (a data channel carries no close code,
 *   so the remote always sees 1000). When the remote closes the channel, `close`
 *   is emitted with `initiator: 'remote'` and code 1000, or 1006 when the
 *   channel errored or the peer connection failed.
 *
 * The transport does not own the peer connection: closing the transport leaves
 * the connection up (the `rtc` actor closes both when it stops).
 *
 * @throws TypeError when the channel is not open yet (or any more): call it from
 * the channel's `open` event.
 *
 * @example
 * ```ts
 * const channel = pc.createDataChannel('signalbox');
 * channel.addEventListener('open', () => {
 *   const transport = dataChannelTransport(channel, { peerConnection: pc });
 *   transport.on('message', (frame) => console.log(frame));
 *   transport.send('hello');
 * });
 * ```
 */
export function dataChannelTransport(channel: RTCDataChannelLike, init: DataChannelTransportInit = {}): Transport {
  const highWaterMark = init.highWaterMark ?? DEFAULT_HIGH_WATER_MARK;
  const lowWaterMark = init.lowWaterMark ?? DEFAULT_LOW_WATER_MARK;
  if (!(lowWaterMark >= 0 && highWaterMark >= lowWaterMark)) {
    throw new RangeError(
      `dataChannelTransport(): need 0 <= lowWaterMark <= highWaterMark, got ${lowWaterMark} and ${highWaterMark}`,
    );
  }
  if (channel.readyState !== 'open') {
    throw new TypeError(
      `dataChannelTransport() needs an open data channel, but its readyState is '${channel.readyState}': ` +
        "create the transport from the channel's 'open' event",
    );
  }

  // Browsers deliver binary as Blob by default, which cannot be read
  // synchronously (ordering would break). werift has no binaryType: harmless.
  try {
    channel.binaryType = 'arraybuffer';
  } catch {
    // A read-only binaryType: toFrame() reports what arrives anyway.
  }
  channel.bufferedAmountLowThreshold = lowWaterMark;

  let aboveHighWaterMark = false;
  let errored = false;
  const sendEmpty = weriftEmptyMessageSender(channel);
  const offs: Array<() => void> = [];
  const detach = () => {
    for (const off of offs.splice(0)) off();
  };

  const control = createTransport({
    send(frame: Frame) {
      if (channel.readyState !== 'open') {
        // The remote started closing; our `close` event is on its way.
        throw new TransportError(ErrorCode.TransportClosed, `send() on a data channel that is ${channel.readyState}`);
      }
      try {
        if (sendEmpty && (typeof frame === 'string' ? frame.length : frame.byteLength) === 0) {
          sendEmpty(typeof frame !== 'string');
        } else {
          channel.send(frame);
        }
      } catch (error) {
        throw new TransportError(ErrorCode.TransportFailed, `data channel send failed: ${describe(error)}`, {
          cause: error,
        });
      }
      if (channel.bufferedAmount > highWaterMark) aboveHighWaterMark = true;
    },
    close() {
      // createTransport reports the local close at once; later channel events are noise.
      detach();
      try {
        channel.close();
      } catch {
        // Already closing or closed: nothing left to do.
      }
    },
    bufferedAmount: () => channel.bufferedAmount,
  });

  let unsupported = false;
  const onMessage = (data: unknown) => {
    if (unsupported) return;
    const frame = toFrame(data);
    if (frame !== undefined) {
      control.receive(frame);
      return;
    }
    // Only reachable if binaryType could not be set: fail rather than reorder.
    unsupported = true;
    control.failed(
      new TransportError(ErrorCode.TransportFailed, `data channel delivered an unsupported ${typeName(data)}`),
    );
    detach();
    try {
      channel.close();
    } catch {
      // ignore
    }
    control.closed(1003, 'unsupported data');
  };
  for (const data of init.earlyMessages ?? []) onMessage(data);
  offs.push(
    listen(channel, 'message', (event: { data: unknown }) => onMessage(event.data)),
    listen(channel, 'bufferedamountlow', () => {
      if (!aboveHighWaterMark) return;
      aboveHighWaterMark = false;
      control.drained();
    }),
    listen(channel, 'error', (event: { error?: unknown } | undefined) => {
      errored = true;
      const cause = event?.error ?? event;
      control.failed(
        new TransportError(ErrorCode.TransportFailed, `data channel error: ${describe(cause)}`, { cause }),
      );
    }),
    listen(channel, 'close', () => {
      detach();
      if (errored) control.closed(1006, 'data channel error');
      else if (init.peerConnection?.connectionState === 'failed') control.closed(1006, 'peer connection failed');
      else control.closed(1000, '');
    }),
  );

  return control.transport;
}

/**
 * werift (0.25) cannot send an empty message: its SCTP layer makes zero DATA
 * chunks but still uses up a stream sequence number, so the receiver waits for
 * that number forever and the ordered channel stalls (every later frame is
 * lost too). RFC 8831 section 6.6 sends an empty message as one zero byte with
 * PPID 56 (empty string) or 57 (empty binary); werift and browsers both decode
 * that. A W3C channel has no way to pick the PPID, so for a channel that looks
 * like werift's (its `sctp` transport with the outgoing `dataChannelQueue`)
 * this queues that encoding through werift's own queue, which keeps it in
 * order with the other frames. Other implementations send empty messages
 * correctly and get `undefined` here.
 */
function weriftEmptyMessageSender(channel: RTCDataChannelLike): ((binary: boolean) => void) | undefined {
  const werift = channel as RTCDataChannelLike & {
    addBufferedAmount?: (amount: number) => void;
    sctp?: { dataChannelQueue?: unknown; dataChannelFlush?: () => Promise<void> };
  };
  const sctp = werift.sctp;
  if (
    !sctp ||
    !Array.isArray(sctp.dataChannelQueue) ||
    typeof sctp.dataChannelFlush !== 'function' ||
    typeof werift.addBufferedAmount !== 'function'
  ) {
    return undefined;
  }
  const WEBRTC_STRING_EMPTY = 56;
  const WEBRTC_BINARY_EMPTY = 57;
  return (binary) => {
    // The flush subtracts the payload length from bufferedAmount once sent.
    werift.addBufferedAmount!(1);
    (sctp.dataChannelQueue as unknown[]).push([
      channel,
      binary ? WEBRTC_BINARY_EMPTY : WEBRTC_STRING_EMPTY,
      Buffer.alloc(1),
    ]);
    sctp.dataChannelFlush!().catch(() => {
      // werift logs and drops flush failures itself; a dead association surfaces as close.
    });
  };
}

/** string -> string; ArrayBuffer / any view (werift's Buffer) -> plain Uint8Array, no copy. */
function toFrame(data: unknown): Frame | undefined {
  if (typeof data === 'string') return data;
  // The tag test also catches ArrayBuffers from another realm (iframe, worker).
  if (data instanceof ArrayBuffer || Object.prototype.toString.call(data) === '[object ArrayBuffer]') {
    return new Uint8Array(data as ArrayBuffer);
  }
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

function typeName(value: unknown): string {
  return (value as object | null)?.constructor?.name ?? typeof value;
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error && 'message' in error) return String(error.message);
  return String(error);
}
