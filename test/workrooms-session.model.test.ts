/**
 * Model-based test of the workrooms server session (`workroomsSession`).
 *
 * The model is the session machine itself with its effects replaced by pure
 * bookkeeping of the one thing that steers it: whether the client has a call
 * (with its one mate). Every path @xstate/graph plans is replayed on a fresh
 * real server (`createWorkroomsServer`) over a memory network on a
 * SimulatedClock: the model's events become raw client frames, a severed
 * link, a second connection that takes the session over, and clock ticks;
 * after each step the real session's state, the frames every client got and
 * the server's registry are checked.
 */
import { describe, expect, it } from 'vitest';
import { enqueueActions, SimulatedClock, type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { memoryRegistry } from '../machines/workrooms/registry.js';
import { createWorkroomsServer } from '../machines/workrooms/server.js';
import { workroomsSession, type SessionContext } from '../machines/workrooms/server.machine.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach } from './model-helpers.js';
import { servedInMemory } from './socket-helpers.js';
import { rawClient, settle, type Frame, type RawClient } from './workrooms-helpers.js';

const GRACE = 3000;
const REGISTER_TIMEOUT = 2000;
const A = 'session-under-test-000001';
const MATE = 'the-mate-session-0000001';
const NOBODY = 'nobody-holds-this-id-0001';
const NEVER = 'never-placed-call-000000';
const UNKNOWN = 'no-such-call-000000000000';
const MATE_PROFILE = { github: { login: 'mate', name: 'The Mate' } };
const sdp = 'v=0\r\n';
const candidate = { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' };
const AFTER_GRACE = 'xstate.after.grace.workroomsSession.away';
const AFTER_REGISTER_TIMEOUT = 'xstate.after.registerTimeout.workroomsSession.unregistered';

type Which = 'ours' | 'unknown';
type Relay = 'offer' | 'answer' | 'ice';
type ModelEvent =
  | { type: 'register'; detail: { sessionid: string } }
  | {
      type: 'userprofile' | 'autocomplete' | 'session.takenOver' | typeof AFTER_GRACE | typeof AFTER_REGISTER_TIMEOUT;
    }
  | { type: 'call'; detail: { to: 'mate' | 'self' | 'nobody' } }
  | { type: 'hangup' | Relay; detail: { call: Which } }
  | { type: 'signalling.error'; frame: string }
  | { type: 'signalling.closed' };

type ModelContext = SessionContext & { hasCall?: boolean };
type ModelSnapshot = AnyMachineSnapshot & { context: ModelContext };

const model = workroomsSession.provide({
  guards: { hasCalls: ({ context }) => (context as ModelContext).hasCall === true },
  actions: {
    open: () => {},
    register: () => {},
    setProfile: () => {},
    search: () => {},
    relay: () => {},
    refuseBeforeRegister: () => {},
    refuseRegister: () => {},
    expire: () => {},
    reportBadFrame: () => {},
    goAway: () => {},
    leave: () => {},
    closeStale: () => {},
    placeCall: enqueueActions(({ context, event, enqueue }) => {
      const { to } = (event as unknown as { detail: { to: string } }).detail;
      if (to === 'mate' && !(context as ModelContext).hasCall) enqueue.assign({ hasCall: true } as never);
    }) as never,
    hangUp: enqueueActions(({ context, event, enqueue }) => {
      const { call } = (event as unknown as { detail: { call: Which } }).detail;
      if (call === 'ours' && (context as ModelContext).hasCall) enqueue.assign({ hasCall: false } as never);
    }) as never,
  },
});

const messages: ModelEvent[] = [
  { type: 'register', detail: { sessionid: A } },
  { type: 'userprofile' },
  { type: 'autocomplete' },
  ...(['mate', 'self', 'nobody'] as const).map((to) => ({ type: 'call' as const, detail: { to } })),
  ...(['hangup', 'offer', 'answer', 'ice'] as const).flatMap((type) =>
    (['ours', 'unknown'] as const).map((call) => ({ type, detail: { call } })),
  ),
  { type: 'signalling.error', frame: 'not json' },
  { type: 'signalling.closed' },
];

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  if (snapshot.value === 'unregistered') return [...messages, { type: AFTER_REGISTER_TIMEOUT }];
  if (snapshot.value === 'registered') return [...messages, { type: 'session.takenOver' }];
  return [{ type: AFTER_GRACE }, { type: 'session.takenOver' }];
}

const serializeState = (snapshot: AnyMachineSnapshot) =>
  JSON.stringify([snapshot.value, (snapshot as ModelSnapshot).context.hasCall === true]);

function formatEvent(event: ModelEvent): string {
  if (event.type === 'register') return 'register';
  if ('detail' in event) return `${event.type}(${Object.values(event.detail)[0]})`;
  if (event.type === 'signalling.closed') return 'link severed';
  if (event.type === 'signalling.error') return 'bad frame';
  if (event.type === 'session.takenOver') return 'another connection registers its sessionid';
  if (event.type === AFTER_GRACE) return `${GRACE} ms pass`;
  if (event.type === AFTER_REGISTER_TIMEOUT) return `${REGISTER_TIMEOUT} ms pass`;
  return event.type;
}

const describePath = (path: StatePath<AnyMachineSnapshot, ModelEvent>) =>
  `reaches ${String(path.state.value)}${(path.state as ModelSnapshot).context.hasCall ? ' with a call' : ''} after ${
    path.steps
      .slice(1)
      .map((s) => formatEvent(s.event))
      .join(' → ') || 'connecting'
  }`;

const notPlanned = {};
const plan = planPaths<ModelEvent>({
  model,
  machine: workroomsSession,
  inputs: [{ connection: 'conn:2', services: { grace: GRACE, registerTimeout: REGISTER_TIMEOUT } }],
  events: modelEvents,
  serializeState,
  describe: describePath,
  notPlanned,
  edgeClass: (from, event) => `${serializeState(from)} ${JSON.stringify(event)}`,
});

// ---------------------------------------------------------------------------
// The system under test: a real server, a mate that is registered first, and
// the raw client A whose session (connection `conn:2`) the model follows.
// ---------------------------------------------------------------------------

const tracker = coverageTracker((actor) => actor.id === 'conn:2');

async function world() {
  const clock = new SimulatedClock();
  const registry = memoryRegistry();
  let session: AnyActorRef | undefined;
  const server = createWorkroomsServer({
    clock,
    registry,
    grace: GRACE,
    registerTimeout: REGISTER_TIMEOUT,
    inspect: (event) => {
      tracker.inspect(event);
      if (event.type === '@xstate.actor' && (event.actorRef as AnyActorRef).id === 'conn:2') {
        session = event.actorRef as AnyActorRef;
      }
    },
  });
  const served = servedInMemory(server, 'workrooms');
  const connect = async () => rawClient(await served.open('/workrooms'));
  const mate = await connect();
  await mate.register(MATE);
  mate.send({ type: 'userprofile', detail: MATE_PROFILE });
  const a = await connect();
  await settle();
  expect(session).toBeDefined();
  return {
    clock,
    network: served.network,
    registry,
    server,
    served,
    mate,
    a,
    session: session!,
    /** The call A placed last, once it did. */
    callid: undefined as string | undefined,
    /** A sent a profile while registered. */
    profiled: false,
    /** The connection that took A's session over. */
    taker: undefined as RawClient | undefined,
  };
}

type World = Awaited<ReturnType<typeof world>>;

const callOf = (w: World, which: Which) => (which === 'ours' ? (w.callid ?? NEVER) : UNKNOWN);

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  switch (event.type) {
    case 'register':
      w.a.send({ type: 'register', detail: { sessionid: A, calls: [] } });
      break;
    case 'userprofile':
      w.a.send({ type: 'userprofile', detail: { github: { login: 'a' } } });
      if (prev.value === 'registered') w.profiled = true;
      break;
    case 'autocomplete':
      w.a.send({ type: 'autocomplete', detail: { search: 'mate' } });
      break;
    case 'call': {
      const to = { mate: MATE, self: A, nobody: NOBODY }[event.detail.to];
      w.a.send({ type: 'call', detail: { to } });
      break;
    }
    case 'hangup':
      w.a.send({ type: 'hangup', detail: { calls: [{ callid: callOf(w, event.detail.call) }] } });
      break;
    case 'offer':
    case 'answer':
      w.a.send({ type: event.type, detail: { callid: callOf(w, event.detail.call), peerid: MATE, sdp } });
      break;
    case 'ice':
      w.a.send({ type: 'ice', detail: { callid: callOf(w, event.detail.call), peerid: MATE, candidate } });
      break;
    case 'signalling.error':
      w.a.send(event.frame);
      break;
    case 'signalling.closed':
      w.network.sever(w.a.transport);
      break;
    case 'session.takenOver': {
      w.taker = rawClient(await w.served.open('/workrooms'));
      w.taker.send({
        type: 'register',
        detail: { sessionid: A, calls: prev.context.hasCall ? [{ callid: w.callid }] : [] },
      });
      break;
    }
    case AFTER_GRACE:
      w.clock.increment(GRACE);
      break;
    case AFTER_REGISTER_TIMEOUT:
      w.clock.increment(REGISTER_TIMEOUT);
      break;
  }
  await settle();
}

