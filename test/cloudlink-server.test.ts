import { afterEach, describe, expect, it } from 'vitest';
import { memoryPair } from '../adapters/memory/index.js';
import { serverCodec } from '../machines/cloudlink/codec.js';
import { memoryDirectory, type LobbyDirectory } from '../machines/cloudlink/directory.js';
import { Opcode, type ServerMessage } from '../machines/cloudlink/protocol.js';
import { memoryRouter } from '../src/router.js';
import { cloudlinkSession, RELAYS_IN } from '../machines/cloudlink/server.machine.js';
import { refusingRouter } from './router-compliance.js';
import { cloudlinkTestbed, settle, type MemoryTestbed, type RawClient, type RawFrame } from './cloudlink-helpers.js';

const O = Opcode;
let bed: MemoryTestbed;

afterEach(async () => {
  await bed?.close();
});

/** Runs the whole seed handshake between a joined host and peer. */
async function handshake(host: RawClient & { id: string }, peer: RawClient & { id: string }) {
  host.send({ opcode: O.MAKE_OFFER, payload: 'sdp-host-offer', rx: peer.id });
  expect(await peer.next()).toEqual({ opcode: O.ANTICIPATE_OFFER, payload: 'sdp-host-offer', tx: host.id });
  peer.send({ opcode: O.ACCEPT_OFFER, payload: 'sdp-peer-offer', rx: host.id });
  expect(await host.next()).toEqual({ opcode: O.RETURN_OFFER, payload: 'sdp-peer-offer', tx: peer.id });
  host.send({ opcode: O.MAKE_ANSWER, payload: 'sdp-host-answer', rx: peer.id });
  expect(await peer.next()).toEqual({ opcode: O.ANTICIPATE_ANSWER, payload: 'sdp-host-answer', tx: host.id });
  peer.send({ opcode: O.MAKE_ANSWER, payload: 'sdp-peer-answer', rx: host.id });
  expect(await host.next()).toEqual({ opcode: O.ANTICIPATE_ANSWER, payload: 'sdp-peer-answer', tx: peer.id });
  host.send({ opcode: O.ACK_CHECK, rx: peer.id });
  expect(await peer.next()).toEqual({ opcode: O.ACK_CHECK, tx: host.id });
  peer.send({ opcode: O.ACK_READY, rx: host.id });
  expect(await host.next()).toEqual({ opcode: O.ACK_READY, tx: peer.id });
}

async function hostAndPeer(lobby = 'lobby-1', ugi = 'game') {
  const host = await bed.join('host', lobby, ugi);
  const peer = await bed.join('peer', lobby, ugi);
  expect(await peer.next()).toEqual({ opcode: O.NEW_HOST, payload: host.id });
  expect(await host.next()).toEqual({ opcode: O.NEW_PEER, payload: peer.id });
  return { host, peer };
}

