/**
 * Level 1 for filedrop: given a state and a message, the next state and what
 * is sent. Pure: XState's `transition()` computes each step without running it.
 */
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { serverCodec } from '../machines/filedrop/codec.js';
import { memorySink, memorySource } from '../machines/transfer/files.js';
import type { ClientMessage, FileInfo } from '../machines/filedrop/protocol.js';
import { filedropReceiver } from '../machines/filedrop/receiver.machine.js';
import { memoryRegistry } from '../machines/filedrop/registry.js';
import { filedropSender, filedropSenderTransfer } from '../machines/filedrop/sender.machine.js';
import { filedropSession, type SessionServices } from '../machines/filedrop/server.machine.js';
import { silentLogger } from '../src/logger.js';
import { memoryRouter } from '../src/router.js';
import { run as runSteps, type Step } from './transition-helpers.js';

const run = <M extends AnyStateMachine>(
  machine: M,
  input: unknown,
  events: readonly unknown[],
): Step<M, ClientMessage> => runSteps<M, ClientMessage>(machine, input, events);

const msg = (type: string, detail: Record<string, unknown> = {}) => ({ type, detail });
const rtc = (type: string, label: string, extra: Record<string, unknown> = {}) => ({ type, label, ...extra });
/** The custom action calls of a step, without XState's own. */
const custom = (step: Step<AnyStateMachine>) => step.actions.filter((a) => !a.type.startsWith('xstate.'));
const errorOf = (step: Step<AnyStateMachine>) => (step.snapshot.context as { error?: { reason: string } }).error;

const SENDER = 'K7PQ2MZA';
const RECEIVER = 'H3XN8RTW';
const STRANGER = 'ZZZZ9999';
const file: FileInfo = { name: 'a.bin', size: 100, type: '', sha256: 'a'.repeat(64) };
const [channel] = memoryPair();

describe('filedropSession transitions', () => {
  const services = (linked = false): SessionServices => {
    const registry = memoryRegistry();
    for (const id of [SENDER, RECEIVER, STRANGER]) registry.add(id);
    if (linked) registry.link(RECEIVER, SENDER);
    const [serverEnd] = memoryPair();
    return { registry, router: memoryRouter(serverCodec()), transport: serverEnd, log: silentLogger };
  };
  const as = (id: string, linked = false) => ({ id, services: services(linked) });
  const transmitted = (step: Step<AnyStateMachine>) =>
    custom(step)
      .filter((a) => a.type === 'transmit')
      .map((a) => a.params);

  it('registers and assigns the client its id as it starts', () => {
    const step = run(filedropSession, as(RECEIVER), []);
    expect(step.snapshot.value).toBe('open');
    expect(custom(step)).toEqual([
      { type: 'register', params: undefined },
      { type: 'transmit', params: { to: RECEIVER, message: { type: 'assign', detail: { peer: RECEIVER } } } },
    ]);
  });

  it('forwards a request to a connected peer, stamped with the sender, and links the two', () => {
    const step = run(filedropSession, as(RECEIVER), [msg('request', { peer: SENDER })]);
    expect(transmitted(step)).toEqual([
      { to: SENDER, message: { type: 'request', detail: { peer: RECEIVER } }, link: true },
    ]);
  });

  it('answers a message to a peer that is not connected with peer not exists', () => {
    const step = run(filedropSession, as(RECEIVER), [msg('request', { peer: '22222222' })]);
    expect(transmitted(step)).toEqual([
      { to: RECEIVER, message: { type: 'peer not exists', detail: { peer: '22222222', event: 'request' } } },
    ]);
  });

  it('forwards each later message only the way the request opened', () => {
    const data = { type: 'offer', sdp: 'x' };
    // receiver → sender, after the request
    expect(transmitted(run(filedropSession, as(RECEIVER, true), [msg('offer', { peer: SENDER, data })]))).toEqual([
      { to: SENDER, message: { type: 'offer', detail: { peer: RECEIVER, data } } },
    ]);
    // sender → receiver, after the request
    expect(
      transmitted(run(filedropSession, as(SENDER, true), [msg('response', { peer: RECEIVER, data: file })])),
    ).toEqual([{ to: RECEIVER, message: { type: 'response', detail: { peer: SENDER, data: file } } }]);
    // the wrong way, or without a request
    for (const [self, type, to, why] of [
      [SENDER, 'offer', RECEIVER, `offer: you have not sent ${RECEIVER} a request`],
      [RECEIVER, 'retry', SENDER, `retry: ${SENDER} has not sent you a request`],
      [STRANGER, 'response', RECEIVER, `response: ${RECEIVER} has not sent you a request`],
      [STRANGER, 'candidate', SENDER, 'candidate: neither of you has sent the other a request'],
    ] as const) {
      const step = run(filedropSession, as(self, true), [msg(type, { peer: to, data: {} })]);
      expect(transmitted(step)).toEqual([
        { to: self, message: { type: 'error', detail: { code: 'ERR_NOT_PERMITTED', message: why, event: type } } },
      ]);
    }
  });

  it('answers a peer that is not a string with invalid peer id, naming the message', () => {
    const step = run(filedropSession, as(RECEIVER), [msg('session.invalidPeer', { event: 'offer' })]);
    expect(transmitted(step)).toEqual([
      { to: RECEIVER, message: { type: 'invalid peer id', detail: { event: 'offer' } } },
    ]);
  });

  it('answers a string nobody holds, in any form, with peer not exists (cut to 128 characters)', () => {
    for (const peer of ['k7pq0oil', '', 'Z'.repeat(200)]) {
      const step = run(filedropSession, as(RECEIVER), [msg('request', { peer })]);
      expect(transmitted(step)).toEqual([
        { to: RECEIVER, message: { type: 'peer not exists', detail: { peer: peer.slice(0, 128), event: 'request' } } },
      ]);
    }
  });

  it('answers a frame the codec refused with error and its code, and stays open', () => {
    const error = { code: 'ERR_UNKNOWN_MESSAGE', message: 'unknown message type `x`' };
    const step = run(filedropSession, as(RECEIVER), [{ type: 'signalling.error', error }]);
    expect(step.snapshot.value).toBe('open');
    expect(transmitted(step)).toEqual([{ to: RECEIVER, message: { type: 'error', detail: error } }]);
  });

  it('leaves when the connection closes', () => {
    const step = run(filedropSession, as(RECEIVER), [{ type: 'signalling.closed', info: { code: 1006 } }]);
    expect(step.snapshot.status).toBe('done');
    expect(custom(step)).toEqual([{ type: 'leave', params: undefined }]);
  });
});

