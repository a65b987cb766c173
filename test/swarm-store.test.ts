import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { directoryStore } from '../adapters/fs/index.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { memoryStore, type ResourceStore } from '../machines/swarm/store.js';
import { bytes, peerWorld } from './swarm-helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'swarm-store-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const stores: Array<[string, () => Promise<ResourceStore>]> = [
  ['memoryStore', async () => memoryStore()],
  ['directoryStore', () => directoryStore(dir)],
];

describe.each(stores)('%s', (_name, create) => {
  it('shows a resource only once its writer committed, and reads any range of it', async () => {
    const store = await create();
    const data = bytes(50_000, 4);
    const hash = sha256Hex(data);
    const writer = await store.create(hash, data.byteLength);
    await writer.write(data.subarray(0, 20_000));
    await writer.write(data.subarray(20_000));
    expect(store.stat(hash)).toBeUndefined();
    expect(store.list()).toEqual([]);
    await writer.commit();
    expect(store.stat(hash)).toBe(data.byteLength);
    expect(store.list()).toEqual([hash]);
    expect(Buffer.compare(await store.read(hash, 1000, 5000), data.subarray(1000, 6000))).toBe(0);
  });

  it('keeps nothing of an aborted writer', async () => {
    const store = await create();
    const hash = sha256Hex(new Uint8Array([1]));
    const writer = await store.create(hash, 1);
    await writer.write(new Uint8Array([2]));
    await writer.abort(new Error('digest mismatch'));
    expect(store.stat(hash)).toBeUndefined();
    await expect(store.read(hash, 0, 1)).rejects.toThrow();
  });
});

describe('directoryStore', () => {
  it('indexes the files named by their SHA-256 at start, and leaves out changed files and leftovers', async () => {
    const good = bytes(3000, 1);
    const goodHash = sha256Hex(good);
    const tampered = bytes(3000, 2);
    await writeFile(join(dir, goodHash), good);
    await writeFile(join(dir, sha256Hex(tampered)), bytes(3000, 3));
    await writeFile(join(dir, 'notes.txt'), 'not a resource');
    await writeFile(join(dir, `${goodHash}.1.part`), 'half');
    const store = await directoryStore(dir);
    expect(store.list()).toEqual([goodHash]);
    expect((await readdir(dir)).filter((f) => f.endsWith('.part'))).toEqual([]);
    // Without verification the tampered file is taken by its name.
    expect((await directoryStore(dir, { verify: false })).list().sort()).toEqual(
      [goodHash, sha256Hex(tampered)].sort(),
    );
  });

  it('refuses to create a file whose name is not a SHA-256', async () => {
    const store = await directoryStore(dir);
    await expect(store.create('../escape', 1)).rejects.toThrow(/not a SHA-256/);
  });

  it('receives a resource from a peer onto disk, verified', async () => {
    const world = peerWorld();
    try {
      const data = bytes(70_000, 8);
      const source = memoryStore();
      const hash = source.add(data);
      const holder = world.peer({ store: source });
      const fetcher = world.peer({ store: await directoryStore(dir) });
      await world.link(fetcher, holder);
      await fetcher.fetch(hash);
      expect(Buffer.compare(await readFile(join(dir, hash)), data)).toBe(0);
    } finally {
      await world.close();
    }
  });
});
