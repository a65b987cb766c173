import type { Clock } from './clock.js';

/**
 * What one connection may cost a server, for every protocol alike. The
 * defaults are generous for an honest client (a browser game or a file
 * transfer's signalling never comes near them) and stop a flood within a
 * second.
 */
export interface ConnectionLimits {
  /**
   * Most bytes queued for one connection and not yet taken by the client;
   * past it the connection is closed with 1008 `too slow` (a client that
   * stops reading must not grow the server's memory).
   * @default 4194304 (4 MiB)
   */
  maxBufferedBytes?: number;
  /** Messages a connection may send per second, sustained. @default 100 */
  messagesPerSecond?: number;
  /** Messages a connection may send at once above the sustained rate. @default 200 */
  messageBurst?: number;
  /** Bytes (characters of text frames) a connection may send per second, sustained. @default 1048576 */
  bytesPerSecond?: number;
  /** Bytes a connection may send at once above the sustained rate. @default 4194304 */
  byteBurst?: number;
  /**
   * Frames refused for the rate after which the connection is closed (1008
   * `rate limited`). The first refused frame gets the protocol's error.
   * @default 50
   */
  rateLimitStrikes?: number;
}

/** {@link ConnectionLimits} with every default filled in. */
export const defaultLimits: Required<ConnectionLimits> = {
  maxBufferedBytes: 4 << 20,
  messagesPerSecond: 100,
  messageBurst: 200,
  bytesPerSecond: 1 << 20,
  byteBurst: 4 << 20,
  rateLimitStrikes: 50,
};

/** `limits` over {@link defaultLimits}, each checked to be a positive number. */
export function resolveLimits(limits: ConnectionLimits = {}): Required<ConnectionLimits> {
  const resolved = { ...defaultLimits };
  for (const [name, value] of Object.entries(limits) as [keyof ConnectionLimits, number | undefined][]) {
    if (value === undefined) continue;
    if (!(typeof value === 'number' && value > 0)) {
      throw new RangeError(`limits.${name} must be a positive number, got ${String(value)}`);
    }
    resolved[name] = value;
  }
  return resolved;
}

/**
 * Milliseconds from the clock's own `now()` when it has one (XState's
 * `SimulatedClock` does, so tests move rate limits by hand), else from
 * `performance.now()`.
 */
export function clockNow(clock?: Clock): () => number {
  const own = (clock as { now?: () => number } | undefined)?.now;
  return own ? () => own.call(clock) : () => performance.now();
}

/** A token bucket: `take(n)` spends `n` tokens if there are that many. */
export interface TokenBucket {
  take(n?: number): boolean;
}

/**
 * A token bucket holding at most `burst` tokens and refilling at `rate`
 * tokens a second, by the time `now()` reads (milliseconds). It starts full.
 *
 * @example
 * ```ts
 * const bucket = tokenBucket(100, 200, () => performance.now());
 * if (!bucket.take()) refuse();
 * ```
 */
export function tokenBucket(rate: number, burst: number, now: () => number): TokenBucket {
  let tokens = burst;
  let last = now();
  return {
    take(n = 1) {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - last) * rate) / 1000);
      last = t;
      if (tokens < n) return false;
      tokens -= n;
      return true;
    },
  };
}

/** Counts open connections, in all and per client address. */
export interface ConnectionLimiter {
  /**
   * Takes a place for a connection from `address`: a handle whose
   * `release()` gives it back (idempotent), or why there is none: the server
   * is full (`total`) or the address holds its share (`address`).
   */
  acquire(address: string): { release(): void } | 'total' | 'address';
  /** Why a connection from `address` would get no place now, or undefined when it would. */
  admits(address: string): 'total' | 'address' | undefined;
  /** Connections holding a place. */
  readonly size: number;
}

/**
 * A {@link ConnectionLimiter} for `maxConnections` in all and
 * `maxPerAddress` from one address. Share one between every transport server
 * of a process.
 *
 * @example
 * ```ts
 * const limiter = connectionLimiter({ maxConnections: 10_000, maxPerAddress: 256 });
 * webSocketServer({ server: http, path: '/swarm', limiter });
 * ```
 */
export function connectionLimiter(init: { maxConnections: number; maxPerAddress: number }): ConnectionLimiter {
  const perAddress = new Map<string, number>();
  let size = 0;
  const admits = (address: string) =>
    size >= init.maxConnections
      ? ('total' as const)
      : (perAddress.get(address) ?? 0) >= init.maxPerAddress
        ? ('address' as const)
        : undefined;
  return {
    admits,
    acquire(address) {
      const full = admits(address);
      if (full) return full;
      size++;
      perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
      let held = true;
      return {
        release() {
          if (!held) return;
          held = false;
          size--;
          const n = perAddress.get(address)! - 1;
          if (n === 0) perAddress.delete(address);
          else perAddress.set(address, n);
        },
      };
    },
    get size() {
      return size;
    },
  };
}

/** The `message` of the `ERR_RATE_LIMITED` error every protocol answers a refused frame with. */
export const RATE_LIMITED = 'too many messages: slow down, or the connection is closed';
