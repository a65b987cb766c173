/**
 * The one shape machines consume and produce on the wire side: a DOM
 * `CustomEvent` without the DOM. `type` is the protocol's own message name.
 */
export interface Message<T extends string = string, D = unknown> {
  readonly type: T;
  readonly detail: D;
}

/**
 * Builds a {@link Message}.
 *
 * @example
 * ```ts
 * const hello = message('INIT', { payload: 'ada' });
 * ```
 */
export function message<T extends string, D>(type: T, detail: D): Message<T, D> {
  return { type, detail };
}