describe('filedropReceiver transitions', () => {
  const sink = memorySink();
  const input = { code: 'k7pq-2mza', sink, maxRetries: 1 };
  /** A receiver that does not open fresh connections: it waits for the sender's word, as one with a plain sink does. */
  const noReconnect = { ...input, maxReconnects: 0 };
  const requesting = [msg('signalling.open'), msg('assign', { peer: RECEIVER })];
  const engaged = [...requesting, msg('response', { peer: SENDER, data: file })];
  const connecting = [
    ...engaged,
    { type: 'xstate.done.actor.openSink', output: sink },
    { type: 'xstate.done.actor.resumeOffset', output: 0 },
  ];
  const receiving = [...connecting, rtc('rtc.open', SENDER, { transport: channel })];
  const progress = (received: number) => ({ type: 'download.progress', received });
  const sentProgress = (step: Step<AnyStateMachine, ClientMessage>) => step.sent.filter((m) => m.type === 'progress');

  it('fails at once, without connecting, for a code that cannot be one', () => {
    const step = run(filedropReceiver, { code: 'hello', sink }, []);
    expect(step.snapshot.value).toBe('failed');
    expect(errorOf(step)).toMatchObject({ reason: 'invalid-code' });
    expect(step.emitted).toEqual([
      { type: 'stopped', detail: { error: expect.objectContaining({ reason: 'invalid-code' }) } },
    ]);
  });

  it('requests the file by its code (made canonical) once assigned', () => {
    const step = run(filedropReceiver, input, requesting);
    expect(step.snapshot.value).toEqual({ active: 'requesting' });
    expect(step.sent).toEqual([{ type: 'request', detail: { peer: SENDER } }]);
    expect(step.emitted).toEqual([{ type: 'assigned', detail: { id: RECEIVER } }]);
  });

  it('ignores what the server relays before assign', () => {
    const step = run(filedropReceiver, input, [msg('signalling.open'), msg('response', { peer: SENDER, data: file })]);
    expect(step.snapshot.value).toEqual({ active: 'awaitingAssign' });
    expect(step.sent).toEqual([]);
  });

  it('opens its sink when the sender describes the file, and ignores responses from others', () => {
    const step = run(filedropReceiver, input, engaged);
    expect(step.snapshot.value).toEqual({ active: { engaged: 'openingSink' } });
    expect(step.snapshot.context.file).toEqual(file);
    expect(step.emitted).toEqual([{ type: 'file', detail: { file } }]);
    const other = run(filedropReceiver, input, [...requesting, msg('response', { peer: STRANGER, data: file })]);
    expect(other.snapshot.value).toEqual({ active: 'requesting' });
  });

  it('fails with the seed errors and refusals while requesting', () => {
    expect(
      errorOf(
        run(filedropReceiver, input, [...requesting, msg('peer not exists', { peer: SENDER, event: 'request' })]),
      ),
    ).toMatchObject({ reason: 'no-such-peer' });
    expect(
      errorOf(run(filedropReceiver, input, [...requesting, msg('invalid peer id', { event: 'request' })])),
    ).toMatchObject({ reason: 'invalid-code' });
    expect(
      errorOf(
        run(filedropReceiver, input, [...requesting, msg('response', { peer: SENDER, data: { error: 'busy' } })]),
      ),
    ).toMatchObject({ reason: 'busy' });
    const timeout = run(filedropReceiver, input, [
      ...requesting,
      { type: 'xstate.after.responseTimeout.filedropReceiver.active.requesting' },
    ]);
    expect(errorOf(timeout)).toMatchObject({ reason: 'timeout' });
    expect(sentProgress(timeout)).toEqual([
      { type: 'progress', detail: { peer: SENDER, data: { received: 0, total: 0, error: 'timeout' } } },
    ]);
  });

  it('makes the offer and relays its candidates; applies the answer and candidates of the sender only', () => {
    const offer = run(filedropReceiver, input, [
      ...connecting,
      rtc('rtc.description', SENDER, { description: { type: 'offer', sdp: 'O' } }),
    ]);
    expect(offer.snapshot.value).toEqual({ active: { engaged: { transferring: 'connecting' } } });
    expect(offer.sent).toEqual([{ type: 'offer', detail: { peer: SENDER, data: { type: 'offer', sdp: 'O' } } }]);
    const cand = { candidate: 'candidate:1', sdpMid: '0' };
    expect(
      run(filedropReceiver, input, [...connecting, rtc('rtc.candidate', SENDER, { candidate: cand })]).sent,
    ).toEqual([{ type: 'candidate', detail: { peer: SENDER, data: cand } }]);
    expect(
      run(filedropReceiver, input, [...connecting, msg('answer', { peer: SENDER, data: { type: 'answer', sdp: 'A' } })])
        .sentTo,
    ).toEqual([{ to: 'rtc', event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'A' } } }]);
    expect(
      run(filedropReceiver, input, [...connecting, msg('candidate', { peer: SENDER, data: cand })]).sentTo,
    ).toEqual([{ to: 'rtc', event: { type: 'rtc.remoteCandidate', candidate: cand } }]);
    expect(
      run(filedropReceiver, input, [...connecting, msg('candidate', { peer: STRANGER, data: cand })]).sentTo,
    ).toEqual([]);
  });

  it('restarts ICE on retry, up to maxRetries, then gives up and tells the sender', () => {
    const retry = msg('retry', { peer: SENDER });
    const first = run(filedropReceiver, input, [...connecting, retry]);
    expect(first.sentTo).toEqual([{ to: 'rtc', event: { type: 'rtc.restartIce' } }]);
    expect(first.emitted).toEqual([{ type: 'retrying', detail: { attempt: 1 } }]);
    // A fresh connectTimeout for the new attempt.
    expect(first.actions).toContainEqual({ type: 'xstate.cancel', params: expect.anything() });
    // (A receiver that opens fresh connections makes one instead: see below.)
    const second = run(filedropReceiver, noReconnect, [...connecting, retry, retry]);
    expect(second.snapshot.value).toBe('failed');
    expect(errorOf(second)).toMatchObject({ reason: 'rtc-failed' });
    expect(second.sent).toEqual([
      { type: 'progress', detail: { peer: SENDER, data: { received: 0, total: 100, error: 'rtc-failed' } } },
    ]);
    // Its own rtc.failed is not a reason to give up: the sender decides (retry).
    expect(
      run(filedropReceiver, input, [...connecting, rtc('rtc.failed', SENDER, { error: new Error('ice') })]).snapshot
        .value,
    ).toEqual({
      active: { engaged: { transferring: 'connecting' } },
    });
  });

  it('opens a fresh connection, not another restart, when a retry says its last ICE restart did not help', () => {
    const retry = msg('retry', { peer: SENDER });
    const offered = rtc('rtc.description', SENDER, { description: { type: 'offer', sdp: 'O2' } });
    const maxRetries = { ...input, maxRetries: 3 };
    // The restart offer went out and no byte came since: the sender's side could not apply it
    // (node-datachannel rejects a restart offer). Whatever retries are left, a fresh connection follows.
    for (const before of [connecting, receiving]) {
      for (const given of [input, maxRetries]) {
        const step = run(filedropReceiver, given, [...before, retry, offered, retry]);
        expect(step.snapshot.value).toEqual({ active: { engaged: 'reconnecting' } });
        expect(step.sentTo).toEqual([]);
        expect(step.emitted).toEqual([]);
        expect(step.sent).toEqual([]);
      }
    }
    // Its offer names the offset: a fresh connection, not a restart.
    const fresh = run(filedropReceiver, input, [
      ...receiving,
      progress(64),
      retry,
      offered,
      retry,
      { type: 'xstate.done.actor.resumeOffset', output: 0 },
      offered,
    ]);
    // The fresh connection gets its own ICE restarts: a retry on it (once the sender answered it) restarts, not fails.
    const restarted = run(filedropReceiver, input, [
      ...receiving,
      retry,
      offered,
      retry,
      { type: 'xstate.done.actor.resumeOffset', output: 0 },
      offered,
      msg('answer', { peer: SENDER, data: { type: 'answer', sdp: 'A2' } }),
      retry,
    ]);
    expect(restarted.sentTo).toEqual([{ to: 'rtc', event: { type: 'rtc.restartIce' } }]);
    expect(restarted.emitted).toEqual([{ type: 'retrying', detail: { attempt: 1 } }]);
    expect(fresh.sent).toEqual([
      { type: 'offer', detail: { peer: SENDER, data: { type: 'offer', sdp: 'O2', offset: 0 } } },
    ]);
    // Bytes flowed after the restart: it helped, and the next retry restarts again.
    const helped = run(filedropReceiver, maxRetries, [...receiving, retry, offered, progress(64), retry]);
    expect(helped.snapshot.value).toEqual({ active: { engaged: { transferring: { receiving: 'cooling' } } } });
    expect(helped.sentTo).toEqual([{ to: 'rtc', event: { type: 'rtc.restartIce' } }]);
    // The original project's sender (no `sha256` or `trailer` in its response) gets the restarts it asks for.
    const original = { peer: SENDER, data: { fileName: 'a.bin', fileSize: 100 } };
    const originalConnecting = [...requesting, msg('response', original), ...connecting.slice(engaged.length)];
    const asked = run(filedropReceiver, maxRetries, [...originalConnecting, retry, offered, retry]);
    expect(asked.sentTo).toEqual([{ to: 'rtc', event: { type: 'rtc.restartIce' } }]);
    // A sink that cannot resume: as before, the retries run out.
    expect(run(filedropReceiver, noReconnect, [...connecting, retry, offered, retry]).snapshot.value).toBe('failed');
  });

  it('ignores a retry the sender sent before the fresh offer reached it: it is about the connection replaced', () => {
    const retry = msg('retry', { peer: SENDER });
    const offered = rtc('rtc.description', SENDER, { description: { type: 'offer', sdp: 'O2' } });
    const answered = msg('answer', { peer: SENDER, data: { type: 'answer', sdp: 'A2' } });
    // The restart the sender asked for brought no byte, and its next retry opened a fresh connection.
    const fresh = [...receiving, retry, offered, retry, { type: 'xstate.done.actor.resumeOffset', output: 0 }];
    // Another retry from the sender, still about the old connection, before our fresh offer is out: no
    // restart of the new one, and its offer still names the offset that makes it a fresh one for the sender.
    const early = run(filedropReceiver, input, [...fresh, retry]);
    expect(early.snapshot.value).toEqual({ active: { engaged: { transferring: 'connecting' } } });
    expect([early.sentTo, early.emitted, early.sent]).toEqual([[], [], []]);
    expect(early.snapshot.context).toMatchObject({ retries: 0, restarting: false, unanswered: true });
    expect(run(filedropReceiver, input, [...fresh, retry, offered]).sent).toEqual([
      { type: 'offer', detail: { peer: SENDER, data: { type: 'offer', sdp: 'O2', offset: 0 } } },
    ]);
    // ...or once it is out, before the sender answered it: ignored too. So also after a fresh connection
    // that followed a lost channel, with no ICE restart to spare (a retry would have ended it `rtc-failed`).
    const afterLoss = [...receiving, rtc('rtc.closed', SENDER), { type: 'xstate.done.actor.resumeOffset', output: 0 }];
    for (const [given, before] of [
      [input, fresh],
      [{ ...input, maxRetries: 0 }, afterLoss],
    ] as const) {
      const late = run(filedropReceiver, given, [...before, offered, retry]);
      expect(late.snapshot.value).toEqual({ active: { engaged: { transferring: 'connecting' } } });
      expect([late.sentTo, late.emitted, late.sent]).toEqual([[], [], []]);
    }
    // Once the sender answered the fresh offer, or its channel opened, a retry is about this connection.
    for (const heard of [answered, rtc('rtc.open', SENDER, { transport: channel })]) {
      const own = run(filedropReceiver, input, [...fresh, offered, heard, retry]);
      expect(own.sentTo).toEqual([{ to: 'rtc', event: { type: 'rtc.restartIce' } }]);
      expect(own.emitted).toEqual([{ type: 'retrying', detail: { attempt: 1 } }]);
    }
    // The first connection has no earlier one: a retry before the answer restarts it, as before.
    expect(run(filedropReceiver, input, [...connecting, offered, retry]).sentTo).toEqual([
      { to: 'rtc', event: { type: 'rtc.restartIce' } },
    ]);
  });

  it('gives up when the ICE restart it was asked for fails (node-datachannel cannot restart ICE), and tells the sender', () => {
    const retry = msg('retry', { peer: SENDER });
    const failed = rtc('rtc.failed', SENDER, {
      error: new Error('this RTCPeerConnection does not support ICE restart'),
    });
    for (const before of [connecting, receiving]) {
      const step = run(filedropReceiver, noReconnect, [...before, retry, failed]);
      expect(step.snapshot.value).toBe('failed');
      expect(errorOf(step)).toMatchObject({ reason: 'rtc-failed', message: expect.stringMatching(/ICE restart/) });
      expect(step.sent).toEqual([
        { type: 'progress', detail: { peer: SENDER, data: { received: 0, total: 100, error: 'rtc-failed' } } },
      ]);
    }
    // A sink that can resume: a fresh connection carries on from what it holds instead.
    expect(run(filedropReceiver, input, [...receiving, retry, failed]).snapshot.value).toEqual({
      active: { engaged: 'reconnecting' },
    });
    // Once the restart offer is out, an ICE failure is the sender's to act on again.
    const offered = rtc('rtc.description', SENDER, { description: { type: 'offer', sdp: 'O2' } });
    expect(run(filedropReceiver, input, [...receiving, retry, offered, failed]).snapshot.value).toEqual({
      active: { engaged: { transferring: { receiving: 'cooling' } } },
    });
  });

  it('fails with timeout when the channel does not open within connectTimeout', () => {
    const step = run(filedropReceiver, input, [
      ...connecting,
      { type: 'xstate.after.connectTimeout.filedropReceiver.active.engaged.transferring.connecting' },
    ]);
    expect(errorOf(step)).toMatchObject({ reason: 'timeout' });
    expect(custom(step).map((a) => a.type)).toContain('abortSink');
  });

  it('reports progress to the sender at most once per progressInterval, from received: 0 as the channel opens', () => {
    const report = (received: number) => ({
      type: 'progress',
      detail: { peer: SENDER, data: { received, total: 100 } },
    });
    const opened = run(filedropReceiver, input, receiving);
    // At once: the sender paces itself by what we report from now on.
    expect(opened.snapshot.value).toEqual({ active: { engaged: { transferring: { receiving: 'cooling' } } } });
    expect(sentProgress(opened)).toEqual([report(0)]);
    const held = run(filedropReceiver, input, [...receiving, progress(30)]);
    expect(sentProgress(held)).toEqual([]);
    expect(held.emitted).toEqual([{ type: 'progress', detail: { received: 30, total: 100 } }]);
    const tick = {
      type: 'xstate.after.progressInterval.filedropReceiver.active.engaged.transferring.receiving.cooling',
    };
    const late = run(filedropReceiver, input, [...receiving, progress(30), progress(60), tick]);
    expect(sentProgress(late)).toEqual([report(60)]);
    expect(late.snapshot.value).toEqual({ active: { engaged: { transferring: { receiving: 'cooling' } } } });
    const rest = run(filedropReceiver, input, [...receiving, tick]);
    expect(sentProgress(rest)).toEqual([]);
    expect(rest.snapshot.value).toEqual({ active: { engaged: { transferring: { receiving: 'idle' } } } });
    const first = run(filedropReceiver, input, [...receiving, tick, progress(30)]);
    expect(first.snapshot.value).toEqual({ active: { engaged: { transferring: { receiving: 'cooling' } } } });
    expect(sentProgress(first)).toEqual([report(30)]);
    expect(first.emitted).toEqual([{ type: 'progress', detail: { received: 30, total: 100 } }]);
  });

  it('ends done once the download is verified, telling the sender (our progress, then the original done)', () => {
    const step = run(filedropReceiver, input, [
      ...receiving,
      { type: 'download.done', received: 100, sha256: file.sha256, verified: true },
    ]);
    expect(step.snapshot.value).toBe('done');
    expect(step.sent).toEqual([
      { type: 'progress', detail: { peer: SENDER, data: { received: 100, total: 100, done: true } } },
      { type: 'done', detail: { peer: SENDER } },
    ]);
    expect(step.emitted).toEqual([
      { type: 'completed', detail: { file, sha256: file.sha256, verified: true } },
      { type: 'stopped', detail: {} },
    ]);
  });

  it('says so when only the size could be checked', () => {
    const step = run(filedropReceiver, input, [
      ...receiving,
      { type: 'download.done', received: 100, sha256: 'f'.repeat(64), verified: false },
    ]);
    expect(step.emitted[0]).toEqual({
      type: 'completed',
      detail: { file, sha256: 'f'.repeat(64), verified: false },
    });
  });

  it('ends failed on a bad download, aborting the sink and telling the sender why', () => {
    const step = run(filedropReceiver, input, [
      ...receiving,
      { type: 'download.failed', reason: 'digest-mismatch', message: 'no', received: 100 },
    ]);
    expect(step.snapshot.value).toBe('failed');
    expect(errorOf(step)).toMatchObject({ reason: 'digest-mismatch', code: 'ERR_INTEGRITY' });
    expect(step.sent).toEqual([
      { type: 'progress', detail: { peer: SENDER, data: { received: 100, total: 100, error: 'digest-mismatch' } } },
    ]);
    expect(custom(step).map((a) => a.type)).toEqual(['abortSink']);
  });

  it('cancels: failed with reason cancelled, and the sender is told', () => {
    const step = run(filedropReceiver, input, [...receiving, progress(30), { type: 'cancel' }]);
    expect(errorOf(step)).toMatchObject({ reason: 'cancelled', code: 'ERR_CANCELLED' });
    expect(step.sent).toEqual([
      { type: 'progress', detail: { peer: SENDER, data: { received: 30, total: 100, error: 'cancelled' } } },
    ]);
  });

  it('opens a fresh connection when the channel closes early, offering to resume from what the sink holds', () => {
    const lost = [...receiving, progress(60), rtc('rtc.closed', SENDER)];
    expect(run(filedropReceiver, input, lost).snapshot.value).toEqual({ active: { engaged: 'reconnecting' } });
    // The sink holds 60 bytes: less than a chunk, so the fresh connection starts at 0 (and says so).
    const found = [...lost, { type: 'xstate.done.actor.resumeOffset', output: 0 }];
    const reconnecting = run(filedropReceiver, input, found);
    expect(reconnecting.snapshot.value).toEqual({ active: { engaged: { transferring: 'connecting' } } });
    expect(reconnecting.snapshot.context).toMatchObject({ offset: 0, received: 0, reconnects: 1 });
    expect(reconnecting.emitted).toEqual([{ type: 'resuming', detail: { offset: 0, total: 100, reconnect: 1 } }]);
    expect(reconnecting.spawned.map((s) => s.id)).toContain('rtc');
    // The new connection's offer names where to start: that is what makes it a fresh one for the sender.
    const offered = run(filedropReceiver, input, [
      ...found,
      rtc('rtc.description', SENDER, { description: { type: 'offer', sdp: 'O2' } }),
    ]);
    expect(offered.sent).toEqual([
      { type: 'offer', detail: { peer: SENDER, data: { type: 'offer', sdp: 'O2', offset: 0 } } },
    ]);
    // Bytes flow again: a later loss gets the full count of fresh connections.
    const flowing = run(filedropReceiver, input, [
      ...found,
      rtc('rtc.open', SENDER, { transport: channel }),
      progress(30),
    ]);
    expect(flowing.snapshot.context.reconnects).toBe(0);
  });

  it("waits for the sender's word when the channel closes early, then calls it gone", () => {
    const lost = [...receiving, rtc('rtc.closed', SENDER)];
    expect(run(filedropReceiver, noReconnect, lost).snapshot.value).toEqual({ active: { engaged: 'lost' } });
    const told = run(filedropReceiver, noReconnect, [
      ...lost,
      msg('response', { peer: SENDER, data: { error: 'cancelled' } }),
    ]);
    expect(errorOf(told)).toMatchObject({ reason: 'remote-cancelled', remote: 'cancelled' });
    expect(told.sent).toEqual([]);
    const left = run(filedropReceiver, noReconnect, [...lost, msg('peer not exists', { peer: SENDER })]);
    expect(errorOf(left)).toMatchObject({ reason: 'peer-gone' });
    const quiet = run(filedropReceiver, noReconnect, [
      ...lost,
      { type: 'xstate.after.lostTimeout.filedropReceiver.active.engaged.lost' },
    ]);
    expect(errorOf(quiet)).toMatchObject({ reason: 'peer-gone' });
    expect(quiet.sent).toEqual([]);
  });

  describe('reads what other implementations send', () => {
    it('takes the original { fileName, fileSize } response as a file without a digest', () => {
      const step = run(filedropReceiver, input, [
        ...requesting,
        msg('response', { peer: SENDER, data: { fileName: 'b.txt', fileSize: 5, extra: true } }),
      ]);
      expect(step.snapshot.context.file).toEqual({ name: 'b.txt', size: 5, type: '' });
    });

    it('takes a digest that follows in done (trailer), and keeps the done that carries it', () => {
      const trailing = { name: 'a.bin', size: 100, type: '', trailer: 'sha256' };
      const promised = [...requesting, msg('response', { peer: SENDER, data: trailing })];
      expect(run(filedropReceiver, input, promised).snapshot.context.file).toEqual(trailing);
      const done = run(filedropReceiver, input, [
        ...promised,
        { type: 'xstate.done.actor.openSink', output: sink },
        { type: 'xstate.done.actor.resumeOffset', output: 0 },
        rtc('rtc.open', SENDER, { transport: channel }),
        msg('done', { peer: SENDER, data: { sha256: 'B'.repeat(64) } }),
      ]);
      expect(done.snapshot.context.trailer).toEqual({ sha256: 'b'.repeat(64) });
      expect(done.sentTo).toEqual([
        { to: 'download', event: { type: 'download.trailer', trailer: { sha256: 'b'.repeat(64) } } },
      ]);
    });

    it.each([
      ['a response without a size', 'response', { name: 'x' }, 'response: `data.size`'],
      ['a response with a malformed digest', 'response', { ...file, sha256: 'ABC' }, 'response: `data.sha256`'],
      ['a response that is a string', 'response', 'a.bin', 'response: `data`'],
    ])('fails protocol on %s, naming the field, and tells the sender', (_, type, data, field) => {
      const step = run(filedropReceiver, input, [...requesting, msg(type, { peer: SENDER, data })]);
      expect(step.snapshot.value).toBe('failed');
      expect(errorOf(step)).toMatchObject({ reason: 'protocol', message: expect.stringContaining(field) });
      expect(step.sent).toEqual([
        { type: 'progress', detail: { peer: SENDER, data: { received: 0, total: 0, error: 'protocol' } } },
      ]);
    });

    it('takes an SDP string as the answer and a candidate string; needs nothing for the end of candidates', () => {
      expect(
        run(filedropReceiver, input, [...connecting, msg('answer', { peer: SENDER, data: 'v=0' })]).sentTo,
      ).toEqual([{ to: 'rtc', event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0' } } }]);
      expect(
        run(filedropReceiver, input, [...connecting, msg('candidate', { peer: SENDER, data: 'candidate:1' })]).sentTo,
      ).toEqual([
        {
          to: 'rtc',
          event: { type: 'rtc.remoteCandidate', candidate: { candidate: 'candidate:1', sdpMLineIndex: 0 } },
        },
      ]);
      for (const end of [null, '', { candidate: '' }]) {
        const step = run(filedropReceiver, input, [...connecting, msg('candidate', { peer: SENDER, data: end })]);
        expect(step.sentTo).toEqual([]);
        expect(step.snapshot.value).toEqual({ active: { engaged: { transferring: 'connecting' } } });
      }
    });

    it.each([
      ['an answer that is an offer', 'answer', { type: 'offer', sdp: 'v=0' }, 'answer: `data.type`'],
      ['an answer without sdp', 'answer', { type: 'answer' }, 'answer: `data.sdp`'],
      ['a candidate that is a number', 'candidate', 7, 'candidate: `data`'],
      [
        'a candidate whose sdpMLineIndex is text',
        'candidate',
        { candidate: 'c', sdpMLineIndex: 'x' },
        'candidate: `data.sdpMLineIndex`',
      ],
      ['a done with a malformed digest', 'done', { sha256: 'xyz' }, 'done: `data.sha256`'],
    ])('fails protocol on %s, naming the field, and tells the sender', (_, type, data, field) => {
      const step = run(filedropReceiver, input, [...connecting, msg(type, { peer: SENDER, data })]);
      expect(step.snapshot.value).toBe('failed');
      expect(errorOf(step)).toMatchObject({ reason: 'protocol', message: expect.stringContaining(field) });
      expect(step.sent).toEqual([
        { type: 'progress', detail: { peer: SENDER, data: { received: 0, total: 100, error: 'protocol' } } },
      ]);
    });

    it("reads the original server's bare notices as about the sender", () => {
      expect(errorOf(run(filedropReceiver, input, [...requesting, msg('peer not exists')]))).toMatchObject({
        reason: 'no-such-peer',
      });
      expect(errorOf(run(filedropReceiver, input, [...requesting, msg('invalid peer id')]))).toMatchObject({
        reason: 'invalid-code',
      });
      expect(errorOf(run(filedropReceiver, input, [...receiving, msg('peer not exists')]))).toMatchObject({
        reason: 'peer-gone',
      });
    });

    it('lets the sender close the channel and leave once every byte is in', () => {
      const arrived = [...receiving, { type: 'download.arrived', received: 100 }];
      const closed = run(filedropReceiver, input, [...arrived, rtc('rtc.closed', SENDER)]);
      expect(closed.snapshot.value).toEqual({ active: { engaged: { transferring: { receiving: 'cooling' } } } });
      const left = run(filedropReceiver, input, [...arrived, msg('peer not exists', { peer: SENDER })]);
      expect(left.snapshot.value).toEqual({ active: { engaged: { transferring: { receiving: 'cooling' } } } });
      // Not before: the file is not all there.
      expect(run(filedropReceiver, noReconnect, [...receiving, rtc('rtc.closed', SENDER)]).snapshot.value).toEqual({
        active: { engaged: 'lost' },
      });
    });

    it('still needs the sender while the digest it promised has not come', () => {
      const trailing = { name: 'a.bin', size: 100, type: '', trailer: 'sha256' };
      const arrived = [
        ...requesting,
        msg('response', { peer: SENDER, data: trailing }),
        { type: 'xstate.done.actor.openSink', output: sink },
        { type: 'xstate.done.actor.resumeOffset', output: 0 },
        rtc('rtc.open', SENDER, { transport: channel }),
        { type: 'download.arrived', received: 100 },
      ];
      const left = run(filedropReceiver, input, [...arrived, msg('peer not exists', { peer: SENDER })]);
      expect(errorOf(left)).toMatchObject({ reason: 'peer-gone' });
    });
  });

  it('fails signalling-lost when the server connection closes and it may not reconnect, telling nobody', () => {
    const step = run(filedropReceiver, { ...input, maxRejoins: 0 }, [
      ...receiving,
      { type: 'signalling.closed', info: { code: 1006, reason: '' } },
    ]);
    expect(errorOf(step)).toMatchObject({ reason: 'signalling-lost' });
    expect(step.sent).toEqual([]);
  });

  it('with a sink that can resume, a closed server connection mid-transfer means rejoining, telling nobody', () => {
    const step = run(filedropReceiver, input, [
      ...receiving,
      { type: 'signalling.closed', info: { code: 1006, reason: '' } },
    ]);
    expect(step.snapshot.value).toBe('rejoining');
    expect(step.snapshot.context.error).toBeUndefined();
    expect(step.sent).toEqual([]);
    expect(step.emitted).toEqual([
      {
        type: 'rejoining',
        detail: {
          attempt: 1,
          maxRejoins: 5,
          delay: 1000,
          error: expect.objectContaining({ reason: 'signalling-lost' }),
        },
      },
    ]);
  });
});

describe('filedropSender transitions', () => {
  const source = memorySource(new Uint8Array(100), { name: 'a.bin' });
  const serving = [msg('signalling.open'), msg('assign', { peer: SENDER })];
  const requested = [...serving, msg('request', { peer: RECEIVER })];
  const done = (output: Record<string, unknown>, generation = 1) => ({
    type: `xstate.done.actor.transfer:${RECEIVER}#${generation}`,
    actorId: `transfer:${RECEIVER}#${generation}`,
    output: { peer: RECEIVER, received: 100, ...output },
  });

  it('serves once assigned, and says its code', () => {
    const step = run(filedropSender, { source }, serving);
    expect(step.snapshot.value).toEqual({ active: 'serving' });
    expect(step.emitted).toEqual([{ type: 'assigned', detail: { id: SENDER } }]);
  });

  it('ignores a request that arrives before its assign', () => {
    const step = run(filedropSender, { source }, [msg('signalling.open'), msg('request', { peer: RECEIVER })]);
    expect(step.snapshot.value).toEqual({ active: 'awaitingAssign' });
    expect(step.spawned).toEqual([]);
    expect(step.sent).toEqual([]);
  });

  it('starts a transfer and its rtc actor (the answerer) for each request', () => {
    const step = run(filedropSender, { source, maxRetries: 2 }, requested);
    expect(step.spawned).toEqual([
      { id: `rtc:${RECEIVER}#1`, input: { label: RECEIVER, role: 'answerer' } },
      {
        id: `transfer:${RECEIVER}#1`,
        input: {
          peer: RECEIVER,
          source,
          maxRetries: 2,
          offerTimeout: 120_000,
          connectTimeout: 30_000,
          lostTimeout: 10_000,
          window: 32 * 1024 * 1024,
        },
      },
    ]);
    expect(step.emitted).toEqual([{ type: 'requested', detail: { peer: RECEIVER } }]);
    expect(step.snapshot.context.transfers).toEqual({ [RECEIVER]: { generation: 1, connection: 0 } });
    // A second request from the same receiver while it runs changes nothing.
    expect(run(filedropSender, { source }, [...requested, msg('request', { peer: RECEIVER })]).spawned).toEqual([]);
  });

  it('refuses further receivers with busy when it serves one only', () => {
    const step = run(filedropSender, { source, once: true }, [...requested, msg('request', { peer: STRANGER })]);
    expect(step.spawned).toEqual([]);
    expect(step.sent).toEqual([{ type: 'response', detail: { peer: STRANGER, data: { error: 'busy' } } }]);
  });

  it('routes messages and rtc events by receiver to its transfer, and drops the rest', () => {
    const offer = msg('offer', { peer: RECEIVER, data: { type: 'offer', sdp: 'O' } });
    expect(run(filedropSender, { source }, [...requested, offer]).sentTo).toEqual([
      { to: `transfer:${RECEIVER}#1`, event: offer },
    ]);
    const open = rtc('rtc.open', RECEIVER, { transport: channel });
    expect(run(filedropSender, { source }, [...requested, open]).sentTo).toEqual([
      { to: `transfer:${RECEIVER}#1`, event: open },
    ]);
    expect(run(filedropSender, { source }, [...requested, msg('offer', { peer: STRANGER, data: {} })]).sentTo).toEqual(
      [],
    );
  });

  it('relays what a transfer says: to the server, to its rtc actor, to the application', () => {
    const message = { type: 'answer', detail: { peer: RECEIVER, data: { type: 'answer', sdp: 'A' } } };
    expect(run(filedropSender, { source }, [...requested, { type: 'transfer.signal', message }]).sent).toEqual([
      message,
    ]);
    const command = { type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'O' } };
    expect(
      run(filedropSender, { source }, [...requested, { type: 'transfer.rtc', peer: RECEIVER, command }]).sentTo,
    ).toEqual([{ to: `rtc:${RECEIVER}#1`, event: command }]);
    expect(
      run(filedropSender, { source }, [
        ...requested,
        { type: 'transfer.progress', peer: RECEIVER, received: 5, total: 100 },
      ]).emitted,
    ).toEqual([{ type: 'progress', detail: { peer: RECEIVER, received: 5, total: 100 } }]);
  });

  it('ends a transfer: stops its actors, forgets it, says how it went, and keeps serving', () => {
    const ok = run(filedropSender, { source }, [...requested, done({})]);
    expect(ok.snapshot.value).toEqual({ active: 'serving' });
    expect(ok.snapshot.context.transfers).toEqual({});
    expect(ok.emitted).toEqual([{ type: 'completed', detail: { peer: RECEIVER } }]);
    expect(ok.snapshot.context.completed).toBe(1);
    const error = { reason: 'peer-gone' };
    expect(run(filedropSender, { source }, [...requested, done({ error })]).emitted).toEqual([
      { type: 'failed', detail: { peer: RECEIVER, error } },
    ]);
    // A done event of an older generation is not this transfer's.
    expect(run(filedropSender, { source }, [...requested, done({}, 7)]).snapshot.context.transfers).toEqual({
      [RECEIVER]: { generation: 1, connection: 0 },
    });
  });

  it('with once, ends with its one transfer: done, or failed with its error', () => {
    const ok = run(filedropSender, { source, once: true }, [...requested, done({})]);
    expect(ok.snapshot.value).toBe('done');
    expect(ok.emitted.map((e) => e.type)).toEqual(['completed', 'stopped']);
    const error = { reason: 'source-failed' };
    const bad = run(filedropSender, { source, once: true }, [...requested, done({ error })]);
    expect(bad.snapshot.value).toBe('failed');
    expect(bad.snapshot.context.error).toBe(error);
    // Its file was not what it announced: that is this side's failure too.
    const corrupt = { reason: 'remote-cancelled', remote: 'digest-mismatch' };
    expect(run(filedropSender, { source, once: true }, [...requested, done({ error: corrupt })]).snapshot.value).toBe(
      'failed',
    );
  });

  it("with once, serves on after a transfer that failed on the receiver's side: it refused, or it left", () => {
    for (const error of [
      { reason: 'remote-cancelled', remote: 'sink-failed' },
      { reason: 'remote-cancelled', remote: 'cancelled' },
      { reason: 'peer-gone' },
    ]) {
      const step = run(filedropSender, { source, once: true }, [...requested, done({ error })]);
      expect(step.snapshot.value).toEqual({ active: 'serving' });
      expect(step.snapshot.context.error).toBeUndefined();
      expect(step.snapshot.context.transfers).toEqual({});
      expect(step.emitted).toEqual([{ type: 'failed', detail: { peer: RECEIVER, error } }]);
      // The next request is answered (not refused as busy): a new transfer under the same code.
      const next = run(filedropSender, { source, once: true }, [
        ...requested,
        done({ error }),
        msg('request', { peer: STRANGER }),
      ]);
      expect(Object.keys(next.snapshot.context.transfers)).toEqual([STRANGER]);
      expect(next.emitted.at(-1)).toEqual({ type: 'requested', detail: { peer: STRANGER } });
    }
  });

  it('cancels one transfer, or all of them (telling every receiver) and ends', () => {
    expect(run(filedropSender, { source }, [...requested, { type: 'cancel', peer: RECEIVER }]).sentTo).toEqual([
      { to: `transfer:${RECEIVER}#1`, event: { type: 'cancel' } },
    ]);
    const all = run(filedropSender, { source }, [...requested, msg('request', { peer: STRANGER }), { type: 'cancel' }]);
    expect(all.snapshot.value).toBe('failed');
    expect(errorOf(all)).toMatchObject({ reason: 'cancelled' });
    expect(all.sent).toEqual([
      { type: 'response', detail: { peer: RECEIVER, data: { error: 'cancelled' } } },
      { type: 'response', detail: { peer: STRANGER, data: { error: 'cancelled' } } },
    ]);
  });

  it('fails the transfer whose rtc actor crashed', () => {
    const crash = {
      type: `xstate.error.actor.rtc:${RECEIVER}#1`,
      actorId: `rtc:${RECEIVER}#1`,
      error: new Error('boom'),
    };
    expect(run(filedropSender, { source }, [...requested, crash]).sentTo).toEqual([
      { to: `transfer:${RECEIVER}#1`, event: { type: 'transfer.abort', message: 'the rtc actor crashed: boom' } },
    ]);
  });

  it('fails signalling-lost when the server connection closes', () => {
    const step = run(filedropSender, { source }, [
      ...requested,
      { type: 'signalling.closed', info: { code: 1006, reason: '' } },
    ]);
    expect(errorOf(step)).toMatchObject({ reason: 'signalling-lost' });
  });
});

