import { ErrorCode, TransportError } from './errors.js';
import type { Frame, Transport } from './transport.js';

/**
 * Default high-water mark for buffered sends: 256 KiB. werift's throughput
 * collapses with larger send buffers (7.2 MiB/s at 64 KiB, 1.2 MiB/s at
 * 4 MiB, measured), and browsers gain nothing above a few hundred KiB.
 */
export const DEFAULT_HIGH_WATER_MARK = 256 * 1024;

/** Default low-water mark: sending resumes once the buffer fell to 64 KiB. */
export const DEFAULT_LOW_WATER_MARK = 64 * 1024;

/**
 * How often a waiting sender re-reads `bufferedAmount` even without a `drain`
 * event. It only matters when the transport's own high-water mark is above
 * ours (its `drain` then never comes for our threshold) or the adapter does not
 * emit `drain` at all: waiting then degrades to polling instead of hanging.
 */
const RECHECK_MS = 50;

/** The tail of the pending sends of each transport, so that concurrent callers keep their order. */
const tails = new WeakMap<Transport, Promise<void>>();

/**
 * Sends `frame` once `transport.bufferedAmount` is at most `highWaterMark`,
 * waiting for the transport's `drain` event while it is above. Use it for bulk
 * transfers (file chunks) so that the send buffer stays bounded: with
 * sequential `await`s, `bufferedAmount` never exceeds `highWaterMark` plus one
 * frame.
 *
 * Calls on the same transport are sent in call order, even when they are not
 * awaited one by one.
 *
 * Pass the same `highWaterMark` as the transport's own (both default to
 * 256 KiB), because the transport emits `drain` only after its buffer went
 * above its own mark; with a lower value here, waiting falls back to
 * re-checking every 50 ms.
 *
 * @returns A promise that resolves once the frame was handed to the transport.
 * It rejects with a {@link TransportError} `ERR_TRANSPORT_CLOSED` when the
 * transport is closed or closes while waiting, or with whatever `send()` threw.
 *
 * @example
 * ```ts
 * for (let offset = 0; offset < file.byteLength; offset += 16 * 1024) {
 *   await sendWithBackpressure(transport, file.subarray(offset, offset + 16 * 1024));
 * }
 * ```
 */
export function sendWithBackpressure(
  transport: Transport,
  frame: Frame,
  highWaterMark: number = DEFAULT_HIGH_WATER_MARK,
): Promise<void> {
  const previous = tails.get(transport);
  // Fast path: nothing queued before us and room in the buffer.
  if (!previous && transport.bufferedAmount <= highWaterMark) {
    try {
      transport.send(frame);
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }
  const run = () => waitThenSend(transport, frame, highWaterMark);
  // A rejected predecessor does not stop us: send() reports our own outcome.
  const current = previous ? previous.then(run, run) : run();
  tails.set(transport, current);
  const forget = () => {
    if (tails.get(transport) === current) tails.delete(transport);
  };
  current.then(forget, forget);
  return current;
}

function waitThenSend(transport: Transport, frame: Frame, highWaterMark: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const offs: Array<() => void> = [];
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = (error?: unknown) => {
      for (const off of offs.splice(0)) off();
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (error !== undefined) reject(error);
      else resolve();
    };
    const attempt = () => {
      if (!transport.isOpen) {
        settle(new TransportError(ErrorCode.TransportClosed, 'the transport closed before the frame could be sent'));
        return;
      }
      if (transport.bufferedAmount > highWaterMark) {
        if (timer === undefined) timer = setTimeout(recheck, RECHECK_MS);
        return;
      }
      try {
        transport.send(frame);
        settle();
      } catch (error) {
        settle(error);
      }
    };
    const recheck = () => {
      timer = undefined;
      attempt();
    };
    offs.push(
      transport.on('drain', attempt),
      transport.on('close', () =>
        settle(new TransportError(ErrorCode.TransportClosed, 'the transport closed while waiting for it to drain')),
      ),
    );
    attempt();
  });
}
