/**
 * The workrooms client machine against the real server over a memory world:
 * memory network, memory WebRTC (trickle ICE) and a SimulatedClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor, type Actor } from 'xstate';
import type { ClientEmitted, workroomsClient } from '../machines/workrooms/client.machine.js';
import type { Transport } from '../src/transport.js';
import { createWorkroomsClient } from '../machines/workrooms/client.js';
import { createWorkroomsWorld, type WorkroomsWorld } from '../testing/index.js';
import { rawClient, settle } from './workrooms-helpers.js';

let world: WorkroomsWorld;
afterEach(async () => {
  await world?.close();
});

type Client = Actor<typeof workroomsClient>;
const GRACE = 5000;
const RECONNECT = 1000;

function record(actor: Client) {
  const events: ClientEmitted[] = [];
  actor.on('*', (e) => events.push(e as ClientEmitted));
  return {
    events,
    of: <T extends ClientEmitted['type']>(type: T) =>
      events.filter((e): e is Extract<ClientEmitted, { type: T }> => e.type === type),
  };
}

const idOf = (client: Client) => client.getSnapshot().context.sessionid;
const callsOf = (client: Client) => Object.keys(client.getSnapshot().context.calls);
const ready = (client: Client) => waitFor(client, (s) => s.matches({ active: { online: 'ready' } }));

async function until(predicate: () => boolean) {
  for (let i = 0; i < 200 && !predicate(); i++) await settle(1);
  expect(predicate()).toBe(true);
}

function nextMessage(transport: Transport): Promise<unknown> {
  return new Promise((resolve) => {
    const off = transport.on('message', (frame) => {
      off();
      resolve(frame);
    });
  });
}

/** Starts two clients, `a` calls `b`, and waits for the call's channel to be open on both sides. */
async function connectedPair(options: { reconnectDelay?: number } = {}) {
  const a = world.client({ reconnectDelay: options.reconnectDelay ?? RECONNECT });
  const b = world.client({ reconnectDelay: options.reconnectDelay ?? RECONNECT });
  const ra = record(a);
  const rb = record(b);
  await ready(a);
  await ready(b);
  a.send({ type: 'call', to: idOf(b) });
  await until(() => ra.of('connected').length === 1 && rb.of('connected').length === 1);
  const callid = ra.of('connected')[0]!.detail.callid;
  return {
    a,
    b,
    ra,
    rb,
    callid,
    ta: ra.of('connected')[0]!.detail.transport,
    tb: rb.of('connected')[0]!.detail.transport,
  };
}

