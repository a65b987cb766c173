import { afterEach, describe, expect, it } from 'vitest';
import { MAX_CALLS, serverCodec } from '../machines/workrooms/codec.js';
import { generateId, isId, type ServerMessage } from '../machines/workrooms/protocol.js';
import { memoryRegistry } from '../machines/workrooms/registry.js';
import { memoryRouter } from '../src/router.js';
import { refusingRouter } from './router-compliance.js';
import {
  GRACE,
  placeCall,
  settle,
  workroomsSocketTestbed,
  workroomsTestbed,
  type RawClient,
  type Testbed,
} from './workrooms-helpers.js';

let bed: Testbed;
afterEach(async () => {
  await bed?.close();
});

const sdp = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n';
const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
const ada = { github: { login: 'ada', name: 'Ada Lovelace' } };
const alan = { github: { login: 'alan', name: 'Alan Turing' } };
const refusedProfile = {
  type: 'error',
  detail: { code: 'ERR_NOT_PERMITTED', message: 'userprofile: the server refused this profile', event: 'userprofile' },
};

describe('workrooms server: the seed procedure', () => {
  it('answers register with the sessionid, and counts the session', async () => {
    bed = workroomsTestbed();
    const client = await bed.connect();
    const sessionid = generateId();
    client.send({ type: 'register', detail: { sessionid, calls: [] } });
    expect(await client.next()).toEqual({ type: 'registered', detail: { sessionid, calls: [] } });
    expect(bed.server.stats()).toEqual({ connections: 1, sessions: 1, away: 0, calls: 0 });
  });

  it('connects a call: outboundcall to the caller, inboundcall to the callee, each with the other profiles', async () => {
    bed = workroomsTestbed();
    const [a, b] = [await bed.join(), await bed.join()];
    a.send({ type: 'userprofile', detail: ada });
    b.send({ type: 'userprofile', detail: alan });
    a.send({ type: 'call', detail: { to: b.sessionid } });
    const inbound = await b.next();
    const outbound = await a.next();
    const callid = outbound.detail!.callid as string;
    expect(isId(callid)).toBe(true);
    expect(inbound).toEqual({
      type: 'inboundcall',
      detail: { inbound: true, callid, fromsessionid: a.sessionid, tosessionid: b.sessionid, userprofiles: ada },
    });
    expect(outbound).toEqual({
      type: 'outboundcall',
      detail: { outbound: true, callid, fromsessionid: a.sessionid, tosessionid: b.sessionid, userprofiles: alan },
    });
    expect(bed.server.stats().calls).toBe(1);
  });

  it('relays offer, answer and ice to the other side of the call, stamped with the sender', async () => {
    bed = workroomsTestbed();
    const [a, b] = [await bed.join(), await bed.join()];
    const callid = await placeCall(a, b);
    a.send({ type: 'offer', detail: { callid, peerid: b.sessionid, sdp } });
    a.send({ type: 'ice', detail: { callid, peerid: b.sessionid, candidate } });
    expect(await b.next()).toEqual({ type: 'offer', detail: { callid, peerid: a.sessionid, sdp } });
    expect(await b.next()).toEqual({ type: 'ice', detail: { callid, peerid: a.sessionid, candidate } });
    b.send({ type: 'answer', detail: { callid, peerid: a.sessionid, sdp } });
    b.send({ type: 'ice', detail: { callid, peerid: a.sessionid, candidate } });
    expect(await a.next()).toEqual({ type: 'answer', detail: { callid, peerid: b.sessionid, sdp } });
    expect(await a.next()).toEqual({ type: 'ice', detail: { callid, peerid: b.sessionid, candidate } });
  });

  it('keeps several calls per client apart', async () => {
    bed = workroomsTestbed();
    const [a, b, c] = [await bed.join(), await bed.join(), await bed.join()];
    const ab = await placeCall(a, b);
    const ca = await placeCall(c, a);
    expect(ab).not.toBe(ca);
    a.send({ type: 'answer', detail: { callid: ca, peerid: c.sessionid, sdp } });
    expect(await c.next()).toEqual({ type: 'answer', detail: { callid: ca, peerid: a.sessionid, sdp } });
    expect(b.inbox).toEqual([]);
    expect(bed.server.stats().calls).toBe(2);
  });

  it('hangs up several calls at once, telling both sides of each', async () => {
    bed = workroomsTestbed();
    const [a, b, c] = [await bed.join(), await bed.join(), await bed.join()];
    const ab = await placeCall(a, b);
    const ac = await placeCall(a, c);
    const bc = await placeCall(b, c);
    a.send({ type: 'hangup', detail: { calls: [{ callid: ab, sessionid: a.sessionid }, { callid: ac }] } });
    expect(await a.next()).toEqual({
      type: 'hangup',
      detail: {
        calls: [
          { callid: ab, sessionid: a.sessionid },
          { callid: ac, sessionid: a.sessionid },
        ],
      },
    });
    expect(await b.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ab, sessionid: a.sessionid }] } });
    expect(await c.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ac, sessionid: a.sessionid }] } });
    expect(bed.server.stats().calls).toBe(1);
    // The call that was not hung up still relays.
    c.send({ type: 'answer', detail: { callid: bc, peerid: b.sessionid, sdp } });
    expect((await b.next()).type).toBe('answer');
  });

  it('lets the callee hang up too, and the two may call again afterwards', async () => {
    bed = workroomsTestbed();
    const [a, b] = [await bed.join(), await bed.join()];
    const first = await placeCall(a, b);
    b.send({ type: 'hangup', detail: { calls: [{ callid: first }] } });
    expect(await a.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: first, sessionid: b.sessionid }] } });
    expect(await b.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: first, sessionid: b.sessionid }] } });
    const second = await placeCall(b, a);
    expect(second).not.toBe(first);
  });

  it('searches the directory of connected profiles: case-insensitive, never oneself, capped', async () => {
    bed = workroomsTestbed({ searchLimit: 2 });
    const [a, b, c, d] = [await bed.join(), await bed.join(), await bed.join(), await bed.join()];
    a.send({ type: 'userprofile', detail: ada });
    b.send({ type: 'userprofile', detail: alan });
    c.send({ type: 'userprofile', detail: { github: { login: 'grace', name: 'Grace Hopper' } } });
    d.send({ type: 'autocomplete', detail: { search: 'TURING' } });
    expect(await d.next()).toEqual({
      type: 'autocomplete',
      detail: { search: 'TURING', results: [{ sessionid: b.sessionid, userprofiles: alan }] },
    });
    a.send({ type: 'autocomplete', detail: { search: 'a', results: [] } });
    const many = await a.next();
    expect(many.detail!.results).toEqual([
      { sessionid: b.sessionid, userprofiles: alan },
      { sessionid: c.sessionid, userprofiles: { github: { login: 'grace', name: 'Grace Hopper' } } },
    ]);
    // A profile of someone who left is no longer found.
    b.transport.close();
    await settle();
    d.send({ type: 'autocomplete', detail: { search: 'turing' } });
    expect(await d.next()).toEqual({ type: 'autocomplete', detail: { search: 'turing', results: [] } });
  });

  it('refuses a profile its verify hook rejects, and keeps the previous one', async () => {
    bed = workroomsTestbed({ verifyProfile: (profiles) => profiles.github?.token === 'ok' });
    const [a, b] = [await bed.join(), await bed.join()];
    a.send({ type: 'userprofile', detail: { github: { login: 'ada', token: 'ok' } } });
    a.send({ type: 'userprofile', detail: { github: { login: 'mallory', token: 'forged' } } });
    expect(await a.next()).toEqual(refusedProfile);
    b.send({ type: 'autocomplete', detail: { search: 'ada' } });
    expect((await b.next()).detail!.results).toEqual([
      { sessionid: a.sessionid, userprofiles: { github: { login: 'ada', token: 'ok' } } },
    ]);
  });
});

