/**
 * Model-based test of the workrooms client (`workroomsClient`).
 *
 * The model is the client machine itself with inert child actors; its events
 * are what a scripted server (raw frames on a memory transport, a severed
 * link), scripted WebRTC connections (one per call), the application
 * (commands) and the clock (reconnect delay, register timeout) can do to one
 * client holding up to two calls: one it placed, one it took. Each path
 * @xstate/graph plans runs on a fresh real client on a SimulatedClock; after
 * every step its state, its calls, its rtc children, the frames it sent (each
 * one checked by the server's own codec) and the events it emitted are
 * checked against an oracle written from the model state alone.
 */
import { describe, expect, it } from 'vitest';
import { createActor, fromCallback, SimulatedClock, type AnyActorRef, type AnyMachineSnapshot } from 'xstate';
import type { StatePath } from '@xstate/graph';
import { memoryPair } from '../adapters/memory/index.js';
import {
  rtcId,
  workroomsClient,
  type ClientContext,
  type ClientEmitted,
} from '../machines/workrooms/client.machine.js';
import { clientCodec, serverCodec } from '../machines/workrooms/codec.js';
import type { CallInfo, ClientMessage } from '../machines/workrooms/protocol.js';
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

const ME = 'the-client-under-test-01';
const P1 = 'peer-we-call-000000000001';
const P2 = 'peer-who-calls-us-0000001';
const STRANGER = 'a-stranger-000000000000001';
const C1 = 'call-we-placed-0000000001';
const C2 = 'call-we-took-000000000001';
const RECONNECT = 1000;
const REGISTER_TIMEOUT = 5000;
const ATTEMPTS = 2;
const PROFILE = { github: { login: 'me' } };
/** Nine profile sources, one more than the server takes. */
const BAD_PROFILE = Object.fromEntries(
  'abcdefghi'.split('').map((source) => [source, { login: 'me' }]),
) as unknown as typeof PROFILE;
const isBadProfile = (event: ModelEvent) => Object.keys((event as { profile: object }).profile).length > 8;
/** A relay of one of our calls whose candidate the client cannot read: it ends the call. */
const isUnreadable = (event: ModelEvent) =>
  event.type === 'ice' && (event as { detail: { candidate: unknown } }).detail.candidate === UNREADABLE;
