/**
 * Model-based test of the CloudLink host (`cloudlinkHost`).
 *
 * The model is the host machine itself (its effects only reach its child
 * actors, which the model replaces with inert ones); its events are what a
 * scripted server and scripted WebRTC connections can do to one host with
 * one peer. Each path @xstate/graph plans runs on a fresh real host whose
 * `signalling` is a memory transport to a server end the test writes raw
 * frames to, and whose `rtc` actors report only what the path says. After
 * every step the host's state, its link to the peer, its rtc actors, the
 * frames it sent and the events it emitted are checked.
 */
import { describe, expect, it } from 'vitest';
import { fromCallback, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import type { ClientEmitted } from '../machines/cloudlink/client.js';
import { cloudlinkHost, type HostContext, type HostLink } from '../machines/cloudlink/host.machine.js';
import { Opcode, type OpcodeName } from '../machines/cloudlink/protocol.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import type { Transport } from '../src/transport.js';
import {
  clientWorld,
  coverageTracker,
  nextFrame,
  planPaths,
  replay,
  settle,
  stateNodeIds,
  stubTransport,
  transitionKeys,
  type WireFrame,
} from './model-helpers.js';

const HOST_ID = 'host-1';
const P = 'peer-1';
const OUT = `out:${P}`;
const IN = `in:${P}`;
const LOBBY = 'L';
const SERVER_TIMEOUT_MS = 5000;
const AFTER_TIMEOUT = 'xstate.after.serverTimeout.cloudlinkHost.active.watchdog.watching';
const CRASH = `xstate.error.actor.${OUT}`;

type ModelEvent =
  | { type: 'signalling.open' }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: 'signalling.error'; error: { message: string }; frame: string }
  | { type: 'leave' }
  | { type: typeof AFTER_TIMEOUT }
  | { type: typeof CRASH; error: { message: string } }
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.open'; label: string; transport: Transport }
  | { type: 'rtc.failed'; label: string; error: { code: string; message: string } }
  | { type: 'rtc.closed'; label: string }
  | { type: OpcodeName; detail: { payload?: string; tx?: string } };

type ModelSnapshot = AnyMachineSnapshot & { context: HostContext };
type Stage = HostLink['stage'];

/** The host, with inert child actors: its effects are all messages to them, so it is its own model. */
const model = cloudlinkHost.provide({
  actors: { signalling: fromCallback(() => {}) as never, rtc: fromCallback(() => {}) as never },
});

const frame = (type: OpcodeName, detail: { payload?: string; tx?: string } = {}): ModelEvent => ({ type, detail });

const serverFrames: ModelEvent[] = [
  frame('INIT_OK', { payload: HOST_ID }),
  frame('ACK_HOST', { payload: LOBBY }),
  frame('NEW_PEER', { payload: P }),
  frame('RETURN_OFFER', { payload: 'peer-offer', tx: P }),
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
  if (link) {
    // The connection we offered lives as long as the link.
    if (link.stage === 'offering')
      events.push({ type: 'rtc.description', label: OUT, description: { type: 'offer', sdp: 'host-offer' } });
    // It opens once the peer's answer is applied.
    if (!link.out && (link.stage === 'awaitingReady' || link.stage === 'ready'))
      events.push({ type: 'rtc.open', label: OUT, transport: stubTransport });
    if (link.out) events.push({ type: 'rtc.closed', label: OUT });
    events.push({ type: 'rtc.failed', label: OUT, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } });
    events.push({ type: CRASH, error: { message: 'rtc crashed' } });
    // The connection we answer exists from RETURN_OFFER on.
    if (withIn.includes(link.stage)) {
      if (link.stage === 'answering')
        events.push({ type: 'rtc.description', label: IN, description: { type: 'answer', sdp: 'host-answer' } });
      // It opens once the peer has our answer.
      if (!link.in && (link.stage === 'awaitingAnswer' || link.stage === 'awaitingReady'))
        events.push({ type: 'rtc.open', label: IN, transport: stubTransport });
      if (link.in) events.push({ type: 'rtc.closed', label: IN });
      events.push({ type: 'rtc.failed', label: IN, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } });
    }
  }
  return events;
}

const linkSummary = (link: HostLink | undefined) =>
  link ? { stage: link.stage, peerReady: link.peerReady, out: !!link.out, in: !!link.in } : null;