describe('cloudlink server: the seed lifespans', () => {
  it('answers INIT with INIT_OK carrying a fresh UUID peer id', async () => {
    bed = cloudlinkTestbed();
    const a = await bed.connect();
    const b = await bed.connect();
    const idA = await a.init('ada');
    const idB = await b.init();
    expect(idA).toMatch(/^[0-9a-f-]{36}$/);
    expect(idB).not.toBe(idA);
  });

  it('introduces hosts and peers of one lobby to each other, whoever comes first', async () => {
    bed = cloudlinkTestbed();
    const peerFirst = await bed.join('peer', 'L');
    const host = await bed.join('host', 'L');
    expect(await host.next()).toEqual({ opcode: O.NEW_PEER, payload: peerFirst.id });
    expect(await peerFirst.next()).toEqual({ opcode: O.NEW_HOST, payload: host.id });
    const peerLater = await bed.join('peer', 'L');
    expect(await peerLater.next()).toEqual({ opcode: O.NEW_HOST, payload: host.id });
    expect(await host.next()).toEqual({ opcode: O.NEW_PEER, payload: peerLater.id });
  });

  it('acknowledges CONFIG_HOST with ACK_HOST and CONFIG_PEER with ACK_PEER, echoing the lobby', async () => {
    bed = cloudlinkTestbed();
    const c = await bed.connect();
    await c.init();
    c.send({ opcode: O.CONFIG_HOST, payload: 'room' });
    expect(await c.next()).toEqual({ opcode: O.ACK_HOST, payload: 'room' });
    const d = await bed.connect();
    await d.init();
    d.send({ opcode: O.CONFIG_PEER, payload: 'room' });
    expect(await d.next()).toEqual({ opcode: O.ACK_PEER, payload: 'room' });
  });

  it('relays the full handshake in the seed order, stamping tx', async () => {
    bed = cloudlinkTestbed();
    const { host, peer } = await hostAndPeer();
    await handshake(host, peer);
  });

  it('lets several peers complete the handshake with one host', async () => {
    bed = cloudlinkTestbed();
    const host = await bed.join('host', 'L');
    const peers = [];
    for (let i = 0; i < 3; i++) {
      const peer = await bed.join('peer', 'L');
      expect(await peer.next()).toEqual({ opcode: O.NEW_HOST, payload: host.id });
      expect(await host.next()).toEqual({ opcode: O.NEW_PEER, payload: peer.id });
      peers.push(peer);
    }
    for (const peer of peers) await handshake(host, peer);
  });

  it('keeps games under different UGIs apart even with the same lobby id', async () => {
    bed = cloudlinkTestbed();
    const host = await bed.join('host', 'same', 'game-a');
    const peer = await bed.join('peer', 'same', 'game-b');
    await settle();
    expect(host.inbox).toEqual([]);
    expect(peer.inbox).toEqual([]);
    host.send({ opcode: O.MAKE_OFFER, payload: 'x', rx: peer.id });
    expect(await host.next()).toMatchObject({
      opcode: O.VIOLATION,
      payload: expect.stringContaining('not a peer in your lobby'),
    });
  });

  it('announces a clean SHUTDOWN to lobby mates with SHUTDOWN_ACK and closes the socket', async () => {
    bed = cloudlinkTestbed();
    const { host, peer } = await hostAndPeer();
    peer.send({ opcode: O.SHUTDOWN });
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: peer.id });
    expect((await peer.closed).code).toBe(1000);
    expect(bed.server.stats()).toEqual({ connections: 1, lobbies: 1 });
  });

  it('tells every peer when the host leaves', async () => {
    bed = cloudlinkTestbed();
    const host = await bed.join('host', 'L');
    const p1 = await bed.join('peer', 'L');
    const p2 = await bed.join('peer', 'L');
    host.send({ opcode: O.SHUTDOWN });
    await settle();
    expect(p1.inbox).toContainEqual({ opcode: O.SHUTDOWN_ACK, tx: host.id });
    expect(p2.inbox).toContainEqual({ opcode: O.SHUTDOWN_ACK, tx: host.id });
  });

  it('drops a relay to a peer that has just left without punishing the sender', async () => {
    bed = cloudlinkTestbed();
    const { host, peer } = await hostAndPeer();
    peer.transport.close();
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: peer.id });
    host.send({ opcode: O.MAKE_OFFER, payload: 'late', rx: peer.id });
    host.send({ opcode: O.KEEPALIVE });
    await settle();
    expect(host.transport.isOpen).toBe(true);
    expect(host.inbox).toEqual([]);
  });

  it('answers SHUTDOWN_WRN about a peer that is gone with SHUTDOWN_ACK', async () => {
    bed = cloudlinkTestbed();
    const { host, peer } = await hostAndPeer();
    bed.network.sever(peer.transport);
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: peer.id });
    host.send({ opcode: O.SHUTDOWN_WRN, rx: peer.id });
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: peer.id });
  });

  it('probes a reported peer that is still connected with an early KEEPALIVE', async () => {
    bed = cloudlinkTestbed();
    const { host, peer } = await hostAndPeer();
    host.send({ opcode: O.SHUTDOWN_WRN, rx: peer.id });
    expect(await peer.next()).toEqual({ opcode: O.KEEPALIVE });
    expect(host.transport.isOpen).toBe(true);
  });
});

