import { sha256Hex } from '../transfer/files.js';
import type { Hash } from './protocol.js';

/**
 * Where a resource's bytes go while they arrive. Calls never overlap; the
 * writer is settled by exactly one of `commit` (the bytes were verified
 * against the hash: keep them) and `abort` (discard them).
 */
export interface ResourceWriter {
  write(chunk: Uint8Array): void | Promise<void>;
  commit(): void | Promise<void>;
  abort(reason?: unknown): void | Promise<void>;
}

/**
 * A peer's resources, named by SHA-256. The machines never touch a disk or
 * a database: they go through this. Only verified bytes are committed, so a
 * store serves only what matched its hash.
 *
 * Implementations: {@link memoryStore}; `directoryStore(dir)` from
 * `signalbox/fs` (Node).
 */
export interface ResourceStore {
  /** The size of `hash` if the store holds it. Synchronous: peers answer queries at once. */
  stat(hash: Hash): number | undefined;
  /** Resolves with exactly `length` bytes of `hash` from `offset`. */
  read(hash: Hash, offset: number, length: number): Promise<Uint8Array>;
  /** Opens a writer for `hash` of `size` bytes; nothing is visible until `commit`. */
  create(hash: Hash, size: number): Promise<ResourceWriter>;
  /** Hashes held. */
  list(): Hash[];
}

/** A {@link ResourceStore} in memory, with `add` to seed it. */
export interface MemoryStore extends ResourceStore {
  /** Stores `bytes` under their SHA-256, which it returns. */
  add(bytes: Uint8Array): Hash;
  /** The bytes of `hash`, if held. */
  get(hash: Hash): Uint8Array | undefined;
}

/**
 * The in-memory {@link ResourceStore}: the default of a swarm peer.
 *
 * @example
 * ```ts
 * const store = memoryStore();
 * const hash = store.add(new TextEncoder().encode('hello'));
 * createSwarmPeer({ url, store, RTCPeerConnection });
 * ```
 */
export function memoryStore(): MemoryStore {
  const resources = new Map<Hash, Uint8Array>();
  return {
    stat: (hash) => resources.get(hash)?.byteLength,
    async read(hash, offset, length) {
      const bytes = resources.get(hash);
      if (!bytes) throw new Error(`no resource ${hash}`);
      return bytes.slice(offset, offset + length);
    },
    async create(hash, size) {
      const parts: Uint8Array[] = [];
      let state: 'open' | 'committed' | 'aborted' = 'open';
      return {
        write(chunk) {
          if (state !== 'open') throw new Error(`write() on a ${state} resource writer`);
          parts.push(chunk.slice());
        },
        commit() {
          if (state !== 'open') return;
          state = 'committed';
          const bytes = new Uint8Array(size);
          let at = 0;
          for (const part of parts) {
            bytes.set(part, at);
            at += part.byteLength;
          }
          resources.set(hash, bytes);
        },
        abort() {
          if (state === 'open') state = 'aborted';
        },
      };
    },
    list: () => [...resources.keys()],
    add(bytes) {
      const hash = sha256Hex(bytes);
      resources.set(hash, bytes.slice());
      return hash;
    },
    get: (hash) => resources.get(hash),
  };
}
