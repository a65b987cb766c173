/**
 * Model-based test of the swarm peer (`swarmPeer`): one request and the
 * match that plays it (as alice or bob), the link that follows, a fetch
 * over it, and every way of ending (leave, server gone, server error, a
 * match failing, a link's connection ending or its remote misbehaving).
 *
 * The model is the machine itself with its children stubbed. Every planned
 * path is replayed on a real peer whose server is a raw end the test plays,
 * whose match is scripted (the match itself, its stages and its WebRTC, has
 * its own model: swarm-match.model.test.ts), and whose remote peer is a raw
 * data-channel end (it answers the fetch when the model says the fetch
 * ends); after each step the state, the matches and links, every message the
 * match was routed, and every frame the server and the remote got are
 * checked.
 */
import { describe, expect, it } from 'vitest';
import {
  assign,
  createActor,
  fromCallback,
  sendParent,
  setup,
  SimulatedClock,
  type AnyActorRef,
  type AnyMachineSnapshot,
  type EventObject,
} from 'xstate';
import type { StatePath } from '@xstate/graph';
import { memoryPair } from '../adapters/memory/index.js';
import { CHUNK_SIZE, encodeChunk } from '../machines/transfer/chunks.js';
import { sha256Hex } from '../machines/transfer/files.js';
import type { AliceOutput } from '../machines/swarm/alice.machine.js';
import { clientCodec } from '../machines/swarm/codec.js';
import { SwarmError } from '../machines/swarm/errors.js';
import type { MatchInput, MatchMessage, MatchOutput, MatchReport } from '../machines/swarm/match.machine.js';
import { swarmPeer, type PeerContext, type PeerEmitted } from '../machines/swarm/peer.machine.js';
import { memoryStore, type MemoryStore } from '../machines/swarm/store.js';
import { ErrorCode, ProtocolError } from '../src/errors.js';
import { fromTransport } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle, stubTransport } from './model-helpers.js';
import { deferred } from './socket-helpers.js';
import { bytes, rawChannel, rawClient, type Frame, type RawChannel } from './swarm-helpers.js';

const DATA = bytes(CHUNK_SIZE + 10, 31);
const HASH = sha256Hex(DATA);
const C = '1';
const MATCH = `match:${C}`;

type ModelEvent =
  | { type: 'signalling.open' }
  | { type: 'connect'; count: 1 }
  | { type: 'requesting_offer' | 'wait_for_offer'; detail: { context_id: string } }
  | { type: 'forwarding_offer'; detail: { offer: string; context_id: string } }
  | { type: 'forwarding_answer'; detail: { answer: string; context_id: string } }
  | { type: 'error'; detail: { code: string; message: string; context_id?: string } }
  | MatchReport
  | { type: `xstate.done.actor.${typeof MATCH}`; actorId: typeof MATCH; output: MatchOutput }
  | { type: 'link.message'; link: string; message: { type: 'i_am'; detail: { client_id: string } } }
  | { type: 'link.closed'; link: string }
  | { type: 'fetch'; hash: string; urgent: true }
  | { type: 'xstate.done.actor.alice'; output: AliceOutput }
  | { type: 'xstate.error.actor.alice'; error: Error }
  | { type: 'signalling.error'; error: ProtocolError }
  | { type: 'link.chunk'; link: string; seq: number; data: Uint8Array }
  | { type: 'link.error'; link: string; error: ProtocolError; binary: boolean }
  | { type: 'bob.reserve'; link: string; hash: string }
  | { type: 'requestPeerList'; link: string }
  | { type: 'leave' }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } };

type ModelSnapshot = Omit<AnyMachineSnapshot, 'context'> & { context: PeerContext };

const stub = fromCallback(() => {});
const model = swarmPeer.provide({
  actors: { signalling: stub, match: stub, channel: stub, bob: stub, alice: stub } as never,
});

const server = (type: string, detail: Record<string, unknown>) => ({ type, detail }) as ModelEvent;
const matchFailed = new SwarmError('peer-gone', 'the server: left');
const hasMatch = (snapshot: AnyMachineSnapshot) => snapshot.children[MATCH] !== undefined;

/**
 * The peer's match, scripted: it records what the peer routes to it, and
 * the test makes it report (`script.report`) or fail (`script.fail`).
 */