describe('workrooms server: limits and hooks', () => {
  it('refuses a profile too deep to send on, so calling or finding its owner cannot crash a session', async () => {
    bed = workroomsTestbed();
    const [a, b] = [await bed.join(), await bed.join()];
    // Accepted, this profile made JSON.stringify throw in every session that sent it on: A's, here.
    b.send(`{"type":"userprofile","detail":{"github":{"login":"deep","x":${'['.repeat(5000)}${']'.repeat(5000)}}}}`);
    expect((await b.next()).detail).toMatchObject({ code: 'ERR_INVALID_FIELD', event: 'userprofile' });
    a.send({ type: 'autocomplete', detail: { search: 'deep' } });
    expect(await a.next()).toEqual({ type: 'autocomplete', detail: { search: 'deep', results: [] } });
    await placeCall(a, b);
    expect([a.transport.isOpen, b.transport.isOpen]).toEqual([true, true]);
    expect(bed.server.sessions.size).toBe(2);
  });

  it('takes a verify hook that throws as a refusal, and the session carries on', async () => {
    bed = workroomsTestbed({
      verifyProfile: (profiles) => {
        if (!profiles.github) throw new TypeError('no github profile');
        return true;
      },
    });
    const [a, b] = [await bed.join(), await bed.join()];
    a.send({ type: 'userprofile', detail: { gitlab: { login: 'ada' } } });
    expect(await a.next()).toEqual(refusedProfile);
    a.send({ type: 'userprofile', detail: ada });
    b.send({ type: 'autocomplete', detail: { search: 'ada' } });
    expect((await b.next()).detail!.results).toEqual([{ sessionid: a.sessionid, userprofiles: ada }]);
    expect(a.transport.isOpen).toBe(true);
    expect(bed.server.sessions.size).toBe(2);
  });

  it(`holds at most ${MAX_CALLS} calls per session, so its register and hangup lists always fit`, async () => {
    const memory = workroomsTestbed();
    bed = memory;
    const hub = await bed.join();
    const others = await Promise.all(Array.from({ length: MAX_CALLS + 1 }, () => bed.join()));
    const callids: string[] = [];
    for (const other of others.slice(0, MAX_CALLS)) callids.push(await placeCall(other, hub));
    const last = others[MAX_CALLS]!;
    last.send({ type: 'call', detail: { to: hub.sessionid } });
    expect(await last.next()).toEqual({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: `call: ${hub.sessionid} has ${MAX_CALLS} calls, the most a session may hold`,
        event: 'call',
      },
    });
    hub.send({ type: 'call', detail: { to: last.sessionid } });
    expect(await hub.next()).toEqual({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: `call: you have ${MAX_CALLS} calls, the most a session may hold`,
        event: 'call',
      },
    });
    expect([hub.inbox, last.inbox]).toEqual([[], []]);
    expect(bed.server.stats().calls).toBe(MAX_CALLS);
    // A full session registers again with every call, and hangs them all up in one message.
    memory.network.sever(hub.transport);
    await settle();
    const back = await bed.connect();
    const restored = await back.register(
      hub.sessionid,
      callids.map((callid) => ({ callid })),
    );
    expect([...restored].sort()).toEqual([...callids].sort());
    back.send({ type: 'hangup', detail: { calls: callids.map((callid) => ({ callid })) } });
    expect((await back.next()).detail!.calls).toHaveLength(MAX_CALLS);
    expect(bed.server.stats().calls).toBe(0);
  });

  it('places no call whose inboundcall cannot be delivered (the callee’s connection just closed)', async () => {
    let unreachable: string | undefined;
    const router = refusingRouter(memoryRouter<ServerMessage>(serverCodec()), (id) => id === unreachable);
    bed = workroomsTestbed({ router });
    const [a, b] = [await bed.join(), await bed.join()];
    unreachable = b.sessionid;
    a.send({ type: 'call', detail: { to: b.sessionid } });
    expect(await a.next()).toEqual({
      type: 'error',
      detail: { code: 'ERR_PEER_GONE', message: `call: no session ${b.sessionid} is connected`, event: 'call' },
    });
    expect(bed.server.stats().calls).toBe(0);
    // Nothing stayed behind to block the next try.
    unreachable = undefined;
    await placeCall(a, b);
  });
});

