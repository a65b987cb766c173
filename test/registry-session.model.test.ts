/**
 * Model-based test of the registry server session (`registrySession`).
 *
 * The model is the session machine itself with its effects removed. Every
 * path @xstate/graph plans is replayed on a fresh real server
 * (`createRegistryServer`) over a memory network on a SimulatedClock, with
 * one registered mate: the model's events become raw frames from the client
 * under test, disconnects and clock ticks, and after each step the real
 * session's state, the frames both clients got and the registry are checked.
 */
import type { StatePath } from '@xstate/graph';
import { describe, expect, it } from 'vitest';
import { type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import type { FileEntry } from '../machines/registry/protocol.js';
import { registrySession } from '../machines/registry/server.machine.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle } from './model-helpers.js';
import { register, registryTestbed, type Frame, type MemoryTestbed, type RawClient } from './registry-helpers.js';

const CONNECT_TIMEOUT_MS = 1000;
const MATE = 'mate';
const A = 'client-a';
const AFTER = 'xstate.after.connectTimeout.registrySession.open.awaitingConnect';
const MATE_FILES: FileEntry[] = [{ path: 'm.txt', size: 1 }];
const A_FILES: FileEntry[] = [{ path: 'a/b.txt', size: 2, sha256: 'c'.repeat(64) }];
const NEW_FILES: FileEntry[] = [{ path: 'new.bin', size: 3 }];

type Who = 'mate' | 'self' | 'nobody';
type RelayType = 'Offer' | 'Answer' | 'Candidate';
const candidate = { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host' };

type ModelEvent =
  | { type: 'Connect'; detail: { files: FileEntry[] } }
  | { type: 'UpdateFiles'; detail: { files: FileEntry[] } }
  | { type: 'Disconnect' }
  | { type: RelayType; detail: { to: Who } }
  | { type: 'signalling.error'; error: { message: string }; frame: string }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: typeof AFTER };

const model = registrySession.provide({
  actions: {
    addRoute: () => {},
    reply: () => {},
    register: () => {},
    update: () => {},
    relay: () => {},
    expire: () => {},
    leave: () => {},
  },
});

const events: ModelEvent[] = [
  { type: 'Connect', detail: { files: A_FILES } },
  { type: 'UpdateFiles', detail: { files: NEW_FILES } },
  { type: 'Disconnect' },
  ...(['Offer', 'Answer', 'Candidate'] as const).flatMap((type) =>
    (['mate', 'self', 'nobody'] as const).map((to) => ({ type, detail: { to } })),
  ),
  { type: 'signalling.error', error: { message: 'not JSON' }, frame: 'hello?' },
  {
    type: 'signalling.error',
    error: { message: 'bad list' },
    frame: '{"type":"UpdateFiles","detail":{"files":[{"path":"../x","size":1}]}}',
  },
  { type: 'signalling.closed', info: { code: 1006, reason: 'link severed', initiator: 'remote' } },
  { type: 'signalling.closed', info: { code: 1000, reason: 'bye', initiator: 'remote' } },
];

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  return snapshot.matches({ open: 'awaitingConnect' }) ? [...events, { type: AFTER }] : events;
}

const serializeState = (snapshot: AnyMachineSnapshot) => JSON.stringify([snapshot.status, snapshot.value]);

function formatEvent(event: ModelEvent): string {
  if ('detail' in event && 'to' in event.detail) return `${event.type}(to ${event.detail.to})`;
  if (event.type === 'signalling.error') return `bad frame ${event.frame.slice(0, 30)}`;
  if (event.type === 'signalling.closed') return event.info.code === 1006 ? 'link severed' : 'client closes';
  if (event.type === AFTER) return `${CONNECT_TIMEOUT_MS} ms pass`;
  return event.type;
}

