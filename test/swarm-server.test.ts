import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { serverCodec } from '../machines/swarm/codec.js';
import type { ServerMessage } from '../machines/swarm/protocol.js';
import type { SwarmServerOptions } from '../machines/swarm/server.js';
import { ErrorCode } from '../src/errors.js';
import { memoryRouter, RouterError, type Router } from '../src/router.js';
import { refusingRouter } from './router-compliance.js';
import { settle, swarmSocketTestbed, swarmTestbed, until, type RawClient, type Testbed } from './swarm-helpers.js';

let bed: Testbed;
afterEach(async () => {
  await bed?.close();
});

const OFFER = 'v=0\r\no=alice offer';
const ANSWER = 'v=0\r\no=bob answer';
const request = (context_id: string) => ({ type: 'requesting_peers', detail: { context_id } });

/** Two clients the server paired: `alice` waited, `bob` came second. */
async function match(aliceId = 'alice-device', bobId = 'bob-device') {
  const alice = await bed.connect(aliceId);
  alice.send(request('a1'));
  await until(() => bed.server.stats().pending === 1);
  const bob = await bed.connect(bobId);
  bob.send(request('b1'));
  expect(await alice.next()).toEqual({ type: 'requesting_offer', detail: { context_id: 'a1' } });
  expect(await bob.next()).toEqual({ type: 'wait_for_offer', detail: { context_id: 'b1' } });
  return { alice, bob };
}

const beds: Array<[string, () => Promise<Testbed> | Testbed]> = [
  ['memory network', () => swarmTestbed()],
  ['real ws on 127.0.0.1', () => swarmSocketTestbed()],
];

