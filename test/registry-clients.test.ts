/**
 * Registry clients together over a memory world: memory network, memory
 * WebRTC (trickle ICE) and a SimulatedClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, waitFor } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { memorySink, sha256Hex, type FileSink, type FileSource } from '../machines/transfer/files.js';
import type { RegistryClientEmitted } from '../machines/registry/client.machine.js';
import { createRegistryClient } from '../machines/registry/client.js';
import { RegistryError } from '../machines/registry/errors.js';
import { registryFetch } from '../machines/registry/fetch.machine.js';
import { blobProvider, memoryProvider, type FileProvider } from '../machines/registry/files.js';
import type { FileEntry } from '../machines/registry/protocol.js';
import { registryServe } from '../machines/registry/serve.machine.js';
import { bytes, record, registryWorld, settle, type RegistryWorld } from './registry-helpers.js';
import { deferred } from './socket-helpers.js';

let world: RegistryWorld;
afterEach(async () => {
  await world?.close();
});

type Client = ReturnType<RegistryWorld['client']>;

const A_FILES = { 'a.txt': new TextEncoder().encode('hello from a'), 'big/data.bin': bytes(200_000, 7) };
const B_FILES = { 'b.txt': new TextEncoder().encode('b') };
const C_FILES = { 'docs/c.md': bytes(1000, 3) };

const entries = (files: Record<string, Uint8Array>): FileEntry[] =>
  Object.entries(files).map(([path, data]) => ({ path, size: data.byteLength, sha256: sha256Hex(data) }));

const idOf = async (client: Client) => (await waitFor(client, (s) => s.context.id !== undefined)).context.id!;

async function until(predicate: () => boolean) {
  for (let i = 0; i < 200 && !predicate(); i++) await settle(1);
  expect(predicate()).toBe(true);
}

/** Three clients A, B and C that have each seen the other two. */
async function three() {
  world = registryWorld();
  const a = world.client({ provider: memoryProvider(A_FILES) });
  const aLog = record<RegistryClientEmitted>(a);
  const b = world.client({ provider: memoryProvider(B_FILES) });
  const bLog = record<RegistryClientEmitted>(b);
  const c = world.client({ provider: memoryProvider(C_FILES) });
  const cLog = record<RegistryClientEmitted>(c);
  const [ia, ib, ic] = [await idOf(a), await idOf(b), await idOf(c)];
  for (const x of [a, b, c]) await until(() => Object.keys(x.getSnapshot().context.peers).length === 2);
  return { a, b, c, aLog, bLog, cLog, ia, ib, ic };
}

/** Fetches `path` from `peer` into a memory sink. */
async function fetch(client: Client, peer: string, path: string, request?: string) {
  const log = record<RegistryClientEmitted>(client);
  const sink = memorySink();
  client.send({ type: 'requestFile', peer, path, sink, ...(request && { request }) });
  await until(() => log.of('fetched').length + log.of('fetchFailed').length > 0);
  return { sink, fetched: log.of('fetched')[0], failed: log.of('fetchFailed')[0], log };
}

