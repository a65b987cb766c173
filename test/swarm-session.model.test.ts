/**
 * Model-based test of the swarm server session (`swarmSession`).
 *
 * The model is the session machine's own configuration with its effects
 * replaced by bookkeeping of what the registry would do, plus one event the
 * session does not see itself: `partner`, another client arriving with a
 * request. The world: client W (`other`) waits with a request before the
 * session under test (A, client `me`) connects; client V (`late`) requests
 * on `partner`. W and V answer at once (an offer for `requesting_offer`, an
 * answer for `forwarding_offer`); `match.expired` stands for `matchTimeout`
 * passing on the clock, which ends every match A still has in progress
 * (the timer of a match runs in the session whose request made it: A's, or
 * V's). Every path @xstate/graph plans is replayed
 * on a fresh real server over a memory network on a SimulatedClock; after
 * each step the real session's state, the frames A, W and V got, and the
 * server's stats are checked.
 */
import { describe, expect, it } from 'vitest';
import { assign, setup, SimulatedClock, type AnyActorRef, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { createSwarmServer } from '../machines/swarm/server.js';
import { swarmSession } from '../machines/swarm/server.machine.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle } from './model-helpers.js';
import { servedInMemory } from './socket-helpers.js';
import { rawClient, type Frame, type RawClient } from './swarm-helpers.js';

const INTRO_MS = 1000;
const MATCH_MS = 5000;
const A = 'session-a';
const AFTER_INTRO = 'xstate.after.introTimeout.swarmSession.awaitingIntro';
type Ctx = 'x' | 'y';
const CTXS: Ctx[] = ['x', 'y'];
type Stage = 'pending' | 'offering' | 'answering';
type Partner = 'W' | 'V';

type ModelEvent =
  | { type: 'i_am'; detail: { client_id: string } }
  | { type: 'requesting_peers'; detail: { context_id: Ctx } }
  | { type: 'sending_offer'; detail: { offer: string; context_id: Ctx } }
  | { type: 'sending_answer'; detail: { answer: string; context_id: Ctx } }
  | { type: 'signalling.error'; error: { code: string; message: string }; frame: string }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: 'partner' }
  | { type: 'match.expired'; id: string }
  | { type: typeof AFTER_INTRO };

interface Book {
  introduced: boolean;
  stages: Partial<Record<Ctx, { stage: Stage; partner?: Partner }>>;
  /** A's pending contexts, oldest first. */
  order: Ctx[];
  w: 'waiting' | 'used';
  v: 'absent' | 'waiting' | 'used';
}

type ModelSnapshot = Omit<AnyMachineSnapshot, 'context'> & { context: { book: Book } };

const detailOf = (event: unknown) => (event as { detail: { context_id: Ctx } }).detail;
const inProgress = (book: Book, ctx: Ctx) => book.stages[ctx] !== undefined && book.stages[ctx].stage !== 'pending';

/** What the registry does with A's messages, and with V's arrival. */
const model: AnyStateMachine = setup({
  types: { context: {} as { book: Book }, events: {} as ModelEvent },
  delays: { introTimeout: INTRO_MS, matchTimeout: MATCH_MS },
  actions: {
    register: () => {},
    leave: () => {},
    closeIdle: () => {},
    refuse: () => {},
    introduce: assign(({ context }) => ({ book: { ...context.book, introduced: true } })),
    request: assign(({ context, event }) => {
      const book = structuredClone(context.book);
      const ctx = detailOf(event).context_id;
      if (book.stages[ctx]) return { book };
      if (book.w === 'waiting') {
        book.w = 'used';
        book.stages[ctx] = { stage: 'answering', partner: 'W' };
      } else if (book.v === 'waiting') {
        book.v = 'used';
        book.stages[ctx] = { stage: 'answering', partner: 'V' };
      } else {
        book.stages[ctx] = { stage: 'pending' };
        book.order.push(ctx);
      }
      return { book };
    }),
    relayOffer: assign(({ context, event }) => {
      const book = structuredClone(context.book);
      const ctx = detailOf(event).context_id;
      if (book.stages[ctx]?.stage === 'offering') delete book.stages[ctx]; // the partner answers at once
      return { book };
    }),
    relayAnswer: assign(({ context, event }) => {
      const book = structuredClone(context.book);
      const ctx = detailOf(event).context_id;
      if (book.stages[ctx]?.stage === 'answering') delete book.stages[ctx];
      return { book };
    }),
    expire: assign(({ context }) => {
      const book = structuredClone(context.book);
      for (const ctx of CTXS) if (inProgress(book, ctx)) delete book.stages[ctx];
      return { book };
    }),
    partnerArrives: assign(({ context }) => {
      const book = structuredClone(context.book);
      if (book.v !== 'absent') return { book };
      // V pairs with the oldest request of another client: W's, while it waits, else A's.
      if (book.w === 'waiting') {
        book.w = 'used';
        book.v = 'used';
        return { book };
      }
      const oldest = book.order.shift();
      if (oldest) {
        book.stages[oldest] = { stage: 'offering', partner: 'V' };
        book.v = 'used';
      } else book.v = 'waiting';
      return { book };
    }),
  },
}).createMachine({
  ...(swarmSession.config as object),
  context: { book: { introduced: false, stages: {}, order: [], w: 'waiting', v: 'absent' } },
  on: { ...(swarmSession.config.on as object), partner: { actions: 'partnerArrives' } },
} as never) as unknown as AnyStateMachine;

