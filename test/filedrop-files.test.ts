import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createActor, sendTo, setup, type AnyEventObject } from 'xstate';
import { directorySink, fileSink, fileSource } from '../adapters/fs/index.js';
import { memoryPair } from '../adapters/memory/index.js';
import { CHUNK_SIZE, decodeChunk, encodeChunk } from '../machines/transfer/chunks.js';
import {
  blobSource,
  memorySink,
  memorySource,
  safeFileName,
  sha256Hex,
  sha256OfSource,
  sha256Stream,
} from '../machines/transfer/files.js';
import { generatePeerId, isPeerId, normalizeCode, PEER_ID_ALPHABET } from '../machines/filedrop/protocol.js';
import { download, upload } from '../machines/transfer/transfer.js';
import type { FileInfo } from '../machines/filedrop/protocol.js';
import type { Frame, Transport } from '../src/transport.js';
import { settle } from './socket-helpers.js';
import { bytes } from './filedrop-helpers.js';

describe('peer ids', () => {
  it('are 8 characters of the alphabet, spread over all of it', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 500; i++) {
      const id = generatePeerId();
      expect(isPeerId(id)).toBe(true);
      for (const c of id) seen.add(c);
    }
    expect([...seen].sort().join('')).toBe([...PEER_ID_ALPHABET].sort().join(''));
  });

  it('are typed back in any case, with spaces or dashes', () => {
    expect(normalizeCode(' k7pq-2mza ')).toBe('K7PQ2MZA');
    expect(isPeerId(normalizeCode('k7pq 2mza'))).toBe(true);
    expect(isPeerId('K7PQ2MZ')).toBe(false);
    expect(isPeerId('K7PQ2MZO')).toBe(false);
    expect(isPeerId(12345678)).toBe(false);
  });
});

describe('chunks', () => {
  it('carry a 4-byte big-endian sequence number before the data', () => {
    const frame = encodeChunk(0x01020304, new Uint8Array([9, 8]));
    expect(frame).toEqual(new Uint8Array([1, 2, 3, 4, 9, 8]));
    expect(decodeChunk(frame)).toEqual({ seq: 0x01020304, data: new Uint8Array([9, 8]) });
    expect(decodeChunk(encodeChunk(0xffffffff, new Uint8Array(CHUNK_SIZE)))).toMatchObject({ seq: 0xffffffff });
  });

  it('hold at most 16 KiB of data', () => {
    expect(() => encodeChunk(0, new Uint8Array(CHUNK_SIZE + 1))).toThrow(/at most 16384 bytes/);
    expect(decodeChunk(new Uint8Array(4 + CHUNK_SIZE + 1))).toEqual({ invalid: expect.stringMatching(/over 16384/) });
    expect(decodeChunk(new Uint8Array(3))).toEqual({ invalid: expect.stringMatching(/no sequence number/) });
  });
});

describe('sources, sinks and digests', () => {
  it('hashes incrementally to the same SHA-256 as at once (and the known value)', async () => {
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
    const data = bytes(100_000);
    const hash = sha256Stream();
    for (let at = 0; at < data.length; at += 7777) hash.update(data.subarray(at, at + 7777));
    expect(hash.hex()).toBe(sha256Hex(data));
    expect(await sha256OfSource(memorySource(data, { sha256: false }), 4096)).toBe(sha256Hex(data));
  });

  it('memorySource reads ranges and announces its digest unless told otherwise', async () => {
    const data = bytes(1000);
    const source = memorySource(data, { name: 'n', type: 't' });
    expect(source).toMatchObject({ name: 'n', type: 't', size: 1000, sha256: sha256Hex(data) });
    expect(await source.read(10, 5)).toEqual(data.slice(10, 15));
    expect(memorySource(data, { sha256: false })).not.toHaveProperty('sha256');
    expect(memorySource(data, { sha256: 'f'.repeat(64) }).sha256).toBe('f'.repeat(64));
  });

  it('blobSource reads a Blob slice by slice', async () => {
    const data = bytes(5000);
    const source = blobSource(new File([data as Uint8Array<ArrayBuffer>], 'photo.jpg', { type: 'image/jpeg' }));
    expect(source).toMatchObject({ name: 'photo.jpg', size: 5000, type: 'image/jpeg' });
    expect(await source.read(4000, 1000)).toEqual(data.slice(4000));
  });

  it('memorySink keeps what is written, and an abort after close changes nothing', () => {
    const sink = memorySink();
    sink.write(new Uint8Array([1]));
    sink.write(new Uint8Array([2, 3]));
    sink.close();
    sink.abort('late');
    expect(sink.state).toBe('closed');
    expect(sink.bytes()).toEqual(new Uint8Array([1, 2, 3]));
    const aborted = memorySink();
    aborted.abort('why');
    expect(aborted).toMatchObject({ state: 'aborted', reason: 'why' });
    expect(() => aborted.write(new Uint8Array(1))).toThrow(/aborted/);
  });

  it('safeFileName keeps the last segment and refuses names that walk out of the directory', () => {
    expect(safeFileName('../../etc/passwd')).toBe('passwd');
    expect(safeFileName('C:\\Users\\x\\a.txt')).toBe('a.txt');
    expect(safeFileName('..')).toBe('download');
    expect(safeFileName('a/')).toBe('download');
    expect(safeFileName('a\u0000b?.txt')).toBe('a_b_.txt');
    expect(safeFileName('x'.repeat(300) + '.txt')).toHaveLength(255);
  });
});

