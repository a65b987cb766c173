/**
 * The one shape machines consume and produce on the wire side: a DOM
 * `CustomEvent` without the DOM. `type` is the protocol's own message name.
 */
export interface Message<T extends string = string, D = unknown> {
  readonly type: T;
  readonly detail: D;
}

/**
 * Narrows a message union to the message of one type.
 *
 * @example
 * ```ts
 * type Call = MessageOf<ClientMessage, 'call'>; // Message<'call', { to: string }>
 * ```
 */
export type MessageOf<M extends Message, T extends M['type']> = Extract<M, { type: T }>;

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