describe.each(beds)('swarm server over %s', (_name, create) => {
  it('pairs two requests and relays the offer and the answer, each with the receiver’s own context_id', async () => {
    bed = await create();
    const { alice, bob } = await match();
    expect(bed.server.stats()).toEqual({ connections: 2, pending: 0, matches: 1 });
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    expect(await bob.next()).toEqual({ type: 'forwarding_offer', detail: { offer: OFFER, context_id: 'b1' } });
    bob.send({ type: 'sending_answer', detail: { answer: ANSWER, context_id: 'b1' } });
    expect(await alice.next()).toEqual({ type: 'forwarding_answer', detail: { answer: ANSWER, context_id: 'a1' } });
    // The match is complete: the server forgets it.
    expect(bed.server.stats()).toEqual({ connections: 2, pending: 0, matches: 0 });
  });

  it('never pairs two requests of the same client_id, even from two connections', async () => {
    bed = await create();
    const laptop1 = await bed.connect('laptop');
    const laptop2 = await bed.connect('laptop');
    laptop1.send(request('x'));
    laptop1.send(request('y'));
    await until(() => bed.server.stats().pending === 2);
    laptop2.send(request('z'));
    await until(() => bed.server.stats().pending === 3);
    await settle();
    expect(laptop1.inbox).toEqual([]);
    expect(laptop2.inbox).toEqual([]);
    // Another device is paired with the request that waited longest.
    const phone = await bed.connect('phone');
    phone.send(request('p'));
    expect(await laptop1.next()).toEqual({ type: 'requesting_offer', detail: { context_id: 'x' } });
    expect(await phone.next()).toEqual({ type: 'wait_for_offer', detail: { context_id: 'p' } });
    expect(bed.server.stats()).toEqual({ connections: 3, pending: 2, matches: 1 });
  });

  it('keeps a client’s concurrent requests apart by context_id', async () => {
    bed = await create();
    const hub = await bed.connect('hub');
    hub.send(request('one'));
    hub.send(request('two'));
    await until(() => bed.server.stats().pending === 2);
    const b = await bed.connect('b');
    b.send(request('b-ctx'));
    const c = await bed.connect('c');
    c.send(request('c-ctx'));
    expect(await hub.next()).toEqual({ type: 'requesting_offer', detail: { context_id: 'one' } });
    expect(await hub.next()).toEqual({ type: 'requesting_offer', detail: { context_id: 'two' } });
    expect((await b.next()).detail).toEqual({ context_id: 'b-ctx' });
    expect((await c.next()).detail).toEqual({ context_id: 'c-ctx' });
    // Offers go to the match of their context only.
    hub.send({ type: 'sending_offer', detail: { offer: 'v=0 for c', context_id: 'two' } });
    hub.send({ type: 'sending_offer', detail: { offer: 'v=0 for b', context_id: 'one' } });
    expect(await c.next()).toEqual({ type: 'forwarding_offer', detail: { offer: 'v=0 for c', context_id: 'c-ctx' } });
    expect(await b.next()).toEqual({ type: 'forwarding_offer', detail: { offer: 'v=0 for b', context_id: 'b-ctx' } });
    c.send({ type: 'sending_answer', detail: { answer: 'v=0 from c', context_id: 'c-ctx' } });
    expect(await hub.next()).toEqual({
      type: 'forwarding_answer',
      detail: { answer: 'v=0 from c', context_id: 'two' },
    });
    expect(bed.server.stats().matches).toBe(1);
  });

  it('lets a request without a partner wait, and takes it away when its client leaves', async () => {
    bed = await create();
    const early = await bed.connect('early');
    early.send(request('e'));
    await until(() => bed.server.stats().pending === 1);
    early.transport.close();
    await until(() => bed.server.stats().connections === 0);
    expect(bed.server.stats()).toEqual({ connections: 0, pending: 0, matches: 0 });
    // A newcomer is not paired with the request that left: it waits in turn.
    const late = await bed.connect('late');
    late.send(request('l'));
    await until(() => bed.server.stats().pending === 1);
    await settle();
    expect(late.inbox).toEqual([]);
  });

  it('tells the other side of a match in progress that its peer left (ERR_PEER_GONE), and forgets the match', async () => {
    bed = await create();
    const { alice, bob } = await match();
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    await bob.next();
    alice.transport.close();
    expect(await bob.next()).toEqual({
      type: 'error',
      detail: { code: 'ERR_PEER_GONE', message: 'the other peer of this match left', context_id: 'b1' },
    });
    expect(bed.server.stats()).toEqual({ connections: 1, pending: 0, matches: 0 });
    // Bob's late answer is refused, not relayed to anyone.
    bob.send({ type: 'sending_answer', detail: { answer: ANSWER, context_id: 'b1' } });
    expect((await bob.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'sending_answer' });
  });

  it('leaks nothing: sessions, pending requests and matches are all gone once every client left', async () => {
    bed = await create();
    const clients: RawClient[] = [];
    for (let i = 0; i < 12; i++) {
      const client = await bed.connect(`device-${i % 5}`);
      client.send(request(`r${i}`));
      client.send(request(`s${i}`));
      clients.push(client);
    }
    await until(() => bed.server.stats().pending + bed.server.stats().matches * 2 === 24);
    expect(bed.server.stats().matches).toBeGreaterThan(0);
    for (const client of clients) client.transport.close();
    await until(() => bed.server.stats().connections === 0);
    expect(bed.server.stats()).toEqual({ connections: 0, pending: 0, matches: 0 });
    expect(bed.server.sessions.size).toBe(0);
  });
});

type Case = { name: string; frame: unknown; error: Record<string, unknown>; before?: 'intro' | 'none' };

const cases: Case[] = [
  { name: 'a frame that is not JSON', frame: 'hello?', error: { code: 'ERR_MALFORMED_FRAME' } },
  { name: 'a JSON array', frame: '[1,2]', error: { code: 'ERR_MALFORMED_FRAME' } },
  { name: 'a binary frame', frame: new Uint8Array([1, 2, 3]), error: { code: 'ERR_MALFORMED_FRAME' } },
  { name: 'a frame over the cap', frame: 'x'.repeat(70_000), error: { code: 'ERR_FRAME_TOO_LARGE' } },
  { name: 'an unknown type', frame: { type: 'hello', detail: {} }, error: { code: 'ERR_UNKNOWN_MESSAGE' } },
  {
    name: 'a type only the server sends',
    frame: { type: 'forwarding_offer', detail: { offer: 'v=0', context_id: 'x' } },
    error: { code: 'ERR_NOT_PERMITTED' },
  },
  {
    name: 'a missing field',
    frame: { type: 'requesting_peers', detail: {} },
    error: { code: 'ERR_INVALID_FIELD' },
  },
  {
    name: 'a wrong-typed field',
    frame: { type: 'requesting_peers', detail: { context_id: 7 } },
    error: { code: 'ERR_INVALID_FIELD' },
  },
  {
    name: 'an extra field',
    frame: { type: 'requesting_peers', detail: { context_id: 'x', client_id: 'someone-else' } },
    error: { code: 'ERR_INVALID_FIELD' },
  },
  {
    name: 'an extra key next to type and detail',
    frame: { type: 'requesting_peers', detail: { context_id: 'x' }, to: 'all' },
    error: { code: 'ERR_INVALID_FIELD', message: 'requesting_peers: unexpected key `to` next to type and detail' },
  },
  {
    name: 'a context_id over 128 characters',
    frame: { type: 'requesting_peers', detail: { context_id: 'c'.repeat(129) } },
    error: { code: 'ERR_INVALID_FIELD' },
  },
  {
    name: 'a request before i_am',
    frame: request('x'),
    before: 'none',
    error: { code: 'ERR_NOT_PERMITTED', event: 'requesting_peers' },
  },
  {
    name: 'a second i_am',
    frame: { type: 'i_am', detail: { client_id: 'impostor' } },
    error: { code: 'ERR_NOT_PERMITTED', event: 'i_am' },
  },
  {
    name: 'an offer for no match',
    frame: { type: 'sending_offer', detail: { offer: OFFER, context_id: 'nope' } },
    error: { code: 'ERR_NOT_PERMITTED', event: 'sending_offer', context_id: 'nope' },
  },
  {
    name: 'an answer for no offer',
    frame: { type: 'sending_answer', detail: { answer: ANSWER, context_id: 'nope' } },
    error: { code: 'ERR_NOT_PERMITTED', event: 'sending_answer', context_id: 'nope' },
  },
];

