/**
 * Model-based test of the CloudLink peer (`cloudlinkPeer`).
 *
 * The model is the peer machine itself with inert child actors; its events
 * are what a scripted server (one host that offers, and a second host that
 * only gets in the way), scripted WebRTC connections and the clock (the
 * handshake's deadline) can do to one peer. Each path @xstate/graph plans
 * runs on a fresh real peer whose `signalling` is a memory transport to a
 * server end the test writes raw frames to, whose `rtc` actors report only
 * what the path says, and whose clock is a SimulatedClock the path advances.
 * After every step the peer's state, its context, its rtc actors, the frames
 * it sent and the events it emitted are checked.
 *
 * Time: the watchdog's timeout (5 s) is shorter than the handshake's (7 s),
 * so "the watchdog fires" advances the clock 5 s and no handshake deadline
 * (always 7 s ahead at a step's start) is reached; "the handshake times out"
 * advances it 7 s while the server pings (KEEPALIVE every 4 s, answered), so
 * the watchdog never fires then.
 */
import { describe, expect, it } from 'vitest';
import { fromCallback, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { inLabel, outLabel, type ClientEmitted, type UnlinkReason } from '../machines/cloudlink/client.js';
import { cloudlinkPeer, type PeerContext } from '../machines/cloudlink/peer.machine.js';
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

const PEER_ID = 'peer-1';
/** The host that offers. */
const H = 'host-1';
/** Another host of the lobby, whose messages arrive while we are busy with H. */
const O = 'host-2';
const LOBBY = 'L';
const SERVER_TIMEOUT_MS = 5000;
/** Longer than the watchdog's timeout: the server's pings keep the peer alive while a handshake runs out. */
const HANDSHAKE_TIMEOUT_MS = 7000;
/** How often the server pings while a handshake deadline runs out (under SERVER_TIMEOUT_MS). */
const PING_INTERVAL_MS = 4000;
/** KEEPALIVEs the server sends, and the peer answers, while HANDSHAKE_TIMEOUT_MS pass. */
const PINGS = Math.ceil(HANDSHAKE_TIMEOUT_MS / PING_INTERVAL_MS);
const INPUT = { lobby: LOBBY, serverTimeout: SERVER_TIMEOUT_MS, handshakeTimeout: HANDSHAKE_TIMEOUT_MS };
const AFTER_TIMEOUT = 'xstate.after.serverTimeout.cloudlinkPeer.active.watchdog.watching';
const CRASH = 'xstate.error.actor.rtcOut';
/**
 * HANDSHAKE_TIMEOUT_MS pass with no handshake deadline pending (in the lobby,
 * or linked): nothing may happen. The machine has no transition for it.
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
  | { type: typeof CRASH; error: { message: string } }
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.open'; label: string; transport: Transport }
  | { type: 'rtc.failed'; label: string; error: { code: string; message: string } }
  | { type: 'rtc.closed'; label: string }
  | { type: OpcodeName; detail: { payload?: unknown; tx?: string } };

type ModelSnapshot = AnyMachineSnapshot & { context: PeerContext };

/** The peer, with inert child actors: its effects are all messages to them, so it is its own model. */
const model = cloudlinkPeer.provide({
  actors: { signalling: fromCallback(() => {}) as never, rtc: fromCallback(() => {}) as never },
});

const frame = (type: OpcodeName, detail: { payload?: unknown; tx?: string } = {}): ModelEvent => ({ type, detail });

const serverFrames: ModelEvent[] = [
  frame('INIT_OK', { payload: PEER_ID }),
  frame('ACK_PEER', { payload: LOBBY }),
  ...[H, O].flatMap((host) => [
    frame('NEW_HOST', { payload: host }),
    frame('SHUTDOWN_ACK', { tx: host }),
    // Answers in the browser's form, offers as bare SDP: the peer reads both.
    frame('ANTICIPATE_ANSWER', { payload: { type: 'answer', sdp: `${host}-answer` }, tx: host }),
    frame('ACK_CHECK', { tx: host }),
  ]),
  frame('ANTICIPATE_OFFER', { payload: `${H}-offer`, tx: H }),
  frame('KEEPALIVE'),
  frame('VIOLATION', { payload: 'ACCEPT_OFFER: no offer' }),
  // Meant for hosts: a peer ignores it.
  frame('RETURN_OFFER', { payload: 'stray-offer', tx: H }),
  { type: 'signalling.error', error: { message: 'frame is not valid JSON' }, frame: 'nope' },
  { type: 'signalling.closed', info: { code: 1001, reason: 'server closing', initiator: 'remote' } },
  { type: 'leave' },
];

const valueOf = (s: AnyMachineSnapshot) =>
  (s.value as { active?: { protocol: string | { linking: string }; watchdog: string } }).active;
/** `lobby`, `linking.offering`, … */
function protocolOf(s: AnyMachineSnapshot): string {
  const protocol = valueOf(s)?.protocol;
  if (protocol === undefined) return String(s.value);
  return typeof protocol === 'string' ? protocol : `linking.${protocol.linking}`;
}
const linkingOf = (s: AnyMachineSnapshot) => {
  const p = protocolOf(s);
  return p.startsWith('linking.') ? p.slice('linking.'.length) : undefined;
};

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const { context } = snapshot as ModelSnapshot;
  const protocol = protocolOf(snapshot);
  if (protocol === 'connecting') {
    return [
      { type: 'signalling.open' },
      { type: 'signalling.closed', info: { code: 1006, reason: 'connection refused', initiator: 'remote' } },
      { type: 'leave' },
    ];
  }
  const events = [...serverFrames];
  if (valueOf(snapshot)!.watchdog === 'watching') events.push({ type: AFTER_TIMEOUT });
  const linking = linkingOf(snapshot);
  // The handshake's deadline is pending from the offer until linked; otherwise time passes quietly.
  if (linking && linking !== 'linked') events.push({ type: 'link.timeout', peer: context.host!, generation: 0 });
  if (protocol === 'lobby' || linking === 'linked') events.push({ type: WAIT });
  if (linking) {
    const host = context.host!;
    const [OUT, IN] = [outLabel(host), inLabel(host)];
    // A second offer while we are busy.
    events.push(frame('ANTICIPATE_OFFER', { payload: `${O}-offer`, tx: O }));
    // Each connection reports its description once.
    if (linking === 'offering')
      events.push({ type: 'rtc.description', label: OUT, description: { type: 'offer', sdp: 'peer-offer' } });
    if (context.pendingAnswer === undefined)
      events.push({ type: 'rtc.description', label: IN, description: { type: 'answer', sdp: 'peer-answer' } });
    // Ours opens once the host's answer is applied; theirs once the host has our answer.
    if (!context.out && linking !== 'offering' && linking !== 'awaitingAnswer')
      events.push({ type: 'rtc.open', label: OUT, transport: stubTransport });
    if (!context.in && ['awaitingCheck', 'awaitingChannels'].includes(linking))
      events.push({ type: 'rtc.open', label: IN, transport: stubTransport });
    if (context.out) events.push({ type: 'rtc.closed', label: OUT });
    if (context.in) events.push({ type: 'rtc.closed', label: IN });
    for (const label of [OUT, IN])
      events.push({ type: 'rtc.failed', label, error: { code: ErrorCode.RtcFailed, message: 'ICE failed' } });
    events.push({ type: CRASH, error: { message: 'rtc crashed' } });
  }
  return events;
}

