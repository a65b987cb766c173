/**
 * Model-based test of the filedrop server session (`filedropSession`).
 *
 * The model is the session machine itself, whose one effect that matters
 * for what comes next (`transmit`) is replaced by bookkeeping of whom the
 * client has sent `request` to. Every path @xstate/graph plans is replayed on
 * a fresh real server (`createFileDropServer`) over a memory network: the
 * model's events become raw client frames (good ones, a bad peer id, bad
 * frames) and disconnects (a clean close, a severed link), and after each
 * step the real session's state, the frames every client got and the
 * server's registry are checked against what the protocol requires.
 *
 * The world around the client A under test: S (a connected sender A may
 * request from), R (a connected receiver that has sent A a request), GONE (a
 * peer that left), GHOST (registered but not reachable: it is leaving on
 * another process) and A itself.
 */
import { describe, expect, it } from 'vitest';
import { enqueueActions, type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { serverCodec } from '../machines/filedrop/codec.js';
import { direction, type ClientMessageType } from '../machines/filedrop/protocol.js';
import { memoryRegistry } from '../machines/filedrop/registry.js';
import { createFileDropServer } from '../machines/filedrop/server.js';
import { filedropSession, type SessionContext, type Transmission } from '../machines/filedrop/server.machine.js';
import { silentLogger } from '../src/logger.js';
import { memoryRouter } from '../src/router.js';
import { memoryPair } from '../adapters/memory/index.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle } from './model-helpers.js';
import { servedInMemory } from './socket-helpers.js';

const S = 'SSSSSSSS';
const R = 'RRRRRRRR';
const GONE = 'GGGGGGGG';
const GHOST = 'HHHHHHHH';
const A = 'AAAAAAAA';
const MAX_FRAME = 4096;

type Who = 'S' | 'R' | 'GONE' | 'GHOST' | 'SELF';
const WHO: Who[] = ['S', 'R', 'GONE', 'GHOST', 'SELF'];
const ID: Record<Who, string> = { S, R, GONE, GHOST, SELF: A };
const TYPES: ClientMessageType[] = ['request', 'response', 'offer', 'answer', 'candidate', 'retry', 'progress', 'done'];

/** Payloads in the forms other clients send: the server relays each as it came. */
const DATA: Record<ClientMessageType, unknown> = {
  request: undefined,
  retry: undefined,
  response: { fileName: 'a.bin', fileSize: 3 },
  offer: 'v=0 offer',
  answer: { type: 'answer', sdp: 'v=0 answer', extra: [1, { deep: true }] },
  candidate: null,
  progress: { received: 65536 },
  done: { sha256: 'ab'.repeat(32) },
};

/** A model event: a session event whose `peer` is symbolic, plus the raw frame that makes it. */
type ModelEvent =
  | { type: ClientMessageType; detail: { peer: string; data?: unknown }; who: Who }
  | { type: 'session.invalidPeer'; detail: { event: ClientMessageType }; frame: string }
  | { type: 'signalling.error'; error: { code: string; message: string }; frame: string }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } };

type ModelContext = SessionContext & { asked?: Who[] };
type ModelSnapshot = AnyMachineSnapshot & { context: ModelContext };

/** The world as the model's `planRelay` sees it: who is registered, and that R asked A. */
function modelServices(): SessionContext['services'] {
  const registry = memoryRegistry();
  for (const id of [S, R, GHOST, A]) registry.add(id);
  registry.link(R, A);
  const [end] = memoryPair();
  return { registry, router: memoryRouter(serverCodec()), transport: end, log: silentLogger };
}

const whoOf = (id: string): Who => (Object.entries(ID).find(([, v]) => v === id)?.[0] ?? 'GONE') as Who;

/**
 * The model: `transmit` only records a link A made (a request that reached
 * the registry); whom a message may go to is the model's `planRelay` over a
 * registry where R asked A — and A's own requests, which the model keeps
 * in `asked` and replays into that registry before each decision.
 */
