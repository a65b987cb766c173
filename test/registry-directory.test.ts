import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from 'xstate';
import { insideCheck } from '../adapters/fs/directory-source.js';
import { openFileSource } from '../adapters/fs/file-source.js';
import { directoryProvider } from '../adapters/fs/index.js';
import { memorySink, sha256Hex } from '../machines/transfer/files.js';
import type { RegistryClientEmitted } from '../machines/registry/client.machine.js';
import { RegistryError } from '../machines/registry/errors.js';
import { memoryProvider } from '../machines/registry/files.js';
import { bytes, record, registryWorld, until } from './registry-helpers.js';

let base: string;
let shared: string;
const data = bytes(40_000, 5);
const secret = new TextEncoder().encode('top secret');

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'signalbox-registry-'));
  shared = join(base, 'shared');
  await mkdir(join(shared, 'docs', 'deep'), { recursive: true });
  await writeFile(join(shared, 'a.txt'), 'hello');
  await writeFile(join(shared, 'docs', 'deep', 'data.bin'), data);
  await writeFile(join(base, 'secret.txt'), secret);
  await mkdir(join(base, 'outside'));
  await writeFile(join(base, 'outside', 'x.txt'), secret);
  // Symlinks: one to a file inside, one to a file outside, one to a directory outside, one dangling.
  await symlink(join(shared, 'a.txt'), join(shared, 'alias.txt'));
  await symlink(join(base, 'secret.txt'), join(shared, 'leak.txt'));
  await symlink(join(base, 'outside'), join(shared, 'door'));
  await symlink('../../secret.txt', join(shared, 'docs', 'relative-leak.txt'));
  await symlink(join(shared, 'nowhere'), join(shared, 'dangling'));
  // Names no peer could ask for: a Windows separator, a control character.
  await writeFile(join(shared, 'back\\slash.txt'), 'x');
  await writeFile(join(shared, 'new\nline.txt'), 'x');
});
afterAll(async () => {
  await rm(base, { recursive: true, force: true });
});

async function refusal(promise: unknown): Promise<RegistryError> {
  const error = await Promise.resolve(promise).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RegistryError);
  return error as RegistryError;
}

describe('directoryProvider: listing', () => {
  it('lists the regular files under the directory by relative path, with size and SHA-256', async () => {
    const files = await directoryProvider(shared).list();
    expect(files).toEqual([
      { path: 'a.txt', size: 5, sha256: sha256Hex(new TextEncoder().encode('hello')) },
      { path: 'alias.txt', size: 5, sha256: sha256Hex(new TextEncoder().encode('hello')) },
      { path: 'docs/deep/data.bin', size: data.byteLength, sha256: sha256Hex(data) },
    ]);
  });

  it('leaves out symlinks that point outside, dangling ones, and stops at maxFiles', async () => {
    const paths = (await directoryProvider(shared, { sha256: false, maxFiles: 2 }).list()).map((f) => f.path);
    expect(paths).toEqual(['a.txt', 'alias.txt']);
    const all = (await directoryProvider(shared, { sha256: false }).list()).map((f) => f.path);
    expect(all).toEqual(['a.txt', 'alias.txt', 'docs/deep/data.bin']);
    for (const escaped of ['leak.txt', 'door/x.txt', 'docs/relative-leak.txt', 'dangling', 'back\\slash.txt']) {
      expect(all).not.toContain(escaped);
    }
  });
});

