/**
 * Model-based test of the CloudLink host (`cloudlinkHost`).
 *
 * The model is the host machine itself (its effects only reach its child
 * actors, which the model replaces with inert ones); its events are what a
 * scripted server and scripted WebRTC connections can do to one host with
 * one peer, and the clock running out a handshake's deadline. Each path
 * @xstate/graph plans runs on a fresh real host whose `signalling` is a
 * memory transport to a server end the test writes raw frames to, whose `rtc`
 * actors report only what the path says, and whose clock is a SimulatedClock
 * the path advances. After every step the host's state, its link to the peer
 * (stage, generation, failures in a row), its rtc actors, the frames it sent
 * and the events it emitted are checked.
 *
 * Time: the watchdog's timeout (5 s) is shorter than the handshake's (7 s),
 * so "the watchdog fires" advances the clock 5 s and no handshake deadline
 * (always 7 s ahead at a step's start) is reached; "a handshake times out"
 * advances it 7 s while the server pings (KEEPALIVE every 4 s, answered), so
 * the watchdog never fires then. A deadline that is not pending (an earlier
 * handshake's, a ready link's) is sent to the host directly.
 */
import { describe, expect, it } from 'vitest';
import { fromCallback, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import type { ClientEmitted, UnlinkReason } from '../machines/cloudlink/client.js';
import { cloudlinkHost, type HostContext, type HostLink } from '../machines/cloudlink/host.machine.js';
import { Opcode, type OpcodeName } from '../machines/cloudlink/protocol.js';
import { ErrorCode } from '../src/errors.js';
import type { Transport } from '../src/transport.js';
import {
  clientWorld,
  coverageTracker,
  expectFullCoverage,
  nextFrame,
  playScripted,
  planPaths,
  replayEach,
  settle,
  stubTransport,
  type ScriptedStep,
  type WireFrame,
} from './model-helpers.js';

const HOST_ID = 'host-1';
const P = 'peer-1';
const OUT = `out:${P}`;
const IN = `in:${P}`;
const LOBBY = 'L';
const SERVER_TIMEOUT_MS = 5000;
/** Longer than the watchdog's timeout: the server's pings keep the host alive while a handshake runs out. */
const HANDSHAKE_TIMEOUT_MS = 7000;
/** How often the server pings while a handshake deadline runs out (under SERVER_TIMEOUT_MS). */
const PING_INTERVAL_MS = 4000;
/** KEEPALIVEs the server sends, and the host answers, while HANDSHAKE_TIMEOUT_MS pass. */
const PINGS = Math.ceil(HANDSHAKE_TIMEOUT_MS / PING_INTERVAL_MS);
/** Offers in a row to a peer whose links fail: a first one and one more. */
const OFFER_ATTEMPTS = 2;
/**
 * A link that reached `ready` forgets its failures, so failing it again
 * starts handshake after handshake: the generation has no bound. The model
 * stops at this one (a ready link of this generation is not made to fail or
 * be lost; the generations before it take those edges).
 */
const MAX_GENERATION = 3;
const INPUT = {
  lobby: LOBBY,
  serverTimeout: SERVER_TIMEOUT_MS,
  handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
  offerAttempts: OFFER_ATTEMPTS,
};
const AFTER_TIMEOUT = 'xstate.after.serverTimeout.cloudlinkHost.active.watchdog.watching';
const CRASH_PREFIX = 'xstate.error.actor.';
type Crash = `${typeof CRASH_PREFIX}${string}`;
/** The host's rtc actors of one handshake: the generation tells the attempts apart. */
const outId = (generation: number) => `${OUT}#${generation}`;
const inId = (generation: number) => `${IN}#${generation}`;
/**
 * HANDSHAKE_TIMEOUT_MS pass with no handshake deadline pending (no link, or a
 * ready one): nothing may happen. The machine has no transition for it.
 */
const WAIT = 'test.wait';

type ModelEvent =
  | { type: 'signalling.open' }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: 'signalling.error'; error: { message: string }; frame: string }
  | { type: 'leave' }
  | { type: typeof AFTER_TIMEOUT }
  | { type: typeof WAIT }
  | { type: 'link.timeout'; peer: string; generation: number }
  | { type: Crash; error: { message: string } }
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.open'; label: string; transport: Transport }
  | { type: 'rtc.failed'; label: string; error: { code: string; message: string } }
  | { type: 'rtc.closed'; label: string }
  | { type: OpcodeName; detail: { payload?: unknown; tx?: string } };