describe('swarm server: bad input gets a typed error and the connection stays usable', () => {
  it.each(cases)('$name', async ({ frame, error, before }) => {
    bed = swarmTestbed();
    const client = await bed.connect(before === 'none' ? undefined : 'me');
    client.send(frame);
    const reply = await client.next();
    expect(reply.type).toBe('error');
    expect(reply.detail).toMatchObject(error);
    expect(typeof reply.detail.message).toBe('string');
    // Still open, still served.
    if (before === 'none') client.send({ type: 'i_am', detail: { client_id: 'me' } });
    client.send(request('after'));
    await until(() => bed.server.stats().pending === 1);
    expect(client.transport.isOpen).toBe(true);
    expect(bed.server.stats().connections).toBe(1);
  });

  it('refuses an offer from bob, an answer from alice, a second offer, and a context_id in use', async () => {
    bed = swarmTestbed();
    const { alice, bob } = await match();
    bob.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'b1' } });
    expect((await bob.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'sending_offer' });
    alice.send({ type: 'sending_answer', detail: { answer: ANSWER, context_id: 'a1' } });
    expect((await alice.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'sending_answer' });
    alice.send(request('a1'));
    expect((await alice.next()).detail).toMatchObject({
      code: 'ERR_NOT_PERMITTED',
      event: 'requesting_peers',
      context_id: 'a1',
    });
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    expect((await bob.next()).type).toBe('forwarding_offer');
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    expect((await alice.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'sending_offer' });
    await settle();
    expect(bob.inbox).toEqual([]);
  });

  it('draws another session id when the generator repeats one, and refuses the connection when it cannot find one', async () => {
    const ids = ['s1', 's1', 's2', 's2'];
    bed = swarmTestbed({ generateId: () => ids.shift() ?? 's2' });
    const a = await bed.connect('a');
    const b = await bed.connect('b');
    await settle();
    expect([...bed.server.sessions.keys()]).toEqual(['s1', 's2']);
    const c = await bed.connect(); // refused at once: no i_am to send
    await settle();
    expect(c.transport.isOpen).toBe(false);
    expect(a.transport.isOpen && b.transport.isOpen).toBe(true);
    expect(bed.server.stats().connections).toBe(2);
  });

  it('caps the requests one connection may have waiting', async () => {
    bed = swarmTestbed({ maxRequests: 3 });
    const client = await bed.connect('greedy');
    for (const id of ['1', '2', '3', '4']) client.send(request(id));
    expect((await client.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', context_id: '4' });
    expect(bed.server.stats().pending).toBe(3);
  });

  it('closes a connection that does not introduce itself within introTimeout, leaving nothing behind', async () => {
    const clock = new SimulatedClock();
    bed = swarmTestbed({ clock, introTimeout: 1000 });
    const silent = await bed.connect();
    const polite = await bed.connect('polite');
    await settle();
    clock.increment(999);
    await settle();
    expect(silent.transport.isOpen).toBe(true);
    clock.increment(1);
    const info = await silent.closed;
    expect(info.code).toBe(1008);
    await settle();
    expect(polite.transport.isOpen).toBe(true);
    expect(bed.server.stats().connections).toBe(1);
  });

  it('drops a match whose offer never comes after matchTimeout: both ends get ERR_TIMEOUT, their slots are free', async () => {
    const clock = new SimulatedClock();
    bed = swarmTestbed({ clock, matchTimeout: 5000, maxRequests: 1 });
    const { alice, bob } = await match();
    clock.increment(4999);
    await settle();
    expect(alice.inbox).toEqual([]);
    expect(bed.server.stats().matches).toBe(1);
    clock.increment(1);
    const timeout = (context_id: string) => ({
      type: 'error',
      detail: { code: 'ERR_TIMEOUT', message: 'the match was not answered within 5000 ms', context_id },
    });
    expect(await alice.next()).toEqual(timeout('a1'));
    expect(await bob.next()).toEqual(timeout('b1'));
    expect(bed.server.stats()).toEqual({ connections: 2, pending: 0, matches: 0 });
    // The late offer goes nowhere; both may ask again (maxRequests 1: the old request no longer counts).
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    expect((await alice.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'sending_offer' });
    alice.send(request('a2'));
    bob.send(request('b2'));
    expect(await alice.next()).toEqual({ type: 'requesting_offer', detail: { context_id: 'a2' } });
    expect(await bob.next()).toEqual({ type: 'wait_for_offer', detail: { context_id: 'b2' } });
  });

  it('lets a match answered in time be: its timer does nothing', async () => {
    const clock = new SimulatedClock();
    bed = swarmTestbed({ clock, matchTimeout: 5000 });
    const { alice, bob } = await match();
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    await bob.next();
    bob.send({ type: 'sending_answer', detail: { answer: ANSWER, context_id: 'b1' } });
    await alice.next();
    // The same context_ids, reused for a new match with each other, are not hit by the old timer.
    bob.send(request('b1'));
    await until(() => bed.server.stats().pending === 1);
    clock.increment(2500);
    alice.send(request('a1'));
    expect((await bob.next()).type).toBe('requesting_offer');
    expect((await alice.next()).type).toBe('wait_for_offer');
    clock.increment(2500); // the first match's timer fires
    await settle();
    expect(alice.inbox).toEqual([]);
    expect(bob.inbox).toEqual([]);
    expect(bed.server.stats().matches).toBe(1);
  });

  it('tells nobody on shutdown, and closes every connection', async () => {
    bed = swarmTestbed();
    const { alice, bob } = await match();
    await bed.server.close();
    await Promise.all([alice.closed, bob.closed]);
    expect(alice.inbox).toEqual([]);
    expect(bob.inbox).toEqual([]);
    expect(bed.server.stats()).toEqual({ connections: 0, pending: 0, matches: 0 });
  });
});

