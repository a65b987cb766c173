import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { createActor, waitFor } from 'xstate';
import { directorySink, fileSource } from '../adapters/fs/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { memorySink, memorySource, sha256Hex, type FileSink } from '../machines/transfer/files.js';
import { filedropReceiver, type ReceiverEmitted } from '../machines/filedrop/receiver.machine.js';
import { filedropSender, type SenderEmitted } from '../machines/filedrop/sender.machine.js';
import { DEFAULT_HIGH_WATER_MARK } from '../src/backpressure.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import { fromRtc, type RtcActorInit } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import { bytes } from './filedrop-helpers.js';
import { NDC_LOOPBACK, WERIFT_LOOPBACK } from './rtc-helpers.js';

let server: SignalboxServer;
let dir: string;
const actors: Array<{ stop(): void }> = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
  dir = await mkdtemp(join(tmpdir(), 'signalbox-e2e-'));
});
afterAll(async () => {
  for (const actor of actors) actor.stop();
  await server.close();
  await rm(dir, { recursive: true, force: true });
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

type Backend = 'werift' | 'node-datachannel';

const BACKENDS: Record<Backend, RtcActorInit> = {
  werift: { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true },
  'node-datachannel': { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK, trickle: true },
};

/**
 * Sends a 10 MiB file from disk to disk through the real server, the sender
 * on `senderBackend` and the receiver on `receiverBackend`, and checks that
 * bytes and SHA-256 are equal.
 */
async function transfer(senderBackend: Backend, receiverBackend: Backend) {
  const name = `ten-${senderBackend}-${receiverBackend}.bin`;
  const data = bytes(10 * 1024 * 1024, 42);
  await writeFile(join(dir, name), data);
  const out = await mkdtemp(join(dir, 'out-'));

  const provide = (backend: Backend) => ({
    signalling: fromTransport(
      () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`),
      clientCodec(),
    ),
    rtc: fromRtc(BACKENDS[backend]),
  });
  const source = await fileSource(join(dir, name));
  const sender = createActor(filedropSender.provide({ actors: provide(senderBackend) }), {
    input: { source, once: true },
  });
  const senderEvents: SenderEmitted[] = [];
  sender.on('*', (e: SenderEmitted) => senderEvents.push(e));
  actors.push(sender.start());
  const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;

  const receiver = createActor(filedropReceiver.provide({ actors: provide(receiverBackend) }), {
    input: { code, sink: directorySink(out) },
  });
  const receiverEvents: ReceiverEmitted[] = [];
  receiver.on('*', (e: ReceiverEmitted) => receiverEvents.push(e));
  actors.push(receiver.start());

  await waitFor(receiver, (s) => s.status === 'done', { timeout: 15_000 });
  expect(receiver.getSnapshot().context.error).toBeUndefined();
  expect(receiver.getSnapshot().value).toBe('done');
  await waitFor(sender, (s) => s.status === 'done', { timeout: 5000 });
  expect(sender.getSnapshot().value).toBe('done');

  const received = new Uint8Array(await readFile(join(out, name)));
  expect(received.byteLength).toBe(data.byteLength);
  expect(sha256Hex(received)).toBe(sha256Hex(data));
  expect(Buffer.compare(received, data)).toBe(0);
  expect(receiverEvents.find((e) => e.type === 'completed')).toEqual({
    type: 'completed',
    detail: {
      file: { name, size: data.byteLength, type: 'application/octet-stream', sha256: sha256Hex(data) },
      sha256: sha256Hex(data),
      verified: true,
    },
  });
  const progress = senderEvents.filter((e) => e.type === 'progress');
  expect(progress.length).toBeGreaterThan(1);
  expect(progress.at(-1)!.detail.received).toBe(data.byteLength);
  // Both left the server: their sessions are gone.
  for (let i = 0; i < 250 && server.health().connections.filedrop > 0; i++) await new Promise((r) => setTimeout(r, 20));
  expect(server.health().connections.filedrop).toBe(0);
}

describe('filedrop end to end: real server, ws, 10 MiB from disk to disk, bytes and SHA-256 equal', () => {
  it('werift → werift', async () => {
    // werift's throughput collapses above a 256 KiB send buffer: keep the default.
    expect(DEFAULT_HIGH_WATER_MARK).toBeLessThanOrEqual(256 * 1024);
    await transfer('werift', 'werift');
  });

  it('node-datachannel → werift', async () => {
    await transfer('node-datachannel', 'werift');
  });

  it('werift → node-datachannel', async () => {
    await transfer('werift', 'node-datachannel');
  });
});

describe('filedrop end to end: a sink slower than the network', () => {
  it('werift → node-datachannel, 4 MiB into a sink taking 3 MiB/s: the sender stays within its window of what is stored', async () => {
    const name = 'slow.bin';
    const data = bytes(4 * 1024 * 1024, 43);
    await writeFile(join(dir, name), data);
    const out = await mkdtemp(join(dir, 'slow-'));
    const window = 1024 * 1024;
    const provide = (backend: Backend) => ({
      signalling: fromTransport(
        () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`),
        clientCodec(),
      ),
      rtc: fromRtc(BACKENDS[backend]),
    });
    // How far the sender has read (it reads at most 256 KiB ahead of what it sent)…
    const inner = await fileSource(join(dir, name));
    let furthest = 0;
    const source = {
      ...inner,
      read: (offset: number, length: number) => {
        furthest = Math.max(furthest, offset + length);
        return inner.read(offset, length);
      },
    };
    // …and how much the receiver's sink has taken: 20 ms for every 64 KiB.
    let written = 0;
    let ahead = 0;
    const slow = async (file: Parameters<ReturnType<typeof directorySink>>[0]): Promise<FileSink> => {
      const sink = await directorySink(out)(file);
      return {
        async write(chunk) {
          if (written % (64 * 1024) === 0) await new Promise((r) => setTimeout(r, 20));
          ahead = Math.max(ahead, furthest - written);
          await sink.write(chunk);
          written += chunk.byteLength;
        },
        close: () => sink.close(),
        abort: (reason) => sink.abort(reason),
      };
    };
    const sender = createActor(filedropSender.provide({ actors: provide('werift') }), {
      input: { source, once: true, window },
    });
    actors.push(sender.start());
    const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;
    const receiver = createActor(filedropReceiver.provide({ actors: provide('node-datachannel') }), {
      input: { code, sink: slow },
    });
    actors.push(receiver.start());
    await waitFor(receiver, (s) => s.status === 'done', { timeout: 15_000 });
    expect(receiver.getSnapshot().value).toBe('done');
    await waitFor(sender, (s) => s.status === 'done', { timeout: 5000 });
    expect(Buffer.compare(new Uint8Array(await readFile(join(out, name))), data)).toBe(0);
    // Never more than the window (and one read) beyond what was stored.
    expect(ahead).toBeGreaterThan(window / 2);
    expect(ahead).toBeLessThanOrEqual(window + 256 * 1024);
  }, 30_000);
});

