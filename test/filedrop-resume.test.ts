/**
 * Resuming a transfer: a receiver whose sink already holds part of the file
 * (an earlier attempt's `.part`, or this transfer's bytes before its data
 * channel was lost) names that `offset` in its offer; the sender starts
 * there, or (a sender that does not know offsets) at 0; the whole file is
 * verified either way. Memory world (memory network, memory WebRTC,
 * SimulatedClock), memory and file sinks.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createActor, waitFor, type AnyActorRef, type SnapshotFrom } from 'xstate';
import { directorySink, fileSink } from '../adapters/fs/index.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import type { FileDropError } from '../machines/filedrop/errors.js';
import { filedropReceiver, type ReceiverEmitted, type ReceiverInput } from '../machines/filedrop/receiver.machine.js';
import type { filedropSenderTransfer, SenderEmitted } from '../machines/filedrop/sender.machine.js';
import { CHUNK_SIZE } from '../machines/transfer/chunks.js';
import { memorySink, memorySource, sha256Hex, type FileSource } from '../machines/transfer/files.js';
import type { Transport } from '../src/transport.js';
import { fromTransport } from '../src/runtime.js';
import { createFileDropWorld, type FileDropWorld } from '../testing/index.js';
import { bytes } from './filedrop-helpers.js';
import { settle } from './socket-helpers.js';

let world: FileDropWorld;
afterEach(async () => {
  await world?.close();
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'signalbox-resume-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

type Sender = ReturnType<FileDropWorld['sender']>;
type Receiver = ReturnType<FileDropWorld['receiver']>;

function record<E extends { type: string }>(actor: AnyActorRef) {
  const events: E[] = [];
  actor.on('*', (e: E) => events.push(e));
  return {
    events,
    of: <T extends E['type']>(type: T) => events.filter((e): e is Extract<E, { type: T }> => e.type === type),
  };
}

/** A source that counts the bytes read from it, and holds every read from `holdAt` on until `release()`. */
function watchedSource(data: Uint8Array, init: Parameters<typeof memorySource>[1] = {}, holdAt = Infinity) {
  const inner = memorySource(data, init);
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let reached!: () => void;
  const held = new Promise<void>((resolve) => (reached = resolve));
  const reads: Array<[offset: number, length: number]> = [];
  const source: FileSource = {
    ...inner,
    async read(offset, length) {
      reads.push([offset, length]);
      if (offset >= holdAt) {
        reached();
        await gate;
      }
      return inner.read(offset, length);
    },
  };
  return { source, reads, release: () => open(), held };
}

const codeOf = async (sender: Sender) => (await waitFor(sender, (s) => s.context.id !== undefined)).context.id!;
const ended = (actor: Sender | Receiver) => waitFor(actor, (s) => s.status === 'done');
const errorOf = (actor: Sender | Receiver) => actor.getSnapshot().context.error as FileDropError | undefined;
const same = (a: Uint8Array, b: Uint8Array) => Buffer.compare(a, b) === 0;

function transferOf(sender: Sender): SnapshotFrom<typeof filedropSenderTransfer> | undefined {
  const children = sender.getSnapshot().children as Record<string, AnyActorRef | undefined>;
  const id = Object.keys(children).find((key) => key.startsWith('transfer:'));
  return id ? (children[id]!.getSnapshot() as SnapshotFrom<typeof filedropSenderTransfer>) : undefined;
}

/**
 * A receiver in `world` whose offers lose their `offset` on the way out: to the sender it is a
 * receiver that never asks to resume, so the sender answers as one that does not know offsets
 * would, from byte 0.
 */
