import type { AnyActorRef, EventObject, InspectionEvent, Observer } from 'xstate';
import type { Clock } from './clock.js';
import { clockNow } from './limits.js';

/**
 * One XState actor system shared by every session of a server, with one
 * timer list per delay for their delayed events.
 *
 * Why: XState v5 gives every root actor a system of its own (about 20
 * closures, two Maps, a Set, a WeakMap and two dictionaries: ~2.5 KB), and
 * every delayed event (`after`) a `setTimeout` of its own with its closure
 * and two dictionary entries. A server holds one root actor per connection,
 * so that was most of what an idle connection cost. Here every session is
 * still a root actor of its own (its own `stop()`, its own inspection root
 * and observers), only the bookkeeping behind it is shared.
 *
 * Delayed events of the same delay are due in the order they were
 * scheduled, so each delay keeps a FIFO list with one timer armed for its
 * head (like Node's own timer lists): scheduling and cancelling are O(1),
 * and a session costs one list entry per pending delayed event. With a
 * clock of its own `now()` (XState's `SimulatedClock`) events fire at their
 * exact time; with the global timers one may fire up to 1 ms early. Events
 * of one delay fire in their order; across delays, in the order of the
 * lists' timers (when the clock jumps past several due times at once, a
 * list fires everything it has due before the next list's turn).
 *
 * This leans on XState internals (`actor.system`, `actor._actorScope`, the
 * system's methods the actor calls): {@link adoptActor} checks their shape
 * and leaves an actor on its own system when they are not as expected, so
 * an XState upgrade can cost memory, never correctness.
 */
export interface SharedActorSystem {
  /** Delayed events waiting, across every actor of the system (for tests and metrics). */
  readonly pendingTimers: number;
}

interface Entry {
  source: AnyActorRef;
  target: AnyActorRef;
  event: EventObject;
  id: string;
  due: number;
  list: TimerList;
  prev: Entry | undefined;
  next: Entry | undefined;
  /** The next entry of the same source (its pending delayed events form a chain). */
  sibling: Entry | undefined;
}

interface TimerList {
  delay: number;
  head: Entry | undefined;
  tail: Entry | undefined;
  timer: unknown;
  /** Its entries are being fired: the timer is armed once they are done. */
  firing: boolean;
}

/** The part of an XState actor that adoption reads and writes. */
interface ActorInternals {
  system: unknown;
  sessionId: string;
  _parent?: ActorInternals;
  _actorScope?: { system: unknown };
  _send(event: EventObject): void;
  getSnapshot(): { children?: Record<string, unknown> } | undefined;
}

let sessionCounter = 0;

/**
 * A system for {@link adoptActor}: delayed events on `clock` (the global
 * timers by default), inspection events to `inspect`.
 */
