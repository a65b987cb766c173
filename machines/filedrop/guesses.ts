import type { Clock } from '../../src/clock.js';
import { clockNow, tokenBucket, type TokenBucket } from '../../src/limits.js';

/** How many unknown codes (`peer not exists` answers) one client address may ask about. */
export interface UnknownCodeLimits {
  /** Unknown codes an address may name per minute, over time. @default 30 */
  perMinute?: number;
  /** Unknown codes an address may name at once (the bucket's size). @default 30 */
  burst?: number;
  /** Addresses tracked at most; past it the longest-idle is forgotten. @default 100000 */
  maxAddresses?: number;
}

/** Spends one unknown-code token of an address: false when it has none left. */
export type GuessLimiter = (address: string) => boolean;

/**
 * A token bucket per client address, shared by all of that address's
 * connections, for the codes it names that nobody holds. The buckets live in
 * a map of at most `maxAddresses`, most recently used last; one that has been
 * idle long enough to be full again is dropped (a fresh one is the same).
 */
export function guessLimiter(limits: UnknownCodeLimits = {}, clock?: Clock): GuessLimiter {
  const rate = (limits.perMinute ?? 30) / 60;
  const burst = limits.burst ?? 30;
  const max = limits.maxAddresses ?? 100_000;
  const now = clockNow(clock);
  const refill = (burst / rate) * 1000;
  const buckets = new Map<string, { bucket: TokenBucket; used: number }>();
  return (address) => {
    const t = now();
    let entry = buckets.get(address);
    if (entry) buckets.delete(address);
    else entry = { bucket: tokenBucket(rate, burst, now), used: t };
    entry.used = t;
    buckets.set(address, entry);
    // Expire from the oldest: full again (idle past a refill), or over the cap.
    for (const [key, old] of buckets) {
      if (buckets.size <= max && t - old.used < refill) break;
      if (key !== address) buckets.delete(key);
      else break;
    }
    return entry.bucket.take();
  };
}