describe('filedrop end to end: retry (an ICE restart) mid-transfer', () => {
  /**
   * Starts a 2 MiB transfer into a sink that takes nothing until `release()`
   * (the sender waits within its 256 KiB window), then makes the sender's
   * rtc actor report an ICE failure, as when ICE selection fails there: the
   * sender sends `retry` and the receiver offers again with an ICE restart.
   */
  async function retryMidTransfer(senderBackend: Backend, receiverBackend: Backend) {
    const data = bytes(2 * 1024 * 1024, 44);
    const provide = (backend: Backend) => ({
      signalling: fromTransport(
        () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`),
        clientCodec(),
      ),
      rtc: fromRtc(BACKENDS[backend]),
    });
    const sender = createActor(filedropSender.provide({ actors: provide(senderBackend) }), {
      input: { source: memorySource(data, { name: 'retry.bin' }), once: true, window: 256 * 1024 },
    });
    const senderEvents: SenderEmitted[] = [];
    sender.on('*', (e: SenderEmitted) => senderEvents.push(e));
    actors.push(sender.start());
    const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;
    const inner = memorySink();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const sink: FileSink = {
      async write(chunk) {
        await gate;
        inner.write(chunk);
      },
      close: () => inner.close(),
      abort: (reason) => inner.abort(reason),
    };
    const receiver = createActor(filedropReceiver.provide({ actors: provide(receiverBackend) }), {
      input: { code, sink },
    });
    const receiverEvents: ReceiverEmitted[] = [];
    receiver.on('*', (e: ReceiverEmitted) => receiverEvents.push(e));
    actors.push(receiver.start());
    await waitFor(receiver, (s) => s.matches({ active: { engaged: { transferring: 'receiving' } } }), {
      timeout: 10_000,
    });
    const id = receiver.getSnapshot().context.id!;
    sender.send({ type: 'rtc.failed', label: id, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed (test)') });
    return { data, sender, receiver, senderEvents, receiverEvents, inner, release };
  }

  const quiet = async () => {
    for (let i = 0; i < 250 && server.health().connections.filedrop > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(server.health().connections.filedrop).toBe(0);
  };

  it('werift → werift: the receiver restarts ICE, the open channel carries on, the file arrives whole', async () => {
    const t = await retryMidTransfer('werift', 'werift');
    await waitFor(t.receiver, (s) => s.context.retries === 1, { timeout: 5000 });
    // Time for the restart offer and its answer to go through before the bytes flow again.
    await new Promise((r) => setTimeout(r, 500));
    t.release();
    await waitFor(t.receiver, (s) => s.status === 'done', { timeout: 15_000 });
    expect(t.receiver.getSnapshot().value).toBe('done');
    await waitFor(t.sender, (s) => s.status === 'done', { timeout: 5000 });
    expect(t.sender.getSnapshot().value).toBe('done');
    expect(Buffer.compare(t.inner.bytes(), t.data)).toBe(0);
    expect(t.senderEvents.filter((e) => e.type === 'retrying')).toEqual([
      { type: 'retrying', detail: { peer: t.receiver.getSnapshot().context.id, attempt: 1 } },
    ]);
    expect(t.receiverEvents.filter((e) => e.type === 'retrying')).toEqual([
      { type: 'retrying', detail: { attempt: 1 } },
    ]);
    await quiet();
  }, 30_000);

  it('werift → node-datachannel: the receiver cannot restart ICE, so it ends failed with the reason; the sender serves on', async () => {
    const t = await retryMidTransfer('werift', 'node-datachannel');
    await waitFor(t.receiver, (s) => s.status === 'done', { timeout: 10_000 });
    expect(t.receiver.getSnapshot().value).toBe('failed');
    expect(t.receiver.getSnapshot().context.error).toMatchObject({
      reason: 'rtc-failed',
      message: expect.stringMatching(/ICE restart/),
    });
    // The receiver gave up for a reason of its own: the once sender keeps its code for another try.
    await waitFor(t.sender, (s) => Object.keys(s.context.transfers).length === 0, { timeout: 5000 });
    expect(t.sender.getSnapshot().value).toEqual({ active: 'serving' });
    expect(t.senderEvents.filter((e) => e.type === 'failed')).toEqual([
      {
        type: 'failed',
        detail: { peer: expect.any(String), error: expect.objectContaining({ remote: 'rtc-failed' }) },
      },
    ]);
    expect(t.inner.state).toBe('aborted');
    t.sender.send({ type: 'cancel' });
    await waitFor(t.sender, (s) => s.status === 'done', { timeout: 5000 });
    await quiet();
  }, 30_000);

  it('node-datachannel → werift: the sender cannot take the restart offer, retries run out, both end failed', async () => {
    const t = await retryMidTransfer('node-datachannel', 'werift');
    await waitFor(t.sender, (s) => s.status === 'done', { timeout: 10_000 });
    expect(t.sender.getSnapshot().value).toBe('failed');
    expect(t.sender.getSnapshot().context.error).toMatchObject({ reason: 'rtc-failed' });
    await waitFor(t.receiver, (s) => s.status === 'done', { timeout: 5000 });
    expect(t.receiver.getSnapshot().value).toBe('failed');
    expect(t.receiver.getSnapshot().context.error).toMatchObject({ reason: 'remote-cancelled', remote: 'rtc-failed' });
    await quiet();
  }, 30_000);
});