describe('cloudlink server: keepalive', () => {
  it('sends KEEPALIVE every interval after INIT_OK', async () => {
    bed = cloudlinkTestbed({ keepaliveInterval: 1000 });
    const c = await bed.connect();
    await c.init();
    bed.clock.increment(999);
    await settle();
    expect(c.inbox).toEqual([]);
    bed.clock.increment(1);
    expect(await c.next()).toEqual({ opcode: O.KEEPALIVE });
  });

  it('keeps a client that answers every KEEPALIVE', async () => {
    bed = cloudlinkTestbed({ keepaliveInterval: 1000 });
    const c = await bed.join('host', 'L');
    for (let i = 0; i < 5; i++) {
      bed.clock.increment(1000);
      expect(await c.next()).toEqual({ opcode: O.KEEPALIVE });
      c.send({ opcode: O.KEEPALIVE });
      await settle();
    }
    expect(c.transport.isOpen).toBe(true);
  });

  it('drops a client that misses two KEEPALIVEs and tells its lobby mates with SHUTDOWN_ACK', async () => {
    bed = cloudlinkTestbed({ keepaliveInterval: 1000 });
    const { host, peer } = await hostAndPeer();
    // The host answers, the peer stays silent.
    const toHost = [];
    for (let tick = 0; tick < 3; tick++) {
      bed.clock.increment(1000);
      await settle();
      expect(peer.transport.isOpen).toBe(tick < 2);
      toHost.push(...host.inbox.splice(0));
      host.send({ opcode: O.KEEPALIVE });
      await settle();
    }
    expect((await peer.closed).code).toBe(4000);
    expect(peer.inbox.filter((f) => f.opcode === O.KEEPALIVE)).toHaveLength(2);
    expect(toHost).toEqual([
      { opcode: O.KEEPALIVE },
      { opcode: O.KEEPALIVE },
      { opcode: O.KEEPALIVE },
      { opcode: O.SHUTDOWN_ACK, tx: peer.id },
    ]);
    expect(host.transport.isOpen).toBe(true);
    expect(bed.server.stats()).toEqual({ connections: 1, lobbies: 1 });
  });

  it('closes a connection that never sends INIT', async () => {
    bed = cloudlinkTestbed({ initTimeout: 500 });
    const c = await bed.connect();
    bed.clock.increment(500);
    expect(await c.next()).toEqual({ opcode: O.VIOLATION, payload: 'INIT was not sent in time' });
    expect((await c.closed).code).toBe(1008);
  });
});

