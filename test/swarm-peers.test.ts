import { afterEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../machines/transfer/files.js';
import { memoryStore, type ResourceStore } from '../machines/swarm/store.js';
import { SwarmError } from '../machines/swarm/errors.js';
import { bytes, peerWorld, settle, type PeerWorld } from './swarm-helpers.js';

let world: PeerWorld;
afterEach(async () => {
  await world?.close();
});

const seeded = (data: Uint8Array) => {
  const store = memoryStore();
  return { store, hash: store.add(data) };
};

describe('swarm peers in memory (server, memory network, memory WebRTC)', () => {
  it('links two peers through the server: each learns the other’s client_id over the data channel', async () => {
    world = peerWorld();
    const a = world.peer();
    const b = world.peer();
    const { ab, ba } = await world.link(a, b);
    expect(a.links()).toEqual([{ link: ab, peer: b.clientId }]);
    expect(b.links()).toEqual([{ link: ba, peer: a.clientId }]);
    expect(a.events.find((e) => e.type === 'matched')?.detail).toEqual({ context_id: ab, role: 'alice' });
    expect(b.events.find((e) => e.type === 'matched')?.detail).toEqual({ context_id: ba, role: 'bob' });
    expect(world.server.stats()).toEqual({ connections: 2, pending: 0, matches: 0 });
  });

  it('fetches a resource from a peer that has it: the bytes are verified and stored', async () => {
    world = peerWorld();
    const data = bytes(100_000, 7);
    const { store, hash } = seeded(data);
    const a = world.peer({ store });
    const b = world.peer();
    await world.link(a, b);
    const result = await b.fetch(hash);
    expect(result).toMatchObject({ hash, size: data.byteLength });
    const got = (b.store as ReturnType<typeof memoryStore>).get(hash)!;
    expect(sha256Hex(got)).toBe(hash);
    expect(Buffer.compare(got, data)).toBe(0);
  });

  it('asks the next peer when one answers resource_not_found', async () => {
    world = peerWorld();
    const data = bytes(5000, 3);
    const { store, hash } = seeded(data);
    const fetcher = world.peer();
    const empty = world.peer();
    const holder = world.peer({ store });
    const { ab: toEmpty } = await world.link(fetcher, empty);
    const { ab: toHolder } = await world.link(fetcher, holder);
    expect(await fetcher.fetch(hash)).toEqual({
      hash,
      size: data.byteLength,
      from: toHolder,
      misses: [{ link: toEmpty, reason: 'not-found', message: 'resource_not_found' }],
    });
    expect(toEmpty).not.toBe(toHolder);
  });

  it('fails with not-found when no peer has it, and with invalid-hash for a name that is not a SHA-256', async () => {
    world = peerWorld();
    const a = world.peer();
    const b = world.peer();
    await world.link(a, b);
    const missing = sha256Hex(new Uint8Array([1, 2, 3]));
    await expect(a.fetch(missing)).rejects.toMatchObject({ reason: 'not-found', code: 'ERR_PEER_GONE' });
    await expect(a.fetch('not-a-hash')).rejects.toMatchObject({ reason: 'invalid-hash', code: 'ERR_INVALID_FIELD' });
    await expect(a.fetch('A'.repeat(64))).rejects.toBeInstanceOf(SwarmError);
  });

  it('reserve_resource: a peer fetches from its own peers (tier 2) and passes the resource on', async () => {
    world = peerWorld();
    const data = bytes(40_000, 11);
    const { store, hash } = seeded(data);
    const origin = world.peer({ store });
    const middle = world.peer();
    const edge = world.peer();
    await world.link(middle, origin);
    await world.link(edge, middle);
    // The edge is not linked to the origin: only the middle can get it.
    expect(edge.links().map((l) => l.peer)).toEqual([middle.clientId]);
    const result = await edge.fetch(hash, { urgent: false });
    expect(result.size).toBe(data.byteLength);
    expect(middle.events.some((e) => e.type === 'resource' && e.detail.hash === hash)).toBe(true);
    for (const peer of [middle, edge]) {
      expect(Buffer.compare((peer.store as ReturnType<typeof memoryStore>).get(hash)!, data)).toBe(0);
    }
  });

  it('an urgent query does not go to tier 2: the middle says not found', async () => {
    world = peerWorld();
    const { store, hash } = seeded(bytes(1000));
    const origin = world.peer({ store });
    const middle = world.peer();
    const edge = world.peer();
    await world.link(middle, origin);
    await world.link(edge, middle);
    await expect(edge.fetch(hash)).rejects.toMatchObject({ reason: 'not-found' });
    expect(middle.store.stat(hash)).toBeUndefined();
  });

  it('answers requesting_peer_list with the client_ids of its other links', async () => {
    world = peerWorld();
    const hub = world.peer();
    const x = world.peer();
    const y = world.peer();
    await world.link(hub, x);
    const { ba: yToHub } = await world.link(hub, y);
    const list = new Promise((resolve) => y.actor.on('peer-list', ({ detail }) => resolve(detail)));
    y.requestPeerList(yToHub);
    expect(await list).toEqual({ link: yToHub, peer: hub.clientId, peers: [x.clientId] });
  });

  it('does not store or serve a resource whose bytes do not match its hash; the liar’s link is closed', async () => {
    world = peerWorld();
    const data = bytes(30_000, 5);
    const hash = sha256Hex(data);
    // A store that claims the resource and serves other bytes of the same size.
    const liar: ResourceStore = {
      ...memoryStore(),
      stat: (h) => (h === hash ? data.byteLength : undefined),
      read: async (_h, offset, length) => bytes(data.byteLength, 99).slice(offset, offset + length),
      list: () => [hash],
    };
    const honest = seeded(data);
    const fetcher = world.peer();
    const bad = world.peer({ store: liar });
    const good = world.peer({ store: honest.store });
    const { ab: toBad } = await world.link(fetcher, bad);
    const { ab: toGood } = await world.link(fetcher, good);
    expect(await fetcher.fetch(hash)).toMatchObject({ from: toGood });
    expect(fetcher.events).toContainEqual({
      type: 'unlinked',
      detail: { link: toBad, peer: bad.clientId, reason: 'closed' },
    });
    expect(Buffer.compare((fetcher.store as ReturnType<typeof memoryStore>).get(hash)!, data)).toBe(0);
  });

  it('fails over to another peer when the one transferring disconnects mid-transfer', async () => {
    world = peerWorld();
    const data = bytes(600_000, 9);
    const hash = sha256Hex(data);
    // The first holder stalls after its first block, so the transfer is surely under way when it dies.
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    let reads = 0;
    const slow: ResourceStore = {
      ...memoryStore(),
      stat: (h) => (h === hash ? data.byteLength : undefined),
      read: async (_h, offset, length) => {
        if (reads++ > 0) await stalled;
        return data.slice(offset, offset + length);
      },
      list: () => [hash],
    };
    const fetcher = world.peer();
    const dying = world.peer({ store: slow });
    const backup = world.peer({ store: seeded(data).store });
    const { ab: toDying } = await world.link(fetcher, dying);
    const { ab: toBackup } = await world.link(fetcher, backup);
    const fetched = fetcher.fetch(hash);
    for (let i = 0; i < 50 && reads < 2; i++) await settle();
    expect(reads).toBe(2);
    dying.actor.stop();
    const result = await fetched;
    release();
    // The dying peer was dropped because its link closed mid-transfer (the SimulatedClock never ran the stall timer).
    expect(result).toEqual({
      hash,
      size: data.byteLength,
      from: toBackup,
      misses: [{ link: toDying, reason: 'peer-gone', message: 'the link closed mid-transfer' }],
    });
    expect(fetcher.events).toContainEqual(
      expect.objectContaining({ type: 'unlinked', detail: expect.objectContaining({ link: toDying }) }),
    );
    expect(Buffer.compare((fetcher.store as ReturnType<typeof memoryStore>).get(hash)!, data)).toBe(0);
  });

  it('cleans up: a peer that leaves takes its links, and the server keeps nothing of it', async () => {
    world = peerWorld();
    const a = world.peer();
    const b = world.peer();
    await world.link(a, b);
    a.connect(2);
    await settle();
    expect(world.server.stats().pending).toBe(2);
    a.leave();
    await settle();
    expect(a.actor.getSnapshot().status).toBe('done');
    expect(a.events.at(-1)).toEqual({ type: 'stopped', detail: { error: undefined } });
    expect(b.links()).toEqual([]);
    expect(world.server.stats()).toEqual({ connections: 1, pending: 0, matches: 0 });
  });
});
