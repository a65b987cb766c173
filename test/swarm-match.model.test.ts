/**
 * Model-based test of one matchmaking request (`swarmMatch`): both roles
 * (alice offers, bob answers), every way a match fails before its data
 * channel opens (the other side left, the server gave up or refused,
 * WebRTC failed or its actor crashed), and the link's connection ending
 * after it opened.
 *
 * The model is the machine itself with its `rtc` child replaced by nothing
 * and its reports to the peer stubbed. Every planned path is replayed on a
 * real match, invoked by a small parent that stands in for the peer and
 * records what the match reports, with a scripted `rtc` actor; after each
 * step the match's state, every report (the messages for the server
 * included), the rtc actor's input, commands and whether it was stopped, a
 * stray data channel's close, and the output are checked.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, setup, type AnyActorRef, type AnyMachineSnapshot, type EventObject } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { swarmMatch, type MatchContext, type MatchOutput, type MatchReport } from '../machines/swarm/match.machine.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import type { Transport } from '../src/transport.js';
import {
  coverageTracker,
  expectFullCoverage,
  planPaths,
  replayEach,
  scriptedRtc,
  settle,
  stubTransport,
  type RtcScript,
} from './model-helpers.js';

const C = '7';
const OFFER = 'v=0 remote-offer';
const ANSWER = 'v=0 remote-answer';
const MY_OFFER = 'v=0 my-offer';
const MY_ANSWER = 'v=0 my-answer';

type ServerError = 'ERR_PEER_GONE' | 'ERR_TIMEOUT' | 'ERR_NOT_PERMITTED';
const serverErrors: Record<ServerError, { message: string; reason: string }> = {
  ERR_PEER_GONE: { message: 'the other side left', reason: 'peer-gone' },
  ERR_TIMEOUT: { message: 'the match was not answered within 30000 ms', reason: 'timeout' },
  ERR_NOT_PERMITTED: { message: 'at most 16 requests may wait at once', reason: 'protocol' },
};

type ModelEvent =
  | { type: 'requesting_offer' | 'wait_for_offer'; detail: { context_id: string } }
  | { type: 'forwarding_offer'; detail: { offer: unknown; context_id: string } }
  | { type: 'forwarding_answer'; detail: { answer: unknown; context_id: string } }
  | { type: 'error'; detail: { code: ServerError; message: string; context_id: string } }
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.open'; label: string; transport: Transport }
  | { type: 'rtc.failed'; label: string; error: RtcError }
  | { type: 'rtc.closed'; label: string }
  | { type: 'xstate.error.actor.rtc'; error: Error };

type ModelSnapshot = Omit<AnyMachineSnapshot, 'context'> & { context: MatchContext };

const model = swarmMatch.provide({
  actions: { report: () => {} },
  actors: { rtc: fromCallback(() => {}) as never },
});

const rtcFailed = new RtcError(ErrorCode.RtcFailed, 'ICE failed');
const crash = new Error(`rtc ${C} crashed (simulated)`);

const serverEvents: ModelEvent[] = [
  { type: 'requesting_offer', detail: { context_id: C } },
  { type: 'wait_for_offer', detail: { context_id: C } },
  { type: 'forwarding_offer', detail: { offer: OFFER, context_id: C } },
  { type: 'forwarding_answer', detail: { answer: { type: 'answer', sdp: ANSWER }, context_id: C } },
  // What another client may send that no match can read: it ends the match, naming the field.
  { type: 'forwarding_offer', detail: { offer: { type: 'answer', sdp: OFFER }, context_id: C } },
  { type: 'forwarding_answer', detail: { answer: 42, context_id: C } },
  ...(Object.keys(serverErrors) as ServerError[]).map((code): ModelEvent => ({
    type: 'error',
    detail: { code, message: serverErrors[code].message, context_id: C },
  })),
];

/** The server may send anything at any time (the match ignores what is out of turn); the rtc actor speaks only while it runs. */
function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const events = [...serverEvents];
  if (!snapshot.matches('connection')) return events;
  if (snapshot.matches({ connection: { negotiating: 'offering' } })) {
    events.push({ type: 'rtc.description', label: C, description: { type: 'offer', sdp: MY_OFFER } });
  }
  if (snapshot.matches({ connection: { negotiating: 'answering' } })) {
    events.push({ type: 'rtc.description', label: C, description: { type: 'answer', sdp: MY_ANSWER } });
  }
  // It reports open once; a channel that opens before the answer was applied is refused (closed).
  if (snapshot.matches({ connection: 'negotiating' })) {
    events.push({ type: 'rtc.open', label: C, transport: stubTransport });
  } else events.push({ type: 'rtc.closed', label: C });
  events.push({ type: 'rtc.failed', label: C, error: rtcFailed }, { type: 'xstate.error.actor.rtc', error: crash });
  return events;
}