function serializeState(snapshot: AnyMachineSnapshot): string {
  if (snapshot.status !== 'active') return JSON.stringify(snapshot.value);
  return JSON.stringify([snapshot.value, linkSummary((snapshot as ModelSnapshot).context.links[P])]);
}

function formatEvent(event: ModelEvent): string {
  if (event.type === AFTER_TIMEOUT) return `${SERVER_TIMEOUT_MS} ms without KEEPALIVE`;
  if (event.type === CRASH) return `rtc ${OUT} crashes`;
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
  const linkText = link
    ? `, link ${link.stage}${link.peerReady ? ' peer ready' : ''}${open ? ` ${open} open` : ''}`
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
  inputs: [{ lobby: LOBBY, serverTimeout: SERVER_TIMEOUT_MS }],
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

const world = () => clientWorld(cloudlinkHost, { lobby: LOBBY, serverTimeout: SERVER_TIMEOUT_MS }, tracker.inspect);

type World = ReturnType<typeof world>;

// ---------------------------------------------------------------------------
// The oracle: what the host must send and emit, from the model alone.
// ---------------------------------------------------------------------------

const f = (name: OpcodeName, fields: Omit<WireFrame, 'opcode'> = {}): WireFrame => ({
  opcode: Opcode[name],
  ...fields,
});
const protocolOf = (s: ModelSnapshot) => (s.value as { active: { protocol: string } }).active.protocol;

function expectedFrames(prev: ModelSnapshot, event: ModelEvent): WireFrame[] {
  const link = prev.context.links[P];
  switch (event.type) {
    case 'signalling.open':
      return [f('INIT')];
    case 'INIT_OK':
      return protocolOf(prev) === 'initializing' ? [f('CONFIG_HOST', { payload: LOBBY })] : [];
    case 'KEEPALIVE':
      return [f('KEEPALIVE')];
    case 'rtc.description':
      if (event.label === OUT && link?.stage === 'offering') return [f('MAKE_OFFER', { payload: 'host-offer', rx: P })];
      if (event.label === IN && link?.stage === 'answering')
        return [f('MAKE_ANSWER', { payload: 'host-answer', rx: P })];
      return [];
    case 'ANTICIPATE_ANSWER':
      return link?.stage === 'awaitingAnswer' ? [f('ACK_CHECK', { rx: P })] : [];
    case 'rtc.failed':
    case 'rtc.closed':
      // The link died under us: the peer may have vanished.
      return link ? [f('SHUTDOWN_WRN', { rx: P })] : [];
    case 'leave':
      return protocolOf(prev) === 'connecting' ? [] : [f('SHUTDOWN')];
    default:
      return [];
  }
}

function expectedError(prev: ModelSnapshot, event: ModelEvent): string | undefined {
  switch (event.type) {
    case 'VIOLATION':
      return ErrorCode.Violation;
    case 'signalling.error':
      return ErrorCode.MalformedFrame;
    case 'signalling.closed':
      return protocolOf(prev) === 'connecting' ? ErrorCode.ConnectFailed : ErrorCode.TransportClosed;
    case AFTER_TIMEOUT:
      return ErrorCode.KeepaliveTimeout;
    case CRASH:
      return ErrorCode.ConnectFailed; // errorFrom() files an unknown actor error under ERR_CONNECT_FAILED
    default:
      return undefined;
  }
}

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  const script = 'label' in event ? w.rtc.live.get(event.label) : undefined;
  if ('label' in event) expect(script, `the host has no rtc actor ${event.label}`).toBeDefined();
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
    case CRASH: {
      const child = w.actor.getSnapshot().children[OUT];
      w.rtc.live.get(OUT)!.crashing = true;
      child!.send({ type: 'rtc.restartIce' });
      break;
    }
    case 'rtc.description':
      script!.emit({ type: 'rtc.description', label: event.label, description: event.description });
      break;
    case 'rtc.open':
      w.channels.push(w.rtc.open(event.label));
      break;
    case 'rtc.failed':
      script!.emit({ type: 'rtc.failed', label: event.label, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') });
      break;
    case 'rtc.closed':
      script!.channel!.remote.close();
      script!.emit({ type: 'rtc.closed', label: event.label });
      break;
    default: {
      const { payload, tx } = (event as { detail: { payload?: string; tx?: string } }).detail;
      w.server.send({ opcode: Opcode[event.type as OpcodeName], payload, tx });
    }
  }
  await settle();
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.actor.getSnapshot() as ModelSnapshot;
  tracker.see(real);
  expect(real.value).toEqual(next.value);
  expect(real.status).toBe(next.status);
  if (next.status === 'active') {
    expect(Object.keys(real.children).sort()).toEqual(Object.keys(next.children).sort());
    // The scripted rtc actors alive are exactly the host's rtc children.
    expect([...w.rtc.live.keys()].sort()).toEqual(
      Object.keys(next.children)
        .filter((id) => id !== 'signalling')
        .sort(),
    );
  }

  const sent = w.server.take();
  const emitted = w.emitted();
  if (!prev) {
    expect(sent).toEqual([]);
    expect(emitted).toEqual([]);
    return;
  }
  expect(sent).toEqual(expectedFrames(prev, event));

  const before = prev.context.links[P];
  // A final model state stands for every way of getting there: only its value counts.
  const after = next.status === 'active' ? next.context.links[P] : undefined;
  const want: Array<ClientEmitted['type']> = [];
  if (event.type === 'INIT_OK' && protocolOf(prev) === 'initializing') want.push('initialized');
  if (next.status === 'active' && before && !after) want.push('unlinked');
  if (after?.stage === 'ready' && before?.stage !== 'ready') want.push('linked');
  if (next.status === 'done') want.push('stopped');
  expect(emitted.map((e) => e.type)).toEqual(want);

  for (const e of emitted) {
    if (e.type === 'initialized') expect(e.detail).toEqual({ id: HOST_ID });
    if (e.type === 'unlinked') {
      const reason = event.type === 'SHUTDOWN_ACK' ? 'left' : event.type === 'rtc.failed' ? 'failed' : 'lost';
      expect(e.detail).toEqual({ id: P, reason });
    }
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
    expect([...w.rtc.live.values()].filter((script) => !script.crashing)).toEqual([]);
    return;
  }

  expect(real.context.id).toBe(next.context.id);
  expect(linkSummary(real.context.links[P])).toEqual(linkSummary(after));
  // What the host told its rtc actors.
  const out = w.rtc.live.get(OUT);
  if (out) {
    expect(out.input).toEqual({ label: OUT, role: 'offerer' });
    const answered = after!.stage === 'awaitingReady' || after!.stage === 'ready';
    expect(out.commands).toEqual(
      answered ? [{ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'peer-answer' } }] : [],
    );
  }
  const inbound = w.rtc.live.get(IN);
  if (inbound) {
    expect(inbound.input).toEqual({ label: IN, role: 'answerer', remoteOffer: 'peer-offer' });
    expect(inbound.commands).toEqual([]);
  }
  // A dropped link's channels are closed.
  if (before && !after) for (const channel of w.channels) expect(channel.isOpen).toBe(false);
}

