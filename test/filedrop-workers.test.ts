import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { broadcastChannelServer } from '../adapters/broadcast-channel/index.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { createFileDropServer } from '../machines/filedrop/server.js';
import { serve } from '../src/runtime.js';
import type { ConnectionInfo } from '../src/transport.js';

/**
 * The "same logic runs anywhere" promise for filedrop: the hub runs in this
 * thread on a BroadcastChannel, a sender and a receiver each run in their own
 * worker_thread, and no network server exists at all. The file's bytes go
 * over a werift data channel on loopback, as in a browser they would go
 * between two tabs.
 */

interface WorkerEvent {
  event: string;
  [key: string]: unknown;
}

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((worker) => worker.terminate()));
});

function start(data: Record<string, unknown>) {
  const worker = new Worker(new URL('./filedrop.worker.mjs', import.meta.url), { workerData: data });
  workers.push(worker);
  const events: WorkerEvent[] = [];
  const waiters: Array<() => void> = [];
  const errors: unknown[] = [];
  worker.on('message', (event: WorkerEvent) => {
    events.push(event);
    for (const wake of waiters.splice(0)) wake();
  });
  worker.on('error', (error) => {
    errors.push(error);
    for (const wake of waiters.splice(0)) wake();
  });
  /** Resolves with the first event of that name, and fails if the worker crashes first. */
  const next = async (name: string, timeout = 20_000): Promise<WorkerEvent> => {
    const deadline = Date.now() + timeout;
    for (;;) {
      const found = events.find((e) => e.event === name);
      if (found) return found;
      if (errors.length) throw new Error(`the ${String(data.role)} worker crashed: ${String(errors[0])}`);
      if (Date.now() > deadline) {
        throw new Error(
          `the ${String(data.role)} worker never reported '${name}'; it reported ${JSON.stringify(events)}`,
        );
      }
      await new Promise<void>((resolve) => {
        waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  };
  return { events, next };
}

function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

describe('filedrop between two worker_threads over BroadcastChannel', () => {
  it('a sender and a receiver in two workers exchange a file through a hub in this thread, with no network server', async () => {
    const name = `filedrop-workers-${Math.random().toString(36).slice(2)}`;
    const hub = broadcastChannelServer({ name });
    const filedrop = createFileDropServer();
    const stop = serve(hub, filedrop);
    const seen: ConnectionInfo[] = [];
    hub.on('connection', ({ info }) => seen.push(info));
    try {
      const size = 256 * 1024 + 123;
      const sender = start({ role: 'sender', name, size });
      const { detail } = (await sender.next('assigned')) as unknown as { detail: { id: string } };
      expect(filedrop.sessions.has(detail.id)).toBe(true);

      const receiver = start({ role: 'receiver', name, code: detail.id });
      const done = await receiver.next('done');
      expect(done).toMatchObject({ state: 'done', size });
      expect(done.error).toBeUndefined();
      expect(done.sha256).toBe(sha256Hex(pattern(size)));
      expect(await receiver.next('file')).toMatchObject({
        detail: { file: { name: 'worker.bin', size, sha256: sha256Hex(pattern(size)) } },
      });

      // The sender heard that its receiver has everything, then ended (a `once` sender).
      expect(await sender.next('completed')).toMatchObject({ detail: { error: undefined } });
      expect(await sender.next('finished')).toMatchObject({ role: 'sender', state: 'done' });
      expect(await receiver.next('finished')).toMatchObject({ role: 'receiver', state: 'done' });

      // Both signalled over the channel, nothing else: two connections, both from a broadcast: address.
      expect(seen).toHaveLength(2);
      for (const info of seen) {
        expect(info.path).toBe('/filedrop');
        expect(info.remoteAddress).toMatch(/^broadcast:/);
      }
      // Both left: the hub's sessions and registry are empty.
      for (let i = 0; i < 100 && filedrop.stats().connections > 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(filedrop.stats()).toEqual({ connections: 0, pairs: 0 });
    } finally {
      stop();
      await filedrop.close();
      await hub.close();
    }
  }, 60_000);
});