describe('workrooms server: the register deadline', () => {
  it('closes a connection that does not register in time (1008), leaving nothing', async () => {
    const memory = workroomsTestbed({ registerTimeout: 1000 });
    bed = memory;
    const idle = await bed.connect();
    await settle();
    memory.clock.increment(500);
    const prompt = await bed.join();
    // Messages before register are refused; they do not put the deadline off.
    idle.send({ type: 'autocomplete', detail: { search: 'a' } });
    expect((await idle.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'autocomplete' });
    memory.clock.increment(499);
    await settle();
    expect(idle.transport.isOpen).toBe(true);
    memory.clock.increment(1);
    expect(await idle.next()).toEqual({
      type: 'error',
      detail: { code: 'ERR_TIMEOUT', message: 'register was not sent in time' },
    });
    expect(await idle.closed).toMatchObject({ code: 1008, reason: 'register was not sent in time' });
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 1, sessions: 1, away: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(1);
    // A connection that registered in time has no deadline any more.
    memory.clock.increment(60_000);
    await settle();
    expect(prompt.transport.isOpen).toBe(true);
    expect(prompt.inbox).toEqual([]);
  });

  it('gives a connection 30 s to register by default', async () => {
    const memory = workroomsTestbed();
    bed = memory;
    const idle = await bed.connect();
    await settle();
    memory.clock.increment(29_999);
    await settle();
    expect(idle.transport.isOpen).toBe(true);
    memory.clock.increment(1);
    expect((await idle.closed).code).toBe(1008);
  });
});

