import type { Message } from './message.js';

/**
 * Turns a {@link Message} into a DOM `CustomEvent` of the same type.
 *
 * @example
 * ```ts
 * target.dispatchEvent(toCustomEvent({ type: 'ready', detail: { peerId } }));
 * ```
 */
export function toCustomEvent<M extends Message>(message: M): CustomEvent<M['detail']> {
  return new CustomEvent(message.type, { detail: message.detail });
}

/** Turns a DOM event back into a {@link Message} (`detail` is `undefined` for a plain Event). */
export function fromCustomEvent(event: Event): Message {
  return { type: event.type, detail: (event as CustomEvent).detail };
}

/**
 * Throws at once, naming the fix, when `target` cannot take events: in Node,
 * `window` is `undefined`, and a missing target would otherwise surface only
 * as a TypeError at the first emitted event.
 */
function assertEventTarget(target: unknown, caller: string): asserts target is EventTarget {
  const t = target as Partial<EventTarget> | null | undefined;
  if (typeof t?.dispatchEvent === 'function' && typeof t.addEventListener === 'function') return;
  const what =
    target === null || target === undefined
      ? String(target)
      : `${typeof target === 'object' ? 'an object' : `a ${typeof target}`} without dispatchEvent`;
  throw new TypeError(
    `${caller}: the target is ${what}, not an EventTarget. Pass window or document in a browser, ` +
      `or an EventTarget of your own (new EventTarget()) in Node, where there is no window.`,
  );
}

/** Anything XState's `actor.on` can subscribe to. */
export interface EmittingActor {
  on(type: '*', handler: (event: { type: string }) => void): { unsubscribe(): void };
}

/**
 * Re-dispatches every message an actor emits as a `CustomEvent` on `target`,
 * so a page can `addEventListener('ready', …)`. Returns the unsubscribe function.
 *
 * @throws TypeError at once when `target` is not an `EventTarget` (such as
 * `window` in Node, which is `undefined`).
 *
 * @example
 * ```ts
 * const host = createActor(cloudlink.host.provide({ ... }), { input }).start();
 * const stop = dispatchEmitted(host, window);
 * window.addEventListener('peer.ready', (e) => console.log(e.detail.peerId));
 * ```
 */
export function dispatchEmitted(actor: EmittingActor, target: EventTarget): () => void {
  assertEventTarget(target, 'dispatchEmitted');
  const sub = actor.on('*', (event) => {
    const { type, detail } = event as Message;
    target.dispatchEvent(new CustomEvent(type, { detail }));
  });
  return () => sub.unsubscribe();
}

/** Anything that takes events, like an XState actor. */
export interface EventSink {
  send(event: Message): void;
}

/**
 * Listens on `target` for the given event types and sends each as a
 * {@link Message} to `actor`: the way back from DOM events into a machine.
 * Returns the function that removes the listeners.
 *
 * @throws TypeError at once when `target` is not an `EventTarget`.
 *
 * @example
 * ```ts
 * forwardEvents(button, ['host.leave'], host);
 * button.dispatchEvent(new CustomEvent('host.leave'));
 * ```
 */
export function forwardEvents(target: EventTarget, types: readonly string[], actor: EventSink): () => void {
  assertEventTarget(target, 'forwardEvents');
  const listener = (event: Event) => actor.send(fromCustomEvent(event));
  for (const type of types) target.addEventListener(type, listener);
  return () => {
    for (const type of types) target.removeEventListener(type, listener);
  };
}