/**
 * A router as the Redis one is for sessions on another process with Redis
 * up: `send` hands every message on and answers true, whatever becomes of
 * it; `deliver` says how it went. A session in `unreachable` is held by no
 * process (its process was killed and is not yet found dead): `send` drops
 * what is sent to it, `deliver` rejects with `ERR_PEER_GONE` (at once, or
 * when `fail()` is called while `held`), or with `error` when that is set.
 */
function deliveringRouter(unreachable: Set<string>) {
  const inner = memoryRouter<ServerMessage>(serverCodec());
  const waiting: Array<() => void> = [];
  const control = {
    held: false,
    error: undefined as Error | undefined,
    fail: () => waiting.splice(0).forEach((f) => f()),
  };
  const router: Router<ServerMessage> = {
    add: (id, transport) => inner.add(id, transport),
    remove: (id) => inner.remove(id),
    has: (id) => inner.has(id),
    send: (id, message) => (unreachable.has(id) || inner.send(id, message), true),
    async deliver(id, message) {
      if (!unreachable.has(id) && inner.send(id, message)) return;
      const error = control.error ?? new RouterError(ErrorCode.PeerGone, `no process holds session ${id}`);
      if (control.held) await new Promise<void>((resolve) => waiting.push(resolve));
      throw error;
    },
    close: (id, code, reason) => inner.close(id, code, reason),
    get size() {
      return inner.size;
    },
  };
  return { router, control };
}