describe('workrooms server: the size of a search answer', () => {
  /** A connection whose frames are kept as they came, to measure them. */
  async function measured(): Promise<RawClient & { lengths: number[] }> {
    const client = await bed.join();
    const lengths: number[] = [];
    client.transport.on('message', (frame) => lengths.push((frame as string).length));
    return Object.assign(client, { lengths });
  }
  /** `count` sessions, each with a profile of about `size` characters that the search `zz` finds. */
  async function directory(count: number, size: number): Promise<RawClient[]> {
    const clients = await Promise.all(Array.from({ length: count }, () => bed.join()));
    clients.forEach((c, i) =>
      c.send({ type: 'userprofile', detail: { github: { login: `zz-${i}`, bio: 'x'.repeat(size) } } }),
    );
    await settle();
    return clients;
  }
  const entryLength = (entry: unknown) => JSON.stringify(entry).length;

  it('keeps the answer to a 48-character search within the 32768-character floor, cut at a profile', async () => {
    // The scenario: 20 profiles of ~15 KB made this request a 301,870-byte answer.
    bed = workroomsTestbed();
    await directory(20, 15_000);
    const searcher = await measured();
    const request = '{"type":"autocomplete","detail":{"search":"zz"}}';
    expect(request).toHaveLength(48);
    searcher.send(request);
    const answer = await searcher.next();
    const length = searcher.lengths.at(-1)!;
    expect(length).toBeLessThanOrEqual(32_768);
    const results = answer.detail!.results as unknown[];
    const all = bed.registry.search('zz', 100, searcher.sessionid);
    expect(all).toHaveLength(20);
    // Whole profiles, in the directory's order, and as many as fit: the next one would not have.
    expect(results).toEqual(all.slice(0, results.length));
    expect(results.length).toBe(2);
    expect(length + 1 + entryLength(all[results.length])).toBeGreaterThan(32_768);
    expect(answer.detail!.truncated).toBe(true);
    expect(Object.keys(answer.detail!)).toEqual(['search', 'results', 'truncated']);
  });

  it('gives a larger request up to 16 times its size, and a configured budget its own', async () => {
    bed = workroomsTestbed();
    await directory(20, 15_000);
    const searcher = await measured();
    // The seed's request may carry `results`, which the server ignores: it counts toward the request's size.
    const request = JSON.stringify({ type: 'autocomplete', detail: { search: 'zz', results: ['y'.repeat(5000)] } });
    searcher.send(request);
    const answer = await searcher.next();
    const length = searcher.lengths.at(-1)!;
    const budget = 16 * request.length;
    expect(length).toBeLessThanOrEqual(budget);
    const results = answer.detail!.results as unknown[];
    const all = bed.registry.search('zz', 100, searcher.sessionid);
    expect(results).toEqual(all.slice(0, results.length));
    expect(results.length).toBe(5);
    expect(length + 1 + entryLength(all[results.length])).toBeGreaterThan(budget);
    expect(answer.detail!.truncated).toBe(true);
  });

  it('answers with no results, truncated, when not even one profile fits a configured budget', async () => {
    bed = workroomsTestbed({ searchBudget: { floor: 200, factor: 1 } });
    await directory(1, 500);
    const searcher = await measured();
    searcher.send({ type: 'autocomplete', detail: { search: 'zz' } });
    expect(await searcher.next()).toEqual({
      type: 'autocomplete',
      detail: { search: 'zz', results: [], truncated: true },
    });
    expect(searcher.lengths.at(-1)).toBeLessThanOrEqual(200);
  });

  it('says truncated when the count cut the answer short, and nothing when every match is there', async () => {
    bed = workroomsTestbed({ searchLimit: 2 });
    const [a, b, c] = await directory(3, 10);
    const searcher = await measured();
    searcher.send({ type: 'autocomplete', detail: { search: 'zz' } });
    const capped = await searcher.next();
    expect(capped.detail!.results).toHaveLength(2);
    expect(capped.detail!.truncated).toBe(true);
    c!.transport.close();
    await settle();
    searcher.send({ type: 'autocomplete', detail: { search: 'zz' } });
    const whole = await searcher.next();
    expect((whole.detail!.results as Array<{ sessionid: string }>).map((r) => r.sessionid)).toEqual([
      a!.sessionid,
      b!.sessionid,
    ]);
    expect(whole.detail).not.toHaveProperty('truncated');
  });
});

describe('workrooms server: a session that crashes', () => {
  it('is cleaned up: its calls hung up for the other sides, its connection closed with 1011', async () => {
    const registry = memoryRegistry();
    // A shared store that fails (say, Redis went away) on one operation.
    bed = workroomsTestbed({
      registry: {
        ...registry,
        get size() {
          return registry.size;
        },
        search: () => {
          throw new Error('store unavailable');
        },
      },
    });
    const [a, b, c] = [await bed.join(), await bed.join(), await bed.join()];
    const ab = await placeCall(a, b);
    const ca = await placeCall(c, a);
    a.send({ type: 'autocomplete', detail: { search: 'x' } });
    expect((await a.closed).code).toBe(1011);
    expect(await b.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ab, sessionid: a.sessionid }] } });
    expect(await c.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ca, sessionid: a.sessionid }] } });
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 2, sessions: 2, away: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(2);
  });
});