type ModelSnapshot = AnyMachineSnapshot & { context: HostContext };
type Stage = HostLink['stage'];

/** The host, with inert child actors: its effects are all messages to them, so it is its own model. */
const model = cloudlinkHost.provide({
  actors: { signalling: fromCallback(() => {}) as never, rtc: fromCallback(() => {}) as never },
});

const frame = (type: OpcodeName, detail: { payload?: unknown; tx?: string } = {}): ModelEvent => ({ type, detail });

const serverFrames: ModelEvent[] = [
  frame('INIT_OK', { payload: HOST_ID }),
  frame('ACK_HOST', { payload: LOBBY }),
  frame('NEW_PEER', { payload: P }),
  // The peer's offer in the browser's form, its answer as bare SDP: the host reads both.
  frame('RETURN_OFFER', { payload: { type: 'offer', sdp: 'peer-offer' }, tx: P }),
  frame('ANTICIPATE_ANSWER', { payload: 'peer-answer', tx: P }),
  frame('ACK_READY', { tx: P }),
  frame('SHUTDOWN_ACK', { tx: P }),
  frame('KEEPALIVE'),
  frame('VIOLATION', { payload: 'MAKE_OFFER: no such peer' }),
  // Meant for peers: a host ignores it.
  frame('ANTICIPATE_OFFER', { payload: 'stray-offer', tx: P }),
  { type: 'signalling.error', error: { message: 'frame is not valid JSON' }, frame: 'nope' },
  { type: 'signalling.closed', info: { code: 1001, reason: 'server closing', initiator: 'remote' } },
  { type: 'leave' },
];

const withIn: Stage[] = ['answering', 'awaitingAnswer', 'awaitingReady', 'ready'];
const isCrash = (event: ModelEvent): event is Extract<ModelEvent, { type: Crash }> =>
  event.type.startsWith(CRASH_PREFIX);

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { context, value } = snapshot as ModelSnapshot;
  const { protocol, watchdog } = (value as { active: { protocol: string; watchdog: string } }).active;
  if (protocol === 'connecting') {
    return [
      { type: 'signalling.open' },
      { type: 'signalling.closed', info: { code: 1006, reason: 'connection refused', initiator: 'remote' } },
      { type: 'leave' },
    ];
  }
  const events = [...serverFrames];
  if (watchdog === 'watching') events.push({ type: AFTER_TIMEOUT });
  const link = context.links[P];
  // Never reached: a bound on exploring a machine that offers again where it should not.
  if (link && link.generation > MAX_GENERATION) return [];
  if (link) {
    // A link that fails, is lost or times out is offered again: not past MAX_GENERATION.
    const mayEnd = link.generation < MAX_GENERATION || link.failures + 1 >= OFFER_ATTEMPTS;
    // The connection we offered lives as long as the link.
    if (link.stage === 'offering')
      events.push({ type: 'rtc.description', label: OUT, description: { type: 'offer', sdp: 'host-offer' } });
    // It opens once the peer's answer is applied.
    if (!link.out && (link.stage === 'awaitingReady' || link.stage === 'ready'))
      events.push({ type: 'rtc.open', label: OUT, transport: stubTransport });
    if (mayEnd) {
      if (link.out) events.push({ type: 'rtc.closed', label: OUT });
      events.push({ type: 'rtc.failed', label: OUT, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } });
    }
    events.push({ type: `${CRASH_PREFIX}${outId(link.generation)}`, error: { message: 'rtc crashed' } });
    // The connection we answer exists from RETURN_OFFER on.
    if (withIn.includes(link.stage)) {
      if (link.stage === 'answering')
        events.push({ type: 'rtc.description', label: IN, description: { type: 'answer', sdp: 'host-answer' } });
      // It opens once the peer has our answer.
      if (!link.in && (link.stage === 'awaitingAnswer' || link.stage === 'awaitingReady'))
        events.push({ type: 'rtc.open', label: IN, transport: stubTransport });
      if (mayEnd) {
        if (link.in) events.push({ type: 'rtc.closed', label: IN });
        events.push({ type: 'rtc.failed', label: IN, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } });
      }
    }
    // Until it is ready, the handshake's deadline is pending.
    if (link.stage !== 'ready' && mayEnd) events.push({ type: 'link.timeout', peer: P, generation: link.generation });
    // Deadlines that are not pending (cancelled, but say one slipped through): an earlier
    // handshake's, and a ready link's. The clock no longer holds them; they are sent directly.
    if (link.generation > 1) events.push({ type: 'link.timeout', peer: P, generation: link.generation - 1 });
    if (link.stage === 'ready') events.push({ type: 'link.timeout', peer: P, generation: link.generation });
  }
  // Time passes with no deadline pending.
  if (protocol === 'hosting' && (!link || link.stage === 'ready')) events.push({ type: WAIT });
  return events;
}

