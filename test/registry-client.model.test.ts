/**
 * Model-based test of the registry client (`registryClient`).
 *
 * The model is the client machine itself with inert actors. Its events are
 * what a scripted server (one other peer, P), scripted WebRTC connections,
 * scripted transfer jobs, the file provider and the application can do to
 * one client. Each path @xstate/graph plans runs on a fresh real client
 * whose `signalling` is a memory transport to a server end the test reads
 * and writes as raw JSON, whose `rtc` actors and `fetch` / `serve` jobs
 * report only what the path says, and whose provider lists when told. After
 * every step the client's state, context, children, the frames it sent, the
 * events it emitted and what its children were told are checked.
 */
import type { StatePath } from '@xstate/graph';
import { describe, expect, it } from 'vitest';
import { assign, createActor, fromCallback, setup, type AnyMachineSnapshot } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { memorySink } from '../machines/transfer/files.js';
import { registryClient, type Job, type RegistryClientContext } from '../machines/registry/client.machine.js';
import { clientCodec } from '../machines/registry/codec.js';
import { RegistryError } from '../machines/registry/errors.js';
import type { FileProvider } from '../machines/registry/files.js';
import type { FileEntry } from '../machines/registry/protocol.js';
import { ErrorCode, ProtocolError, RtcError } from '../src/errors.js';
import { fromTransport } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import {
  coverageTracker,
  expectFullCoverage,
  planPaths,
  replayEach,
  scriptedRtc,
  settle,
  stubTransport,
} from './model-helpers.js';
import { rawClient, type RawClient } from './registry-helpers.js';

