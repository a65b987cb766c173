/**
 * The sender and receiver machines together over a memory world: memory
 * network, memory WebRTC (trickle ICE) and a SimulatedClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor, type AnyActorRef, type SnapshotFrom } from 'xstate';
import { clientCodec } from '../machines/filedrop/codec.js';
import type { FileDropError } from '../machines/filedrop/errors.js';
import { memorySink, memorySource, sha256Hex, type FileSource } from '../machines/transfer/files.js';
import type { ServerMessage } from '../machines/filedrop/protocol.js';
import type { filedropReceiver, ReceiverEmitted } from '../machines/filedrop/receiver.machine.js';
import type { filedropSenderTransfer, SenderEmitted } from '../machines/filedrop/sender.machine.js';
import type { Transport } from '../src/transport.js';
import { createFileDropWorld, type FileDropWorld } from '../testing/index.js';
import { settle } from './socket-helpers.js';
import { bytes } from './filedrop-helpers.js';

let world: FileDropWorld;
afterEach(async () => {
  await world?.close();
});

type Sender = ReturnType<FileDropWorld['sender']>;
type Receiver = ReturnType<FileDropWorld['receiver']>;

const same = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && sha256Hex(a) === sha256Hex(b);

function record<E extends { type: string }>(actor: AnyActorRef) {
  const events: E[] = [];
  actor.on('*', (e: E) => events.push(e));
  return {
    events,
    of: <T extends E['type']>(type: T) => events.filter((e): e is Extract<E, { type: T }> => e.type === type),
  };
}

/** A source that holds every read from `holdAt` on until `release()`. */
function gatedSource(data: Uint8Array, holdAt: number, init: Parameters<typeof memorySource>[1] = {}) {
  const inner = memorySource(data, init);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let reached!: () => void;
  const held = new Promise<void>((resolve) => (reached = resolve));
  const source: FileSource = {
    ...inner,
    async read(offset, length) {
      if (offset >= holdAt) {
        reached();
        await gate;
      }
      return inner.read(offset, length);
    },
  };
  return { source, release: () => open(), held };
}

async function codeOf(sender: Sender): Promise<string> {
  return (await waitFor(sender, (s) => s.context.id !== undefined)).context.id!;
}

/** The snapshot of the sender's (only, or named) transfer child. */
function transferOf(sender: Sender, peer?: string): SnapshotFrom<typeof filedropSenderTransfer> | undefined {
  const children = sender.getSnapshot().children as Record<string, AnyActorRef | undefined>;
  const id = Object.keys(children).find((key) => key.startsWith(`transfer:${peer ?? ''}`));
  return id ? (children[id]!.getSnapshot() as SnapshotFrom<typeof filedropSenderTransfer>) : undefined;
}

/** Lets the world run until `predicate` holds (frames seen by a raw client, say). */
async function until(predicate: () => boolean) {
  for (let i = 0; i < 100 && !predicate(); i++) await settle(1);
  expect(predicate()).toBe(true);
}

const ended = (actor: Sender | Receiver) => waitFor(actor, (s) => s.status === 'done');

/**
 * A once sender whose transfer failed on the receiver's side serves on under
 * the same code, that transfer gone: resolves with the transfer's error.
 */
async function servesOn(sender: Sender, log: { of: (type: 'failed') => Array<{ detail: { error: FileDropError } }> }) {
  await waitFor(sender, (s) => s.context.generation > 0 && Object.keys(s.context.transfers).length === 0);
  expect(sender.getSnapshot().value).toEqual({ active: 'serving' });
  expect(sender.getSnapshot().context.error).toBeUndefined();
  const failed = log.of('failed');
  expect(failed).toHaveLength(1);
  return failed[0]!.detail.error;
}

/** Cancels a sender that serves on, and waits for its end. */
async function stopServing(sender: Sender) {
  sender.send({ type: 'cancel' });
  await ended(sender);
}
const errorOf = (actor: Sender | Receiver) => actor.getSnapshot().context.error as FileDropError | undefined;

