import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestRedis } from '../redis-server.js';
import {
  BOUND,
  jsonClient,
  loseRedis,
  restoreRedis,
  startServe,
  TTL,
  twoProcesses,
  type ServeProcess,
} from './processes.js';

/** A swarm client introduced as `client_id`. */
async function peer(port: number, client_id: string) {
  const client = await jsonClient(port, '/swarm');
  client.send({ type: 'i_am', detail: { client_id } });
  return client;
}
const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('swarm across processes on Redis', () => {
  let redis: TestRedis, a: ServeProcess, b: ServeProcess, stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ redis, a, b, stop } = await twoProcesses(TTL)));
  afterAll(() => stop?.());

  it('requests on A and B are matched with each other, and the offer and answer cross', async () => {
    const alice = await peer(a.port, 'laptop-x1');
    const bob = await peer(b.port, 'phone-x1');
    alice.send({ type: 'requesting_peers', detail: { context_id: 'a1' } });
    await wait(200);
    bob.send({ type: 'requesting_peers', detail: { context_id: 'b1' } });
    expect(await alice.next('requesting_offer')).toEqual({ type: 'requesting_offer', detail: { context_id: 'a1' } });
    expect(await bob.next('wait_for_offer')).toEqual({ type: 'wait_for_offer', detail: { context_id: 'b1' } });
    alice.send({ type: 'sending_offer', detail: { offer: { type: 'offer', sdp: 'o' }, context_id: 'a1' } });
    expect((await bob.next('forwarding_offer')).detail).toEqual({
      offer: { type: 'offer', sdp: 'o' },
      context_id: 'b1',
    });
    bob.send({ type: 'sending_answer', detail: { answer: 'v=0', context_id: 'b1' } });
    expect((await alice.next('forwarding_answer')).detail).toEqual({ answer: 'v=0', context_id: 'a1' });
    // The match is over: a second answer is refused.
    bob.send({ type: 'sending_answer', detail: { answer: 'again', context_id: 'b1' } });
    expect((await bob.next('error')).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'sending_answer' });
    for (const c of [alice, bob]) c.close();
  });

  it('never a client with itself: one client_id on A and on B waits until another client comes', async () => {
    const one = await peer(a.port, 'same-device');
    const two = await peer(b.port, 'same-device');
    one.send({ type: 'requesting_peers', detail: { context_id: 'x' } });
    await wait(200);
    two.send({ type: 'requesting_peers', detail: { context_id: 'y' } });
    await wait(300);
    expect([...one.queue, ...two.queue]).toEqual([]);
    const other = await peer(b.port, 'other-device');
    other.send({ type: 'requesting_peers', detail: { context_id: 'z' } });
    expect(await one.next('requesting_offer')).toEqual({ type: 'requesting_offer', detail: { context_id: 'x' } });
    expect((await other.next('wait_for_offer')).detail).toEqual({ context_id: 'z' });
    expect(two.queue).toEqual([]);
    for (const c of [one, two, other]) c.close();
  });

  it(`a process killed with SIGKILL: the other end of its matches gets ERR_PEER_GONE within ${BOUND} ms`, async () => {
    const c = await startServe(redis.url, TTL);
    const doomed = await peer(c.port, 'doomed-device');
    const survivor = await peer(a.port, 'survivor-device');
    doomed.send({ type: 'requesting_peers', detail: { context_id: 'd' } });
    await wait(200);
    survivor.send({ type: 'requesting_peers', detail: { context_id: 's' } });
    // Matched, in either role (a process just started may file its request a moment late).
    await survivor.next(['requesting_offer', 'wait_for_offer']);
    const killed = Date.now();
    await c.kill();
    expect((await survivor.next('error', BOUND + 2000)).detail).toMatchObject({
      code: 'ERR_PEER_GONE',
      context_id: 's',
    });
    expect(Date.now() - killed).toBeLessThan(BOUND + TTL / 3 + 1000);
    survivor.close();
  });

  it('a process killed with SIGKILL: an offer to its client before it is found dead ends the match at once, and once', async () => {
    const c = await startServe(redis.url, TTL);
    const doomed = await peer(c.port, 'doomed-3');
    const survivor = await peer(a.port, 'survivor-3');
    // The survivor waits first: it is alice, who offers.
    survivor.send({ type: 'requesting_peers', detail: { context_id: 's' } });
    await wait(200);
    doomed.send({ type: 'requesting_peers', detail: { context_id: 'd' } });
    expect(await survivor.next('requesting_offer')).toEqual({ type: 'requesting_offer', detail: { context_id: 's' } });
    await doomed.next('wait_for_offer');
    await c.kill();
    // Redis has let the killed process's connections go; its presence stays until it is found dead.
    await wait(100);
    const sent = Date.now();
    survivor.send({ type: 'sending_offer', detail: { offer: 'o', context_id: 's' } });
    expect((await survivor.next('error')).detail).toEqual({
      code: 'ERR_PEER_GONE',
      message: 'the other peer of this match cannot be reached: your offer was not delivered',
      context_id: 's',
    });
    // At once, not when C is found dead (from TTL - TTL/3 after the kill on)…
    expect(Date.now() - sent).toBeLessThan(1000);
    // …and C found dead later tells the survivor nothing more.
    await wait(BOUND + 500);
    expect(survivor.queue).toEqual([]);
    survivor.close();
  });

  it('a process killed with SIGKILL: its waiting requests are never matched once it is found dead', async () => {
    const c = await startServe(redis.url, TTL);
    const doomed = await peer(c.port, 'doomed-2');
    doomed.send({ type: 'requesting_peers', detail: { context_id: 'd' } });
    await wait(200);
    await c.kill();
    await wait(BOUND + 500);
    const late = await peer(b.port, 'late-device');
    late.send({ type: 'requesting_peers', detail: { context_id: 'l' } });
    await wait(300);
    expect(late.queue).toEqual([]);
    late.close();
  });

  it('a process stopped with SIGTERM: the other end of its matches is told at once', async () => {
    const c = await startServe(redis.url, TTL);
    const leaving = await peer(c.port, 'leaving-device');
    const survivor = await peer(a.port, 'survivor-2');
    leaving.send({ type: 'requesting_peers', detail: { context_id: 'd' } });
    await wait(200);
    survivor.send({ type: 'requesting_peers', detail: { context_id: 's' } });
    // Matched, in either role (a process just started may file its request a moment late).
    await survivor.next(['requesting_offer', 'wait_for_offer']);
    const stopped = Date.now();
    await c.stop();
    expect((await survivor.next('error', TTL)).detail).toMatchObject({ code: 'ERR_PEER_GONE', context_id: 's' });
    expect(Date.now() - stopped).toBeLessThan(TTL);
    survivor.close();
  });
  it('Redis lost: a match across A and B ends at once (ERR_PEER_GONE, its other end told when Redis returns); requests on one process are matched, those on two wait until it returns', async () => {
    // A match made across A and B before the outage.
    const across1 = await peer(a.port, 'across-alice');
    const across2 = await peer(b.port, 'across-bob');
    across1.send({ type: 'requesting_peers', detail: { context_id: 'm1' } });
    await wait(200);
    across2.send({ type: 'requesting_peers', detail: { context_id: 'm2' } });
    expect(await across1.next('requesting_offer')).toEqual({ type: 'requesting_offer', detail: { context_id: 'm1' } });
    expect(await across2.next('wait_for_offer')).toEqual({ type: 'wait_for_offer', detail: { context_id: 'm2' } });

    await loseRedis(redis, [a, b]);
    // Its offer cannot cross: the match ends at once for alice (not ERR_TIMEOUT after matchTimeout).
    const sent = Date.now();
    across1.send({ type: 'sending_offer', detail: { offer: 'o', context_id: 'm1' } });
    expect((await across1.next('error')).detail).toMatchObject({ code: 'ERR_PEER_GONE', context_id: 'm1' });
    expect(Date.now() - sent).toBeLessThan(1000);
    await wait(300);
    expect(across2.queue).toEqual([]);
    // On one process: matched, and the offer relayed.
    const p1 = await peer(a.port, 'outage-p1');
    const p2 = await peer(a.port, 'outage-p2');
    p1.send({ type: 'requesting_peers', detail: { context_id: 'p1' } });
    await wait(100);
    p2.send({ type: 'requesting_peers', detail: { context_id: 'p2' } });
    expect(await p1.next('requesting_offer')).toEqual({ type: 'requesting_offer', detail: { context_id: 'p1' } });
    expect(await p2.next('wait_for_offer')).toEqual({ type: 'wait_for_offer', detail: { context_id: 'p2' } });
    p1.send({ type: 'sending_offer', detail: { offer: 'o', context_id: 'p1' } });
    expect((await p2.next('forwarding_offer')).detail).toEqual({ offer: 'o', context_id: 'p2' });
    // On two processes: each waits (no match can be made without Redis), neither is refused.
    const x = await peer(a.port, 'outage-x');
    const y = await peer(b.port, 'outage-y');
    x.send({ type: 'requesting_peers', detail: { context_id: 'x' } });
    y.send({ type: 'requesting_peers', detail: { context_id: 'y' } });
    await wait(300);
    expect([...x.queue, ...y.queue]).toEqual([]);

    await restoreRedis(redis, [a, b]);
    // B hears that the cross-process match ended: bob is told, not left to wait for ERR_TIMEOUT.
    expect((await across2.next('error')).detail).toMatchObject({ code: 'ERR_PEER_GONE', context_id: 'm2' });
    // Both are filed again and matched with each other, in one order or the other.
    const [fx, fy] = await Promise.all([
      x.next(['requesting_offer', 'wait_for_offer']),
      y.next(['requesting_offer', 'wait_for_offer']),
    ]);
    expect([fx.type, fy.type].sort()).toEqual(['requesting_offer', 'wait_for_offer']);
    const [alice, bob, bobContext] = fx.type === 'requesting_offer' ? [x, y, 'y'] : [y, x, 'x'];
    alice.send({ type: 'sending_offer', detail: { offer: 'across', context_id: bobContext === 'y' ? 'x' : 'y' } });
    expect((await bob.next('forwarding_offer')).detail).toEqual({ offer: 'across', context_id: bobContext });
    for (const c of [p1, p2, x, y, across1, across2]) c.close();
  });
});
