import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Stream } from '../../machines/transfer/files.js';
import { isHash, type Hash } from '../../machines/swarm/protocol.js';
import type { ResourceStore, ResourceWriter } from '../../machines/swarm/store.js';

/** Options of {@link directoryStore}. */
export interface DirectoryStoreInit {
  /**
   * Hash every file found at start and leave out those whose content does
   * not match their name (a file changed on disk is never served).
   * @default true
   */
  verify?: boolean;
}

/**
 * A swarm {@link ResourceStore} in a directory: one file per resource,
 * named by its SHA-256. Arriving bytes go to a `.part` file that is renamed
 * into place only on `commit` (after the peer verified them) and deleted on
 * `abort`. Files already there are indexed at start (and, by default,
 * verified). Node only.
 *
 * @example
 * ```ts
 * const store = await directoryStore('./resources');
 * createSwarmPeer({ signalling, rtc: { RTCPeerConnection }, store });
 * ```
 */
export async function directoryStore(dir: string, init: DirectoryStoreInit = {}): Promise<ResourceStore> {
  await mkdir(dir, { recursive: true });
  const sizes = new Map<Hash, number>();
  for (const name of await readdir(dir)) {
    if (name.endsWith('.part')) {
      await rm(join(dir, name), { force: true });
      continue;
    }
    if (!isHash(name)) continue;
    const info = await stat(join(dir, name));
    if (!info.isFile()) continue;
    if ((init.verify ?? true) && (await hashFile(join(dir, name), info.size)) !== name) continue;
    sizes.set(name, info.size);
  }
  let parts = 0;

  const read = async (hash: Hash, offset: number, length: number) => {
    if (!sizes.has(hash)) throw new Error(`no resource ${hash}`);
    const handle = await open(join(dir, hash), 'r');
    try {
      const buffer = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        const { bytesRead } = await handle.read(buffer, filled, length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return filled === length ? buffer : buffer.subarray(0, filled);
    } finally {
      await handle.close();
    }
  };

  return {
    stat: (hash) => sizes.get(hash),
    read,
    async create(hash, size) {
      if (!isHash(hash)) throw new Error(`${JSON.stringify(hash)} is not a SHA-256: not a safe file name`);
      const part = join(dir, `${hash}.${++parts}.part`);
      const handle = await open(part, 'w');
      let state: 'open' | 'committed' | 'aborted' = 'open';
      const writer: ResourceWriter = {
        async write(chunk) {
          if (state !== 'open') throw new Error(`write() on a ${state} resource writer`);
          await handle.write(chunk);
        },
        async commit() {
          if (state !== 'open') return;
          state = 'committed';
          await handle.close();
          await rename(part, join(dir, hash));
          sizes.set(hash, size);
        },
        async abort() {
          if (state !== 'open') return;
          state = 'aborted';
          await handle.close().catch(() => {});
          await rm(part, { force: true });
        },
      };
      return writer;
    },
    list: () => [...sizes.keys()],
  };
}

async function hashFile(path: string, size: number): Promise<string> {
  const hash = sha256Stream();
  const handle = await open(path, 'r');
  try {
    const buffer = new Uint8Array(1 << 20);
    for (let offset = 0; offset < size;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.byteLength, offset);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      offset += bytesRead;
    }
  } finally {
    await handle.close();
  }
  return hash.hex();
}
