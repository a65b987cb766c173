/**
 * Model-based test of the CloudLink server session (`cloudlinkSession`).
 *
 * The model is the session machine itself with its effects replaced by pure
 * bookkeeping of what the world would do (the handshake stage with the one
 * lobby mate that answers at once). Every path @xstate/graph plans is
 * replayed on a fresh real server (`createCloudLinkServer`) over a memory
 * network on a SimulatedClock: the model's events become raw client frames,
 * disconnects and clock ticks, and after each step the real session's state,
 * the frames every client got and the server's registries are checked.
 */
import { describe, expect, it } from 'vitest';
import { enqueueActions, SimulatedClock, type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { memoryDirectory, Stage } from '../machines/cloudlink/directory.js';
import { Opcode, type OpcodeName } from '../machines/cloudlink/protocol.js';
import { createCloudLinkServer } from '../machines/cloudlink/server.js';
import { cloudlinkSession, type SessionContext } from '../machines/cloudlink/server.machine.js';
import {
  coverageTracker,
  expectFullCoverage,
  planPaths,
  replayEach,
  settle,
  wire,
  type Wire,
  type WireFrame,
} from './model-helpers.js';
import { servedInMemory } from './socket-helpers.js';

const KEEPALIVE_MS = 1000;
const INIT_TIMEOUT_MS = 500;
const LOBBY = 'L';
/** Server-assigned ids, in connection order: two lobby mates, one peer that already left, then the session under test. */
const MH = 'mate-host';
const MP = 'mate-peer';
const GONE = 'gone-peer';
const A = 'client-a';

type Who = 'mate' | 'stranger' | 'gone';
type RelayType = 'MAKE_OFFER' | 'ACCEPT_OFFER' | 'MAKE_ANSWER' | 'ACK_CHECK' | 'ACK_READY';
const RELAYS: RelayType[] = ['MAKE_OFFER', 'ACCEPT_OFFER', 'MAKE_ANSWER', 'ACK_CHECK', 'ACK_READY'];
const WHO: Who[] = ['mate', 'stranger', 'gone'];
const AFTER_INIT = 'xstate.after.initTimeout.session.open.protocol.awaitingInit';
const AFTER_KEEPALIVE = 'xstate.after.keepalive.session.open.keepalive.beating';

/** A model event: a session event whose `rx` is symbolic, plus how the test produces it. */
type ModelEvent =
  | { type: 'INIT'; detail: { payload: string } }
  | { type: 'CONFIG_HOST' | 'CONFIG_PEER'; detail: { payload: string } }
  | { type: RelayType; detail: { payload?: string; rx: Who } }
  | { type: 'KEEPALIVE' | 'SHUTDOWN'; detail: Record<string, never> }
  | { type: 'SHUTDOWN_WRN'; detail: { rx: Who } }
  | { type: 'signalling.error'; error: { message: string }; frame: string }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: 'session.probe' }
  | { type: typeof AFTER_INIT | typeof AFTER_KEEPALIVE };

type ModelContext = SessionContext & { stage?: Stage };
type ModelSnapshot = AnyMachineSnapshot & { context: ModelContext };

/**
 * What the world does, written down without a server: the lobby mate of the
 * other role answers every step of the handshake at once (a peer accepts an
 * offer, answers an answer and says ACK_READY; a host offers to a new peer,
 * answers its offer and sends ACK_CHECK), so the stage after each of our
 * relays is known.
 */
