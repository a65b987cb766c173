/**
 * Level 1 for swarm: given a state and a message, the next state and what is
 * sent. Pure: XState's `transition()` computes each step without running it.
 */
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { swarmAlice } from '../machines/swarm/alice.machine.js';
import { swarmBob } from '../machines/swarm/bob.machine.js';
import { serverCodec } from '../machines/swarm/codec.js';
import { SwarmError } from '../machines/swarm/errors.js';
import { swarmMatch } from '../machines/swarm/match.machine.js';
import { swarmPeer } from '../machines/swarm/peer.machine.js';
import { memoryRegistry } from '../machines/swarm/registry.js';
import { swarmSession, type SessionServices } from '../machines/swarm/server.machine.js';
import { memoryStore } from '../machines/swarm/store.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import { silentLogger } from '../src/logger.js';
import { memoryRouter } from '../src/router.js';
import { run, type Step } from './transition-helpers.js';

const custom = (step: Step<AnyStateMachine>) => step.actions.filter((a) => !a.type.startsWith('xstate.'));
const msg = (type: string, detail: Record<string, unknown> = {}) => ({ type, detail });
const HASH = sha256Hex(new Uint8Array([1, 2, 3]));
const OTHER = sha256Hex(new Uint8Array([4]));

describe('swarmSession transitions', () => {
  const services = (): SessionServices => {
    const [transport] = memoryPair();
    return {
      registry: memoryRegistry(),
      router: memoryRouter(serverCodec()),
      transport,
      log: silentLogger,
      maxRequests: 4,
      introTimeout: 1000,
      matchTimeout: 5000,
    };
  };
  const input = () => ({ id: 's1', services: services() });

  it('registers and waits for i_am', () => {
    const step = run(swarmSession, input(), []);
    expect(step.snapshot.value).toBe('awaitingIntro');
    expect(custom(step)).toEqual([{ type: 'register', params: undefined }]);
  });

  it('takes i_am and keeps the client_id', () => {
    const step = run(swarmSession, input(), [msg('i_am', { client_id: 'laptop' })]);
    expect(step.snapshot.value).toBe('ready');
    expect(step.snapshot.context.clientId).toBe('laptop');
  });

  it('refuses everything but i_am before it', () => {
    for (const type of ['requesting_peers', 'sending_offer', 'sending_answer']) {
      const step = run(swarmSession, input(), [msg(type, { context_id: 'c', offer: 'v=0', answer: 'v=0' })]);
      expect(step.snapshot.value).toBe('awaitingIntro');
      expect(custom(step)).toEqual([
        {
          type: 'refuse',
          params: { code: 'ERR_NOT_PERMITTED', message: `${type}: introduce yourself with i_am first`, event: type },
        },
      ]);
    }
  });

  it('hands requests, offers and answers to the registry once introduced', () => {
    const intro = msg('i_am', { client_id: 'laptop' });
    const waiting = input();
    const pending = run(swarmSession, waiting, [intro, msg('requesting_peers', { context_id: 'c' })]);
    expect(waiting.services.registry.pending).toBe(1);
    expect(pending.actions).toEqual([]); // no partner: no match, no timer
    expect(
      custom(run(swarmSession, input(), [intro, msg('sending_offer', { offer: 'v=0 o', context_id: 'c' })])),
    ).toEqual([{ type: 'relayOffer', params: { offer: 'v=0 o', context_id: 'c' } }]);
    expect(
      custom(run(swarmSession, input(), [intro, msg('sending_answer', { answer: 'v=0 a', context_id: 'c' })])),
    ).toEqual([{ type: 'relayAnswer', params: { answer: 'v=0 a', context_id: 'c' } }]);
  });

  it('starts a matchTimeout timer for each match its request makes, and expires the match when it fires', () => {
    const paired = input();
    const { registry } = paired.services;
    registry.request({ session: 's0', client: 'other', context: 'o' });
    const intro = msg('i_am', { client_id: 'laptop' });
    const matched = run(swarmSession, paired, [intro, msg('requesting_peers', { context_id: 'c' })]);
    expect(matched.actions).toEqual([
      { type: 'xstate.raise', params: { event: { type: 'match.expired', id: '1' }, delay: 5000 } },
    ]);
    expect(registry.matches).toBe(1);
    const expired = run(swarmSession, paired, [intro, { type: 'match.expired', id: '1' }]);
    expect(custom(expired)).toEqual([{ type: 'expire', params: { id: '1' } }]);
  });

  it('refuses a second i_am', () => {
    const step = run(swarmSession, input(), [msg('i_am', { client_id: 'a' }), msg('i_am', { client_id: 'b' })]);
    expect(step.snapshot.context.clientId).toBe('a');
    expect(custom(step)[0]).toMatchObject({ type: 'refuse', params: { code: 'ERR_NOT_PERMITTED', event: 'i_am' } });
  });

  it('answers a bad frame with its error code', () => {
    const error = { code: 'ERR_MALFORMED_FRAME', message: 'frame is not valid JSON' };
    const step = run(swarmSession, input(), [{ type: 'signalling.error', error }]);
    expect(custom(step)).toEqual([{ type: 'refuse', params: error }]);
  });

  it('leaves when the connection closes, introduced or not', () => {
    const closed = { type: 'signalling.closed', info: { code: 1006, reason: '', initiator: 'remote' } };
    for (const events of [[closed], [msg('i_am', { client_id: 'a' }), closed]]) {
      const step = run(swarmSession, input(), events);
      expect(step.snapshot.status).toBe('done');
      expect(custom(step)).toEqual([{ type: 'leave', params: undefined }]);
    }
  });

  it('closes a connection that did not introduce itself in time', () => {
    const step = run(swarmSession, input(), [{ type: 'xstate.after.introTimeout.swarmSession.awaitingIntro' }]);
    expect(step.snapshot.status).toBe('done');
    expect(custom(step).map((a) => a.type)).toEqual(['closeIdle', 'leave']);
  });
});

