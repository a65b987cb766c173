/**
 * Level 1 for workrooms: given a state and a message, the next state and what
 * is sent. Pure: XState's `transition()` computes each step without running it.
 */
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { workroomsClient } from '../machines/workrooms/client.machine.js';
import { serverCodec } from '../machines/workrooms/codec.js';
import { generateId, type ClientMessage } from '../machines/workrooms/protocol.js';
import { memoryRegistry } from '../machines/workrooms/registry.js';
import { workroomsSession, type SessionServices } from '../machines/workrooms/server.machine.js';
import { ProtocolError } from '../src/errors.js';
import { silentLogger } from '../src/logger.js';
import { memoryRouter } from '../src/router.js';
import { run as runSteps, type Step } from './transition-helpers.js';

const run = <M extends AnyStateMachine>(
  machine: M,
  input: unknown,
  events: readonly unknown[],
): Step<M, ClientMessage> => runSteps<M, ClientMessage>(machine, input, events);

const msg = (type: string, detail: unknown = {}) => ({ type, detail });
/** The custom action calls of a step, without XState's own. */
const custom = (step: Step<AnyStateMachine>) =>
  step.actions.filter((a) => !a.type.startsWith('xstate.')).map((a) => a.type);

const ME = generateId();
const PEER = generateId();
const CALL = generateId();
const sdp = 'v=0\r\n';
const candidate = { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0' };

describe('workroomsSession transitions', () => {
  const services = (withCall = false): SessionServices => {
    const registry = memoryRegistry();
    registry.claim(ME, 'conn:1');
    registry.claim(PEER, 'conn:2');
    if (withCall) registry.addCall({ callid: CALL, from: ME, to: PEER });
    const [serverEnd] = memoryPair();
    return {
      registry,
      router: memoryRouter(serverCodec()),
      transport: serverEnd,
      log: silentLogger,
      generateCallId: generateId,
      evict: () => {},
      grace: 1000,
      registerTimeout: 1000,
      searchLimit: 20,
      searchBudget: { floor: 32768, factor: 16 },
    };
  };
  const input = (withCall = false) => ({ connection: 'conn:1', services: services(withCall) });
  const register = msg('register', { sessionid: ME, calls: [] });
  const closed = { type: 'signalling.closed', info: { code: 1006, reason: 'gone', initiator: 'remote' } };

  it('starts unregistered, reachable under its connection id', () => {
    const step = run(workroomsSession, input(), []);
    expect(step.snapshot.value).toBe('unregistered');
    expect(custom(step)).toEqual(['open']);
  });

  it('registers on register, keeping the sessionid', () => {
    const step = run(workroomsSession, input(), [register]);
    expect(step.snapshot.value).toBe('registered');
    expect(step.snapshot.context.sessionid).toBe(ME);
    expect(custom(step)).toEqual(['register']);
  });

  for (const type of ['userprofile', 'call', 'hangup', 'autocomplete', 'offer', 'answer', 'ice']) {
    it(`refuses ${type} before register, and stays unregistered`, () => {
      const step = run(workroomsSession, input(), [msg(type)]);
      expect(step.snapshot.value).toBe('unregistered');
      expect(custom(step)).toEqual(['refuseBeforeRegister']);
    });
  }

  const handlers: Array<[string, string]> = [
    ['userprofile', 'setProfile'],
    ['call', 'placeCall'],
    ['hangup', 'hangUp'],
    ['autocomplete', 'search'],
    ['offer', 'relay'],
    ['answer', 'relay'],
    ['ice', 'relay'],
    ['register', 'refuseRegister'],
  ];
  for (const [type, action] of handlers) {
    it(`handles ${type} once registered with ${action}, and stays registered`, () => {
      const step = run(workroomsSession, input(), [register, msg(type)]);
      expect(step.snapshot.value).toBe('registered');
      expect(custom(step)).toEqual([action]);
    });
  }

  it('reports a bad frame in either state and stays', () => {
    const bad = {
      type: 'signalling.error',
      error: new ProtocolError('ERR_MALFORMED_FRAME', 'frame is not valid JSON'),
    };
    for (const events of [[bad], [register, bad]]) {
      const step = run(workroomsSession, input(), events);
      expect(step.snapshot.status).toBe('active');
      expect(custom(step)).toEqual(['reportBadFrame']);
    }
  });

  it('ends at once when the connection closes before register', () => {
    const step = run(workroomsSession, input(), [closed]);
    expect(step.snapshot.status).toBe('done');
    expect(step.snapshot.value).toBe('closed');
    expect(custom(step)).toEqual(['leave']);
  });

  it('ends when register does not come in time, and only before register', () => {
    const expired = run(workroomsSession, input(), [
      { type: 'xstate.after.registerTimeout.workroomsSession.unregistered' },
    ]);
    expect(expired.snapshot.value).toBe('closed');
    expect(custom(expired)).toEqual(['expire', 'leave']);
    const late = run(workroomsSession, input(), [
      register,
      { type: 'xstate.after.registerTimeout.workroomsSession.unregistered' },
    ]);
    expect(late.snapshot.value).toBe('registered');
    expect(custom(late)).toEqual([]);
  });

  it('ends at once when a session without calls loses its connection', () => {
    const step = run(workroomsSession, input(), [register, closed]);
    expect(step.snapshot.value).toBe('closed');
    expect(custom(step)).toEqual(['leave']);
  });

  it('waits the grace period when a session with calls loses its connection, then ends', () => {
    const away = run(workroomsSession, input(true), [register, closed]);
    expect(away.snapshot.value).toBe('away');
    expect(custom(away)).toEqual(['goAway']);
    const expired = run(workroomsSession, input(true), [
      register,
      closed,
      { type: 'xstate.after.grace.workroomsSession.away' },
    ]);
    expect(expired.snapshot.value).toBe('closed');
    expect(custom(expired)).toEqual(['leave']);
  });

  it('gives way to a new connection that takes the session over, connected or away', () => {
    for (const events of [[register], [register, closed]]) {
      const step = run(workroomsSession, input(true), [...events, { type: 'session.takenOver' }]);
      expect(step.snapshot.value).toBe('replaced');
      expect(step.snapshot.status).toBe('done');
      expect(custom(step)).toEqual(['closeStale']);
    }
  });
});

describe('workroomsClient transitions', () => {
  const input = { sessionid: ME, reconnectDelay: 100 };
  const registered = (calls: string[] = []) => msg('registered', { sessionid: ME, calls });
  const info = { callid: CALL, fromsessionid: ME, tosessionid: PEER, userprofiles: {} };
  const outbound = msg('outboundcall', { ...info, outbound: true });
  const inbound = msg('inboundcall', {
    ...info,
    fromsessionid: PEER,
    tosessionid: ME,
    inbound: true,
  });
  const closed = { type: 'signalling.closed', info: { code: 1006, reason: 'gone', initiator: 'remote' } };

  it('connects and registers its sessionid with no calls', () => {
    const step = run(workroomsClient, input, []);
    expect(step.snapshot.value).toEqual({ active: { online: 'registering' } });
    expect(step.spawned.map((s) => s.id)).toEqual(['signalling']);
    expect(step.sent).toEqual([msg('register', { sessionid: ME, calls: [] })]);
  });

  it('draws an unguessable sessionid when given none', () => {
    const a = run(workroomsClient, {}, []).snapshot.context.sessionid;
    const b = run(workroomsClient, {}, []).snapshot.context.sessionid;
    expect(a).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(a).not.toBe(b);
  });

  it('is ready once registered, and announces its profile', () => {
    const profile = { github: { login: 'ada' } };
    const step = run(workroomsClient, { ...input, profile }, [registered()]);
    expect(step.snapshot.value).toEqual({ active: { online: 'ready' } });
    expect(step.sent).toEqual([msg('userprofile', profile)]);
    expect(step.emitted).toEqual([{ type: 'registered', detail: { sessionid: ME, calls: [] } }]);
  });

  it('sends call, autocomplete and userprofile for the commands', () => {
    expect(run(workroomsClient, input, [registered(), { type: 'call', to: PEER }]).sent).toEqual([
      msg('call', { to: PEER }),
    ]);
    expect(run(workroomsClient, input, [registered(), { type: 'search', search: 'ad' }]).sent).toEqual([
      msg('autocomplete', { search: 'ad' }),
    ]);
    expect(run(workroomsClient, input, [registered(), { type: 'profile', profile: { x: {} } }]).sent).toEqual([
      msg('userprofile', { x: {} }),
    ]);
  });

  it('refuses a profile the server would refuse, or that cannot even be encoded, and keeps the one it had', () => {
    const profile = { github: { login: 'ada' } };
    for (const bad of [
      { github: { id: 1n } },
      { github: { bio: 'x'.repeat(16_384) } },
      { a: {}, b: {}, c: {}, d: {}, e: {}, f: {}, g: {}, h: {}, i: {} },
    ]) {
      const step = run(workroomsClient, { ...input, profile }, [registered(), { type: 'profile', profile: bad }]);
      expect(step.sent).toEqual([]);
      expect(step.emitted).toEqual([
        {
          type: 'error',
          detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^profile: /), event: 'profile' },
        },
      ]);
      expect(step.snapshot.context.profile).toEqual(profile);
    }
  });

  it('says what is wrong with a profile it is started with', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const step = run(workroomsClient, { ...input, profile: { github: circular } }, []);
    expect(step.snapshot.status).toBe('error');
    expect(String(step.snapshot.error)).toMatch(
      /the server would refuse this profile \(userprofile: `detail`: nested deeper than 16\)/,
    );
  });

  it('starts an offering rtc child for an outbound call and an answering one for an inbound call', () => {
    const out = run(workroomsClient, input, [registered(), outbound]);
    expect(out.spawned).toEqual([{ id: `call:${CALL}`, input: { label: CALL, role: 'offerer' } }]);
    expect(out.emitted).toEqual([{ type: 'outboundcall', detail: outbound.detail }]);
    const inb = run(workroomsClient, input, [registered(), inbound]);
    expect(inb.spawned).toEqual([{ id: `call:${CALL}`, input: { label: CALL, role: 'answerer' } }]);
    expect(inb.snapshot.context.calls[CALL]!.peerid).toBe(PEER);
  });

  it('relays its rtc child’s description ({ type, sdp }, the browser’s form) and candidates for that call to the other side', () => {
    const offer = run(workroomsClient, input, [
      registered(),
      outbound,
      { type: 'rtc.description', label: CALL, description: { type: 'offer', sdp } },
    ]);
    expect(offer.sent).toEqual([msg('offer', { callid: CALL, peerid: PEER, sdp: { type: 'offer', sdp } })]);
    const ice = run(workroomsClient, input, [
      registered(),
      outbound,
      { type: 'rtc.candidate', label: CALL, candidate },
    ]);
    expect(ice.sent).toEqual([msg('ice', { callid: CALL, peerid: PEER, candidate })]);
  });

  it('hands what the other side relays to that call’s rtc child, and ignores relays that do not match a call', () => {
    const answer = run(workroomsClient, input, [
      registered(),
      outbound,
      msg('answer', { callid: CALL, peerid: PEER, sdp }),
    ]);
    expect(answer.sentTo).toEqual([
      { to: `call:${CALL}`, event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp } } },
    ]);
    const ice = run(workroomsClient, input, [
      registered(),
      inbound,
      msg('ice', { callid: CALL, peerid: PEER, candidate }),
    ]);
    expect(ice.sentTo).toEqual([{ to: `call:${CALL}`, event: { type: 'rtc.remoteCandidate', candidate } }]);
    const stranger = run(workroomsClient, input, [
      registered(),
      outbound,
      msg('answer', { callid: CALL, peerid: generateId(), sdp }),
    ]);
    expect(stranger.sentTo).toEqual([]);
  });

  it('reads a description as SDP text or { type, sdp }, and a candidate as an init, a line or null', () => {
    const forms: Array<[unknown, unknown]> = [
      [
        msg('answer', { callid: CALL, peerid: PEER, sdp: { type: 'answer', sdp } }),
        { type: 'rtc.remoteDescription', description: { type: 'answer', sdp } },
      ],
      [
        msg('answer', { callid: CALL, peerid: PEER, sdp: { sdp } }),
        { type: 'rtc.remoteDescription', description: { type: 'answer', sdp } },
      ],
      [
        msg('ice', { callid: CALL, peerid: PEER, candidate: candidate.candidate }),
        { type: 'rtc.remoteCandidate', candidate: { candidate: candidate.candidate, sdpMLineIndex: 0 } },
      ],
      [
        msg('ice', { callid: CALL, peerid: PEER, candidate: { ...candidate, sdpMLineIndex: null, extra: 1 } }),
        { type: 'rtc.remoteCandidate', candidate: { candidate: candidate.candidate, sdpMid: candidate.sdpMid } },
      ],
      [
        // RTCIceCandidate.toJSON() with null fields: addIceCandidate needs sdpMid or sdpMLineIndex.
        msg('ice', {
          callid: CALL,
          peerid: PEER,
          candidate: { candidate: candidate.candidate, sdpMid: null, sdpMLineIndex: null, usernameFragment: null },
        }),
        { type: 'rtc.remoteCandidate', candidate: { candidate: candidate.candidate, sdpMLineIndex: 0 } },
      ],
      [
        msg('ice', { callid: CALL, peerid: PEER, candidate: `a=${candidate.candidate}` }),
        { type: 'rtc.remoteCandidate', candidate: { candidate: candidate.candidate, sdpMLineIndex: 0 } },
      ],
    ];
    for (const [event, command] of forms) {
      const step = run(workroomsClient, input, [registered(), outbound, event]);
      expect(step.sentTo).toEqual([{ to: `call:${CALL}`, event: command }]);
      expect(step.emitted).toEqual([]);
    }
    // The end of candidates: nothing to hand on, and the call goes on.
    for (const end of [null, undefined, '', { candidate: '', sdpMid: '0' }, { sdpMid: '0' }]) {
      const step = run(workroomsClient, input, [
        registered(),
        outbound,
        msg('ice', { callid: CALL, peerid: PEER, candidate: end }),
      ]);
      expect(step.sentTo).toEqual([]);
      expect(step.emitted).toEqual([]);
      expect(Object.keys(step.snapshot.context.calls)).toEqual([CALL]);
    }
  });

  const unreadable: Array<[string, unknown, string]> = [
    ['offer', { callid: CALL, peerid: PEER, sdp: 42 }, '`detail.sdp` must be an SDP string or { type, sdp }, not 42'],
    ['offer', { callid: CALL, peerid: PEER, sdp: '' }, '`detail.sdp` is empty'],
    ['offer', { callid: CALL, peerid: PEER }, '`detail.sdp` must be an SDP string or { type, sdp }, not missing'],
    [
      'answer',
      { callid: CALL, peerid: PEER, sdp: { type: 'offer', sdp } },
      '`detail.sdp.type` is "offer", expected "answer"',
    ],
    [
      'answer',
      { callid: CALL, peerid: PEER, sdp: { type: 'answer' } },
      '`detail.sdp.sdp` must be a non-empty string, not missing',
    ],
    [
      'ice',
      { callid: CALL, peerid: PEER, candidate: [candidate] },
      '`detail.candidate` must be an RTCIceCandidateInit, a candidate string or null, not an array',
    ],
    [
      'ice',
      { callid: CALL, peerid: PEER, candidate: { candidate: 7, sdpMid: '0' } },
      '`detail.candidate.candidate` must be a string, not 7',
    ],
    [
      'ice',
      { callid: CALL, peerid: PEER, candidate: { ...candidate, sdpMLineIndex: -1 } },
      '`detail.candidate.sdpMLineIndex` must be a whole number ≥ 0, not -1',
    ],
    [
      'ice',
      { callid: CALL, peerid: PEER, candidate: { ...candidate, sdpMid: 0 } },
      '`detail.candidate.sdpMid` must be a string, not 0',
    ],
  ];
  for (const [type, detail, problem] of unreadable) {
    it(`ends the call on ${type} it cannot read (${problem.split(' ')[0]}): error naming the field, hangup, rtc child stopped`, () => {
      const step = run(workroomsClient, input, [registered(), outbound, msg(type, detail)]);
      expect(step.emitted).toEqual([
        {
          type: 'error',
          detail: { code: 'ERR_INVALID_FIELD', message: `${type}: ${problem}; call ${CALL} ended`, event: type },
        },
        { type: 'hangup', detail: { callid: CALL, sessionid: PEER, reason: 'failed' } },
      ]);
      expect(step.sent).toEqual([msg('hangup', { calls: [{ callid: CALL }] })]);
      expect(step.stopped).toEqual([`call:${CALL}`]);
      expect(step.sentTo).toEqual([]);
      expect(step.snapshot.context.calls).toEqual({});
      expect(step.snapshot.value).toEqual({ active: { online: 'ready' } });
    });
  }

  it('ends a call on end: hangup to the server, the rtc child stopped, hangup emitted', () => {
    const step = run(workroomsClient, input, [registered(), outbound, { type: 'end', callids: [CALL] }]);
    expect(step.sent).toEqual([msg('hangup', { calls: [{ callid: CALL }] })]);
    expect(step.stopped).toEqual([`call:${CALL}`]);
    expect(step.emitted).toEqual([{ type: 'hangup', detail: { callid: CALL, sessionid: PEER, reason: 'local' } }]);
    expect(step.snapshot.context.calls).toEqual({});
  });

  it('ends a call the server hangs up, telling nobody', () => {
    const step = run(workroomsClient, input, [
      registered(),
      inbound,
      msg('hangup', { calls: [{ callid: CALL, sessionid: PEER }] }),
    ]);
    expect(step.sent).toEqual([]);
    expect(step.stopped).toEqual([`call:${CALL}`]);
    expect(step.emitted).toEqual([{ type: 'hangup', detail: { callid: CALL, sessionid: PEER, reason: 'remote' } }]);
  });

  it('hangs a call up for both sides when its WebRTC connection fails', () => {
    const step = run(workroomsClient, input, [
      registered(),
      outbound,
      { type: 'rtc.failed', label: CALL, error: new Error('ICE failed') },
    ]);
    expect(step.sent).toEqual([msg('hangup', { calls: [{ callid: CALL }] })]);
    expect(step.emitted).toEqual([{ type: 'hangup', detail: { callid: CALL, sessionid: PEER, reason: 'failed' } }]);
  });

  it('hangs a call up for both sides when the other side closes its data channel, as the other side’s doing', () => {
    const step = run(workroomsClient, input, [registered(), outbound, { type: 'rtc.closed', label: CALL }]);
    expect(step.sent).toEqual([msg('hangup', { calls: [{ callid: CALL }] })]);
    expect(step.emitted).toEqual([{ type: 'hangup', detail: { callid: CALL, sessionid: PEER, reason: 'remote' } }]);
  });

  it('shrugs off a refused hangup (it crossed the other side’s), but reports other refusals', () => {
    const race = { code: 'ERR_NOT_PERMITTED', message: `hangup: you have no call ${CALL}`, event: 'hangup' };
    const step = run(workroomsClient, input, [registered(), msg('error', race)]);
    expect(step.snapshot.value).toEqual({ active: { online: 'ready' } });
    expect(step.emitted).toEqual([]);
    const invalid = { code: 'ERR_INVALID_FIELD', message: 'hangup: `detail.calls`: bad', event: 'hangup' };
    expect(run(workroomsClient, input, [registered(), msg('error', invalid)]).emitted).toEqual([
      { type: 'error', detail: invalid },
    ]);
  });

  it('keeps its calls when signalling drops, and registers them again after reconnectDelay', () => {
    const dropped = run(workroomsClient, input, [registered(), outbound, closed]);
    expect(dropped.snapshot.value).toEqual({ active: 'reconnecting' });
    expect(dropped.stopped).toEqual(['signalling']);
    expect(dropped.emitted).toEqual([{ type: 'disconnected', detail: { attempt: 1 } }]);
    const again = run(workroomsClient, input, [
      registered(),
      outbound,
      closed,
      { type: 'xstate.after.reconnectDelay.workroomsClient.active.reconnecting' },
    ]);
    expect(again.snapshot.value).toEqual({ active: { online: 'registering' } });
    // Who is on the call, not the profiles: those could make register outgrow the server's frame cap.
    const { userprofiles: _, ...who } = info;
    expect(again.sent).toEqual([msg('register', { sessionid: ME, calls: [{ ...who, outbound: true }] })]);
    const back = run(workroomsClient, input, [
      registered(),
      outbound,
      closed,
      { type: 'xstate.after.reconnectDelay.workroomsClient.active.reconnecting' },
      registered([CALL]),
    ]);
    expect(Object.keys(back.snapshot.context.calls)).toEqual([CALL]);
    expect(back.snapshot.context.attempts).toBe(0);
  });

  it('drops the calls the server did not restore', () => {
    const step = run(workroomsClient, input, [
      registered(),
      outbound,
      closed,
      { type: 'xstate.after.reconnectDelay.workroomsClient.active.reconnecting' },
      registered([]),
    ]);
    expect(step.snapshot.context.calls).toEqual({});
    expect(step.stopped).toEqual([`call:${CALL}`]);
    expect(step.emitted[0]).toEqual({ type: 'hangup', detail: { callid: CALL, sessionid: PEER, reason: 'remote' } });
  });

  it('refuses call and search while reconnecting, but can end a call (the server learns on register)', () => {
    const call = run(workroomsClient, input, [registered(), closed, { type: 'call', to: PEER }]);
    expect(call.sent).toEqual([]);
    expect(call.emitted).toEqual([
      {
        type: 'error',
        detail: {
          code: 'ERR_TRANSPORT_CLOSED',
          message: 'call: not connected to the server (reconnecting)',
          event: 'call',
        },
      },
    ]);
    const end = run(workroomsClient, input, [registered(), outbound, closed, { type: 'end', callids: [CALL] }]);
    expect(end.sent).toEqual([]);
    expect(end.snapshot.context.calls).toEqual({});
  });

  it('stops with the server’s error when register is refused', () => {
    const step = run(workroomsClient, input, [
      msg('error', { code: 'ERR_INVALID_FIELD', message: 'register: bad', event: 'register' }),
    ]);
    expect(step.snapshot.value).toBe('failed');
    expect(step.emitted[0]!.type).toBe('stopped');
  });

  it('ends its calls when it stops for good, each with a hangup event before stopped', () => {
    const step = run(workroomsClient, input, [
      registered(),
      outbound,
      msg('error', { code: 'ERR_INVALID_FIELD', message: 'register: bad', event: 'register' }),
    ]);
    expect(step.snapshot.value).toBe('failed');
    expect(step.sent).toEqual([]);
    expect(step.stopped).toContain(`call:${CALL}`);
    expect(step.emitted).toEqual([
      { type: 'hangup', detail: { callid: CALL, sessionid: PEER, reason: 'failed' } },
      { type: 'stopped', detail: { error: expect.objectContaining({ code: 'ERR_INVALID_FIELD' }) } },
    ]);
  });

  it('stops instead of reconnecting when another connection takes its session over (close 4001)', () => {
    const takenOver = {
      type: 'signalling.closed',
      info: { code: 4001, reason: 'taken over by a new connection', initiator: 'remote' },
    };
    const step = run(workroomsClient, input, [registered(), outbound, takenOver]);
    expect(step.snapshot.value).toBe('failed');
    expect(step.sent).toEqual([]);
    expect(step.emitted.map((e) => e.type)).toEqual(['hangup', 'stopped']);
    expect(step.emitted[1]!.detail).toMatchObject({
      error: { code: 'ERR_CANCELLED', message: expect.stringMatching(/took the session over/) },
    });
    // Any other close is a drop: reconnect.
    const dropped = run(workroomsClient, input, [
      registered(),
      { ...takenOver, info: { ...takenOver.info, code: 4000 } },
    ]);
    expect(dropped.snapshot.value).toEqual({ active: 'reconnecting' });
  });

  it('sends one hangup per call however often the application names it', () => {
    const step = run(workroomsClient, input, [registered(), outbound, { type: 'end', callids: [CALL, CALL] }]);
    expect(step.sent).toEqual([msg('hangup', { calls: [{ callid: CALL }] })]);
    expect(step.emitted.map((e) => e.type)).toEqual(['hangup']);
    const remote = run(workroomsClient, input, [
      registered(),
      inbound,
      msg('hangup', {
        calls: [
          { callid: CALL, sessionid: PEER },
          { callid: CALL, sessionid: PEER },
        ],
      }),
    ]);
    expect(remote.emitted.map((e) => e.type)).toEqual(['hangup']);
    expect(remote.stopped).toEqual([`call:${CALL}`]);
  });

  it('reports other server errors and stays ready', () => {
    const detail = { code: 'ERR_PEER_GONE', message: 'call: gone', event: 'call' };
    const step = run(workroomsClient, input, [registered(), msg('error', detail)]);
    expect(step.snapshot.value).toEqual({ active: { online: 'ready' } });
    expect(step.emitted).toEqual([{ type: 'error', detail }]);
  });

  it('hangs up every call and stops on leave', () => {
    const step = run(workroomsClient, input, [registered(), outbound, { type: 'leave' }]);
    expect(step.snapshot.value).toBe('left');
    expect(step.sent).toEqual([msg('hangup', { calls: [{ callid: CALL }] })]);
    expect(step.emitted.map((e) => e.type)).toEqual(['hangup', 'stopped']);
  });
});