interface LinkSummary {
  stage: Stage;
  peerReady: boolean;
  generation: number;
  failures: number;
  out: boolean;
  in: boolean;
}

const linkSummary = (link: HostLink | undefined): LinkSummary | null =>
  link
    ? {
        stage: link.stage,
        peerReady: link.peerReady,
        generation: link.generation,
        failures: link.failures,
        out: !!link.out,
        in: !!link.in,
      }
    : null;

function serializeState(snapshot: AnyMachineSnapshot): string {
  if (snapshot.status !== 'active') return JSON.stringify(snapshot.value);
  return JSON.stringify([snapshot.value, linkSummary((snapshot as ModelSnapshot).context.links[P])]);
}

function formatEvent(event: ModelEvent): string {
  if (event.type === AFTER_TIMEOUT) return `${SERVER_TIMEOUT_MS} ms without KEEPALIVE`;
  if (event.type === WAIT) return `${HANDSHAKE_TIMEOUT_MS} ms pass`;
  if (event.type === 'link.timeout') return `deadline of handshake #${event.generation}`;
  if (isCrash(event)) return `rtc ${event.type.slice(CRASH_PREFIX.length)} crashes`;
  if (event.type === 'signalling.error') return `bad frame ${event.frame}`;
  if (event.type === 'signalling.closed') return event.info.reason;
  if ('label' in event) return `${event.type}(${event.label})`;
  return event.type;
}

function formatState(snapshot: AnyMachineSnapshot): string {
  if (snapshot.status !== 'active') return String(snapshot.value);
  const { protocol, watchdog } = (snapshot.value as { active: { protocol: string; watchdog: string } }).active;
  const link = linkSummary((snapshot as ModelSnapshot).context.links[P]);
  const open = link && [link.out && 'out', link.in && 'in'].filter(Boolean).join('+');
  const failures = link?.failures ? ` after ${link.failures} failure${link.failures > 1 ? 's' : ''}` : '';
  const linkText = link
    ? `, link #${link.generation}${failures} ${link.stage}${link.peerReady ? ' peer ready' : ''}${open ? ` ${open} open` : ''}`
    : '';
  return `${protocol}/${watchdog}${linkText}`;
}

function describePath(path: StatePath<AnyMachineSnapshot, ModelEvent>): string {
  const events = path.steps.slice(1).map((s) => formatEvent(s.event));
  return `reaches ${formatState(path.state)} after ${events.join(' → ') || 'starting'}`;
}

const plan = planPaths<ModelEvent>({
  model,
  machine: cloudlinkHost,
  inputs: [INPUT],
  events: modelEvents,
  serializeState,
  describe: describePath,
  // Every event at every stage of the link, in each control state.
  edgeClass: (from, event) => `${serializeState(from)} ${JSON.stringify(event)}`,
});

// ---------------------------------------------------------------------------
// The system under test.
// ---------------------------------------------------------------------------

const tracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'cloudlinkHost');

const world = () => clientWorld(cloudlinkHost, INPUT, tracker.inspect);

type World = ReturnType<typeof world>;

// ---------------------------------------------------------------------------
// The oracle: what the host must send and emit, from the model alone.
// ---------------------------------------------------------------------------

const f = (name: OpcodeName, fields: Omit<WireFrame, 'opcode'> = {}): WireFrame => ({
  opcode: Opcode[name],
  ...fields,
});
const protocolOf = (s: ModelSnapshot) => (s.value as { active: { protocol: string } }).active.protocol;