describe('filedropSenderTransfer transitions', () => {
  // `report` is how a transfer talks to its sender; a no-op here, so each step shows what it would say.
  const transfer = filedropSenderTransfer.provide({ actions: { report: () => {} } });
  const source = memorySource(new Uint8Array(100), { name: 'a.bin' });
  const input = { peer: RECEIVER, source, maxRetries: 1, offerTimeout: 1000, connectTimeout: 1000, lostTimeout: 1000 };
  const reports = (step: Step<AnyStateMachine>) =>
    custom(step)
      .filter((a) => a.type === 'report')
      .map((a) => a.params);
  const offer = msg('offer', { peer: RECEIVER, data: { type: 'offer', sdp: 'O' } });
  const connecting = [offer];
  const sending = [offer, rtc('rtc.open', RECEIVER, { transport: channel })];
  const finishing = [...sending, { type: 'upload.done' }];
  const rtcFailed = rtc('rtc.failed', RECEIVER, { error: new Error('ICE failed') });

  it('responds with the file as it starts', () => {
    const step = run(transfer, input, []);
    expect(step.snapshot.value).toBe('awaitingOffer');
    expect(reports(step)).toEqual([
      {
        type: 'transfer.signal',
        message: {
          type: 'response',
          detail: {
            peer: RECEIVER,
            data: { name: 'a.bin', size: 100, type: '', sha256: source.sha256, fileName: 'a.bin', fileSize: 100 },
          },
        },
      },
    ]);
  });

  it('hands the offer and candidates to its rtc actor, and relays its answer and candidates', () => {
    const step = run(transfer, input, connecting);
    expect(step.snapshot.value).toBe('connecting');
    expect(reports(step)).toEqual([
      {
        type: 'transfer.rtc',
        peer: RECEIVER,
        command: { type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'O' } },
      },
    ]);
    const cand = { candidate: 'candidate:1', sdpMid: '0' };
    expect(reports(run(transfer, input, [msg('candidate', { peer: RECEIVER, data: cand })]))).toEqual([
      { type: 'transfer.rtc', peer: RECEIVER, command: { type: 'rtc.remoteCandidate', candidate: cand } },
    ]);
    expect(
      reports(
        run(transfer, input, [
          ...connecting,
          rtc('rtc.description', RECEIVER, { description: { type: 'answer', sdp: 'A' } }),
        ]),
      ),
    ).toEqual([
      {
        type: 'transfer.signal',
        message: { type: 'answer', detail: { peer: RECEIVER, data: { type: 'answer', sdp: 'A' } } },
      },
    ]);
    expect(reports(run(transfer, input, [...connecting, rtc('rtc.candidate', RECEIVER, { candidate: cand })]))).toEqual(
      [{ type: 'transfer.signal', message: { type: 'candidate', detail: { peer: RECEIVER, data: cand } } }],
    );
  });

  it('sends the file once the channel is open, then waits for the verdict', () => {
    expect(run(transfer, input, sending).snapshot.value).toBe('sending');
    expect(run(transfer, input, finishing).snapshot.value).toBe('finishing');
    const progress = run(transfer, input, [
      ...finishing,
      msg('progress', { peer: RECEIVER, data: { received: 60, total: 100 } }),
    ]);
    expect(reports(progress)).toEqual([{ type: 'transfer.progress', peer: RECEIVER, received: 60, total: 100 }]);
    const doneStep = run(transfer, input, [
      ...finishing,
      msg('progress', { peer: RECEIVER, data: { received: 100, total: 100, done: true } }),
    ]);
    expect(doneStep.snapshot.value).toBe('done');
    expect(doneStep.snapshot.output).toEqual({ peer: RECEIVER, received: 100 });
    const bad = run(transfer, input, [
      ...finishing,
      msg('progress', { peer: RECEIVER, data: { received: 100, total: 100, error: 'digest-mismatch' } }),
    ]);
    expect(bad.snapshot.value).toBe('failed');
    expect(bad.snapshot.output!.error).toMatchObject({ reason: 'remote-cancelled', remote: 'digest-mismatch' });
    expect(reports(bad)).toEqual([]);
  });

  it("paces the upload by the receiver's progress, once the receiver has reported anything", () => {
    const report = (received: number) => msg('progress', { peer: RECEIVER, data: { received, total: 100 } });
    const upload = (step: Step<AnyStateMachine>) => step.spawned.find((s) => s.id === 'upload')?.input;
    const windowed = { ...input, window: 40 };
    // No report yet: the upload is not held to the window (a receiver that never reports is not stalled).
    expect(upload(run(transfer, windowed, sending))).toEqual({
      transport: channel,
      source,
      window: 40,
      offset: 0,
      hash: false,
    });
    // The `received: 0` a receiver sends as its channel opens, before ours opened: the upload starts paced.
    expect(
      upload(run(transfer, windowed, [offer, report(0), rtc('rtc.open', RECEIVER, { transport: channel })])),
    ).toEqual({ transport: channel, source, window: 40, offset: 0, acked: 0, hash: false });
    const first = run(transfer, windowed, [...sending, report(0)]);
    expect(first.sentTo).toEqual([{ to: 'upload', event: { type: 'upload.ack', received: 0 } }]);
    expect(reports(first)).toEqual([]);
    const more = run(transfer, windowed, [...sending, report(0), report(60)]);
    expect(more.sentTo).toEqual([{ to: 'upload', event: { type: 'upload.ack', received: 60 } }]);
    expect(reports(more)).toEqual([{ type: 'transfer.progress', peer: RECEIVER, received: 60, total: 100 }]);
    // A report that went back in time changes nothing.
    const stale = run(transfer, windowed, [...sending, report(60), report(30)]);
    expect(stale.sentTo).toEqual([{ to: 'upload', event: { type: 'upload.ack', received: 60 } }]);
    expect(stale.snapshot.context.received).toBe(60);
    // A verdict is a verdict while sending too.
    const done = run(transfer, windowed, [
      ...sending,
      msg('progress', { peer: RECEIVER, data: { received: 100, total: 100, done: true } }),
    ]);
    expect(done.snapshot.value).toBe('done');
  });

  describe('reads what other implementations send', () => {
    it('takes an SDP string as the offer, and a candidate string; needs nothing for the end of candidates', () => {
      expect(reports(run(transfer, input, [msg('offer', { peer: RECEIVER, data: 'v=0' })]))).toEqual([
        {
          type: 'transfer.rtc',
          peer: RECEIVER,
          command: { type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'v=0' } },
        },
      ]);
      expect(reports(run(transfer, input, [msg('candidate', { peer: RECEIVER, data: 'candidate:1' })]))).toEqual([
        {
          type: 'transfer.rtc',
          peer: RECEIVER,
          command: { type: 'rtc.remoteCandidate', candidate: { candidate: 'candidate:1', sdpMLineIndex: 0 } },
        },
      ]);
      // The end of candidates: null, or an init without a line (WebIDL's default `candidate` is "").
      for (const data of [null, { sdpMid: '0' }]) {
        expect(reports(run(transfer, input, [...connecting, msg('candidate', { peer: RECEIVER, data })]))).toEqual([]);
      }
    });

    it.each([
      ['an offer that is an answer', 'offer', { type: 'answer', sdp: 'v=0' }, 'offer: `data.type`'],
      ['an offer that is a number', 'offer', 5, 'offer: `data`'],
      ['a candidate whose line is a number', 'candidate', { candidate: 7, sdpMid: '0' }, 'candidate: `data.candidate`'],
    ])('fails protocol on %s, naming the field, and tells the receiver', (_, type, data, field) => {
      const step = run(transfer, input, [msg(type, { peer: RECEIVER, data })]);
      expect(step.snapshot.value).toBe('failed');
      expect(step.snapshot.output!.error).toMatchObject({
        reason: 'protocol',
        message: expect.stringContaining(field),
      });
      expect(reports(step)).toEqual([
        {
          type: 'transfer.signal',
          message: { type: 'response', detail: { peer: RECEIVER, data: { error: 'protocol' } } },
        },
      ]);
    });

    it('reads what it can of a foreign progress and ignores the rest, never pacing by what has no count', () => {
      const foreign = run(transfer, input, [...sending, msg('progress', { peer: RECEIVER, data: { percent: 50 } })]);
      expect(foreign.snapshot.value).toBe('sending');
      expect(foreign.snapshot.context.paced).toBe(false);
      expect(foreign.sentTo).toEqual([]);
      const text = run(transfer, input, [...sending, msg('progress', { peer: RECEIVER, data: 'half' })]);
      expect(text.snapshot.value).toBe('sending');
      const counted = run(transfer, input, [...sending, msg('progress', { peer: RECEIVER, data: { received: 65 } })]);
      expect(reports(counted)).toEqual([{ type: 'transfer.progress', peer: RECEIVER, received: 65, total: 100 }]);
    });

    it("sends done with the digest after the last chunk, and takes the receiver's done as success", () => {
      const last = run(transfer, input, finishing);
      expect(reports(last)).toEqual([
        {
          type: 'transfer.signal',
          message: { type: 'done', detail: { peer: RECEIVER, data: { sha256: source.sha256 } } },
        },
      ]);
      const done = run(transfer, input, [...finishing, msg('done', { peer: RECEIVER })]);
      expect(done.snapshot.value).toBe('done');
      expect(done.snapshot.output).toEqual({ peer: RECEIVER, received: 0 });
      // Also once the receiver has closed the channel behind it.
      expect(
        run(transfer, input, [...finishing, rtc('rtc.closed', RECEIVER), msg('done', { peer: RECEIVER })]).snapshot
          .value,
      ).toBe('done');
      // Before the last chunk went out it cannot be true: ignored.
      expect(run(transfer, input, [...sending, msg('done', { peer: RECEIVER })]).snapshot.value).toBe('sending');
    });

    it('promises the digest in done when the source has none, and hashes while it sends', () => {
      const unhashed = memorySource(new Uint8Array(100), { name: 'a.bin', sha256: false });
      const plain = { ...input, source: unhashed };
      expect(reports(run(transfer, plain, []))).toEqual([
        {
          type: 'transfer.signal',
          message: {
            type: 'response',
            detail: {
              peer: RECEIVER,
              data: { name: 'a.bin', size: 100, type: '', trailer: 'sha256', fileName: 'a.bin', fileSize: 100 },
            },
          },
        },
      ]);
      expect(run(transfer, plain, sending).spawned.find((s) => s.id === 'upload')?.input).toMatchObject({ hash: true });
      const last = run(transfer, plain, [...sending, { type: 'upload.done', sha256: 'c'.repeat(64) }]);
      expect(reports(last)).toEqual([
        {
          type: 'transfer.signal',
          message: { type: 'done', detail: { peer: RECEIVER, data: { sha256: 'c'.repeat(64) } } },
        },
      ]);
    });
  });

  it('asks for an ICE restart (retry) when ICE fails, up to maxRetries, then gives up and tells the receiver', () => {
    const once = run(transfer, input, [...connecting, rtcFailed]);
    expect(once.snapshot.value).toBe('connecting');
    expect(reports(once)).toEqual([
      { type: 'transfer.signal', message: { type: 'retry', detail: { peer: RECEIVER } } },
      { type: 'transfer.retrying', peer: RECEIVER, attempt: 1 },
    ]);
    expect(once.snapshot.context.retries).toBe(1);
    const twice = run(transfer, input, [...connecting, rtcFailed, rtcFailed]);
    expect(twice.snapshot.value).toBe('failed');
    expect(twice.snapshot.output!.error).toMatchObject({ reason: 'rtc-failed' });
    expect(reports(twice)).toEqual([
      {
        type: 'transfer.signal',
        message: { type: 'response', detail: { peer: RECEIVER, data: { error: 'rtc-failed' } } },
      },
    ]);
    // Mid-transfer too: the upload goes on while ICE restarts.
    expect(run(transfer, input, [...sending, rtcFailed]).snapshot.value).toBe('sending');
  });

  it('gives a fresh connection its own ICE restarts: the retries count from 0 again', () => {
    const fresh = msg('offer', { peer: RECEIVER, data: { type: 'offer', sdp: 'O2', offset: 0 } });
    // The one restart allowed was asked for and did not help; the receiver opens a fresh connection.
    const reopened = run(transfer, input, [...sending, rtcFailed, fresh]);
    expect(reopened.snapshot.value).toBe('connecting');
    expect(reopened.snapshot.context.retries).toBe(0);
    // Its ICE failure asks for a restart again, rather than ending the transfer.
    const again = run(transfer, input, [...sending, rtcFailed, fresh, rtcFailed]);
    expect(again.snapshot.value).toBe('connecting');
    expect(reports(again)).toEqual([
      { type: 'transfer.signal', message: { type: 'retry', detail: { peer: RECEIVER } } },
      { type: 'transfer.retrying', peer: RECEIVER, attempt: 1 },
    ]);
  });

  it('times out waiting for the offer or the channel, telling the receiver', () => {
    const noOffer = run(transfer, input, [{ type: 'xstate.after.offerTimeout.filedropSenderTransfer.awaitingOffer' }]);
    expect(noOffer.snapshot.output!.error).toMatchObject({ reason: 'timeout' });
    expect(reports(noOffer)).toEqual([
      {
        type: 'transfer.signal',
        message: { type: 'response', detail: { peer: RECEIVER, data: { error: 'timeout' } } },
      },
    ]);
    const noChannel = run(transfer, input, [
      ...connecting,
      { type: 'xstate.after.connectTimeout.filedropSenderTransfer.connecting' },
    ]);
    expect(noChannel.snapshot.output!.error).toMatchObject({ reason: 'timeout' });
  });

  it("waits for the receiver's word when the channel closes early, then calls it gone", () => {
    const lost = run(transfer, input, [...sending, rtc('rtc.closed', RECEIVER)]);
    expect(lost.snapshot.value).toBe('lost');
    expect(
      run(transfer, input, [...sending, { type: 'upload.failed', reason: 'peer-gone', message: 'closed' }]).snapshot
        .value,
    ).toBe('lost');
    const quiet = run(transfer, input, [
      ...sending,
      rtc('rtc.closed', RECEIVER),
      { type: 'xstate.after.lostTimeout.filedropSenderTransfer.lost' },
    ]);
    expect(quiet.snapshot.output!.error).toMatchObject({ reason: 'peer-gone' });
    expect(reports(quiet)).toEqual([]);
    const left = run(transfer, input, [...sending, msg('peer not exists', { peer: RECEIVER })]);
    expect(left.snapshot.output!.error).toMatchObject({ reason: 'peer-gone' });
  });

  it('cancels, and fails on a source that cannot be read, telling the receiver either way', () => {
    const cancel = run(transfer, input, [...sending, { type: 'cancel' }]);
    expect(cancel.snapshot.output!.error).toMatchObject({ reason: 'cancelled' });
    expect(reports(cancel)).toEqual([
      {
        type: 'transfer.signal',
        message: { type: 'response', detail: { peer: RECEIVER, data: { error: 'cancelled' } } },
      },
    ]);
    const broken = run(transfer, input, [
      ...sending,
      { type: 'upload.failed', reason: 'source-failed', message: 'EIO' },
    ]);
    expect(broken.snapshot.output!.error).toMatchObject({ reason: 'source-failed', message: 'EIO' });
    expect(reports(broken)).toEqual([
      {
        type: 'transfer.signal',
        message: { type: 'response', detail: { peer: RECEIVER, data: { error: 'source-failed' } } },
      },
    ]);
  });
});
