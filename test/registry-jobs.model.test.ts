/**
 * Model-based tests of one file connection's two ends: the requester's
 * `registryFetch` and the holder's `registryServe`.
 *
 * Each model is the machine itself with inert actors. Every planned path is
 * replayed on the real machine (its real `firstFrame`, `openSink` /
 * `download` or `openSource` / `upload` actors) on a SimulatedClock, with a
 * memory data channel whose far end the test plays: the holder's frames and
 * chunks for a fetch, the requester's `RequestFile` for a serve. The sink
 * and the source answer when the path says. After every step the state, the
 * error, the frames on the channel and the sink or source are checked.
 */
import type { StatePath } from '@xstate/graph';
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, SimulatedClock, type AnyMachineSnapshot } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { CHUNK_SIZE, encodeChunk } from '../machines/transfer/chunks.js';
import { memorySink, sha256Hex, type FileSource, type MemorySink } from '../machines/transfer/files.js';
import { RegistryError } from '../machines/registry/errors.js';
import { registryFetch, type FetchContext } from '../machines/registry/fetch.machine.js';
import type { FileProvider } from '../machines/registry/files.js';
import { registryServe, type ServeContext } from '../machines/registry/serve.machine.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import { coverageTracker, expectFullCoverage, planPaths, replayEach, settle, stubTransport } from './model-helpers.js';
import { bytes } from './registry-helpers.js';
import { deferred } from './socket-helpers.js';

