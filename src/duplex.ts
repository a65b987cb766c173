import { createTransport, type Transport } from './transport.js';

/**
 * Joins two one-way channels into one duplex {@link Transport}: frames are
 * sent on `outbound` and received from both (in practice from `inbound`, the
 * channel the remote sends on). Closing it closes both; either closing closes
 * it. CloudLink uses this for its two peer connections per pair, one per
 * direction.
 *
 * @example
 * ```ts
 * const link = joinTransports(myOfferedChannel, theirOfferedChannel);
 * link.send('hello');
 * ```
 */
export function joinTransports(outbound: Transport, inbound: Transport): Transport {
  const control = createTransport({
    send: (frame) => outbound.send(frame),
    close(code, reason) {
      outbound.close(code, reason);
      inbound.close(code, reason);
    },
    bufferedAmount: () => outbound.bufferedAmount,
  });
  const offs: Array<() => void> = [];
  for (const side of [outbound, inbound]) {
    offs.push(
      side.on('message', (frame) => control.receive(frame)),
      side.on('error', (error) => control.failed(error)),
      side.on('close', (info) => {
        for (const off of offs) off();
        outbound.close(info.code, info.reason);
        inbound.close(info.code, info.reason);
        control.closed(info.code, info.reason);
      }),
    );
  }
  offs.push(outbound.on('drain', () => control.drained()));
  return control.transport;
}