export function sharedActorSystem(
  clock: Clock = globalThis,
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void),
): SharedActorSystem {
  const now = clockNow(clock);
  // A simulated clock fires a timer exactly at its time; the global timers may
  // fire one a fraction of a millisecond before performance.now() reaches it.
  const exact = typeof (clock as { now?: unknown }).now === 'function';
  const observer = typeof inspect === 'function' ? { next: inspect } : inspect;
  const lists = new Map<number, TimerList>();
  const bySource = new Map<AnyActorRef, Entry>();
  const keyed = new Map<string, AnyActorRef>();
  let pending = 0;

  const arm = (list: TimerList) => {
    const head = list.head;
    if (!head) {
      if (list.timer !== undefined) clock.clearTimeout(list.timer);
      list.timer = undefined;
      return;
    }
    // Armed for an earlier entry that has gone: its callback re-arms on firing.
    if (list.timer !== undefined || list.firing) return;
    list.timer = clock.setTimeout(() => fire(list), Math.max(0, head.due - now()));
  };

  const fire = (list: TimerList) => {
    list.timer = undefined;
    list.firing = true;
    try {
      const limit = exact ? now() : now() + 1;
      let entry = list.head;
      // One at a time: the event's handling may schedule or cancel others.
      while (entry && entry.due <= limit) {
        remove(entry);
        relay(entry.source, entry.target, entry.event);
        entry = list.head;
      }
    } finally {
      list.firing = false;
      arm(list);
    }
  };

  const unlink = (entry: Entry) => {
    const list = entry.list;
    if (entry.prev) entry.prev.next = entry.next;
    else list.head = entry.next;
    if (entry.next) entry.next.prev = entry.prev;
    else list.tail = entry.prev;
    entry.prev = entry.next = undefined;
    pending--;
  };

  const remove = (entry: Entry) => {
    unlink(entry);
    let first = bySource.get(entry.source);
    if (first === entry) {
      if (entry.sibling) bySource.set(entry.source, entry.sibling);
      else bySource.delete(entry.source);
    } else {
      while (first && first.sibling !== entry) first = first.sibling;
      if (first) first.sibling = entry.sibling;
    }
    entry.sibling = undefined;
  };

  const find = (source: AnyActorRef, id: string) => {
    let entry = bySource.get(source);
    while (entry && entry.id !== id) entry = entry.sibling;
    return entry;
  };

  const rootOf = (actor: ActorInternals) => {
    let root = actor;
    while (root._parent) root = root._parent;
    return root;
  };

  const sendInspectionEvent = (event: InspectionEvent) => {
    if (!observer?.next) return;
    observer.next({ ...event, rootId: rootOf(event.actorRef as unknown as ActorInternals).sessionId });
  };

  const relay = (source: AnyActorRef | undefined, target: AnyActorRef, event: EventObject) => {
    sendInspectionEvent({
      type: '@xstate.event',
      sourceRef: source,
      actorRef: target,
      event,
    } as unknown as InspectionEvent);
    (target as unknown as ActorInternals)._send(event);
  };

  const scheduler = {
    schedule(
      source: AnyActorRef,
      target: AnyActorRef,
      event: EventObject,
      delay: number,
      id = Math.random().toString(36).slice(2),
    ) {
      // XState replaces a pending event of the same id.
      const old = find(source, id);
      if (old) remove(old);
      let list = lists.get(delay);
      if (!list)
        lists.set(delay, (list = { delay, head: undefined, tail: undefined, timer: undefined, firing: false }));
      const entry: Entry = {
        source,
        target,
        event,
        id,
        due: now() + delay,
        list,
        prev: list.tail,
        next: undefined,
        sibling: bySource.get(source),
      };
      if (list.tail) list.tail.next = entry;
      else list.head = entry;
      list.tail = entry;
      bySource.set(source, entry);
      pending++;
      arm(list);
    },
    cancel(source: AnyActorRef, id: string) {
      const entry = find(source, id);
      if (!entry) return;
      remove(entry);
      if (!entry.list.head) arm(entry.list);
    },
    cancelAll(source: AnyActorRef) {
      let entry = bySource.get(source);
      bySource.delete(source);
      while (entry) {
        const next = entry.sibling;
        unlink(entry);
        entry.sibling = undefined;
        if (!entry.list.head) arm(entry.list);
        entry = next;
      }
    },
  };

  const system = {
    _bookId: () => `shared:${sessionCounter++}`,
    // XState's own system keeps every actor in a Map that it never reads.
    _register: (sessionId: string) => sessionId,
    _unregister: (actor: AnyActorRef) => {
      for (const [systemId, keyedActor] of keyed) if (keyedActor === actor) keyed.delete(systemId);
    },
    get: (systemId: string) => keyed.get(systemId),
    getAll: () => Object.fromEntries(keyed),
    _set: (systemId: string, actor: AnyActorRef) => {
      const existing = keyed.get(systemId);
      if (existing && existing !== actor) throw new Error(`Actor with system ID '${systemId}' already exists.`);
      keyed.set(systemId, actor);
    },
    inspect() {
      throw new Error('sessions share one actor system: inspect them with the server option `inspect`');
    },
    _sendInspectionEvent: sendInspectionEvent,
    _relay: relay,
    scheduler,
    getSnapshot: () => ({ _scheduledEvents: {} }),
    // XState calls it when a root actor starts, to resume persisted delayed events; sessions have none.
    start: () => {},
    _clock: clock,
    _logger: console.log,
    get pendingTimers() {
      return pending;
    },
  };
  return system;
}

/**
 * Moves `actor`, created with `createActor` and not started yet, and the
 * children its initial state created, onto `system`. Returns false (and
 * changes nothing) when the actor's internals are not the shape this was
 * written for.
 */
export function adoptActor(actor: AnyActorRef, system: SharedActorSystem): boolean {
  const internals = actor as unknown as ActorInternals;
  if (!isAdoptable(internals)) return false;
  const move = (a: ActorInternals) => {
    a.system = system;
    a._actorScope!.system = system;
    for (const child of Object.values(a.getSnapshot()?.children ?? {})) {
      if (isAdoptable(child as ActorInternals)) move(child as ActorInternals);
    }
  };
  move(internals);
  return true;
}

function isAdoptable(actor: ActorInternals): boolean {
  return (
    typeof actor === 'object' &&
    actor !== null &&
    typeof actor._send === 'function' &&
    typeof actor.sessionId === 'string' &&
    actor._actorScope !== undefined &&
    actor._actorScope.system === actor.system &&
    typeof (actor.system as { scheduler?: { cancelAll?: unknown } } | undefined)?.scheduler?.cancelAll === 'function'
  );
}