const TIMING = { connectTimeout: 1000, responseTimeout: 2000, lingerTimeout: 3000 };
/** Over one progress report (256 KiB): a first part reports progress, the rest completes. */
const DATA = bytes(300 * 1024, 21);
const DIGEST = sha256Hex(DATA);
const FIRST_PART = 16; // chunks: 256 KiB
const CHUNKS = Math.ceil(DATA.byteLength / CHUNK_SIZE);
const inert = fromCallback(() => {});
const rtcFailed = { type: 'rtc.failed', label: 'k', error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') };

type ModelEvent = { type: string; [key: string]: unknown };
const valueOf = (s: AnyMachineSnapshot) =>
  s.status === 'active' ? (s.value as { active: string }).active : (s.value as string);

function describeWith(names: Map<ModelEvent, string>) {
  return (path: StatePath<AnyMachineSnapshot, ModelEvent>) =>
    `reaches ${valueOf(path.state)} after ${path.steps
      .slice(1)
      .map((s) => names.get(s.event) ?? s.event.type)
      .join(' → ')}`;
}

/* ------------------------------------------------------------------------ */
/* registryFetch                                                             */
/* ------------------------------------------------------------------------ */

const F = {
  open: { type: 'rtc.open', label: 'k', transport: stubTransport },
  file: {
    type: 'channel.message',
    message: { type: 'File', detail: { path: 'x.bin', size: DATA.byteLength, sha256: DIGEST } },
  },
  otherSize: { type: 'channel.message', message: { type: 'File', detail: { path: 'x.bin', size: 5, sha256: DIGEST } } },
  otherDigest: {
    type: 'channel.message',
    message: { type: 'File', detail: { path: 'x.bin', size: DATA.byteLength, sha256: 'b'.repeat(64) } },
  },
  otherPath: {
    type: 'channel.message',
    message: { type: 'File', detail: { path: 'y.bin', size: DATA.byteLength, sha256: DIGEST } },
  },
  refusal: { type: 'channel.message', message: { type: 'Error', detail: { reason: 'outside-root', message: 'no' } } },
  garbage: { type: 'channel.invalid', message: 'frame is not valid JSON' },
  sinkOpen: { type: 'xstate.done.actor.openSink', actorId: 'openSink' },
  sinkFailed: { type: 'xstate.error.actor.openSink', actorId: 'openSink', error: new Error('disk full') },
  progress: { type: 'download.progress', received: FIRST_PART * CHUNK_SIZE },
  downloaded: { type: 'download.done', received: DATA.byteLength, sha256: DIGEST },
  badChunk: { type: 'download.failed', reason: 'protocol', message: 'chunk 9 arrived where 0 was due', received: 0 },
  peerGone: { type: 'peer.gone' },
  cancel: { type: 'cancel' },
  badSignal: { type: 'signal.invalid', message: 'Answer from P: `sdp` is empty' },
  rtcFailed,
  rtcClosed: { type: 'rtc.closed', label: 'k' },
  connectTimeout: { type: 'xstate.after.connectTimeout.registryFetch.active.connecting' },
  responseTimeout: { type: 'xstate.after.responseTimeout.registryFetch.active.requesting' },
} satisfies Record<string, ModelEvent>;
type FName = keyof typeof F;
const fName = new Map<ModelEvent, FName>(Object.entries(F).map(([n, e]) => [e, n as FName]));

/** Why each event fails a fetch (when it does). */
const fetchReasons: Partial<Record<FName, string>> = {
  otherSize: 'size-mismatch',
  otherDigest: 'digest-mismatch',
  otherPath: 'protocol',
  refusal: 'outside-root',
  garbage: 'protocol',
  sinkFailed: 'sink-failed',
  badChunk: 'protocol',
  peerGone: 'peer-gone',
  cancel: 'cancelled',
  badSignal: 'protocol',
  rtcFailed: 'rtc-failed',
  rtcClosed: 'peer-gone',
  connectTimeout: 'timeout',
  responseTimeout: 'timeout',
};

const fetchModel = registryFetch.provide({
  actors: { firstFrame: inert as never, openSink: inert as never, download: inert as never, keeper: inert as never },
  actions: { report: () => {}, sendRequest: () => {}, abortSink: () => {} },
});

function fetchEvents(s: AnyMachineSnapshot): ModelEvent[] {
  if (s.status !== 'active') return [];
  const common = [F.peerGone, F.cancel, F.badSignal, F.rtcFailed, F.rtcClosed];
  switch (valueOf(s)) {
    case 'connecting':
      return [F.open, F.connectTimeout, ...common];
    case 'requesting':
      return [F.file, F.otherSize, F.otherDigest, F.otherPath, F.refusal, F.garbage, F.responseTimeout, ...common];
    case 'openingSink':
      return [F.sinkOpen, F.sinkFailed, ...common];
    default: {
      const progressed = (s.context as FetchContext).received > 0;
      return [...(progressed ? [] : [F.progress]), F.downloaded, F.badChunk, ...common];
    }
  }
}

const fetchPlan = planPaths<ModelEvent>({
  model: fetchModel,
  machine: registryFetch,
  inputs: [
    {
      key: 'k',
      peer: 'P',
      path: 'x.bin',
      expected: { path: 'x.bin', size: DATA.byteLength, sha256: DIGEST },
      sink: memorySink(),
      ...TIMING,
    },
  ],
  events: fetchEvents,
  // `received` (progress before done or not) is the only context that matters.
  serializeState: (s) =>
    JSON.stringify([s.status, s.value, s.status === 'active' && (s.context as FetchContext).received > 0]),
  describe: describeWith(fName as Map<ModelEvent, string>),
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${fName.get(event)}`,
});

const fetchTracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'registryFetch');

function fetchWorld() {
  const clock = new SimulatedClock();
  const [local, remote] = memoryPair();
  const fromRequester: Array<string | Uint8Array> = [];
  remote.on('message', (frame) => fromRequester.push(frame));
  const sink = memorySink();
  const opening = deferred<MemorySink>();
  const reports: unknown[] = [];
  const logic = registryFetch.provide({ actions: { report: ({ event }) => void reports.push(event) } });
  const actor = createActor(logic, {
    clock,
    inspect: fetchTracker.inspect,
    input: {
      key: 'k',
      peer: 'P',
      path: 'x.bin',
      expected: { path: 'x.bin', size: DATA.byteLength, sha256: DIGEST },
      sink: () => opening.promise,
      ...TIMING,
    },
  });
  actor.start();
  return { clock, local, remote, fromRequester, sink, opening, reports, actor, sent: 0 };
}
type FetchWorld = ReturnType<typeof fetchWorld>;

const chunk = (seq: number) => encodeChunk(seq, DATA.subarray(seq * CHUNK_SIZE, (seq + 1) * CHUNK_SIZE));

async function fetchExec(w: FetchWorld, _prev: AnyMachineSnapshot, event: ModelEvent) {
  const name = fName.get(event)!;
  switch (name) {
    case 'open':
      w.actor.send({ type: 'rtc.open', label: 'k', transport: w.local });
      break;
    case 'file':
    case 'otherSize':
    case 'otherDigest':
    case 'otherPath':
    case 'refusal':
      w.remote.send(JSON.stringify(event.message));
      break;
    case 'garbage':
      w.remote.send('here it comes');
      break;
    case 'sinkOpen':
      w.opening.resolve(w.sink);
      break;
    case 'sinkFailed':
      w.opening.reject(new Error('disk full'));
      break;
    case 'progress':
      for (; w.sent < FIRST_PART; w.sent++) w.remote.send(chunk(w.sent));
      break;
    case 'downloaded':
      for (; w.sent < CHUNKS; w.sent++) w.remote.send(chunk(w.sent));
      break;
    case 'badChunk':
      w.remote.send(chunk(w.sent + 9));
      break;
    case 'connectTimeout':
      w.clock.increment(TIMING.connectTimeout);
      break;
    case 'responseTimeout':
      w.clock.increment(TIMING.responseTimeout);
      break;
    default:
      w.actor.send(event as never);
  }
  await settle(5);
}

async function fetchCheck(
  w: FetchWorld,
  prev: AnyMachineSnapshot | undefined,
  event: ModelEvent,
  next: AnyMachineSnapshot,
) {
  const real = w.actor.getSnapshot();
  fetchTracker.see(real);
  expect(real.status).toBe(next.status);
  expect(real.value).toEqual(next.value);
  const frames = w.fromRequester.splice(0);
  if (!prev) return;
  const name = fName.get(event)!;
  // The request goes out once the channel is open, and nothing else ever.
  expect(frames).toEqual(name === 'open' ? [JSON.stringify({ type: 'RequestFile', detail: { path: 'x.bin' } })] : []);
  if (name === 'progress')
    expect(w.reports).toEqual([{ type: 'download.progress', received: FIRST_PART * CHUNK_SIZE }]);
  w.reports.splice(0);
  if (next.status === 'active') {
    expect(real.context.error).toBeUndefined();
    return;
  }
  await settle();
  if (valueOf(next) === 'done') {
    expect(real.output).toEqual({ key: 'k', size: DATA.byteLength, sha256: DIGEST });
    expect(w.sink.state).toBe('closed');
    expect(sha256Hex(w.sink.bytes())).toBe(DIGEST);
    return;
  }
  expect(real.output!.error).toBeInstanceOf(RegistryError);
  expect(real.output!.error!.reason).toBe(fetchReasons[name]);
  // A sink that was opened is aborted: nothing half-written is kept.
  expect(w.sink.state).toBe(['openingSink', 'requesting', 'connecting'].includes(valueOf(prev)) ? 'open' : 'aborted');
}

describe('registry fetch, model-based (memory data channel, SimulatedClock)', () => {
  const ranAll = replayEach('the fetch', fetchPlan.paths, {
    start: fetchWorld,
    exec: fetchExec,
    check: fetchCheck,
    stop: (w) => void w.actor.stop(),
  });

  it('takes every state node and every transition of the fetch machine', () => {
    expectFullCoverage({
      label: 'registry fetch model',
      machine: registryFetch,
      plan: fetchPlan,
      tracker: fetchTracker,
      ranAll: ranAll(),
    });
  });
});

/* ------------------------------------------------------------------------ */
/* registryServe                                                             */
/* ------------------------------------------------------------------------ */

const ask = (path: string) => ({ type: 'channel.message', message: { type: 'RequestFile', detail: { path } } });
const S = {
  open: { type: 'rtc.open', label: 'k', transport: stubTransport },
  request: ask('x.bin'),
  unlisted: ask('secret.bin'),
  escape: ask('../x.bin'),
  notRequest: { type: 'channel.message', message: { type: 'Error', detail: { reason: 'protocol', message: 'hi' } } },
  garbage: { type: 'channel.invalid', message: 'frame is not valid JSON' },
  opened: { type: 'xstate.done.actor.openSource', actorId: 'openSource' },
  outside: {
    type: 'xstate.error.actor.openSource',
    actorId: 'openSource',
    error: new RegistryError('outside-root', 'x.bin resolves outside the shared directory'),
  },
  uploaded: { type: 'upload.done' },
  readFailed: { type: 'upload.failed', reason: 'source-failed', message: 'EIO' },
  channelGone: { type: 'upload.failed', reason: 'peer-gone', message: 'closed' },
  peerGone: { type: 'peer.gone' },
  cancel: { type: 'cancel' },
  badSignal: { type: 'signal.invalid', message: 'Candidate from P: `candidate` must be …' },
  rtcFailed,
  rtcClosed: { type: 'rtc.closed', label: 'k' },
  connectTimeout: { type: 'xstate.after.connectTimeout.registryServe.active.connecting' },
  responseTimeout: { type: 'xstate.after.responseTimeout.registryServe.active.awaitingRequest' },
  finishLinger: { type: 'xstate.after.lingerTimeout.registryServe.active.finishing' },
  refuseLinger: { type: 'xstate.after.lingerTimeout.registryServe.active.refusing' },
} satisfies Record<string, ModelEvent>;
type SName = keyof typeof S;
const sName = new Map<ModelEvent, SName>(Object.entries(S).map(([n, e]) => [e, n as SName]));

const serveModel = registryServe.provide({
  actors: { firstFrame: inert as never, openSource: inert as never, upload: inert as never, keeper: inert as never },
  actions: { sendHeader: () => {}, sendRefusal: () => {} },
});
const FILES = [{ path: 'x.bin', size: DATA.byteLength }];

function serveEvents(s: AnyMachineSnapshot): ModelEvent[] {
  if (s.status !== 'active') return [];
  const common = [S.peerGone, S.cancel, S.badSignal, S.rtcFailed, S.rtcClosed];
  switch (valueOf(s)) {
    case 'connecting':
      return [S.open, S.connectTimeout, ...common];
    case 'awaitingRequest':
      return [S.request, S.unlisted, S.escape, S.notRequest, S.garbage, S.responseTimeout, ...common];
    case 'opening':
      return [S.opened, S.outside, ...common];
    case 'sending':
      return [S.uploaded, S.readFailed, S.channelGone, ...common];
    case 'finishing':
      return [S.finishLinger, ...common];
    default:
      return [S.refuseLinger, ...common];
  }
}

const servePlan = planPaths<ModelEvent>({
  model: serveModel,
  machine: registryServe,
  inputs: [{ key: 'k', peer: 'P', provider: {} as FileProvider, files: FILES, ...TIMING }],
  events: serveEvents,
  serializeState: (s) => JSON.stringify([s.status, s.value, (s.context as ServeContext).refusal?.reason ?? null]),
  describe: describeWith(sName as Map<ModelEvent, string>),
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${sName.get(event)}`,
});

const serveTracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'registryServe');