/** Nothing of the world runs any more: no open channel, no pending timer, no session but `sessions`. */
async function expectQuiet(sessions = 0) {
  await settle();
  expect(world.rtc.open).toBe(0);
  expect((world.clock as unknown as { timeouts: Map<unknown, unknown> }).timeouts.size).toBe(0);
  expect(world.server.stats().connections).toBe(sessions);
  expect(world.server.sessions.size).toBe(sessions);
}

const receiving = { active: { engaged: { transferring: 'receiving' } } } as const;
const isReceiving = (s: SnapshotFrom<typeof filedropReceiver>) => s.matches(receiving);

describe('filedrop: a transfer', () => {
  it('moves a file to a receiver who typed the code, verified, and both end done', async () => {
    world = createFileDropWorld();
    const data = bytes(300_000);
    const sender = world.sender({ source: memorySource(data, { name: 'a.bin', type: 'application/x-a' }), once: true });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    expect(code).toMatch(/^[2-9A-HJKMNP-TV-Z]{8}$/);
    const sink = memorySink();
    const receiver = world.receiver({ code: `${code.slice(0, 4).toLowerCase()}-${code.slice(4)}`, sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await ended(receiver);
    await ended(sender);

    expect(receiver.getSnapshot().value).toBe('done');
    expect(sender.getSnapshot().value).toBe('done');
    expect(sink.state).toBe('closed');
    expect(same(sink.bytes(), data)).toBe(true);
    const receiverId = receiver.getSnapshot().context.id!;
    expect(receiverLog.of('file')[0]!.detail.file).toEqual({
      name: 'a.bin',
      size: 300_000,
      type: 'application/x-a',
      sha256: sha256Hex(data),
    });
    expect(receiverLog.of('completed')[0]!.detail.sha256).toBe(sha256Hex(data));
    expect(receiverLog.of('stopped')).toEqual([{ type: 'stopped', detail: {} }]);
    expect(senderLog.of('requested')).toEqual([{ type: 'requested', detail: { peer: receiverId } }]);
    expect(senderLog.of('completed')).toEqual([{ type: 'completed', detail: { peer: receiverId } }]);
    expect(senderLog.of('progress').at(-1)!.detail).toEqual({ peer: receiverId, received: 300_000, total: 300_000 });
    expect(senderLog.of('stopped')).toEqual([{ type: 'stopped', detail: { error: undefined } }]);
    await expectQuiet();
  });

  it('moves an empty file', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(new Uint8Array(0), { name: 'empty' }), once: true });
    const sink = memorySink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await ended(receiver);
    await ended(sender);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(sink.state).toBe('closed');
    expect(sink.bytes()).toEqual(new Uint8Array(0));
  });

  it('checks the size alone when the sender announces no digest', async () => {
    world = createFileDropWorld();
    const data = bytes(50_000, 3);
    const sender = world.sender({ source: memorySource(data, { sha256: false }), once: true });
    const sink = memorySink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(receiver.getSnapshot().context.file).not.toHaveProperty('sha256');
    expect(same(sink.bytes(), data)).toBe(true);
  });

  it('reports progress to the sender through the server at most once per progressInterval', async () => {
    world = createFileDropWorld();
    const size = 2 * 1024 * 1024;
    const gated = gatedSource(bytes(size), 1024 * 1024);
    const sender = world.sender({ source: gated.source, once: true });
    const senderLog = record<SenderEmitted>(sender);
    const receiver = world.receiver({ code: await codeOf(sender), sink: memorySink(), progressInterval: 1000 });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await gated.held;
    await waitFor(receiver, (s) => s.context.received === 1024 * 1024);
    // Four reports of 256 KiB written; the `received: 0` sent as the channel opened holds them for the interval.
    expect(receiverLog.of('progress').map((e) => e.detail.received)).toEqual([262144, 524288, 786432, 1048576]);
    await settle();
    expect(senderLog.of('progress')).toEqual([]);
    world.clock.increment(1000);
    await settle();
    expect(senderLog.of('progress').map((e) => e.detail.received)).toEqual([1048576]);
    // Nothing new: the next tick sends nothing and the throttle rests.
    world.clock.increment(1000);
    await settle();
    expect(senderLog.of('progress')).toHaveLength(1);
    expect(receiver.getSnapshot().matches({ active: { engaged: { transferring: { receiving: 'idle' } } } })).toBe(true);
    gated.release();
    await ended(sender);
    expect(senderLog.of('progress').map((e) => e.detail.received)).toEqual([1048576, 1310720, size]);
  });
});