describe('Node file sources and sinks (signalbox/fs)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'signalbox-fs-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fileSource reads ranges of a file and announces its streamed SHA-256', async () => {
    const data = bytes(3 * 1024 * 1024 + 17);
    await writeFile(join(dir, 'big.bin'), data);
    const source = await fileSource(join(dir, 'big.bin'));
    try {
      expect(source).toMatchObject({ name: 'big.bin', size: data.length, type: 'application/octet-stream' });
      expect(source.sha256).toBe(sha256Hex(data));
      expect(await source.read(1_000_000, 10)).toEqual(data.slice(1_000_000, 1_000_010));
    } finally {
      await source.close!();
    }
    const named = await fileSource(join(dir, 'big.bin'), { name: 'x.png', sha256: false });
    expect(named).toMatchObject({ name: 'x.png', type: 'application/octet-stream' });
    expect(named).not.toHaveProperty('sha256');
    await named.close!();
    await writeFile(join(dir, 'a.png'), data.slice(0, 10));
    const png = await fileSource(join(dir, 'a.png'), { sha256: false });
    expect(png.type).toBe('image/png');
    await png.close!();
    await expect(fileSource(dir)).rejects.toThrow(/not a regular file/);
    await expect(fileSource(join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
  });

  it('fileSink writes to a .part file and renames it on close', async () => {
    const target = join(dir, 'out.bin');
    const sink = await fileSink(target);
    await sink.write(new Uint8Array([1, 2]));
    await sink.write(new Uint8Array([3]));
    expect(await readdir(dir)).toEqual(['out.bin.part']);
    await sink.close();
    await sink.abort('late: ignored');
    expect(await readdir(dir)).toEqual(['out.bin']);
    expect(new Uint8Array(await readFile(target))).toEqual(new Uint8Array([1, 2, 3]));
    await expect(fileSink(target)).rejects.toThrow(/EEXIST/);
    const again = await fileSink(target, { overwrite: true });
    await again.write(new Uint8Array([7]));
    await again.close();
    expect(new Uint8Array(await readFile(target))).toEqual(new Uint8Array([7]));
  });

  it('fileSink leaves nothing behind when aborted, even with a write in flight', async () => {
    const sink = await fileSink(join(dir, 'gone.bin'));
    const write = sink.write(new Uint8Array(100_000));
    await sink.abort('cancelled');
    await write;
    expect(await readdir(dir)).toEqual([]);
    await expect(sink.write(new Uint8Array(1))).rejects.toThrow(/aborted/);
  });

  it('fileSink whose commit fails (the rename) leaves no .part behind once aborted', async () => {
    const target = join(dir, 'taken');
    const sink = await fileSink(target);
    await sink.write(new Uint8Array([1, 2, 3]));
    // Something takes the name while the file comes in: renaming a file onto a directory fails.
    await mkdir(join(target, 'inside'), { recursive: true });
    await expect(sink.close()).rejects.toThrow();
    await sink.abort('sink-failed');
    expect(await readdir(dir)).toEqual(['taken']);
    await expect(sink.write(new Uint8Array(1))).rejects.toThrow(/aborted/);
  });

  it('directorySink puts each file in the directory under a safe name', async () => {
    const open = directorySink(dir);
    const sink = await open({ name: '../../escape.txt', size: 1, type: '' });
    await sink.write(new Uint8Array([65]));
    await sink.close();
    expect(await readdir(dir)).toEqual(['escape.txt']);
  });
});