function serveWorld() {
  const clock = new SimulatedClock();
  const [local, remote] = memoryPair();
  const fromHolder: Array<string | Uint8Array> = [];
  remote.on('message', (frame) => fromHolder.push(frame));
  const opening = deferred<FileSource>();
  const reading = deferred<void>();
  let closed = 0;
  const source: FileSource = {
    name: 'x.bin',
    size: DATA.byteLength,
    type: '',
    sha256: DIGEST,
    read: async (offset, length) => {
      await reading.promise;
      return DATA.slice(offset, offset + length);
    },
    close: () => void closed++,
  };
  const provider: FileProvider = { list: () => FILES, open: () => opening.promise };
  const actor = createActor(registryServe, {
    clock,
    inspect: serveTracker.inspect,
    input: { key: 'k', peer: 'P', provider, files: FILES, ...TIMING },
  });
  actor.start();
  return { clock, local, remote, fromHolder, opening, reading, source, actor, closed: () => closed };
}
type ServeWorld = ReturnType<typeof serveWorld>;

async function serveExec(w: ServeWorld, _prev: AnyMachineSnapshot, event: ModelEvent) {
  const name = sName.get(event)!;
  switch (name) {
    case 'open':
      w.actor.send({ type: 'rtc.open', label: 'k', transport: w.local });
      break;
    case 'request':
    case 'unlisted':
    case 'escape':
    case 'notRequest':
      w.remote.send(JSON.stringify(event.message));
      break;
    case 'garbage':
      w.remote.send(new Uint8Array([1, 2, 3]));
      break;
    case 'opened':
      w.opening.resolve(w.source);
      break;
    case 'outside':
      w.opening.reject(event.error);
      break;
    case 'uploaded':
      w.reading.resolve();
      break;
    case 'readFailed':
      w.reading.reject(new Error('EIO'));
      break;
    case 'channelGone':
      // The channel closes under the upload: its next send fails.
      w.local.close();
      w.reading.resolve();
      break;
    case 'connectTimeout':
      w.clock.increment(TIMING.connectTimeout);
      break;
    case 'responseTimeout':
      w.clock.increment(TIMING.responseTimeout);
      break;
    case 'finishLinger':
    case 'refuseLinger':
      w.clock.increment(TIMING.lingerTimeout);
      break;
    default:
      w.actor.send(event as never);
  }
  await settle(5);
}