describe('filedrop: flow control towards a slow sink', () => {
  /** A sink that takes only as many bytes as the test allows (`allow`), counting what it took. */
  function slowSink() {
    const inner = memorySink();
    let budget = 0;
    let waiting: (() => void) | undefined;
    const sink = {
      written: 0,
      inner,
      async write(chunk: Uint8Array) {
        while (budget < chunk.byteLength) await new Promise<void>((resolve) => (waiting = resolve));
        budget -= chunk.byteLength;
        inner.write(chunk);
        sink.written += chunk.byteLength;
      },
      close: () => inner.close(),
      abort: (reason: unknown) => inner.abort(reason),
      /** Lets `bytes` more through. */
      allow(bytes: number) {
        budget += bytes;
        waiting?.();
      },
    };
    return sink;
  }

  /** A memory source that records how far it has been read. */
  function watchedSource(data: Uint8Array) {
    const inner = memorySource(data, { name: 'big.bin' });
    const watched = { ...inner, furthest: 0 };
    watched.read = async (offset: number, length: number) => {
      watched.furthest = Math.max(watched.furthest, offset + length);
      return inner.read(offset, length);
    };
    return watched;
  }

  it('the sender stays within `window` of what the receiver reports stored, so a slow sink holds a bounded queue', async () => {
    world = createFileDropWorld();
    const size = 8 * 1024 * 1024;
    const window = 1024 * 1024;
    const data = bytes(size, 21);
    const source = watchedSource(data);
    const sender = world.sender({ source, once: true, window });
    const sink = slowSink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await until(() => receiver.getSnapshot().matches(receiving));
    // The sink takes nothing: the sender sends its window (and reads at most one block ahead), then waits.
    for (let i = 0; i < 5; i++) {
      world.clock.increment(250);
      await settle();
    }
    expect(source.furthest - sink.written).toBeLessThanOrEqual(window + 256 * 1024);
    expect(transferOf(sender)?.value).toBe('sending');
    // The sink takes 512 KiB per progress interval: the sender follows, never further ahead.
    let ahead = 0;
    for (let i = 0; i < 100 && receiver.getSnapshot().status === 'active'; i++) {
      sink.allow(512 * 1024);
      await settle();
      world.clock.increment(250);
      await settle();
      ahead = Math.max(ahead, source.furthest - sink.written);
    }
    expect(ahead).toBeGreaterThan(0);
    expect(ahead).toBeLessThanOrEqual(window + 256 * 1024);
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(same(sink.inner.bytes(), data)).toBe(true);
    await ended(sender);
    expect(sender.getSnapshot().value).toBe('done');
  });
});