describe('workrooms server: reconnecting', () => {
  it('keeps the calls of a client that dropped, and gives them back when it registers again', async () => {
    const memory = workroomsTestbed();
    bed = memory;
    const [a, b] = [await bed.join(), await bed.join()];
    a.send({ type: 'userprofile', detail: ada });
    const callid = await placeCall(a, b);
    memory.network.sever(a.transport);
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 1, sessions: 2, away: 1, calls: 1 });
    // While A is away, what B relays to it is refused, and B is told why.
    b.send({ type: 'ice', detail: { callid, peerid: a.sessionid, candidate } });
    expect(await b.next()).toEqual({
      type: 'error',
      detail: {
        code: 'ERR_PEER_GONE',
        message: `ice: ${a.sessionid} is not connected (it may come back)`,
        event: 'ice',
      },
    });
    // And nobody can place a new call to it.
    const c = await bed.join();
    c.send({ type: 'call', detail: { to: a.sessionid } });
    expect((await c.next()).detail!.code).toBe('ERR_PEER_GONE');

    const back = await bed.connect();
    const info = { callid, outbound: true, fromsessionid: a.sessionid, tosessionid: b.sessionid, userprofiles: {} };
    expect(await back.register(a.sessionid, [info])).toEqual([callid]);
    expect(bed.server.stats()).toEqual({ connections: 3, sessions: 3, away: 0, calls: 1 });
    b.send({ type: 'answer', detail: { callid, peerid: a.sessionid, sdp } });
    expect(await back.next()).toEqual({ type: 'answer', detail: { callid, peerid: b.sessionid, sdp } });
    // Its profile came back with it.
    c.send({ type: 'autocomplete', detail: { search: 'lovelace' } });
    expect((await c.next()).detail!.results).toEqual([{ sessionid: a.sessionid, userprofiles: ada }]);
    expect(b.inbox).toEqual([]);
  });

  it('hangs up for the other side the calls of a client that does not come back within the grace period', async () => {
    const memory = workroomsTestbed();
    bed = memory;
    const [a, b, c] = [await bed.join(), await bed.join(), await bed.join()];
    const ab = await placeCall(a, b);
    const ca = await placeCall(c, a);
    memory.network.sever(a.transport);
    await settle();
    memory.clock.increment(GRACE - 1);
    await settle();
    expect(b.inbox).toEqual([]);
    expect(bed.server.stats().calls).toBe(2);
    memory.clock.increment(1);
    expect(await b.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ab, sessionid: a.sessionid }] } });
    expect(await c.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ca, sessionid: a.sessionid }] } });
    expect(bed.server.stats()).toEqual({ connections: 2, sessions: 2, away: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(2);
    // Too late: registering again gets no call back, and is told to drop it.
    const late = await bed.connect();
    expect(
      await late.register(a.sessionid, [{ callid: ab, fromsessionid: a.sessionid, tosessionid: b.sessionid }]),
    ).toEqual([]);
    expect(await late.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ab, sessionid: b.sessionid }] } });
  });

  it('takes a session over from a connection still open, closing the stale socket', async () => {
    bed = workroomsTestbed();
    const [a, b] = [await bed.join(), await bed.join()];
    const callid = await placeCall(a, b);
    const fresh = await bed.connect();
    expect(await fresh.register(a.sessionid, [{ callid }])).toEqual([callid]);
    expect((await a.closed).code).toBe(4001);
    expect(a.inbox).toEqual([]);
    b.send({ type: 'offer', detail: { callid, peerid: a.sessionid, sdp } });
    expect(await fresh.next()).toEqual({ type: 'offer', detail: { callid, peerid: b.sessionid, sdp } });
    expect(b.inbox).toEqual([]);
    expect(bed.server.stats()).toEqual({ connections: 2, sessions: 2, away: 0, calls: 1 });
  });

  it('hangs up for the other side the calls a returning client no longer lists', async () => {
    const memory = workroomsTestbed();
    bed = memory;
    const [a, b, c] = [await bed.join(), await bed.join(), await bed.join()];
    const ab = await placeCall(a, b);
    const ac = await placeCall(a, c);
    memory.network.sever(a.transport);
    await settle();
    const back = await bed.connect();
    expect(await back.register(a.sessionid, [{ callid: ac }])).toEqual([ac]);
    expect(await b.next()).toEqual({ type: 'hangup', detail: { calls: [{ callid: ab, sessionid: a.sessionid }] } });
    expect(c.inbox).toEqual([]);
    expect(back.inbox).toEqual([]);
    expect(bed.server.stats().calls).toBe(1);
  });

  it('forgets at once a client without calls that drops', async () => {
    const memory = workroomsTestbed();
    bed = memory;
    const a = await bed.join();
    memory.network.sever(a.transport);
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 0, sessions: 0, away: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(0);
  });
});

type Who = 'a' | 'b' | 'stranger';
type Ids = { a: string; b: string; stranger: string; callid: string };

