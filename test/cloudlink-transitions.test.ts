/**
 * Level 1: given a state and a message, the next state and what is sent.
 * Pure: XState's `transition()` computes the step without executing it.
 */
import { describe, expect, it } from 'vitest';
import type { AnyStateMachine } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import type { ClientEvent } from '../machines/cloudlink/client.js';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import type { ClientMessage } from '../machines/cloudlink/protocol.js';
import { cloudlinkSession, type SessionEvent, type SessionServices } from '../machines/cloudlink/server.machine.js';
import { memoryDirectory } from '../machines/cloudlink/directory.js';
import { memoryRouter } from '../src/router.js';
import { serverCodec } from '../machines/cloudlink/codec.js';
import { silentLogger } from '../src/logger.js';
import { run as runSteps, type Step as GenericStep } from './transition-helpers.js';

type Step<M extends AnyStateMachine> = GenericStep<M, ClientMessage>;
const run = <M extends AnyStateMachine>(machine: M, input: unknown, events: readonly unknown[]): Step<M> =>
  runSteps<M, ClientMessage>(machine, input, events);

const [channelA, channelB] = memoryPair();
const [channelC, channelD] = memoryPair();

const server = (type: string, detail: Record<string, unknown> = {}) => ({ type, detail }) as ClientEvent;
const rtc = (type: string, label: string, extra: Record<string, unknown> = {}) =>
  ({ type, label, ...extra }) as ClientEvent;