/** Why the link to P ends on `event`, if it does. */
function dropReason(prev: ModelSnapshot, event: ModelEvent): UnlinkReason | undefined {
  const link = prev.context.links[P];
  if (!link || protocolOf(prev) !== 'hosting') return undefined;
  switch (event.type) {
    case 'SHUTDOWN_ACK':
      return 'left';
    case 'rtc.failed':
      return 'failed';
    case 'rtc.closed':
      return 'lost';
    case 'link.timeout':
      // Only the deadline of the handshake under way counts, and only until it is ready.
      return event.generation === link.generation && link.stage !== 'ready' ? 'timeout' : undefined;
    default:
      return undefined;
  }
}

/** Whether `event` is the deadline the host has pending: the handshake under way's, until it is ready. */
const isPending = (prev: ModelSnapshot, event: ModelEvent) =>
  event.type === 'link.timeout' && !!dropReason(prev, event);

/** The deadline the host must have pending for `link`, as the scheduler holds it. */
const deadlineOf = (link: LinkSummary | null) =>
  link && link.stage !== 'ready'
    ? [
        {
          id: `link.timeout:${P}`,
          event: { type: 'link.timeout', peer: P, generation: link.generation },
          delay: HANDSHAKE_TIMEOUT_MS,
        },
      ]
    : [];

/** The host's pending handshake deadlines. */
const deadlines = (w: World) =>
  Object.values(w.actor.system.getSnapshot()._scheduledEvents)
    .filter((scheduled) => scheduled.source === w.actor && scheduled.event.type === 'link.timeout')
    .map(({ id, event, delay }) => ({ id, event, delay }));

/** A handshake begun: the `generation`-th with P, after `failures` links in a row that failed. */
const offering = (generation: number, failures: number): LinkSummary => ({
  stage: 'offering',
  peerReady: false,
  generation,
  failures,
  out: false,
  in: false,
});

/** The link to P after `event`, by the protocol (the handshake's steps, the deadline and the re-offers). */
function expectedLink(prev: ModelSnapshot, event: ModelEvent): LinkSummary | null {
  const link = linkSummary(prev.context.links[P]);
  if (protocolOf(prev) !== 'hosting') return link;
  const reason = dropReason(prev, event);
  if (reason) {
    // A peer that left is gone; any other end is offered again, a bounded number of times in a row.
    const failures = link!.failures + 1;
    return reason !== 'left' && failures < OFFER_ATTEMPTS ? offering(link!.generation + 1, failures) : null;
  }
  if (event.type === 'NEW_PEER') return link ?? offering(1, 0);
  if (!link) return null;
  const next = { ...link };
  switch (event.type) {
    case 'rtc.description':
      if (event.label === OUT && link.stage === 'offering') next.stage = 'awaitingReturnOffer';
      if (event.label === IN && link.stage === 'answering') next.stage = 'awaitingAnswer';
      break;
    case 'RETURN_OFFER':
      if (link.stage === 'awaitingReturnOffer') next.stage = 'answering';
      break;
    case 'ANTICIPATE_ANSWER':
      if (link.stage === 'awaitingAnswer') next.stage = 'awaitingReady';
      break;
    case 'ACK_READY':
      if (link.stage === 'awaitingReady') next.peerReady = true;
      break;
    case 'rtc.open':
      next[event.label === OUT ? 'out' : 'in'] = true;
      break;
  }
  // Ready once the peer said so and both channels are open: the failures are forgotten.
  if (next.stage === 'awaitingReady' && next.peerReady && next.out && next.in) {
    next.stage = 'ready';
    next.failures = 0;
  }
  return next;
}

/** The rtc actors of a link: the connection we offered, and from RETURN_OFFER on the one we answer. */
const rtcIdsOf = (link: LinkSummary | null) =>
  link ? [outId(link.generation), ...(withIn.includes(link.stage) ? [inId(link.generation)] : [])] : [];

