import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { createSwarmPeer, type SwarmPeer } from '../machines/swarm/client.js';
import type { PeerEmitted } from '../machines/swarm/peer.machine.js';
import { memoryStore, type MemoryStore, type ResourceStore } from '../machines/swarm/store.js';
import { WERIFT_LOOPBACK } from './rtc-helpers.js';
import { bytes, until } from './swarm-helpers.js';

let server: SignalboxServer;
const peers: SwarmPeer[] = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  for (const peer of peers) peer.actor.stop();
  await server.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 200));
});

type Peer = SwarmPeer & { events: PeerEmitted[]; store: MemoryStore | ResourceStore };

function peer(name: string, store: ResourceStore = memoryStore(), stallTimeout = 3000): Peer {
  const events: PeerEmitted[] = [];
  const p = createSwarmPeer({
    clientId: name,
    signalling: () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/swarm`),
    rtc: { RTCPeerConnection, config: WERIFT_LOOPBACK },
    store,
    stallTimeout,
  });
  p.actor.on('*', (e) => events.push(e as PeerEmitted));
  peers.push(p);
  return Object.assign(p, { events });
}

/** Links `a` and `b` through the server (a asks first); resolves once both got the other's i_am. */
async function link(a: SwarmPeer, b: SwarmPeer): Promise<{ ab: string; ba: string }> {
  const linked = (p: SwarmPeer, other: SwarmPeer) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${p.clientId} did not link to ${other.clientId}`)), 10_000);
      const sub = p.actor.on('linked', ({ detail }) => {
        if (detail.peer !== other.clientId) return;
        clearTimeout(timer);
        sub.unsubscribe();
        resolve(detail.link);
      });
    });
  const ab = linked(a, b);
  const ba = linked(b, a);
  const before = server.swarm.stats().pending;
  a.connect();
  await until(() => server.swarm.stats().pending > before, 5000);
  b.connect();
  return { ab: await ab, ba: await ba };
}

const held = (p: Peer, hash: string) => (p.store as MemoryStore).get(hash);

describe('swarm end to end: real server, ws, werift data channels', () => {
  it('four peers, one resource on one of them: every other peer ends up with verified bytes, one through a tier-2 reserve', async () => {
    const data = bytes(300_000, 21);
    const originStore = memoryStore();
    const hash = originStore.add(data);
    const origin = peer('origin', originStore);
    const middle = peer('middle');
    const direct = peer('direct');
    const edge = peer('edge');
    await link(middle, origin);
    await link(direct, origin);
    await link(edge, middle);
    expect(edge.links().map((l) => l.peer)).toEqual(['middle']);
    expect(server.swarm.stats()).toEqual({ connections: 4, pending: 0, matches: 0 });

    // The edge does not need it urgently: the middle fetches it from the origin (the edge's tier 2) and passes it on.
    const viaReserve = edge.fetch(hash, { urgent: false });
    const fromOrigin = direct.fetch(hash);
    // The edge's only link is the middle's, and the middle held nothing: it answered once it had fetched.
    expect(await viaReserve).toEqual({ hash, size: data.byteLength, from: edge.links()[0]!.link, misses: [] });
    expect((await fromOrigin).size).toBe(data.byteLength);
    expect(middle.events).toContainEqual({
      type: 'resource',
      detail: { hash, size: data.byteLength, from: middle.links().find((l) => l.peer === 'origin')!.link },
    });
    for (const p of [middle, direct, edge]) {
      const got = held(p, hash)!;
      expect(sha256Hex(got)).toBe(hash);
      expect(Buffer.compare(got, data)).toBe(0);
    }
    expect(server.health().connections.swarm).toBe(4);
    // Leaving takes everything along: links on the other side, sessions on the server.
    for (const p of [origin, middle, direct, edge]) p.leave();
    await until(() => server.health().connections.swarm === 0, 5000);
    expect(server.swarm.stats()).toEqual({ connections: 0, pending: 0, matches: 0 });
  });

  it('a peer killed mid-transfer: the fetch completes from another peer', async () => {
    const data = bytes(2 * 1024 * 1024, 33);
    const hash = sha256Hex(data);
    // The first holder serves its first block, then waits: it is surely mid-transfer when it is killed.
    let reads = 0;
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    const slow: ResourceStore = {
      ...memoryStore(),
      stat: (h) => (h === hash ? data.byteLength : undefined),
      read: async (_h, offset, length) => {
        if (reads++ > 0) await stalled;
        return data.slice(offset, offset + length);
      },
      list: () => [hash],
    };
    const backupStore = memoryStore();
    backupStore.add(data);
    // A stall timeout longer than the test: only the closed link can make the fetcher move on in time.
    const fetcher = peer('fetcher', memoryStore(), 60_000);
    const doomed = peer('doomed', slow);
    const backup = peer('backup', backupStore);
    const { ab: toDoomed } = await link(fetcher, doomed);
    const { ab: toBackup } = await link(fetcher, backup);
    const fetched = fetcher.fetch(hash);
    type AliceView = { context: { received: number; index: number; candidates: Array<{ link: string }> } };
    const alice = () => fetcher.actor.getSnapshot().children.alice?.getSnapshot() as AliceView | undefined;
    const received = () => alice()?.context.received ?? 0;
    // Bytes from the doomed peer are arriving, and it holds back the rest.
    await until(() => reads >= 2 && received() > 0, 10_000);
    expect(received()).toBeLessThan(data.byteLength);
    expect(alice()!.context.candidates[alice()!.context.index]!.link).toBe(toDoomed);
    expect((fetcher.actor.getSnapshot().children.alice?.getSnapshot() as { value: unknown }).value).toEqual({
      receiving: 'flowing',
    });
    doomed.actor.stop();
    const result = await fetched;
    release();
    expect(result).toEqual({
      hash,
      size: data.byteLength,
      from: toBackup,
      misses: [{ link: toDoomed, reason: 'peer-gone', message: 'the link closed mid-transfer' }],
    });
    expect(fetcher.events).toContainEqual(
      expect.objectContaining({ type: 'unlinked', detail: expect.objectContaining({ link: toDoomed }) }),
    );
    const got = held(fetcher, hash)!;
    expect(sha256Hex(got)).toBe(hash);
    expect(Buffer.compare(got, data)).toBe(0);
  });
});
