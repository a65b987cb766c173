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

/** Anything XState's `actor.on` can subscribe to. */
export interface EmittingActor {
  on(type: '*', handler: (event: { type: string }) => void): { unsubscribe(): void };
}

/**
 * Re-dispatches every message an actor emits as a `CustomEvent` on `target`,
 * so a page can `addEventListener('ready', …)`. Returns the unsubscribe function.
 *
 * @example
 * ```ts
 * const host = createActor(cloudlink.host.provide({ ... }), { input }).start();
 * const stop = dispatchEmitted(host, window);
 * window.addEventListener('peer.ready', (e) => console.log(e.detail.peerId));
 * ```
 */
export function dispatchEmitted(actor: EmittingActor, target: EventTarget): () => void {
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
 * @example
 * ```ts
 * forwardEvents(button, ['host.leave'], host);
 * button.dispatchEvent(new CustomEvent('host.leave'));
 * ```
 */
export function forwardEvents(target: EventTarget, types: readonly string[], actor: EventSink): () => void {
  const listener = (event: Event) => actor.send(fromCustomEvent(event));
  for (const type of types) target.addEventListener(type, listener);
  return () => {
    for (const type of types) target.removeEventListener(type, listener);
  };
}