const model = cloudlinkSession.provide({
  actions: {
    register: () => {},
    violate: () => {},
    dropUnresponsive: () => {},
    closeNormally: () => {},
    leave: () => {},
    ping: enqueueActions(({ context, enqueue }) => enqueue.assign({ missed: context.missed + 1 })) as never,
    init: enqueueActions(({ event, enqueue }) =>
      enqueue.assign({ name: (event as unknown as { detail: { payload?: string } }).detail.payload }),
    ) as never,
    joinLobby: enqueueActions(({ event, enqueue }) => {
      const role = event.type === 'CONFIG_HOST' ? 'host' : 'peer';
      // A host mate offers to a new peer straight away.
      enqueue.assign({ role, lobby: LOBBY, stage: role === 'peer' ? Stage.Offered : Stage.None } as never);
    }) as never,
    relay: enqueueActions(({ context, event, enqueue }) => {
      const { rx } = (event as unknown as { detail: { rx: Who } }).detail;
      const stage = (context as ModelContext).stage ?? Stage.None;
      const violation = () => enqueue.raise({ type: 'session.violation', reason: 'model' } as never);
      const to = (next: Stage) => enqueue.assign({ stage: next } as never);
      if (rx === 'gone') return;
      if (rx === 'stranger') return violation();
      switch (event.type) {
        case 'MAKE_OFFER':
          return to(Stage.Accepted); // offered, and the peer accepts at once
        case 'ACCEPT_OFFER':
          return stage === Stage.Offered ? to(Stage.Accepted) : violation();
        case 'MAKE_ANSWER':
          if (stage < Stage.Accepted) return violation();
          return context.role === 'peer' ? to(Stage.Checked) : undefined; // the host answers with ACK_CHECK
        case 'ACK_CHECK':
          return stage < Stage.Accepted ? violation() : to(Stage.Ready); // the peer answers ACK_READY
        case 'ACK_READY':
          return stage === Stage.Checked ? to(Stage.Ready) : violation();
      }
    }) as never,
    reportVanished: enqueueActions(({ context, event, enqueue }) => {
      const { rx } = (event as unknown as { detail: { rx: Who } }).detail;
      if (context.role === undefined || rx === 'stranger') {
        enqueue.raise({ type: 'session.violation', reason: 'model' } as never);
      }
    }) as never,
  },
});

const modelInput = (ugi: string, version: number) => ({
  id: A,
  ugi,
  version,
  services: {
    timing: { keepaliveInterval: KEEPALIVE_MS, initTimeout: INIT_TIMEOUT_MS },
  } as SessionContext['services'],
});

const baseEvents: ModelEvent[] = [
  { type: 'INIT', detail: { payload: 'ada' } },
  { type: 'CONFIG_HOST', detail: { payload: LOBBY } },
  { type: 'CONFIG_PEER', detail: { payload: LOBBY } },
  ...RELAYS.flatMap((type) =>
    WHO.map((rx) => ({
      type,
      detail: type.startsWith('ACK_') ? { rx } : { payload: `a-sdp`, rx },
    })),
  ),
  { type: 'KEEPALIVE', detail: {} },
  { type: 'SHUTDOWN', detail: {} },
  ...WHO.map((rx) => ({ type: 'SHUTDOWN_WRN' as const, detail: { rx } })),
  { type: 'signalling.error', error: { message: 'not JSON' }, frame: 'hello?' },
  { type: 'signalling.error', error: { message: '`tx` is set by the server only' }, frame: '{"opcode":1,"tx":"x"}' },
  { type: 'signalling.closed', info: { code: 1006, reason: 'link severed', initiator: 'remote' } },
  { type: 'signalling.closed', info: { code: 1000, reason: 'bye', initiator: 'remote' } },
  { type: 'session.probe' },
];

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const value = snapshot.value as { open?: { protocol: string; keepalive: string } };
  if (!value.open) return [];
  const events = [...baseEvents];
  if (value.open.protocol === 'awaitingInit') events.push({ type: AFTER_INIT });
  if (value.open.keepalive === 'beating') events.push({ type: AFTER_KEEPALIVE });
  return events;
}

const stageName = (s: Stage | undefined) => (s === undefined ? '-' : Object.keys(Stage)[s]!.toLowerCase());

function serializeState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  if (snapshot.status === 'done') return `closed ${context.role ?? '-'}`;
  return JSON.stringify([snapshot.value, context.role ?? null, context.stage ?? null, context.missed]);
}