function describePath(path: StatePath<AnyMachineSnapshot, ModelEvent>): string {
  const steps = path.steps.slice(1).map((s) => formatEvent(s.event));
  return `reaches ${JSON.stringify(path.state.value)} after ${steps.join(' → ') || 'connecting'}`;
}

const plan = planPaths<ModelEvent>({
  model,
  machine: registrySession,
  inputs: [{ id: A, services: { connectTimeout: CONNECT_TIMEOUT_MS } }],
  events: modelEvents,
  serializeState,
  describe: describePath,
  edgeClass: (from, event) => `${serializeState(from)} ${JSON.stringify(event)}`,
});

const tracker = coverageTracker((actor) => actor.id === A);

interface World {
  bed: MemoryTestbed;
  mate: RawClient;
  a: RawClient;
  session: AnyActorRef;
  closed?: number;
  /** What A lists, by the model's history. */
  files?: FileEntry[];
}

async function world(): Promise<World> {
  const ids = [MATE, A];
  let session: AnyActorRef | undefined;
  const bed = registryTestbed({
    connectTimeout: CONNECT_TIMEOUT_MS,
    generateId: () => ids.shift()!,
    inspect: (event) => {
      tracker.inspect(event);
      if (event.type === '@xstate.actor' && (event.actorRef as AnyActorRef).id === A)
        session = event.actorRef as AnyActorRef;
    },
  });
  const mate = await bed.open();
  await register(mate, MATE_FILES);
  const a = await bed.open();
  await settle();
  expect(session).toBeDefined();
  const w: World = { bed, mate, a, session: session! };
  void a.closed.then((info) => (w.closed = info.code));
  return w;
}

const idOf = (who: Who) => (who === 'mate' ? MATE : who === 'self' ? A : 'nobody');

function relayFrame(type: RelayType, to: Who) {
  const peer = idOf(to);
  if (type === 'Candidate') return { type, detail: { peer, connection: 'c1', from: 'requester', candidate } };
  return { type, detail: { peer, connection: 'c1', sdp: `${type}-sdp` } };
}

async function exec(w: World, _prev: AnyMachineSnapshot, event: ModelEvent): Promise<void> {
  switch (event.type) {
    case 'Connect':
    case 'UpdateFiles':
      w.a.send({ type: event.type, detail: event.detail });
      break;
    case 'Disconnect':
      w.a.send({ type: 'Disconnect' });
      break;
    case 'Offer':
    case 'Answer':
    case 'Candidate':
      w.a.send(relayFrame(event.type, event.detail.to));
      break;
    case 'signalling.error':
      w.a.send(event.frame);
      break;
    case 'signalling.closed':
      if (event.info.code === 1006) w.bed.network.sever(w.a.transport);
      else w.a.transport.close(1000, 'bye');
      break;
    case AFTER:
      w.bed.clock.increment(CONNECT_TIMEOUT_MS);
      break;
  }
  await settle();
}

const error = (code: string, message: string | RegExp, event?: string) => ({
  type: 'Error',
  detail: {
    code,
    message: typeof message === 'string' ? message : expect.stringMatching(message),
    ...(event && { event }),
  },
});