describe('cloudlinkHost transitions', () => {
  const input = { lobby: 'L', name: 'ada' };
  const hosting = [
    server('signalling.open'),
    server('INIT_OK', { payload: 'me' }),
    server('ACK_HOST', { payload: 'L' }),
  ];
  const awaitingReady = [
    ...hosting,
    server('NEW_PEER', { payload: 'p1' }),
    rtc('rtc.description', 'out:p1', { description: { type: 'offer', sdp: 'O1' } }),
    server('RETURN_OFFER', { payload: 'O2', tx: 'p1' }),
    rtc('rtc.description', 'in:p1', { description: { type: 'answer', sdp: 'A2' } }),
    server('ANTICIPATE_ANSWER', { payload: 'A1', tx: 'p1' }),
  ];

  it('sends INIT with the display name once signalling is open', () => {
    const step = run(cloudlinkHost, input, [server('signalling.open')]);
    expect(step.snapshot.value).toEqual({ active: { protocol: 'initializing', watchdog: 'idle' } });
    expect(step.sent).toEqual([{ type: 'INIT', detail: { payload: 'ada' } }]);
  });

  it('sends INIT without payload when there is no name', () => {
    expect(run(cloudlinkHost, { lobby: 'L' }, [server('signalling.open')]).sent).toEqual([
      { type: 'INIT', detail: {} },
    ]);
  });

  it('on INIT_OK keeps its id, emits initialized, sends CONFIG_HOST and starts watching the server', () => {
    const step = run(cloudlinkHost, input, hosting.slice(0, 2));
    expect(step.snapshot.value).toEqual({ active: { protocol: 'configuring', watchdog: 'watching' } });
    expect(step.snapshot.context.id).toBe('me');
    expect(step.emitted).toEqual([{ type: 'initialized', detail: { id: 'me' } }]);
    expect(step.sent).toEqual([{ type: 'CONFIG_HOST', detail: { payload: 'L' } }]);
  });

  it('hosts once ACK_HOST arrives', () => {
    expect(run(cloudlinkHost, input, hosting).snapshot.value).toEqual({
      active: { protocol: 'hosting', watchdog: 'watching' },
    });
  });

  it('starts an offering connection for each NEW_PEER, once', () => {
    const step = run(cloudlinkHost, input, [...hosting, server('NEW_PEER', { payload: 'p1' })]);
    expect(step.spawned).toEqual([{ id: 'out:p1#1', input: { label: 'out:p1', role: 'offerer' } }]);
    expect(step.snapshot.context.links).toEqual({
      p1: { stage: 'offering', peerReady: false, generation: 1, failures: 0 },
    });
    expect(step.actions).toContainEqual({
      type: 'xstate.raise',
      params: expect.objectContaining({
        id: 'link.timeout:p1',
        delay: 30_000,
        event: { type: 'link.timeout', peer: 'p1', generation: 1 },
      }),
    });
    const again = run(cloudlinkHost, input, [
      ...hosting,
      server('NEW_PEER', { payload: 'p1' }),
      server('NEW_PEER', { payload: 'p1' }),
    ]);
    expect(again.spawned).toEqual([]);
  });

  it('sends MAKE_OFFER to the peer with its offer', () => {
    const step = run(cloudlinkHost, input, awaitingReady.slice(0, 5));
    expect(step.sent).toEqual([{ type: 'MAKE_OFFER', detail: { payload: { type: 'offer', sdp: 'O1' }, rx: 'p1' } }]);
    expect(step.snapshot.context.links.p1!.stage).toBe('awaitingReturnOffer');
  });

  it('answers RETURN_OFFER with a second, answering connection', () => {
    const step = run(cloudlinkHost, input, awaitingReady.slice(0, 6));
    expect(step.spawned).toEqual([
      { id: 'in:p1#1', input: { label: 'in:p1', role: 'answerer', remoteOffer: 'O2', lateAnswer: true } },
    ]);
    expect(step.snapshot.context.links.p1!.stage).toBe('answering');
  });

  it('ignores a RETURN_OFFER from a peer it made no offer to', () => {
    const step = run(cloudlinkHost, input, [...hosting, server('RETURN_OFFER', { payload: 'O2', tx: 'stranger' })]);
    expect(step.spawned).toEqual([]);
    expect(step.snapshot.context.links).toEqual({});
  });

  it('sends MAKE_ANSWER, then applies the peer answer and sends ACK_CHECK', () => {
    expect(run(cloudlinkHost, input, awaitingReady.slice(0, 7)).sent).toEqual([
      { type: 'MAKE_ANSWER', detail: { payload: { type: 'answer', sdp: 'A2' }, rx: 'p1' } },
    ]);
    const step = run(cloudlinkHost, input, awaitingReady);
    expect(step.sentTo).toEqual([
      { to: 'out:p1#1', event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'A1' } } },
      { to: 'in:p1#1', event: { type: 'rtc.releaseCandidates' } },
    ]);
    expect(step.sent).toEqual([{ type: 'ACK_CHECK', detail: { rx: 'p1' } }]);
    expect(step.snapshot.context.links.p1!.stage).toBe('awaitingReady');
  });

  it('emits linked only when ACK_READY came and both channels are open, in any order', () => {
    const ready = server('ACK_READY', { tx: 'p1' });
    const out = rtc('rtc.open', 'out:p1', { transport: channelA });
    const inn = rtc('rtc.open', 'in:p1', { transport: channelC });
    for (const order of [
      [ready, out, inn],
      [out, ready, inn],
      [out, inn, ready],
    ]) {
      const before = run(cloudlinkHost, input, [...awaitingReady, ...order.slice(0, 2)]);
      expect(before.emitted).toEqual([]);
      const step = run(cloudlinkHost, input, [...awaitingReady, ...order]);
      expect(step.snapshot.context.links.p1!.stage).toBe('ready');
      expect(step.actions).toContainEqual({
        type: 'xstate.cancel',
        params: expect.objectContaining({ sendId: 'link.timeout:p1' }),
      });
      expect(step.emitted).toEqual([
        { type: 'linked', detail: { id: 'p1', transport: expect.objectContaining({ isOpen: true }) } },
      ]);
    }
  });

  it('drops a link on SHUTDOWN_ACK without warning the server', () => {
    const step = run(cloudlinkHost, input, [...awaitingReady, server('SHUTDOWN_ACK', { tx: 'p1' })]);
    expect(step.snapshot.context.links).toEqual({});
    expect(step.stopped).toEqual(['out:p1#1', 'in:p1#1']);
    expect(step.emitted).toEqual([{ type: 'unlinked', detail: { id: 'p1', reason: 'left' } }]);
    expect(step.sent).toEqual([]);
  });

  it('drops a failed or lost link, reports it with SHUTDOWN_WRN and offers again', () => {
    for (const [event, reason] of [
      [rtc('rtc.failed', 'in:p1', { error: new Error('x') }), 'failed'],
      [rtc('rtc.closed', 'out:p1'), 'lost'],
    ] as const) {
      const step = run(cloudlinkHost, input, [...awaitingReady, event]);
      expect(step.emitted).toEqual([{ type: 'unlinked', detail: { id: 'p1', reason } }]);
      expect(step.sent).toEqual([{ type: 'SHUTDOWN_WRN', detail: { rx: 'p1' } }]);
      expect(step.stopped).toEqual(['out:p1#1', 'in:p1#1']);
      expect(step.spawned).toEqual([{ id: 'out:p1#2', input: { label: 'out:p1', role: 'offerer' } }]);
      expect(step.snapshot.context.links.p1).toEqual({
        stage: 'offering',
        peerReady: false,
        generation: 2,
        failures: 1,
      });
    }
  });

  it('gives a handshake up after handshakeTimeout, without a warning, and stops offering after offerAttempts', () => {
    const timeout = (generation: number) => ({ type: 'link.timeout', peer: 'p1', generation });
    const first = run(cloudlinkHost, { ...input, offerAttempts: 2 }, [...awaitingReady, timeout(1)]);
    expect(first.emitted).toEqual([{ type: 'unlinked', detail: { id: 'p1', reason: 'timeout' } }]);
    expect(first.sent).toEqual([]);
    expect(first.snapshot.context.links.p1).toMatchObject({ stage: 'offering', generation: 2, failures: 1 });
    const last = run(cloudlinkHost, { ...input, offerAttempts: 2 }, [...awaitingReady, timeout(1), timeout(2)]);
    expect(last.emitted).toEqual([{ type: 'unlinked', detail: { id: 'p1', reason: 'timeout' } }]);
    expect(last.spawned).toEqual([]);
    expect(last.snapshot.context.links).toEqual({});
  });

  it('ignores a deadline of an earlier handshake', () => {
    const step = run(cloudlinkHost, input, [
      ...awaitingReady,
      rtc('rtc.failed', 'out:p1', { error: new Error('x') }),
      { type: 'link.timeout', peer: 'p1', generation: 1 },
    ]);
    expect(step.emitted).toEqual([]);
    expect(step.snapshot.context.links.p1).toMatchObject({ generation: 2, stage: 'offering' });
  });

  it('answers KEEPALIVE and restarts the server watch', () => {
    const step = run(cloudlinkHost, input, [...hosting, server('KEEPALIVE')]);
    expect(step.sent).toEqual([{ type: 'KEEPALIVE', detail: {} }]);
    expect(step.actions.map((a) => a.type)).toContain('xstate.raise'); // the new `after` timer
  });

  it('fails with the reason on VIOLATION, and on a silent server', () => {
    const violated = run(cloudlinkHost, input, [...hosting, server('VIOLATION', { payload: 'nope' })]);
    expect(violated.snapshot.value).toBe('failed');
    expect(violated.snapshot.context.error).toMatchObject({
      code: 'ERR_VIOLATION',
      message: 'server reported a violation: nope',
    });
    expect(violated.emitted).toEqual([{ type: 'stopped', detail: { error: violated.snapshot.context.error } }]);
    const silent = run(cloudlinkHost, input, [
      ...hosting,
      { type: 'xstate.after.serverTimeout.cloudlinkHost.active.watchdog.watching' },
    ]);
    expect(silent.snapshot.value).toBe('failed');
    expect(silent.snapshot.context.error?.code).toBe('ERR_KEEPALIVE_TIMEOUT');
  });

  it('on leave sends SHUTDOWN, closes signalling and stops', () => {
    const step = run(cloudlinkHost, input, [...hosting, { type: 'leave' }]);
    expect(step.snapshot.value).toBe('closed');
    expect(step.sent).toEqual([{ type: 'SHUTDOWN', detail: {} }]);
    expect(step.sentTo).toEqual([
      { to: 'signalling', event: { type: 'signalling.close', code: 1000, reason: 'leaving' } },
    ]);
    expect(step.emitted).toEqual([{ type: 'stopped', detail: { error: undefined } }]);
  });
});