function formatEvent(event: ModelEvent): string {
  if ('detail' in event && 'rx' in event.detail) return `${event.type}(${event.detail.rx})`;
  if (event.type === 'signalling.error') return `bad frame ${event.frame}`;
  if (event.type === 'signalling.closed') return event.info.code === 1006 ? 'link severed' : 'client closes';
  if (event.type === AFTER_INIT) return `${INIT_TIMEOUT_MS} ms pass (init timeout)`;
  if (event.type === AFTER_KEEPALIVE) return `${KEEPALIVE_MS} ms pass (keepalive)`;
  return event.type;
}

function formatState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  if (snapshot.status === 'done') return 'closed';
  const { protocol, keepalive } = (snapshot.value as { open: { protocol: string; keepalive: string } }).open;
  const role = context.role ? `, stage ${stageName(context.stage)}` : '';
  return `${protocol}/${keepalive} (missed ${context.missed}${role})`;
}

function describePath(path: StatePath<AnyMachineSnapshot, ModelEvent>): string {
  const { ugi, version } = path.steps[0]!.state.context as ModelContext;
  const where =
    ugi === '' ? 'connecting to /ws/ without a game id' : version !== 0 ? `connecting with v=${version}` : '';
  const events = path.steps.slice(1).map((s) => formatEvent(s.event));
  return `reaches ${formatState(path.state)} ${where || 'after'} ${events.join(' → ') || ''}`.trim();
}

/** Transitions taken by every run without a model event, and why: none, every one is planned. */
const notPlanned = {};

const plan = planPaths<ModelEvent>({
  model,
  machine: cloudlinkSession,
  inputs: [modelInput('game', 0), modelInput('', 0), modelInput('game', 9)],
  events: modelEvents,
  serializeState,
  describe: describePath,
  notPlanned,
  // Every event in every control state (and role), whatever the stage and missed count.
  edgeClass: (from, event) =>
    `${JSON.stringify(from.value)} ${(from.context as ModelContext).role} ${JSON.stringify(event)}`,
});

// ---------------------------------------------------------------------------
// The system under test: a real server, two lobby mates that answer at once,
// a peer that has left, and the raw client whose session the model follows.
// ---------------------------------------------------------------------------

const f = (name: OpcodeName, fields: Omit<WireFrame, 'opcode'> = {}): WireFrame => ({
  opcode: Opcode[name],
  ...fields,
});

/** A lobby mate that answers KEEPALIVE and every handshake step of A at once. */
function mate(role: 'host' | 'peer') {
  return (frame: WireFrame, w: Wire) => {
    const fromA = frame.tx === A;
    if (frame.opcode === Opcode.KEEPALIVE) w.send(f('KEEPALIVE'));
    else if (role === 'host' && frame.opcode === Opcode.NEW_PEER && frame.payload === A)
      w.send(f('MAKE_OFFER', { payload: 'mh-offer', rx: A }));
    else if (role === 'host' && fromA && frame.opcode === Opcode.RETURN_OFFER)
      w.send(f('MAKE_ANSWER', { payload: 'mh-answer', rx: A }));
    else if (role === 'host' && fromA && frame.opcode === Opcode.ANTICIPATE_ANSWER) w.send(f('ACK_CHECK', { rx: A }));
    else if (role === 'peer' && fromA && frame.opcode === Opcode.ANTICIPATE_OFFER)
      w.send(f('ACCEPT_OFFER', { payload: 'mp-offer', rx: A }));
    else if (role === 'peer' && fromA && frame.opcode === Opcode.ANTICIPATE_ANSWER)
      w.send(f('MAKE_ANSWER', { payload: 'mp-answer', rx: A }));
    else if (role === 'peer' && fromA && frame.opcode === Opcode.ACK_CHECK) w.send(f('ACK_READY', { rx: A }));
  };
}

const tracker = coverageTracker((actor) => actor.id === A);