const P = 'peer-p';
const ME = 'me';
const FETCH = `fetch:r1@${P}`;
const SERVE = `serve:c1@${P}`;
const X: FileEntry = { path: 'x.bin', size: 10, sha256: 'a'.repeat(64) };
const OWN: FileEntry[] = [{ path: 'own.txt', size: 3 }];
const NEW: FileEntry[] = [{ path: 'new.txt', size: 4 }];
const candidate = { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' };

/** Sinks are compared by identity: one for every request of a run. */
const sink = memorySink();

type ModelEvent = { type: string; [key: string]: unknown };

/** Every event a model state may take, with its short name (for test titles and edge classes). */
const E = {
  listed: { type: 'xstate.done.actor.listFiles', output: OWN, actorId: 'listFiles' },
  listFailed: {
    type: 'xstate.error.actor.listFiles',
    error: new RegistryError('source-failed', 'disk gone'),
    actorId: 'listFiles',
  },
  relisted: { type: 'xstate.done.actor.relist', output: NEW, actorId: 'relist' },
  relistFailed: {
    type: 'xstate.error.actor.relist',
    error: new RegistryError('source-failed', 'disk gone'),
    actorId: 'relist',
  },
  welcome: { type: 'Welcome', detail: { id: ME } },
  error: {
    type: 'Error',
    detail: { code: 'ERR_PEER_GONE', message: 'Offer: no peer q is registered', event: 'Offer' },
  },
  register: { type: 'RegisterPeer', detail: { peer: P, files: [X] } },
  updateEmpty: { type: 'UpdatePeer', detail: { peer: P, files: [] } },
  updateX: { type: 'UpdatePeer', detail: { peer: P, files: [X] } },
  unregister: { type: 'UnregisterPeer', detail: { peer: P } },
  // A burst the server coalesced: read as its two announcements, in order.
  batch: {
    type: 'Batch',
    detail: {
      events: [
        { type: 'RegisterPeer', detail: { peer: P, files: [X] } },
        { type: 'UpdatePeer', detail: { peer: P, files: [] } },
      ],
    },
  },
  offer: { type: 'Offer', detail: { peer: P, connection: 'c1', sdp: 'v=0 p-offer' } },
  answer: { type: 'Answer', detail: { peer: P, connection: 'r1', sdp: 'v=0 p-answer' } },
  holderCandidate: { type: 'Candidate', detail: { peer: P, connection: 'r1', from: 'holder', candidate } },
  requesterCandidate: { type: 'Candidate', detail: { peer: P, connection: 'c1', from: 'requester', candidate } },
  request: { type: 'requestFile', peer: P, path: 'x.bin', sink, request: 'r1' },
  badRequest: { type: 'requestFile', peer: P, path: '../x.bin', sink, request: 'r2' },
  cancel: { type: 'cancel', request: 'r1' },
  updateFiles: { type: 'updateFiles', files: NEW },
  updateBadFiles: { type: 'updateFiles', files: [{ path: '/etc/passwd', size: 1 }] },
  relist: { type: 'updateFiles' },
  fetchOffer: { type: 'rtc.description', label: FETCH, description: { type: 'offer', sdp: 'v=0 my-offer' } },
  fetchCandidate: { type: 'rtc.candidate', label: FETCH, candidate },
  fetchOpen: { type: 'rtc.open', label: FETCH, transport: stubTransport },
  fetchFailedRtc: { type: 'rtc.failed', label: FETCH, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') },
  fetchClosed: { type: 'rtc.closed', label: FETCH },
  serveAnswer: { type: 'rtc.description', label: SERVE, description: { type: 'answer', sdp: 'v=0 my-answer' } },
  serveCandidate: { type: 'rtc.candidate', label: SERVE, candidate },
  progress: { type: 'job.progress', key: FETCH, received: 5, total: 10 },
  fetchDone: {
    type: `xstate.done.actor.job:${FETCH}`,
    actorId: `job:${FETCH}`,
    output: { key: FETCH, size: 10, sha256: 'a'.repeat(64) },
  },
  fetchLost: {
    type: `xstate.done.actor.job:${FETCH}`,
    actorId: `job:${FETCH}`,
    output: { key: FETCH, size: 0, error: new RegistryError('peer-gone', 'the peer left') },
  },
  serveDone: {
    type: `xstate.done.actor.job:${SERVE}`,
    actorId: `job:${SERVE}`,
    output: { key: SERVE, path: 'own.txt' },
  },
  fetchCrash: { type: `xstate.error.actor.job:${FETCH}`, actorId: `job:${FETCH}`, error: new Error('job crashed') },
  fetchRtcCrash: {
    type: `xstate.error.actor.rtc:${FETCH}`,
    actorId: `rtc:${FETCH}`,
    error: new Error(`rtc ${FETCH} crashed (simulated)`),
  },
  filesRefused: {
    type: 'Error',
    detail: {
      code: 'ERR_INVALID_FIELD',
      message: 'UpdateFiles: a file list has at most 0 entries',
      event: 'UpdateFiles',
    },
  },
  leave: { type: 'leave' },
  closed: { type: 'signalling.closed', info: { code: 1001, reason: 'server closing', initiator: 'remote' } },
  badFrame: {
    type: 'signalling.error',
    error: new ProtocolError(ErrorCode.MalformedFrame, 'frame is not valid JSON'),
    frame: 'nope',
  },
  crash: { type: 'xstate.error.actor.signalling', actorId: 'signalling', error: new Error('encoder crashed') },
} satisfies Record<string, ModelEvent>;
type Name = keyof typeof E;
const nameOf = new Map<ModelEvent, Name>(Object.entries(E).map(([name, event]) => [event, name as Name]));

/** A stand-in for a fetch or serve job: it records what it is told and ends when the test says. */
const scriptedJob = setup({
  types: {
    context: {} as { key: string; output?: unknown },
    input: {} as { key: string },
    events: {} as { type: string; output?: unknown },
  },
}).createMachine({
  context: ({ input }) => ({ key: input.key }),
  initial: 'running',
  states: {
    running: {
      on: {
        'test.finish': { target: 'finished', actions: assign({ output: ({ event }) => event.output }) },
        'test.crash': {
          actions: () => {
            throw new Error('job crashed');
          },
        },
        '*': {
          actions: ({ context, event }) => void told.set(context.key, [...(told.get(context.key) ?? []), event.type]),
        },
      },
    },
    finished: { type: 'final' },
  },
  output: ({ context }) => context.output,
});
/** What each job was told, by key (reset for every run). */
const told = new Map<string, string[]>();

const inert = fromCallback(() => {});
const model = registryClient.provide({
  actors: {
    signalling: inert as never,
    rtc: inert as never,
    listFiles: inert as never,
    fetch: scriptedJob as never,
    serve: scriptedJob as never,
  },
});

type Snapshot = AnyMachineSnapshot & { context: RegistryClientContext };
const ctx = (s: AnyMachineSnapshot) => (s as Snapshot).context;
const inState = (s: AnyMachineSnapshot, value: unknown) => s.status === 'active' && s.matches(value as never);

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { jobs, peers } = ctx(snapshot);
  const updates = [E.updateFiles, E.updateBadFiles, E.relist];
  // Not connected yet while listing: nothing can come from the server.
  if (inState(snapshot, 'listing')) return [E.listed, E.listFailed, E.leave, E.request, ...updates];
  const always = [E.leave, E.closed, E.request];
  if (inState(snapshot, { active: 'registering' })) {
    return [E.welcome, E.error, E.badFrame, E.crash, ...always, ...updates];
  }
  const events: ModelEvent[] = [
    ...always,
    E.badFrame,
    E.crash,
    E.error,
    E.filesRefused,
    E.badRequest,
    E.cancel,
    E.offer,
    E.answer,
    E.holderCandidate,
    E.requesterCandidate,
    E.updateFiles,
    E.updateBadFiles,
    E.relist,
  ];
  if (!(P in peers)) events.push(E.register, E.batch);
  else events.push(E.unregister, peers[P]!.length ? E.updateEmpty : E.updateX);
  if (inState(snapshot, { active: { ready: 'relisting' } })) events.push(E.relisted, E.relistFailed);
  if (FETCH in jobs) {
    events.push(E.fetchOffer, E.fetchCandidate, E.fetchOpen, E.fetchFailedRtc, E.fetchClosed);
    events.push(E.fetchDone, E.fetchLost, E.fetchCrash, E.fetchRtcCrash, E.progress);
  }
  if (SERVE in jobs) events.push(E.serveAnswer, E.serveCandidate, E.serveDone);
  return events;
}

const summary = (c: RegistryClientContext) => ({
  files: c.files,
  peers: Object.fromEntries(Object.entries(c.peers).map(([id, files]) => [id, files.map((f) => f.path)])),
  jobs: Object.keys(c.jobs).sort(),
  // The updateFiles kept for after Welcome: a list's paths, or the provider.
  deferred: c.deferred ? (c.deferred.files?.map((f) => f.path) ?? 'provider') : null,
});

const serializeState = (s: AnyMachineSnapshot) =>
  s.status === 'active' ? JSON.stringify([s.value, summary(ctx(s))]) : JSON.stringify(s.value);

function describePath(path: StatePath<AnyMachineSnapshot, ModelEvent>): string {
  const names = path.steps.slice(1).map((step) => nameOf.get(step.event) ?? step.event.type);
  return `reaches ${JSON.stringify(path.state.value)} after ${names.join(' → ') || 'starting'}`;
}

const plan = planPaths<ModelEvent>({
  model,
  machine: registryClient,
  inputs: [{ provider: { list: () => [], open: () => Promise.reject(new Error('unused')) } }],
  events: modelEvents,
  serializeState,
  describe: describePath,
  // Every event in every control state, with and without each job and with P known or not.
  edgeClass: (from, event) =>
    from.status !== 'active'
      ? ''
      : JSON.stringify([from.value, P in ctx(from).peers, summary(ctx(from)).jobs, nameOf.get(event)]),
});

// ---------------------------------------------------------------------------
// The system under test.
// ---------------------------------------------------------------------------

const tracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'registryClient');

