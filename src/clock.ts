/**
 * A timer source, the shape XState's actor `clock` option takes. Pass
 * `new SimulatedClock()` (from `xstate` or `signalbox/testing`) to drive
 * keepalives and timeouts by hand in tests.
 */
export interface Clock {
  setTimeout(fn: (...args: unknown[]) => void, timeout: number): unknown;
  clearTimeout(id: unknown): void;
}