describe('cloudlink server: nothing leaks', () => {
  const steps: Array<[string, RawFrame, 'host' | 'peer']> = [
    ['MAKE_OFFER', { opcode: O.MAKE_OFFER, payload: 'o' }, 'host'],
    ['ACCEPT_OFFER', { opcode: O.ACCEPT_OFFER, payload: 'p' }, 'peer'],
    ['MAKE_ANSWER (host)', { opcode: O.MAKE_ANSWER, payload: 'a' }, 'host'],
    ['MAKE_ANSWER (peer)', { opcode: O.MAKE_ANSWER, payload: 'b' }, 'peer'],
    ['ACK_CHECK', { opcode: O.ACK_CHECK }, 'host'],
    ['ACK_READY', { opcode: O.ACK_READY }, 'peer'],
  ];

  for (const vanishing of ['host', 'peer'] as const) {
    for (let done = 0; done <= steps.length; done++) {
      const after = done === 0 ? 'joining' : steps[done - 1]![0];
      it(`forgets a ${vanishing} that vanishes after ${after}`, async () => {
        bed = cloudlinkTestbed();
        const { host, peer } = await hostAndPeer();
        for (const [, frame, from] of steps.slice(0, done)) {
          const [sender, receiver] = from === 'host' ? [host, peer] : [peer, host];
          sender.send({ ...frame, rx: receiver.id });
          await receiver.next();
        }
        const [gone, stays] = vanishing === 'host' ? [host, peer] : [peer, host];
        bed.network.sever(gone.transport);
        expect(await stays.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: gone.id });
        await settle();
        expect(bed.server.stats()).toEqual({ connections: 1, lobbies: 1 });
        expect(bed.directory.pairs).toBe(0);
        expect([...bed.server.sessions.keys()]).toEqual([stays.id]);
        stays.transport.close();
        await settle();
        expect(bed.server.stats()).toEqual({ connections: 0, lobbies: 0 });
        expect(bed.server.sessions.size).toBe(0);
      });
    }
  }

  it('starts no session for a connection that closed before it was accepted', () => {
    bed = cloudlinkTestbed();
    const [serverEnd, clientEnd] = memoryPair();
    clientEnd.close();
    serverEnd.close();
    bed.server.accept(serverEnd, { path: '/ws/game', query: new URLSearchParams(), remoteAddress: 'x', headers: {} });
    expect(bed.server.sessions.size).toBe(0);
    expect(bed.server.stats()).toEqual({ connections: 0, lobbies: 0 });
  });

  it('forgets a thousand clients that come and go', async () => {
    bed = cloudlinkTestbed();
    for (let round = 0; round < 10; round++) {
      const clients = await Promise.all(
        Array.from({ length: 100 }, (_, i) => bed.join(i % 2 ? 'host' : 'peer', `L${i % 10}`)),
      );
      for (const c of clients) c.transport.close();
      await settle();
    }
    expect(bed.server.stats()).toEqual({ connections: 0, lobbies: 0 });
    expect(bed.directory.pairs).toBe(0);
    expect(bed.server.sessions.size).toBe(0);
  });
});

describe('cloudlink server: relays without a transition', () => {
  it('relays a whole handshake untouched without a transition of either session, and leaves refusals to the machine', async () => {
    bed = cloudlinkTestbed();
    const { host, peer } = await hostAndPeer();
    let updates = 0;
    for (const id of [host.id, peer.id]) bed.server.sessions.get(id)!.subscribe(() => updates++);
    await handshake(host, peer);
    const payload = { type: 'answer', sdp: 'v=0\r\n', extra: [1, { deep: null }] };
    host.send({ opcode: O.MAKE_ANSWER, payload, rx: peer.id });
    expect(await peer.next()).toEqual({ opcode: O.ANTICIPATE_ANSWER, payload, tx: host.id });
    expect(updates).toBe(0);
    // The stages the shortcut set are the machine's: a second ACK_READY is out of order.
    peer.send({ opcode: O.ACK_READY, rx: host.id });
    expect(await peer.next()).toEqual({
      opcode: O.VIOLATION,
      payload: `ACK_READY: ${host.id} did not send you ACK_CHECK`,
    });
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: peer.id });
    const stranger = await bed.join('peer', 'elsewhere');
    host.send({ opcode: O.MAKE_ANSWER, payload: 'a', rx: stranger.id });
    expect(await host.next()).toEqual({
      opcode: O.VIOLATION,
      payload: `MAKE_ANSWER: ${stranger.id} is not a peer in your lobby`,
    });
  });

  it('refuses an out-of-order relay through the machine', async () => {
    bed = cloudlinkTestbed();
    const { host, peer } = await hostAndPeer();
    peer.send({ opcode: O.ACCEPT_OFFER, payload: 'o', rx: host.id });
    expect(await peer.next()).toEqual({
      opcode: O.VIOLATION,
      payload: `ACCEPT_OFFER: ${host.id} has not made you an offer`,
    });
  });

  it('sends every relay through the machine when an inspector is attached', async () => {
    const seen: string[] = [];
    bed = cloudlinkTestbed({
      inspect: (event) => {
        if (event.type === '@xstate.event') seen.push(event.event.type);
      },
    });
    const { host, peer } = await hostAndPeer();
    let updates = 0;
    bed.server.sessions.get(host.id)!.subscribe(() => updates++);
    await handshake(host, peer);
    expect(updates).toBe(3); // MAKE_OFFER, MAKE_ANSWER, ACK_CHECK
    expect(seen.filter((type) => type === 'MAKE_ANSWER')).toHaveLength(2);
  });

  it('takes in each state the relays the machine takes there with its relay action', () => {
    const states = cloudlinkSession.root.states.open!.states.protocol!.states;
    for (const state of ['hosting', 'joined'] as const) {
      const on = states[state]!.config.on as Record<string, { actions?: unknown }>;
      const relays = Object.keys(on).filter((type) => on[type]!.actions === 'relay');
      expect(new Set(relays)).toEqual(RELAYS_IN[state]);
    }
  });
});