function world() {
  told.clear();
  const [client, serverEnd] = memoryPair();
  const server: RawClient = rawClient(serverEnd);
  const rtc = scriptedRtc();
  let crashEncode = false;
  const codec = clientCodec();
  const lists: Array<{ resolve(files: FileEntry[]): void; reject(error: unknown): void }> = [];
  const provider: FileProvider = {
    list: () => new Promise<FileEntry[]>((resolve, reject) => lists.push({ resolve, reject })),
    open: () => Promise.reject(new Error('unused')),
  };
  const logic = registryClient.provide({
    actors: {
      signalling: fromTransport(client, {
        decode: codec.decode,
        encode: (message) => {
          if (crashEncode) throw new Error('encoder crashed');
          return codec.encode(message);
        },
      }),
      rtc: rtc.logic,
      fetch: scriptedJob as never,
      serve: scriptedJob as never,
    },
  });
  const emitted: Array<{ type: string; detail: Record<string, unknown> }> = [];
  const actor = createActor(logic, { input: { provider }, inspect: tracker.inspect });
  actor.on('*', (event) => emitted.push(event as never));
  actor.start();
  return {
    actor,
    server,
    serverEnd,
    rtc,
    lists,
    emitted,
    crash: () => (crashEncode = true),
    channels: [] as Transport[],
  };
}
type World = ReturnType<typeof world>;