describe('cloudlink host, model-based (scripted server and WebRTC, SimulatedClock)', () => {
  let ran = 0;

  for (const path of plan.paths) {
    it(`the host ${path.description}`, async () => {
      await replay(path, {
        start: world,
        exec: (w, prev, event) => exec(w, prev as ModelSnapshot, event),
        check: (w, prev, event, next) => check(w, prev as ModelSnapshot | undefined, event, next as ModelSnapshot),
        stop: (w) => void w.actor.stop(),
      });
      ran++;
    });
  }

  it('takes every state node and every transition of the host machine', () => {
    const states = stateNodeIds(cloudlinkHost);
    const transitions = [...new Set(transitionKeys(cloudlinkHost))];
    expect(plan.unplanned).toEqual([]);
    expect([...plan.planned.states].sort()).toEqual([...states].sort());
    expect(transitions.filter((t) => !plan.planned.transitions.has(t))).toEqual([]);
    if (ran < plan.paths.length) return; // a filtered run: not every path ran
    expect([...tracker.visited.states].sort()).toEqual([...states].sort());
    expect(transitions.filter((t) => !tracker.visited.transitions.has(t))).toEqual([]);
    console.info(
      `host model: ${plan.size.states} states, ${plan.size.edges} edges, ${plan.paths.length} paths; ` +
        `${tracker.visited.states.size}/${states.length} state nodes, ` +
        `${transitions.filter((t) => tracker.visited.transitions.has(t)).length}/${transitions.length} transitions`,
    );
  });
});