describe('filedrop: several receivers', () => {
  it('serves a second receiver after the first finished, and two at once', async () => {
    world = createFileDropWorld();
    const data = bytes(200_000, 7);
    const sender = world.sender({ source: memorySource(data) });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);

    const first = memorySink();
    await ended(world.receiver({ code, sink: first }));
    expect(same(first.bytes(), data)).toBe(true);
    await waitFor(sender, (s) => Object.keys(s.context.transfers).length === 0);

    const sinks = [memorySink(), memorySink()];
    const receivers = sinks.map((sink) => world.receiver({ code, sink }));
    await Promise.all(receivers.map(ended));
    for (const [i, receiver] of receivers.entries()) {
      expect(receiver.getSnapshot().value).toBe('done');
      expect(same(sinks[i]!.bytes(), data)).toBe(true);
    }
    await waitFor(sender, (s) => s.context.completed === 3);
    expect(senderLog.of('completed')).toHaveLength(3);
    // The sender keeps serving; its finished transfers are gone.
    expect(sender.getSnapshot().value).toEqual({ active: 'serving' });
    expect(Object.keys(sender.getSnapshot().children)).toEqual(['signalling']);
    expect(world.rtc.open).toBe(0);
  });

  it('refuses a second receiver with busy while a once-sender serves the first', async () => {
    world = createFileDropWorld();
    const gated = gatedSource(bytes(100_000), 0);
    const sender = world.sender({ source: gated.source, once: true });
    const code = await codeOf(sender);
    const first = world.receiver({ code, sink: memorySink() });
    await gated.held;
    const second = world.receiver({ code, sink: memorySink() });
    await ended(second);
    expect(second.getSnapshot().value).toBe('failed');
    expect(errorOf(second)).toMatchObject({ reason: 'busy', code: 'ERR_NOT_PERMITTED' });
    gated.release();
    await ended(first);
    expect(first.getSnapshot().value).toBe('done');
    await ended(sender);
    expect(sender.getSnapshot().value).toBe('done');
  });
});

