/**
 * One real peer and its real matches, with the server played by the test
 * and WebRTC scripted: the peer spawns a match per request, routes the
 * server's messages to it by `context_id`, sends what it reports, and turns
 * its ends into `match-failed`, links and `unlinked`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, type AnyActorRef } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { clientCodec } from '../machines/swarm/codec.js';
import type { SwarmError } from '../machines/swarm/errors.js';
import { swarmMatch } from '../machines/swarm/match.machine.js';
import { swarmPeer, type PeerEmitted } from '../machines/swarm/peer.machine.js';
import { memoryStore } from '../machines/swarm/store.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import { fromTransport } from '../src/runtime.js';
import { rawClient, settle, soloPeer, type Frame } from './swarm-helpers.js';

let solo: ReturnType<typeof soloPeer>;
afterEach(() => solo?.stop());

const match = (id: string) => solo.actor.getSnapshot().children[`match:${id}`] as AnyActorRef | undefined;
const requests = async (n: number) => {
  solo.actor.send({ type: 'connect', count: n });
  const out: Frame[] = [];
  while (out.length < n) {
    const frame = await solo.server.next();
    if (frame.type === 'requesting_peers') out.push(frame);
  }
  return out;
};

describe('swarm peer and its matches', () => {
  it('starts a match per request, each asking the server with its own context_id', async () => {
    solo = soloPeer();
    expect((await requests(2)).map((f) => f.detail)).toEqual([{ context_id: '1' }, { context_id: '2' }]);
    expect(match('1')!.getSnapshot().value).toBe('pending');
    expect(match('2')!.getSnapshot().value).toBe('pending');
  });

  it('routes the server’s messages to the match of their context_id, and drops those for no match', async () => {
    solo = soloPeer();
    await requests(2);
    solo.server.send({ type: 'requesting_offer', detail: { context_id: '2' } });
    solo.server.send({ type: 'wait_for_offer', detail: { context_id: '1' } });
    solo.server.send({ type: 'requesting_offer', detail: { context_id: '9' } });
    await settle();
    expect(match('1')!.getSnapshot().value).toBe('awaitingOffer');
    expect(match('2')!.getSnapshot().value).toEqual({ connection: { negotiating: 'offering' } });
    expect(solo.events.filter((e) => e.type === 'matched')).toEqual([
      { type: 'matched', detail: { context_id: '2', role: 'alice' } },
      { type: 'matched', detail: { context_id: '1', role: 'bob' } },
    ]);
    // The match's offer goes out through the peer.
    solo.rtc.live.get('2')!.emit({ type: 'rtc.description', label: '2', description: { type: 'offer', sdp: 'v=0 o' } });
    expect(await solo.server.next()).toEqual({
      type: 'sending_offer',
      detail: { offer: { type: 'offer', sdp: 'v=0 o' }, context_id: '2' },
    });
    expect(solo.rtc.scripts.map((s) => s.id)).toEqual(['rtc']);
  });

  it('reports a match that failed, lets it go with its connection, and drops later messages for it', async () => {
    solo = soloPeer();
    await requests(1);
    solo.server.send({ type: 'requesting_offer', detail: { context_id: '1' } });
    await settle();
    const rtc = solo.rtc.live.get('1')!;
    solo.server.send({ type: 'error', detail: { code: 'ERR_PEER_GONE', message: 'left', context_id: '1' } });
    await settle();
    const failed = solo.events.find((e) => e.type === 'match-failed')?.detail as {
      context_id: string;
      error: SwarmError;
    };
    expect(failed).toMatchObject({ context_id: '1', error: { reason: 'peer-gone', code: 'ERR_PEER_GONE' } });
    expect(match('1')).toBeUndefined();
    expect(rtc.stopped).toBe(true);
    solo.server.send({ type: 'forwarding_answer', detail: { answer: 'v=0 a', context_id: '1' } });
    await settle();
    expect(solo.actor.getSnapshot().value).toEqual({ active: { online: 'idle' } });
  });

  it('drops a link whose WebRTC connection fails, as failed', async () => {
    solo = soloPeer();
    const { link, remote } = await solo.link('remote');
    const rtc = solo.rtc.live.get(link)!;
    rtc.emit({ type: 'rtc.failed', label: link, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') });
    await settle();
    expect(solo.events).toContainEqual({ type: 'unlinked', detail: { link, peer: 'remote', reason: 'failed' } });
    expect(solo.events.some((e) => e.type === 'match-failed')).toBe(false);
    expect(match(link)).toBeUndefined();
    expect(rtc.stopped).toBe(true);
    expect(remote.transport.isOpen).toBe(false);
  });

  it('fails a match with rtc-failed, saying what to provide, when no rtc actor was provided', async () => {
    const [client, serverEnd] = memoryPair();
    const server = rawClient(serverEnd);
    const events: PeerEmitted[] = [];
    const actor = createActor(
      swarmPeer.provide({ actors: { signalling: fromTransport(client, clientCodec()), match: swarmMatch } }),
      { input: { clientId: 'me', store: memoryStore(), connections: 1 } },
    );
    actor.on('*', (e) => events.push(e as PeerEmitted));
    actor.start();
    try {
      while ((await server.next()).type !== 'requesting_peers');
      server.send({ type: 'requesting_offer', detail: { context_id: '1' } });
      await settle();
      const failed = events.find((e) => e.type === 'match-failed')?.detail as { error: SwarmError };
      expect(failed.error).toMatchObject({ reason: 'rtc-failed', code: 'ERR_RTC_FAILED' });
      expect(failed.error.message).toMatch(/No `rtc` actor was provided: use swarmMatch.provide/);
      expect(actor.getSnapshot().value).toEqual({ active: { online: 'idle' } });
    } finally {
      actor.stop();
    }
  });
});
