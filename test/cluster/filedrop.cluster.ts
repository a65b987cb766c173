import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestRedis } from '../redis-server.js';
import {
  BOUND,
  jsonClient,
  loseRedis,
  queued,
  restoreRedis,
  startServe,
  TTL,
  twoProcesses,
  type JsonClient,
  type JsonMessage,
  type ServeProcess,
} from './processes.js';

/** A filedrop client over WebSocket, with its code (`assign`). */
async function peer(port: number): Promise<JsonClient & { id: string }> {
  const client = await jsonClient(port, '/filedrop');
  const id = (await client.next('assign')).detail!.peer as string;
  return Object.assign(client, { id });
}

/** A plain socket.io 4 client of the seed (no signalbox code on its side), queueing `[event, ...args]`. */
async function socketIoPeer(port: number) {
  const socket: Socket = io(`http://127.0.0.1:${port}`, {
    reconnection: false,
    forceNew: true,
    transports: ['websocket'],
  });
  const inbox = queued<unknown[]>();
  socket.onAny((event: string, ...args: unknown[]) => inbox.push([event, ...args]));
  const [, id] = await inbox.take(([event]) => event === 'assign');
  return { socket, id: id as string, next: (event: string) => inbox.take(([e]) => e === event) };
}

/**
 * A receiver on `port` sends `request` to `code` until the code is known there (a code reaches
 * the other processes a moment after its sender got it; a person typing it takes longer).
 */
async function requestUntilKnown(receiver: JsonClient, code: string): Promise<void> {
  const refusal = (m: JsonMessage) => m.type === 'peer not exists' && m.detail?.event === 'request';
  for (let attempt = 0; attempt < 20; attempt++) {
    receiver.send({ type: 'request', detail: { peer: code } });
    // An unknown code is refused within a round trip; no refusal in 250 ms: the request went through.
    await new Promise((resolve) => setTimeout(resolve, 250));
    const index = receiver.queue.findIndex(refusal);
    if (index < 0) return;
    receiver.queue.splice(index, 1);
  }
  throw new Error(`code ${code} never became known`);
}

