/**
 * Model-based test of the swarm peer (`swarmPeer`): both WebSocket roles
 * (alice offers, bob answers) for one request, the link that follows, a
 * fetch over it, and every way of ending (leave, server gone, server error,
 * a match or a link failing).
 *
 * The model is the machine itself with its children stubbed. Every planned
 * path is replayed on a real peer whose server is a raw end the test plays,
 * whose WebRTC is scripted, and whose remote peer is a raw data-channel end
 * (it answers the fetch when the model says the fetch ends); after each step
 * the state, the matchmaking and link bookkeeping, and every frame the
 * server and the remote got are checked.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, SimulatedClock, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { memoryPair } from '../adapters/memory/index.js';
import { CHUNK_SIZE, encodeChunk } from '../machines/filedrop/chunks.js';
import { sha256Hex } from '../machines/filedrop/files.js';
import type { AliceOutput } from '../machines/swarm/alice.machine.js';
import { clientCodec } from '../machines/swarm/codec.js';
import { swarmPeer, type PeerContext } from '../machines/swarm/peer.machine.js';
import { memoryStore, type MemoryStore } from '../machines/swarm/store.js';
import { ErrorCode, ProtocolError, RtcError } from '../src/errors.js';
import { fromTransport } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import {
  coverageTracker,
  planPaths,
  replay,
  scriptedRtc,
  settle,
  stateNodeIds,
  stubTransport,
  transitionKeys,
} from './model-helpers.js';
import { bytes, rawChannel, rawClient, type Frame, type RawChannel } from './swarm-helpers.js';

const DATA = bytes(CHUNK_SIZE + 10, 31);
const HASH = sha256Hex(DATA);
const C = '1';

type ModelEvent =
  | { type: 'signalling.open' }
  | { type: 'connect'; count: 1 }
  | { type: 'requesting_offer' | 'wait_for_offer'; detail: { context_id: string } }
  | { type: 'forwarding_offer'; detail: { offer: string; context_id: string } }
  | { type: 'forwarding_answer'; detail: { answer: string; context_id: string } }
  | { type: 'error'; detail: { code: string; message: string; context_id?: string } }
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.open'; label: string; transport: Transport }
  | { type: 'rtc.failed'; label: string; error: RtcError }
  | { type: 'rtc.closed'; label: string }
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
  actors: { signalling: stub, rtc: stub, channel: stub, bob: stub, alice: stub } as never,
});

const rtcFailed = new RtcError(ErrorCode.RtcFailed, 'ICE failed');
const server = (type: string, detail: Record<string, unknown>) => ({ type, detail }) as ModelEvent;

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { context } = snapshot as ModelSnapshot;
  const stage = context.matches[C];
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
  events.push(
    server('requesting_offer', { context_id: C }),
    server('wait_for_offer', { context_id: C }),
    server('forwarding_offer', { offer: 'v=0 remote-offer', context_id: C }),
    server('forwarding_answer', { answer: 'v=0 remote-answer', context_id: C }),
    server('error', { code: 'ERR_PEER_GONE', message: 'left', context_id: C }),
    server('error', { code: 'ERR_NOT_PERMITTED', message: 'no' }),
  );
  if (stage === 'offering') {
    events.push({ type: 'rtc.description', label: C, description: { type: 'offer', sdp: 'v=0 my-offer' } });
  }
  if (stage === 'answering') {
    events.push({ type: 'rtc.description', label: C, description: { type: 'answer', sdp: 'v=0 my-answer' } });
  }
  if (stage === 'aliceConnecting' || stage === 'bobConnecting') {
    events.push({ type: 'rtc.open', label: C, transport: stubTransport });
  }
  // While a fetch runs over the only link, losing it ends the fetch too: the real alice reports at once,
  // the stubbed one of the model cannot. Those losses are taken from `idle` (and end to end elsewhere).
  const fetching = snapshot.matches({ active: { online: 'running' } });
  const rtcLive = stage !== undefined && stage !== 'pending' && stage !== 'awaitingOffer';
  if (rtcLive || (link && !fetching)) events.push({ type: 'rtc.failed', label: C, error: rtcFailed });
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
    events.push({ type: 'rtc.closed', label: C }, { type: 'link.closed', link: C });
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
    context.matches,
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
    case 'rtc.description':
      return `rtc ${event.description.type}`;
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

/** Where request `C` stands: its matchmaking stage, its link (and whether the remote introduced itself), or nothing. */
function stageOf(snapshot: ModelSnapshot): string {
  const { matches, links } = snapshot.context;
  if (matches[C]) return matches[C];
  if (links[C]) return links[C].peer === undefined ? 'link' : 'ready link';
  return 'none';
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
  // The matchmaking stages and the link live in context, not in state nodes: every event is planned in each.
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${stageOf(from as ModelSnapshot)} ${formatEvent(event)}`,
});

// ---------------------------------------------------------------------------

const tracker = coverageTracker((actor) => actor.id === 'peer-under-test');

function world() {
  const clock = new SimulatedClock();
  const [client, serverEnd] = memoryPair();
  let open!: (t: Transport) => void;
  let refuse!: (error: Error) => void;
  const connection = new Promise<Transport>((resolve, reject) => {
    open = resolve;
    refuse = reject;
  });
  const rtc = scriptedRtc();
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
    swarmPeer.provide({ actors: { signalling: fromTransport(() => connection, clientCodec()), rtc: rtc.logic } }),
    {
      id: 'peer-under-test',
      clock,
      inspect: tracker.inspect,
      input: { clientId: 'me', store, answerTimeout: 1000, stallTimeout: 1000 },
    },
  ).start();
  const w = {
    clock,
    actor,
    rtc,
    store,
    explode: () => (explode = true),
    client,
    serverEnd,
    server: rawClient(serverEnd),
    remote: undefined as RawChannel | undefined,
    remoteRead: 0,
    opened: false,
    open: () => {
      w.opened = true;
      open(client);
    },
    refuse: () => refuse(new Error('connection refused')),
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
  const script = () => w.rtc.live.get(C)!;
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
    case 'rtc.description':
      script().emit({ type: 'rtc.description', label: C, description: event.description });
      break;
    case 'rtc.open':
      w.remote = rawChannel(w.rtc.open(C));
      w.remoteRead = 0;
      break;
    case 'rtc.failed':
      script().emit({ type: 'rtc.failed', label: C, error: rtcFailed });
      break;
    case 'rtc.closed':
      script().emit({ type: 'rtc.closed', label: C });
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
  expect(real.context.matches).toEqual(next.context.matches);
  expect(Object.entries(real.context.links).map(([l, v]) => [l, v.role, v.peer])).toEqual(
    Object.entries(next.context.links).map(([l, v]) => [l, v.role, v.peer]),
  );
  expect(real.context.queue).toEqual(next.context.queue);
  expect(real.context.current).toEqual(next.context.current);
  expect(real.context.requests).toBe(next.context.requests);

  // What the server got.
  const toServer = w.server.inbox.splice(0);
  const want: unknown[] = [];
  if (prev && event.type === 'signalling.open') {
    want.push(frame('i_am', { client_id: 'me' }));
    if (next.context.requests > prev.context.requests) want.push(frame('requesting_peers', { context_id: C }));
  } else if (prev && event.type === 'connect' && prev.matches({ active: 'online' })) {
    want.push(frame('requesting_peers', { context_id: C }));
  } else if (prev && event.type === 'rtc.description') {
    want.push(
      prev.context.matches[C] === 'offering'
        ? frame('sending_offer', { offer: 'v=0 my-offer', context_id: C })
        : frame('sending_answer', { answer: 'v=0 my-answer', context_id: C }),
    );
  }
  expect(toServer).toEqual(want);

  // What the remote got on the data channel.
  // bob's answers (to a reserve) are his business: see the bob model.
  const toRemote = (w.remoteFrames() as Array<Frame | Uint8Array>).filter(
    (f) => f instanceof Uint8Array || !['resource_found', 'resource_not_found'].includes(f.type),
  );
  const wantRemote: unknown[] = [];
  const link = next.context.links[C];
  if (prev && event.type === 'rtc.open' && link?.role === 'alice') wantRemote.push(frame('i_am', { client_id: 'me' }));
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
    expect(w.rtc.scripts.every((s) => s.stopped)).toBe(true);
  }
}

describe('swarm peer, model-based (scripted server, WebRTC and remote)', () => {
  let ran = 0;
  for (const path of plan.paths) {
    it(`the peer: ${path.description}`, async () => {
      await replay(path, {
        start: () => world(),
        exec: (w, prev, event) => exec(w, prev as ModelSnapshot, event),
        check: (w, prev, event, next) => check(w, prev as ModelSnapshot | undefined, event, next as ModelSnapshot),
        stop: (w) => {
          w.actor.stop();
        },
      });
      ran++;
    });
  }

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

  it('takes every step of the matchmaking stages and of the link (they live in context, not in state nodes)', () => {
    const where = (snapshot: ModelSnapshot) =>
      snapshot.context.matches[C] ?? (snapshot.context.links[C] ? 'link' : '-');
    const taken = new Set<string>();
    for (const path of plan.paths) {
      for (let i = 1; i < path.steps.length; i++) {
        const from = where(path.steps[i - 1]!.state as unknown as ModelSnapshot);
        const to = where(path.steps[i]!.state as unknown as ModelSnapshot);
        if (from !== to) taken.add(`${from} → ${to} on ${formatEvent(path.steps[i]!.event)}`);
      }
    }
    const withRtc = ['offering', 'awaitingAnswer', 'aliceConnecting', 'answering', 'bobConnecting'];
    const stages = ['pending', 'awaitingOffer', ...withRtc];
    const expected = [
      '- → pending on connect',
      // alice (requesting_offer: she offers) and bob (wait_for_offer: he answers)
      'pending → offering on requesting_offer',
      'offering → awaitingAnswer on rtc offer',
      'awaitingAnswer → aliceConnecting on forwarding_answer',
      'aliceConnecting → link on rtc.open',
      'pending → awaitingOffer on wait_for_offer',
      'awaitingOffer → answering on forwarding_offer',
      'answering → bobConnecting on rtc answer',
      'bobConnecting → link on rtc.open',
      // the server ends a match in progress; WebRTC fails; the link goes
      ...stages.map((stage) => `${stage} → - on server: peer gone`),
      ...withRtc.map((stage) => `${stage} → - on rtc.failed`),
      ...['link.closed', 'rtc.closed', 'rtc.failed', 'remote: bad binary frame', 'remote: unsolicited bytes'].map(
        (event) => `link → - on ${event}`,
      ),
    ];
    expect([...taken].sort()).toEqual(expected.sort());
  });

  it('takes every state node and every transition of the peer', () => {
    const states = stateNodeIds(swarmPeer);
    const transitions = [...new Set(transitionKeys(swarmPeer))];
    expect(plan.unplanned).toEqual([]);
    expect(transitions.filter((t) => !plan.planned.transitions.has(t))).toEqual(Object.keys(notPlanned));
    if (ran < plan.paths.length) return; // a filtered run
    expect([...tracker.visited.states].sort()).toEqual([...states].sort());
    expect(transitions.filter((t) => !tracker.visited.transitions.has(t))).toEqual([]);
    console.info(
      `peer model: ${plan.size.states} states, ${plan.size.edges} edges, ${plan.paths.length} paths; ` +
        `${states.length} state nodes, ${transitions.length} transitions`,
    );
  });
});
