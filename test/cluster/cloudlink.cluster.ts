import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { freePort, type TestRedis } from '../redis-server.js';
import {
  BOUND,
  join,
  loseRedis,
  Op,
  restoreRedis,
  runServe,
  startServe,
  TTL,
  twoProcesses,
  type ServeProcess,
} from './processes.js';

describe('CloudLink across processes on Redis', () => {
  let redis: TestRedis, a: ServeProcess, b: ServeProcess, stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ redis, a, b, stop } = await twoProcesses(TTL)));
  afterAll(() => stop?.());

  it('/health reports Redis up and the process id', async () => {
    const [ha, hb] = await Promise.all([a.health(), b.health()]);
    expect(ha.redis?.state).toBe('up');
    expect(hb.redis?.state).toBe('up');
    expect(ha.redis?.process).not.toBe(hb.redis?.process);
  });

  it('a host on A and a peer on B meet, relay with tx through the whole handshake, and SHUTDOWN_ACK crosses', async () => {
    const host = await join(a.port, 'game', 'lobby-1', 'host');
    const peer = await join(b.port, 'game', 'lobby-1', 'peer');
    expect((await peer.next(Op.NEW_HOST)).payload).toBe(host.id);
    expect((await host.next(Op.NEW_PEER)).payload).toBe(peer.id);

    host.send({ opcode: Op.MAKE_OFFER, payload: { type: 'offer', sdp: 'o' }, rx: peer.id });
    expect(await peer.next(Op.ANTICIPATE_OFFER)).toMatchObject({ payload: { type: 'offer', sdp: 'o' }, tx: host.id });
    peer.send({ opcode: Op.ACCEPT_OFFER, payload: 'accepted', rx: host.id });
    expect(await host.next(Op.RETURN_OFFER)).toMatchObject({ payload: 'accepted', tx: peer.id });
    peer.send({ opcode: Op.MAKE_ANSWER, payload: { type: 'answer', sdp: 'a' }, rx: host.id });
    expect(await host.next(Op.ANTICIPATE_ANSWER)).toMatchObject({ payload: { sdp: 'a' }, tx: peer.id });
    host.send({ opcode: Op.ACK_CHECK, rx: peer.id });
    expect(await peer.next(Op.ACK_CHECK)).toMatchObject({ tx: host.id });
    peer.send({ opcode: Op.ACK_READY, rx: host.id });
    expect(await host.next(Op.ACK_READY)).toMatchObject({ tx: peer.id });

    host.send({ opcode: Op.SHUTDOWN });
    expect(await peer.next(Op.SHUTDOWN_ACK)).toMatchObject({ tx: host.id });
    const counted = async (p: ServeProcess, direction: string) => {
      const text = await (await fetch(`http://127.0.0.1:${p.port}/metrics`)).text();
      const match = new RegExp(`signalbox_cross_process_messages_total\\{direction="${direction}"\\} (\\d+)`).exec(
        text,
      );
      return Number(match?.[1] ?? -1);
    };
    // Relays cross (the offer and ACK_CHECK one way, three the other); introductions and
    // SHUTDOWN_ACK are sent by each process to its own clients.
    expect(await counted(a, 'out')).toBeGreaterThanOrEqual(2);
    expect(await counted(b, 'in')).toBeGreaterThanOrEqual(2);
    expect(await counted(b, 'out')).toBeGreaterThanOrEqual(3);
    expect(await counted(a, 'in')).toBeGreaterThanOrEqual(3);
    peer.close();
    expect(peer.queue.filter((f) => f.opcode === Op.VIOLATION)).toEqual([]);
  });

  it('the handshake order is enforced across processes: ACCEPT_OFFER before any offer is a VIOLATION', async () => {
    const host = await join(a.port, 'game', 'lobby-order', 'host');
    const peer = await join(b.port, 'game', 'lobby-order', 'peer');
    await peer.next(Op.NEW_HOST);
    peer.send({ opcode: Op.ACCEPT_OFFER, payload: 'x', rx: host.id });
    expect((await peer.next(Op.VIOLATION)).payload).toMatch(/ACCEPT_OFFER/);
    host.close();
  });

  it('UGI isolation holds across processes: the same lobby name in another game meets nobody', async () => {
    const host = await join(a.port, 'game-1', 'same-lobby', 'host');
    const peer = await join(b.port, 'game-2', 'same-lobby', 'peer');
    const sameGame = await join(b.port, 'game-1', 'same-lobby', 'peer');
    expect((await sameGame.next(Op.NEW_HOST)).payload).toBe(host.id);
    // Frames from one process arrive in order: once the game-1 peer is introduced, a wrong one would be in.
    expect(peer.queue.filter((f) => f.opcode === Op.NEW_HOST)).toEqual([]);
    peer.send({ opcode: Op.ACCEPT_OFFER, payload: 'x', rx: host.id });
    expect((await peer.next(Op.VIOLATION)).payload).toMatch(/not a host in your lobby/);
    for (const c of [host, sameGame]) c.close();
  });

  it(`a process killed with SIGKILL leaves no lobby behind after ${BOUND} ms, and the other side is told`, async () => {
    const c = await startServe(redis.url, TTL);
    const host = await join(c.port, 'game', 'doomed', 'host');
    const peer = await join(a.port, 'game', 'doomed', 'peer');
    expect((await peer.next(Op.NEW_HOST)).payload).toBe(host.id);
    const lobbiesBefore = (await b.health()).lobbies.cloudlink;
    const killed = Date.now();
    await c.kill();
    expect(await peer.next(Op.SHUTDOWN_ACK, BOUND + 2000)).toMatchObject({ tx: host.id });
    const took = Date.now() - killed;
    // One heartbeat of slack beyond the bound for a loaded CI machine.
    expect(took).toBeLessThan(BOUND + TTL / 3 + 1000);
    peer.close();
    await vi.waitFor(async () => expect((await b.health()).lobbies.cloudlink).toBe(lobbiesBefore - 1));
  });

  it('Redis lost: a warn line, /health says down, local meetings go on; it recovers when Redis returns', async () => {
    await loseRedis(redis, [a, b]);

    const host = await join(a.port, 'game', 'outage', 'host');
    const peer = await join(a.port, 'game', 'outage', 'peer');
    expect((await peer.next(Op.NEW_HOST)).payload).toBe(host.id);
    host.send({ opcode: Op.MAKE_OFFER, payload: 'local', rx: peer.id });
    expect(await peer.next(Op.ANTICIPATE_OFFER)).toMatchObject({ payload: 'local', tx: host.id });

    await restoreRedis(redis, [a, b]);
    // A's members are announced again: a peer joining on B meets the host that joined during the outage.
    const late = await join(b.port, 'game', 'outage', 'peer');
    expect((await late.next(Op.NEW_HOST)).payload).toBe(host.id);
    expect((await host.next(Op.NEW_PEER, 5000)).payload).toBe(peer.id);
    expect((await host.next(Op.NEW_PEER, 5000)).payload).toBe(late.id);
    host.send({ opcode: Op.MAKE_OFFER, payload: 'across', rx: late.id });
    expect(await late.next(Op.ANTICIPATE_OFFER)).toMatchObject({ payload: 'across', tx: host.id });
    for (const cl of [host, peer, late]) cl.close();
  });
});