describe('cloudlinkPeer transitions', () => {
  const input = { lobby: 'L' };
  const lobby = [server('signalling.open'), server('INIT_OK', { payload: 'me' }), server('ACK_PEER', { payload: 'L' })];
  const offered = [
    ...lobby,
    server('NEW_HOST', { payload: 'h1' }),
    server('ANTICIPATE_OFFER', { payload: 'O1', tx: 'h1' }),
  ];

  it('sends CONFIG_PEER after INIT_OK and waits in the lobby after ACK_PEER', () => {
    expect(run(cloudlinkPeer, input, lobby.slice(0, 2)).sent).toEqual([
      { type: 'CONFIG_PEER', detail: { payload: 'L' } },
    ]);
    expect(run(cloudlinkPeer, input, lobby).snapshot.value).toEqual({
      active: { protocol: 'lobby', watchdog: 'watching' },
    });
  });

  it('remembers hosts announced with NEW_HOST and forgets them on SHUTDOWN_ACK', () => {
    const step = run(cloudlinkPeer, input, [
      ...lobby,
      server('NEW_HOST', { payload: 'h1' }),
      server('NEW_HOST', { payload: 'h2' }),
    ]);
    expect(step.snapshot.context.hosts).toEqual(['h1', 'h2']);
    const gone = run(cloudlinkPeer, input, [
      ...lobby,
      server('NEW_HOST', { payload: 'h1' }),
      server('SHUTDOWN_ACK', { tx: 'h1' }),
    ]);
    expect(gone.snapshot.context.hosts).toEqual([]);
  });

  it('takes an offer with two connections: one answering it, one making its own offer', () => {
    const step = run(cloudlinkPeer, input, offered);
    expect(step.snapshot.value).toEqual({ active: { protocol: { linking: 'offering' }, watchdog: 'watching' } });
    expect(step.snapshot.context.host).toBe('h1');
    expect(step.spawned).toEqual([
      { id: 'rtcOut', input: { label: 'out:h1', role: 'offerer' } },
      { id: 'rtcIn', input: { label: 'in:h1', role: 'answerer', remoteOffer: 'O1', lateAnswer: true } },
    ]);
  });

  it('sends ACCEPT_OFFER with its own offer, and holds its answer until the host has answered', () => {
    const early = [...offered, rtc('rtc.description', 'in:h1', { description: { type: 'answer', sdp: 'A1' } })];
    const kept = run(cloudlinkPeer, input, early);
    expect(kept.sent).toEqual([]);
    expect(kept.snapshot.context.pendingAnswer).toEqual({ type: 'answer', sdp: 'A1' });
    const accepted = run(cloudlinkPeer, input, [
      ...early,
      rtc('rtc.description', 'out:h1', { description: { type: 'offer', sdp: 'O2' } }),
    ]);
    expect(accepted.sent).toEqual([
      { type: 'ACCEPT_OFFER', detail: { payload: { type: 'offer', sdp: 'O2' }, rx: 'h1' } },
    ]);
    const answered = run(cloudlinkPeer, input, [
      ...early,
      rtc('rtc.description', 'out:h1', { description: { type: 'offer', sdp: 'O2' } }),
      server('ANTICIPATE_ANSWER', { payload: 'A2', tx: 'h1' }),
    ]);
    expect(answered.sentTo).toEqual([
      { to: 'rtcOut', event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'A2' } } },
    ]);
    expect(answered.sent).toEqual([
      { type: 'MAKE_ANSWER', detail: { payload: { type: 'answer', sdp: 'A1' }, rx: 'h1' } },
    ]);
    expect(answered.snapshot.value).toEqual({
      active: { protocol: { linking: 'awaitingCheck' }, watchdog: 'watching' },
    });
  });

  it('sends MAKE_ANSWER as soon as its answer is ready when the host answered first', () => {
    const waiting = [
      ...offered,
      rtc('rtc.description', 'out:h1', { description: { type: 'offer', sdp: 'O2' } }),
      server('ANTICIPATE_ANSWER', { payload: 'A2', tx: 'h1' }),
    ];
    expect(run(cloudlinkPeer, input, waiting).snapshot.value).toMatchObject({
      active: { protocol: { linking: 'answering' } },
    });
    const step = run(cloudlinkPeer, input, [
      ...waiting,
      rtc('rtc.description', 'in:h1', { description: { type: 'answer', sdp: 'A1' } }),
    ]);
    expect(step.sent).toEqual([{ type: 'MAKE_ANSWER', detail: { payload: { type: 'answer', sdp: 'A1' }, rx: 'h1' } }]);
  });

  const checked = [
    ...offered,
    rtc('rtc.description', 'in:h1', { description: { type: 'answer', sdp: 'A1' } }),
    rtc('rtc.description', 'out:h1', { description: { type: 'offer', sdp: 'O2' } }),
    server('ANTICIPATE_ANSWER', { payload: 'A2', tx: 'h1' }),
    server('ACK_CHECK', { tx: 'h1' }),
  ];

  it("releases the host's candidates to its answering connection at ACK_CHECK (the host has its answer then)", () => {
    expect(run(cloudlinkPeer, input, checked.slice(0, -1)).sentTo).not.toContainEqual(
      expect.objectContaining({ to: 'rtcIn' }),
    );
    expect(run(cloudlinkPeer, input, checked).sentTo).toEqual([
      { to: 'rtcIn', event: { type: 'rtc.releaseCandidates' } },
    ]);
  });

  it('says ACK_READY and emits linked only once both channels are open', () => {
    expect(run(cloudlinkPeer, input, checked).snapshot.value).toMatchObject({
      active: { protocol: { linking: 'awaitingChannels' } },
    });
    const half = run(cloudlinkPeer, input, [...checked, rtc('rtc.open', 'out:h1', { transport: channelB })]);
    expect(half.sent).toEqual([]);
    const step = run(cloudlinkPeer, input, [
      ...checked,
      rtc('rtc.open', 'out:h1', { transport: channelB }),
      rtc('rtc.open', 'in:h1', { transport: channelD }),
    ]);
    expect(step.sent).toEqual([{ type: 'ACK_READY', detail: { rx: 'h1' } }]);
    expect(step.emitted).toEqual([
      { type: 'linked', detail: { id: 'h1', transport: expect.objectContaining({ isOpen: true }) } },
    ]);
    expect(step.snapshot.value).toMatchObject({ active: { protocol: { linking: 'linked' } } });
  });

  it('ignores another host offer and messages from other hosts while linking', () => {
    const step = run(cloudlinkPeer, input, [
      ...offered,
      server('ANTICIPATE_OFFER', { payload: 'X', tx: 'h2' }),
      server('ACK_CHECK', { tx: 'h2' }),
    ]);
    expect(step.snapshot.context.host).toBe('h1');
    expect(step.snapshot.value).toMatchObject({ active: { protocol: { linking: 'offering' } } });
  });

  it('starts a deadline when it takes an offer, cancels it once linked, and gives up when it passes', () => {
    expect(run(cloudlinkPeer, input, offered).actions).toContainEqual({
      type: 'xstate.raise',
      params: expect.objectContaining({ id: 'link.timeout', delay: 30_000 }),
    });
    const linked = run(cloudlinkPeer, input, [
      ...checked,
      rtc('rtc.open', 'out:h1', { transport: channelB }),
      rtc('rtc.open', 'in:h1', { transport: channelD }),
    ]);
    expect(linked.actions).toContainEqual({
      type: 'xstate.cancel',
      params: expect.objectContaining({ sendId: 'link.timeout' }),
    });
    const stale = run(cloudlinkPeer, input, [
      ...checked,
      rtc('rtc.open', 'out:h1', { transport: channelB }),
      rtc('rtc.open', 'in:h1', { transport: channelD }),
      { type: 'link.timeout', peer: 'h1', generation: 0 },
    ]);
    expect(stale.snapshot.value).toMatchObject({ active: { protocol: { linking: 'linked' } } });
    expect(
      run(cloudlinkPeer, input, [...checked, { type: 'link.timeout', peer: 'h2', generation: 0 }]).emitted,
    ).toEqual([]);
    const late = run(cloudlinkPeer, input, [...checked, { type: 'link.timeout', peer: 'h1', generation: 0 }]);
    expect(late.snapshot.value).toMatchObject({ active: { protocol: 'lobby' } });
    expect(late.emitted).toEqual([{ type: 'unlinked', detail: { id: 'h1', reason: 'timeout' } }]);
    expect(late.sent).toEqual([]);
  });

  it('returns to the lobby when the host leaves (no warning) or the link fails (warning)', () => {
    const left = run(cloudlinkPeer, input, [...checked, server('SHUTDOWN_ACK', { tx: 'h1' })]);
    expect(left.snapshot.value).toMatchObject({ active: { protocol: 'lobby' } });
    expect(left.emitted).toEqual([{ type: 'unlinked', detail: { id: 'h1', reason: 'left' } }]);
    expect(left.sent).toEqual([]);
    expect(left.snapshot.context.hosts).toEqual([]);
    const failed = run(cloudlinkPeer, input, [...checked, rtc('rtc.failed', 'out:h1', { error: new Error('ice') })]);
    expect(failed.snapshot.value).toMatchObject({ active: { protocol: 'lobby' } });
    expect(failed.sent).toEqual([{ type: 'SHUTDOWN_WRN', detail: { rx: 'h1' } }]);
    expect(failed.snapshot.context.hosts).toEqual(['h1']);
  });
});