const model = filedropSession.provide({
  actions: {
    register: () => {},
    leave: () => {},
    transmit: enqueueActions(({ context, enqueue }, params: Transmission) => {
      if (!params.link) return;
      const asked = new Set((context as ModelContext).asked ?? []);
      asked.add(whoOf(params.to));
      enqueue.assign({ asked: WHO.filter((w) => asked.has(w)) } as never);
    }) as never,
  },
});

/** `planRelay` reads the registry: the model's registry holds A's requests of the current model state. */
const sharedServices = modelServices();
const syncRegistry = (asked: Who[]) => {
  const { registry } = sharedServices;
  registry.remove(A);
  registry.add(A);
  registry.link(R, A);
  for (const who of asked) registry.link(A, ID[who]);
};
const tracked = Object.create(model) as typeof model;
(tracked as { transition: unknown }).transition = (snapshot: AnyMachineSnapshot, event: ModelEvent, scope: never) => {
  syncRegistry((snapshot as ModelSnapshot).context.asked ?? []);
  return model.transition(snapshot as never, event as never, scope);
};

const frameOf = (type: string, detail: unknown) => JSON.stringify({ type, detail });

const events: ModelEvent[] = [
  ...TYPES.flatMap((type) =>
    WHO.map((who): ModelEvent => {
      const data = DATA[type];
      return { type, detail: data === undefined ? { peer: ID[who] } : { peer: ID[who], data }, who } as ModelEvent;
    }),
  ),
  {
    type: 'session.invalidPeer',
    detail: { event: 'request' },
    frame: frameOf('request', {}),
  },
  {
    type: 'session.invalidPeer',
    detail: { event: 'offer' },
    frame: frameOf('offer', { peer: 42, data: DATA.offer }),
  },
  { type: 'signalling.error', error: { code: 'ERR_MALFORMED_FRAME', message: 'not JSON' }, frame: 'hello?' },
  {
    type: 'signalling.error',
    error: { code: 'ERR_NOT_PERMITTED', message: '`assign` is sent by the server only' },
    frame: frameOf('assign', { peer: A }),
  },
  {
    type: 'signalling.error',
    error: { code: 'ERR_UNKNOWN_MESSAGE', message: 'unknown message type `hello`' },
    frame: frameOf('hello', { peer: S }),
  },
  {
    type: 'signalling.error',
    error: { code: 'ERR_INVALID_FIELD', message: 'offer: `detail.data`' },
    frame: frameOf('offer', { peer: S }),
  },
  {
    type: 'signalling.error',
    error: { code: 'ERR_FRAME_TOO_LARGE', message: 'too large' },
    frame: frameOf('candidate', { peer: S, data: { candidate: 'x'.repeat(MAX_FRAME) } }),
  },
  { type: 'signalling.closed', info: { code: 1000, reason: 'bye', initiator: 'remote' } },
  { type: 'signalling.closed', info: { code: 1006, reason: 'link severed', initiator: 'remote' } },
];

const modelEvents = (snapshot: AnyMachineSnapshot): ModelEvent[] => (snapshot.status === 'active' ? events : []);

function serializeState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  return JSON.stringify([snapshot.value, context.asked ?? []]);
}

function formatEvent(event: ModelEvent): string {
  if ('who' in event) return `${event.type}(${event.who})`;
  if (event.type === 'session.invalidPeer') return `${event.detail.event} with a peer that is not a string`;
  if (event.type === 'signalling.error') return `bad frame (${event.error.code})`;
  return event.info.code === 1006 ? 'link severed' : 'client closes';
}

function describePath(path: StatePath<AnyMachineSnapshot, ModelEvent>): string {
  const end = path.state as ModelSnapshot;
  const asked = end.context.asked?.length ? `, having requested ${end.context.asked.join(', ')}` : '';
  const events = path.steps.slice(1).map((s) => formatEvent(s.event));
  return `reaches ${String(end.value)}${asked} after ${events.join(' → ') || 'connecting'}`;
}