const UNREADABLE = 42;
const INPUT = {
  sessionid: ME,
  profile: PROFILE,
  reconnectDelay: RECONNECT,
  registerTimeout: REGISTER_TIMEOUT,
  reconnectAttempts: ATTEMPTS,
};
const AFTER_RECONNECT = 'xstate.after.reconnectDelay.workroomsClient.active.reconnecting';
const AFTER_REGISTER = 'xstate.after.registerTimeout.workroomsClient.active.online.registering';
const sdp = 'v=0\r\n';
const STRANGER_SDP = 'v=0\r\ns=stranger\r\n';
const candidate = { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' };

const INFO: Record<string, CallInfo & { outbound?: true; inbound?: true }> = {
  [C1]: { outbound: true, callid: C1, fromsessionid: ME, tosessionid: P1, userprofiles: {} },
  [C2]: { inbound: true, callid: C2, fromsessionid: P2, tosessionid: ME, userprofiles: {} },
};
const PEER: Record<string, string> = { [C1]: P1, [C2]: P2 };

type Server = { type: ServerType; detail: object };
type ServerType =
  'registered' | 'outboundcall' | 'inboundcall' | 'hangup' | 'offer' | 'answer' | 'ice' | 'autocomplete' | 'error';
type ModelEvent =
  | Server
  | { type: 'signalling.error'; error: { code: string; message: string }; frame: string }
  | { type: 'signalling.closed'; info: { code: number; reason: string; initiator: 'remote' } }
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.candidate'; label: string; candidate: typeof candidate }
  | { type: 'rtc.open'; label: string; transport: Transport }
  | { type: 'rtc.track'; label: string; track: { kind: string }; streams: unknown[] }
  | { type: 'rtc.failed' | 'rtc.closed'; label: string; error?: { code: string; message: string } }
  | { type: `xstate.error.actor.call:${string}` | 'xstate.error.actor.signalling'; error: { message: string } }
  | { type: 'call'; to: string }
  | { type: 'end'; callids: string[] }
  | { type: 'search'; search: string }
  | { type: 'profile'; profile: typeof PROFILE }
  | { type: 'leave' }
  | { type: typeof AFTER_RECONNECT | typeof AFTER_REGISTER };

type ModelSnapshot = AnyMachineSnapshot & { context: ClientContext };

const model = workroomsClient.provide({
  actors: { signalling: fromCallback(() => {}) as never, rtc: fromCallback(() => {}) as never },
});

const control = (s: AnyMachineSnapshot): string => {
  if (s.status !== 'active') return String(s.value);
  const active = (s.value as { active: string | { online: string } }).active;
  return typeof active === 'string' ? active : active.online;
};
const callsOf = (s: AnyMachineSnapshot) => Object.keys((s as ModelSnapshot).context.calls).sort();
const msg = (type: ServerType, detail: object): Server => ({ type, detail });

function modelEvents(snapshot: AnyMachineSnapshot): ModelEvent[] {
  if (snapshot.status !== 'active') return [];
  const state = control(snapshot);
  const calls = callsOf(snapshot);
  const events: ModelEvent[] = [];
  if (state !== 'reconnecting') {
    events.push(msg('registered', { sessionid: ME, calls }));
    if (calls.length > 0) events.push(msg('registered', { sessionid: ME, calls: [] }));
    if (!calls.includes(C1)) events.push(msg('outboundcall', INFO[C1]!));
    if (!calls.includes(C2)) events.push(msg('inboundcall', INFO[C2]!));
    for (const c of calls) {
      events.push(msg('hangup', { calls: [{ callid: c, sessionid: PEER[c]! }] }));
      const peerid = PEER[c]!;
      events.push(
        c === C1 ? msg('answer', { callid: c, peerid, sdp }) : msg('offer', { callid: c, peerid, sdp }),
        msg('ice', { callid: c, peerid, candidate }),
        // The other forms: a description as { type, sdp }, a candidate line; and one that cannot be read.
        msg(c === C1 ? 'answer' : 'offer', { callid: c, peerid, sdp: { type: c === C1 ? 'answer' : 'offer', sdp } }),
        msg('ice', { callid: c, peerid, candidate: candidate.candidate }),
        msg('ice', { callid: c, peerid, candidate: UNREADABLE }),
      );
    }
    // A relay for a call we are in, from someone who is not on it: ignored.
    if (calls.includes(C1)) events.push(msg('answer', { callid: C1, peerid: STRANGER, sdp: STRANGER_SDP }));
    events.push(
      msg('autocomplete', { search: 'p', results: [{ sessionid: P1, userprofiles: {} }] }),
      msg('error', { code: 'ERR_PEER_GONE', message: 'call: gone', event: 'call' }),
      msg('error', { code: 'ERR_INVALID_FIELD', message: 'register: bad', event: 'register' }),
      // Our hangup crossed the other side's: the server no longer has the call.
      msg('error', { code: 'ERR_NOT_PERMITTED', message: `hangup: you have no call ${C1}`, event: 'hangup' }),
      {
        type: 'signalling.error',
        error: { code: 'ERR_MALFORMED_FRAME', message: 'frame is not valid JSON' },
        frame: 'nope',
      },
      { type: 'signalling.closed', info: { code: 1006, reason: 'link severed', initiator: 'remote' } },
      // The server closes a connection whose sessionid another connection registered.
      {
        type: 'signalling.closed',
        info: { code: 4001, reason: 'taken over by a new connection', initiator: 'remote' },
      },
      { type: 'xstate.error.actor.signalling', error: { message: 'simulated signalling crash' } },
    );
  }
  if (state === 'registering') events.push({ type: AFTER_REGISTER });
  if (state === 'reconnecting') events.push({ type: AFTER_RECONNECT });
  for (const c of calls) {
    events.push(
      { type: 'rtc.description', label: c, description: { type: c === C1 ? 'offer' : 'answer', sdp } },
      { type: 'rtc.candidate', label: c, candidate },
      { type: 'rtc.open', label: c, transport: stubTransport },
      { type: 'rtc.track', label: c, track: { kind: 'audio' }, streams: [] },
      { type: 'rtc.failed', label: c, error: { code: 'ERR_RTC_FAILED', message: 'ICE failed' } },
      { type: 'rtc.closed', label: c },
      { type: `xstate.error.actor.call:${c}`, error: { message: 'rtc crashed' } },
      { type: 'end', callids: [c] },
    );
  }
  events.push(
    { type: 'call', to: P1 },
    { type: 'search', search: 'p' },
    { type: 'profile', profile: PROFILE },
    // One the server would refuse: refused here, never sent.
    { type: 'profile', profile: BAD_PROFILE },
    { type: 'leave' },
  );
  return events;
}

const serializeState = (s: AnyMachineSnapshot) =>
  s.status !== 'active'
    ? String(s.value)
    : JSON.stringify([control(s), callsOf(s), (s as ModelSnapshot).context.attempts]);

function formatEvent(event: ModelEvent): string {
  if (event.type === AFTER_RECONNECT) return `${RECONNECT} ms pass (reconnect)`;
  if (event.type === AFTER_REGISTER) return `${REGISTER_TIMEOUT} ms pass (register unanswered)`;
  if (event.type === 'xstate.error.actor.signalling') return 'signalling crashes';
  if (event.type.startsWith('xstate.error.actor.'))
    return `rtc ${event.type.slice('xstate.error.actor.call:'.length)} crashes`;
  if (event.type === 'signalling.closed') {
    return (event as { info: { code: number } }).info.code === 4001 ? 'taken over' : 'link severed';
  }
  if (event.type === 'signalling.error') return 'bad frame';
  if ('label' in event) return `${event.type}(${event.label === C1 ? 'c1' : 'c2'})`;
  if (event.type === 'profile') return isBadProfile(event) ? 'bad profile' : 'profile';
  if (event.type === 'end') return `end(${(event as { callids: string[] }).callids[0] === C1 ? 'c1' : 'c2'})`;
  if ('detail' in event) {
    const d = event.detail as { callid?: string; event?: string; calls?: unknown[]; peerid?: string };
    if (event.type === 'registered') return `registered(${d.calls!.length} calls)`;
    if (event.type === 'error') return `error(${d.event})`;
    if (d.peerid === STRANGER) return `${event.type} from a stranger`;
    const c = d.callid ?? (d.calls?.[0] as { callid?: string } | undefined)?.callid;
    return c ? `${event.type}(${c === C1 ? 'c1' : 'c2'})` : event.type;
  }
  return event.type;
}

const describePath = (path: StatePath<AnyMachineSnapshot, ModelEvent>) =>
  `reaches ${control(path.state)} (${callsOf(path.state).length} calls) after ${
    path.steps
      .slice(1)
      .map((s) => formatEvent(s.event))
      .join(' → ') || 'starting'
  }`;

const notPlanned = {};
const plan = planPaths<ModelEvent>({
  model,
  machine: workroomsClient,
  inputs: [INPUT],
  events: modelEvents,
  serializeState,
  describe: describePath,
  notPlanned,
  // Every event in every control state, with and without calls.
  edgeClass: (from, event) =>
    `${control(from)} ${callsOf(from).length > 0} ${formatEvent(event).replace(/c[12]/, 'c')}`,
});

// ---------------------------------------------------------------------------
// The system under test: a real client, its connections' server ends, scripted rtc.
// ---------------------------------------------------------------------------

const tracker = coverageTracker((_, snapshot) => snapshot.machine?.id === 'workroomsClient');
const decode = serverCodec().decode;

function world() {
  const clock = new SimulatedClock();
  const rtc = scriptedRtc();
  const ends: Transport[] = [];
  const sent: ClientMessage[] = [];
  const breaking = { next: false };
  // A message the codec cannot encode crashes the signalling actor.
  const codec = clientCodec();
  const crashingCodec: typeof codec = {
    ...codec,
    encode(message) {
      if (breaking.next) throw new TypeError('simulated signalling crash');
      return codec.encode(message);
    },
  };
  const signalling = fromTransport(() => {
    const [client, server] = memoryPair();
    ends.push(server);
    // The server's codec checks every frame the client sends.
    server.on('message', (frame) => sent.push(decode(frame)));
    breaking.next = false;
    return client;
  }, crashingCodec);
  const actor = createActor(workroomsClient.provide({ actors: { signalling, rtc: rtc.logic } }), {
    input: INPUT,
    clock,
    inspect: tracker.inspect,
  });
  const emitted: ClientEmitted[] = [];
  actor.on('*', (e) => emitted.push(e as ClientEmitted));
  actor.start();
  return { clock, rtc, ends, sent, emitted, actor, breaking };
}
type World = ReturnType<typeof world>;

async function exec(w: World, _prev: ModelSnapshot, event: ModelEvent): Promise<void> {
  const end = w.ends.at(-1)!;
  switch (event.type) {
    case AFTER_RECONNECT:
      w.clock.increment(RECONNECT);
      break;
    case AFTER_REGISTER:
      w.clock.increment(REGISTER_TIMEOUT);
      break;
    case 'signalling.error':
      end.send((event as { frame: string }).frame);
      break;
    case 'signalling.closed': {
      const { code, reason } = (event as Extract<ModelEvent, { type: 'signalling.closed' }>).info;
      end.close(code, reason);
      break;
    }
    case 'rtc.description':
    case 'rtc.candidate':
    case 'rtc.track':
    case 'rtc.failed':
    case 'rtc.closed': {
      const script = w.rtc.live.get((event as { label: string }).label)!;
      script.emit(event as never);
      break;
    }
    case 'rtc.open':
      w.rtc.open((event as { label: string }).label);
      break;
    case 'call':
    case 'end':
    case 'search':
    case 'profile':
    case 'leave':
      w.actor.send(event as never);
      break;
    case 'xstate.error.actor.signalling':
      // The next frame the client sends crashes its signalling actor (a search, which is not modelled).
      w.breaking.next = true;
      w.actor.send({ type: 'search', search: 'crash' });
      break;
    default:
      if (event.type.startsWith('xstate.error.actor.')) {
        const callid = event.type.slice('xstate.error.actor.call:'.length);
        w.rtc.live.get(callid)!.crashing = true;
        const child = (w.actor.getSnapshot().children as Record<string, AnyActorRef>)[rtcId(callid)]!;
        child.send({ type: 'test.crash' });
      } else {
        end.send(JSON.stringify({ type: event.type, detail: (event as Server).detail }));
      }
  }
  await settle();
}

/** What the client must send to the server for a step, from the model alone. */
function expectedFrames(prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot): ClientMessage[] {
  // As the server's codec reads them: a call's `callid` and who is on it.
  const infos = (s: ModelSnapshot) =>
    callsOf(s).map((c) => ({ callid: c, fromsessionid: INFO[c]!.fromsessionid, tosessionid: INFO[c]!.tosessionid }));
  const register = (s: ModelSnapshot): ClientMessage => ({
    type: 'register',
    detail: { sessionid: ME, calls: infos(s) as never },
  });
  if (!prev) return [register(next)];
  const online = control(prev) !== 'reconnecting';
  const calls = callsOf(prev);
  const label = (event as { label?: string }).label;
  const crashed = event.type.startsWith('xstate.error.actor.call:')
    ? event.type.slice('xstate.error.actor.call:'.length)
    : undefined;
  const hangup = (callids: string[]): ClientMessage[] =>
    callids.length > 0 ? [{ type: 'hangup', detail: { calls: callids.map((callid) => ({ callid })) } }] : [];
  if (event.type === AFTER_RECONNECT) return [register(prev)];
  if (!online) return [];
  switch (event.type) {
    case 'registered':
      return control(prev) === 'registering' ? [{ type: 'userprofile', detail: PROFILE }] : [];
    case 'rtc.description': {
      const { description } = event as Extract<ModelEvent, { type: 'rtc.description' }>;
      // The browser's form, `{ type, sdp }`.
      return [
        {
          type: description.type,
          detail: { callid: label!, peerid: PEER[label!]!, sdp: { type: description.type, sdp } },
        },
      ];
    }
    case 'rtc.candidate':
      return [{ type: 'ice', detail: { callid: label!, peerid: PEER[label!]!, candidate } }];
    case 'rtc.failed':
    case 'rtc.closed':
      return hangup([label!]);
    case 'call':
      return [{ type: 'call', detail: { to: P1 } }];
    case 'search':
      return [{ type: 'autocomplete', detail: { search: 'p' } }];
    case 'profile':
      if (isBadProfile(event)) return [];
      return control(prev) === 'ready' ? [{ type: 'userprofile', detail: PROFILE }] : [];
    case 'end':
      return hangup((event as { callids: string[] }).callids);
    case 'leave':
      return hangup(calls);
    case 'ice':
      return isUnreadable(event) ? hangup([(event as { detail: { callid: string } }).detail.callid]) : [];
    default:
      return crashed ? hangup([crashed]) : [];
  }
}

/** The types of what the client must emit for a step, from the model alone. */
function expectedEmitted(prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot): string[] {
  if (!prev) return [];
  const before = callsOf(prev);
  const after = next.status === 'active' ? callsOf(next) : [];
  const lost = before.filter((c) => !after.includes(c)).map(() => 'hangup');
  const online = control(prev) !== 'reconnecting';
  const stopped = next.status === 'done' ? ['stopped'] : [];
  const disconnected = control(next) === 'reconnecting' && control(prev) !== 'reconnecting' ? ['disconnected'] : [];
  switch (event.type) {
    case 'registered':
      return control(prev) === 'registering' ? [...lost, 'registered'] : [];
    case 'outboundcall':
    case 'inboundcall':
      return [event.type];
    case 'autocomplete':
      return ['autocomplete'];
    case 'error':
      // Refused register: the client stops, and its calls end with it.
      if (next.status === 'done') return [...lost, ...stopped];
      // A refused hangup is a race the client shrugs off.
      return (event.detail as { event?: string }).event === 'hangup' ? [] : ['error'];
    case 'signalling.error':
      return ['error'];
    case 'rtc.open':
      return ['connected'];
    case 'rtc.track':
      return ['track'];
    case 'call':
    case 'search':
      return online ? [] : ['error'];
    case 'profile':
      return isBadProfile(event) ? ['error'] : [];
    case 'ice':
      return isUnreadable(event) ? ['error', ...lost] : [];
    default:
      return [...lost, ...disconnected, ...stopped];
  }
}

async function check(w: World, prev: ModelSnapshot | undefined, event: ModelEvent, next: ModelSnapshot) {
  const real = w.actor.getSnapshot() as ModelSnapshot;
  tracker.see(real);
  expect(real.status).toBe(next.status);
  expect(real.value).toEqual(next.value);
  // Final states are one model state whatever their context (see serializeState).
  if (next.status === 'active') {
    expect(Object.keys(real.context.calls).sort()).toEqual(callsOf(next));
    expect(real.context.attempts).toBe(next.context.attempts);
  }
  expect(w.sent.splice(0)).toEqual(expectedFrames(prev, event, next));
  expect(w.emitted.splice(0).map((e) => e.type)).toEqual(expectedEmitted(prev, event, next));
  // One rtc child per call, and nothing else running.
  // (A crashed scripted actor stays in `live`: it is gone from the client's children.)
  const liveCalls = [...w.rtc.live.values()]
    .filter((script) => !script.crashing)
    .map((script) => script.input.label)
    .sort();
  expect(liveCalls).toEqual(next.status === 'active' ? callsOf(next) : []);
  // What the server relays for a call reaches that call's rtc child only (a stranger's relay, nobody).
  if ((event.type === 'offer' || event.type === 'answer' || event.type === 'ice') && 'detail' in event) {
    const { callid, peerid, candidate: sent } = event.detail as { callid: string; peerid: string; candidate?: unknown };
    const script = w.rtc.live.get(callid);
    // One it cannot read ended the call: its rtc child is gone (see liveCalls above).
    if (isUnreadable(event)) expect(script).toBeUndefined();
    else if (peerid === STRANGER) {
      const applied = script!.commands.filter(
        (c) => c.type === 'rtc.remoteDescription' && c.description.sdp === STRANGER_SDP,
      );
      expect(applied).toEqual([]);
    } else {
      // Read in whichever form it came: SDP text or { type, sdp }; an init or a line.
      expect(script!.commands.at(-1)).toEqual(
        event.type === 'ice'
          ? {
              type: 'rtc.remoteCandidate',
              candidate: typeof sent === 'string' ? { candidate: sent, sdpMLineIndex: 0 } : sent,
            }
          : { type: 'rtc.remoteDescription', description: { type: event.type, sdp } },
      );
    }
  }
  // Exactly one signalling connection is open while online, none otherwise.
  const open = w.ends.filter((t) => t.isOpen).length;
  expect(open).toBe(next.status === 'active' && control(next) !== 'reconnecting' ? 1 : 0);
}

describe('workrooms client, model-based (scripted server and rtc, SimulatedClock)', () => {
  const ranAll = replayEach('the client', plan.paths, {
    start: async () => {
      const w = world();
      await settle();
      return w;
    },
    exec,
    check,
    stop: (w) => {
      w.actor.stop();
    },
  });

  it('takes every state node and every transition of the client machine', () => {
    expectFullCoverage({
      label: 'client model',
      machine: workroomsClient,
      plan,
      tracker,
      notPlanned,
      ranAll: ranAll(),
    });
  });
});
