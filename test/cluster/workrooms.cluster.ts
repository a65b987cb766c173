import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateId } from '../../machines/workrooms/protocol.js';
import type { TestRedis } from '../redis-server.js';
import {
  BOUND,
  jsonClient,
  loseRedis,
  restoreRedis,
  startServe,
  TTL,
  twoProcesses,
  type JsonClient,
  type ServeProcess,
} from './processes.js';

type Call = { callid: string; fromsessionid: string; tosessionid: string };

/** A workrooms client registered as `sessionid` (with `calls`) on `port`. */
async function register(port: number, sessionid = generateId(), calls: Call[] = []) {
  const client = await jsonClient(port, '/workrooms');
  client.send({ type: 'register', detail: { sessionid, calls } });
  const registered = await client.next('registered');
  return Object.assign(client, { sessionid, restored: registered.detail!.calls as string[] });
}

/** Searches until `found` matches (a registration reaches the other processes a moment later). */
async function searchUntil(client: JsonClient, search: string, found: (results: unknown[]) => boolean) {
  for (let attempt = 0; attempt < 40; attempt++) {
    client.send({ type: 'autocomplete', detail: { search } });
    const results = (await client.next('autocomplete')).detail!.results as unknown[];
    if (found(results)) return results;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`no autocomplete result for ${search}`);
}