async function exec(w: World, _prev: AnyMachineSnapshot, event: ModelEvent): Promise<void> {
  const name = nameOf.get(event)!;
  const child = (id: string) => w.actor.getSnapshot().children[id] as { send(e: unknown): void } | undefined;
  // The provider answers the latest listing; earlier ones were stopped (relisting again).
  const latest = () => w.lists.splice(0).pop()!;
  switch (name) {
    case 'listed':
    case 'relisted':
      latest().resolve(name === 'listed' ? OWN : NEW);
      break;
    case 'listFailed':
    case 'relistFailed':
      latest().reject(new RegistryError('source-failed', 'disk gone'));
      break;
    case 'welcome':
    case 'error':
    case 'filesRefused':
    case 'register':
    case 'updateEmpty':
    case 'updateX':
    case 'unregister':
    case 'batch':
    case 'offer':
    case 'answer':
    case 'holderCandidate':
    case 'requesterCandidate':
      w.server.send({ type: event.type, detail: event.detail });
      break;
    case 'badFrame':
      w.server.send('nope');
      break;
    case 'closed':
      w.serverEnd.close(1001, 'server closing');
      break;
    case 'crash':
      w.crash();
      child('signalling')!.send({ type: 'signalling.send', message: { type: 'Disconnect' } });
      break;
    case 'fetchOffer':
    case 'fetchCandidate':
    case 'serveAnswer':
    case 'serveCandidate':
    case 'fetchFailedRtc':
      w.rtc.live.get(event.label as string)!.emit(event as never);
      break;
    case 'fetchOpen':
      w.channels.push(w.rtc.open(FETCH));
      break;
    case 'fetchClosed':
      w.rtc.live.get(FETCH)!.emit({ type: 'rtc.closed', label: FETCH });
      break;
    case 'fetchDone':
    case 'fetchLost':
    case 'serveDone':
      child(event.actorId as string)!.send({ type: 'test.finish', output: event.output });
      break;
    case 'fetchCrash':
      child(`job:${FETCH}`)!.send({ type: 'test.crash' });
      break;
    case 'fetchRtcCrash':
      // The rtc actor throws on its next command (the holder's Answer).
      w.rtc.live.get(FETCH)!.crashing = true;
      w.server.send({ type: 'Answer', detail: E.answer.detail });
      await settle();
      // XState runs no cleanup for a callback actor that threw: forget it here.
      w.rtc.live.delete(FETCH);
      break;
    default: {
      const { type, ...rest } = event;
      w.actor.send({ type, ...rest } as never);
    }
  }
  await settle();
}

// ---------------------------------------------------------------------------
// The oracle, from the model alone.
// ---------------------------------------------------------------------------

/** True when the model's `requestFile` in `prev` starts a fetch. */
function startsFetch(prev: AnyMachineSnapshot, event: ModelEvent): boolean {
  if (event.type !== 'requestFile' || !inState(prev, { active: 'ready' })) return false;
  const { peers, jobs } = ctx(prev);
  return event.path === 'x.bin' && !!peers[P]?.some((f: FileEntry) => f.path === 'x.bin') && !(FETCH in jobs);
}

/** What the updateFiles kept from before Welcome does once registered. */
function deferredUpdate(prev: AnyMachineSnapshot): 'publish' | 'refuse' | 'relist' | undefined {
  const { deferred } = ctx(prev);
  if (!deferred) return undefined;
  if (!deferred.files) return 'relist';
  return deferred.files.every((f: FileEntry) => !f.path.startsWith('/')) ? 'publish' : 'refuse';
}

function expectedFrames(prev: AnyMachineSnapshot, event: ModelEvent, next: AnyMachineSnapshot): unknown[] {
  const name = nameOf.get(event)!;
  if (name === 'leave') return inState(prev, 'listing') ? [] : [{ type: 'Disconnect' }];
  if (name === 'listed') return [{ type: 'Connect', detail: { files: OWN, batch: true } }];
  if (name === 'relisted') return [{ type: 'UpdateFiles', detail: { files: NEW } }];
  if (name === 'updateFiles' && inState(prev, { active: 'ready' }))
    return [{ type: 'UpdateFiles', detail: { files: NEW } }];
  if (name === 'welcome' && deferredUpdate(prev) === 'publish')
    return [{ type: 'UpdateFiles', detail: { files: NEW } }];
  if (next.status !== 'active') return [];
  const { jobs } = ctx(prev);
  if (name === 'fetchOffer' && FETCH in jobs)
    return [{ type: 'Offer', detail: { peer: P, connection: 'r1', sdp: { type: 'offer', sdp: 'v=0 my-offer' } } }];
  if (name === 'fetchCandidate' && FETCH in jobs)
    return [{ type: 'Candidate', detail: { peer: P, connection: 'r1', from: 'requester', candidate } }];
  if (name === 'serveAnswer' && SERVE in jobs)
    return [{ type: 'Answer', detail: { peer: P, connection: 'c1', sdp: { type: 'answer', sdp: 'v=0 my-answer' } } }];
  if (name === 'serveCandidate' && SERVE in jobs)
    return [{ type: 'Candidate', detail: { peer: P, connection: 'c1', from: 'holder', candidate } }];
  return [];
}