describe('filedrop: cancel and vanish', () => {
  it('the receiver cancels mid-transfer: both end failed (cancelled / remote-cancelled), nothing keeps running', async () => {
    world = createFileDropWorld();
    const gated = gatedSource(bytes(1_000_000), 500_000);
    const sender = world.sender({ source: gated.source, once: true });
    const senderLog = record<SenderEmitted>(sender);
    const sink = memorySink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await gated.held;
    await waitFor(receiver, isReceiving);
    expect(transferOf(sender)!.value).toBe('sending');

    receiver.send({ type: 'cancel' });
    expect(receiver.getSnapshot().value).toBe('failed');
    expect(errorOf(receiver)).toMatchObject({ reason: 'cancelled', code: 'ERR_CANCELLED' });
    // The receiver's own reason: the once sender serves on under the same code.
    expect(await servesOn(sender, senderLog)).toMatchObject({
      reason: 'remote-cancelled',
      remote: 'cancelled',
      code: 'ERR_CANCELLED',
    });
    await settle();
    expect(sink.state).toBe('aborted');
    gated.release();
    await stopServing(sender);
    await expectQuiet();
  });

  it('the sender cancels mid-transfer: both end failed (cancelled / remote-cancelled), nothing keeps running', async () => {
    world = createFileDropWorld();
    const gated = gatedSource(bytes(1_000_000), 500_000);
    const sender = world.sender({ source: gated.source });
    const sink = memorySink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await gated.held;
    await waitFor(receiver, isReceiving);

    sender.send({ type: 'cancel' });
    expect(sender.getSnapshot().value).toBe('failed');
    expect(errorOf(sender)).toMatchObject({ reason: 'cancelled' });
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('failed');
    // The channel closes before the reason arrives through the server: the receiver waits for it.
    expect(errorOf(receiver)).toMatchObject({ reason: 'remote-cancelled', remote: 'cancelled' });
    await settle();
    expect(sink.state).toBe('aborted');
    gated.release();
    await expectQuiet();
  });

  it('the sender cancels before the data channel opens: the receiver hears it through the server', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(1000)) });
    let openSink!: () => void;
    const receiver = world.receiver({
      code: await codeOf(sender),
      sink: () => new Promise((resolve) => (openSink = () => resolve(memorySink()))),
    });
    await waitFor(receiver, (s) => s.matches({ active: { engaged: 'openingSink' } }));
    sender.send({ type: 'cancel' });
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'remote-cancelled', remote: 'cancelled' });
    openSink();
    await expectQuiet();
  });

  it('cancels one transfer of a sender that keeps serving', async () => {
    world = createFileDropWorld();
    const gated = gatedSource(bytes(500_000), 100_000);
    const sender = world.sender({ source: gated.source });
    const senderLog = record<SenderEmitted>(sender);
    const receiver = world.receiver({ code: await codeOf(sender), sink: memorySink() });
    await gated.held;
    const peer = (await waitFor(receiver, isReceiving)).context.id!;
    sender.send({ type: 'cancel', peer });
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'remote-cancelled', remote: 'cancelled' });
    expect(senderLog.of('failed')).toEqual([
      { type: 'failed', detail: { peer, error: expect.objectContaining({ reason: 'cancelled' }) } },
    ]);
    expect(sender.getSnapshot().value).toEqual({ active: 'serving' });
    expect(sender.getSnapshot().context.transfers).toEqual({});
    gated.release();
  });

  it('the receiver cancels while requesting: the sender drops its transfer', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(1000)), once: true });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    const receiver = world.receiver({ code, sink: () => new Promise(() => {}) });
    await waitFor(receiver, (s) => s.matches({ active: { engaged: 'openingSink' } }));
    receiver.send({ type: 'cancel' });
    expect(await servesOn(sender, senderLog)).toMatchObject({ reason: 'remote-cancelled', remote: 'cancelled' });
    await stopServing(sender);
    await expectQuiet();
  });

  it('the sender vanishes mid-transfer: the receiver ends failed (peer-gone) and aborts its sink', async () => {
    world = createFileDropWorld();
    const gated = gatedSource(bytes(1_000_000), 500_000);
    const sender = world.sender({ source: gated.source });
    const sink = memorySink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await gated.held;
    await waitFor(receiver, isReceiving);
    sender.stop();
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('failed');
    expect(errorOf(receiver)).toMatchObject({ reason: 'peer-gone', code: 'ERR_PEER_GONE' });
    await settle();
    expect(sink.state).toBe('aborted');
    gated.release();
    await expectQuiet();
  });

  it('the receiver vanishes mid-transfer: the sender fails that transfer (peer-gone) and keeps serving', async () => {
    world = createFileDropWorld();
    const gated = gatedSource(bytes(1_000_000), 500_000);
    const sender = world.sender({ source: gated.source });
    const senderLog = record<SenderEmitted>(sender);
    const receiver = world.receiver({ code: await codeOf(sender), sink: memorySink() });
    await gated.held;
    const peer = (await waitFor(receiver, isReceiving)).context.id!;
    receiver.stop();
    await waitFor(sender, () => senderLog.of('failed').length === 1);
    expect(senderLog.of('failed')[0]!.detail).toEqual({
      peer,
      error: expect.objectContaining({ reason: 'peer-gone' }),
    });
    expect(sender.getSnapshot().value).toEqual({ active: 'serving' });
    gated.release();
    await settle();
    expect(world.rtc.open).toBe(0);
    expect(world.server.stats()).toEqual({ connections: 1, pairs: 0 });
  });

  it('a receiver whose channel closes without a word is given up after lostTimeout', async () => {
    world = createFileDropWorld();
    const gated = gatedSource(bytes(500_000), 100_000);
    const sender = world.sender({ source: gated.source, once: true, lostTimeout: 5000 });
    const senderLog = record<SenderEmitted>(sender);
    const receiver = world.receiver({ code: await codeOf(sender), sink: memorySink() });
    await gated.held;
    const transport = (await waitFor(receiver, isReceiving)).context.transport as Transport;
    // The channel dies, the receiver's signalling stays up and says nothing.
    transport.close();
    await waitFor(sender, () => transferOf(sender)?.value === 'lost');
    world.clock.increment(4999);
    await settle();
    expect(sender.getSnapshot().status).toBe('active');
    world.clock.increment(1);
    expect(await servesOn(sender, senderLog)).toMatchObject({ reason: 'peer-gone' });
    gated.release();
    await stopServing(sender);
  });
});

