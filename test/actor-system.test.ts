import { describe, expect, it } from 'vitest';
import { assign, createActor, setup, SimulatedClock, type AnyActorRef, type InspectionEvent } from 'xstate';
import { adoptActor, sharedActorSystem } from '../src/actor-system.js';

/** Counts a beat every `beat` ms; `poke` restarts the count-down; `quit` ends. */
const beater = setup({
  types: { context: {} as { beats: number }, events: {} as { type: 'poke' } | { type: 'quit' } },
  delays: { beat: 1000, deadline: 2500 },
}).createMachine({
  context: { beats: 0 },
  initial: 'beating',
  states: {
    beating: {
      after: {
        beat: { target: 'beating', reenter: true, actions: assign({ beats: ({ context }) => context.beats + 1 }) },
        deadline: 'late',
      },
      on: { poke: { target: 'beating', reenter: true }, quit: 'done' },
    },
    late: { on: { quit: 'done' } },
    done: { type: 'final' },
  },
});

function adopted(system: ReturnType<typeof sharedActorSystem>, clock: SimulatedClock, n: number) {
  return Array.from({ length: n }, (_, i) => {
    const actor = createActor(beater, { clock, id: `s${i}` });
    expect(adoptActor(actor, system)).toBe(true);
    return actor.start();
  });
}

const timers = (clock: SimulatedClock) => (clock as unknown as { timeouts: Map<number, unknown> }).timeouts.size;

describe('sharedActorSystem', () => {
  it('fires delayed events at their time, with one clock timer per delay for every actor', () => {
    const clock = new SimulatedClock();
    const system = sharedActorSystem(clock);
    const actors = adopted(system, clock, 50);
    expect(system.pendingTimers).toBe(100);
    expect(timers(clock)).toBe(2);
    clock.increment(999);
    expect(actors.map((a) => a.getSnapshot().context.beats)).toEqual(Array(50).fill(0));
    clock.increment(1);
    expect(actors.map((a) => a.getSnapshot().context.beats)).toEqual(Array(50).fill(1));
    // The reentry cancelled and rescheduled both delays of every actor.
    expect(system.pendingTimers).toBe(100);
    clock.increment(1000);
    expect(actors.map((a) => a.getSnapshot().context.beats)).toEqual(Array(50).fill(2));
    expect(actors.every((a) => a.getSnapshot().matches('beating'))).toBe(true);
  });

  it('cancels one actor’s events without touching the others’', () => {
    const clock = new SimulatedClock();
    const system = sharedActorSystem(clock);
    const [a, b] = adopted(system, clock, 2);
    clock.increment(600);
    a!.send({ type: 'poke' });
    clock.increment(400);
    expect(a!.getSnapshot().context.beats).toBe(0);
    expect(b!.getSnapshot().context.beats).toBe(1);
    clock.increment(600);
    expect(a!.getSnapshot().context.beats).toBe(1);
  });

  it('drops every pending event of an actor that stops or finishes', () => {
    const clock = new SimulatedClock();
    const system = sharedActorSystem(clock);
    const [a, b, c] = adopted(system, clock, 3);
    a!.stop();
    b!.send({ type: 'quit' });
    expect(b!.getSnapshot().status).toBe('done');
    expect(system.pendingTimers).toBe(2);
    c!.stop();
    expect(system.pendingTimers).toBe(0);
    expect(timers(clock)).toBe(0);
  });

  it('fires with the global timers', async () => {
    const quick = setup({ delays: { soon: 5 } }).createMachine({
      initial: 'waiting',
      states: { waiting: { after: { soon: 'done' } }, done: { type: 'final' } },
    });
    const system = sharedActorSystem();
    const actor = createActor(quick);
    expect(adoptActor(actor, system)).toBe(true);
    const done = new Promise<void>((resolve) => actor.subscribe({ complete: resolve }));
    actor.start();
    await done;
    expect(system.pendingTimers).toBe(0);
  });

  it('reports inspection events under each actor’s own root id', () => {
    const clock = new SimulatedClock();
    const seen: InspectionEvent[] = [];
    const system = sharedActorSystem(clock, (event) => seen.push(event));
    const [a, b] = adopted(system, clock, 2);
    a!.send({ type: 'poke' });
    clock.increment(1000);
    const events = seen.filter((e) => e.type === '@xstate.event');
    const roots = (actor: AnyActorRef) =>
      events.filter((e) => e.actorRef === actor).every((e) => e.rootId === actor.sessionId);
    expect(events.some((e) => e.actorRef === a && e.event.type === 'poke')).toBe(true);
    expect(events.some((e) => e.actorRef === b && e.event.type.startsWith('xstate.after'))).toBe(true);
    expect(roots(a!) && roots(b!)).toBe(true);
  });

  it('leaves alone what is not an XState actor of the expected shape', () => {
    const system = sharedActorSystem();
    expect(adoptActor({ send() {} } as unknown as AnyActorRef, system)).toBe(false);
  });
});