describe('registry clients: lists', () => {
  it('each client sees the others’ lists, and their changes, and who leaves', async () => {
    const { a, b, c, aLog, cLog, ia, ib, ic } = await three();
    expect(a.getSnapshot().context.peers).toEqual({ [ib]: entries(B_FILES), [ic]: entries(C_FILES) });
    expect(c.getSnapshot().context.peers).toEqual({ [ia]: entries(A_FILES), [ib]: entries(B_FILES) });
    // C joined last: it was told about A and B, and A heard of B then C.
    expect(cLog.of('peerRegistered').map((e) => e.detail.peer)).toEqual([ia, ib]);
    expect(aLog.of('peerRegistered').map((e) => e.detail.peer)).toEqual([ib, ic]);
    expect(aLog.of('filesUpdated')).toEqual([{ type: 'filesUpdated', detail: { files: entries(A_FILES) } }]);

    const next = [...entries(B_FILES), { path: 'new.txt', size: 3 }];
    b.send({ type: 'updateFiles', files: next });
    await until(
      () => a.getSnapshot().context.peers[ib]!.length === 2 && c.getSnapshot().context.peers[ib]!.length === 2,
    );
    expect(aLog.of('peerUpdated').at(-1)!.detail).toEqual({ peer: ib, files: next });
    expect(cLog.of('peers').at(-1)!.detail.peers[ib]).toEqual(next);

    c.send({ type: 'leave' });
    expect(c.getSnapshot().value).toBe('done');
    await until(() => !(ic in a.getSnapshot().context.peers) && !(ic in b.getSnapshot().context.peers));
    expect(aLog.of('peerUnregistered')).toEqual([{ type: 'peerUnregistered', detail: { peer: ic } }]);
    expect(cLog.of('stopped')).toEqual([{ type: 'stopped', detail: { error: undefined } }]);
    expect(world.server.stats()).toEqual({ connections: 2, peers: 2, files: 4 });
  });

  it('a client whose connection drops is unregistered for the others and stops with signalling-lost', async () => {
    world = registryWorld();
    const a = world.client({ provider: memoryProvider(A_FILES) });
    const b = world.client({ provider: memoryProvider(B_FILES) });
    await idOf(a);
    const ib = await idOf(b);
    await until(() => ib in a.getSnapshot().context.peers);
    world.network.sever(world.connectionOf(a)!);
    await until(() => a.getSnapshot().status === 'done');
    expect(a.getSnapshot().value).toBe('failed');
    expect(a.getSnapshot().context.error?.reason).toBe('signalling-lost');
    await until(() => Object.keys(b.getSnapshot().context.peers).length === 0);
    expect(world.server.stats()).toEqual({ connections: 1, peers: 1, files: 1 });
  });

  it('re-lists from the provider on updateFiles without a list, and refuses a malformed list', async () => {
    world = registryWorld();
    const shared: Record<string, Uint8Array> = { 'one.txt': bytes(10) };
    const provider: FileProvider = {
      list: () => memoryProvider(shared).list(),
      open: (p) => memoryProvider(shared).open(p),
    };
    const a = world.client({ provider });
    const log = record<RegistryClientEmitted>(a);
    await idOf(a);
    shared['two.txt'] = bytes(20);
    a.send({ type: 'updateFiles' });
    await until(() => a.getSnapshot().context.files.length === 2);
    expect(world.server.stats().files).toBe(2);
    a.send({ type: 'updateFiles', files: [{ path: '../escape', size: 1 }] });
    a.send({
      type: 'updateFiles',
      files: [
        { path: 'x', size: 1 },
        { path: 'x', size: 2 },
      ],
    });
    expect(log.of('filesFailed').map((e) => [e.detail.error.reason, e.detail.error.code])).toEqual([
      ['invalid-files', 'ERR_INVALID_FIELD'],
      ['invalid-files', 'ERR_INVALID_FIELD'],
    ]);
    await settle();
    expect(a.getSnapshot().context.files.map((f) => f.path)).toEqual(['one.txt', 'two.txt']);
    expect(world.server.stats().files).toBe(2);
  });

  it('fails with invalid-files when the provider lists a path that leaves its directory', async () => {
    world = registryWorld();
    const a = world.client({ provider: memoryProvider({}), files: [{ path: '/etc/passwd', size: 1 }] });
    await until(() => a.getSnapshot().status === 'done');
    expect(a.getSnapshot().context.error?.reason).toBe('invalid-files');
    expect(world.server.stats().peers).toBe(0);
  });
});

/**
 * A provider over `files` whose sources stall after their first read until
 * `release()`, and count how often they are closed.
 */
function stallingProvider(files: Record<string, Uint8Array>) {
  const inner = memoryProvider(files);
  const gate = deferred<void>();
  const closes: string[] = [];
  const provider: FileProvider = {
    list: () => inner.list(),
    async open(path) {
      const source = await inner.open(path);
      return {
        ...source,
        read: async (offset: number, length: number) => {
          if (offset > 0) await gate.promise;
          return source.read(offset, length);
        },
        close: () => void closes.push(path),
      } satisfies FileSource;
    },
  };
  return { provider, closes, release: () => gate.resolve() };
}