/** Runs the `download` actor under a parent that records what it reports. */
function downloading(file: FileInfo, sink = memorySink(), trailer?: { sha256?: string }) {
  const [near, far] = memoryPair();
  const events: AnyEventObject[] = [];
  const parent = setup({ actors: { download } }).createMachine({
    invoke: { id: 'download', src: 'download', input: { transport: far, sink, file, reportEvery: 10, trailer } },
    on: {
      trailer: {
        actions: sendTo('download', ({ event }) => ({ type: 'download.trailer', trailer: event.trailer })),
      },
      '*': { actions: ({ event }) => events.push(event) },
    },
  });
  const actor = createActor(parent).start();
  const sendTrailer = (value: { sha256?: string }) => actor.send({ type: 'trailer', trailer: value });
  return { send: (frame: Frame) => near.send(frame), events, sink, actor, sendTrailer };
}

describe('the download actor', () => {
  const file = (size: number, data?: Uint8Array): FileInfo => ({
    name: 'f',
    size,
    type: '',
    ...(data && { sha256: sha256Hex(data) }),
  });

  it('writes chunks in order, reports progress every reportEvery bytes, checks the digest and closes the sink', async () => {
    const data = bytes(25);
    const d = downloading(file(25, data));
    d.send(encodeChunk(0, data.subarray(0, 12)));
    d.send(encodeChunk(1, data.subarray(12, 20)));
    d.send(encodeChunk(2, data.subarray(20)));
    await settle();
    expect(d.events).toEqual([
      { type: 'download.arrived', received: 25 },
      { type: 'download.progress', received: 12 },
      { type: 'download.progress', received: 25 },
      { type: 'download.done', received: 25, sha256: sha256Hex(data), verified: true },
    ]);
    expect(d.sink.state).toBe('closed');
    expect(d.sink.bytes()).toEqual(data);
  });

  it('checks only the size when no digest was announced, and says so', async () => {
    const data = bytes(5);
    const d = downloading(file(5));
    d.send(encodeChunk(0, data));
    await settle();
    expect(d.events.at(-1)).toEqual({ type: 'download.done', received: 5, sha256: sha256Hex(data), verified: false });
    expect(d.sink.state).toBe('closed');
  });

  describe("a digest that follows in the sender's done (trailer)", () => {
    const trailed = (size: number): FileInfo => ({ name: 'f', size, type: '', trailer: 'sha256' });

    it('waits for it once every byte is written, then checks it and closes the sink', async () => {
      const data = bytes(5);
      const d = downloading(trailed(5));
      d.send(encodeChunk(0, data));
      await settle();
      expect(d.events.map((e) => e.type)).toEqual(['download.arrived', 'download.progress']);
      expect(d.sink.state).toBe('open');
      d.sendTrailer({ sha256: sha256Hex(data) });
      await settle();
      expect(d.events.at(-1)).toEqual({ type: 'download.done', received: 5, sha256: sha256Hex(data), verified: true });
      expect(d.sink.state).toBe('closed');
    });

    it('takes one that came before the download started', async () => {
      const data = bytes(5);
      const d = downloading(trailed(5), memorySink(), { sha256: sha256Hex(data) });
      d.send(encodeChunk(0, data));
      await settle();
      expect(d.events.at(-1)).toMatchObject({ type: 'download.done', verified: true });
    });

    it('fails digest-mismatch on a wrong one, and protocol on a done without one', async () => {
      const wrong = downloading(trailed(5));
      wrong.send(encodeChunk(0, bytes(5)));
      wrong.sendTrailer({ sha256: '0'.repeat(64) });
      const none = downloading(trailed(5));
      none.send(encodeChunk(0, bytes(5)));
      await settle();
      none.sendTrailer({});
      await settle();
      expect(wrong.events.at(-1)).toMatchObject({ type: 'download.failed', reason: 'digest-mismatch' });
      expect(none.events.at(-1)).toMatchObject({
        type: 'download.failed',
        reason: 'protocol',
        message: expect.stringContaining('done: `data.sha256` is missing'),
      });
      expect([wrong.sink.state, none.sink.state]).toEqual(['open', 'open']);
    });
  });

  it('fails on a chunk out of sequence, a text frame, or bytes beyond the size', async () => {
    const gap = downloading(file(10));
    gap.send(encodeChunk(1, new Uint8Array(5)));
    const text = downloading(file(10));
    text.send('{"type":"cancel"}');
    const extra = downloading(file(4));
    extra.send(encodeChunk(0, new Uint8Array(5)));
    await settle();
    expect(gap.events).toEqual([
      { type: 'download.failed', reason: 'protocol', message: 'chunk 1 arrived where 0 was due', received: 0 },
    ]);
    expect(text.events[0]).toMatchObject({ type: 'download.failed', reason: 'protocol' });
    expect(extra.events[0]).toMatchObject({ type: 'download.failed', reason: 'size-mismatch' });
    // It never aborts the sink: the machine does, with its own reason.
    expect(gap.sink.state).toBe('open');
  });

  it('fails on a digest mismatch without closing the sink', async () => {
    const d = downloading(file(3, new Uint8Array([1, 2, 3])));
    d.send(encodeChunk(0, new Uint8Array([1, 2, 4])));
    await settle();
    expect(d.events.at(-1)).toMatchObject({ type: 'download.failed', reason: 'digest-mismatch' });
    expect(d.sink.state).toBe('open');
  });

  it('stops writing once stopped', async () => {
    const d = downloading(file(10));
    d.actor.stop();
    d.send(encodeChunk(0, new Uint8Array(5)));
    await settle();
    expect(d.events).toEqual([]);
    expect(d.sink.bytes()).toEqual(new Uint8Array(0));
  });
});