function expectedEmitted(prev: AnyMachineSnapshot, event: ModelEvent, next: AnyMachineSnapshot): string[] {
  const name = nameOf.get(event)!;
  const ready = inState(prev, { active: 'ready' });
  const { jobs } = ctx(prev);
  // Stopping fails every running transfer first.
  if (next.status === 'done') {
    return [
      ...Object.values(jobs as Record<string, Job>).map((job) =>
        job.kind === 'fetch' ? 'fetchFailed' : 'serveFailed',
      ),
      'stopped',
    ];
  }
  switch (name) {
    case 'welcome': {
      const then = { publish: ['filesUpdated'], refuse: ['filesFailed'], relist: [] };
      const deferred = deferredUpdate(prev);
      return ['registered', 'filesUpdated', ...(deferred ? then[deferred] : [])];
    }
    case 'filesRefused':
      return ready ? ['filesFailed'] : [];
    case 'register':
      return ['peerRegistered', 'peers'];
    case 'updateEmpty':
    case 'updateX':
      return ['peerUpdated', 'peers'];
    case 'unregister':
      return ['peerUnregistered', 'peers'];
    case 'batch':
      // Each announcement's own event, then one `peers` for the frame.
      return ['peerRegistered', 'peerUpdated', 'peers'];
    case 'request':
    case 'badRequest':
      return startsFetch(prev, event) ? [] : ['fetchFailed'];
    case 'updateFiles':
    case 'relisted':
      return ready ? ['filesUpdated'] : [];
    case 'updateBadFiles':
    case 'relistFailed':
      return ready ? ['filesFailed'] : [];
    case 'fetchDone':
      return ['fetched'];
    case 'progress':
      return ['progress'];
    case 'fetchLost':
    case 'fetchCrash':
    case 'fetchRtcCrash':
      return ['fetchFailed'];
    case 'serveDone':
      return ['served'];
    case 'error':
      return ready ? ['refused'] : [];
    default:
      void jobs;
      return [];
  }
}

/** What the jobs must have been told by this step: event types by job key. */
function expectedTold(prev: AnyMachineSnapshot, event: ModelEvent, next: AnyMachineSnapshot): Record<string, string[]> {
  const name = nameOf.get(event)!;
  const { jobs } = ctx(prev);
  const out: Record<string, string[]> = {};
  // Stopping tells every running transfer to cancel (it aborts its sink or closes its source).
  if (next.status !== 'active') return Object.fromEntries(Object.keys(jobs).map((key) => [key, ['cancel']]));
  if (name === 'unregister') for (const key of Object.keys(jobs)) out[key] = ['peer.gone'];
  if (name === 'cancel' && FETCH in jobs) out[FETCH] = ['cancel'];
  if (['fetchOpen', 'fetchFailedRtc', 'fetchClosed'].includes(name) && FETCH in jobs) out[FETCH] = [event.type];
  return out;
}