const summary = (context: PeerContext) => ({
  hosts: [...context.hosts].sort(),
  host: context.host ?? null,
  remoteOffer: context.remoteOffer ?? null,
  pendingAnswer: context.pendingAnswer ?? null,
  out: !!context.out,
  in: !!context.in,
});

function serializeState(snapshot: AnyMachineSnapshot): string {
  if (snapshot.status !== 'active') return JSON.stringify(snapshot.value);
  return JSON.stringify([snapshot.value, summary((snapshot as ModelSnapshot).context)]);
}

/** How an event relates to the model state, without naming hosts: for coverage classes. */
function relation(snapshot: AnyMachineSnapshot, event: ModelEvent): string {
  const { context } = snapshot as ModelSnapshot;
  const who =
    'detail' in event ? (event.detail.tx ?? (event.type === 'NEW_HOST' ? event.detail.payload : undefined)) : undefined;
  const rel =
    who === undefined ? '' : who === context.host ? 'host' : context.hosts.includes(who) ? 'known' : 'unknown';
  const side = 'label' in event ? event.label.split(':')[0] : '';
  return `${event.type} ${rel} ${side}`;
}

function formatEvent(event: ModelEvent): string {
  if (event.type === AFTER_TIMEOUT) return `${SERVER_TIMEOUT_MS} ms without KEEPALIVE`;
  if (event.type === WAIT) return `${HANDSHAKE_TIMEOUT_MS} ms pass`;
  if (event.type === 'link.timeout') return `the handshake with ${event.peer} times out`;
  if (event.type === CRASH) return 'rtcOut crashes';
  if (event.type === 'signalling.error') return `bad frame ${event.frame}`;
  if (event.type === 'signalling.closed') return event.info.reason;
  if ('label' in event) return `${event.type}(${event.label})`;
  if (!('detail' in event)) return event.type;
  const who = event.detail.tx ?? (event.type === 'NEW_HOST' ? event.detail.payload : undefined);
  return who ? `${event.type}(${who})` : event.type;
}