describe('filedrop: ICE failure and retry', () => {
  it('a failed ICE on the sender side before the channel opens: retry, ICE restart, then the transfer completes', async () => {
    world = createFileDropWorld();
    const data = bytes(100_000, 5);
    const sender = world.sender({ source: memorySource(data), once: true });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    // The sender's rtc actor is labelled with the receiver's id, the receiver's with the code.
    world.rtc.failIce((label) => label !== code, 1);
    const sink = memorySink();
    const receiver = world.receiver({ code, sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(same(sink.bytes(), data)).toBe(true);
    expect(senderLog.of('retrying').map((e) => e.detail.attempt)).toEqual([1]);
    expect(receiverLog.of('retrying')).toEqual([{ type: 'retrying', detail: { attempt: 1 } }]);
    expect(receiver.getSnapshot().context.retries).toBe(1);
    await ended(sender);
    expect(sender.getSnapshot().value).toBe('done');
  });

  it('a failed ICE mid-transfer: retry, ICE restart of the open channel, and the transfer carries on', async () => {
    world = createFileDropWorld();
    const data = bytes(1_000_000, 9);
    const gated = gatedSource(data, 500_000);
    const sender = world.sender({ source: gated.source, once: true });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    const sink = memorySink();
    const receiver = world.receiver({ code, sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await gated.held;
    await waitFor(receiver, isReceiving);
    world.rtc.fail((label) => label !== code);
    await waitFor(receiver, () => receiverLog.of('retrying').length === 1);
    await settle();
    gated.release();
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(same(sink.bytes(), data)).toBe(true);
    expect(senderLog.of('retrying')).toHaveLength(1);
    await ended(sender);
  });

  it('gives up after maxRetries ICE restarts: the sender fails rtc-failed, the receiver hears it', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(1000)), once: true, maxRetries: 2 });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    world.rtc.failIce((label) => label !== code, 10);
    // (A receiver that opens fresh connections tries those too: see below.)
    const receiver = world.receiver({ code, sink: memorySink(), maxReconnects: 0 });
    await ended(sender);
    expect(senderLog.of('retrying')).toHaveLength(2);
    expect(errorOf(sender)).toMatchObject({ reason: 'rtc-failed', code: 'ERR_RTC_FAILED' });
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'remote-cancelled', remote: 'rtc-failed' });
    expect(receiver.getSnapshot().context.retries).toBe(2);
    await expectQuiet();
  });

  it('ICE that never works: after each restart that did not help a fresh connection, maxReconnects of them, then rtc-failed', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(1000)), once: true, maxRetries: 2 });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    world.rtc.failIce((label) => label !== code, 20);
    const receiver = world.receiver({ code, sink: memorySink() });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await ended(sender);
    await ended(receiver);
    // Each connection: one restart, and the next retry opens a fresh one (its retries count from 0),
    // three times; the last connection restarts until the sender's two retries are spent.
    expect(receiverLog.of('resuming').map((e) => e.detail.reconnect)).toEqual([1, 2, 3]);
    expect(senderLog.of('retrying').map((e) => e.detail.attempt)).toEqual([1, 2, 1, 2, 1, 2, 1, 2]);
    expect(errorOf(sender)).toMatchObject({ reason: 'rtc-failed' });
    expect(errorOf(receiver)).toMatchObject({ reason: 'remote-cancelled', remote: 'rtc-failed' });
    await expectQuiet();
  });

  it('a receiver with fewer retries than the sender asks for gives up itself and tells the sender', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(1000)), once: true, maxRetries: 5 });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    world.rtc.failIce((label) => label !== code, 10);
    const receiver = world.receiver({ code, sink: memorySink(), maxRetries: 1 });
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'rtc-failed' });
    expect(await servesOn(sender, senderLog)).toMatchObject({ reason: 'remote-cancelled', remote: 'rtc-failed' });
    await stopServing(sender);
  });
});