const plan = planPaths<ModelEvent>({
  model: tracked,
  machine: filedropSession,
  inputs: [{ id: A, services: sharedServices }],
  events: modelEvents,
  serializeState,
  describe: describePath,
  // Every event, addressed to every peer, both before and after A requested from that peer.
  edgeClass: (from, event) => {
    const asked = (from.context as ModelContext).asked ?? [];
    return 'who' in event
      ? `${event.type} ${event.who} ${asked.includes(event.who)}`
      : `${from.value as string} ${JSON.stringify(event)}`;
  },
});

// ---------------------------------------------------------------------------
// The system under test: a real server and the raw clients around A.
// ---------------------------------------------------------------------------

interface Frame {
  type: string;
  detail: Record<string, unknown>;
}

function client(transport: import('../src/transport.js').Transport) {
  const frames: Frame[] = [];
  let read = 0;
  const c = {
    transport,
    frames,
    closed: undefined as { code: number; reason: string } | undefined,
    send: (frame: string) => transport.send(frame),
    take: () => frames.slice(read, (read = frames.length)),
  };
  transport.on('message', (f) => frames.push(JSON.parse(f as string) as Frame));
  transport.on('close', (info) => (c.closed = info));
  return c;
}

const tracker = coverageTracker((actor) => actor.id === A);

async function world() {
  const registry = memoryRegistry();
  const ids = [S, R, GONE, A];
  let session: AnyActorRef | undefined;
  const server = createFileDropServer({
    registry,
    maxFrameSize: MAX_FRAME,
    generateId: () => ids.shift()!,
    inspect: (event) => {
      tracker.inspect(event);
      if (event.type === '@xstate.actor' && (event.actorRef as AnyActorRef).id === A)
        session = event.actorRef as AnyActorRef;
    },
  });
  const served = servedInMemory(server, 'filedrop');
  const connect = async () => client(await served.open('/filedrop'));
  const s = await connect();
  const r = await connect();
  const gone = await connect();
  await settle();
  gone.transport.close(1000, 'bye');
  await settle();
  // Registered, but its connection is gone (say it lived on another process that dropped it).
  registry.add(GHOST);
  const a = await connect();
  await settle();
  r.send(frameOf('request', { peer: A }));
  await settle();
  expect(s.take()).toEqual([{ type: 'assign', detail: { peer: S } }]);
  expect(r.take()).toEqual([{ type: 'assign', detail: { peer: R } }]);
  expect(session).toBeDefined();
  expect(server.stats()).toEqual({ connections: 3, pairs: 1 });
  return { network: served.network, registry, server, served, s, r, a, session: session! };
}

type World = Awaited<ReturnType<typeof world>>;

// ---------------------------------------------------------------------------
// The oracle: what each client must get after a step, from the protocol.
// ---------------------------------------------------------------------------

interface Expected {
  a: Frame[];
  s: Frame[];
  r: Frame[];
}

const none = (): Expected => ({ a: [], s: [], r: [] });

/** What a relayed message does, by the protocol's rules (DESIGN.md and protocol.ts `direction`). */
function relay(asked: Who[], event: Extract<ModelEvent, { who: Who }>): Expected {
  const out = none();
  const { type, who } = event;
  const refuse = (message: string) =>
    out.a.push({ type: 'error', detail: { code: 'ERR_NOT_PERMITTED', message, event: type } });
  const missing = () => out.a.push({ type: 'peer not exists', detail: { peer: ID[who], event: type } });
  if (who === 'SELF') return (refuse(`${type}: you cannot send to yourself`), out);
  if (who === 'GONE') return (missing(), out);
  const way = direction[type];
  const weAsked = asked.includes(who) || type === 'request';
  const theyAsked = who === 'R';
  if (way === 'toSender' && !weAsked) refuse(`${type}: you have not sent ${ID[who]} a request`);
  else if (way === 'toReceiver' && !theyAsked) refuse(`${type}: ${ID[who]} has not sent you a request`);
  else if (way === 'either' && !weAsked && !theyAsked) refuse(`${type}: neither of you has sent the other a request`);
  else if (who === 'GHOST') missing();
  else {
    const forwarded = { type, detail: { ...event.detail, peer: A } };
    (who === 'S' ? out.s : out.r).push(forwarded);
  }
  return out;
}