describe.each([
  ['without a transition', false],
  ['through the machine (an inspector attached)', true],
])('cloudlink server: a relay the router cannot deliver, %s', (_name, inspected) => {
  /**
   * A server whose router refuses delivery to the sessions in `unreachable`
   * (as the Redis router does for another process's sessions while Redis is
   * down), on a directory that reports such a mate severed (as the Redis
   * directory does) when `severs` is true.
   */
  const setup = (severs: boolean) => {
    const unreachable = new Set<string>();
    const severed: [string, string][] = [];
    const router = refusingRouter(memoryRouter<ServerMessage>(serverCodec()), (id) => unreachable.has(id));
    // Object.assign keeps the memory directory's getters (`lobbies`, `pairs`) live.
    const directory: LobbyDirectory = Object.assign(
      memoryDirectory(),
      severs ? { sever: (id: string, mate: string) => severed.push([id, mate]) > 0 } : {},
    );
    bed = cloudlinkTestbed({ router, directory, ...(inspected && { inspect: () => {} }) });
    return { unreachable, severed };
  };

  it('answers the sender with SHUTDOWN_ACK for the unreachable mate, not VIOLATION, and keeps it connected', async () => {
    const { unreachable, severed } = setup(true);
    const { host, peer } = await hostAndPeer();
    unreachable.add(peer.id);
    host.send({ opcode: O.MAKE_OFFER, payload: 'sdp', rx: peer.id });
    expect(await host.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: peer.id });
    expect(severed).toEqual([[host.id, peer.id]]);
    // Still connected and hosting: a relay to a reachable peer goes through.
    unreachable.clear();
    host.send({ opcode: O.MAKE_OFFER, payload: 'again', rx: peer.id });
    expect(await peer.next()).toEqual({ opcode: O.ANTICIPATE_OFFER, payload: 'again', tx: host.id });
    // The peer's relays likewise.
    unreachable.add(host.id);
    peer.send({ opcode: O.ACCEPT_OFFER, payload: 'o', rx: host.id });
    expect(await peer.next()).toEqual({ opcode: O.SHUTDOWN_ACK, tx: host.id });
    await settle();
    expect([...host.inbox, ...peer.inbox]).toEqual([]);
  });

  it('a directory that does not sever (the mate is on this process, its leave tells): nothing is sent', async () => {
    const { unreachable } = setup(false);
    const { host, peer } = await hostAndPeer();
    unreachable.add(peer.id);
    host.send({ opcode: O.MAKE_OFFER, payload: 'sdp', rx: peer.id });
    await settle();
    expect(host.inbox).toEqual([]);
  });
});