async function world(ugi: string, version: number) {
  const clock = new SimulatedClock();
  const directory = memoryDirectory();
  const ids = [MH, MP, GONE, A];
  const server = createCloudLinkServer({
    clock,
    keepaliveInterval: KEEPALIVE_MS,
    initTimeout: INIT_TIMEOUT_MS,
    directory,
    generateId: () => ids.shift()!,
    inspect: (event) => {
      tracker.inspect(event);
      // Kept here: a finished session leaves the server's sessions at once.
      if (event.type === '@xstate.actor' && (event.actorRef as AnyActorRef).id === A)
        session = event.actorRef as AnyActorRef;
    },
  });
  let session: AnyActorRef | undefined;
  const served = servedInMemory(server, 'cloudlink');
  const connect = async (path: string, query?: Record<string, string>, react?: Parameters<typeof wire>[1]) =>
    wire(await served.open(path, query), react);

  const mh = await connect('/ws/game', undefined, mate('host'));
  mh.send(f('INIT'));
  mh.send(f('CONFIG_HOST', { payload: LOBBY }));
  const mp = await connect('/ws/game', undefined, mate('peer'));
  mp.send(f('INIT'));
  mp.send(f('CONFIG_PEER', { payload: LOBBY }));
  const gone = await connect('/ws/game');
  gone.send(f('INIT'));
  gone.send(f('CONFIG_PEER', { payload: LOBBY }));
  await settle();
  gone.send(f('SHUTDOWN'));
  await settle();
  expect(server.stats()).toEqual({ connections: 2, lobbies: 1 });
  mh.take();
  mp.take();

  const a = await connect(`/ws/${ugi}`, version === 0 ? undefined : { v: String(version) });
  expect(session).toBeDefined();
  return { clock, network: served.network, directory, server, served, mh, mp, a, session: session! };
}

type World = Awaited<ReturnType<typeof world>>;

// ---------------------------------------------------------------------------
// The oracle: what each client must see after a step, from the model alone.
// ---------------------------------------------------------------------------

const mateOf = (role: 'host' | 'peer' | undefined) => (role === 'peer' ? MH : MP);
const strangerOf = (role: 'host' | 'peer' | undefined) => (role === 'peer' ? MP : MH);
const idOf = (who: Who, role: 'host' | 'peer' | undefined) =>
  who === 'mate' ? mateOf(role) : who === 'stranger' ? strangerOf(role) : GONE;

/** Why A is told VIOLATION when `event` closes the session from `prev`. */
function violationReason(prev: ModelSnapshot, event: ModelEvent): RegExp {
  const protocol = (prev.value as { open: { protocol: string } }).open.protocol;
  if (event.type === AFTER_INIT) return /^INIT was not sent in time$/;
  if (event.type === 'signalling.error') return /./;
  if (event.type === 'SHUTDOWN_WRN')
    return prev.context.role ? /^SHUTDOWN_WRN: .* is not in your lobby$/ : /^SHUTDOWN_WRN before joining a lobby$/;
  if (protocol === 'awaitingInit') return new RegExp(`^${event.type} before INIT$`);
  if (protocol === 'initialized') return new RegExp(`^${event.type}: expected CONFIG_HOST or CONFIG_PEER$`);
  const allowed =
    protocol === 'hosting' ? ['MAKE_OFFER', 'MAKE_ANSWER', 'ACK_CHECK'] : ['ACCEPT_OFFER', 'MAKE_ANSWER', 'ACK_READY'];
  if (!allowed.includes(event.type)) return new RegExp(`^${event.type} is not allowed from a ${prev.context.role}$`);
  if ((event as unknown as { detail: { rx: Who } }).detail.rx === 'stranger')
    return /is not a (peer|host) in your lobby$/;
  return /has not made you an offer|no offers have been exchanged|did not send you ACK_CHECK/;
}

interface Expected {
  /** Frames A receives. */
  a: Array<WireFrame | { opcode: number; payload: RegExp }>;
  /** Close code A's transport ends with, if this step closes it. */
  close?: number;
  /** Frames the mate of the other role receives (besides KEEPALIVE). */
  mate: WireFrame[];
  /** True when the mate must get an early KEEPALIVE (a probe). */
  probe?: boolean;
}