describe('registry clients: lists, slow providers and limits', () => {
  it('lists before it connects, so a provider slower than the server’s connectTimeout still registers', async () => {
    world = registryWorld({ server: { connectTimeout: 1000 } });
    const listing = deferred<FileEntry[]>();
    const a = world.client({ provider: { list: () => listing.promise, open: () => Promise.reject(new Error('no')) } });
    await settle();
    expect(world.server.stats().connections).toBe(0);
    world.clock.increment(5000);
    await settle();
    listing.resolve([{ path: 'late.txt', size: 1 }]);
    await idOf(a);
    expect(a.getSnapshot().status).toBe('active');
    expect(world.server.stats()).toEqual({ connections: 1, peers: 1, files: 1 });
  });

  it('asks the provider again when updateFiles comes while it is still listing, and announces the newer list', async () => {
    world = registryWorld();
    const lists: Array<ReturnType<typeof deferred<FileEntry[]>>> = [];
    const provider: FileProvider = {
      list: () => {
        lists.push(deferred<FileEntry[]>());
        return lists.at(-1)!.promise;
      },
      open: () => Promise.reject(new Error('no')),
    };
    const a = world.client({ provider, files: [] });
    await idOf(a);
    a.send({ type: 'updateFiles' });
    a.send({ type: 'updateFiles' }); // the directory changed again meanwhile
    await settle();
    expect(lists).toHaveLength(2);
    lists[1]!.resolve([{ path: 'two.txt', size: 2 }]);
    lists[0]!.resolve([{ path: 'one.txt', size: 1 }]); // the stale answer is dropped
    await until(() => a.getSnapshot().context.files.length === 1);
    await settle();
    expect(a.getSnapshot().context.files).toEqual([{ path: 'two.txt', size: 2 }]);
    expect(world.server.stats().files).toBe(1);
  });

  it('applies an updateFiles sent before Welcome once registered', async () => {
    world = registryWorld();
    const a = world.client({ provider: memoryProvider({}), files: [{ path: 'first.txt', size: 1 }] });
    a.send({ type: 'updateFiles', files: [{ path: 'second.txt', size: 2 }] });
    await idOf(a);
    await until(() => a.getSnapshot().context.files[0]?.path === 'second.txt');
    const b = world.client({ provider: memoryProvider({}) });
    await idOf(b);
    await until(() => Object.keys(b.getSnapshot().context.peers).length === 1);
    expect(Object.values(b.getSnapshot().context.peers)).toEqual([[{ path: 'second.txt', size: 2 }]]);
  });

  const many = (n: number, pathLength = 8) =>
    Array.from({ length: n }, (_, i) => ({ path: `${i}`.padStart(pathLength, 'f'), size: i }));

  it('refuses a list over the server’s limits before connecting: too many entries, or a frame over 256 KiB', async () => {
    world = registryWorld();
    const tooMany = world.client({ provider: memoryProvider({}), files: many(1001) });
    const tooLarge = world.client({ provider: memoryProvider({}), files: many(300, 1000) });
    await until(() => tooMany.getSnapshot().status === 'done' && tooLarge.getSnapshot().status === 'done');
    expect(tooMany.getSnapshot().context.error).toMatchObject({
      reason: 'invalid-files',
      code: 'ERR_INVALID_FIELD',
      message: 'a file list has at most 1000 entries',
    });
    expect(tooLarge.getSnapshot().context.error).toMatchObject({
      reason: 'invalid-files',
      message: expect.stringMatching(/^the list makes a frame of 30\d{4} characters, over the server's cap of 262144/),
    });
    expect(world.server.stats().connections).toBe(0);
    // Once registered, such a list is refused and the old one stays.
    const a = world.client({ provider: memoryProvider({}), files: many(2) });
    const log = record<RegistryClientEmitted>(a);
    await idOf(a);
    a.send({ type: 'updateFiles', files: many(300, 1000) });
    expect(log.of('filesFailed')[0]!.detail.error.reason).toBe('invalid-files');
    await settle();
    expect(a.getSnapshot().context.files).toEqual(many(2));
    expect(world.server.stats().files).toBe(2);
  });

  it('reports a list the server refuses (tighter limits than the client’s): Connect fails, UpdateFiles is filesFailed', async () => {
    world = registryWorld({ server: { maxFiles: 2 } });
    const refused = world.client({ provider: memoryProvider({}), files: many(3) });
    await until(() => refused.getSnapshot().status === 'done');
    expect(refused.getSnapshot().context.error).toMatchObject({
      reason: 'invalid-files',
      code: 'ERR_INVALID_FIELD',
      message: 'the server refused Connect: Connect: `detail.files`: a file list has at most 2 entries',
    });
    const a = world.client({ provider: memoryProvider({}), files: many(2) });
    const log = record<RegistryClientEmitted>(a);
    await idOf(a);
    a.send({ type: 'updateFiles', files: many(3) });
    await until(() => log.of('filesFailed').length > 0);
    expect(log.of('filesFailed')[0]!.detail.error).toMatchObject({
      reason: 'invalid-files',
      code: 'ERR_INVALID_FIELD',
      message: 'the server refused UpdateFiles: UpdateFiles: `detail.files`: a file list has at most 2 entries',
    });
    expect(log.of('refused')).toEqual([]);
    expect(world.server.stats()).toEqual({ connections: 1, peers: 1, files: 2 });
  });
});

describe('registry clients: RequestFile', () => {
  it('fetches a file straight from the peer that lists it, verified by size and SHA-256', async () => {
    const { b, ia } = await three();
    const { sink, fetched, log } = await fetch(b, ia, 'big/data.bin');
    const data = A_FILES['big/data.bin'];
    expect(fetched!.detail).toEqual({
      request: 'r1',
      peer: ia,
      path: 'big/data.bin',
      size: data.byteLength,
      sha256: sha256Hex(data),
    });
    expect(sink.state).toBe('closed');
    expect(sha256Hex(sink.bytes())).toBe(sha256Hex(data));
    expect(log.of('progress').at(-1)!.detail).toMatchObject({ received: data.byteLength, total: data.byteLength });
    await until(() => world.rtc.open === 0);
    expect(Object.keys(b.getSnapshot().children)).toEqual(['signalling']);
  });

  it('serves several requests at once, both ways', async () => {
    const { a, b, c, aLog, ia, ib, ic } = await three();
    const results = await Promise.all([fetch(b, ia, 'a.txt'), fetch(c, ia, 'big/data.bin'), fetch(a, ic, 'docs/c.md')]);
    for (const r of results) expect(r.failed).toBeUndefined();
    expect(new TextDecoder().decode(results[0].sink.bytes())).toBe('hello from a');
    expect(sha256Hex(results[2].sink.bytes())).toBe(sha256Hex(C_FILES['docs/c.md']));
    await until(() => aLog.of('served').length === 2);
    expect(
      aLog
        .of('served')
        .map((e) => e.detail)
        .sort((x, y) => x.path.localeCompare(y.path)),
    ).toEqual([
      { peer: ib, path: 'a.txt' },
      { peer: ic, path: 'big/data.bin' },
    ]);
  });

  const refusedHere: Array<
    [string, (ids: { ia: string }) => { peer: string; path: string; request?: string }, string]
  > = [
    ['a peer nobody has', () => ({ peer: 'nobody', path: 'a.txt' }), 'no-such-peer'],
    ['a path the peer does not list', ({ ia }) => ({ peer: ia, path: 'b.txt' }), 'not-listed'],
    ['a path that climbs out', ({ ia }) => ({ peer: ia, path: '../a.txt' }), 'invalid-path'],
    ['an absolute path', ({ ia }) => ({ peer: ia, path: '/a.txt' }), 'invalid-path'],
    ['a path with a NUL byte', ({ ia }) => ({ peer: ia, path: 'a.txt\u0000' }), 'invalid-path'],
    ['a bad request id', ({ ia }) => ({ peer: ia, path: 'a.txt', request: 'no spaces' }), 'protocol'],
  ];
  for (const [name, args, reason] of refusedHere) {
    it(`refuses a request for ${name} before anything goes out (${reason})`, async () => {
      const { b, ia } = await three();
      const { peer, path, request } = args({ ia });
      const { failed } = await fetch(b, peer, path, request);
      expect(failed!.detail.error.reason).toBe(reason);
      expect(Object.keys(b.getSnapshot().children)).toEqual(['signalling']);
      expect(b.getSnapshot().context.jobs).toEqual({});
    });
  }

  it('fails with digest-mismatch when the holder’s file is not the one it listed, and writes nothing', async () => {
    world = registryWorld();
    const a = world.client({
      provider: memoryProvider({ 'a.txt': bytes(100, 1) }),
      files: [{ path: 'a.txt', size: 100, sha256: sha256Hex(bytes(100, 2)) }],
    });
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await idOf(b);
    await until(() => ia in b.getSnapshot().context.peers);
    const { failed, sink } = await fetch(b, ia, 'a.txt');
    expect(failed!.detail.error.reason).toBe('digest-mismatch');
    expect(failed!.detail.error.code).toBe('ERR_INTEGRITY');
    await settle();
    expect(sink.state).toBe('open'); // never opened: nothing written
    expect(sink.bytes().byteLength).toBe(0);
  });

  it('fails with size-mismatch when the holder’s file changed size since it was listed', async () => {
    world = registryWorld();
    const a = world.client({ provider: memoryProvider({ 'a.txt': bytes(100) }), files: [{ path: 'a.txt', size: 99 }] });
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const { failed } = await fetch(b, ia, 'a.txt');
    expect(failed!.detail.error.reason).toBe('size-mismatch');
  });

  it('relays the holder’s refusal when its provider cannot open a listed file', async () => {
    world = registryWorld();
    const a = world.client({ provider: memoryProvider({}), files: [{ path: 'gone.txt', size: 5 }] });
    const aLog = record<RegistryClientEmitted>(a);
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const { failed } = await fetch(b, ia, 'gone.txt');
    expect(failed!.detail.error.reason).toBe('not-listed');
    expect(failed!.detail.error.message).toMatch(/^the peer refused: "gone.txt" is not shared/);
    await until(() => aLog.of('serveFailed').length === 1);
    expect(aLog.of('serveFailed')[0]!.detail.error.reason).toBe('not-listed');
  });

  it('fails with peer-gone when the holder vanishes mid-transfer, aborting the sink', async () => {
    world = registryWorld();
    const data = bytes(300_000, 9);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const inner = memoryProvider({ 'slow.bin': data });
    const provider: FileProvider = {
      list: () => inner.list(),
      async open(path) {
        const source = await inner.open(path);
        return {
          ...source,
          read: async (offset: number, length: number) => {
            if (offset > 0) await gate;
            return source.read(offset, length);
          },
        } satisfies FileSource;
      },
    };
    const a = world.client({ provider });
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const log = record<RegistryClientEmitted>(b);
    const sink = memorySink();
    b.send({ type: 'requestFile', peer: ia, path: 'slow.bin', sink });
    await until(() => log.of('progress').length > 0);
    world.network.sever(world.connectionOf(a)!);
    await until(() => log.of('fetchFailed').length > 0);
    expect(log.of('fetchFailed')[0]!.detail.error.reason).toBe('peer-gone');
    release();
    await until(() => sink.state === 'aborted');
    await until(() => world.rtc.open === 0);
    expect(b.getSnapshot().context.jobs).toEqual({});
  });

  it('fails its fetches (cancelled) and aborts their sinks when the requester leaves mid-transfer; the holder closes its source', async () => {
    world = registryWorld();
    const data = bytes(300_000, 9);
    const holder = stallingProvider({ 'slow.bin': data });
    const a = world.client({ provider: holder.provider });
    const aLog = record<RegistryClientEmitted>(a);
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const log = record<RegistryClientEmitted>(b);
    const sink = memorySink();
    b.send({ type: 'requestFile', peer: ia, path: 'slow.bin', sink });
    await until(() => log.of('progress').length > 0);
    b.send({ type: 'leave' });
    expect(log.of('fetchFailed').map((e) => e.detail.error.reason)).toEqual(['cancelled']);
    expect(log.events.map((e) => e.type).slice(-2)).toEqual(['fetchFailed', 'stopped']);
    await until(() => sink.state === 'aborted');
    // The holder sees its requester go: the serve fails and its source is closed, once.
    await until(() => aLog.of('serveFailed').length > 0);
    holder.release();
    await settle();
    expect(holder.closes).toEqual(['slow.bin']);
    await until(() => world.rtc.open === 0);
  });

  it('fails its fetches with signalling-lost when its connection to the server drops mid-transfer', async () => {
    world = registryWorld();
    const holder = stallingProvider({ 'slow.bin': bytes(300_000, 9) });
    const a = world.client({ provider: holder.provider });
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const log = record<RegistryClientEmitted>(b);
    const sink = memorySink();
    b.send({ type: 'requestFile', peer: ia, path: 'slow.bin', sink });
    await until(() => log.of('progress').length > 0);
    world.network.sever(world.connectionOf(b)!);
    await until(() => log.of('stopped').length > 0);
    expect(log.of('fetchFailed').map((e) => e.detail.error.reason)).toEqual(['signalling-lost']);
    await until(() => sink.state === 'aborted');
    holder.release();
  });

  it('fails the holder’s serves (cancelled) and closes their sources when the holder leaves mid-transfer', async () => {
    world = registryWorld();
    const holder = stallingProvider({ 'slow.bin': bytes(300_000, 9) });
    const a = world.client({ provider: holder.provider });
    const aLog = record<RegistryClientEmitted>(a);
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const log = record<RegistryClientEmitted>(b);
    b.send({ type: 'requestFile', peer: ia, path: 'slow.bin', sink: memorySink() });
    await until(() => log.of('progress').length > 0);
    a.send({ type: 'leave' });
    expect(aLog.of('serveFailed').map((e) => e.detail.error.reason)).toEqual(['cancelled']);
    holder.release();
    await until(() => holder.closes.length > 0);
    await settle();
    expect(holder.closes).toEqual(['slow.bin']);
    await until(() => log.of('fetchFailed').length > 0);
    expect(log.of('fetchFailed')[0]!.detail.error.reason).toBe('peer-gone');
  });

  it('lets go of sources and sinks even when the actors are stopped outright mid-transfer (actor.stop())', async () => {
    world = registryWorld();
    const holder = stallingProvider({ 'slow.bin': bytes(300_000, 9) });
    const a = world.client({ provider: holder.provider });
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const log = record<RegistryClientEmitted>(b);
    const sink = memorySink();
    b.send({ type: 'requestFile', peer: ia, path: 'slow.bin', sink });
    await until(() => log.of('progress').length > 0);
    a.stop();
    b.stop();
    await settle();
    expect(holder.closes).toEqual(['slow.bin']);
    expect(sink.state).toBe('aborted');
    holder.release();
  });

  it('createRegistryClient: requestFile rejects when the client leaves mid-transfer', async () => {
    world = registryWorld();
    const holder = stallingProvider({ 'slow.bin': bytes(300_000, 9) });
    const a = world.client({ provider: holder.provider });
    const ia = await idOf(a);
    const client = createRegistryClient({
      transport: () => world.network.connect('registry', { path: '/registry' }),
      rtc: world.rtc.rtc,
      provider: memoryProvider({}),
    });
    await client.ready();
    await until(() => ia in client.peers);
    let progressed = false;
    client.addEventListener('progress', () => (progressed = true));
    const fetching = client.requestFile(ia, 'slow.bin').then(
      () => undefined,
      (e: unknown) => e,
    );
    await until(() => progressed);
    client.leave();
    const error = await fetching;
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).reason).toBe('cancelled');
    holder.release();
  });

  it('cancels one request', async () => {
    const { b, ia } = await three();
    const log = record<RegistryClientEmitted>(b);
    b.send({ type: 'requestFile', peer: ia, path: 'big/data.bin', sink: memorySink(), request: 'mine' });
    b.send({ type: 'cancel', request: 'mine' });
    await until(() => log.of('fetchFailed').length > 0);
    expect(log.of('fetchFailed')[0]!.detail).toMatchObject({ request: 'mine', error: { reason: 'cancelled' } });
  });

  it('times out when the holder never answers (it serves no more connections)', async () => {
    world = registryWorld();
    const a = world.client({ provider: memoryProvider(A_FILES), maxServing: 0 });
    const b = world.client({ provider: memoryProvider({}), connectTimeout: 5000 });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    const log = record<RegistryClientEmitted>(b);
    b.send({ type: 'requestFile', peer: ia, path: 'a.txt', sink: memorySink() });
    await settle();
    expect(a.getSnapshot().context.jobs).toEqual({});
    world.clock.increment(4999);
    await settle();
    expect(log.of('fetchFailed')).toEqual([]);
    world.clock.increment(1);
    await until(() => log.of('fetchFailed').length > 0);
    expect(log.of('fetchFailed')[0]!.detail.error).toMatchObject({ reason: 'timeout', code: 'ERR_TIMEOUT' });
    expect(b.getSnapshot().context.jobs).toEqual({});
  });
});