describe('the upload actor', () => {
  function uploading(
    data: Uint8Array,
    transport?: Transport,
    pacing: { window?: number; acked?: number; hash?: boolean } = {},
  ) {
    const [near, far] = memoryPair();
    const frames: Uint8Array[] = [];
    far.on('message', (frame) => frames.push(frame as Uint8Array));
    const events: AnyEventObject[] = [];
    const source = memorySource(data);
    const parent = setup({ actors: { upload } }).createMachine({
      invoke: {
        id: 'upload',
        src: 'upload',
        input: { transport: transport ?? near, source, readSize: 40_000, ...pacing },
      },
      on: {
        ack: { actions: sendTo('upload', ({ event }) => ({ type: 'upload.ack', received: event.received })) },
        '*': { actions: ({ event }) => events.push(event) },
      },
    });
    const actor = createActor(parent).start();
    const sent = () => frames.reduce((n, f) => n + f.byteLength - 4, 0);
    return { frames, events, near, sent, ack: (received: number) => actor.send({ type: 'ack', received }), actor };
  }

  it('sends the file as numbered chunks of 16 KiB (chunk n from byte n × 16 KiB, however it reads), then says so', async () => {
    const data = bytes(100_000);
    const u = uploading(data);
    await settle(30);
    expect(u.events).toEqual([{ type: 'upload.done' }]);
    const hashed = uploading(data, undefined, { hash: true });
    await settle(30);
    // With `hash`, the digest of what was read and sent, reading the file once.
    expect(hashed.events).toEqual([{ type: 'upload.done', sha256: sha256Hex(data) }]);
    const chunks = u.frames.map((f) => decodeChunk(f) as { seq: number; data: Uint8Array });
    // Reads of 40 000 bytes are rounded up to whole chunks (49 152), so only the last chunk is short.
    expect(chunks.map((c) => c.seq)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(chunks.map((c) => c.data.byteLength)).toEqual([16384, 16384, 16384, 16384, 16384, 16384, 1696]);
    const joined = new Uint8Array(chunks.reduce((n, c) => n + c.data.byteLength, 0));
    let at = 0;
    for (const c of chunks) {
      joined.set(c.data, at);
      at += c.data.byteLength;
    }
    expect(sha256Hex(joined)).toBe(sha256Hex(data));
  });

  it('stays within `window` bytes of what the receiver acknowledged, once it acknowledged anything', async () => {
    const data = bytes(200_000);
    const u = uploading(data, undefined, { window: 50_000, acked: 0 });
    await settle(30);
    // Three whole chunks (49 152 bytes): the fourth would pass 50 000.
    expect(u.sent()).toBe(3 * CHUNK_SIZE);
    u.ack(20_000);
    await settle(30);
    expect(u.sent()).toBe(4 * CHUNK_SIZE);
    expect(u.events).toEqual([]);
    u.ack(10_000); // stale: changes nothing
    u.ack(200_000);
    await settle(30);
    expect(u.sent()).toBe(200_000);
    expect(u.events).toEqual([{ type: 'upload.done' }]);
  });

  it('is not held to the window before the receiver acknowledged anything, and stops while waiting', async () => {
    const free = uploading(bytes(200_000), undefined, { window: 50_000 });
    await settle(30);
    expect(free.sent()).toBe(200_000);
    const held = uploading(bytes(200_000), undefined, { window: 50_000, acked: 0 });
    await settle(30);
    held.actor.stop();
    held.ack(200_000);
    await settle(30);
    expect(held.sent()).toBe(3 * CHUNK_SIZE);
    expect(held.events).toEqual([]);
  });

  it('reports a closed channel as peer-gone', async () => {
    const [near] = memoryPair();
    near.close();
    const u = uploading(bytes(10), near);
    await settle();
    expect(u.events).toEqual([
      { type: 'upload.failed', reason: 'peer-gone', message: expect.stringMatching(/closed/) },
    ]);
  });
});