function formatState(snapshot: AnyMachineSnapshot): string {
  if (snapshot.status !== 'active') return String(snapshot.value);
  const c = summary((snapshot as ModelSnapshot).context);
  const parts = [`hosts [${c.hosts.join(', ')}]`];
  if (c.host) parts.push(`with ${c.host}`);
  if (c.pendingAnswer) parts.push('answer ready');
  const open = [c.out && 'out', c.in && 'in'].filter(Boolean).join('+');
  if (open) parts.push(`${open} open`);
  return `${protocolOf(snapshot)}/${valueOf(snapshot)!.watchdog} (${parts.join(', ')})`;
}

function describePath(path: StatePath<AnyMachineSnapshot, ModelEvent>): string {
  const events = path.steps.slice(1).map((s) => formatEvent(s.event));
  return `reaches ${formatState(path.state)} after ${events.join(' → ') || 'starting'}`;
}

const plan = planPaths<ModelEvent>({
  model,
  machine: cloudlinkPeer,
  inputs: [INPUT],
  events: modelEvents,
  serializeState,
  describe: describePath,
  // Every event, by its relation to the state (our host, a known host, a stranger), in every
  // control state and combination of our answer and open channels.
  edgeClass: (from, event) => {
    if (from.status !== 'active') return '';
    const c = summary((from as ModelSnapshot).context);
    return JSON.stringify([from.value, !!c.pendingAnswer, c.out, c.in, relation(from, event)]);
  },
});

// ---------------------------------------------------------------------------
// The system under test.
// ---------------------------------------------------------------------------

const tracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'cloudlinkPeer');
const world = () => clientWorld(cloudlinkPeer, INPUT, tracker.inspect);
type World = ReturnType<typeof world>;

// ---------------------------------------------------------------------------
// The oracle: what the peer must send and emit, from the model alone.
// ---------------------------------------------------------------------------

const f = (name: OpcodeName, fields: Omit<WireFrame, 'opcode'> = {}): WireFrame => ({
  opcode: Opcode[name],
  ...fields,
});
/** Linking states in which our answer has gone out. */
const ANSWERED = ['awaitingCheck', 'awaitingChannels', 'linked'];

function expectedFrames(prev: ModelSnapshot, event: ModelEvent, next: ModelSnapshot): WireFrame[] {
  const host = prev.context.host;
  const [before, after] = [linkingOf(prev), next.status === 'active' ? linkingOf(next) : undefined];
  switch (event.type) {
    case 'signalling.open':
      return [f('INIT')];
    case 'INIT_OK':
      return protocolOf(prev) === 'initializing' ? [f('CONFIG_PEER', { payload: LOBBY })] : [];
    case 'KEEPALIVE':
      return [f('KEEPALIVE')];
    case WAIT:
    case 'link.timeout':
      // The server's pings meanwhile, answered. A handshake that ran out tells the server nothing.
      return Array.from({ length: PINGS }, () => f('KEEPALIVE'));
    case 'leave':
      return protocolOf(prev) === 'connecting' ? [] : [f('SHUTDOWN')];
  }
  if (!before) return [];
  const frames: WireFrame[] = [];
  // Our own offer goes back to the host as soon as it exists.
  if (event.type === 'rtc.description' && event.label === outLabel(host!) && before === 'offering')
    frames.push(f('ACCEPT_OFFER', { payload: { type: 'offer', sdp: 'peer-offer' }, rx: host }));
  // Our answer goes out once the host has answered us and our answer exists.
  if (after && !ANSWERED.includes(before) && ANSWERED.includes(after))
    frames.push(f('MAKE_ANSWER', { payload: { type: 'answer', sdp: 'peer-answer' }, rx: host }));
  // Ready once the host checked and both channels are open.
  if (after === 'linked' && before !== 'linked') frames.push(f('ACK_READY', { rx: host }));
  // A link that dies under us may be a host that vanished.
  if ((event.type === 'rtc.failed' || event.type === 'rtc.closed') && next.status === 'active' && !after)
    frames.push(f('SHUTDOWN_WRN', { rx: host }));
  return frames;
}

/** The peer's pending handshake deadlines. */
const deadlines = (w: World) =>
  Object.values(w.actor.system.getSnapshot()._scheduledEvents)
    .filter((scheduled) => scheduled.source === w.actor && scheduled.event.type === 'link.timeout')
    .map(({ id, event, delay }) => ({ id, event, delay }));

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
      return ErrorCode.RtcFailed; // errorFrom(): a crashed child other than `signalling`
    default:
      return undefined;
  }
}