describe('directoryProvider: serving', () => {
  it('opens a listed file and reads it', async () => {
    const source = await directoryProvider(shared).open('docs/deep/data.bin');
    expect(source.size).toBe(data.byteLength);
    expect(source.sha256).toBe(sha256Hex(data));
    expect(sha256Hex(await source.read(0, source.size))).toBe(sha256Hex(data));
    await source.close?.();
  });

  const escapes: Array<[string, string, string]> = [
    ['a `..` path', '../secret.txt', 'invalid-path'],
    ['a `..` path further in', 'docs/../../secret.txt', 'invalid-path'],
    ['an absolute path', join(base ?? '/tmp', 'secret.txt'), 'invalid-path'],
    ['/etc/passwd', '/etc/passwd', 'invalid-path'],
    ['a NUL byte', 'a.txt\u0000../../secret.txt', 'invalid-path'],
    ['backslashes', '..\\secret.txt', 'invalid-path'],
    ['an empty path', '', 'invalid-path'],
    ['a symlink to a file outside', 'leak.txt', 'outside-root'],
    ['a relative symlink that climbs out', 'docs/relative-leak.txt', 'outside-root'],
    ['a file behind a symlinked directory outside', 'door/x.txt', 'outside-root'],
    ['a missing file', 'missing.txt', 'source-failed'],
    ['a directory', 'docs', 'not-listed'],
  ];
  for (const [name, path, reason] of escapes) {
    it(`refuses ${name} (${reason}) and serves nothing`, async () => {
      const error = await refusal(directoryProvider(shared).open(path));
      expect(error.reason).toBe(reason);
    });
  }

  it('refuses an absolute path built at run time', async () => {
    const error = await refusal(directoryProvider(shared).open(join(base, 'secret.txt')));
    expect(error.reason).toBe('invalid-path');
    expect(error.code).toBe('ERR_INVALID_FIELD');
  });

  it('judges the file it opened, not the path it resolved a moment before (a swap in between)', async () => {
    const root = await realpath(shared);
    // As if each path had resolved inside and then been swapped before the open: the check sees the descriptor.
    for (const path of ['leak.txt', 'door/x.txt', 'docs/relative-leak.txt']) {
      const refused = await openFileSource(join(root, ...path.split('/')), {}, insideCheck(root, path)).catch((e) => e);
      expect(refused, path).toBeInstanceOf(RegistryError);
      expect((refused as RegistryError).reason, path).toBe('outside-root');
    }
    const fine = await openFileSource(join(root, 'a.txt'), { sha256: false }, insideCheck(root, 'a.txt'));
    expect(fine.size).toBe(5);
    expect(new TextDecoder().decode(await fine.read(0, 5))).toBe('hello');
    await fine.close!();
  });

  it('refuses a symlink that was swapped to point outside after listing', async () => {
    const provider = directoryProvider(shared);
    await writeFile(join(shared, 'swap.txt'), 'fine');
    expect((await provider.list()).map((f) => f.path)).toContain('swap.txt');
    await rm(join(shared, 'swap.txt'));
    await symlink(join(base, 'secret.txt'), join(shared, 'swap.txt'));
    const error = await refusal(provider.open('swap.txt'));
    expect(error.reason).toBe('outside-root');
    expect(error.code).toBe('ERR_NOT_PERMITTED');
    await rm(join(shared, 'swap.txt'));
  });
});

describe('directoryProvider behind a registry client', () => {
  it('serves a listed file, and refuses one swapped for a symlink out after listing (outside-root), sending no byte of it', async () => {
    const dir = join(base, 'served');
    await mkdir(dir);
    await writeFile(join(dir, 'ok.bin'), data);
    await writeFile(join(dir, 'swapped.txt'), 'fine');
    const world = registryWorld();
    try {
      const holder = world.client({ provider: directoryProvider(dir) });
      const requester = world.client({ provider: memoryProvider({}) });
      const id = (await waitFor(holder, (s) => s.context.id !== undefined)).context.id!;
      await waitFor(requester, (s) => s.context.peers[id]?.length === 2);
      // After listing, the file becomes a symlink to a secret outside the directory.
      await rm(join(dir, 'swapped.txt'));
      await symlink(join(base, 'secret.txt'), join(dir, 'swapped.txt'));
      const log = record<RegistryClientEmitted>(requester);
      const ok = memorySink();
      const leak = memorySink();
      requester.send({ type: 'requestFile', peer: id, path: 'ok.bin', sink: ok });
      requester.send({ type: 'requestFile', peer: id, path: 'swapped.txt', sink: leak });
      // Real file reads: wait in real time (500 turns of the event loop were too few on a loaded machine).
      await until(() => log.of('fetched').length + log.of('fetchFailed').length >= 2, 20_000);
      expect(log.of('fetched').map((e) => e.detail.path)).toEqual(['ok.bin']);
      expect(sha256Hex(ok.bytes())).toBe(sha256Hex(data));
      expect(log.of('fetchFailed').map((e) => [e.detail.path, e.detail.error.reason])).toEqual([
        ['swapped.txt', 'outside-root'],
      ]);
      expect(leak.bytes().byteLength).toBe(0);
    } finally {
      await world.close();
    }
  });
});