const cases: Array<{ name: string; who: Who; frame: (ids: Ids) => unknown; reply: (ids: Ids) => unknown }> = [
  {
    name: 'a call to a session nobody holds',
    who: 'a',
    frame: () => ({ type: 'call', detail: { to: 'nobody-holds-this-session-id' } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_PEER_GONE',
        message: 'call: no session nobody-holds-this-session-id is connected',
        event: 'call',
      },
    }),
  },
  {
    name: 'a call to oneself',
    who: 'a',
    frame: ({ a }) => ({ type: 'call', detail: { to: a } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: 'call: you cannot call yourself', event: 'call' },
    }),
  },
  {
    name: 'a second call to the same peer',
    who: 'a',
    frame: ({ b }) => ({ type: 'call', detail: { to: b } }),
    reply: ({ b, callid }) => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: `call: you already have call ${callid} with ${b}`, event: 'call' },
    }),
  },
  {
    name: 'a call back from the callee while the call is up',
    who: 'b',
    frame: ({ a }) => ({ type: 'call', detail: { to: a } }),
    reply: ({ a, callid }) => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: `call: you already have call ${callid} with ${a}`, event: 'call' },
    }),
  },
  {
    name: 'an offer for a call the sender is not part of',
    who: 'stranger',
    frame: ({ b, callid }) => ({ type: 'offer', detail: { callid, peerid: b, sdp } }),
    reply: ({ callid }) => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: `offer: you have no call ${callid}`, event: 'offer' },
    }),
  },
  {
    name: 'ice for a call that does not exist',
    who: 'a',
    frame: ({ b }) => ({ type: 'ice', detail: { callid: 'no-such-call-0000000000', peerid: b, candidate } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: 'ice: you have no call no-such-call-0000000000', event: 'ice' },
    }),
  },
  {
    name: 'an answer on a call addressed to someone not on it',
    who: 'b',
    frame: ({ stranger, callid }) => ({ type: 'answer', detail: { callid, peerid: stranger, sdp } }),
    reply: ({ stranger, callid }) => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: `answer: ${stranger} is not on call ${callid}`, event: 'answer' },
    }),
  },
  {
    name: 'a hangup of a call that does not exist',
    who: 'a',
    frame: () => ({ type: 'hangup', detail: { calls: [{ callid: 'no-such-call-0000000000' }] } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: 'hangup: you have no call no-such-call-0000000000',
        event: 'hangup',
      },
    }),
  },
  {
    name: 'a hangup of somebody else’s call',
    who: 'stranger',
    frame: ({ callid }) => ({ type: 'hangup', detail: { calls: [{ callid }] } }),
    reply: ({ callid }) => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: `hangup: you have no call ${callid}`, event: 'hangup' },
    }),
  },
  {
    name: 'a hangup of no calls',
    who: 'a',
    frame: () => ({ type: 'hangup', detail: { calls: [] } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^hangup: `detail.calls`/), event: 'hangup' },
    }),
  },
  {
    name: 'a second register on the same connection',
    who: 'a',
    frame: () => ({ type: 'register', detail: { sessionid: generateId(), calls: [] } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: 'register: this connection is already registered',
        event: 'register',
      },
    }),
  },
  {
    name: 'a register with a guessable sessionid',
    who: 'stranger',
    frame: () => ({ type: 'register', detail: { sessionid: 'bob', calls: [] } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_INVALID_FIELD',
        message: 'register: `detail.sessionid`: must be 22 to 64 characters of A-Z a-z 0-9 - _',
        event: 'register',
      },
    }),
  },
  {
    name: 'a call whose target is not an id',
    who: 'a',
    frame: () => ({ type: 'call', detail: { to: 42 } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^call: `detail.to`/), event: 'call' },
    }),
  },
  {
    name: 'an offer without sdp',
    who: 'a',
    frame: ({ b, callid }) => ({ type: 'offer', detail: { callid, peerid: b } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^offer: `detail.sdp`/), event: 'offer' },
    }),
  },
  {
    name: 'ice without a candidate',
    who: 'b',
    frame: ({ a, callid }) => ({ type: 'ice', detail: { callid, peerid: a } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^ice: `detail.candidate`/), event: 'ice' },
    }),
  },
  {
    name: 'an offer nested thousands deep (JSON.stringify would overflow the stack relaying it)',
    who: 'a',
    frame: ({ b, callid }) =>
      `{"type":"offer","detail":{"callid":"${callid}","peerid":"${b}","sdp":${'['.repeat(5000)}${']'.repeat(5000)}}}`,
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: 'offer: `detail`: nested deeper than 16', event: 'offer' },
    }),
  },
  {
    name: 'an answer whose peerid is not an id',
    who: 'b',
    frame: ({ callid }) => ({ type: 'answer', detail: { callid, peerid: 7, sdp: { type: 'answer', sdp: 'v=0' } } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_INVALID_FIELD',
        message: expect.stringMatching(/^answer: `detail.peerid`/),
        event: 'answer',
      },
    }),
  },
  {
    name: 'a userprofile that is not a record of objects',
    who: 'a',
    frame: () => ({ type: 'userprofile', detail: { github: 'ada' } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_INVALID_FIELD',
        message: expect.stringMatching(/^userprofile: `detail.github`/),
        event: 'userprofile',
      },
    }),
  },
  {
    name: 'a userprofile nested thousands deep (JSON.stringify would overflow the stack sending it on)',
    who: 'b',
    frame: () => `{"type":"userprofile","detail":{"github":{"x":${'['.repeat(5000)}${']'.repeat(5000)}}}}`,
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_INVALID_FIELD',
        message: 'userprofile: `detail`: nested deeper than 16',
        event: 'userprofile',
      },
    }),
  },
  {
    name: 'a userprofile over 16384 characters',
    who: 'a',
    frame: () => ({ type: 'userprofile', detail: { github: { bio: 'x'.repeat(16384) } } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_INVALID_FIELD',
        message: 'userprofile: `detail`: larger than 16384 characters of JSON',
        event: 'userprofile',
      },
    }),
  },
  {
    name: 'an extra key in detail',
    who: 'a',
    frame: ({ b }) => ({ type: 'call', detail: { to: b, from: 'me' } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^call: `detail.from`/), event: 'call' },
    }),
  },
  {
    name: 'a detail that is not an object',
    who: 'a',
    frame: ({ b }) => ({ type: 'call', detail: b }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: 'call: `detail` must be an object', event: 'call' },
    }),
  },
  {
    name: 'a frame over the size cap',
    who: 'a',
    frame: ({ b, callid }) => ({ type: 'offer', detail: { callid, peerid: b, sdp: 'x'.repeat(70_000) } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_FRAME_TOO_LARGE', message: expect.stringContaining('exceeds the cap of 65536') },
    }),
  },
  {
    name: 'a frame that is not JSON',
    who: 'a',
    frame: () => 'call bob',
    reply: () => ({ type: 'error', detail: { code: 'ERR_MALFORMED_FRAME', message: 'frame is not valid JSON' } }),
  },
  {
    name: 'JSON that is not an object',
    who: 'b',
    frame: () => '["call", "bob"]',
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_MALFORMED_FRAME', message: expect.stringMatching(/JSON object/) },
    }),
  },
  {
    name: 'a binary frame',
    who: 'a',
    frame: () => new Uint8Array([123, 125]),
    reply: () => ({ type: 'error', detail: { code: 'ERR_MALFORMED_FRAME', message: expect.stringMatching(/binary/) } }),
  },
  {
    name: 'an unknown message type',
    who: 'a',
    frame: () => ({ type: 'mute', detail: {} }),
    reply: () => ({ type: 'error', detail: { code: 'ERR_UNKNOWN_MESSAGE', message: 'unknown message type `mute`' } }),
  },
  {
    name: 'a message only the server sends',
    who: 'b',
    frame: ({ a, b, callid }) => ({
      type: 'inboundcall',
      detail: { inbound: true, callid, fromsessionid: a, tosessionid: b, userprofiles: {} },
    }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: '`inboundcall` is sent by the server only' },
    }),
  },
  {
    name: 'a missing type',
    who: 'a',
    frame: ({ b }) => ({ detail: { to: b } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: '`type` must be a non-empty string' },
    }),
  },
  {
    name: 'a key besides type and detail',
    who: 'a',
    frame: ({ b }) => ({ type: 'call', detail: { to: b }, from: 'me' }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: 'call: unexpected key `from` next to type and detail' },
    }),
  },
];