function expectedFrames(prev: ModelSnapshot, event: ModelEvent): WireFrame[] {
  const link = prev.context.links[P];
  switch (event.type) {
    case 'signalling.open':
      return [f('INIT')];
    case 'INIT_OK':
      return protocolOf(prev) === 'initializing' ? [f('CONFIG_HOST', { payload: LOBBY })] : [];
    case 'KEEPALIVE':
      return [f('KEEPALIVE')];
    case WAIT:
      return Array.from({ length: PINGS }, () => f('KEEPALIVE'));
    case 'link.timeout':
      // The server's pings meanwhile, answered. A handshake that ran out tells the server nothing.
      return isPending(prev, event) ? Array.from({ length: PINGS }, () => f('KEEPALIVE')) : [];
    case 'rtc.description':
      if (event.label === OUT && link?.stage === 'offering')
        return [f('MAKE_OFFER', { payload: { type: 'offer', sdp: 'host-offer' }, rx: P })];
      if (event.label === IN && link?.stage === 'answering')
        return [f('MAKE_ANSWER', { payload: { type: 'answer', sdp: 'host-answer' }, rx: P })];
      return [];
    case 'ANTICIPATE_ANSWER':
      return link?.stage === 'awaitingAnswer' ? [f('ACK_CHECK', { rx: P })] : [];
    case 'rtc.failed':
    case 'rtc.closed':
      // The link died under us: the peer may have vanished. (A new offer waits for its description.)
      return link ? [f('SHUTDOWN_WRN', { rx: P })] : [];
    case 'leave':
      return protocolOf(prev) === 'connecting' ? [] : [f('SHUTDOWN')];
    default:
      return [];
  }
}