/** Starts a testbed on a router made for a set of unreachable sessions; `alice-session` and `bob-session` come first. */
function unreachableBed<R extends { router: Router<ServerMessage> }>(
  make: (unreachable: Set<string>) => R,
  options: Omit<SwarmServerOptions, 'router' | 'generateId'> = {},
) {
  const unreachable = new Set<string>();
  const made = make(unreachable);
  const ids = ['alice-session', 'bob-session'];
  bed = swarmTestbed({ ...options, router: made.router, generateId: () => ids.shift()! });
  return { unreachable, ...made };
}

const undeliverable: Array<[string, (unreachable: Set<string>) => { router: Router<ServerMessage> }]> = [
  [
    'send answers false (Redis down)',
    (unreachable) => ({
      router: refusingRouter(memoryRouter<ServerMessage>(serverCodec()), (id) => unreachable.has(id)),
    }),
  ],
  ['deliver rejects, send cannot know (Redis up, no process holds it)', deliveringRouter],
];

describe.each(undeliverable)('swarm server: a relay the router cannot deliver: %s', (_name, make) => {
  it('an undeliverable offer ends the match at once: alice gets ERR_PEER_GONE, nothing is left', async () => {
    const { unreachable } = unreachableBed(make);
    const { alice, bob } = await match();
    unreachable.add('bob-session');
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    expect(await alice.next()).toEqual({
      type: 'error',
      detail: {
        code: 'ERR_PEER_GONE',
        message: 'the other peer of this match cannot be reached: your offer was not delivered',
        context_id: 'a1',
      },
    });
    expect(bed.server.stats()).toEqual({ connections: 2, pending: 0, matches: 0 });
    // The match is over: bob (reachable again) cannot answer into it; alice's context_id is free again.
    unreachable.clear();
    bob.send({ type: 'sending_answer', detail: { answer: ANSWER, context_id: 'b1' } });
    expect((await bob.next()).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'sending_answer' });
    await settle();
    expect(alice.inbox).toEqual([]);
  });

  it('an undeliverable answer ends the match at once: bob gets ERR_PEER_GONE, nothing is left', async () => {
    const { unreachable } = unreachableBed(make);
    const { alice, bob } = await match();
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    expect((await bob.next()).type).toBe('forwarding_offer');
    unreachable.add('alice-session');
    bob.send({ type: 'sending_answer', detail: { answer: ANSWER, context_id: 'b1' } });
    expect(await bob.next()).toEqual({
      type: 'error',
      detail: {
        code: 'ERR_PEER_GONE',
        message: 'the other peer of this match cannot be reached: your answer was not delivered',
        context_id: 'b1',
      },
    });
    expect(bed.server.stats()).toEqual({ connections: 2, pending: 0, matches: 0 });
    // Alice leaving later tells nobody: the match is already over.
    alice.transport.close();
    await until(() => bed.server.stats().connections === 1);
    await settle();
    expect(bob.inbox).toEqual([]);
  });
});

describe('swarm server: a relay through deliver that fails late or oddly', () => {
  it('an offer whose match ended while its delivery was under way: alice is told once, that bob left', async () => {
    const { unreachable, control } = unreachableBed(deliveringRouter);
    const { alice, bob } = await match();
    unreachable.add('bob-session');
    control.held = true;
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    await settle();
    bob.transport.close();
    expect((await alice.next()).detail).toEqual({
      code: 'ERR_PEER_GONE',
      message: 'the other peer of this match left',
      context_id: 'a1',
    });
    control.fail();
    await settle();
    expect(alice.inbox).toEqual([]);
    expect(bed.server.stats()).toEqual({ connections: 1, pending: 0, matches: 0 });
  });

  it('a delivery that fails with something other than a RouterError is logged at error, and ends the match too', async () => {
    const errors: Array<[string, Record<string, unknown> | undefined]> = [];
    const logger = {
      info() {},
      warn() {},
      error: (m: string, fields?: Record<string, unknown>) => void errors.push([m, fields]),
    };
    const { unreachable, control } = unreachableBed(deliveringRouter, { logger });
    const { alice } = await match();
    unreachable.add('bob-session');
    control.error = new Error('encoder broke');
    alice.send({ type: 'sending_offer', detail: { offer: OFFER, context_id: 'a1' } });
    expect((await alice.next()).detail).toMatchObject({ code: 'ERR_PEER_GONE', context_id: 'a1' });
    expect(errors).toEqual([['swarm: relay failed', { error: 'Error: encoder broke' }]]);
    expect(bed.server.stats().matches).toBe(0);
  });
});