function expected(prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot): Expected {
  const VIOLATION = (payload: RegExp) => ({ opcode: Opcode.VIOLATION, payload });
  if (!prev) {
    // Connecting: a bad endpoint is refused at once.
    const { ugi, version } = next.context;
    if (next.status !== 'done') return { a: [], mate: [] };
    return {
      a: [VIOLATION(ugi === '' ? /^the path must be \/ws\/\{ugi\}/ : new RegExp(`^unsupported version ${version};`))],
      close: 1008,
      mate: [],
    };
  }
  const role = prev.context.role;
  const otherMate = role ? [f('SHUTDOWN_ACK', { tx: A })] : [];
  if (next.status === 'done') {
    switch (event.type) {
      case 'SHUTDOWN':
        return { a: [], close: 1000, mate: otherMate };
      case 'signalling.closed':
        return { a: [], close: event.info.code, mate: otherMate };
      case AFTER_KEEPALIVE:
        return { a: [], close: 4000, mate: otherMate };
      default:
        return { a: [VIOLATION(violationReason(prev, event))], close: 1008, mate: otherMate };
    }
  }
  const rx = 'detail' in event && 'rx' in event.detail ? event.detail.rx : undefined;
  const toMate = rx === 'mate';
  switch (event.type) {
    case 'INIT':
      return { a: [f('INIT_OK', { payload: A })], mate: [] };
    case 'CONFIG_HOST':
      return {
        a: [f('ACK_HOST', { payload: LOBBY }), f('NEW_PEER', { payload: MP })],
        mate: [f('NEW_HOST', { payload: A })],
      };
    case 'CONFIG_PEER':
      return {
        a: [
          f('ACK_PEER', { payload: LOBBY }),
          f('NEW_HOST', { payload: MH }),
          f('ANTICIPATE_OFFER', { payload: 'mh-offer', tx: MH }),
        ],
        mate: [f('NEW_PEER', { payload: A })],
      };
    case 'MAKE_OFFER':
      return toMate
        ? {
            a: [f('RETURN_OFFER', { payload: 'mp-offer', tx: MP })],
            mate: [f('ANTICIPATE_OFFER', { payload: 'a-sdp', tx: A })],
          }
        : { a: [], mate: [] };
    case 'ACCEPT_OFFER':
      return toMate
        ? {
            a: [f('ANTICIPATE_ANSWER', { payload: 'mh-answer', tx: MH })],
            mate: [f('RETURN_OFFER', { payload: 'a-sdp', tx: A })],
          }
        : { a: [], mate: [] };
    case 'MAKE_ANSWER':
      if (!toMate) return { a: [], mate: [] };
      return {
        a: role === 'host' ? [f('ANTICIPATE_ANSWER', { payload: 'mp-answer', tx: MP })] : [f('ACK_CHECK', { tx: MH })],
        mate: [f('ANTICIPATE_ANSWER', { payload: 'a-sdp', tx: A })],
      };
    case 'ACK_CHECK':
      return toMate ? { a: [f('ACK_READY', { tx: MP })], mate: [f('ACK_CHECK', { tx: A })] } : { a: [], mate: [] };
    case 'ACK_READY':
      return toMate ? { a: [], mate: [f('ACK_READY', { tx: A })] } : { a: [], mate: [] };
    case 'SHUTDOWN_WRN':
      // About a peer that already left: confirmed. About a mate: it is probed, not us.
      return rx === 'gone' ? { a: [f('SHUTDOWN_ACK', { tx: GONE })], mate: [] } : { a: [], mate: [], probe: true };
    case AFTER_KEEPALIVE:
      return { a: [f('KEEPALIVE')], mate: [] };
    case 'session.probe': {
      const beating = (prev.value as { open: { keepalive: string } }).open.keepalive === 'beating';
      return { a: beating && prev.context.missed === 0 ? [f('KEEPALIVE')] : [], mate: [] };
    }
    default:
      return { a: [], mate: [] };
  }
}