const testbeds: Array<[string, () => Promise<Testbed>]> = [
  ['memory network', async () => workroomsTestbed()],
  ['real server (http + ws)', () => workroomsSocketTestbed()],
];

for (const [where, makeBed] of testbeds) {
  describe(`workrooms server: bad input over the ${where}`, () => {
    for (const { name, who, frame, reply } of cases) {
      it(`answers ${name} with an error, and nothing else changes`, async () => {
        bed = await makeBed();
        const clients: Record<Who, RawClient> = {
          a: await bed.join(),
          b: await bed.join(),
          stranger: await bed.join(),
        };
        const { a, b } = clients;
        const callid = await placeCall(a, b);
        const ids: Ids = { a: a.sessionid, b: b.sessionid, stranger: clients.stranger.sessionid, callid };
        const before = bed.server.stats();
        const offender = clients[who];
        offender.send(frame(ids));
        expect(await offender.next()).toEqual(reply(ids));
        // Still connected and served: the call still relays, and that relay is the first thing anyone else sees.
        a.send({ type: 'offer', detail: { callid, peerid: b.sessionid, sdp } });
        expect(await b.next()).toEqual({ type: 'offer', detail: { callid, peerid: a.sessionid, sdp } });
        offender.send({ type: 'autocomplete', detail: { search: 'probe' } });
        expect(await offender.next()).toEqual({ type: 'autocomplete', detail: { search: 'probe', results: [] } });
        for (const other of Object.values(clients)) expect(other.inbox).toEqual([]);
        expect(bed.server.stats()).toEqual(before);
      });
    }

    it('answers every message sent before register with an error, and registers afterwards', async () => {
      bed = await makeBed();
      const b = await bed.join();
      const early = await bed.connect();
      const frames = [
        { type: 'userprofile', detail: ada },
        { type: 'call', detail: { to: b.sessionid } },
        { type: 'hangup', detail: { calls: [{ callid: generateId() }] } },
        { type: 'autocomplete', detail: { search: 'a' } },
        { type: 'offer', detail: { callid: generateId(), peerid: b.sessionid, sdp } },
        { type: 'answer', detail: { callid: generateId(), peerid: b.sessionid, sdp } },
        { type: 'ice', detail: { callid: generateId(), peerid: b.sessionid, candidate } },
      ];
      for (const frame of frames) {
        early.send(frame);
        expect(await early.next()).toEqual({
          type: 'error',
          detail: { code: 'ERR_NOT_PERMITTED', message: `${frame.type}: send register first`, event: frame.type },
        });
      }
      expect(b.inbox).toEqual([]);
      expect(bed.server.stats()).toEqual({ connections: 2, sessions: 1, away: 0, calls: 0 });
      await early.register();
      await placeCall(early, b);
    });
  });
}