describe('swarmMatch transitions', () => {
  // `report` (sendParent) is stubbed: it needs a parent, and the stub shows what the match tells its peer.
  const match = swarmMatch.provide({ actions: { report: () => {} } });
  const input = { context_id: 'c' };
  const reports = (step: Step<AnyStateMachine>) => step.actions.filter((a) => a.type === 'report').map((a) => a.params);
  const signal = (type: string, detail: Record<string, unknown>) => ({
    type: 'match.signal',
    message: msg(type, detail),
  });
  const asAlice = [msg('requesting_offer', { context_id: 'c' })];
  const offered = [...asAlice, { type: 'rtc.description', label: 'c', description: { type: 'offer', sdp: 'v=0 o' } }];
  const asBob = [
    msg('wait_for_offer', { context_id: 'c' }),
    msg('forwarding_offer', { offer: 'v=0 o', context_id: 'c' }),
  ];
  const answered = [...asBob, { type: 'rtc.description', label: 'c', description: { type: 'answer', sdp: 'v=0 a' } }];

  it('asks the server for a peer as it starts', () => {
    const step = run(match, input, []);
    expect(step.snapshot.value).toBe('pending');
    expect(reports(step)).toEqual([signal('requesting_peers', { context_id: 'c' })]);
    expect(step.spawned).toEqual([]);
  });

  it('as alice: starts an offering rtc actor, sends its offer, applies the answer', () => {
    const matched = run(match, input, asAlice);
    expect(matched.snapshot.value).toEqual({ connection: { negotiating: 'offering' } });
    expect(matched.spawned).toEqual([{ id: 'rtc', input: { label: 'c', role: 'offerer' } }]);
    expect(reports(matched)).toEqual([{ type: 'match.matched', context_id: 'c', role: 'alice' }]);
    const sent = run(match, input, offered);
    expect(sent.snapshot.value).toEqual({ connection: { negotiating: 'awaitingAnswer' } });
    // The browser's form, `{ type, sdp }`.
    expect(reports(sent)).toEqual([
      signal('sending_offer', { offer: { type: 'offer', sdp: 'v=0 o' }, context_id: 'c' }),
    ]);
    const applied = run(match, input, [...offered, msg('forwarding_answer', { answer: 'v=0 a', context_id: 'c' })]);
    expect(applied.snapshot.value).toEqual({ connection: { negotiating: 'connecting' } });
    expect(applied.sentTo).toEqual([
      { to: 'rtc', event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0 a' } } },
    ]);
    expect(reports(applied)).toEqual([]);
  });

  it('as bob: waits for the offer, starts an answering rtc actor with it, sends the answer', () => {
    const waiting = run(match, input, asBob.slice(0, 1));
    expect(waiting.snapshot.value).toBe('awaitingOffer');
    expect(waiting.spawned).toEqual([]);
    expect(reports(waiting)).toEqual([{ type: 'match.matched', context_id: 'c', role: 'bob' }]);
    const got = run(match, input, asBob);
    expect(got.snapshot.value).toEqual({ connection: { negotiating: 'answering' } });
    expect(got.spawned).toEqual([{ id: 'rtc', input: { label: 'c', role: 'answerer', remoteOffer: 'v=0 o' } }]);
    const sent = run(match, input, answered);
    expect(sent.snapshot.value).toEqual({ connection: { negotiating: 'connecting' } });
    expect(reports(sent)).toEqual([
      signal('sending_answer', { answer: { type: 'answer', sdp: 'v=0 a' }, context_id: 'c' }),
    ]);
  });

  it('reads the other side’s description as an SDP string or { type, sdp }', () => {
    const asObject = [asBob[0]!, msg('forwarding_offer', { offer: { type: 'offer', sdp: 'v=0 o' }, context_id: 'c' })];
    expect(run(match, input, asObject).spawned).toEqual([
      { id: 'rtc', input: { label: 'c', role: 'answerer', remoteOffer: 'v=0 o' } },
    ]);
    const applied = run(match, input, [
      ...offered,
      msg('forwarding_answer', { answer: { type: 'answer', sdp: 'v=0 a' }, context_id: 'c' }),
    ]);
    expect(applied.sentTo).toEqual([
      { to: 'rtc', event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0 a' } } },
    ]);
  });

  it('fails protocol, naming the field, on a description it cannot read', () => {
    let step = run(match, input, [asBob[0]!, msg('forwarding_offer', { offer: ['v=0'], context_id: 'c' })]);
    expect(step.snapshot.status).toBe('done');
    expect(step.spawned).toEqual([]);
    expect(step.snapshot.context.error).toMatchObject({
      reason: 'protocol',
      message: 'forwarding_offer: `offer` must be an SDP string or { type, sdp }, not an array',
    });
    step = run(match, input, [
      ...offered,
      msg('forwarding_answer', { answer: { type: 'offer', sdp: 'v=0 a' }, context_id: 'c' }),
    ]);
    expect(step.snapshot.status).toBe('done');
    expect(step.sentTo).toEqual([]);
    expect(step.snapshot.context.error).toMatchObject({
      reason: 'protocol',
      message: 'forwarding_answer: `answer.type` is "offer", expected "answer"',
    });
  });

  it('is linked once the data channel opens, and keeps its connection', () => {
    const [transport] = memoryPair();
    for (const [events, role] of [
      [[...offered, msg('forwarding_answer', { answer: 'v=0 a', context_id: 'c' })], 'alice'],
      [answered, 'bob'],
    ] as const) {
      const step = run(match, input, [...events, { type: 'rtc.open', label: 'c', transport }]);
      expect(step.snapshot.value).toEqual({ connection: 'linked' });
      expect(step.snapshot.status).toBe('active');
      expect(reports(step)).toEqual([{ type: 'match.linked', context_id: 'c', role, transport }]);
      expect(step.stopped).toEqual([]);
    }
  });

  it('reports the end of its connection once linked: closed, or WebRTC failed', () => {
    const [transport] = memoryPair();
    const linked = [...answered, { type: 'rtc.open', label: 'c', transport }];
    const closed = run(match, input, [...linked, { type: 'rtc.closed', label: 'c' }]);
    expect(closed.snapshot.value).toEqual({ connection: 'linked' });
    expect(reports(closed)).toEqual([{ type: 'match.unlinked', context_id: 'c', reason: 'closed' }]);
    const rtcError = new RtcError(ErrorCode.RtcFailed, 'ICE failed');
    const failed = run(match, input, [...linked, { type: 'rtc.failed', label: 'c', error: rtcError }]);
    expect(reports(failed)).toEqual([{ type: 'match.unlinked', context_id: 'c', reason: 'failed' }]);
    // The server has forgotten the match: a late error for it changes nothing.
    const late = run(match, input, [...linked, msg('error', { code: 'ERR_PEER_GONE', message: 'x', context_id: 'c' })]);
    expect(late.snapshot.value).toEqual({ connection: 'linked' });
    expect(late.actions).toEqual([]);
  });

  it('ignores messages out of turn', () => {
    for (const [events, message] of [
      [[], msg('forwarding_offer', { offer: 'v=0', context_id: 'c' })],
      [[], msg('forwarding_answer', { answer: 'v=0', context_id: 'c' })],
      [asAlice, msg('wait_for_offer', { context_id: 'c' })],
      [asAlice, msg('forwarding_answer', { answer: 'v=0', context_id: 'c' })],
      [asBob.slice(0, 1), msg('requesting_offer', { context_id: 'c' })],
      [answered, msg('forwarding_offer', { offer: 'v=0', context_id: 'c' })],
    ] as const) {
      const before = run(match, input, events);
      const step = run(match, input, [...events, message]);
      expect(step.snapshot.value).toEqual(before.snapshot.value);
      expect(step.actions).toEqual([]);
      expect(step.spawned).toEqual([]);
      expect(step.sentTo).toEqual([]);
    }
  });

  it('closes a data channel that opens before the answer was applied', () => {
    const [transport] = memoryPair();
    const step = run(match, input, [...offered, { type: 'rtc.open', label: 'c', transport }]);
    expect(step.snapshot.value).toEqual({ connection: { negotiating: 'awaitingAnswer' } });
    expect(custom(step)).toEqual([{ type: 'closeStrayChannel', params: undefined }]);
  });

  it('types why it failed: the other side left, the server gave up or refused, WebRTC failed', () => {
    const error = (code: string, message: string) => msg('error', { code, message, context_id: 'c' });
    const rtcError = new RtcError(ErrorCode.RtcFailed, 'ICE failed');
    const cases = [
      [[error('ERR_NOT_PERMITTED', 'at most 16 requests may wait at once')], 'protocol', 'ERR_NOT_PERMITTED'],
      [[...asBob.slice(0, 1), error('ERR_TIMEOUT', 'not answered within 30000 ms')], 'timeout', 'ERR_TIMEOUT'],
      [[...offered, error('ERR_PEER_GONE', 'left')], 'peer-gone', 'ERR_PEER_GONE'],
      [[...asAlice, { type: 'rtc.failed', label: 'c', error: rtcError }], 'rtc-failed', 'ERR_RTC_FAILED'],
      [
        [...asBob, { type: 'xstate.error.actor.rtc', error: new Error('No `rtc` actor') }],
        'rtc-failed',
        'ERR_RTC_FAILED',
      ],
    ] as const;
    for (const [events, reason, code] of cases) {
      const step = run(match, input, events);
      expect(step.snapshot.value).toBe('failed');
      expect(step.snapshot.status).toBe('done');
      expect(step.snapshot.output).toMatchObject({ context_id: 'c', error: { name: 'SwarmError', reason, code } });
    }
    const failed = run(match, input, [...asAlice, { type: 'rtc.failed', label: 'c', error: rtcError }]);
    expect(failed.snapshot.output!.error.cause).toBe(rtcError);
    expect(failed.stopped).toEqual(['rtc']);
  });
});

describe('swarmPeer transitions (matchmaking)', () => {
  const input = { clientId: 'me', store: memoryStore(), connections: 2 };
  const open = { type: 'signalling.open' };
  const [transport] = memoryPair();
  const linked = (role: 'alice' | 'bob') => ({ type: 'match.linked', context_id: '1', role, transport });

  it('introduces itself and starts a match for each connection wanted once the server is reachable', () => {
    const step = run(swarmPeer, input, [open]);
    expect(step.snapshot.value).toEqual({ active: { online: 'idle' } });
    expect(step.sent).toEqual([msg('i_am', { client_id: 'me' })]);
    expect(step.spawned).toEqual([
      { id: 'match:1', input: { context_id: '1' } },
      { id: 'match:2', input: { context_id: '2' } },
    ]);
  });

  it('counts a connect sent before the server is reachable', () => {
    const step = run(swarmPeer, { ...input, connections: 0 }, [{ type: 'connect', count: 3 }, open]);
    expect(step.spawned.map((s) => s.id)).toEqual(['match:1', 'match:2', 'match:3']);
    const more = run(swarmPeer, input, [open, { type: 'connect' }]);
    expect(more.spawned).toEqual([{ id: 'match:3', input: { context_id: '3' } }]);
  });

  it('sends what its matches ask, and says when one is matched', () => {
    const offer = msg('sending_offer', { offer: 'v=0 o', context_id: '1' });
    const sent = run(swarmPeer, input, [open, { type: 'match.signal', message: offer }]);
    expect(sent.sent).toEqual([offer]);
    const matched = run(swarmPeer, input, [open, { type: 'match.matched', context_id: '1', role: 'alice' }]);
    expect(matched.emitted).toEqual([{ type: 'matched', detail: { context_id: '1', role: 'alice' } }]);
  });

  it('takes an open data channel as a link: alice introduces herself, bob waits for her', () => {
    const alice = run(swarmPeer, input, [open, linked('alice')]);
    expect(alice.snapshot.context.links['1']).toEqual({ transport, role: 'alice' });
    expect(alice.spawned).toEqual([{ id: 'channel:1', input: { link: '1', transport } }]);
    expect(custom(alice)).toHaveLength(1); // the i_am frame
    const bob = run(swarmPeer, input, [open, linked('bob')]);
    expect(bob.snapshot.context.links['1']).toEqual({ transport, role: 'bob' });
    expect(custom(bob)).toEqual([]);
  });

  it('asks for a peer list only on a link whose remote introduced itself', () => {
    const step = run(swarmPeer, input, [open, linked('bob'), { type: 'requestPeerList', link: '1' }]);
    expect(custom(step)).toEqual([]);
  });

  it('drops a link whose connection ended: stops its match, channel and bob', () => {
    for (const reason of ['closed', 'failed'] as const) {
      const step = run(swarmPeer, input, [
        open,
        linked('alice'),
        { type: 'link.message', link: '1', message: msg('i_am', { client_id: 'remote' }) },
        { type: 'match.unlinked', context_id: '1', reason },
      ]);
      expect(step.snapshot.context.links).toEqual({});
      expect(step.stopped).toEqual(['match:1', 'channel:1', 'bob:1']);
      expect(step.emitted).toEqual([{ type: 'unlinked', detail: { link: '1', peer: 'remote', reason } }]);
    }
  });

  it('reports a match that failed, and lets it go', () => {
    const error = new SwarmError('peer-gone', 'the server: left');
    const step = run(swarmPeer, input, [
      open,
      { type: 'xstate.done.actor.match:1', actorId: 'match:1', output: { context_id: '1', error } },
    ]);
    expect(step.stopped).toEqual(['match:1']);
    expect(step.emitted).toEqual([{ type: 'match-failed', detail: { context_id: '1', error } }]);
    expect(step.snapshot.value).toEqual({ active: { online: 'idle' } });
  });

  it('fails on a server error without context, or when the server connection closes', () => {
    const refused = run(swarmPeer, input, [open, msg('error', { code: 'ERR_NOT_PERMITTED', message: 'no' })]);
    expect(refused.snapshot.value).toBe('failed');
    expect(refused.snapshot.context.error).toMatchObject({ reason: 'protocol', code: 'ERR_NOT_PERMITTED' });
    const lost = run(swarmPeer, input, [
      open,
      { type: 'signalling.closed', info: { code: 1006, reason: 'gone', initiator: 'remote' } },
    ]);
    expect(lost.snapshot.value).toBe('failed');
    expect(lost.snapshot.context.error).toMatchObject({ reason: 'signalling-lost' });
    expect(lost.emitted.at(-1)).toMatchObject({ type: 'stopped' });
  });

  it('leaves cleanly: closes signalling, ends closed without error', () => {
    const step = run(swarmPeer, input, [open, { type: 'leave' }]);
    expect(step.snapshot.value).toBe('closed');
    expect(step.sentTo).toContainEqual({
      to: 'signalling',
      event: { type: 'signalling.close', code: 1000, reason: 'leaving' },
    });
    expect(step.emitted).toEqual([{ type: 'stopped', detail: { error: undefined } }]);
  });

  it('queues a fetch until there is a peer to ask, and refuses a name that is not a SHA-256', () => {
    const queued = run(swarmPeer, input, [open, { type: 'fetch', hash: HASH }]);
    expect(queued.snapshot.value).toEqual({ active: { online: 'idle' } });
    expect(queued.snapshot.context.queue).toEqual([{ hash: HASH, urgent: true }]);
    const bad = run(swarmPeer, input, [open, { type: 'fetch', hash: 'cat.jpg' }]);
    expect(bad.emitted[0]).toMatchObject({
      type: 'fetch-failed',
      detail: { hash: 'cat.jpg', error: { reason: 'invalid-hash' } },
    });
    expect(bad.snapshot.context.queue).toEqual([]);
  });
});

describe('swarmAlice transitions', () => {
  const [t1] = memoryPair();
  const [t2] = memoryPair();
  const input = (over: Record<string, unknown> = {}) => ({
    hash: HASH,
    candidates: [
      { link: 'a', transport: t1 },
      { link: 'b', transport: t2 },
    ],
    store: memoryStore(),
    ...over,
  });
  const reply = (link: string, type: string, detail: Record<string, unknown> = {}) => ({
    type: 'link.message',
    link,
    message: { type, detail: { hash: HASH, ...detail } },
  });

  it('asks its first candidate: querying_resource, or reserve_resource when not urgent', () => {
    const urgent = run(swarmAlice, input(), []);
    expect(urgent.snapshot.value).toBe('asking');
    expect(custom(urgent)).toContainEqual({ type: 'transmit', params: msg('querying_resource', { hash: HASH }) });
    const lazy = run(swarmAlice, input({ urgent: false }), []);
    expect(custom(lazy)).toContainEqual({ type: 'transmit', params: msg('reserve_resource', { hash: HASH }) });
  });

  it('gives the go after resource_found, and takes the bytes after transferring_resource', () => {
    const found = run(swarmAlice, input(), [reply('a', 'resource_found', { size: 10 })]);
    expect(found.snapshot.value).toBe('requesting');
    expect(found.snapshot.context.size).toBe(10);
    expect(custom(found)).toEqual([{ type: 'transmit', params: msg('requesting_resource', { hash: HASH }) }]);
    const receiving = run(swarmAlice, input(), [
      reply('a', 'resource_found', { size: 10 }),
      reply('a', 'transferring_resource'),
    ]);
    expect(receiving.snapshot.value).toEqual({ receiving: 'flowing' });
  });

  it('ignores answers from another link and for another hash', () => {
    const step = run(swarmAlice, input(), [
      reply('b', 'resource_found', { size: 10 }),
      { type: 'link.message', link: 'a', message: msg('resource_found', { hash: OTHER, size: 10 }) },
    ]);
    expect(step.snapshot.value).toBe('asking');
    expect(step.snapshot.context.index).toBe(0);
  });

  it('asks the next candidate after not found, an error, a closed link or a timeout, then fails not-found', () => {
    const step = run(swarmAlice, input(), [reply('a', 'resource_not_found'), { type: 'link.closed', link: 'b' }]);
    expect(step.snapshot.value).toBe('failed');
    expect(step.snapshot.context.misses.map((m: { reason: string }) => m.reason)).toEqual(['not-found', 'peer-gone']);
    expect(step.snapshot.context.error).toMatchObject({ reason: 'not-found', code: 'ERR_PEER_GONE' });
    expect(step.snapshot.context.error!.misses).toEqual(step.snapshot.context.misses);
    const timedOut = run(swarmAlice, input(), [{ type: 'xstate.after.answerTimeout.swarmAlice.asking' }]);
    expect(timedOut.snapshot.context.index).toBe(1);
    expect(timedOut.snapshot.context.misses[0]).toMatchObject({ link: 'a', reason: 'timeout' });
  });

  it('waits answerTimeout, not reserveTimeout, for an urgent query (even when reserveTimeout is the shorter)', () => {
    const shortReserve = input({ answerTimeout: 10_000, reserveTimeout: 1000 });
    const early = run(swarmAlice, shortReserve, [{ type: 'xstate.after.reserveTimeout.swarmAlice.asking' }]);
    expect(early.snapshot.value).toBe('asking');
    expect(early.snapshot.context.misses).toEqual([]);
    const lazy = run(swarmAlice, input({ urgent: false, answerTimeout: 1000 }), [
      { type: 'xstate.after.answerTimeout.swarmAlice.asking' },
    ]);
    expect(lazy.snapshot.context.misses).toEqual([]);
  });

  it('skips a resource over maxSize', () => {
    const step = run(swarmAlice, input({ maxSize: 5 }), [reply('a', 'resource_found', { size: 6 })]);
    expect(step.snapshot.context.misses[0]).toMatchObject({ reason: 'too-large' });
  });

  it('fails at once for no candidates, or a name that is not a SHA-256', () => {
    expect(run(swarmAlice, input({ candidates: [] }), []).snapshot.context.error).toMatchObject({ reason: 'no-peers' });
    expect(run(swarmAlice, input({ hash: 'x' }), []).snapshot.context.error).toMatchObject({ reason: 'invalid-hash' });
  });

  it('closes a link that sent bad bytes and moves on; fails outright when the store fails', () => {
    const receiving = [reply('a', 'resource_found', { size: 10 }), reply('a', 'transferring_resource')];
    const bad = run(swarmAlice, input(), [
      ...receiving,
      { type: 'collect.failed', reason: 'digest-mismatch', message: 'bad' },
    ]);
    expect(bad.snapshot.context.index).toBe(1);
    expect(custom(bad).map((a) => a.type)).toContain('closeLink');
    const disk = run(swarmAlice, input(), [
      ...receiving,
      { type: 'collect.failed', reason: 'store-failed', message: 'full' },
    ]);
    expect(disk.snapshot.value).toBe('failed');
    expect(disk.snapshot.context.error).toMatchObject({ reason: 'store-failed', code: 'ERR_IO' });
  });
});

describe('swarmBob transitions', () => {
  const store = memoryStore();
  const have = store.add(new Uint8Array([1, 2, 3]));
  const [transport] = memoryPair();
  const input = { link: 'L', transport, store };
  const ask = (type: string, hash: string) => ({ type: 'link.message', link: 'L', message: msg(type, { hash }) });

  it('answers queries from the store', () => {
    expect(custom(run(swarmBob, input, [ask('querying_resource', have)]))).toEqual([
      { type: 'transmit', params: msg('resource_found', { hash: have, size: 3 }) },
    ]);
    expect(custom(run(swarmBob, input, [ask('querying_resource', OTHER)]))).toEqual([
      { type: 'transmit', params: msg('resource_not_found', { hash: OTHER }) },
    ]);
  });

  it('starts a transfer for what it has, refuses a second one meanwhile', () => {
    const step = run(swarmBob, input, [ask('requesting_resource', have)]);
    expect(step.snapshot.value).toBe('transferring');
    expect(step.snapshot.context.serving).toBe(have);
    expect(custom(step)).toEqual([{ type: 'transmit', params: msg('transferring_resource', { hash: have }) }]);
    const second = run(swarmBob, input, [ask('requesting_resource', have), ask('requesting_resource', have)]);
    expect(custom(second)[0]).toMatchObject({ type: 'transmit', params: { type: 'error', detail: { hash: have } } });
  });

  it('goes back to idle when the upload ends, closing the link if reading failed', () => {
    const done = run(swarmBob, input, [ask('requesting_resource', have), { type: 'upload.done' }]);
    expect(done.snapshot.value).toBe('idle');
    const failed = run(swarmBob, input, [
      ask('requesting_resource', have),
      { type: 'upload.failed', reason: 'source-failed', message: 'io' },
    ]);
    expect(failed.snapshot.value).toBe('idle');
    expect(custom(failed).map((a) => a.type)).toContain('closeLink');
  });
});