// ---------------------------------------------------------------------------
// Replaying a path.
// ---------------------------------------------------------------------------

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  const role = prev.context.role;
  switch (event.type) {
    case 'INIT':
    case 'CONFIG_HOST':
    case 'CONFIG_PEER':
      w.a.send(f(event.type, { payload: event.detail.payload }));
      break;
    case 'MAKE_OFFER':
    case 'ACCEPT_OFFER':
    case 'MAKE_ANSWER':
    case 'ACK_CHECK':
    case 'ACK_READY':
    case 'SHUTDOWN_WRN':
      w.a.send(
        f(event.type, {
          ...('payload' in event.detail ? { payload: event.detail.payload } : {}),
          rx: idOf(event.detail.rx, role),
        }),
      );
      break;
    case 'KEEPALIVE':
    case 'SHUTDOWN':
      w.a.send(f(event.type));
      break;
    case 'signalling.error':
      w.a.send(event.frame);
      break;
    case 'signalling.closed':
      if (event.info.code === 1006) w.network.sever(w.a.transport);
      else w.a.transport.close(1000, 'bye');
      break;
    case 'session.probe':
      // A lobby mate reporting A as vanished makes the server probe A; before
      // A joins a lobby nobody can, so the probe is sent to the session directly.
      if (role) (role === 'host' ? w.mp : w.mh).send(f('SHUTDOWN_WRN', { rx: A }));
      else w.session.send({ type: 'session.probe' });
      break;
    case AFTER_INIT:
      w.clock.increment(INIT_TIMEOUT_MS);
      break;
    case AFTER_KEEPALIVE:
      w.clock.increment(KEEPALIVE_MS);
      break;
  }
  await settle();
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.session.getSnapshot() as ModelSnapshot;
  tracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);

  const want = expected(prev, event, next);
  const role = next.context.role ?? prev?.context.role;
  const [mateWire, strangerWire] = role === 'peer' ? [w.mh, w.mp] : [w.mp, w.mh];
  const toA = w.a.take();
  expect(toA).toEqual(
    want.a.map((frame) =>
      'payload' in frame && frame.payload instanceof RegExp
        ? { opcode: frame.opcode, payload: expect.stringMatching(frame.payload) }
        : frame,
    ),
  );
  const toMate = mateWire.take();
  expect(toMate.filter((fr) => fr.opcode !== Opcode.KEEPALIVE)).toEqual(role ? want.mate : []);
  if (want.probe && (event as unknown as { detail: { rx: Who } }).detail.rx === 'mate') {
    expect(toMate).toContainEqual(f('KEEPALIVE'));
  }
  expect(strangerWire.take().filter((fr) => fr.opcode !== Opcode.KEEPALIVE)).toEqual([]);

  if (next.status === 'done') {
    expect(w.a.closed?.code).toBe(want.close);
    expect(w.a.transport.isOpen).toBe(false);
    expect(w.directory.isMember(A)).toBe(false);
    expect(w.server.stats()).toEqual({ connections: 2, lobbies: 1 });
    expect(w.server.sessions.has(A)).toBe(false);
    return;
  }
  expect(w.a.transport.isOpen).toBe(true);
  expect(real.context.missed).toBe(next.context.missed);
  expect(real.context.role).toBe(next.context.role);
  expect(real.context.lobby).toBe(next.context.lobby);
  if (next.context.role) {
    const [host, peer] = next.context.role === 'host' ? [A, MP] : [MH, A];
    expect(stageName(w.directory.stage(host, peer))).toBe(stageName(next.context.stage));
  }
  expect(w.server.stats().connections).toBe(3);
}

describe('cloudlink server session, model-based (memory network, SimulatedClock)', () => {
  const ranAll = replayEach('the session', plan.paths, {
    start: async (initial) => {
      const { ugi, version } = initial.context as ModelContext;
      const w = await world(ugi, version);
      await settle();
      return w;
    },
    exec,
    check,
    stop: (w) => w.served.close(),
  });

  it('takes every state node and every transition of the session machine', () => {
    expectFullCoverage({
      label: 'session model',
      machine: cloudlinkSession,
      plan,
      tracker,
      notPlanned,
      ranAll: ranAll(),
    });
  });
});