const scriptedMatch = setup({
  types: {
    context: {} as { context_id: string; received: EventObject[]; error?: SwarmError },
    input: {} as MatchInput,
    events: {} as
      MatchMessage | { type: 'script.report'; report: MatchReport } | { type: 'script.fail'; error: SwarmError },
    output: {} as MatchOutput,
  },
}).createMachine({
  context: ({ input }) => ({ context_id: input.context_id, received: [] }),
  initial: 'running',
  states: {
    running: {
      on: {
        'script.report': { actions: sendParent(({ event }) => event.report) },
        'script.fail': { target: 'failed', actions: assign({ error: ({ event }) => event.error }) },
        '*': { actions: assign({ received: ({ context, event }) => [...context.received, event] }) },
      },
    },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({ context_id: context.context_id, error: context.error! }),
});

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { context } = snapshot as ModelSnapshot;
  const link = context.links[C];
  const events: ModelEvent[] = [
    { type: 'leave' },
    { type: 'signalling.closed', info: { code: 1006, reason: 'gone', initiator: 'remote' } },
  ];
  if (snapshot.matches({ active: 'connecting' })) events.push({ type: 'signalling.open' });
  else
    events.push({
      type: 'signalling.error',
      error: new ProtocolError(ErrorCode.MalformedFrame, 'frame is not valid JSON'),
    });
  if (context.requests === 0 && context.connections === 0) events.push({ type: 'connect', count: 1 });
  if (!context.queue.length && !context.current) events.push({ type: 'fetch', hash: HASH, urgent: true });
  if (!snapshot.matches({ active: 'online' })) return events;
  // The server's messages for request C go to its match, if there is one (what it makes of them is its own business).
  events.push(
    server('requesting_offer', { context_id: C }),
    server('wait_for_offer', { context_id: C }),
    server('forwarding_offer', { offer: 'v=0 remote-offer', context_id: C }),
    server('forwarding_answer', { answer: 'v=0 remote-answer', context_id: C }),
    server('error', { code: 'ERR_PEER_GONE', message: 'left', context_id: C }),
    server('error', { code: 'ERR_NOT_PERMITTED', message: 'no' }),
  );
  // What the match reports: a message for the server, its role, its data channel, its failure.
  if (hasMatch(snapshot) && !link) {
    events.push(
      { type: 'match.signal', message: { type: 'sending_offer', detail: { offer: 'v=0 my-offer', context_id: C } } },
      { type: 'match.matched', context_id: C, role: 'alice' },
      { type: 'match.matched', context_id: C, role: 'bob' },
      { type: 'match.linked', context_id: C, role: 'alice', transport: stubTransport },
      { type: 'match.linked', context_id: C, role: 'bob', transport: stubTransport },
      { type: `xstate.done.actor.${MATCH}`, actorId: MATCH, output: { context_id: C, error: matchFailed } },
    );
  }
  // While a fetch runs over the only link, losing it ends the fetch too: the real alice reports at once,
  // the stubbed one of the model cannot. Those losses are taken from `idle` (and end to end elsewhere).
  const fetching = snapshot.matches({ active: { online: 'running' } });
  events.push({ type: 'requestPeerList', link: C });
  if (link?.peer !== undefined) {
    events.push({
      type: 'link.error',
      link: C,
      error: new ProtocolError(ErrorCode.MalformedFrame, 'bad'),
      binary: false,
    });
    if (!fetching) {
      events.push(
        { type: 'link.error', link: C, error: new ProtocolError(ErrorCode.MalformedFrame, 'bad'), binary: true },
        { type: 'link.chunk', link: C, seq: 0, data: new Uint8Array([1]) },
      );
    } else if (!(context.reservers[HASH] ?? []).includes(C)) {
      events.push({ type: 'bob.reserve', link: C, hash: HASH });
    }
  }
  if (link && !fetching) {
    events.push(
      { type: 'match.unlinked', context_id: C, reason: 'closed' },
      { type: 'match.unlinked', context_id: C, reason: 'failed' },
      { type: 'link.closed', link: C },
    );
    if (link.peer === undefined) {
      events.push({ type: 'link.message', link: C, message: { type: 'i_am', detail: { client_id: 'remote' } } });
    }
  }
  if (snapshot.matches({ active: { online: 'running' } })) {
    events.push(
      { type: 'xstate.done.actor.alice', output: { hash: HASH, size: DATA.byteLength, from: C, misses: [] } },
      { type: 'xstate.done.actor.alice', output: { hash: HASH, misses: [], error: undefined, size: undefined } },
      { type: 'xstate.error.actor.alice', error: new Error('the store exploded') },
    );
  }
  return events;
}

/** The failed fetch's output carries a marker the exec reads. */
const isFailure = (output: AliceOutput) => output.size === undefined;