describe('blobProvider: a browser client serves File objects', () => {
  const inFolder = (file: File, path: string) => Object.defineProperty(file, 'webkitRelativePath', { value: path });

  it('lists Files by webkitRelativePath or name, and a peer fetches one, verified', async () => {
    world = registryWorld();
    const notes = new TextEncoder().encode('notes from a folder');
    const files = [new File(['hello'], 'a.txt'), inFolder(new File([notes], 'c.md'), 'docs/c.md')];
    const a = world.client({ provider: blobProvider(files) });
    const b = world.client({ provider: memoryProvider({}) });
    const ia = await idOf(a);
    await until(() => ia in b.getSnapshot().context.peers);
    expect(b.getSnapshot().context.peers[ia]).toEqual([
      { path: 'a.txt', size: 5, sha256: sha256Hex(new TextEncoder().encode('hello')) },
      { path: 'docs/c.md', size: notes.byteLength, sha256: sha256Hex(notes) },
    ]);
    const { fetched, sink } = await fetch(b, ia, 'docs/c.md');
    expect(fetched!.detail).toMatchObject({ size: notes.byteLength, sha256: sha256Hex(notes) });
    expect(new TextDecoder().decode(sink.bytes())).toBe('notes from a folder');
  });

  it('refuses File names that are not clean paths, and the same path twice', () => {
    const bad = (files: File[]) => {
      try {
        blobProvider(files);
      } catch (error) {
        return (error as RegistryError).reason;
      }
      return undefined;
    };
    expect(bad([inFolder(new File(['x'], 'x'), '../x')])).toBe('invalid-path');
    expect(bad([inFolder(new File(['x'], 'x'), 'a\\x')])).toBe('invalid-path');
    expect(bad([new File(['x'], 'a.txt'), new File(['y'], 'a.txt')])).toBe('invalid-files');
    expect(bad([new File(['x'], 'a.txt')])).toBeUndefined();
  });

  it('serves only what it was given', async () => {
    const provider = blobProvider([new File(['hello'], 'a.txt')]);
    const error = await Promise.resolve(provider.open('b.txt')).catch((e: unknown) => e);
    expect(error).toMatchObject({ reason: 'not-listed' });
  });
});