function expectedError(prev: ModelSnapshot, event: ModelEvent): string | undefined {
  if (isCrash(event)) return ErrorCode.RtcFailed; // errorFrom(): a crashed child other than `signalling`
  switch (event.type) {
    case 'VIOLATION':
      return ErrorCode.Violation;
    case 'signalling.error':
      return ErrorCode.MalformedFrame;
    case 'signalling.closed':
      return protocolOf(prev) === 'connecting' ? ErrorCode.ConnectFailed : ErrorCode.TransportClosed;
    case AFTER_TIMEOUT:
      return ErrorCode.KeepaliveTimeout;
    default:
      return undefined;
  }
}

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  const script = 'label' in event ? w.rtc.live.get(event.label) : undefined;
  if ('label' in event) expect(script, `the host has no rtc actor ${event.label}`).toBeDefined();
  if (isCrash(event)) {
    const id = event.type.slice(CRASH_PREFIX.length);
    const crashing = w.rtc.scripts.find((s) => s.id === id && !s.stopped);
    expect(crashing, `the host has no rtc actor ${id}`).toBeDefined();
    crashing!.crashing = true;
    w.actor.getSnapshot().children[id]!.send({ type: 'rtc.restartIce' });
    await settle();
    return;
  }
  switch (event.type) {
    case 'signalling.open':
      w.open();
      break;
    case 'signalling.closed':
      if (protocolOf(prev) === 'connecting') w.refuse(new Error('connection refused'));
      else w.server.transport.close(1001, 'server closing');
      break;
    case 'signalling.error':
      w.server.send(event.frame);
      break;
    case 'leave':
      w.actor.send({ type: 'leave' });
      break;
    case AFTER_TIMEOUT:
      w.clock.increment(SERVER_TIMEOUT_MS);
      break;
    case WAIT:
      expect(await w.elapse(HANDSHAKE_TIMEOUT_MS, PING_INTERVAL_MS)).toBe(PINGS);
      break;
    case 'link.timeout':
      // A pending deadline was set at the start of a step (no time passes in other steps): it runs out now.
      if (isPending(prev, event)) expect(await w.elapse(HANDSHAKE_TIMEOUT_MS, PING_INTERVAL_MS)).toBe(PINGS);
      else w.actor.send(event);
      break;
    default:
      playScripted(w, event as ScriptedStep);
  }
  await settle();
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.actor.getSnapshot() as ModelSnapshot;
  tracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);

  const sent = w.server.take();
  const emitted = w.emitted();
  if (!prev) {
    expect(sent).toEqual([]);
    expect(emitted).toEqual([]);
    return;
  }
  expect(sent).toEqual(expectedFrames(prev, event));

  const before = linkSummary(prev.context.links[P]);
  const reason = dropReason(prev, event);
  const after = expectedLink(prev, event);
  const want: Array<ClientEmitted['type']> = [];
  if (event.type === 'INIT_OK' && protocolOf(prev) === 'initializing') want.push('initialized');
  if (reason) want.push('unlinked');
  if (next.status === 'active' && after?.stage === 'ready' && before?.stage !== 'ready') want.push('linked');
  if (next.status === 'done') want.push('stopped');
  expect(emitted.map((e) => e.type)).toEqual(want);

  for (const e of emitted) {
    if (e.type === 'initialized') expect(e.detail).toEqual({ id: HOST_ID });
    if (e.type === 'unlinked') expect(e.detail).toEqual({ id: P, reason });
    if (e.type === 'linked') {
      // Ours goes out on the connection we offered; theirs comes in on the one we answered.
      expect(e.detail.id).toBe(P);
      const out = w.rtc.live.get(OUT)!.channel!.remote;
      const inbound = w.rtc.live.get(IN)!.channel!.remote;
      const got = nextFrame(out);
      e.detail.transport.send('to peer');
      expect(await got).toBe('to peer');
      const back = nextFrame(e.detail.transport);
      inbound.send('to host');
      expect(await back).toBe('to host');
    }
    if (e.type === 'stopped') expect(e.detail.error?.code).toBe(expectedError(prev, event));
  }

  if (next.status === 'done') {
    // Everything is let go: the signalling connection and every data channel.
    if (w.connected) expect(w.server.transport.isOpen).toBe(false);
    if (event.type === 'leave' && w.connected) expect(w.server.closed).toMatchObject({ code: 1000, reason: 'leaving' });
    for (const channel of w.channels) expect(channel.isOpen).toBe(false);
    // Every rtc actor is stopped, but one that crashed: XState does not run a
    // callback actor's cleanup after it threw.
    expect(w.rtc.scripts.filter((script) => !script.stopped && !script.crashing)).toEqual([]);
    expect(deadlines(w)).toEqual([]);
    return;
  }

  expect(real.context.id).toBe(next.context.id);
  const link = linkSummary(real.context.links[P]);
  expect(link).toEqual(after);
  expect(linkSummary(next.context.links[P])).toEqual(after);
  // A deadline runs while the handshake does: set when it begins, cancelled once ready or dropped.
  expect(deadlines(w)).toEqual(deadlineOf(after));
  // The rtc actors alive are exactly those of the handshake under way; earlier ones are stopped.
  const rtcIds = rtcIdsOf(after).sort();
  expect(Object.keys(real.children).sort()).toEqual(['signalling', ...rtcIds].sort());
  expect(Object.keys(next.children).sort()).toEqual(['signalling', ...rtcIds].sort());
  expect(
    w.rtc.scripts
      .filter((script) => !script.stopped)
      .map((script) => script.id)
      .sort(),
  ).toEqual(rtcIds);
  // What the host told them.
  if (after) {
    const out = w.rtc.live.get(OUT)!;
    expect(out.id).toBe(outId(after.generation));
    expect(out.input).toEqual({ label: OUT, role: 'offerer' });
    const answered = after.stage === 'awaitingReady' || after.stage === 'ready';
    expect(out.commands).toEqual(
      answered ? [{ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'peer-answer' } }] : [],
    );
    if (withIn.includes(after.stage)) {
      const inbound = w.rtc.live.get(IN)!;
      expect(inbound.id).toBe(inId(after.generation));
      expect(inbound.input).toEqual({
        label: IN,
        role: 'answerer',
        remoteOffer: 'peer-offer',
        lateAnswer: true,
      });
      // The peer's answer (ANTICIPATE_ANSWER) shows it has ours: the held candidates may go.
      expect(inbound.commands).toEqual(answered ? [{ type: 'rtc.releaseCandidates' }] : []);
    }
  }
  // A dropped link's channels are closed (a handshake begun again has none yet).
  if (reason) for (const channel of w.channels) expect(channel.isOpen).toBe(false);
}

describe('cloudlink host, model-based (scripted server and WebRTC, SimulatedClock)', () => {
  const ranAll = replayEach('the host', plan.paths, { start: world, exec, check, stop: (w) => void w.actor.stop() });

  it('takes every state node and every transition of the host machine', () => {
    expectFullCoverage({ label: 'host model', machine: cloudlinkHost, plan, tracker, ranAll: ranAll() });
  });
});