function serializeState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  return JSON.stringify([
    snapshot.status,
    snapshot.value,
    context.requests,
    context.connections,
    Object.keys(snapshot.children).filter((id) => id.startsWith('match:')),
    Object.entries(context.links).map(([l, v]) => [l, v.role, v.peer ?? null]),
    context.queue.length,
    context.current?.hash ?? null,
    context.store.stat(HASH) ?? null,
    context.reservers,
  ]);
}

function formatEvent(event: ModelEvent): string {
  switch (event.type) {
    case 'error':
      return event.detail.context_id ? 'server: peer gone' : 'server: error';
    case 'match.signal':
      return `match: ${event.message.type}`;
    case 'match.matched':
    case 'match.linked':
      return `${event.type} (${event.role})`;
    case 'match.unlinked':
      return `match.unlinked (${event.reason})`;
    case `xstate.done.actor.${MATCH}`:
      return 'match fails';
    case 'link.message':
      return 'remote i_am';
    case 'xstate.done.actor.alice':
      return isFailure(event.output) ? 'fetch fails' : 'fetch succeeds';
    case 'xstate.error.actor.alice':
      return 'fetch crashes';
    case 'link.error':
      return event.binary ? 'remote: bad binary frame' : 'remote: bad text frame';
    case 'link.chunk':
      return 'remote: unsolicited bytes';
    case 'bob.reserve':
      return 'remote: reserve_resource';
    case 'signalling.closed':
      return 'server gone';
    default:
      return event.type;
  }
}

/** Where request `C` stands: its link (and whether the remote introduced itself), its match, or nothing. */
function stageOf(snapshot: ModelSnapshot): string {
  const { links } = snapshot.context;
  if (links[C]) return links[C].peer === undefined ? 'link' : 'ready link';
  return hasMatch(snapshot as unknown as AnyMachineSnapshot) ? 'match' : 'none';
}

/** Transitions no model event plans for, and why. */
const notPlanned = {
  'swarmPeer.active: on xstate.error.actor.signalling':
    'fromTransport reports every failure as signalling.closed; only a missing signalling actor throws (its own test below)',
};

