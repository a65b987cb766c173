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
  type JsonMessage,
  type ServeProcess,
} from './processes.js';

type Files = { path: string; size: number }[];

/** A registry client: its id, and the peer list as its announcements (Batch frames unpacked) build it. */
async function connect(port: number, files: Files) {
  const client = await jsonClient(port, '/registry');
  client.send({ type: 'Connect', detail: { files } });
  const welcome = (await client.next('Welcome')).detail as { id: string; peers: number };
  const peers = new Map<string, Files>();
  const announcements: JsonMessage[] = [];
  /** Takes every announcement queued so far into `peers`. */
  const read = () => {
    for (let i = 0; i < client.queue.length;) {
      const m = client.queue[i]!;
      const events = m.type === 'Batch' ? (m.detail!.events as JsonMessage[]) : [m];
      if (!events.every((e) => ['RegisterPeer', 'UpdatePeer', 'UnregisterPeer'].includes(e.type))) {
        i++;
        continue;
      }
      client.queue.splice(i, 1);
      for (const e of events) {
        announcements.push(e);
        const peer = e.detail!.peer as string;
        if (e.type === 'UnregisterPeer') peers.delete(peer);
        else peers.set(peer, e.detail!.files as Files);
      }
    }
  };
  /** Waits until `done` holds for the list. */
  const until = async (done: (peers: Map<string, Files>) => boolean, timeout = 10_000) => {
    const deadline = Date.now() + timeout;
    for (;;) {
      read();
      if (done(peers)) return;
      if (Date.now() > deadline) throw new Error(`peer list never matched: ${JSON.stringify([...peers])}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  return Object.assign(client, { id: welcome.id, welcomed: welcome.peers, peers, announcements, read, until });
}
type Peer = Awaited<ReturnType<typeof connect>>;

describe('registry across processes on Redis', () => {
  let redis: TestRedis, a: ServeProcess, b: ServeProcess, stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ redis, a, b, stop } = await twoProcesses(TTL)));
  afterAll(() => stop?.());

  it("peers on A and B see each other's lists and every change, each once", async () => {
    const one = await connect(a.port, [{ path: 'one.txt', size: 1 }]);
    const two = await connect(b.port, [{ path: 'two.txt', size: 2 }]);
    await one.until((p) => p.has(two.id));
    expect(one.peers.get(two.id)).toEqual([{ path: 'two.txt', size: 2 }]);
    // `two` was welcomed with `one` in its list, or was told of it later: either way, once.
    await two.until((p) => p.has(one.id));
    expect(two.peers.get(one.id)).toEqual([{ path: 'one.txt', size: 1 }]);

    two.send({ type: 'UpdateFiles', detail: { files: [{ path: 'new.txt', size: 3 }] } });
    await one.until((p) => p.get(two.id)?.[0]?.path === 'new.txt');
    const three = await connect(b.port, []);
    await one.until((p) => p.has(three.id));
    expect(three.peers.get(one.id) ?? (await three.until((p) => p.has(one.id)), three.peers.get(one.id))).toEqual([
      { path: 'one.txt', size: 1 },
    ]);

    two.send({ type: 'Disconnect' });
    await one.until((p) => !p.has(two.id));
    await three.until((p) => !p.has(two.id));
    const registered = (c: Peer, id: string) =>
      c.announcements.filter((e) => e.type === 'RegisterPeer' && e.detail!.peer === id).length;
    expect(registered(one, two.id)).toBe(1);
    expect(registered(one, three.id)).toBe(1);
    expect(registered(one, one.id)).toBe(0);
    for (const c of [one, three]) c.close();
  });

  it('a relay from a newcomer on A reaches a peer on B after its RegisterPeer', async () => {
    const holder = await connect(b.port, [{ path: 'f.bin', size: 9 }]);
    const requester = await connect(a.port, []);
    await requester.until((p) => p.has(holder.id));
    requester.send({
      type: 'Offer',
      detail: { peer: holder.id, connection: 'c1', sdp: { type: 'offer', sdp: 'o' } },
    });
    const offer = await holder.next('Offer');
    expect(offer.detail).toEqual({ peer: requester.id, connection: 'c1', sdp: { type: 'offer', sdp: 'o' } });
    // What arrived before the Offer is queued already (frames are handled one task each).
    holder.read();
    const told = holder.announcements.findIndex((e) => e.type === 'RegisterPeer' && e.detail!.peer === requester.id);
    expect(told).toBeGreaterThanOrEqual(0);
    holder.send({ type: 'Answer', detail: { peer: requester.id, connection: 'c1', sdp: 'v=0' } });
    expect((await requester.next('Answer')).detail).toEqual({ peer: holder.id, connection: 'c1', sdp: 'v=0' });
    for (const c of [holder, requester]) c.close();
  });

  it(`a process killed with SIGKILL: its peers are unregistered on the others within ${BOUND} ms`, async () => {
    const c = await startServe(redis.url, TTL);
    const doomed = await connect(c.port, [{ path: 'd', size: 1 }]);
    const watcher = await connect(a.port, []);
    await watcher.until((p) => p.has(doomed.id));
    const killed = Date.now();
    await c.kill();
    await watcher.until((p) => !p.has(doomed.id), BOUND + 2000);
    expect(Date.now() - killed).toBeLessThan(BOUND + TTL / 3 + 1000);
    const late = await connect(b.port, []);
    await late.until((p) => p.has(watcher.id));
    expect(late.peers.has(doomed.id)).toBe(false);
    for (const cl of [watcher, late]) cl.close();
  });

  it('a process stopped with SIGTERM: its peers are unregistered on the others at once', async () => {
    const c = await startServe(redis.url, TTL);
    const leaving = await connect(c.port, []);
    const watcher = await connect(a.port, []);
    await watcher.until((p) => p.has(leaving.id));
    const stopped = Date.now();
    await c.stop();
    await watcher.until((p) => !p.has(leaving.id), TTL);
    expect(Date.now() - stopped).toBeLessThan(TTL);
    watcher.close();
  });
  it('Redis lost: peers of one process see each other, relays to the other are refused; all recovers', async () => {
    const one = await connect(a.port, [{ path: 'one', size: 1 }]);
    const two = await connect(b.port, [{ path: 'two', size: 2 }]);
    await one.until((p) => p.has(two.id));
    await loseRedis(redis, [a, b]);

    // Across processes: a relay is refused with a typed error.
    one.send({ type: 'Offer', detail: { peer: two.id, connection: 'lost', sdp: { type: 'offer', sdp: 'o' } } });
    expect((await one.next('Error')).detail).toMatchObject({ code: 'ERR_PEER_GONE', event: 'Offer' });
    // On one process: a newcomer is announced, and relays go on.
    const three = await connect(a.port, [{ path: 'three', size: 3 }]);
    await one.until((p) => p.has(three.id));
    three.send({ type: 'Offer', detail: { peer: one.id, connection: 'here', sdp: { type: 'offer', sdp: 'o' } } });
    expect((await one.next('Offer')).detail).toMatchObject({ peer: three.id, connection: 'here' });

    await restoreRedis(redis, [a, b]);
    // The newcomer of the outage is announced to the other process, and relays cross again.
    await two.until((p) => p.has(three.id) && p.has(one.id));
    for (let attempt = 0; ; attempt++) {
      one.send({ type: 'Offer', detail: { peer: two.id, connection: 'back', sdp: { type: 'offer', sdp: 'o' } } });
      const refused = await one.next('Error', 300).catch(() => undefined);
      if (refused === undefined) break;
      if (attempt > 40) throw new Error(`relay still refused: ${JSON.stringify(refused)}`);
    }
    expect((await two.next('Offer')).detail).toMatchObject({ peer: one.id, connection: 'back' });
    // One TTL after the return, the sweep unregisters nobody who is still there.
    await new Promise((resolve) => setTimeout(resolve, TTL + 500));
    for (const c of [one, two, three]) c.read();
    expect([...one.peers.keys()].sort()).toEqual([three.id, two.id].sort());
    expect([...two.peers.keys()].sort()).toEqual([one.id, three.id].sort());
    for (const c of [one, two, three]) c.close();
  });
});