const events: ModelEvent[] = [
  { type: 'i_am', detail: { client_id: 'me' } },
  ...CTXS.flatMap((context_id): ModelEvent[] => [
    { type: 'requesting_peers', detail: { context_id } },
    { type: 'sending_offer', detail: { offer: 'a-offer', context_id } },
    { type: 'sending_answer', detail: { answer: 'a-answer', context_id } },
  ]),
  { type: 'signalling.error', error: { code: 'ERR_MALFORMED_FRAME', message: 'not JSON' }, frame: 'hello?' },
  { type: 'signalling.closed', info: { code: 1006, reason: 'link severed', initiator: 'remote' } },
];

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { book } = (snapshot as ModelSnapshot).context;
  const out = [...events];
  if (book.v === 'absent') out.push({ type: 'partner' });
  if (CTXS.some((ctx) => inProgress(book, ctx))) out.push({ type: 'match.expired', id: 'any' });
  if (snapshot.value === 'awaitingIntro') out.push({ type: AFTER_INTRO });
  return out;
}

function serializeState(snapshot: AnyMachineSnapshot): string {
  const { w, v } = (snapshot as ModelSnapshot).context.book;
  // Closed sessions differ only in what the others still wait for.
  if (snapshot.status === 'done') return `closed ${w} ${v}`;
  return JSON.stringify([snapshot.value, (snapshot as ModelSnapshot).context.book]);
}

function formatEvent(event: ModelEvent): string {
  if (event.type === AFTER_INTRO) return `${INTRO_MS} ms pass`;
  if (event.type === 'signalling.error') return 'a bad frame';
  if (event.type === 'signalling.closed') return 'A disconnects';
  if (event.type === 'partner') return 'V arrives';
  if (event.type === 'match.expired') return `${MATCH_MS} ms pass`;
  if (event.type === 'i_am') return 'i_am';
  return `${event.type}(${event.detail.context_id})`;
}