describe('CloudLink relays to another process while Redis is down', () => {
  let redis: TestRedis, a: ServeProcess, b: ServeProcess, stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ redis, a, b, stop } = await twoProcesses(TTL)));
  afterAll(() => stop?.());

  it('the sender gets SHUTDOWN_ACK for the unreachable mate (not silence, not VIOLATION); both meet again and complete a handshake when Redis returns', async () => {
    // Host on A, peer on B, introduced; a second pair the other way round whose offer crossed before the outage.
    const host = await join(a.port, 'game', 'severed', 'host');
    const peer = await join(b.port, 'game', 'severed', 'peer');
    expect((await peer.next(Op.NEW_HOST)).payload).toBe(host.id);
    expect((await host.next(Op.NEW_PEER)).payload).toBe(peer.id);
    const host2 = await join(b.port, 'game', 'severed-2', 'host');
    const peer2 = await join(a.port, 'game', 'severed-2', 'peer');
    expect((await peer2.next(Op.NEW_HOST)).payload).toBe(host2.id);
    await host2.next(Op.NEW_PEER);
    host2.send({ opcode: Op.MAKE_OFFER, payload: 'before', rx: peer2.id });
    expect(await peer2.next(Op.ANTICIPATE_OFFER)).toMatchObject({ payload: 'before', tx: host2.id });

    await loseRedis(redis, [a, b]);
    // A host's relay: answered at once with SHUTDOWN_ACK for the peer it cannot reach.
    host.send({ opcode: Op.MAKE_OFFER, payload: 'lost', rx: peer.id });
    expect(await host.next(Op.SHUTDOWN_ACK, 2000)).toMatchObject({ tx: peer.id });
    // A peer's relay likewise.
    peer2.send({ opcode: Op.ACCEPT_OFFER, payload: 'lost', rx: host2.id });
    expect(await peer2.next(Op.SHUTDOWN_ACK, 2000)).toMatchObject({ tx: host2.id });
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Nobody was kicked, and the other ends heard nothing yet.
    for (const c of [host, peer, host2, peer2]) expect(c.queue.filter((f) => f.opcode === Op.VIOLATION)).toEqual([]);
    expect([...peer.queue, ...host2.queue]).toEqual([]);

    await restoreRedis(redis, [a, b]);
    // The other ends are told their mate left, then each pair is introduced again.
    expect(await peer.next(Op.SHUTDOWN_ACK, 5000)).toMatchObject({ tx: host.id });
    expect((await peer.next(Op.NEW_HOST, 5000)).payload).toBe(host.id);
    expect((await host.next(Op.NEW_PEER, 5000)).payload).toBe(peer.id);
    expect(await host2.next(Op.SHUTDOWN_ACK, 5000)).toMatchObject({ tx: peer2.id });
    expect((await host2.next(Op.NEW_PEER, 5000)).payload).toBe(peer2.id);
    expect((await peer2.next(Op.NEW_HOST, 5000)).payload).toBe(host2.id);

    // The handshake starts over and completes across the processes.
    host.send({ opcode: Op.MAKE_OFFER, payload: 'again', rx: peer.id });
    expect(await peer.next(Op.ANTICIPATE_OFFER)).toMatchObject({ payload: 'again', tx: host.id });
    peer.send({ opcode: Op.ACCEPT_OFFER, payload: 'accepted', rx: host.id });
    expect(await host.next(Op.RETURN_OFFER)).toMatchObject({ payload: 'accepted', tx: peer.id });
    peer.send({ opcode: Op.MAKE_ANSWER, payload: 'a1', rx: host.id });
    expect(await host.next(Op.ANTICIPATE_ANSWER)).toMatchObject({ payload: 'a1', tx: peer.id });
    host.send({ opcode: Op.MAKE_ANSWER, payload: 'a2', rx: peer.id });
    expect(await peer.next(Op.ANTICIPATE_ANSWER)).toMatchObject({ payload: 'a2', tx: host.id });
    host.send({ opcode: Op.ACK_CHECK, rx: peer.id });
    expect(await peer.next(Op.ACK_CHECK)).toMatchObject({ tx: host.id });
    peer.send({ opcode: Op.ACK_READY, rx: host.id });
    expect(await host.next(Op.ACK_READY)).toMatchObject({ tx: peer.id });
    // The second pair's handshake starts over too.
    host2.send({ opcode: Op.MAKE_OFFER, payload: 'again', rx: peer2.id });
    expect(await peer2.next(Op.ANTICIPATE_OFFER)).toMatchObject({ payload: 'again', tx: host2.id });
    peer2.send({ opcode: Op.ACCEPT_OFFER, payload: 'ok', rx: host2.id });
    expect(await host2.next(Op.RETURN_OFFER)).toMatchObject({ payload: 'ok', tx: peer2.id });
    for (const c of [host, peer, host2, peer2]) expect(c.queue.filter((f) => f.opcode === Op.VIOLATION)).toEqual([]);
    for (const c of [host, peer, host2, peer2]) c.close();
  });
});

describe('signalbox serve --redis with Redis unreachable', () => {
  it('exits with 1 and says why', async () => {
    const port = await freePort();
    const { exited, output } = runServe(['--port', '0', '--redis', `redis://127.0.0.1:${port}`]);
    expect(await exited).toBe(1);
    expect(output()).toMatch(/could not start.*cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/);
  });
});