function serializeState(snapshot: AnyMachineSnapshot): string {
  const { context } = snapshot as ModelSnapshot;
  return JSON.stringify([
    snapshot.status,
    snapshot.value,
    context.role ?? null,
    context.offer ?? null,
    context.transport ? 'transport' : null,
    context.error ? [context.error.reason, context.error.code] : null,
  ]);
}

/** An offer or answer that cannot be read (`{ type: 'answer' }` as an offer, a number). */
const isUnreadable = (event: ModelEvent) =>
  (event.type === 'forwarding_offer' && typeof event.detail.offer !== 'string') ||
  (event.type === 'forwarding_answer' && typeof event.detail.answer !== 'object');

/** The event as the protocol's stages tell them apart. */
const stageEvent = (event: ModelEvent) => (isUnreadable(event) ? `${event.type} (unreadable)` : event.type);

function formatEvent(event: ModelEvent): string {
  if (isUnreadable(event)) return stageEvent(event);
  switch (event.type) {
    case 'error':
      return `server: ${event.detail.code}`;
    case 'rtc.description':
      return `rtc ${event.description.type}`;
    case 'xstate.error.actor.rtc':
      return 'rtc crashes';
    default:
      return event.type;
  }
}

const plan = planPaths<ModelEvent>({
  model,
  machine: swarmMatch,
  inputs: [{ context_id: C }],
  events: modelEvents,
  serializeState,
  describe: (path: StatePath<AnyMachineSnapshot, ModelEvent>) =>
    `${
      path.steps
        .slice(1)
        .map((s) => formatEvent(s.event))
        .join(' → ') || 'start'
    } ⇒ ${JSON.stringify(path.state.value)}`,
  // Every event in every state: what each ignores is checked too.
  edgeClass: (from, event) => `${JSON.stringify(from.value)} ${formatEvent(event)}`,
});

// ---------------------------------------------------------------------------

const MATCH_ID = `match:${C}`;
const tracker = coverageTracker((actor) => actor.id === MATCH_ID);

/** A real match invoked by a parent that stands in for the peer, with a scripted rtc actor. */
function world() {
  const rtc = scriptedRtc();
  const reports: MatchReport[] = [];
  const outputs: MatchOutput[] = [];
  const parent = setup({
    actors: { match: swarmMatch.provide({ actors: { rtc: rtc.logic } }) },
  }).createMachine({
    invoke: {
      id: MATCH_ID,
      src: 'match',
      input: { context_id: C },
      onDone: { actions: ({ event }) => outputs.push(event.output) },
    },
    on: { '*': { actions: ({ event }) => reports.push(event as unknown as MatchReport) } },
  });
  const actor = createActor(parent, { inspect: tracker.inspect }).start();
  let read = 0;
  let commandsRead = 0;
  const w = {
    rtc,
    reports,
    outputs,
    actor,
    match: () => actor.getSnapshot().children[MATCH_ID] as AnyActorRef,
    script: (): RtcScript | undefined => rtc.scripts[0],
    /** Reports since the last call. */
    take: () => reports.slice(read, (read = reports.length)),
    /** Commands the rtc actor got since the last call. */
    commands: () => {
      const all = w.script()?.commands ?? [];
      return all.slice(commandsRead, (commandsRead = all.length));
    },
    /** The local end of the channel the scripted rtc reported open last. */
    channel: undefined as Transport | undefined,
  };
  return w;
}
type World = ReturnType<typeof world>;

async function exec(w: World, _prev: ModelSnapshot, event: ModelEvent) {
  const script = w.script()!;
  switch (event.type) {
    case 'rtc.description':
      script.emit({ type: 'rtc.description', label: C, description: event.description });
      break;
    case 'rtc.open':
      w.rtc.open(C);
      w.channel = script.channel!.local;
      break;
    case 'rtc.failed':
      script.emit({ type: 'rtc.failed', label: C, error: rtcFailed });
      break;
    case 'rtc.closed':
      script.channel!.remote.close();
      script.emit({ type: 'rtc.closed', label: C });
      break;
    case 'xstate.error.actor.rtc':
      // The next command the actor gets throws: it fails, and its parent hears of it.
      script.crashing = true;
      (w.match().getSnapshot().children.rtc as AnyActorRef).send({ type: 'rtc.restartIce' });
      break;
    default:
      w.match().send(event as EventObject);
  }
  await settle();
}

/**
 * The stages as the protocol has them, written apart from the machine (which is also the model): from a
 * stage, an event leads to the stage named here, and every other event leaves the stage as it is.
 */
