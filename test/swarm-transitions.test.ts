/**
 * Level 1 for swarm: given a state and a message, the next state and what is
 * sent. Pure: XState's `transition()` computes each step without running it.
 */
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { sha256Hex } from '../machines/filedrop/files.js';
import { swarmAlice } from '../machines/swarm/alice.machine.js';
import { swarmBob } from '../machines/swarm/bob.machine.js';
import { serverCodec } from '../machines/swarm/codec.js';
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

describe('swarmPeer transitions (matchmaking)', () => {
  const input = { clientId: 'me', store: memoryStore(), connections: 2 };
  const open = { type: 'signalling.open' };

  it('introduces itself and asks for its connections once the server is reachable', () => {
    const step = run(swarmPeer, input, [open]);
    expect(step.snapshot.value).toEqual({ active: { online: 'idle' } });
    expect(step.sent).toEqual([
      msg('i_am', { client_id: 'me' }),
      msg('requesting_peers', { context_id: '1' }),
      msg('requesting_peers', { context_id: '2' }),
    ]);
    expect(step.snapshot.context.matches).toEqual({ 1: 'pending', 2: 'pending' });
  });

  it('counts a connect sent before the server is reachable', () => {
    const step = run(swarmPeer, { ...input, connections: 0 }, [{ type: 'connect', count: 3 }, open]);
    expect(step.sent.filter((m) => m.type === 'requesting_peers')).toHaveLength(3);
  });

  it('as alice: makes the offer, sends it, and applies the answer', () => {
    const offered = run(swarmPeer, input, [open, msg('requesting_offer', { context_id: '1' })]);
    expect(offered.spawned).toEqual([{ id: 'rtc:1', input: { label: '1', role: 'offerer' } }]);
    expect(offered.emitted).toContainEqual({ type: 'matched', detail: { context_id: '1', role: 'alice' } });
    const description = { type: 'rtc.description', label: '1', description: { type: 'offer', sdp: 'v=0 o' } };
    const sent = run(swarmPeer, input, [open, msg('requesting_offer', { context_id: '1' }), description]);
    expect(sent.sent).toEqual([msg('sending_offer', { offer: 'v=0 o', context_id: '1' })]);
    const answered = run(swarmPeer, input, [
      open,
      msg('requesting_offer', { context_id: '1' }),
      description,
      msg('forwarding_answer', { answer: 'v=0 a', context_id: '1' }),
    ]);
    expect(answered.sentTo).toEqual([
      { to: 'rtc:1', event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0 a' } } },
    ]);
    expect(answered.snapshot.context.matches['1']).toBe('aliceConnecting');
  });

  it('as bob: waits for the offer, answers it', () => {
    const events = [
      open,
      msg('wait_for_offer', { context_id: '2' }),
      msg('forwarding_offer', { offer: 'v=0 o', context_id: '2' }),
    ];
    const got = run(swarmPeer, input, events);
    expect(got.spawned).toEqual([{ id: 'rtc:2', input: { label: '2', role: 'answerer', remoteOffer: 'v=0 o' } }]);
    const answered = run(swarmPeer, input, [
      ...events,
      { type: 'rtc.description', label: '2', description: { type: 'answer', sdp: 'v=0 a' } },
    ]);
    expect(answered.sent).toEqual([msg('sending_answer', { answer: 'v=0 a', context_id: '2' })]);
    expect(answered.snapshot.context.matches['2']).toBe('bobConnecting');
  });

  it('ignores matchmaking messages for a context it has not asked for, or out of turn', () => {
    for (const message of [
      msg('requesting_offer', { context_id: '9' }),
      msg('forwarding_offer', { offer: 'v=0', context_id: '1' }),
      msg('forwarding_answer', { answer: 'v=0', context_id: '1' }),
    ]) {
      const step = run(swarmPeer, input, [open, message]);
      expect(step.spawned).toEqual([]);
      expect(step.sentTo).toEqual([]);
      expect(step.snapshot.context.matches).toEqual({ 1: 'pending', 2: 'pending' });
    }
  });

  it('drops a match the server says is gone, and stops its connection', () => {
    const step = run(swarmPeer, input, [
      open,
      msg('requesting_offer', { context_id: '1' }),
      msg('error', { code: 'ERR_PEER_GONE', message: 'left', context_id: '1' }),
    ]);
    expect(step.stopped).toEqual(['rtc:1']);
    expect(step.snapshot.context.matches).toEqual({ 2: 'pending' });
    expect(step.emitted[0]).toMatchObject({
      type: 'match-failed',
      detail: { context_id: '1', error: { name: 'SwarmError', reason: 'peer-gone', code: 'ERR_PEER_GONE' } },
    });
  });

  it('types why a match failed: WebRTC, a request the server refused, or a match it gave up on', () => {
    const rtcError = new RtcError(ErrorCode.RtcFailed, 'ICE failed');
    const failed = run(swarmPeer, input, [
      open,
      msg('requesting_offer', { context_id: '1' }),
      { type: 'rtc.failed', label: '1', error: rtcError },
    ]);
    expect(failed.stopped).toEqual(['rtc:1']);
    expect(failed.emitted[0]).toMatchObject({
      type: 'match-failed',
      detail: { context_id: '1', error: { reason: 'rtc-failed', code: 'ERR_RTC_FAILED', cause: rtcError } },
    });
    const refused = run(swarmPeer, input, [
      open,
      msg('error', { code: 'ERR_NOT_PERMITTED', message: 'at most 16 requests may wait at once', context_id: '2' }),
    ]);
    expect(refused.snapshot.context.matches).toEqual({ 1: 'pending' });
    expect(refused.emitted[0]).toMatchObject({
      type: 'match-failed',
      detail: { context_id: '2', error: { reason: 'protocol', code: 'ERR_NOT_PERMITTED' } },
    });
    const expired = run(swarmPeer, input, [
      open,
      msg('wait_for_offer', { context_id: '1' }),
      msg('error', { code: 'ERR_TIMEOUT', message: 'the match was not answered within 30000 ms', context_id: '1' }),
    ]);
    expect(expired.snapshot.context.matches).toEqual({ 2: 'pending' });
    expect(expired.emitted[0]).toMatchObject({
      type: 'match-failed',
      detail: { context_id: '1', error: { reason: 'timeout', code: 'ERR_TIMEOUT' } },
    });
  });

  it('asks for a peer list only on a link whose remote introduced itself', () => {
    const [transport] = memoryPair();
    const step = run(swarmPeer, input, [
      open,
      msg('wait_for_offer', { context_id: '1' }),
      msg('forwarding_offer', { offer: 'v=0', context_id: '1' }),
      { type: 'rtc.description', label: '1', description: { type: 'answer', sdp: 'v=0' } },
      { type: 'rtc.open', label: '1', transport },
      { type: 'requestPeerList', link: '1' },
    ]);
    expect(step.snapshot.context.links['1']).toEqual({ transport, role: 'bob' });
    expect(custom(step)).toEqual([]);
  });

  it('takes an open data channel as a link, and closes one for no match', () => {
    const [transport] = memoryPair();
    const step = run(swarmPeer, input, [
      open,
      msg('requesting_offer', { context_id: '1' }),
      { type: 'rtc.description', label: '1', description: { type: 'offer', sdp: 'v=0' } },
      msg('forwarding_answer', { answer: 'v=0', context_id: '1' }),
      { type: 'rtc.open', label: '1', transport },
    ]);
    expect(step.snapshot.context.links['1']).toEqual({ transport, role: 'alice' });
    expect(step.snapshot.context.matches['1']).toBeUndefined();
    expect(step.spawned).toEqual([{ id: 'channel:1', input: { link: '1', transport } }]);
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
