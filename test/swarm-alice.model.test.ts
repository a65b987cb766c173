/**
 * Model-based test of alice (`swarmAlice`), one fetch across two links.
 *
 * The model is the machine itself with its effects stubbed (no frames, no
 * store) and its `collect` child replaced by nothing: the outcome of a
 * transfer is a model event (`collect.done`, `collect.failed`), and the test
 * produces it for real by sending the bytes that lead to it (the rest of the
 * resource, other bytes, too many bytes, a chunk out of order, or a chunk
 * the store fails to write). Every planned path is replayed on a real actor
 * whose links are memory transports played by the test, on a
 * SimulatedClock; after each step the actor's state, the frames each link
 * got, what the store holds and which links were closed are checked.
 */
import { describe, expect, it } from 'vitest';
import { assign, createActor, fromCallback, SimulatedClock, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { memoryPair } from '../adapters/memory/index.js';
import { CHUNK_SIZE } from '../machines/transfer/chunks.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { swarmAlice, type AliceContext, type AliceInput } from '../machines/swarm/alice.machine.js';
import { memoryStore, type ResourceStore } from '../machines/swarm/store.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle } from './model-helpers.js';
import { bytes, rawChannel, type Frame, type RawChannel } from './swarm-helpers.js';

const DATA = bytes(CHUNK_SIZE + 100, 12);
const HASH = sha256Hex(DATA);
const MAX = 100_000;
const LINKS = ['L1', 'L2'] as const;
type Link = (typeof LINKS)[number];
const ANSWER_MS = 100;
const RESERVE_MS = 500;
const STALL_MS = 200;
const AFTER = {
  answerAsking: 'xstate.after.answerTimeout.swarmAlice.asking',
  reserve: 'xstate.after.reserveTimeout.swarmAlice.asking',
  answerRequesting: 'xstate.after.answerTimeout.swarmAlice.requesting',
  stall: 'xstate.after.stallTimeout.swarmAlice.receiving.flowing',
} as const;

type Failure = 'digest-mismatch' | 'size-mismatch' | 'protocol' | 'store-failed';
type Reply = 'resource_found' | 'huge' | 'resource_not_found' | 'error' | 'transferring_resource';

type ModelEvent =
  | { type: 'link.message'; link: Link; reply: Reply; message: ReturnType<typeof messageOf> }
  | { type: 'link.closed'; link: Link }
  | { type: 'link.chunk'; link: Link }
  | { type: 'collect.done' }
  | { type: 'collect.failed'; reason: Failure }
  | { type: 'cancel' }
  | { type: (typeof AFTER)[keyof typeof AFTER] };

type ModelSnapshot = Omit<AnyMachineSnapshot, 'context'> & { context: AliceContext };

const messageOf = (reply: Reply) => {
  switch (reply) {
    case 'resource_found':
      return { type: 'resource_found', detail: { hash: HASH, size: DATA.byteLength } };
    case 'huge':
      return { type: 'resource_found', detail: { hash: HASH, size: MAX + 1 } };
    case 'error':
      return { type: 'error', detail: { code: 'ERR_NOT_PERMITTED', message: 'no', hash: HASH } };
    default:
      return { type: reply, detail: { hash: HASH } };
  }
};

/** The machine with its effects stubbed; `received` stands for the chunks the test sent. */
const model = swarmAlice.provide({
  actions: {
    transmit: () => {},
    closeLink: () => {},
    forward: assign({ received: CHUNK_SIZE }) as never,
    recordProgress: () => {},
  },
  actors: { collect: fromCallback(() => {}) as never },
});

const candidates = (n: number) => LINKS.slice(0, n).map((link) => ({ link, transport: memoryPair()[0] }));
const inputOf = (hash: string, n: number, urgent: boolean): AliceInput => ({
  hash,
  candidates: candidates(n),
  urgent,
  store: memoryStore(),
  maxSize: MAX,
  answerTimeout: ANSWER_MS,
  reserveTimeout: RESERVE_MS,
  stallTimeout: STALL_MS,
});

const baseEvents: ModelEvent[] = [
  ...LINKS.flatMap((link): ModelEvent[] => [
    ...(['resource_found', 'huge', 'resource_not_found', 'error', 'transferring_resource'] as Reply[]).map((reply) => ({
      type: 'link.message' as const,
      link,
      reply,
      message: messageOf(reply),
    })),
    { type: 'link.closed', link },
  ]),
  { type: 'cancel' },
];

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { context } = snapshot as ModelSnapshot;
  const events = [...baseEvents];
  if (snapshot.matches('asking')) events.push({ type: context.urgent ? AFTER.answerAsking : AFTER.reserve });
  if (snapshot.matches('requesting')) events.push({ type: AFTER.answerRequesting });
  if (snapshot.matches('receiving')) {
    const link = context.candidates[context.index]!.link as Link;
    if (context.received === 0) events.push({ type: 'link.chunk', link });
    events.push({ type: AFTER.stall }, { type: 'collect.done' });
    for (const reason of ['digest-mismatch', 'size-mismatch', 'protocol', 'store-failed'] as Failure[]) {
      events.push({ type: 'collect.failed', reason });
    }
  }
  return events;
}