describe('registry jobs: what opens after the job ended is let go', () => {
  const timing = { connectTimeout: 1000, responseTimeout: 1000, lingerTimeout: 1000 };

  it('a holder closes a source its provider opens after the requester left', async () => {
    const opening = deferred<FileSource>();
    let closed = 0;
    const source: FileSource = {
      name: 'a.txt',
      size: 1,
      type: '',
      sha256: 'a'.repeat(64),
      read: async () => new Uint8Array(1),
      close: () => void closed++,
    };
    const [local] = memoryPair();
    const serve = createActor(registryServe, {
      input: {
        key: 'k',
        peer: 'p',
        provider: { list: () => [], open: () => opening.promise },
        files: [{ path: 'a.txt', size: 1 }],
        ...timing,
      },
    }).start();
    serve.send({ type: 'rtc.open', label: 'k', transport: local });
    serve.send({ type: 'channel.message', message: { type: 'RequestFile', detail: { path: 'a.txt' } } });
    expect(serve.getSnapshot().value).toEqual({ active: 'opening' });
    serve.send({ type: 'peer.gone' });
    expect(serve.getSnapshot().value).toBe('failed');
    opening.resolve(source);
    await settle();
    expect(closed).toBe(1);
  });

  it('a requester aborts a sink that opens after the fetch failed', async () => {
    const opening = deferred<FileSink>();
    const [local] = memoryPair();
    const fetch = createActor(registryFetch, {
      input: {
        key: 'k',
        peer: 'p',
        path: 'a.txt',
        expected: { path: 'a.txt', size: 1 },
        sink: () => opening.promise,
        ...timing,
      },
    }).start();
    fetch.send({ type: 'rtc.open', label: 'k', transport: local });
    fetch.send({
      type: 'channel.message',
      message: { type: 'File', detail: { path: 'a.txt', size: 1, sha256: 'a'.repeat(64) } },
    });
    expect(fetch.getSnapshot().value).toEqual({ active: 'openingSink' });
    fetch.send({ type: 'peer.gone' });
    const sink = memorySink();
    opening.resolve(sink);
    await settle();
    expect(sink.state).toBe('aborted');
  });
});

