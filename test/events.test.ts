import { describe, expect, it } from 'vitest';
import { createActor, emit, setup } from 'xstate';
import { dispatchEmitted, forwardEvents, fromCustomEvent, toCustomEvent } from '../src/events.js';
import type { Message } from '../src/message.js';

describe('CustomEvent bridge', () => {
  it('turns a message into a CustomEvent of the same type and back', () => {
    const event = toCustomEvent({ type: 'linked', detail: { id: 'p1' } });
    expect(event).toBeInstanceOf(CustomEvent);
    expect(event.type).toBe('linked');
    expect(event.detail).toEqual({ id: 'p1' });
    expect(fromCustomEvent(event)).toEqual({ type: 'linked', detail: { id: 'p1' } });
    expect(fromCustomEvent(new Event('plain'))).toEqual({ type: 'plain', detail: undefined });
  });

  const machine = setup({ types: { events: {} as Message } }).createMachine({
    on: {
      ping: { actions: emit(({ event }) => ({ type: 'pong', detail: event.detail })) },
    },
  });

  it('dispatches what an actor emits on an EventTarget until unsubscribed', () => {
    const actor = createActor(machine).start();
    const target = new EventTarget();
    const got: unknown[] = [];
    target.addEventListener('pong', (e) => got.push((e as CustomEvent).detail));
    const stop = dispatchEmitted(actor, target);
    actor.send({ type: 'ping', detail: 1 });
    stop();
    actor.send({ type: 'ping', detail: 2 });
    expect(got).toEqual([1]);
  });

  it('forwards DOM events of the listed types into an actor until removed', () => {
    const sent: Message[] = [];
    const target = new EventTarget();
    const remove = forwardEvents(target, ['leave', 'hello'], { send: (m) => sent.push(m) });
    target.dispatchEvent(new CustomEvent('hello', { detail: 'x' }));
    target.dispatchEvent(new CustomEvent('other', { detail: 'ignored' }));
    target.dispatchEvent(new Event('leave'));
    remove();
    target.dispatchEvent(new CustomEvent('hello', { detail: 'late' }));
    expect(sent).toEqual([
      { type: 'hello', detail: 'x' },
      { type: 'leave', detail: undefined },
    ]);
  });

  it('refuses a missing target at once, saying the fix (window is undefined in Node)', () => {
    const actor = createActor(machine).start();
    const win = (globalThis as { window?: EventTarget }).window;
    expect(win).toBeUndefined();
    expect(() => dispatchEmitted(actor, win!)).toThrow(
      new TypeError(
        'dispatchEmitted: the target is undefined, not an EventTarget. Pass window or document in a browser, ' +
          'or an EventTarget of your own (new EventTarget()) in Node, where there is no window.',
      ),
    );
    expect(() => dispatchEmitted(actor, null as unknown as EventTarget)).toThrow(
      /the target is null, not an EventTarget/,
    );
    expect(() => dispatchEmitted(actor, {} as EventTarget)).toThrow(
      /an object without dispatchEvent, not an EventTarget/,
    );
    expect(() => forwardEvents(win!, ['hello'], actor)).toThrow(/^forwardEvents: the target is undefined/);
    // Nothing was subscribed: the actor emits without a throw.
    expect(() => actor.send({ type: 'ping', detail: 1 })).not.toThrow();
  });
});