function receiverWithoutOffsets(input: ReceiverInput) {
  const codec = clientCodec();
  const stripping = {
    ...codec,
    encode(message: Parameters<typeof codec.encode>[0]) {
      if (message.type === 'offer') {
        const { offset: _, ...data } = message.detail.data;
        return codec.encode({ ...message, detail: { ...message.detail, data } });
      }
      return codec.encode(message);
    },
  };
  const logic = filedropReceiver.provide({
    actors: {
      signalling: fromTransport(() => world.network.connect('filedrop', { path: '/filedrop' }), stripping),
      rtc: world.rtc.rtc,
    },
  });
  return createActor(logic, { clock: world.clock, input }).start();
}

const SIZE = 300_000;
/** What an earlier attempt left: 6 whole chunks and a bit (the bit is dropped: chunks are whole). */
const STORED = 6 * CHUNK_SIZE + 1000;
const RESUMED_AT = 6 * CHUNK_SIZE;

describe('filedrop: a receiver resumes what its sink holds', () => {
  it('asks for the rest from the last whole chunk; the sender reads and sends only that; the whole file is verified', async () => {
    world = createFileDropWorld();
    const data = bytes(SIZE, 21);
    const watched = watchedSource(data, { name: 'r.bin' });
    const sender = world.sender({ source: watched.source, once: true });
    const senderLog = record<SenderEmitted>(sender);
    const sink = memorySink({ stored: data.subarray(0, STORED) });
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await ended(receiver);
    await ended(sender);

    expect(receiver.getSnapshot().value).toBe('done');
    expect(sender.getSnapshot().value).toBe('done');
    expect(same(sink.bytes(), data)).toBe(true);
    expect(receiverLog.of('resuming')).toEqual([
      { type: 'resuming', detail: { offset: RESUMED_AT, total: SIZE, reconnect: 0 } },
    ]);
    expect(receiverLog.of('resumed')).toEqual([{ type: 'resumed', detail: { offset: RESUMED_AT } }]);
    const receiverId = receiver.getSnapshot().context.id!;
    expect(senderLog.of('resuming')).toEqual([
      { type: 'resuming', detail: { peer: receiverId, offset: RESUMED_AT, reconnect: false } },
    ]);
    // The sender never read what the receiver had (its digest was known up front).
    expect(Math.min(...watched.reads.map(([offset]) => offset))).toBe(RESUMED_AT);
    // Verified against the digest of the whole file, the part that was already there included.
    expect(receiverLog.of('completed')[0]!.detail).toMatchObject({ sha256: sha256Hex(data), verified: true });
  });

  it('with a digest that follows in done (trailer), the sender hashes the part it skips, and the file is verified', async () => {
    world = createFileDropWorld();
    const data = bytes(SIZE, 22);
    const watched = watchedSource(data, { name: 't.bin', sha256: false });
    const sender = world.sender({ source: watched.source, once: true });
    const sink = memorySink({ stored: data.subarray(0, STORED) });
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await ended(receiver);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(receiver.getSnapshot().context.file).toMatchObject({ trailer: 'sha256' });
    expect(receiverLog.of('completed')[0]!.detail).toMatchObject({ sha256: sha256Hex(data), verified: true });
    expect(same(sink.bytes(), data)).toBe(true);
  });

  it('a corrupted part is caught by the whole-file digest: digest-mismatch, and the sink is aborted, not kept', async () => {
    world = createFileDropWorld();
    const data = bytes(SIZE, 23);
    const sender = world.sender({ source: memorySource(data, { name: 'c.bin' }), once: true });
    const senderLog = record<SenderEmitted>(sender);
    const corrupt = data.slice(0, STORED);
    corrupt[1234] = corrupt[1234]! ^ 0xff;
    const sink = memorySink({ stored: corrupt });
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    await ended(receiver);
    await ended(sender);
    expect(receiver.getSnapshot().value).toBe('failed');
    expect(errorOf(receiver)).toMatchObject({ reason: 'digest-mismatch', code: 'ERR_INTEGRITY' });
    expect(errorOf(receiver)!.message).toMatch(/SHA-256 of the 300000 bytes/);
    await settle();
    expect(sink.state).toBe('aborted');
    // The sender hears why.
    expect(senderLog.of('failed')[0]!.detail.error).toMatchObject({
      reason: 'remote-cancelled',
      remote: 'digest-mismatch',
    });
  });

  it('a sender that ignores the offset sends from byte 0: the receiver starts over and the file is right', async () => {
    world = createFileDropWorld();
    const data = bytes(SIZE, 24);
    const sender = world.sender({ source: memorySource(data, { name: 'o.bin' }), once: true });
    const senderLog = record<SenderEmitted>(sender);
    // Not the file's first bytes: if the receiver kept them, the file would be wrong.
    const sink = memorySink({ stored: bytes(STORED, 99) });
    const receiver = receiverWithoutOffsets({ code: await codeOf(sender), sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await waitFor(receiver, (s) => s.status === 'done');
    await ended(sender);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(senderLog.of('resuming')).toEqual([]);
    expect(receiverLog.of('resumed')).toEqual([{ type: 'resumed', detail: { offset: 0 } }]);
    expect(same(sink.bytes(), data)).toBe(true);
    expect(receiverLog.of('completed')[0]!.detail).toMatchObject({ sha256: sha256Hex(data), verified: true });
    receiver.stop();
  });
});

describe('filedrop: a lost data channel is carried over by a fresh connection', () => {
  it('the channel closes mid-transfer: the receiver reconnects, resumes at what it stored, and the file arrives whole', async () => {
    world = createFileDropWorld();
    const size = 1024 * 1024;
    const data = bytes(size, 25);
    const half = 512 * 1024;
    const watched = watchedSource(data, { name: 'd.bin' }, half);
    const sender = world.sender({ source: watched.source, once: true });
    const senderLog = record<SenderEmitted>(sender);
    const sink = memorySink();
    const receiver = world.receiver({ code: await codeOf(sender), sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await watched.held;
    await waitFor(receiver, (s) => s.context.received === half);

    // The sender's end of the data channel closes: the receiver sees its channel closed by the remote.
    (transferOf(sender)!.context.transport as Transport).close();
    await waitFor(receiver, (s) => s.context.reconnects === 1);
    watched.release();
    await ended(receiver);
    await ended(sender);

    expect(receiver.getSnapshot().value).toBe('done');
    expect(sender.getSnapshot().value).toBe('done');
    expect(same(sink.bytes(), data)).toBe(true);
    expect(receiverLog.of('resuming')).toEqual([
      { type: 'resuming', detail: { offset: half, total: size, reconnect: 1 } },
    ]);
    expect(receiverLog.of('resumed')).toEqual([{ type: 'resumed', detail: { offset: half } }]);
    expect(senderLog.of('resuming')).toEqual([
      {
        type: 'resuming',
        detail: { peer: receiver.getSnapshot().context.id, offset: half, reconnect: true },
      },
    ]);
    expect(receiverLog.of('completed')[0]!.detail).toMatchObject({ sha256: sha256Hex(data), verified: true });
    await settle();
    expect(world.rtc.open).toBe(0);
  });

  it('gives up after maxReconnects fresh connections in a row that carry nothing', async () => {
    world = createFileDropWorld();
    const data = bytes(SIZE, 26);
    const watched = watchedSource(data, { name: 'g.bin' }, 0);
    const sender = world.sender({ source: watched.source, once: true, lostTimeout: 1000 });
    const receiver = world.receiver({
      code: await codeOf(sender),
      sink: memorySink(),
      maxReconnects: 2,
      lostTimeout: 1000,
    });
    for (let n = 1; n <= 3; n++) {
      await waitFor(receiver, (s) => s.matches({ active: { engaged: { transferring: 'receiving' } } }));
      await waitFor(sender, () => transferOf(sender)?.value === 'sending');
      (transferOf(sender)!.context.transport as Transport).close();
      if (n <= 2) await waitFor(receiver, (s) => s.context.reconnects === n);
    }
    await waitFor(receiver, (s) => s.matches({ active: { engaged: 'lost' } }));
    world.clock.increment(1000);
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'peer-gone' });
    watched.release();
  });
});

describe('filedrop: resuming into a file sink', () => {
  it('fileSink with resume records the file, keeps the .part on keep(), and a later sink resumes it', async () => {
    const target = join(dir, 'kept.bin');
    const file = { name: 'kept.bin', size: 10, type: '' };
    const first = await fileSink(target, { resume: file });
    await first.write(new Uint8Array([1, 2, 3, 4]));
    await first.keep!(new Error('connection lost'));
    expect(await readFile(`${target}.part`)).toEqual(Buffer.from([1, 2, 3, 4]));
    expect(JSON.parse(await readFile(`${target}.part.json`, 'utf8'))).toEqual({ name: 'kept.bin', size: 10 });

    // Another file under the same name is not resumed into that part.
    await expect(fileSink(target, { resume: { ...file, size: 11 } })).rejects.toThrow(/EEXIST.*part of another file/);
    await expect(fileSink(target)).rejects.toThrow(/EEXIST/);

    const again = await fileSink(target, { resume: file });
    expect(await again.size()).toBe(4);
    expect(await again.read(1, 2)).toEqual(new Uint8Array([2, 3]));
    await again.truncate(2);
    await again.write(new Uint8Array([7, 8, 9]));
    await again.close();
    expect(await readFile(target)).toEqual(Buffer.from([1, 2, 7, 8, 9]));
    expect((await readdir(dir)).filter((n) => n.startsWith('kept.bin'))).toEqual(['kept.bin']);
  });

  it('a .part without its record is not resumed', async () => {
    const target = join(dir, 'stray.bin');
    await writeFile(`${target}.part`, 'someone else');
    await expect(fileSink(target, { resume: { name: 'stray.bin', size: 12, type: '' } })).rejects.toThrow(
      /EEXIST.*not known to be a part of this one/,
    );
  });

  it('a receiver that cancelled keeps its .part; the next one resumes it; a corrupted one is removed', async () => {
    world = createFileDropWorld();
    const out = join(dir, 'downloads');
    const data = bytes(SIZE, 27);
    // Reads are 256 KiB: the first goes out whole, the second waits.
    const watched = watchedSource(data, { name: 'big.bin' }, 256 * 1024);
    // Serves every receiver: the next attempt finds it.
    const sender = world.sender({ source: watched.source });
    const code = await codeOf(sender);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(out, { recursive: true });

    const first = world.receiver({ code, sink: directorySink(out, { resume: true }) });
    await watched.held;
    await waitFor(first, (s) => s.context.received === 256 * 1024);
    first.send({ type: 'cancel' });
    await ended(first);
    await new Promise((r) => setTimeout(r, 50));
    // The first 256 KiB reached the disk; the part and its record stay.
    const part = await readFile(join(out, 'big.bin.part'));
    expect(part.byteLength).toBe(256 * 1024);
    expect(JSON.parse(await readFile(join(out, 'big.bin.part.json'), 'utf8'))).toMatchObject({ size: SIZE });
    expect(same(part, data.subarray(0, part.byteLength))).toBe(true);
    watched.release();

    const second = world.receiver({ code, sink: directorySink(out, { resume: true }) });
    const secondLog = record<ReceiverEmitted>(second);
    await ended(second);
    expect(second.getSnapshot().value).toBe('done');
    expect(secondLog.of('resumed')).toEqual([{ type: 'resumed', detail: { offset: 256 * 1024 } }]);
    expect(same(await readFile(join(out, 'big.bin')), data)).toBe(true);
    expect((await readdir(out)).sort()).toEqual(['big.bin']);

    // A part whose bytes went bad: the whole-file digest catches it, and nothing is kept.
    await rm(join(out, 'big.bin'));
    const bad = Buffer.from(data.subarray(0, 4 * CHUNK_SIZE));
    bad[100] = bad[100]! ^ 1;
    await writeFile(join(out, 'big.bin.part'), bad);
    await writeFile(join(out, 'big.bin.part.json'), JSON.stringify({ name: 'big.bin', size: SIZE }));
    const third = world.receiver({ code, sink: directorySink(out, { resume: true }) });
    await ended(third);
    expect(errorOf(third)).toMatchObject({ reason: 'digest-mismatch' });
    // The sink's abort runs on after the receiver ended (file system calls).
    for (let i = 0; i < 50 && (await readdir(out)).length > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await readdir(out)).toEqual([]);
  });
});

/**
 * `transport` as its user sees it, with `drop()`: the user's end closes (1006, as a network
 * that went away) while the server's end stays open and hears nothing, as when only the
 * client noticed the loss.
 */
function droppable(transport: Transport): { view: Transport; drop: () => void } {
  let dropped = false;
  const closeHandlers = new Set<(info: { code: number; reason: string; initiator: 'remote' }) => void>();
  const view: Transport = {
    get isOpen() {
      return !dropped && transport.isOpen;
    },
    get bufferedAmount() {
      return transport.bufferedAmount;
    },
    send: (frame) => {
      if (!dropped) transport.send(frame);
    },
    on(type, handler) {
      if (type === 'close') closeHandlers.add(handler as never);
      const off = transport.on(type, (event) => {
        if (!dropped) (handler as (e: typeof event) => void)(event);
      });
      return () => {
        closeHandlers.delete(handler as never);
        off();
      };
    },
    close: (code, reason) => {
      if (!dropped) transport.close(code, reason);
    },
  };
  const drop = () => {
    dropped = true;
    for (const handler of closeHandlers) handler({ code: 1006, reason: '', initiator: 'remote' });
  };
  return { view, drop };
}

/**
 * A receiver in `world` whose signalling connections are kept in `links` (the newest last), so a
 * test can cut one; while `refuse` is set, opening a new one fails as with a server that is down.
 */
function receiverWithLinks(input: ReceiverInput) {
  const links: Transport[] = [];
  const control = { refuse: false, drops: [] as Array<() => void> };
  const logic = filedropReceiver.provide({
    actors: {
      signalling: fromTransport(async () => {
        if (control.refuse) throw new Error('connect ECONNREFUSED 127.0.0.1:8080');
        const transport = await world.network.connect('filedrop', { path: '/filedrop' });
        links.push(transport);
        const { view, drop } = droppable(transport);
        control.drops.push(drop);
        return view;
      }, clientCodec()),
      rtc: world.rtc.rtc,
    },
  });
  const actor = createActor(logic, { clock: world.clock, input }).start();
  return { actor, links, control };
}

describe('filedrop: a lost server connection is carried over by a new one', () => {
  it("the receiver's socket is cut mid-transfer: it reconnects, asks the same code again, resumes, and the file is whole", async () => {
    world = createFileDropWorld();
    const size = 1024 * 1024;
    const data = bytes(size, 28);
    const half = 512 * 1024;
    // The digest follows in `done` (as with `signalbox send`): the new transfer hashes what it skips.
    const watched = watchedSource(data, { name: 's.bin', sha256: false }, half);
    const sender = world.sender({ source: watched.source, once: true });
    const senderLog = record<SenderEmitted>(sender);
    const sink = memorySink();
    const { actor: receiver, links } = receiverWithLinks({ code: await codeOf(sender), sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await watched.held;
    await waitFor(receiver, (s) => s.context.received === half);
    const firstId = receiver.getSnapshot().context.id!;

    world.network.sever(links[0]!);
    await waitFor(receiver, (s) => s.matches('rejoining'));
    // The server told the sender its receiver left: that transfer ends, the code stays.
    await waitFor(sender, () => senderLog.of('failed').length === 1);
    expect(senderLog.of('failed')[0]!.detail).toMatchObject({ peer: firstId, error: { reason: 'peer-gone' } });
    expect(sender.getSnapshot().status).toBe('active');
    expect(receiverLog.of('rejoining')).toEqual([
      {
        type: 'rejoining',
        detail: {
          attempt: 1,
          maxRejoins: 5,
          delay: 1000,
          error: expect.objectContaining({ reason: 'signalling-lost' }),
        },
      },
    ]);
    // Nothing happens before the delay is up.
    world.clock.increment(999);
    await settle();
    expect(links).toHaveLength(1);
    world.clock.increment(1);
    watched.release();
    await ended(receiver);
    await ended(sender);

    expect(receiver.getSnapshot().value).toBe('done');
    expect(sender.getSnapshot().value).toBe('done');
    expect(links).toHaveLength(2);
    const secondId = receiver.getSnapshot().context.id!;
    expect(secondId).not.toBe(firstId);
    expect(receiverLog.of('rejoined')).toEqual([{ type: 'rejoined', detail: { id: secondId } }]);
    // One `file` event: the sink was opened once and resumed, not opened again.
    expect(receiverLog.of('file')).toHaveLength(1);
    expect(receiverLog.of('resuming')).toEqual([
      { type: 'resuming', detail: { offset: half, total: size, reconnect: 0 } },
    ]);
    expect(receiverLog.of('resumed')).toEqual([{ type: 'resumed', detail: { offset: half } }]);
    expect(senderLog.of('resuming')).toEqual([
      { type: 'resuming', detail: { peer: secondId, offset: half, reconnect: false } },
    ]);
    expect(same(sink.bytes(), data)).toBe(true);
    expect(receiverLog.of('completed')[0]!.detail).toMatchObject({ sha256: sha256Hex(data), verified: true });
    await settle();
    expect(world.rtc.open).toBe(0);
  });

  it('backs off 1, 2, 4 s between tries while the server is unreachable, and after maxRejoins ends signalling-lost, keeping the .part', async () => {
    world = createFileDropWorld();
    const out = join(dir, 'rejoin');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(out, { recursive: true });
    const data = bytes(SIZE, 29);
    const watched = watchedSource(data, { name: 'u.bin' }, 256 * 1024);
    const sender = world.sender({ source: watched.source, once: true });
    const {
      actor: receiver,
      links,
      control,
    } = receiverWithLinks({
      code: await codeOf(sender),
      sink: directorySink(out, { resume: true }),
      maxRejoins: 3,
    });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await watched.held;
    await waitFor(receiver, (s) => s.context.received === 256 * 1024);

    control.refuse = true;
    world.network.sever(links[0]!);
    for (const delay of [1000, 2000, 4000]) {
      await waitFor(receiver, () => receiverLog.of('rejoining').length === Math.log2(delay / 1000) + 1);
      expect(receiver.getSnapshot().value).toBe('rejoining');
      world.clock.increment(delay);
    }
    await ended(receiver);
    expect(receiverLog.of('rejoining').map((e) => e.detail.delay)).toEqual([1000, 2000, 4000]);
    expect(errorOf(receiver)).toMatchObject({ reason: 'signalling-lost', message: /ECONNREFUSED/ });
    expect(links).toHaveLength(1);
    // Kept for the next attempt.
    for (let i = 0; i < 50 && !(await readdir(out)).includes('u.bin.part.json'); i++) await settle();
    expect((await readFile(join(out, 'u.bin.part'))).byteLength).toBe(256 * 1024);
    watched.release();
  });

  it('a sink that cannot resume does not reconnect: signalling-lost at once', async () => {
    world = createFileDropWorld();
    const data = bytes(SIZE, 30);
    const watched = watchedSource(data, { name: 'n.bin' }, 128 * 1024);
    const sender = world.sender({ source: watched.source, once: true });
    const sink = memorySink();
    const plain = {
      write: sink.write.bind(sink),
      close: sink.close.bind(sink),
      abort: sink.abort.bind(sink),
    };
    const { actor: receiver, links } = receiverWithLinks({ code: await codeOf(sender), sink: plain });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await watched.held;
    world.network.sever(links[0]!);
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'signalling-lost' });
    expect(receiverLog.of('rejoining')).toEqual([]);
    watched.release();
  });

  it('the code now offers another file: the receiver ends peer-gone and takes none of it', async () => {
    // The ids the server gives out, in order of connection: the second sender gets the first one's code.
    const ids = ['K7PQ2MZA', 'R2222222', 'K7PQ2MZA', 'R3333333'];
    world = createFileDropWorld({ server: { generateId: () => ids.shift() ?? 'Z9999999' } });
    const data = bytes(SIZE, 31);
    const watched = watchedSource(data, { name: 'a.bin' }, 256 * 1024);
    const sender = world.sender({ source: watched.source, once: true });
    const code = await codeOf(sender);
    const sink = memorySink();
    const { actor: receiver, links } = receiverWithLinks({ code, sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await watched.held;
    await waitFor(receiver, (s) => s.context.received === 256 * 1024);
    world.network.sever(links[0]!);
    await waitFor(receiver, (s) => s.matches('rejoining'));
    sender.send({ type: 'cancel' });
    await ended(sender);
    const other = world.sender({ source: memorySource(bytes(SIZE + 1, 32), { name: 'a.bin' }), once: true });
    expect(await codeOf(other)).toBe(code);
    world.clock.increment(1000);
    await ended(receiver);
    expect(errorOf(receiver)).toMatchObject({ reason: 'peer-gone', message: /now offers another file/ });
    expect(receiverLog.of('rejoined')).toEqual([]);
    expect(sink.bytes().byteLength).toBe(256 * 1024);
    watched.release();
  });

  it('only the receiver noticed the loss: the once sender answers busy until it gives up the old transfer, then resumes', async () => {
    world = createFileDropWorld();
    const data = bytes(SIZE, 33);
    const watched = watchedSource(data, { name: 'b.bin' }, 256 * 1024);
    const sender = world.sender({ source: watched.source, once: true, lostTimeout: 1500 });
    const senderLog = record<SenderEmitted>(sender);
    const sink = memorySink();
    const { actor: receiver, links, control } = receiverWithLinks({ code: await codeOf(sender), sink });
    const receiverLog = record<ReceiverEmitted>(receiver);
    await watched.held;
    await waitFor(receiver, (s) => s.context.received === 256 * 1024);

    control.drops[0]!();
    await waitFor(receiver, (s) => s.matches('rejoining'));
    world.clock.increment(1000);
    // The server still holds the old connection, and the sender its transfer (its channel is lost).
    await waitFor(receiver, () => receiverLog.of('rejoining').length === 2);
    expect(receiverLog.of('rejoining')[1]!.detail).toMatchObject({
      attempt: 2,
      delay: 2000,
      error: { reason: 'busy' },
    });
    expect(senderLog.of('failed')).toEqual([]);
    world.clock.increment(1500);
    await waitFor(sender, () => senderLog.of('failed').length === 1);
    expect(senderLog.of('failed')[0]!.detail.error).toMatchObject({ reason: 'peer-gone' });
    world.clock.increment(500);
    watched.release();
    await ended(receiver);
    await ended(sender);
    expect(receiver.getSnapshot().value).toBe('done');
    expect(sender.getSnapshot().value).toBe('done');
    expect(links).toHaveLength(3);
    expect(receiverLog.of('resumed')).toEqual([{ type: 'resumed', detail: { offset: 256 * 1024 } }]);
    expect(same(sink.bytes(), data)).toBe(true);
  });
});
