/**
 * The data-channel protocol of one real peer, with its server and its
 * remote peers played by the test: every bad input gets a typed answer, and
 * a bad resource is never stored or served.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { CHUNK_SIZE, encodeChunk } from '../machines/transfer/chunks.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { memoryStore } from '../machines/swarm/store.js';
import type { SwarmError } from '../machines/swarm/errors.js';
import { bytes, rawChannel, settle, soloPeer, type Frame } from './swarm-helpers.js';

let solo: ReturnType<typeof soloPeer>;
afterEach(() => solo?.stop());

const unknown = sha256Hex(new Uint8Array([42]));

describe('swarm data channel: bob’s answers', () => {
  it('answers i_am with its own, then queries from the store, and sends the bytes after transferring_resource', async () => {
    const store = memoryStore();
    const data = bytes(40_000, 2);
    const hash = store.add(data);
    solo = soloPeer(store);
    const { link, remote } = await solo.link('remote-1');
    expect(solo.events).toContainEqual({ type: 'linked', detail: { link, peer: 'remote-1' } });
    remote.send({ type: 'querying_resource', detail: { hash } });
    expect(await remote.next()).toEqual({ type: 'resource_found', detail: { hash, size: data.byteLength } });
    remote.send({ type: 'querying_resource', detail: { hash: unknown } });
    expect(await remote.next()).toEqual({ type: 'resource_not_found', detail: { hash: unknown } });
    remote.send({ type: 'requesting_resource', detail: { hash } });
    expect(await remote.next()).toEqual({ type: 'transferring_resource', detail: { hash } });
    const chunks: Uint8Array[] = [];
    for (let got = 0; got < data.byteLength;) {
      const frame = (await remote.next()) as Uint8Array;
      expect(new DataView(frame.buffer, frame.byteOffset).getUint32(0)).toBe(chunks.length);
      chunks.push(frame.subarray(4));
      got += frame.byteLength - 4;
    }
    expect(sha256Hex(Buffer.concat(chunks))).toBe(hash);
  });

  it('answers requesting_resource for an unknown hash with resource_not_found', async () => {
    solo = soloPeer();
    const { remote } = await solo.link();
    remote.send({ type: 'requesting_resource', detail: { hash: unknown } });
    expect(await remote.next()).toEqual({ type: 'resource_not_found', detail: { hash: unknown } });
  });

  it('refuses a second requesting_resource while a transfer is under way', async () => {
    const store = memoryStore();
    const hash = store.add(bytes(2 * 1024 * 1024, 6));
    solo = soloPeer(store);
    const { remote } = await solo.link();
    remote.send({ type: 'requesting_resource', detail: { hash } });
    remote.send({ type: 'requesting_resource', detail: { hash } });
    let refusal: Frame | undefined;
    for (let i = 0; i < 400 && !refusal; i++) {
      const frame = await remote.next();
      if (!(frame instanceof Uint8Array) && frame.type === 'error') refusal = frame;
    }
    expect(refusal?.detail).toMatchObject({ code: 'ERR_NOT_PERMITTED', hash });
  });

  it('answers reserve_resource for something it lacks with resource_not_found when it has no other peer to ask', async () => {
    solo = soloPeer();
    const { remote } = await solo.link();
    remote.send({ type: 'reserve_resource', detail: { hash: unknown } });
    expect(await remote.next()).toEqual({ type: 'resource_not_found', detail: { hash: unknown } });
  });

  it('refuses a reserve_resource beyond 16 waiting from one remote: it never makes more queries to other peers', async () => {
    solo = soloPeer();
    const { remote: silent } = await solo.link('silent');
    const { remote: asker } = await solo.link('asker');
    const hashes = Array.from({ length: 17 }, (_, i) => sha256Hex(new Uint8Array([i, 7])));
    for (const hash of hashes) asker.send({ type: 'reserve_resource', detail: { hash } });
    expect(await asker.next()).toEqual({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: 'at most 16 reserve_resource may wait at once', hash: hashes[16] },
    });
    // One fetch at a time: the silent peer got the first query only, and nothing for the refused one.
    expect(await silent.next()).toEqual({ type: 'querying_resource', detail: { hash: hashes[0] } });
    await settle();
    expect(silent.frames).toHaveLength(2); // its i_am answer, then the query
    expect(solo.actor.getSnapshot().context.queue.map((job) => job.hash)).toEqual(hashes.slice(1, 16));
  });

  it('answers requesting_peer_list with its other links, the asker left out', async () => {
    solo = soloPeer();
    await solo.link('first');
    const { remote } = await solo.link('second');
    remote.send({ type: 'requesting_peer_list', detail: {} });
    expect(await remote.next()).toEqual({ type: 'sending_peer_list', detail: { peer_list: ['first'] } });
  });
});

type BadFrame = { name: string; frame: unknown; code: string; introduced?: false };

const badFrames: BadFrame[] = [
  { name: 'text that is not JSON', frame: 'hello?', code: 'ERR_MALFORMED_FRAME' },
  { name: 'an unknown type', frame: { type: 'gimme', detail: {} }, code: 'ERR_UNKNOWN_MESSAGE' },
  {
    name: 'a hash that is not a SHA-256',
    frame: { type: 'querying_resource', detail: { hash: 'ABC' } },
    code: 'ERR_INVALID_FIELD',
  },
  {
    name: 'an extra field',
    frame: { type: 'querying_resource', detail: { hash: unknown, please: true } },
    code: 'ERR_INVALID_FIELD',
  },
  {
    name: 'a negative size',
    frame: { type: 'resource_found', detail: { hash: unknown, size: -1 } },
    code: 'ERR_INVALID_FIELD',
  },
  { name: 'a text frame over the cap', frame: 'x'.repeat(70_000), code: 'ERR_FRAME_TOO_LARGE' },
  { name: 'a second i_am', frame: { type: 'i_am', detail: { client_id: 'again' } }, code: 'ERR_NOT_PERMITTED' },
];

describe('swarm data channel: bad input from a remote', () => {
  it.each(badFrames)('$name gets an error with $code, and the link stays', async ({ frame, code }) => {
    solo = soloPeer();
    const { link, remote } = await solo.link();
    remote.send(frame);
    const reply = (await remote.next()) as Frame;
    expect(reply.type).toBe('error');
    expect(reply.detail).toMatchObject({ code });
    // Still linked and still answering.
    remote.send({ type: 'querying_resource', detail: { hash: unknown } });
    expect(await remote.next()).toEqual({ type: 'resource_not_found', detail: { hash: unknown } });
    expect(Object.keys(solo.actor.getSnapshot().context.links)).toEqual([link]);
  });

  it('anything before i_am gets ERR_NOT_PERMITTED', async () => {
    solo = soloPeer();
    solo.actor.send({ type: 'connect' });
    let request = await solo.server.next();
    while (request.type !== 'requesting_peers') request = await solo.server.next();
    const link = request.detail.context_id as string;
    solo.server.send({ type: 'wait_for_offer', detail: { context_id: link } });
    solo.server.send({ type: 'forwarding_offer', detail: { offer: 'v=0 o', context_id: link } });
    await settle();
    solo.rtc.live
      .get(link)!
      .emit({ type: 'rtc.description', label: link, description: { type: 'answer', sdp: 'v=0' } });
    await solo.server.next();
    const remote = rawChannel(solo.rtc.open(link));
    remote.send({ type: 'querying_resource', detail: { hash: unknown } });
    expect(((await remote.next()) as Frame).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED' });
  });

  it('closes the link of a peer that sends bytes nobody asked for', async () => {
    solo = soloPeer();
    const { link, remote } = await solo.link('pushy');
    remote.send(encodeChunk(0, new Uint8Array([1, 2, 3])));
    expect(((await remote.next()) as Frame).detail).toMatchObject({ code: 'ERR_NOT_PERMITTED' });
    await settle();
    expect(remote.transport.isOpen).toBe(false);
    const error = solo.events.find((e) => e.type === 'peer-error')?.detail as { error: SwarmError; link: string };
    expect(error.link).toBe(link);
    expect(error.error).toMatchObject({ reason: 'unsolicited-bytes', code: 'ERR_NOT_PERMITTED' });
    expect(solo.events).toContainEqual({ type: 'unlinked', detail: { link, peer: 'pushy', reason: 'protocol' } });
  });

  it('closes the link of a peer that sends a binary frame over the chunk size', async () => {
    solo = soloPeer();
    const { link, remote } = await solo.link();
    remote.send(new Uint8Array(CHUNK_SIZE + 5));
    await settle();
    expect(remote.transport.isOpen).toBe(false);
    expect(solo.events.find((e) => e.type === 'peer-error')?.detail).toMatchObject({
      link,
      error: { code: 'ERR_FRAME_TOO_LARGE' },
    });
  });
});

describe('swarm data channel: alice refuses bad bytes', () => {
  /** The peer fetches `hash`; the remote plays bob: found with `size`, then sends `payload` (or `frames`). */
  async function serveBadly(hash: string, size: number, payload: Uint8Array, frames: Uint8Array[] = []) {
    solo = soloPeer();
    const { remote } = await solo.link('bad-bob');
    const failed = new Promise<SwarmError>((resolve) =>
      solo.actor.on('fetch-failed', ({ detail }) => resolve(detail.error)),
    );
    solo.actor.send({ type: 'fetch', hash });
    expect(await remote.next()).toEqual({ type: 'querying_resource', detail: { hash } });
    remote.send({ type: 'resource_found', detail: { hash, size } });
    expect(await remote.next()).toEqual({ type: 'requesting_resource', detail: { hash } });
    remote.send({ type: 'transferring_resource', detail: { hash } });
    for (let at = 0, seq = 0; at < payload.byteLength; at += CHUNK_SIZE) {
      remote.send(encodeChunk(seq++, payload.subarray(at, at + CHUNK_SIZE)));
    }
    for (const frame of frames) remote.send(frame);
    const error = await failed;
    await settle();
    return { error, remote };
  }

  it('more bytes than resource_found announced: size-mismatch, nothing stored, the link closed', async () => {
    const data = bytes(1000, 1);
    const hash = sha256Hex(data);
    const { error, remote } = await serveBadly(hash, 500, data);
    expect(error).toMatchObject({ reason: 'not-found' });
    expect(error.misses).toEqual([{ link: '1', reason: 'size-mismatch', message: expect.any(String) }]);
    expect(solo.store.stat(hash)).toBeUndefined();
    expect(remote.transport.isOpen).toBe(false);
  });

  it('bytes whose SHA-256 is not the hash: digest-mismatch, nothing stored or served', async () => {
    const data = bytes(50_000, 1);
    const hash = sha256Hex(data);
    const { error, remote } = await serveBadly(hash, data.byteLength, bytes(50_000, 2));
    expect(error.misses.map((m) => m.reason)).toEqual(['digest-mismatch']);
    expect(remote.transport.isOpen).toBe(false);
    expect(solo.store.stat(hash)).toBeUndefined();
    expect(solo.store.list()).toEqual([]);
  });

  it('chunks out of order: a protocol failure, nothing stored', async () => {
    solo = soloPeer();
    const data = bytes(CHUNK_SIZE * 2, 3);
    const hash = sha256Hex(data);
    const { remote } = await solo.link();
    const failed = new Promise<SwarmError>((resolve) =>
      solo.actor.on('fetch-failed', ({ detail }) => resolve(detail.error)),
    );
    solo.actor.send({ type: 'fetch', hash });
    await remote.next();
    remote.send({ type: 'resource_found', detail: { hash, size: data.byteLength } });
    await remote.next();
    remote.send({ type: 'transferring_resource', detail: { hash } });
    remote.send(encodeChunk(1, data.subarray(CHUNK_SIZE)));
    expect((await failed).misses.map((m) => m.reason)).toEqual(['protocol']);
    expect(solo.store.stat(hash)).toBeUndefined();
  });

  it('empty chunks (which would keep the stall timer from ever firing): a protocol failure, the link closed', async () => {
    const data = bytes(100, 4);
    const hash = sha256Hex(data);
    const { error, remote } = await serveBadly(hash, data.byteLength, new Uint8Array(0), [
      encodeChunk(0, new Uint8Array(0)),
      encodeChunk(1, new Uint8Array(0)),
    ]);
    expect(error.misses).toEqual([{ link: '1', reason: 'protocol', message: 'chunk 0 carries no bytes' }]);
    expect(solo.store.stat(hash)).toBeUndefined();
    expect(remote.transport.isOpen).toBe(false);
  });

  it('a peer that goes silent mid-transfer: timeout after stallTimeout, on the SimulatedClock', async () => {
    solo = soloPeer();
    const data = bytes(CHUNK_SIZE * 2, 3);
    const hash = sha256Hex(data);
    const { remote } = await solo.link();
    const failed = new Promise<SwarmError>((resolve) =>
      solo.actor.on('fetch-failed', ({ detail }) => resolve(detail.error)),
    );
    solo.actor.send({ type: 'fetch', hash });
    await remote.next();
    remote.send({ type: 'resource_found', detail: { hash, size: data.byteLength } });
    await remote.next();
    remote.send({ type: 'transferring_resource', detail: { hash } });
    remote.send(encodeChunk(0, data.subarray(0, CHUNK_SIZE)));
    await settle();
    solo.clock.increment(1000);
    expect((await failed).message).toMatch(/timeout/);
    expect(remote.transport.isOpen).toBe(false);
  });
});