async function exec(w: World, prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  const script = 'label' in event ? w.rtc.live.get(event.label) : undefined;
  if ('label' in event) expect(script, `the peer has no rtc actor ${event.label}`).toBeDefined();
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
    case 'link.timeout':
      // A pending deadline was set at the start of some step (no time passes in others): it runs out now.
      expect(await w.elapse(HANDSHAKE_TIMEOUT_MS, PING_INTERVAL_MS)).toBe(PINGS);
      break;
    case CRASH:
      w.rtc.live.get(outLabel(prev.context.host!))!.crashing = true;
      w.actor.getSnapshot().children.rtcOut!.send({ type: 'rtc.restartIce' });
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
  expect(sent).toEqual(expectedFrames(prev, event, next));
  // The deadline, by the protocol: a handshake that runs out goes back to the lobby; time alone changes nothing.
  if (event.type === 'link.timeout') expect([protocolOf(real), real.context.host]).toEqual(['lobby', undefined]);
  if (event.type === WAIT) {
    expect(real.value).toEqual(prev.value);
    expect(summary(real.context)).toEqual(summary(prev.context));
  }

  const before = linkingOf(prev);
  // A final model state stands for every way of getting there: only its value counts.
  const after = next.status === 'active' ? linkingOf(next) : undefined;
  const want: Array<ClientEmitted['type']> = [];
  if (event.type === 'INIT_OK' && protocolOf(prev) === 'initializing') want.push('initialized');
  if (after === 'linked' && before !== 'linked') want.push('linked');
  if (next.status === 'active' && before && !after) want.push('unlinked');
  if (next.status === 'done') want.push('stopped');
  expect(emitted.map((e) => e.type)).toEqual(want);

  for (const e of emitted) {
    if (e.type === 'initialized') expect(e.detail).toEqual({ id: PEER_ID });
    if (e.type === 'unlinked') {
      const reasons: Partial<Record<ModelEvent['type'], UnlinkReason>> = {
        SHUTDOWN_ACK: 'left',
        'rtc.failed': 'failed',
        'rtc.closed': 'lost',
        'link.timeout': 'timeout',
      };
      expect(e.detail).toEqual({ id: prev.context.host, reason: reasons[event.type] });
    }
    if (e.type === 'linked') {
      // Ours goes out on the connection we offered; theirs comes in on the one we answered.
      const host = next.context.host!;
      expect(e.detail.id).toBe(host);
      const got = nextFrame(w.rtc.live.get(outLabel(host))!.channel!.remote);
      e.detail.transport.send('to host');
      expect(await got).toBe('to host');
      const back = nextFrame(e.detail.transport);
      w.rtc.live.get(inLabel(host))!.channel!.remote.send('to peer');
      expect(await back).toBe('to peer');
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
    expect(deadlines(w)).toEqual([]);
    return;
  }

  expect(Object.keys(real.children).sort()).toEqual(Object.keys(next.children).sort());
  expect(real.context.id).toBe(next.context.id);
  expect(summary(real.context)).toEqual(summary(next.context));
  // A deadline runs from the offer until linked (or the link is given up).
  expect(deadlines(w)).toEqual(
    after && after !== 'linked'
      ? [
          {
            id: 'link.timeout',
            event: { type: 'link.timeout', peer: next.context.host, generation: 0 },
            delay: HANDSHAKE_TIMEOUT_MS,
          },
        ]
      : [],
  );
  // The rtc actors: both connections of the pair while linking, none otherwise.
  const host = next.context.host;
  expect([...w.rtc.live.keys()].sort()).toEqual(after ? [inLabel(host!), outLabel(host!)] : []);
  if (after) {
    const out = w.rtc.live.get(outLabel(host!))!;
    const inbound = w.rtc.live.get(inLabel(host!))!;
    expect(out.input).toEqual({ label: outLabel(host!), role: 'offerer' });
    expect(inbound.input).toEqual({
      label: inLabel(host!),
      role: 'answerer',
      remoteOffer: `${host}-offer`,
      lateAnswer: true,
    });
    const answered = !['offering', 'awaitingAnswer'].includes(after);
    expect(out.commands).toEqual(
      answered ? [{ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: `${host}-answer` } }] : [],
    );
    // ACK_CHECK shows the host has our answer: the held candidates may go.
    const checked = after === 'awaitingChannels' || after === 'linked';
    expect(inbound.commands).toEqual(checked ? [{ type: 'rtc.releaseCandidates' }] : []);
  }
  // A link given up has its channels closed.
  if (before && !after) for (const channel of w.channels) expect(channel.isOpen).toBe(false);
}

describe('cloudlink peer, model-based (scripted server and WebRTC, SimulatedClock)', () => {
  const ranAll = replayEach('the peer', plan.paths, { start: world, exec, check, stop: (w) => void w.actor.stop() });

  it('takes every state node and every transition of the peer machine', () => {
    expectFullCoverage({ label: 'peer model', machine: cloudlinkPeer, plan, tracker, ranAll: ranAll() });
  });
});