describe('filedrop: bad files and bad codes', () => {
  it('a digest mismatch (corrupt source): the receiver fails digest-mismatch, aborts its sink and tells the sender', async () => {
    world = createFileDropWorld();
    const data = bytes(100_000, 11);
    const honest = memorySource(data);
    // The source announces the digest of the real bytes and serves one flipped byte.
    const corrupt: FileSource = {
      ...honest,
      async read(offset, length) {
        const block = await honest.read(offset, length);
        if (offset === 0) block[1234] = block[1234]! ^ 0xff;
        return block;
      },
    };
    const sender = world.sender({ source: corrupt, once: true });
    const sink = memorySink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('failed');
    expect(errorOf(receiver)).toMatchObject({ reason: 'digest-mismatch', code: 'ERR_INTEGRITY' });
    await settle();
    expect(sink.state).toBe('aborted');
    // The bytes were not what it announced: this side's file, so the once sender ends with it.
    await ended(sender);
    expect(errorOf(sender)).toMatchObject({ reason: 'remote-cancelled', remote: 'digest-mismatch' });
  });

  it('a source that fails to read: the sender fails source-failed, the receiver hears it', async () => {
    world = createFileDropWorld();
    const source: FileSource = { ...memorySource(bytes(100_000)), read: () => Promise.reject(new Error('disk gone')) };
    const sender = world.sender({ source, once: true });
    const receiver = world.receiver({ code: await codeOf(sender), sink: memorySink() });
    await ended(sender);
    expect(errorOf(sender)).toMatchObject({ reason: 'source-failed', code: 'ERR_IO' });
    expect(errorOf(sender)!.message).toMatch(/disk gone/);
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'remote-cancelled', remote: 'source-failed' });
  });

  it('a sink that refuses the file: the receiver fails sink-failed; the once sender keeps its code for the next receiver', async () => {
    world = createFileDropWorld();
    const data = bytes(10_000, 5);
    const sender = world.sender({ source: memorySource(data), once: true });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    const receiver = world.receiver({
      code,
      sink: () => {
        throw new Error('no space');
      },
    });
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'sink-failed', code: 'ERR_IO' });
    expect(await servesOn(sender, senderLog)).toMatchObject({ reason: 'remote-cancelled', remote: 'sink-failed' });
    // The same code, another try: this one completes, and the once sender ends done with it.
    const sink = memorySink();
    const second = world.receiver({ code, sink });
    await ended(second);
    expect(second.getSnapshot().value).toBe('done');
    expect(same(sink.bytes(), data)).toBe(true);
    await ended(sender);
    expect(sender.getSnapshot().value).toBe('done');
    expect(errorOf(sender)).toBeUndefined();
    expect(senderLog.of('completed')).toHaveLength(1);
    await expectQuiet();
  });

  it('a sink whose write fails: the receiver fails sink-failed', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(100_000)), once: true });
    const senderLog = record<SenderEmitted>(sender);
    const sink = { ...memorySink(), write: () => Promise.reject(new Error('EIO')) };
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'sink-failed' });
    expect(errorOf(receiver)!.message).toMatch(/EIO/);
    expect(await servesOn(sender, senderLog)).toMatchObject({ reason: 'remote-cancelled', remote: 'sink-failed' });
    await stopServing(sender);
  });

  it('a code nobody has: no-such-peer', async () => {
    world = createFileDropWorld();
    const receiver = world.receiver({ code: '22222222', sink: memorySink() });
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'no-such-peer', code: 'ERR_PEER_GONE' });
    await expectQuiet();
  });

  it('a code that cannot be one: invalid-code, without connecting', async () => {
    world = createFileDropWorld();
    const receiver = world.receiver({ code: 'hello0', sink: memorySink() });
    expect(receiver.getSnapshot().value).toBe('failed');
    expect(errorOf(receiver)).toMatchObject({ reason: 'invalid-code', code: 'ERR_INVALID_FIELD' });
    await settle();
    expect(world.server.stats().connections).toBe(0);
  });
});