function expected(prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot): Expected {
  if (!prev)
    return {
      ...none(),
      a: [
        { type: 'assign', detail: { peer: A } },
        { type: 'request', detail: { peer: R } },
      ],
    };
  const asked = prev.context.asked ?? [];
  if ('who' in event) return relay(asked, event);
  switch (event.type) {
    case 'session.invalidPeer':
      return { ...none(), a: [{ type: 'invalid peer id', detail: { event: event.detail.event } }] };
    case 'signalling.error':
      return {
        ...none(),
        a: [{ type: 'error', detail: { code: event.error.code, message: expect.any(String) as unknown as string } }],
      };
    case 'signalling.closed': {
      // Everyone A exchanged messages with hears that A left: R (it asked A), and whoever A asked.
      const gone = { type: 'peer not exists', detail: { peer: A } };
      expect(next.status).toBe('done');
      return { a: [], r: [gone], s: asked.includes('S') ? [gone] : [] };
    }
  }
}

// ---------------------------------------------------------------------------
// Replaying a path.
// ---------------------------------------------------------------------------

async function exec(w: World, _prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  if ('who' in event) w.a.send(frameOf(event.type, event.detail));
  else if (event.type === 'signalling.closed') {
    if (event.info.code === 1006) w.network.sever(w.a.transport);
    else w.a.transport.close(1000, 'bye');
  } else w.a.send(event.frame);
  await settle();
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.session.getSnapshot() as ModelSnapshot;
  tracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);

  const want = expected(prev, event, next);
  expect(w.a.take()).toEqual(want.a);
  expect(w.s.take()).toEqual(want.s);
  expect(w.r.take()).toEqual(want.r);

  const asked = next.context.asked ?? [];
  if (next.status === 'done') {
    // Nothing of A is left: not its session, its registry entry, its links nor its route.
    expect(w.a.transport.isOpen).toBe(false);
    expect(w.a.closed?.code).toBe(event.type === 'signalling.closed' ? event.info.code : undefined);
    expect(w.server.sessions.has(A)).toBe(false);
    expect(w.registry.has(A)).toBe(false);
    expect(w.registry.isLinked(R, A)).toBe(false);
    expect(w.server.stats()).toEqual({ connections: 2, pairs: 0 });
    expect(w.s.transport.isOpen).toBe(true);
    expect(w.r.transport.isOpen).toBe(true);
    return;
  }
  // The connection stays open through every refusal.
  expect(w.a.transport.isOpen).toBe(true);
  expect(w.server.sessions.get(A)).toBe(w.session);
  expect(w.registry.isLinked(R, A)).toBe(true);
  for (const who of ['S', 'R', 'GHOST'] as const) expect(w.registry.isLinked(A, ID[who])).toBe(asked.includes(who));
  expect(w.registry.has(GONE)).toBe(false);
  expect(w.server.stats()).toEqual({ connections: 3, pairs: 1 + asked.length });
}

describe('filedrop server session, model-based (memory network)', () => {
  const ranAll = replayEach('the session', plan.paths, { start: world, exec, check, stop: (w) => w.served.close() });

  it('takes every state node and every transition of the session machine', () => {
    expectFullCoverage({
      label: 'filedrop session model',
      machine: filedropSession,
      plan,
      tracker,
      ranAll: ranAll(),
    });
  });
});
