/**
 * Model-based test of bob (`swarmBob`), the server side of one link.
 *
 * The model is the machine itself with its effects stubbed and its
 * `upload` child replaced by nothing: the outcome of a transfer is a model
 * event (`upload.done`, `upload.failed`) that the test produces for real (it
 * lets the store's reads go on, or makes them fail). Every planned path is
 * replayed on a real bob, invoked by a small parent that records what bob
 * asks of it (`bob.reserve`), with the remote end of the link played by the
 * test, on a memory transport; after each step bob's state, his reserves,
 * every frame the remote got (bytes included) and what he asked his parent
 * are checked.
 */
import { describe, expect, it } from 'vitest';
import { assign, createActor, fromCallback, setup, type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { memoryPair } from '../adapters/memory/index.js';
import { CHUNK_SIZE } from '../machines/transfer/chunks.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { swarmBob, type BobContext, type BobReserve } from '../machines/swarm/bob.machine.js';
import { memoryStore, type ResourceStore } from '../machines/swarm/store.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle } from './model-helpers.js';
import { bytes, rawChannel, type Frame, type RawChannel } from './swarm-helpers.js';

const DATA = bytes(3 * CHUNK_SIZE + 7, 5);
const HAVE = sha256Hex(DATA);
const LACK = sha256Hex(new Uint8Array([9]));
type Which = 'have' | 'lack';
const hashOf = (which: Which) => (which === 'have' ? HAVE : LACK);
type Ask = 'querying_resource' | 'reserve_resource' | 'requesting_resource';

type ModelEvent =
  | { type: 'link.message'; link: 'L'; message: { type: Ask; detail: { hash: string } }; which: Which }
  | { type: 'reserve.done' | 'reserve.failed'; hash: string; which: Which }
  | { type: 'upload.done' }
  | { type: 'upload.failed' };

type ModelSnapshot = Omit<AnyMachineSnapshot, 'context'> & { context: BobContext };

const model = swarmBob.provide({
  actions: {
    transmit: () => {},
    closeLink: () => {},
    // Bookkeeping of `reserve` without the parent: the store of the model never changes.
    reserve: assign(({ context, event }) => {
      const { hash } = (event as unknown as { message: { detail: { hash: string } } }).message.detail;
      if (hash === HAVE || context.reserves.includes(hash)) return {};
      return { reserves: [...context.reserves, hash] };
    }) as never,
  },
  guards: { hasRequested: ({ event }) => (event as unknown as { which: Which }).which === 'have' },
  actors: { upload: fromCallback(() => {}) as never },
});

const events: ModelEvent[] = [
  ...(['querying_resource', 'reserve_resource', 'requesting_resource'] as Ask[]).flatMap((type) =>
    (['have', 'lack'] as Which[]).map((which) => ({
      type: 'link.message' as const,
      link: 'L' as const,
      message: { type, detail: { hash: hashOf(which) } },
      which,
    })),
  ),
  { type: 'reserve.done', hash: LACK, which: 'lack' },
  { type: 'reserve.failed', hash: LACK, which: 'lack' },
];

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.matches('transferring')) return [...events, { type: 'upload.done' }, { type: 'upload.failed' }];
  return events;
}

const serializeState = (snapshot: AnyMachineSnapshot) =>
  JSON.stringify([snapshot.value, (snapshot as ModelSnapshot).context.reserves]);

const formatEvent = (event: ModelEvent) =>
  event.type === 'link.message' ? `${event.message.type}(${event.which})` : event.type;

const input = { link: 'L', transport: memoryPair()[0], store: memoryStore() };

