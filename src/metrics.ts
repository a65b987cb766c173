/**
 * What a protocol server reports as it runs, for a metrics system to count.
 * The library calls these and depends on no metrics package;
 * `signalbox/server` implements them with prom-client for `GET /metrics`.
 *
 * Labels are bounded: `protocol` is one of the protocols' names, `reason` one
 * of a few fixed words (see {@link closeReasonLabel}).
 */
export interface ServerMetrics {
  /** A connection's session started. */
  opened(protocol: string): void;
  /** A connection closed, with its close code and reason label. */
  closed(protocol: string, code: number, reason: string): void;
  /** A frame arrived from a client (`bytes`: characters of a text frame). */
  received(protocol: string, bytes: number): void;
  /** A frame was sent to a client; `relay` when it went out while another client's frame was being handled. */
  sent(protocol: string, bytes: number, relay: boolean): void;
  /** A frame was refused for the rate (`messages` or `bytes` ran out). */
  rateLimited(protocol: string, kind: 'messages' | 'bytes'): void;
}

const reasons = new Set([
  '',
  'too slow',
  'rate limited',
  'server closing',
  'server error',
  'actor stopped',
  'transport failed',
  'normal',
]);

/**
 * A close reason as a metrics label: the few fixed reasons the servers give
 * as they are, anything else (free text, a client's words) as `other`, so a
 * client cannot mint label values.
 *
 * @example
 * ```ts
 * closeReasonLabel('too slow'); // 'too slow'
 * closeReasonLabel('INIT expected'); // 'other'
 * ```
 */
export function closeReasonLabel(reason: string): string {
  return reasons.has(reason) ? reason : 'other';
}