const plan = planPaths<ModelEvent>({
  model,
  machine: swarmPeer,
  notPlanned,
  inputs: [{ clientId: 'me', store: memoryStore() }],
  events: modelEvents,
  serializeState,
  describe: (path: StatePath<AnyMachineSnapshot, ModelEvent>) =>
    `${path.steps
      .slice(1)
      .map((s) => formatEvent(s.event))
      .join(' → ')} ⇒ ${JSON.stringify(path.state.value)}`,
  // The match and the link live in children and context, not in state nodes: every event is planned with each.
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${stageOf(from as ModelSnapshot)} ${formatEvent(event)}`,
});

// ---------------------------------------------------------------------------

const tracker = coverageTracker((actor) => actor.id === 'peer-under-test');

function world() {
  const clock = new SimulatedClock();
  const [client, serverEnd] = memoryPair();
  const connection = deferred<Transport>();
  const inner = memoryStore();
  let explode = false;
  const store: MemoryStore = {
    ...inner,
    create: (hash, size) => {
      if (explode) throw new Error('the store exploded');
      return inner.create(hash, size);
    },
  };
  const actor = createActor(
    swarmPeer.provide({
      actors: { signalling: fromTransport(() => connection.promise, clientCodec()), match: scriptedMatch as never },
    }),
    {
      id: 'peer-under-test',
      clock,
      inspect: tracker.inspect,
      input: { clientId: 'me', store, answerTimeout: 1000, stallTimeout: 1000 },
    },
  ).start();
  const emitted: PeerEmitted[] = [];
  actor.on('*', (e) => emitted.push(e as PeerEmitted));
  const w = {
    clock,
    actor,
    store,
    emitted,
    /** Every match the peer spawned, stopped or not, and how many of the events it got were checked. */
    matches: [] as Array<{ ref: AnyActorRef; read: number }>,
    /** The running scripted match of request C. */
    match(): AnyActorRef | undefined {
      const ref = actor.getSnapshot().children[MATCH] as AnyActorRef | undefined;
      if (ref && !w.matches.some((m) => m.ref === ref)) w.matches.push({ ref, read: 0 });
      return ref;
    },
    explode: () => (explode = true),
    client,
    serverEnd,
    server: rawClient(serverEnd),
    remote: undefined as RawChannel | undefined,
    remoteRead: 0,
    opened: false,
    open: () => {
      w.opened = true;
      connection.resolve(client);
    },
    refuse: () => connection.reject(new Error('connection refused')),
    remoteFrames() {
      if (!w.remote) return [];
      const frames = w.remote.frames.slice(w.remoteRead);
      w.remoteRead = w.remote.frames.length;
      return frames;
    },
  };
  return w;
}
type World = ReturnType<typeof world>;

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent) {
  w.match(); // note it before it goes
  switch (event.type) {
    case 'signalling.open':
      w.open();
      break;
    case 'connect':
    case 'fetch':
    case 'leave':
      w.actor.send(event);
      break;
    case 'requesting_offer':
    case 'wait_for_offer':
    case 'forwarding_offer':
    case 'forwarding_answer':
    case 'error':
      w.server.send({ type: event.type, detail: event.detail });
      break;
    case 'match.linked': {
      const [local, remote] = memoryPair();
      w.remote = rawChannel(remote);
      w.remoteRead = 0;
      w.match()!.send({ type: 'script.report', report: { ...event, transport: local } });
      break;
    }
    case 'match.signal':
    case 'match.matched':
    case 'match.unlinked':
      w.match()!.send({ type: 'script.report', report: event });
      break;
    case `xstate.done.actor.${MATCH}`:
      w.match()!.send({ type: 'script.fail', error: event.output.error });
      break;
    case 'link.closed':
      w.remote!.transport.close();
      break;
    case 'link.message':
      w.remote!.send({ type: 'i_am', detail: { client_id: 'remote' } });
      break;
    case 'signalling.closed':
      // Before the connection opened, the server is gone as the client connects.
      if (w.opened) w.serverEnd.close();
      else w.refuse();
      break;
    case 'signalling.error':
      w.server.send('hello?');
      break;
    case 'requestPeerList':
      w.actor.send(event);
      break;
    case 'link.error':
      w.remote!.send(event.binary ? new Uint8Array(2) : 'garbage');
      break;
    case 'link.chunk':
      w.remote!.send(encodeChunk(0, new Uint8Array([1])));
      break;
    case 'bob.reserve':
      w.remote!.send({ type: 'reserve_resource', detail: { hash: HASH } });
      break;
    case 'xstate.error.actor.alice':
      w.explode();
      w.remote!.send({ type: 'resource_found', detail: { hash: HASH, size: DATA.byteLength } });
      await settle();
      w.remote!.send({ type: 'transferring_resource', detail: { hash: HASH } });
      break;
    case 'xstate.done.actor.alice': {
      // The remote plays bob for the fetch alice asked it for when she started.
      const remote = w.remote!;
      if (isFailure(event.output)) {
        remote.send({ type: 'resource_not_found', detail: { hash: HASH } });
        break;
      }
      remote.send({ type: 'resource_found', detail: { hash: HASH, size: DATA.byteLength } });
      await settle();
      remote.send({ type: 'transferring_resource', detail: { hash: HASH } });
      remote.send(encodeChunk(0, DATA.subarray(0, CHUNK_SIZE)));
      remote.send(encodeChunk(1, DATA.subarray(CHUNK_SIZE)));
      break;
    }
  }
  void prev;
  await settle(8);
}

const frame = (type: string, detail: Record<string, unknown>) => ({ type, detail });

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.actor.getSnapshot() as unknown as ModelSnapshot;
  tracker.see(real as unknown as AnyMachineSnapshot);
  expect(real.status).toBe(next.status);
  expect(real.value).toEqual(next.value);
  const matchIds = (snapshot: AnyMachineSnapshot) =>
    Object.keys(snapshot.children).filter((id) => id.startsWith('match:'));
  expect(matchIds(real as unknown as AnyMachineSnapshot)).toEqual(matchIds(next as unknown as AnyMachineSnapshot));
  expect(Object.entries(real.context.links).map(([l, v]) => [l, v.role, v.peer])).toEqual(
    Object.entries(next.context.links).map(([l, v]) => [l, v.role, v.peer]),
  );
  expect(real.context.queue).toEqual(next.context.queue);
  expect(real.context.current).toEqual(next.context.current);
  expect(real.context.requests).toBe(next.context.requests);

  // What the match of request C was routed: the server's messages for it, while it runs.
  const routed =
    ['requesting_offer', 'wait_for_offer', 'forwarding_offer', 'forwarding_answer'].includes(event.type) ||
    (event.type === 'error' && event.detail.context_id === C);
  for (const m of w.matches) {
    const { received } = (m.ref.getSnapshot() as { context: { received: EventObject[] } }).context;
    const got = received.slice(m.read);
    m.read = received.length;
    const live = prev !== undefined && prev.children[MATCH] !== undefined && m.ref === w.matches.at(-1)!.ref;
    expect(got).toEqual(routed && live ? [{ type: event.type, detail: (event as { detail: unknown }).detail }] : []);
  }
  // Spawned with its context_id; stopped once it failed, once its link went, and when the peer stops.
  const match = w.match();
  if (match) expect((match.getSnapshot() as { context: { context_id: string } }).context.context_id).toBe(C);
  if (next.children[MATCH] === undefined) {
    expect(w.matches.every((m) => m.ref.getSnapshot().status !== 'active')).toBe(true);
  }

  // What the server got: our i_am, and what the match asked to send.
  const toServer = w.server.inbox.splice(0);
  const want: unknown[] = [];
  if (prev && event.type === 'signalling.open') want.push(frame('i_am', { client_id: 'me' }));
  else if (prev && event.type === 'match.signal') want.push(event.message);
  expect(toServer).toEqual(want);

  // What the application heard of the match.
  const emitted = w.emitted.splice(0).filter((e) => e.type === 'matched' || e.type === 'match-failed');
  expect(emitted).toEqual(
    event.type === 'match.matched'
      ? [{ type: 'matched', detail: { context_id: C, role: event.role } }]
      : event.type === `xstate.done.actor.${MATCH}`
        ? [{ type: 'match-failed', detail: { context_id: C, error: matchFailed } }]
        : [],
  );

  // What the remote got on the data channel.
  // bob's answers (to a reserve) are his business: see the bob model.
  const toRemote = (w.remoteFrames() as Array<Frame | Uint8Array>).filter(
    (f) => f instanceof Uint8Array || !['resource_found', 'resource_not_found'].includes(f.type),
  );
  const wantRemote: unknown[] = [];
  const link = next.context.links[C];
  if (prev && event.type === 'match.linked' && link?.role === 'alice') {
    wantRemote.push(frame('i_am', { client_id: 'me' }));
  }
  if (prev && event.type === 'link.message' && link?.role === 'bob') {
    wantRemote.push(frame('i_am', { client_id: 'me' }));
  }
  const started = prev && !prev.matches({ active: { online: 'running' } });
  if (started && next.matches({ active: { online: 'running' } })) {
    wantRemote.push(frame('querying_resource', { hash: HASH }));
  }
  if (prev && event.type === 'xstate.done.actor.alice' && !isFailure(event.output)) {
    wantRemote.push(frame('requesting_resource', { hash: HASH }));
  }
  if (prev && event.type === 'xstate.error.actor.alice') wantRemote.push(frame('requesting_resource', { hash: HASH }));
  if (prev && event.type === 'requestPeerList' && prev.context.links[C]?.peer !== undefined) {
    wantRemote.push(frame('requesting_peer_list', {}));
  }
  if (prev && event.type === 'link.error' && !event.binary) {
    wantRemote.push(frame('error', { code: 'ERR_MALFORMED_FRAME', message: expect.any(String) }));
  }
  if (prev && event.type === 'link.chunk') {
    wantRemote.push(frame('error', { code: 'ERR_NOT_PERMITTED', message: 'bytes nobody asked for' }));
  }
  expect(toRemote).toEqual(wantRemote);

  // Only a fetch that succeeded stored the bytes.
  if (
    next.context.store.stat(HASH) !== undefined ||
    (event.type === 'xstate.done.actor.alice' && !isFailure(event.output))
  ) {
    expect(Buffer.compare(w.store.get(HASH)!, DATA)).toBe(0);
  } else expect(w.store.stat(HASH)).toBeUndefined();

  if (next.status === 'done') {
    if (w.opened) expect(w.client.isOpen).toBe(false);
    if (w.remote) expect(w.remote.transport.isOpen).toBe(false);
    expect(w.matches.every((m) => m.ref.getSnapshot().status !== 'active')).toBe(true);
  }
}

describe('swarm peer, model-based (scripted server, match and remote)', () => {
  const ranAll = replayEach('the peer:', plan.paths, { start: world, exec, check, stop: (w) => void w.actor.stop() });

  it('fails at once, saying what to provide, when no signalling actor was provided', () => {
    const actor = createActor(swarmPeer, {
      id: 'peer-under-test',
      inspect: tracker.inspect,
      input: { clientId: 'me', store: memoryStore() },
    }).start();
    const snapshot = actor.getSnapshot();
    expect(snapshot.value).toBe('failed');
    expect(snapshot.context.error).toMatchObject({ reason: 'signalling-lost', code: 'ERR_CONNECT_FAILED' });
    expect(snapshot.context.error!.message).toMatch(/No `signalling` actor was provided: use machine.provide/);
  });

  it('takes every state node and every transition of the peer', () => {
    // The real actors take every transition, the unplanned one included (in the test above).
    expectFullCoverage({ label: 'peer model', machine: swarmPeer, plan, tracker, notPlanned, ranAll: ranAll() });
  });
});