describe('registry holder: bad requests on the data channel', () => {
  const files = [{ path: 'a.txt', size: 5 }];
  const provider = memoryProvider({ 'a.txt': new TextEncoder().encode('hello'), 'secret.txt': bytes(5) });

  async function ask(frame: string | Uint8Array) {
    const [local, remote] = memoryPair();
    const serve = createActor(registryServe, {
      input: { key: 'k', peer: 'p', provider, files, connectTimeout: 1000, responseTimeout: 1000, lingerTimeout: 1000 },
    }).start();
    const got: Array<string | Uint8Array> = [];
    remote.on('message', (f) => got.push(f));
    serve.send({ type: 'rtc.open', label: 'k', transport: local });
    remote.send(frame);
    await until(() => got.length > 0);
    remote.close();
    serve.send({ type: 'rtc.closed', label: 'k' });
    await until(() => serve.getSnapshot().status === 'done');
    return { reply: JSON.parse(got[0] as string) as { type: string; detail: Record<string, unknown> }, serve, got };
  }

  const cases: Array<[string, string | Uint8Array, string]> = [
    ['a path it does not list (but has)', '{"type":"RequestFile","detail":{"path":"secret.txt"}}', 'not-listed'],
    ['a path that climbs out', '{"type":"RequestFile","detail":{"path":"../a.txt"}}', 'invalid-path'],
    ['a path that climbs out further in', '{"type":"RequestFile","detail":{"path":"x/../../a.txt"}}', 'invalid-path'],
    ['an absolute path', '{"type":"RequestFile","detail":{"path":"/etc/passwd"}}', 'invalid-path'],
    ['a NUL byte', '{"type":"RequestFile","detail":{"path":"a.txt\\u0000"}}', 'invalid-path'],
    ['backslashes', '{"type":"RequestFile","detail":{"path":"..\\\\a.txt"}}', 'invalid-path'],
    [
      'a first frame that is not RequestFile',
      '{"type":"File","detail":{"path":"a","size":1,"sha256":"' + 'a'.repeat(64) + '"}}',
      'protocol',
    ],
    ['a first frame that is not JSON', 'give me a.txt', 'protocol'],
    ['a binary first frame', new Uint8Array([1, 2, 3]), 'protocol'],
  ];
  for (const [name, frame, reason] of cases) {
    it(`refuses ${name} with Error ${reason} and sends no bytes`, async () => {
      const { reply, serve, got } = await ask(frame);
      expect(reply).toMatchObject({ type: 'Error', detail: { reason } });
      expect(got).toHaveLength(1);
      expect(serve.getSnapshot().value).toBe('failed');
      expect(serve.getSnapshot().output!.error!.reason).toBe(reason);
    });
  }

  it('serves a listed path: File, then the bytes', async () => {
    const [local, remote] = memoryPair();
    const serve = createActor(registryServe, {
      input: { key: 'k', peer: 'p', provider, files, connectTimeout: 1000, responseTimeout: 1000, lingerTimeout: 1000 },
    }).start();
    const got: Array<string | Uint8Array> = [];
    remote.on('message', (f) => got.push(f));
    serve.send({ type: 'rtc.open', label: 'k', transport: local });
    remote.send('{"type":"RequestFile","detail":{"path":"a.txt"}}');
    await until(() => got.length === 2);
    expect(JSON.parse(got[0] as string)).toEqual({
      type: 'File',
      detail: { path: 'a.txt', size: 5, sha256: sha256Hex(new TextEncoder().encode('hello')) },
    });
    expect(new TextDecoder().decode((got[1] as Uint8Array).subarray(4))).toBe('hello');
    serve.send({ type: 'rtc.closed', label: 'k' });
    expect(serve.getSnapshot().value).toBe('done');
  });
});