const plan = planPaths<ModelEvent>({
  model,
  machine: swarmSession,
  inputs: [undefined],
  events: modelEvents,
  serializeState,
  describe: (path: StatePath<AnyMachineSnapshot, ModelEvent>) =>
    `${path.steps
      .slice(1)
      .map((s) => formatEvent(s.event))
      .join(' → ')} ends ${path.state.status === 'done' ? 'closed' : JSON.stringify(path.state.value)}`,
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${event.type}`,
});

// ---------------------------------------------------------------------------

const tracker = coverageTracker((actor) => actor.id === A);

async function world() {
  const clock = new SimulatedClock();
  const ids = ['session-w', 'session-v', A];
  let session: AnyActorRef | undefined;
  const server = createSwarmServer({
    clock,
    introTimeout: INTRO_MS,
    matchTimeout: MATCH_MS,
    generateId: () => ids.shift()!,
    inspect: (event) => {
      tracker.inspect(event);
      if (event.type === '@xstate.actor' && (event.actorRef as AnyActorRef).id === A) {
        session = event.actorRef as AnyActorRef;
      }
    },
  });
  const served = servedInMemory(server, 'swarm');
  /** A client that offers or answers at once. */
  const partner = async (clientId: string, ctx: string) => {
    const client = rawClient(await served.open('/swarm'));
    client.transport.on('message', (frame) => {
      const { type } = JSON.parse(frame as string) as Frame;
      if (type === 'requesting_offer') {
        client.send({ type: 'sending_offer', detail: { offer: `${clientId}-offer`, context_id: ctx } });
      } else if (type === 'forwarding_offer') {
        client.send({ type: 'sending_answer', detail: { answer: `${clientId}-answer`, context_id: ctx } });
      }
    });
    client.send({ type: 'i_am', detail: { client_id: clientId } });
    return client;
  };
  const w = await partner('other', 'w1');
  w.send({ type: 'requesting_peers', detail: { context_id: 'w1' } });
  const v = await partner('late', 'v1');
  await settle();
  const a = rawClient(await served.open('/swarm'));
  await settle();
  expect(server.stats()).toEqual({ connections: 3, pending: 1, matches: 0 });
  return { clock, network: served.network, server, close: served.close, a, w, v, session: session! };
}
type World = Awaited<ReturnType<typeof world>>;

const take = (client: RawClient) => client.inbox.splice(0);

async function exec(world: World, _prev: ModelSnapshot, event: ModelEvent) {
  switch (event.type) {
    case 'signalling.error':
      world.a.send(event.frame);
      break;
    case 'signalling.closed':
      world.network.sever(world.a.transport);
      break;
    case 'partner':
      world.v.send({ type: 'requesting_peers', detail: { context_id: 'v1' } });
      break;
    case AFTER_INTRO:
      world.clock.increment(INTRO_MS);
      break;
    case 'match.expired':
      world.clock.increment(MATCH_MS);
      break;
    default:
      world.a.send({ type: event.type, detail: event.detail });
  }
  await settle();
}

const error = (detail: Record<string, unknown>) => ({ type: 'error', detail: expect.objectContaining(detail) });
const partnerCtx = (p: Partner) => (p === 'W' ? 'w1' : 'v1');
const timedOut = (context_id: string) => ({
  type: 'error',
  detail: { code: 'ERR_TIMEOUT', message: `the match was not answered within ${MATCH_MS} ms`, context_id },
});
/** Timers fire in the order they were set: compare what each client got as a set. */
const unordered = (frames: unknown[]) => frames.map((f) => JSON.stringify(f)).sort();

/** What A, W and V receive in a step, from the model alone. */
function expected(prev: ModelSnapshot, event: ModelEvent, next: ModelSnapshot) {
  const out = { a: [] as unknown[], W: [] as unknown[], V: [] as unknown[] };
  const before = prev.context.book;
  const after = next.context.book;
  const ready = prev.value === 'ready';
  switch (event.type) {
    case 'i_am':
      if (ready) out.a.push(error({ code: 'ERR_NOT_PERMITTED', event: 'i_am' }));
      break;
    case 'requesting_peers': {
      const ctx = event.detail.context_id;
      if (!ready) out.a.push(error({ code: 'ERR_NOT_PERMITTED', event: 'requesting_peers' }));
      else if (before.stages[ctx]) out.a.push(error({ code: 'ERR_NOT_PERMITTED', context_id: ctx }));
      else if (after.stages[ctx]?.stage === 'answering') {
        const p = after.stages[ctx]!.partner!;
        out[p].push({ type: 'requesting_offer', detail: { context_id: partnerCtx(p) } });
        out.a.push({ type: 'wait_for_offer', detail: { context_id: ctx } });
        out.a.push({
          type: 'forwarding_offer',
          detail: { offer: `${p === 'W' ? 'other' : 'late'}-offer`, context_id: ctx },
        });
      }
      break;
    }
    case 'sending_offer': {
      const ctx = event.detail.context_id;
      const was = before.stages[ctx];
      if (!ready) out.a.push(error({ code: 'ERR_NOT_PERMITTED', event: 'sending_offer' }));
      else if (was?.stage !== 'offering')
        out.a.push(error({ code: 'ERR_NOT_PERMITTED', event: 'sending_offer', context_id: ctx }));
      else {
        out[was.partner!].push({ type: 'forwarding_offer', detail: { offer: 'a-offer', context_id: 'v1' } });
        out.a.push({ type: 'forwarding_answer', detail: { answer: 'late-answer', context_id: ctx } });
      }
      break;
    }
    case 'sending_answer': {
      const ctx = event.detail.context_id;
      const was = before.stages[ctx];
      if (!ready) out.a.push(error({ code: 'ERR_NOT_PERMITTED', event: 'sending_answer' }));
      else if (was?.stage !== 'answering') {
        out.a.push(error({ code: 'ERR_NOT_PERMITTED', event: 'sending_answer', context_id: ctx }));
      } else {
        const p = was.partner!;
        out[p].push({ type: 'forwarding_answer', detail: { answer: 'a-answer', context_id: partnerCtx(p) } });
      }
      break;
    }
    case 'signalling.error':
      out.a.push(error({ code: 'ERR_MALFORMED_FRAME' }));
      break;
    case 'signalling.closed':
      for (const entry of Object.values(before.stages)) {
        if (entry.partner) {
          out[entry.partner].push(error({ code: 'ERR_PEER_GONE', context_id: partnerCtx(entry.partner) }));
        }
      }
      break;
    case 'match.expired':
      for (const ctx of CTXS) {
        if (!inProgress(before, ctx)) continue;
        const p = before.stages[ctx]!.partner!;
        out.a.push(timedOut(ctx));
        out[p].push(timedOut(partnerCtx(p)));
      }
      break;
    case 'partner': {
      if (before.w === 'waiting') {
        // W and V pair up and finish their own handshake.
        out.W.push({ type: 'requesting_offer', detail: { context_id: 'w1' } });
        out.W.push({ type: 'forwarding_answer', detail: { answer: 'late-answer', context_id: 'w1' } });
        out.V.push({ type: 'wait_for_offer', detail: { context_id: 'v1' } });
        out.V.push({ type: 'forwarding_offer', detail: { offer: 'other-offer', context_id: 'v1' } });
        break;
      }
      const got = CTXS.find((c) => before.stages[c]?.stage === 'pending' && after.stages[c]?.stage === 'offering');
      if (got) {
        out.a.push({ type: 'requesting_offer', detail: { context_id: got } });
        out.V.push({ type: 'wait_for_offer', detail: { context_id: 'v1' } });
      }
      break;
    }
  }
  return out;
}

async function check(world: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = world.session.getSnapshot() as AnyMachineSnapshot;
  tracker.see(real);
  expect(real.status).toBe(next.status);
  if (next.status !== 'done') expect(real.value).toEqual(next.value);
  const got = { a: take(world.a), W: take(world.w), V: take(world.v) };
  if (prev && event.type === 'match.expired') {
    const want = expected(prev, event, next);
    for (const who of ['a', 'W', 'V'] as const) expect(unordered(got[who])).toEqual(unordered(want[who]));
  } else if (prev) expect(got).toEqual(expected(prev, event, next));
  const { book } = next.context;
  if (next.status === 'done') {
    expect(world.a.transport.isOpen).toBe(false);
    expect(world.server.sessions.has(A)).toBe(false);
    expect(world.server.stats()).toEqual({
      connections: 2,
      pending: (book.w === 'waiting' ? 1 : 0) + (book.v === 'waiting' ? 1 : 0),
      matches: 0,
    });
    return;
  }
  expect(world.a.transport.isOpen).toBe(true);
  const stages = Object.values(book.stages);
  expect(world.server.stats()).toEqual({
    connections: 3,
    pending:
      stages.filter((s) => s.stage === 'pending').length +
      (book.w === 'waiting' ? 1 : 0) +
      (book.v === 'waiting' ? 1 : 0),
    matches: stages.filter((s) => s.stage !== 'pending').length,
  });
}

describe('swarm server session, model-based (memory network, SimulatedClock)', () => {
  const ranAll = replayEach('the session:', plan.paths, { start: world, exec, check, stop: (w) => w.close() });

  it('takes every state node and every transition of the session machine', () => {
    expectFullCoverage({ label: 'swarm session model', machine: swarmSession, plan, tracker, ranAll: ranAll() });
  });
});