const error = (code: string, message: string, event?: string): Frame => ({
  type: 'error',
  detail: event ? { code, message, event } : { code, message },
});

/** What A, the mate and the taker must have received after a step, from the model and the call id alone. */
function expected(w: World, prev: ModelSnapshot | undefined, event: ModelEvent) {
  const none = { a: [] as Frame[], mate: [] as Frame[], taker: [] as Frame[] };
  if (!prev) return none;
  const hasCall = prev.context.hasCall === true;
  const callid = w.callid!;
  const which = 'detail' in event && 'call' in event.detail ? callOf(w, event.detail.call) : '';
  if (prev.value === 'unregistered') {
    if (event.type === 'register') return { ...none, a: [{ type: 'registered', detail: { sessionid: A, calls: [] } }] };
    if (event.type === 'signalling.error')
      return { ...none, a: [error('ERR_MALFORMED_FRAME', 'frame is not valid JSON')] };
    if (event.type === 'signalling.closed') return none;
    if (event.type === AFTER_REGISTER_TIMEOUT) {
      return { ...none, a: [error('ERR_TIMEOUT', 'register was not sent in time')] };
    }
    return { ...none, a: [error('ERR_NOT_PERMITTED', `${event.type}: send register first`, event.type)] };
  }
  if (prev.value === 'away') {
    if (event.type === AFTER_GRACE) {
      return { ...none, mate: [{ type: 'hangup', detail: { calls: [{ callid, sessionid: A }] } }] };
    }
    return { ...none, taker: [{ type: 'registered', detail: { sessionid: A, calls: [callid] } }] };
  }
  // registered
  switch (event.type) {
    case 'register':
      return {
        ...none,
        a: [error('ERR_NOT_PERMITTED', 'register: this connection is already registered', 'register')],
      };
    case 'userprofile':
    case 'signalling.closed':
      return none;
    case 'autocomplete':
      return {
        ...none,
        a: [
          {
            type: 'autocomplete',
            detail: { search: 'mate', results: [{ sessionid: MATE, userprofiles: MATE_PROFILE }] },
          },
        ],
      };
    case 'signalling.error':
      return { ...none, a: [error('ERR_MALFORMED_FRAME', 'frame is not valid JSON')] };
    case 'session.takenOver':
      return { ...none, taker: [{ type: 'registered', detail: { sessionid: A, calls: hasCall ? [callid] : [] } }] };
    case 'call': {
      const { to } = event.detail;
      if (to === 'self') return { ...none, a: [error('ERR_NOT_PERMITTED', 'call: you cannot call yourself', 'call')] };
      if (to === 'nobody') {
        return { ...none, a: [error('ERR_PEER_GONE', `call: no session ${NOBODY} is connected`, 'call')] };
      }
      if (hasCall) {
        return {
          ...none,
          a: [error('ERR_NOT_PERMITTED', `call: you already have call ${callid} with ${MATE}`, 'call')],
        };
      }
      const base = { callid, fromsessionid: A, tosessionid: MATE };
      return {
        ...none,
        a: [{ type: 'outboundcall', detail: { outbound: true, ...base, userprofiles: MATE_PROFILE } }],
        mate: [
          {
            type: 'inboundcall',
            detail: { inbound: true, ...base, userprofiles: w.profiled ? { github: { login: 'a' } } : {} },
          },
        ],
      };
    }
    case 'hangup': {
      if (event.detail.call === 'ours' && hasCall) {
        const hangup = { type: 'hangup', detail: { calls: [{ callid, sessionid: A }] } };
        return { ...none, a: [hangup], mate: [hangup] };
      }
      return { ...none, a: [error('ERR_NOT_PERMITTED', `hangup: you have no call ${which}`, 'hangup')] };
    }
    default: {
      // offer, answer, ice
      const relay = event as unknown as { type: Relay; detail: { call: Which } };
      if (relay.detail.call === 'ours' && hasCall) {
        const body = relay.type === 'ice' ? { candidate } : { sdp };
        return { ...none, mate: [{ type: relay.type, detail: { callid, peerid: A, ...body } }] };
      }
      return { ...none, a: [error('ERR_NOT_PERMITTED', `${relay.type}: you have no call ${which}`, relay.type)] };
    }
  }
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.session.getSnapshot() as ModelSnapshot;
  tracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);
  // A call A placed: keep its id (the oracle needs it).
  const outbound = w.a.inbox.find((f) => f.type === 'outboundcall');
  if (outbound) w.callid = outbound.detail!.callid as string;
  const want = expected(w, prev, event);
  const takeAll = (c: RawClient | undefined) => (c ? c.inbox.splice(0) : []);
  const toA = takeAll(w.a);
  const toMate = takeAll(w.mate);
  const toTaker = takeAll(w.taker);
  expect(toA).toEqual(want.a);
  expect(toMate).toEqual(want.mate);
  expect(toTaker).toEqual(want.taker);

  const hasCall = next.context.hasCall === true;
  const stats = w.server.stats();
  switch (next.value) {
    case 'unregistered':
      expect(stats).toEqual({ connections: 2, sessions: 1, away: 0, calls: 0 });
      break;
    case 'registered':
      expect(stats).toEqual({ connections: 2, sessions: 2, away: 0, calls: hasCall ? 1 : 0 });
      expect(w.registry.holder(A)).toBe('conn:2');
      break;
    case 'away':
      expect(stats).toEqual({ connections: 1, sessions: 2, away: 1, calls: 1 });
      expect(w.a.transport.isOpen).toBe(false);
      break;
    case 'closed':
      expect(stats).toEqual({ connections: 1, sessions: 1, away: 0, calls: 0 });
      expect(w.registry.holder(A)).toBeUndefined();
      expect(w.server.sessions.has('conn:2')).toBe(false);
      expect(w.a.transport.isOpen).toBe(false);
      if (event.type === AFTER_REGISTER_TIMEOUT) expect((await w.a.closed).code).toBe(1008);
      break;
    case 'replaced':
      expect((await w.a.closed).code).toBe(event.type === 'session.takenOver' && prev?.value === 'away' ? 1006 : 4001);
      expect(w.registry.holder(A)).toBe('conn:3');
      expect(stats).toEqual({ connections: 2, sessions: 2, away: 0, calls: prev?.context.hasCall ? 1 : 0 });
      expect(w.server.sessions.has('conn:2')).toBe(false);
      break;
  }
}

describe('workrooms server session, model-based (memory network, SimulatedClock)', () => {
  const ranAll = replayEach('the session', plan.paths, {
    start: () => world(),
    exec,
    check,
    stop: (w) => w.served.close(),
  });

  it('takes every state node and every transition of the session machine', () => {
    expectFullCoverage({
      label: 'session model',
      machine: workroomsSession,
      plan,
      tracker,
      notPlanned,
      ranAll: ranAll(),
    });
  });
});