describe('filedrop across processes on Redis', () => {
  let redis: TestRedis, a: ServeProcess, b: ServeProcess, stop: (() => Promise<void>) | undefined;
  beforeAll(async () => void ({ redis, a, b, stop } = await twoProcesses(TTL)));
  afterAll(() => stop?.());

  it('a sender on A and a receiver on B by its code: the whole exchange, and the departure', async () => {
    const sender = await peer(a.port);
    const receiver = await peer(b.port);
    await requestUntilKnown(receiver, sender.id);
    expect(await sender.next('request')).toEqual({ type: 'request', detail: { peer: receiver.id } });
    const info = { name: 'a.txt', size: 5, type: 'text/plain' };
    sender.send({ type: 'response', detail: { peer: receiver.id, data: info } });
    expect(await receiver.next('response')).toEqual({ type: 'response', detail: { peer: sender.id, data: info } });
    receiver.send({ type: 'offer', detail: { peer: sender.id, data: { type: 'offer', sdp: 'o' } } });
    expect((await sender.next('offer')).detail).toEqual({ peer: receiver.id, data: { type: 'offer', sdp: 'o' } });
    sender.send({ type: 'answer', detail: { peer: receiver.id, data: { type: 'answer', sdp: 'a' } } });
    expect((await receiver.next('answer')).detail).toEqual({ peer: sender.id, data: { type: 'answer', sdp: 'a' } });
    sender.send({ type: 'candidate', detail: { peer: receiver.id, data: null } });
    expect((await receiver.next('candidate')).detail).toEqual({ peer: sender.id, data: null });
    // The direction rules hold across processes: a receiver may not answer.
    receiver.send({ type: 'answer', detail: { peer: sender.id, data: {} } });
    expect((await receiver.next('error')).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', event: 'answer' });

    sender.close();
    expect(await receiver.next('peer not exists')).toEqual({ type: 'peer not exists', detail: { peer: sender.id } });
    receiver.close();
    expect([...sender.queue, ...receiver.queue].filter((m) => m.type === 'error')).toEqual([]);
  });

  it('a code nobody holds on any process gets `peer not exists`', async () => {
    const receiver = await peer(b.port);
    receiver.send({ type: 'request', detail: { peer: 'NOBODY42' } });
    expect(await receiver.next('peer not exists')).toEqual({
      type: 'peer not exists',
      detail: { peer: 'NOBODY42', event: 'request' },
    });
    receiver.close();
  });

  it('a socket.io sender on A and a WebSocket receiver on B', async () => {
    const sender = await socketIoPeer(a.port);
    const receiver = await peer(b.port);
    await requestUntilKnown(receiver, sender.id);
    expect(await sender.next('request')).toEqual(['request', receiver.id]);
    sender.socket.emit('response', receiver.id, { fileName: 'b.bin', fileSize: 3 });
    expect((await receiver.next('response')).detail).toEqual({
      peer: sender.id,
      data: { fileName: 'b.bin', fileSize: 3 },
    });
    receiver.send({ type: 'candidate', detail: { peer: sender.id, data: { candidate: 'c' } } });
    expect(await sender.next('candidate')).toEqual(['candidate', receiver.id, { candidate: 'c' }]);
    receiver.close();
    expect(await sender.next('peer not exists')).toEqual(['peer not exists', { peer: receiver.id }]);
    sender.socket.close();
  });

  it('the codes handed out by the processes are all different', async () => {
    const peers = await Promise.all([...Array(20)].map((_, i) => peer(i % 2 ? a.port : b.port)));
    expect(new Set(peers.map((p) => p.id)).size).toBe(20);
    for (const p of peers) p.close();
  });

  it(`a process killed with SIGKILL: its senders' receivers are told within ${BOUND} ms, its codes are gone`, async () => {
    const c = await startServe(redis.url, TTL);
    const sender = await peer(c.port);
    const receiver = await peer(a.port);
    await requestUntilKnown(receiver, sender.id);
    await sender.next('request');
    const killed = Date.now();
    await c.kill();
    expect(await receiver.next('peer not exists', BOUND + 2000)).toEqual({
      type: 'peer not exists',
      detail: { peer: sender.id },
    });
    // One heartbeat of slack beyond the bound for a loaded CI machine.
    expect(Date.now() - killed).toBeLessThan(BOUND + TTL / 3 + 1000);
    const late = await peer(b.port);
    late.send({ type: 'request', detail: { peer: sender.id } });
    expect((await late.next('peer not exists')).detail).toEqual({ peer: sender.id, event: 'request' });
    for (const cl of [receiver, late]) cl.close();
  });

  it("a process stopped with SIGTERM: its senders' receivers are told at once", async () => {
    const c = await startServe(redis.url, TTL);
    const sender = await peer(c.port);
    const receiver = await peer(a.port);
    await requestUntilKnown(receiver, sender.id);
    await sender.next('request');
    const stopped = Date.now();
    await c.stop();
    expect(await receiver.next('peer not exists', TTL)).toEqual({
      type: 'peer not exists',
      detail: { peer: sender.id },
    });
    // Well inside one TTL: told by the leaving process, not found dead later.
    expect(Date.now() - stopped).toBeLessThan(TTL);
    receiver.close();
  });
  it('Redis lost: codes and exchanges on one process go on, a code on the other is refused; all recovers', async () => {
    const sender = await peer(a.port);
    const probe = await peer(b.port);
    await requestUntilKnown(probe, sender.id);
    await sender.next('request');
    await loseRedis(redis, [a, b]);

    // Across processes: refused with the protocol's answer for an unreachable code.
    const receiver = await peer(b.port);
    receiver.send({ type: 'request', detail: { peer: sender.id } });
    expect(await receiver.next('peer not exists')).toEqual({
      type: 'peer not exists',
      detail: { peer: sender.id, event: 'request' },
    });
    // On one process: codes are handed out and the exchange goes on.
    const localSender = await peer(a.port);
    const localReceiver = await peer(a.port);
    localReceiver.send({ type: 'request', detail: { peer: localSender.id } });
    expect(await localSender.next('request')).toEqual({ type: 'request', detail: { peer: localReceiver.id } });
    localSender.send({ type: 'response', detail: { peer: localReceiver.id, data: { name: 'x' } } });
    expect((await localReceiver.next('response')).detail).toEqual({ peer: localSender.id, data: { name: 'x' } });

    await restoreRedis(redis, [a, b]);
    // The codes held before the outage and handed out during it are written back and reachable again.
    await requestUntilKnown(receiver, sender.id);
    expect(await sender.next('request')).toEqual({ type: 'request', detail: { peer: receiver.id } });
    const late = await peer(b.port);
    await requestUntilKnown(late, localSender.id);
    expect(await localSender.next('request')).toEqual({ type: 'request', detail: { peer: late.id } });
    localSender.send({ type: 'response', detail: { peer: late.id, data: { name: 'y' } } });
    expect((await late.next('response')).detail).toEqual({ peer: localSender.id, data: { name: 'y' } });
    // One TTL after the return, the sweep forgets nobody who is still there.
    await new Promise((resolve) => setTimeout(resolve, TTL + 500));
    expect([...receiver.queue, ...late.queue, ...probe.queue].filter((m) => m.type === 'peer not exists')).toEqual([]);
    // New codes from both processes are still all different.
    const fresh = await Promise.all([...Array(10)].map((_, i) => peer(i % 2 ? a.port : b.port)));
    expect(new Set(fresh.map((p) => p.id)).size).toBe(10);
    for (const c of [sender, probe, receiver, localSender, localReceiver, late, ...fresh]) c.close();
  });
});