/** What A and the mate receive after `event` took the session from `prev` to `next`. */
function expected(prev: AnyMachineSnapshot, event: ModelEvent, next: AnyMachineSnapshot) {
  const registered = prev.matches({ open: 'registered' });
  const out: { a: unknown[]; mate: Frame[]; close?: number } = { a: [], mate: [] };
  if (next.status === 'done') {
    if (registered) out.mate.push({ type: 'UnregisterPeer', detail: { peer: A } });
    if (event.type === AFTER) {
      out.a.push(error('ERR_TIMEOUT', 'Connect was not sent in time'));
      out.close = 1008;
    } else if (event.type === 'Disconnect') out.close = 1000;
    else if (event.type === 'signalling.closed') out.close = event.info.code;
    return out;
  }
  switch (event.type) {
    case 'Connect':
      if (registered) out.a.push(error('ERR_NOT_PERMITTED', 'Connect: already connected; send UpdateFiles', 'Connect'));
      else {
        out.a.push(
          { type: 'Welcome', detail: { id: A, peers: 1 } },
          { type: 'RegisterPeer', detail: { peer: MATE, files: MATE_FILES } },
        );
        out.mate.push({ type: 'RegisterPeer', detail: { peer: A, files: A_FILES } });
      }
      break;
    case 'UpdateFiles':
      if (registered) out.mate.push({ type: 'UpdatePeer', detail: { peer: A, files: NEW_FILES } });
      else out.a.push(error('ERR_NOT_PERMITTED', 'UpdateFiles before Connect', 'UpdateFiles'));
      break;
    case 'Offer':
    case 'Answer':
    case 'Candidate': {
      const { to } = event.detail;
      if (!registered) out.a.push(error('ERR_NOT_PERMITTED', `${event.type} before Connect`, event.type));
      else if (to === 'self')
        out.a.push(error('ERR_NOT_PERMITTED', `${event.type}: you cannot send to yourself`, event.type));
      else if (to === 'nobody')
        out.a.push(error('ERR_PEER_GONE', `${event.type}: no peer nobody is registered`, event.type));
      else {
        const frame = relayFrame(event.type, to) as { type: string; detail: Record<string, unknown> };
        out.mate.push({ type: frame.type, detail: { ...frame.detail, peer: A } });
      }
      break;
    }
    case 'signalling.error':
      // A frame whose type the codec knew is named in the Error (`event`).
      if (event.frame.startsWith('{')) out.a.push(error('ERR_INVALID_FIELD', /^UpdateFiles: /, 'UpdateFiles'));
      else out.a.push(error('ERR_MALFORMED_FRAME', 'frame is not valid JSON'));
      break;
  }
  return out;
}

async function check(w: World, prev: AnyMachineSnapshot | undefined, event: ModelEvent, next: AnyMachineSnapshot) {
  const real = w.session.getSnapshot() as AnyMachineSnapshot;
  tracker.see(real);
  expect(real.status).toBe(next.status);
  if (next.status === 'active') expect(real.value).toEqual(next.value);
  if (!prev) {
    expect(w.a.inbox).toEqual([]);
    expect(w.mate.inbox).toEqual([]);
    return;
  }
  const want = expected(prev, event, next);
  expect(w.a.inbox.splice(0)).toEqual(want.a);
  expect(w.mate.inbox.splice(0)).toEqual(want.mate);
  const registered = next.status === 'active' && next.matches({ open: 'registered' });
  expect(w.bed.registry.has(A)).toBe(registered);
  if (registered) {
    // The list is the Connect's until an UpdateFiles while registered replaced it.
    if (event.type === 'Connect' && prev.matches({ open: 'awaitingConnect' })) w.files = A_FILES;
    if (event.type === 'UpdateFiles') w.files = NEW_FILES;
    expect(w.bed.registry.files(A)).toEqual(w.files);
  }
  expect(w.bed.registry.files(MATE)).toEqual(MATE_FILES);
  if (next.status === 'done') {
    await settle();
    expect(w.closed).toBe(want.close);
    expect(w.a.transport.isOpen).toBe(false);
    expect(w.bed.server.stats()).toEqual({ connections: 1, peers: 1, files: 1 });
    expect(w.bed.server.sessions.has(A)).toBe(false);
    return;
  }
  expect(w.a.transport.isOpen).toBe(true);
  expect(w.bed.server.stats().connections).toBe(2);
}

describe('registry server session, model-based (memory network, SimulatedClock)', () => {
  const ranAll = replayEach('the session', plan.paths, { start: world, exec, check, stop: (w) => w.bed.close() });

  it('takes every state node and every transition of the session machine', () => {
    expectFullCoverage({ label: 'registry session model', machine: registrySession, plan, tracker, ranAll: ranAll() });
  });
});