/** `caller` calls `callee` (once the callee is known online there); both get their side. */
async function call(caller: JsonClient & { sessionid: string }, callee: JsonClient & { sessionid: string }) {
  for (let attempt = 0; ; attempt++) {
    caller.send({ type: 'call', detail: { to: callee.sessionid } });
    const answer = await caller.next(['outboundcall', 'error']);
    if (answer.type === 'outboundcall') break;
    if (attempt > 40) throw new Error(`call refused: ${JSON.stringify(answer)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const inbound = (await callee.next('inboundcall')).detail as Call;
  return { callid: inbound.callid, fromsessionid: caller.sessionid, tosessionid: callee.sessionid };
}

describe('workrooms across processes on Redis', () => {
  let redis: TestRedis, a: ServeProcess, b: ServeProcess, stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ redis, a, b, stop } = await twoProcesses(TTL)));
  afterAll(() => stop?.());

  it('registered on A, found by autocomplete on B within the search budget', async () => {
    const alice = await register(a.port);
    alice.send({ type: 'userprofile', detail: { github: { login: 'alice-xb7', name: 'Alice Crossprocess' } } });
    const big = await register(a.port);
    big.send({ type: 'userprofile', detail: { github: { login: 'big-xb7', bio: 'x'.repeat(16_000) } } });
    const bob = await register(b.port);
    const results = await searchUntil(bob, 'xb7', (r) => r.length > 0 && JSON.stringify(r).includes('alice-xb7'));
    expect(results).toContainEqual({
      sessionid: alice.sessionid,
      userprofiles: { github: { login: 'alice-xb7', name: 'Alice Crossprocess' } },
    });
    // Three profiles of 16,000 characters are over the budget of a small search (32,768): cut, and said so.
    const more = await register(a.port);
    more.send({ type: 'userprofile', detail: { github: { login: 'more-xb7', bio: 'y'.repeat(16_000) } } });
    const third = await register(a.port);
    third.send({ type: 'userprofile', detail: { github: { login: 'third-xb7', bio: 'z'.repeat(16_000) } } });
    for (let attempt = 0; ; attempt++) {
      bob.send({ type: 'autocomplete', detail: { search: 'xb7' } });
      const answer = (await bob.next('autocomplete')).detail!;
      if (answer.truncated === true) {
        expect(JSON.stringify(answer).length).toBeLessThanOrEqual(32_768);
        break;
      }
      if (attempt > 40) throw new Error('never truncated');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const c of [alice, big, bob, more, third]) c.close();
  });

  it('a call between A and B: both sides, relays each way, and a hangup', async () => {
    const alice = await register(a.port);
    const bob = await register(b.port);
    const c = await call(alice, bob);
    alice.send({
      type: 'offer',
      detail: { callid: c.callid, peerid: bob.sessionid, sdp: { type: 'offer', sdp: 'o' } },
    });
    expect((await bob.next('offer')).detail).toEqual({
      callid: c.callid,
      peerid: alice.sessionid,
      sdp: { type: 'offer', sdp: 'o' },
    });
    bob.send({ type: 'answer', detail: { callid: c.callid, peerid: alice.sessionid, sdp: 'v=0' } });
    expect((await alice.next('answer')).detail).toEqual({ callid: c.callid, peerid: bob.sessionid, sdp: 'v=0' });
    bob.send({ type: 'ice', detail: { callid: c.callid, peerid: alice.sessionid, candidate: null } });
    expect((await alice.next('ice')).detail).toMatchObject({ callid: c.callid, candidate: null });
    // A second call between the two is refused on either side.
    bob.send({ type: 'call', detail: { to: alice.sessionid } });
    expect((await bob.next('error')).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'call' });
    alice.send({ type: 'hangup', detail: { calls: [{ callid: c.callid }] } });
    expect((await bob.next('hangup')).detail).toEqual({ calls: [{ callid: c.callid, sessionid: alice.sessionid }] });
    expect((await alice.next('hangup')).detail).toEqual({ calls: [{ callid: c.callid, sessionid: alice.sessionid }] });
    for (const cl of [alice, bob]) cl.close();
  });

  it('a client that drops from A and registers again on B keeps its calls (takeover within the grace)', async () => {
    const alice = await register(a.port);
    const bob = await register(a.port);
    const c = await call(alice, bob);
    alice.close();
    await alice.closed;
    const again = await register(b.port, alice.sessionid, [c]);
    expect(again.restored).toEqual([c.callid]);
    // The relays follow the session to B, both ways.
    bob.send({ type: 'offer', detail: { callid: c.callid, peerid: alice.sessionid, sdp: 'restart' } });
    expect((await again.next('offer')).detail).toMatchObject({ peerid: bob.sessionid, sdp: 'restart' });
    again.send({ type: 'answer', detail: { callid: c.callid, peerid: bob.sessionid, sdp: 'ok' } });
    expect((await bob.next('answer')).detail).toMatchObject({ peerid: alice.sessionid, sdp: 'ok' });
    expect(bob.queue.filter((m) => m.type === 'hangup')).toEqual([]);
    for (const cl of [again, bob]) cl.close();
  });

  it('a register on B while the session is still connected on A takes it over: A is closed (4001)', async () => {
    const alice = await register(a.port);
    const bob = await register(a.port);
    const c = await call(alice, bob);
    const again = await register(b.port, alice.sessionid, [c]);
    expect(again.restored).toEqual([c.callid]);
    expect((await alice.closed).code).toBe(4001);
    for (const cl of [again, bob]) cl.close();
  });

  it(`a process killed with SIGKILL: the other side of its calls gets hangup within ${BOUND} ms`, async () => {
    const c = await startServe(redis.url, TTL);
    const alice = await register(c.port);
    const bob = await register(a.port);
    const placed = await call(alice, bob);
    const killed = Date.now();
    await c.kill();
    expect((await bob.next('hangup', BOUND + 2000)).detail).toEqual({
      calls: [{ callid: placed.callid, sessionid: alice.sessionid }],
    });
    expect(Date.now() - killed).toBeLessThan(BOUND + TTL / 3 + 1000);
    bob.send({ type: 'call', detail: { to: alice.sessionid } });
    expect((await bob.next('error')).detail).toMatchObject({ code: 'ERR_PEER_GONE' });
    bob.close();
  });

  it('a process stopped with SIGTERM: the other side of its calls gets hangup at once', async () => {
    const c = await startServe(redis.url, TTL);
    const alice = await register(c.port);
    const bob = await register(a.port);
    const placed = await call(alice, bob);
    const stopped = Date.now();
    await c.stop();
    expect((await bob.next('hangup', TTL)).detail).toEqual({
      calls: [{ callid: placed.callid, sessionid: alice.sessionid }],
    });
    expect(Date.now() - stopped).toBeLessThan(TTL);
    bob.close();
  });
  it('Redis lost: calls on one process go on, relays to the other are refused; all recovers', async () => {
    const alice = await register(a.port);
    const bob = await register(b.port);
    const across = await call(alice, bob);
    await loseRedis(redis, [a, b]);

    // Across processes: a relay and a new call are refused with a typed error.
    alice.send({ type: 'offer', detail: { callid: across.callid, peerid: bob.sessionid, sdp: 'lost' } });
    expect((await alice.next('error')).detail).toMatchObject({ code: 'ERR_PEER_GONE', event: 'offer' });
    const erin = await register(b.port);
    erin.send({ type: 'call', detail: { to: alice.sessionid } });
    expect((await erin.next('error')).detail).toMatchObject({ code: 'ERR_PEER_GONE', event: 'call' });
    // On one process: register, profile, call and relay go on.
    const carol = await register(a.port);
    carol.send({ type: 'userprofile', detail: { github: { login: 'carol-outage7' } } });
    const dave = await register(a.port);
    const local = await call(carol, dave);
    carol.send({ type: 'offer', detail: { callid: local.callid, peerid: dave.sessionid, sdp: 'here' } });
    expect((await dave.next('offer')).detail).toMatchObject({ peerid: carol.sessionid, sdp: 'here' });

    await restoreRedis(redis, [a, b]);
    // The call made before the outage carries relays again, both ways.
    for (let attempt = 0; ; attempt++) {
      alice.send({ type: 'offer', detail: { callid: across.callid, peerid: bob.sessionid, sdp: 'back' } });
      const answer = await alice.next(['error'], 300).catch(() => undefined);
      if (answer === undefined) break;
      if (attempt > 40) throw new Error(`relay still refused: ${JSON.stringify(answer)}`);
    }
    expect((await bob.next('offer')).detail).toMatchObject({ peerid: alice.sessionid, sdp: 'back' });
    bob.send({ type: 'answer', detail: { callid: across.callid, peerid: alice.sessionid, sdp: 'ok' } });
    expect((await alice.next('answer')).detail).toMatchObject({ peerid: bob.sessionid, sdp: 'ok' });
    // A session registered during the outage is found from the other process, and called.
    await searchUntil(bob, 'outage7', (r) => JSON.stringify(r).includes(carol.sessionid));
    await call(erin, carol);
    // One TTL after the return, the sweep ends no call whose sides are still there.
    await new Promise((resolve) => setTimeout(resolve, TTL + 500));
    expect([alice, bob, carol, dave, erin].flatMap((c) => c.queue.filter((m) => m.type === 'hangup'))).toEqual([]);
    for (const c of [alice, bob, carol, dave, erin]) c.close();
  });
});