describe('cloudlinkSession transitions', () => {
  const [serverEnd] = memoryPair();
  const services: SessionServices = {
    router: memoryRouter(serverCodec()),
    directory: memoryDirectory(),
    transport: serverEnd,
    timing: { keepaliveInterval: 1000, initTimeout: 1000 },
    log: silentLogger,
    probe: () => {},
  };
  const input = (ugi = 'game', version = 0) => ({ id: 's1', ugi, version, services });
  const client = (type: string, detail: Record<string, unknown> = {}) => ({ type, detail }) as SessionEvent;
  const violations = (step: Step<typeof cloudlinkSession>) =>
    step.actions.filter((a) => a.type === 'violate').map((a) => (a.params as { reason: string }).reason);

  it('opens for a supported version and a game id, and refuses the rest', () => {
    expect(run(cloudlinkSession, input(), []).snapshot.value).toEqual({
      open: { protocol: 'awaitingInit', keepalive: 'idle' },
    });
    const badVersion = run(cloudlinkSession, input('game', 3), []);
    expect(badVersion.snapshot.value).toBe('closed');
    expect(violations(badVersion)).toEqual(['unsupported version 3; this server speaks v=0']);
    expect(violations(run(cloudlinkSession, input(''), []))[0]).toMatch(/game id/);
  });

  it('initializes on INIT and starts the keepalive', () => {
    const step = run(cloudlinkSession, input(), [client('INIT', { payload: 'ada' })]);
    expect(step.snapshot.value).toEqual({ open: { protocol: 'initialized', keepalive: 'beating' } });
    expect(step.snapshot.context.name).toBe('ada');
  });

  it('becomes a host or a peer on CONFIG_HOST / CONFIG_PEER', () => {
    expect(
      run(cloudlinkSession, input(), [client('INIT'), client('CONFIG_HOST', { payload: 'L' })]).snapshot.value,
    ).toMatchObject({
      open: { protocol: 'hosting' },
    });
    expect(
      run(cloudlinkSession, input(), [client('INIT'), client('CONFIG_PEER', { payload: 'L' })]).snapshot.value,
    ).toMatchObject({
      open: { protocol: 'joined' },
    });
  });

  it('closes with a reason for a message its state does not allow', () => {
    const early = run(cloudlinkSession, input(), [client('MAKE_OFFER', { payload: 'x', rx: 'p' })]);
    expect(early.snapshot.value).toBe('closed');
    expect(violations(early)).toEqual(['MAKE_OFFER before INIT']);
    const hostOnly = run(cloudlinkSession, input(), [
      client('INIT'),
      client('CONFIG_PEER', { payload: 'L' }),
      client('ACK_CHECK', { rx: 'h' }),
    ]);
    expect(violations(hostOnly)).toEqual(['ACK_CHECK is not allowed from a peer']);
  });

  it('counts unanswered keepalives and drops the client at the third tick', () => {
    const tick = { type: 'xstate.after.keepalive.session.open.keepalive.beating' } as unknown as SessionEvent;
    const two = run(cloudlinkSession, input(), [client('INIT'), tick, tick]);
    expect(two.snapshot.context.missed).toBe(2);
    expect(two.snapshot.value).toMatchObject({ open: { keepalive: 'beating' } });
    expect(run(cloudlinkSession, input(), [client('INIT'), tick, tick, tick]).snapshot.value).toBe('closed');
    const answered = run(cloudlinkSession, input(), [client('INIT'), tick, tick, client('KEEPALIVE'), tick]);
    expect(answered.snapshot.context.missed).toBe(1);
  });

  it('ends the session, whatever the cause, through `closed` (which leaves the lobby)', () => {
    for (const event of [
      client('SHUTDOWN'),
      client('signalling.closed'),
      { type: 'session.violation', reason: 'x' } as SessionEvent,
    ]) {
      const step = run(cloudlinkSession, input(), [client('INIT'), event]);
      expect(step.snapshot.value).toBe('closed');
      expect(step.actions.map((a) => a.type)).toContain('leave');
    }
  });
});