const serveReasons: Partial<Record<SName, string>> = {
  readFailed: 'source-failed',
  channelGone: 'peer-gone',
  peerGone: 'peer-gone',
  cancel: 'cancelled',
  badSignal: 'protocol',
  rtcFailed: 'rtc-failed',
  rtcClosed: 'peer-gone',
  connectTimeout: 'timeout',
  responseTimeout: 'timeout',
};
const refusals: Partial<Record<SName, string>> = {
  unlisted: 'not-listed',
  escape: 'invalid-path',
  notRequest: 'protocol',
  garbage: 'protocol',
  outside: 'outside-root',
};

async function serveCheck(
  w: ServeWorld,
  prev: AnyMachineSnapshot | undefined,
  event: ModelEvent,
  next: AnyMachineSnapshot,
) {
  const real = w.actor.getSnapshot();
  serveTracker.see(real);
  expect(real.status).toBe(next.status);
  expect(real.value).toEqual(next.value);
  const frames = w.fromHolder.splice(0);
  if (!prev) return;
  const name = sName.get(event)!;
  const refusal = refusals[name];
  const texts = frames
    .filter((f): f is string => typeof f === 'string')
    .map((f) => JSON.parse(f) as { type: string; detail: Record<string, unknown> });
  const chunks = frames.filter((f) => typeof f !== 'string');
  if (refusal) {
    // A refused request gets one Error, and not one byte of any file.
    expect(texts).toEqual([{ type: 'Error', detail: { reason: refusal, message: expect.any(String) } }]);
    expect(chunks).toEqual([]);
  } else if (name === 'opened') {
    expect(texts).toEqual([{ type: 'File', detail: { path: 'x.bin', size: DATA.byteLength, sha256: DIGEST } }]);
  } else if (name === 'uploaded') {
    expect(texts).toEqual([]);
    expect(chunks).toHaveLength(CHUNKS);
  } else {
    expect(texts).toEqual([]);
  }
  if (next.status === 'active') return;
  const output = real.output!;
  if (valueOf(next) === 'done') {
    expect(output).toEqual({ key: 'k', path: 'x.bin' });
  } else {
    // A refusal ends with its own reason once the requester closed or the linger ran out.
    const reason =
      valueOf(prev) === 'refusing' && (name === 'rtcClosed' || name === 'refuseLinger')
        ? (prev.context as ServeContext).refusal!.reason
        : serveReasons[name];
    expect(output.error!.reason).toBe(reason);
  }
  // The source, once opened, is closed exactly once.
  await settle();
  expect(w.closed()).toBe(['sending', 'finishing'].includes(valueOf(prev)) ? 1 : 0);
}

describe('registry serve, model-based (memory data channel, SimulatedClock)', () => {
  const ranAll = replayEach('the holder', servePlan.paths, {
    start: serveWorld,
    exec: serveExec,
    check: serveCheck,
    stop: (w) => void w.actor.stop(),
  });

  it('takes every state node and every transition of the serve machine', () => {
    expectFullCoverage({
      label: 'registry serve model',
      machine: registryServe,
      plan: servePlan,
      tracker: serveTracker,
      ranAll: ranAll(),
    });
  });
});