describe('filedrop: timeouts', () => {
  it('a sender that never answers the request: the receiver fails timeout after responseTimeout', async () => {
    world = createFileDropWorld();
    const mute = await world.network.connect('filedrop');
    const code = await new Promise<string>((resolve) =>
      mute.on('message', (frame) => resolve((clientCodec().decode(frame) as { detail: { peer: string } }).detail.peer)),
    );
    const receiver = world.receiver({ code, sink: memorySink(), responseTimeout: 3000 });
    await waitFor(receiver, (s) => s.matches({ active: 'requesting' }));
    world.clock.increment(2999);
    expect(receiver.getSnapshot().status).toBe('active');
    world.clock.increment(1);
    expect(errorOf(receiver)).toMatchObject({ reason: 'timeout', code: 'ERR_TIMEOUT' });
    mute.close();
  });

  it('a receiver that never offers: the sender fails that transfer after offerTimeout', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(10)), offerTimeout: 4000 });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    const mute = await world.network.connect('filedrop');
    const frames: ServerMessage[] = [];
    mute.on('message', (frame) => frames.push(clientCodec().decode(frame)));
    mute.send(JSON.stringify({ type: 'request', detail: { peer: code } }));
    await waitFor(sender, (s) => Object.keys(s.context.transfers).length === 1);
    world.clock.increment(4000);
    await waitFor(sender, () => senderLog.of('failed').length === 1);
    expect(senderLog.of('failed')[0]!.detail.error).toMatchObject({ reason: 'timeout' });
    await settle();
    // The raw receiver got the file, then the withdrawal.
    expect(frames.map((f) => f.type)).toEqual(['assign', 'response', 'response']);
    expect(frames[2]!.detail).toEqual({ peer: code, data: { error: 'timeout' } });
    mute.close();
  });

  it('a sender that never answers the offer: the receiver fails timeout after connectTimeout and says so', async () => {
    world = createFileDropWorld();
    const fake = await world.network.connect('filedrop');
    const frames: ServerMessage[] = [];
    fake.on('message', (frame) => frames.push(clientCodec().decode(frame)));
    await settle();
    const code = (frames[0] as { detail: { peer: string } }).detail.peer;
    const receiver = world.receiver({ code, sink: memorySink(), connectTimeout: 5000 });
    await until(() => frames.some((f) => f.type === 'request'));
    const receiverId = receiver.getSnapshot().context.id!;
    fake.send(
      JSON.stringify({ type: 'response', detail: { peer: receiverId, data: { name: 'x', size: 1, type: '' } } }),
    );
    await until(() => frames.some((f) => f.type === 'offer'));
    world.clock.increment(5000);
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'timeout' });
    await settle();
    // Its last word, then the server's news that it left.
    expect(frames.slice(-2)).toEqual([
      { type: 'progress', detail: { peer: receiverId, data: { received: 0, total: 1, error: 'timeout' } } },
      { type: 'peer not exists', detail: { peer: receiverId } },
    ]);
    fake.close();
  });
});

describe('filedrop: the signalling connection', () => {
  it('a receiver whose server goes away ends signalling-lost', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(10)) });
    await codeOf(sender);
    world.network.severAll();
    await ended(sender);
    expect(errorOf(sender)).toMatchObject({ reason: 'signalling-lost' });
  });

  it('tells the caller how to provide a missing rtc actor', async () => {
    world = createFileDropWorld();
    const sender = world.sender({ source: memorySource(bytes(10)), once: true });
    const senderLog = record<SenderEmitted>(sender);
    const code = await codeOf(sender);
    const { filedropReceiver } = await import('../machines/filedrop/receiver.machine.js');
    const { fromTransport } = await import('../src/runtime.js');
    const { createActor } = await import('xstate');
    const receiver = createActor(
      filedropReceiver.provide({
        actors: { signalling: fromTransport(() => world.network.connect('filedrop'), clientCodec()) },
      }),
      { input: { code, sink: memorySink() }, clock: world.clock },
    ).start();
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'rtc-failed' });
    expect(errorOf(receiver)!.message).toMatch(/No `rtc` actor was provided: use machine.provide/);
    expect(await servesOn(sender, senderLog)).toMatchObject({ reason: 'remote-cancelled', remote: 'rtc-failed' });
    await stopServing(sender);
  });
});