const plan = planPaths<ModelEvent>({
  model,
  machine: swarmBob,
  inputs: [input],
  events: modelEvents,
  serializeState,
  describe: (path: StatePath<AnyMachineSnapshot, ModelEvent>) =>
    `${path.steps
      .slice(1)
      .map((s) => formatEvent(s.event))
      .join(' → ')} ⇒ ${JSON.stringify(path.state.value)}`,
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${formatEvent(event)}`,
});

// ---------------------------------------------------------------------------

const tracker = coverageTracker((actor) => actor.id === 'bob');

/** A store holding DATA whose reads wait until the test lets them go (or fail). */
function gatedStore() {
  const inner = memoryStore();
  inner.add(DATA);
  let open!: () => void;
  const state = { fail: false, gate: new Promise<void>((resolve) => (open = resolve)) };
  const store: ResourceStore = {
    ...inner,
    read: async (hash, offset, length) => {
      await state.gate;
      if (state.fail) throw new Error('disk gone');
      return inner.read(hash, offset, length);
    },
  };
  return {
    store,
    release(fail: boolean) {
      state.fail = fail;
      open();
    },
    rearm() {
      state.fail = false;
      state.gate = new Promise<void>((resolve) => (open = resolve));
    },
  };
}

function world() {
  const [local, remoteEnd] = memoryPair();
  const remote: RawChannel = rawChannel(remoteEnd);
  const gated = gatedStore();
  const asked: BobReserve[] = [];
  const parent = setup({ actors: { bob: swarmBob } }).createMachine({
    invoke: { id: 'bob', src: 'bob', input: { link: 'L', transport: local, store: gated.store } },
    on: { 'bob.reserve': { actions: ({ event }) => asked.push(event as BobReserve) } },
  });
  const actor = createActor(parent, { inspect: tracker.inspect }).start();
  let read = 0;
  return {
    remote,
    gated,
    asked,
    actor,
    bob: () => actor.getSnapshot().children.bob as AnyActorRef,
    take: () => remote.frames.slice(read, (read = remote.frames.length)),
  };
}
type World = ReturnType<typeof world>;

async function exec(w: World, _prev: ModelSnapshot, event: ModelEvent) {
  switch (event.type) {
    case 'upload.done':
      w.gated.release(false);
      break;
    case 'upload.failed':
      w.gated.release(true);
      break;
    case 'link.message':
      w.bob().send({ type: 'link.message', link: 'L', message: event.message });
      break;
    default:
      w.bob().send({ type: event.type, hash: event.hash });
  }
  await settle(8);
}

const asBytes = (frames: Array<Frame | Uint8Array>) =>
  Buffer.concat(frames.filter((f): f is Uint8Array => f instanceof Uint8Array).map((f) => f.subarray(4)));

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.bob().getSnapshot() as ModelSnapshot;
  tracker.see(real as unknown as AnyMachineSnapshot);
  expect(real.value).toEqual(next.value);
  expect(real.context.reserves).toEqual(next.context.reserves);
  const frames = w.take();
  const text = frames.filter((f): f is Frame => !(f instanceof Uint8Array));
  if (!prev) {
    expect(frames).toEqual([]);
    return;
  }
  const found = (which: Which) =>
    which === 'have'
      ? { type: 'resource_found', detail: { hash: HAVE, size: DATA.byteLength } }
      : { type: 'resource_not_found', detail: { hash: LACK } };
  const want: unknown[] = [];
  let reserveAsked = false;
  const transferring = prev.matches('transferring');
  if (event.type === 'link.message') {
    const { type } = event.message;
    if (type === 'querying_resource') want.push(found(event.which));
    else if (type === 'reserve_resource') {
      if (event.which === 'have') want.push(found('have'));
      else reserveAsked = !prev.context.reserves.includes(LACK);
    } else if (transferring) {
      want.push({
        type: 'error',
        detail: {
          code: 'ERR_NOT_PERMITTED',
          message: expect.stringContaining('one transfer at a time'),
          hash: hashOf(event.which),
        },
      });
    } else if (event.which === 'have') want.push({ type: 'transferring_resource', detail: { hash: HAVE } });
    else want.push(found('lack'));
  } else if (event.type === 'reserve.done' || event.type === 'reserve.failed') {
    if (prev.context.reserves.includes(LACK)) want.push(found('lack'));
  }
  expect(text).toEqual(want);
  expect(w.asked.splice(0)).toEqual(reserveAsked ? [{ type: 'bob.reserve', link: 'L', hash: LACK }] : []);
  if (event.type === 'upload.done') {
    // Every byte went out, in order, and nothing else.
    expect(sha256Hex(asBytes(frames))).toBe(HAVE);
    w.gated.rearm();
  } else if (event.type === 'upload.failed') {
    expect(w.remote.transport.isOpen).toBe(false);
  } else expect(asBytes(frames).byteLength).toBe(0);
}

describe('swarm bob, model-based (memory link)', () => {
  const ranAll = replayEach('bob:', plan.paths, { start: world, exec, check, stop: (w) => void w.actor.stop() });

  it('takes every state node and every transition of bob', () => {
    expectFullCoverage({ label: 'bob model', machine: swarmBob, plan, tracker, ranAll: ranAll() });
  });
});