const beforeLink = { error: 'failed', 'rtc.failed': 'failed', 'xstate.error.actor.rtc': 'failed' };
const STAGES: Record<string, Record<string, string>> = {
  pending: { requesting_offer: 'offering', wait_for_offer: 'awaitingOffer', error: 'failed' },
  awaitingOffer: { forwarding_offer: 'answering', 'forwarding_offer (unreadable)': 'failed', error: 'failed' },
  offering: { 'rtc.description': 'awaitingAnswer', ...beforeLink },
  awaitingAnswer: { forwarding_answer: 'connecting', 'forwarding_answer (unreadable)': 'failed', ...beforeLink },
  answering: { 'rtc.description': 'connecting', ...beforeLink },
  connecting: { 'rtc.open': 'linked', ...beforeLink },
  linked: {},
};
const stageOf = (snapshot: AnyMachineSnapshot): string => {
  if (snapshot.status === 'done') return 'failed';
  let value: unknown = snapshot.value;
  while (typeof value === 'object' && value !== null) value = Object.values(value)[0];
  return value as string;
};

const signal = (type: string, detail: Record<string, unknown>) => ({
  type: 'match.signal',
  message: { type, detail },
});

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.match().getSnapshot() as ModelSnapshot;
  tracker.see(real as unknown as AnyMachineSnapshot);
  const stage = stageOf(next as unknown as AnyMachineSnapshot);
  if (!prev) expect(stage).toBe('pending');
  else {
    const from = stageOf(prev as unknown as AnyMachineSnapshot);
    expect(stage).toBe(STAGES[from]![stageEvent(event)] ?? from);
  }
  expect(real.status).toBe(next.status);
  expect(real.value).toEqual(next.value);
  expect(real.context.role).toBe(next.context.role);
  expect(real.context.error?.reason).toBe(next.context.error?.reason);
  expect(real.context.error?.code).toBe(next.context.error?.code);

  // What the match told its peer.
  const want: unknown[] = [];
  const from = (state: object | string) => prev?.matches(state as never) === true;
  if (!prev) want.push(signal('requesting_peers', { context_id: C }));
  else if (from('pending') && (event.type === 'requesting_offer' || event.type === 'wait_for_offer')) {
    want.push({ type: 'match.matched', context_id: C, role: event.type === 'requesting_offer' ? 'alice' : 'bob' });
  } else if (event.type === 'rtc.description' && from({ connection: { negotiating: 'offering' } })) {
    // The browser's form: `{ type, sdp }`.
    want.push(signal('sending_offer', { offer: { type: 'offer', sdp: MY_OFFER }, context_id: C }));
  } else if (event.type === 'rtc.description' && from({ connection: { negotiating: 'answering' } })) {
    want.push(signal('sending_answer', { answer: { type: 'answer', sdp: MY_ANSWER }, context_id: C }));
  } else if (event.type === 'rtc.open' && from({ connection: { negotiating: 'connecting' } })) {
    want.push({ type: 'match.linked', context_id: C, role: next.context.role, transport: w.channel });
  } else if (from({ connection: 'linked' }) && event.type === 'rtc.closed') {
    want.push({ type: 'match.unlinked', context_id: C, reason: 'closed' });
  } else if (
    from({ connection: 'linked' }) &&
    (event.type === 'rtc.failed' || event.type === 'xstate.error.actor.rtc')
  ) {
    want.push({ type: 'match.unlinked', context_id: C, reason: 'failed' });
  }
  expect(w.take()).toEqual(want);

  // Its rtc actor: started on entering `connection` (alice offers, bob answers the offer he got), stopped with the match.
  const script = w.script();
  if (next.matches('connection') || (prev?.matches('connection') ?? false)) {
    expect(w.rtc.scripts).toHaveLength(1);
    expect(script!.input).toEqual(
      next.context.role === 'alice'
        ? { label: C, role: 'offerer' }
        : { label: C, role: 'answerer', remoteOffer: OFFER },
    );
    // (A crashed actor is dead already: nothing left to stop.)
    if (!script!.crashing) expect(script!.stopped).toBe(next.status === 'done');
  } else expect(w.rtc.scripts).toHaveLength(0);
  expect(w.commands()).toEqual(
    event.type === 'forwarding_answer' &&
      !isUnreadable(event) &&
      from({ connection: { negotiating: 'awaitingAnswer' } })
      ? [{ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: ANSWER } }]
      : [],
  );
  // A channel that opened out of turn is closed; the one that makes the link stays open while linked.
  if (event.type === 'rtc.open') {
    expect(w.channel!.isOpen).toBe(next.matches({ connection: 'linked' }));
  }

  // The output, once failed: the error the model ended with.
  if (next.status === 'done') {
    expect(w.outputs).toHaveLength(1);
    expect(w.outputs[0]).toMatchObject({
      context_id: C,
      error: { name: 'SwarmError', reason: next.context.error!.reason, code: next.context.error!.code },
    });
  } else expect(w.outputs).toEqual([]);
}

describe('swarm match, model-based (scripted WebRTC, a parent for the peer)', () => {
  const ranAll = replayEach('the match:', plan.paths, { start: world, exec, check, stop: (w) => void w.actor.stop() });

  it('takes every state node and every transition of the match', () => {
    expectFullCoverage({ label: 'match model', machine: swarmMatch, plan, tracker, ranAll: ranAll() });
  });
});