function serializeState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  return JSON.stringify([
    snapshot.status,
    snapshot.value,
    context.index,
    context.received,
    context.size ?? null,
    context.error?.reason ?? null,
    context.misses.map((m) => m.reason),
    context.urgent,
    context.candidates.length,
  ]);
}

function formatEvent(event: ModelEvent): string {
  if (event.type === 'link.message') return `${event.link} ${event.reply}`;
  if (event.type === 'link.closed' || event.type === 'link.chunk') return `${event.type}(${event.link})`;
  if (event.type === 'collect.failed') return `bytes: ${event.reason}`;
  if (event.type === 'collect.done') return 'the rest of the bytes';
  if (event.type.startsWith('xstate.after.')) return event.type.split('.')[2]!;
  return event.type;
}

/** Transitions no model event plans for, and why. */
const notPlanned = {
  'swarmAlice.receiving: on collect.progress':
    'the real collect actor reports every chunk; the model folds that into link.chunk and collect.done',
};

const plan = planPaths<ModelEvent>({
  model,
  machine: swarmAlice,
  notPlanned,
  inputs: [inputOf(HASH, 2, true), inputOf(HASH, 2, false), inputOf(HASH, 0, true), inputOf('nope', 2, true)],
  events: modelEvents,
  serializeState,
  describe: (path: StatePath<AnyMachineSnapshot, ModelEvent>) => {
    const { context } = path.steps[0]!.state as ModelSnapshot;
    const start = `${context.candidates.length} links, ${context.urgent ? 'urgent' : 'reserve'}${isHashLike(context.hash) ? '' : ', bad hash'}`;
    const steps = path.steps.slice(1).map((s) => formatEvent(s.event));
    return `[${start}] ${steps.join(' → ') || 'start'} ⇒ ${path.state.status === 'done' ? JSON.stringify(path.state.value) : JSON.stringify(path.state.value)}`;
  },
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${formatEvent(event)}`,
});

function isHashLike(hash: string) {
  return /^[0-9a-f]{64}$/.test(hash);
}

// ---------------------------------------------------------------------------

const tracker = coverageTracker((actor) => actor.id === 'alice-under-test');

/** A store whose writes fail on demand. */
function flakyStore(): ResourceStore & { failWrites: boolean } {
  const inner = memoryStore();
  const store = {
    ...inner,
    failWrites: false,
    async create(hash: string, size: number) {
      const writer = await inner.create(hash, size);
      return {
        ...writer,
        write: (chunk: Uint8Array) => {
          if (store.failWrites) throw new Error('disk full');
          return writer.write(chunk);
        },
      };
    },
  };
  return store;
}

function world(initial: ModelSnapshot) {
  const { context } = initial;
  const clock = new SimulatedClock();
  const store = flakyStore();
  const remotes = new Map<Link, RawChannel>();
  const links = context.candidates.map(({ link }) => {
    const [local, remote] = memoryPair();
    remotes.set(link as Link, rawChannel(remote));
    return { link, transport: local };
  });
  const actor = createActor(swarmAlice, {
    id: 'alice-under-test',
    clock,
    inspect: tracker.inspect,
    input: { ...inputOf(context.hash, links.length, context.urgent), candidates: links, store },
  });
  const read = new Map<Link, number>();
  return {
    clock,
    store,
    remotes,
    actor: actor.start(),
    /** Chunks sent in the current transfer. */
    sent: 0,
    /** Frames a link got since the last call. */
    take(link: Link) {
      const remote = remotes.get(link)!;
      const from = read.get(link) ?? 0;
      read.set(link, remote.frames.length);
      return remote.frames.slice(from);
    },
  };
}
type World = ReturnType<typeof world>;

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent) {
  const current = prev.context.candidates[prev.context.index]?.link as Link | undefined;
  switch (event.type) {
    case 'link.message':
      w.actor.send({ type: 'link.message', link: event.link, message: messageOf(event.reply) as never });
      break;
    case 'link.closed':
      w.remotes.get(event.link)!.transport.close();
      w.actor.send({ type: 'link.closed', link: event.link });
      break;
    case 'link.chunk':
      w.actor.send({ type: 'link.chunk', link: event.link, seq: 0, data: DATA.subarray(0, CHUNK_SIZE) });
      w.sent = 1;
      break;
    case 'collect.done':
      if (w.sent === 0)
        w.actor.send({ type: 'link.chunk', link: current!, seq: 0, data: DATA.subarray(0, CHUNK_SIZE) });
      w.actor.send({ type: 'link.chunk', link: current!, seq: 1, data: DATA.subarray(CHUNK_SIZE) });
      break;
    case 'collect.failed': {
      const send = (seq: number, data: Uint8Array) => w.actor.send({ type: 'link.chunk', link: current!, seq, data });
      if (event.reason === 'protocol') send(w.sent + 5, DATA.subarray(0, 10));
      else if (event.reason === 'store-failed') {
        w.store.failWrites = true;
        send(w.sent, DATA.subarray(0, 10));
      } else if (event.reason === 'size-mismatch') {
        send(w.sent, DATA.subarray(0, CHUNK_SIZE));
        send(w.sent + 1, DATA.subarray(0, CHUNK_SIZE));
      } else {
        if (w.sent === 0) send(0, DATA.subarray(0, CHUNK_SIZE));
        send(1, bytes(100, 77));
      }
      break;
    }
    case 'cancel':
      w.actor.send({ type: 'cancel' });
      break;
    case AFTER.answerAsking:
    case AFTER.answerRequesting:
      w.clock.increment(ANSWER_MS);
      break;
    case AFTER.reserve:
      w.clock.increment(RESERVE_MS);
      break;
    case AFTER.stall:
      w.clock.increment(STALL_MS);
      break;
  }
  // A transfer starts from chunk 0: only a partial chunk in `receiving` is remembered.
  if (event.type !== 'link.chunk') w.sent = 0;
  await settle(6);
  // A failed write settles after the writer's promise chain.
  await settle(6);
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.actor.getSnapshot() as ModelSnapshot;
  tracker.see(real as unknown as AnyMachineSnapshot);
  expect(real.status).toBe(next.status);
  expect(real.value).toEqual(next.value);
  expect(real.context.index).toBe(next.context.index);
  expect(real.context.error?.reason).toBe(next.context.error?.reason);
  expect(real.context.misses.map((m) => m.reason)).toEqual(next.context.misses.map((m) => m.reason));

  // What went out on each link: the ask on entering `asking`, the go on entering `requesting`.
  const entered = (state: string) =>
    next.matches(state) && (!prev || !prev.matches(state) || prev.context.index !== next.context.index);
  for (const link of LINKS) {
    if (!w.remotes.has(link)) continue;
    const frames = w.take(link) as Frame[];
    const isCurrent = next.status === 'active' && next.context.candidates[next.context.index]?.link === link;
    const want: unknown[] = [];
    if (isCurrent && entered('asking') && w.remotes.get(link)!.transport.isOpen) {
      want.push({ type: next.context.urgent ? 'querying_resource' : 'reserve_resource', detail: { hash: HASH } });
    }
    if (isCurrent && entered('requesting')) want.push({ type: 'requesting_resource', detail: { hash: HASH } });
    expect(frames).toEqual(want);
  }
  // A link that sent bad bytes or stalled is closed by alice.
  if (prev?.matches('receiving') && next.context.misses.length > prev.context.misses.length) {
    const miss = next.context.misses.at(-1)!;
    if (['digest-mismatch', 'size-mismatch', 'protocol', 'timeout'].includes(miss.reason)) {
      expect(w.remotes.get(miss.link as Link)!.transport.isOpen).toBe(false);
    }
  }
  // Only verified bytes are stored.
  if (next.matches('done')) {
    expect(Buffer.compare((w.store as unknown as { get(h: string): Uint8Array }).get(HASH)!, DATA)).toBe(0);
    expect(real.output).toMatchObject({ hash: HASH, size: DATA.byteLength, from: real.context.from });
  } else expect(w.store.stat(HASH)).toBeUndefined();
}

describe('swarm alice, model-based (memory links, SimulatedClock)', () => {
  const ranAll = replayEach('alice', plan.paths, { start: world, exec, check, stop: (w) => void w.actor.stop() });

  it('takes every state node and every transition of alice', () => {
    // The real actors take every transition, the unplanned one included.
    expectFullCoverage({ label: 'alice model', machine: swarmAlice, plan, tracker, notPlanned, ranAll: ranAll() });
  });
});