describe('workrooms client', () => {
  it('registers its sessionid and announces its profile after register', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const a = world.client({ profile: { github: { login: 'ada' } } });
    const ra = record(a);
    const b = world.client();
    await ready(a);
    await ready(b);
    expect(ra.of('registered')).toEqual([{ type: 'registered', detail: { sessionid: idOf(a), calls: [] } }]);
    expect(idOf(a)).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const rb = record(b);
    b.send({ type: 'search', search: 'ADA' });
    await until(() => rb.of('autocomplete').length === 1);
    expect(rb.of('autocomplete')[0]!.detail).toEqual({
      search: 'ADA',
      results: [{ sessionid: idOf(a), userprofiles: { github: { login: 'ada' } } }],
    });
  });

  it('emits a search answer the server cut short as it came, with truncated: true', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE, searchLimit: 1 } });
    const a = world.client({ profile: { github: { login: 'ada' } } });
    const b = world.client({ profile: { github: { login: 'adam' } } });
    const c = world.client();
    await Promise.all([ready(a), ready(b), ready(c)]);
    const rc = record(c);
    c.send({ type: 'search', search: 'ada' });
    await until(() => rc.of('autocomplete').length === 1);
    // Both match; the server's limit of one cut the answer short.
    const { detail } = rc.of('autocomplete')[0]!;
    expect(detail).toEqual({ search: 'ada', results: [expect.anything()], truncated: true });
    expect([idOf(a), idOf(b)]).toContain(detail.results[0]!.sessionid);
  });

  it('calls another client: outboundcall and inboundcall, then a data channel that carries data both ways', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, b, ra, rb, callid, ta, tb } = await connectedPair();
    expect(ra.of('outboundcall')[0]!.detail).toMatchObject({ callid, fromsessionid: idOf(a), tosessionid: idOf(b) });
    expect(rb.of('inboundcall')[0]!.detail).toMatchObject({ callid, fromsessionid: idOf(a), tosessionid: idOf(b) });
    expect(ra.of('connected')[0]!.detail.peerid).toBe(idOf(b));
    expect(rb.of('connected')[0]!.detail.peerid).toBe(idOf(a));
    const atB = nextMessage(tb);
    ta.send('hello b');
    expect(await atB).toBe('hello b');
    const atA = nextMessage(ta);
    tb.send(new Uint8Array([1, 2, 3]));
    expect(await atA).toEqual(new Uint8Array([1, 2, 3]));
    expect(world.server.stats().calls).toBe(1);
  });

  it('holds several calls at once, each on its own channel', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const [a, b, c] = [world.client(), world.client(), world.client()];
    const [ra, rb, rc] = [record(a), record(b), record(c)];
    await Promise.all([ready(a), ready(b), ready(c)]);
    a.send({ type: 'call', to: idOf(b) });
    c.send({ type: 'call', to: idOf(a) });
    await until(
      () => ra.of('connected').length === 2 && rb.of('connected').length === 1 && rc.of('connected').length === 1,
    );
    expect(callsOf(a)).toHaveLength(2);
    expect(world.rtc.open).toBe(4); // two ends per call
    const toB = ra.of('connected').find((e) => e.detail.peerid === idOf(b))!.detail.transport;
    const toC = ra.of('connected').find((e) => e.detail.peerid === idOf(c))!.detail.transport;
    const atB = nextMessage(rb.of('connected')[0]!.detail.transport);
    const atC = nextMessage(rc.of('connected')[0]!.detail.transport);
    toB.send('for b');
    toC.send('for c');
    expect([await atB, await atC]).toEqual(['for b', 'for c']);
  });

  it('hangs up from the caller: the call ends on both sides and on the server', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, b, ra, rb, callid } = await connectedPair();
    a.send({ type: 'end', callids: [callid] });
    await until(() => rb.of('hangup').length === 1);
    expect(ra.of('hangup')).toEqual([{ type: 'hangup', detail: { callid, sessionid: idOf(b), reason: 'local' } }]);
    // B hears of it from the server, or first from its closing channel: either way A ended it.
    expect(rb.of('hangup')).toEqual([{ type: 'hangup', detail: { callid, sessionid: idOf(a), reason: 'remote' } }]);
    await settle();
    // Nor does B's own hangup, crossing A's, earn it an error.
    expect([...ra.of('error'), ...rb.of('error')]).toEqual([]);
    expect(callsOf(a)).toEqual([]);
    expect(callsOf(b)).toEqual([]);
    expect(world.rtc.open).toBe(0);
    expect(world.server.stats().calls).toBe(0);
    expect(a.getSnapshot().children[`call:${callid}`]).toBeUndefined();
  });

  it('hangs up from the callee just the same', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, b, ra, rb, callid } = await connectedPair();
    b.send({ type: 'end', callids: [callid] });
    await until(() => ra.of('hangup').length === 1);
    expect(rb.of('hangup')[0]!.detail).toEqual({ callid, sessionid: idOf(a), reason: 'local' });
    await settle();
    expect(world.server.stats().calls).toBe(0);
    expect(world.rtc.open).toBe(0);
    // And they can call again.
    b.send({ type: 'call', to: idOf(a) });
    await until(() => ra.of('connected').length === 2);
  });

  it('gets its calls back when its signalling connection drops and it registers again', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, ra, rb, callid, ta, tb } = await connectedPair();
    world.drop(a);
    await settle();
    expect(ra.of('disconnected')).toEqual([{ type: 'disconnected', detail: { attempt: 1 } }]);
    expect(a.getSnapshot().matches({ active: 'reconnecting' })).toBe(true);
    expect(world.server.stats()).toMatchObject({ away: 1, calls: 1 });
    // The call's channel does not need the server.
    const during = nextMessage(tb);
    ta.send('still here');
    expect(await during).toBe('still here');
    world.clock.increment(RECONNECT);
    await until(() => ra.of('registered').length === 2);
    expect(ra.of('registered')[1]!.detail).toEqual({ sessionid: idOf(a), calls: [callid] });
    expect(world.server.stats()).toMatchObject({ connections: 2, sessions: 2, away: 0, calls: 1 });
    expect(callsOf(a)).toEqual([callid]);
    // The server knows the call again: a hangup after the reconnect reaches B.
    a.send({ type: 'end', callids: [callid] });
    await until(() => rb.of('hangup').length === 1);
    expect(rb.of('hangup')[0]!.detail).toMatchObject({ callid, sessionid: idOf(a) });
    await settle();
    expect(world.server.stats().calls).toBe(0);
  });

  it('loses the calls of a peer that does not come back within the grace period', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, b, ra, rb, callid } = await connectedPair({ reconnectDelay: GRACE * 2 });
    world.drop(a);
    await settle();
    world.clock.increment(GRACE);
    await until(() => rb.of('hangup').length === 1);
    expect(rb.of('hangup')[0]!.detail).toEqual({ callid, sessionid: idOf(a), reason: 'remote' });
    // B ended its WebRTC connection, so A's call is over too, though A is still offline.
    await until(() => ra.of('hangup').length === 1);
    expect(ra.of('hangup')[0]!.detail).toEqual({ callid, sessionid: idOf(b), reason: 'remote' });
    world.clock.increment(GRACE);
    await until(() => ra.of('registered').length === 2);
    expect(ra.of('registered')[1]!.detail.calls).toEqual([]);
    expect(world.server.stats()).toEqual({ connections: 2, sessions: 2, away: 0, calls: 0 });
  });

  it('hangs the call up for both sides when its WebRTC connection fails', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, ra, rb, callid } = await connectedPair();
    world.rtc.fail((label) => label === callid);
    await until(() => ra.of('hangup').length === 1 && rb.of('hangup').length === 1);
    expect(ra.of('hangup')[0]!.detail.reason).toBe('failed');
    await settle();
    expect(world.server.stats().calls).toBe(0);
    expect(a.getSnapshot().matches({ active: { online: 'ready' } })).toBe(true);
  });

  it('reports what the server refuses and carries on', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const a = world.client();
    const ra = record(a);
    await ready(a);
    a.send({ type: 'call', to: idOf(a) });
    a.send({ type: 'call', to: 'nobody-holds-this-session-id' });
    await until(() => ra.of('error').length === 2);
    expect(ra.of('error').map((e) => e.detail.code)).toEqual(['ERR_NOT_PERMITTED', 'ERR_PEER_GONE']);
    expect(a.getSnapshot().matches({ active: { online: 'ready' } })).toBe(true);
  });

  it('hangs up every call when it leaves, so the others need not wait for the grace period', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, ra, rb, callid } = await connectedPair();
    a.send({ type: 'leave' });
    await until(() => rb.of('hangup').length === 1);
    expect(rb.of('hangup')[0]!.detail).toMatchObject({ callid });
    expect(a.getSnapshot().status).toBe('done');
    expect(ra.of('stopped')).toEqual([{ type: 'stopped', detail: { error: undefined } }]);
    await settle();
    expect(world.server.stats()).toEqual({ connections: 1, sessions: 1, away: 0, calls: 0 });
  });

  it('registers again with calls to peers whose profiles are large: register names who is on a call, not their profiles', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const a = world.client({ reconnectDelay: RECONNECT });
    const ra = record(a);
    // Five 15 KB profiles: together more than the server's 64 KiB frame cap.
    const peers = Array.from({ length: 5 }, (_, i) =>
      world.client({ profile: { github: { login: `peer${i}`, bio: 'x'.repeat(15_000) } } }),
    );
    await ready(a);
    for (const peer of peers) await ready(peer);
    await settle();
    for (const peer of peers) a.send({ type: 'call', to: idOf(peer) });
    await until(() => ra.of('connected').length === peers.length);
    expect(ra.of('outboundcall').map((e) => (e.detail.userprofiles.github as { bio: string }).bio.length)).toEqual(
      peers.map(() => 15_000),
    );
    world.drop(a);
    await settle();
    world.clock.increment(RECONNECT);
    await until(() => ra.of('registered').length === 2);
    expect([...ra.of('registered')[1]!.detail.calls].sort()).toEqual(callsOf(a).sort());
    expect(callsOf(a)).toHaveLength(peers.length);
    expect(ra.of('error')).toEqual([]);
    expect(world.server.stats()).toMatchObject({ away: 0, calls: peers.length });
  });

  it('stops, rather than fight over it, when another connection registers its sessionid', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const { a, b, ra, callid } = await connectedPair();
    const usurper = rawClient(await world.network.connect('workrooms', { path: '/workrooms' }));
    expect(await usurper.register(idOf(a), [{ callid }])).toEqual([callid]);
    await until(() => a.getSnapshot().status === 'done');
    expect(a.getSnapshot().value).toBe('failed');
    expect(ra.of('disconnected')).toEqual([]);
    expect(ra.of('hangup')).toEqual([{ type: 'hangup', detail: { callid, sessionid: idOf(b), reason: 'failed' } }]);
    expect(ra.of('stopped')[0]!.detail.error?.code).toBe('ERR_CANCELLED');
    // It never comes back to take the session again.
    world.clock.increment(RECONNECT * 5);
    await settle();
    expect(usurper.transport.isOpen).toBe(true);
    expect(world.server.stats()).toMatchObject({ connections: 2, sessions: 2, away: 0 });
  });

  it('connects again when register is not answered, and gives up after reconnectAttempts in a row', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const a = world.client({ reconnectAttempts: 2, reconnectDelay: RECONNECT, registerTimeout: 3000 });
    const ra = record(a);
    await ready(a);
    // A server that is going away: it closes the connection it has, and every new one before it is served.
    await world.server.close();
    await until(() => ra.of('disconnected').length === 1);
    world.clock.increment(RECONNECT);
    await until(() => a.getSnapshot().matches({ active: { online: 'registering' } }));
    world.clock.increment(3000);
    await until(() => ra.of('disconnected').length === 2);
    world.clock.increment(RECONNECT);
    await until(() => a.getSnapshot().matches({ active: { online: 'registering' } }));
    world.clock.increment(3000);
    await until(() => a.getSnapshot().status === 'done');
    expect(ra.of('disconnected').map((e) => e.detail.attempt)).toEqual([1, 2]);
    expect(ra.of('registered')).toHaveLength(1);
    expect(ra.of('stopped')[0]!.detail.error?.code).toBe('ERR_TIMEOUT');
  });
});