describe('workrooms server: nothing leaks', () => {
  it('forgets a hundred clients a round, ten rounds, that call each other and vanish', async () => {
    const router = memoryRouter<ServerMessage>(serverCodec());
    const memory = workroomsTestbed({ router });
    bed = memory;
    for (let round = 0; round < 10; round++) {
      const clients = await Promise.all(Array.from({ length: 100 }, () => bed.join()));
      for (let i = 1; i < clients.length; i++)
        clients[i]!.send({ type: 'call', detail: { to: clients[i - 1]!.sessionid } });
      await settle();
      expect(bed.server.stats().calls).toBe(99);
      // Half hang up cleanly, half drop and never come back.
      for (const [i, c] of clients.entries()) {
        if (i % 2 === 0) c.transport.close();
        else memory.network.sever(c.transport);
      }
      await settle();
      memory.clock.increment(GRACE);
      await settle();
    }
    expect(bed.server.stats()).toEqual({ connections: 0, sessions: 0, away: 0, calls: 0 });
    expect(bed.registry.size).toEqual({ sessions: 0, online: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(0);
    expect(router.size).toBe(0);
  });

  it('forgets the old connection of a session taken over, and the new one when it leaves', async () => {
    const router = memoryRouter<ServerMessage>(serverCodec());
    const memory = workroomsTestbed({ router });
    bed = memory;
    const [a, b] = [await bed.join(), await bed.join()];
    await placeCall(a, b);
    const fresh = await bed.connect();
    await fresh.register(a.sessionid, []);
    await settle();
    expect(bed.server.sessions.size).toBe(2);
    // Each connection under its id, each session under its sessionid: nothing of the stale connection.
    expect(router.size).toBe(4);
    fresh.transport.close();
    b.transport.close();
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 0, sessions: 0, away: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(0);
    expect(router.size).toBe(0);
  });

  it('forgets connections that never register', async () => {
    bed = workroomsTestbed();
    const clients = await Promise.all(Array.from({ length: 20 }, () => bed.connect()));
    await settle();
    expect(bed.server.stats().connections).toBe(20);
    for (const c of clients) c.transport.close();
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 0, sessions: 0, away: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(0);
  });

  it('closes every connection on close(), away sessions included, telling nobody', async () => {
    const memory = workroomsTestbed();
    bed = memory;
    const [a, b, c] = [await bed.join(), await bed.join(), await bed.join()];
    await placeCall(a, b);
    await placeCall(c, a);
    memory.network.sever(c.transport);
    await settle();
    expect(bed.server.stats().away).toBe(1);
    await bed.server.close();
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
    expect(a.inbox).toEqual([]);
    expect(b.inbox).toEqual([]);
    expect(bed.server.stats()).toEqual({ connections: 0, sessions: 0, away: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(0);
  });

  it('leaks nothing over the real server either: clean closes, drops past the grace period, takeovers', async () => {
    const router = memoryRouter<ServerMessage>(serverCodec());
    bed = await workroomsSocketTestbed({ grace: 50, router });
    const clients = await Promise.all(Array.from({ length: 20 }, () => bed.join()));
    for (let i = 0; i < clients.length; i += 2) await placeCall(clients[i]!, clients[i + 1]!);
    expect(bed.server.stats()).toEqual({ connections: 20, sessions: 20, away: 0, calls: 10 });
    // A quarter is taken over by a new connection, which then leaves too.
    const fresh = await Promise.all(
      clients.slice(0, 5).map(async (c) => {
        const next = await bed.connect();
        await next.register(c.sessionid, []);
        return next;
      }),
    );
    for (const c of [...clients, ...fresh]) c.transport.close();
    for (let i = 0; i < 200 && bed.server.sessions.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(bed.server.stats()).toEqual({ connections: 0, sessions: 0, away: 0, calls: 0 });
    expect(bed.registry.size).toEqual({ sessions: 0, online: 0, calls: 0 });
    expect(bed.server.sessions.size).toBe(0);
    expect(router.size).toBe(0);
  });
});

describe('workrooms server in startServer', () => {
  it('serves /workrooms next to the other protocols and counts its connections in /health', async () => {
    const { startServer } = await import('../cli/server.js');
    const running = await startServer({ port: 0, host: '127.0.0.1' });
    try {
      const { webSocketTransport } = await import('../adapters/websocket/node.js');
      const { rawClient } = await import('./workrooms-helpers.js');
      const url = `ws://127.0.0.1:${running.address.port}/workrooms`;
      const a = rawClient(await webSocketTransport(url));
      const b = rawClient(await webSocketTransport(url));
      await a.register();
      await b.register();
      await placeCall(a, b);
      const health = (await (await fetch(`http://127.0.0.1:${running.address.port}/health`)).json()) as {
        connections: Record<string, number>;
      };
      expect(health.connections.workrooms).toBe(2);
      expect(health.connections.total).toBeGreaterThanOrEqual(2);
      expect(running.workrooms.stats()).toEqual({ connections: 2, sessions: 2, away: 0, calls: 1 });
    } finally {
      await running.close();
    }
  });
});