/** What the rtc actors must have been sent by this step, by label. */
function expectedCommands(prev: AnyMachineSnapshot, event: ModelEvent): Record<string, unknown[]> {
  const name = nameOf.get(event)!;
  const { jobs } = ctx(prev);
  if (!inState(prev, { active: 'ready' })) return {};
  if (name === 'answer' && FETCH in jobs)
    return { [FETCH]: [{ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0 p-answer' } }] };
  if (name === 'holderCandidate' && FETCH in jobs) return { [FETCH]: [{ type: 'rtc.remoteCandidate', candidate }] };
  if (name === 'requesterCandidate' && SERVE in jobs) return { [SERVE]: [{ type: 'rtc.remoteCandidate', candidate }] };
  if (name === 'offer' && SERVE in jobs)
    return { [SERVE]: [{ type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'v=0 p-offer' } }] };
  return {};
}

async function check(w: World, prev: AnyMachineSnapshot | undefined, event: ModelEvent, next: AnyMachineSnapshot) {
  const real = w.actor.getSnapshot() as Snapshot;
  tracker.see(real);
  expect(real.status).toBe(next.status);
  expect(real.value).toEqual(next.value);
  const sent = w.server.inbox.splice(0);
  const emitted = w.emitted.splice(0);
  const commands = new Map([...w.rtc.live].map(([label, script]) => [label, script.commands.splice(0)]));
  const toldNow = Object.fromEntries(
    [...told].map(([key, types]) => [key, types.splice(0)] as const).filter(([, t]) => t.length > 0),
  );
  if (!prev) {
    expect(sent).toEqual([]);
    expect(emitted).toEqual([]);
    return;
  }
  expect(sent).toEqual(expectedFrames(prev, event, next));
  expect(emitted.map((e) => e.type)).toEqual(expectedEmitted(prev, event, next));
  const stoppedWith = emitted.find((e) => e.type === 'stopped')?.detail.error as RegistryError | undefined;
  for (const e of emitted) {
    if (next.status !== 'active' && (e.type === 'fetchFailed' || e.type === 'serveFailed')) {
      expect((e.detail.error as RegistryError).reason).toBe(stoppedWith?.reason ?? 'cancelled');
    }
    if (e.type === 'stopped') {
      const reason = nameOf.get(event) === 'leave' ? undefined : (e.detail.error as RegistryError).reason;
      const want: Partial<Record<Name, string>> = {
        closed: 'signalling-lost',
        crash: 'signalling-lost',
        badFrame: 'protocol',
        error: inState(prev, { active: 'registering' }) ? 'protocol' : undefined,
        listFailed: 'source-failed',
      };
      expect(reason).toBe(want[nameOf.get(event)!]);
    }
    if (e.type === 'fetched')
      expect(e.detail).toEqual({ request: 'r1', peer: P, path: 'x.bin', size: 10, sha256: X.sha256 });
    if (e.type === 'progress')
      expect(e.detail).toEqual({ request: 'r1', peer: P, path: 'x.bin', received: 5, total: 10 });
    if (e.type === 'fetchFailed') expect(e.detail.error).toBeInstanceOf(RegistryError);
  }

  if (next.status !== 'active') {
    // Everything is let go: the signalling connection, every rtc actor, every job.
    // XState does not run a callback actor's cleanup after it threw: a crashed
    // signalling actor leaves its transport to the garbage collector.
    // A client that stopped while listing never connected: its transport was not used.
    if (nameOf.get(event) !== 'crash' && !inState(prev, 'listing')) expect(w.serverEnd.isOpen).toBe(false);
    expect([...w.rtc.live.keys()]).toEqual([]);
    for (const channel of w.channels) expect(channel.isOpen).toBe(false);
    return;
  }
  expect(summary(real.context)).toEqual(summary(ctx(next)));
  expect(real.context.id).toBe(ctx(next).id);
  // One rtc actor and one job per running transfer, nothing else.
  const keys = Object.keys(ctx(next).jobs).sort();
  expect([...w.rtc.live.keys()].sort()).toEqual(keys);
  expect(
    Object.keys(real.children)
      .filter((id) => id.startsWith('job:'))
      .sort(),
  ).toEqual(keys.map((k) => `job:${k}`));
  if (FETCH in ctx(next).jobs && !(FETCH in ctx(prev).jobs)) {
    expect(w.rtc.live.get(FETCH)!.input).toEqual({ label: FETCH, role: 'offerer' });
  }
  if (SERVE in ctx(next).jobs && !(SERVE in ctx(prev).jobs)) {
    expect(w.rtc.live.get(SERVE)!.input).toEqual({ label: SERVE, role: 'answerer', remoteOffer: 'v=0 p-offer' });
  }
  const wantCommands = expectedCommands(prev, event);
  for (const [label, got] of commands) expect(got).toEqual(wantCommands[label] ?? []);
  expect(toldNow).toEqual(expectedTold(prev, event, next));
}

describe('registry client, model-based (scripted server, WebRTC and jobs)', () => {
  const ranAll = replayEach('the client', plan.paths, {
    start: async () => {
      const w = world();
      await settle();
      return w;
    },
    exec,
    check,
    stop: (w) => void w.actor.stop(),
  });

  it('takes every state node and every transition of the client machine', () => {
    expectFullCoverage({ label: 'registry client model', machine: registryClient, plan, tracker, ranAll: ranAll() });
  });
});