describe('createWorkroomsClient', () => {
  const start = (profile?: Record<string, Record<string, unknown>>) => {
    const transports: Transport[] = [];
    const client = createWorkroomsClient({
      connect: async () => {
        const t = await world.network.connect('workrooms', { path: '/workrooms' });
        transports.push(t);
        return t;
      },
      rtc: world.rtc.rtc,
      clock: world.clock,
      reconnectDelay: RECONNECT,
      ...(profile && { profile }),
    });
    const seen: string[] = [];
    for (const type of [
      'registered',
      'outboundcall',
      'inboundcall',
      'connected',
      'hangup',
      'disconnected',
      'stopped',
    ]) {
      client.addEventListener(type, (e) => seen.push(`${type}${(e as CustomEvent).detail ? '' : ' without detail'}`));
    }
    return { client, transports, seen };
  };

  it('dispatches the machine’s events as CustomEvents, and answers search with the results', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const a = start();
    const b = start({ github: { login: 'bob' } });
    await until(() => a.seen.includes('registered') && b.seen.includes('registered'));
    expect(await a.client.search('BOB')).toEqual([
      { sessionid: b.client.sessionid, userprofiles: { github: { login: 'bob' } } },
    ]);
    a.client.call(b.client.sessionid);
    await until(() => a.seen.includes('connected') && b.seen.includes('connected'));
    expect(a.seen).toEqual(['registered', 'outboundcall', 'connected']);
    expect(b.seen).toEqual(['registered', 'inboundcall', 'connected']);
    expect(a.client.calls()).toHaveLength(1);
    a.client.hangup();
    await until(() => b.seen.includes('hangup'));
    expect(a.client.calls()).toEqual([]);
    await a.client.leave();
    expect(a.seen.at(-1)).toBe('stopped');
    expect(a.client.actor.getSnapshot().status).toBe('done');
    await b.client.leave();
  });

  it('answers a search while reconnecting with no results, and says why', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    const a = start();
    const errors: string[] = [];
    a.client.addEventListener('error', (e) => errors.push((e as CustomEvent<{ code: string }>).detail.code));
    await until(() => a.seen.includes('registered'));
    world.network.sever(a.transports[0]!);
    await until(() => a.seen.includes('disconnected'));
    expect(await a.client.search('anyone')).toEqual([]);
    expect(errors).toEqual(['ERR_TRANSPORT_CLOSED']);
    world.clock.increment(RECONNECT);
    await until(() => a.seen.filter((t) => t === 'registered').length === 2);
    await a.client.leave();
  });

  it('answers a search the connection drops under with no results', async () => {
    world = createWorkroomsWorld({ server: { grace: GRACE } });
    // A connection that loses what the client sends: the search never reaches the server.
    const transports: Transport[] = [];
    const client = createWorkroomsClient({
      connect: async () => {
        const t = await world.network.connect('workrooms', { path: '/workrooms' });
        transports.push(t);
        return {
          get isOpen() {
            return t.isOpen;
          },
          get bufferedAmount() {
            return t.bufferedAmount;
          },
          send: (frame) => {
            if (!String(frame).includes('"autocomplete"')) t.send(frame);
          },
          on: (type, handler) => t.on(type, handler),
          close: (code, reason) => t.close(code, reason),
        } satisfies Transport;
      },
      rtc: world.rtc.rtc,
      clock: world.clock,
      reconnectDelay: RECONNECT,
    });
    await waitFor(client.actor, (s) => s.matches({ active: { online: 'ready' } }));
    let results: unknown;
    void client.search('anyone').then((r) => (results = r));
    await settle();
    expect(results).toBeUndefined();
    world.network.sever(transports[0]!);
    await until(() => results !== undefined);
    expect(results).toEqual([]);
    await client.leave();
  });

  it('says what is wrong with a profile it cannot send', () => {
    expect(() =>
      createWorkroomsClient({
        connect: () => world.network.connect('workrooms', { path: '/workrooms' }),
        rtc: world.rtc.rtc,
        profile: { github: { id: 1n } } as never,
      }),
    ).toThrow(/the server would refuse this profile \(Do not know how to serialize a BigInt\)/);
  });

  it('says how to fix a missing connect', () => {
    expect(() => createWorkroomsClient({ rtc: {} } as never)).toThrow(/needs `connect`: a function/);
  });
});
