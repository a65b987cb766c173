import type { Announcer } from './announce.js';
import type { FileEntry } from './protocol.js';

/**
 * The shared peer list: who is registered and what files each lists. The
 * server's sessions read and write it only through this interface, so a
 * shared (multi-process) store can replace the in-memory one.
 */
export interface FileRegistry {
  /** Registers `id` with its list; false when the id is registered already. */
  add(id: string, files: readonly FileEntry[]): boolean;
  /** Replaces the list of a registered peer; false when `id` is not registered. */
  update(id: string, files: readonly FileEntry[]): boolean;
  /** Unregisters `id`; false when it was not registered. */
  remove(id: string): boolean;
  has(id: string): boolean;
  /** The list of `id`, or `undefined` when it is not registered. */
  files(id: string): readonly FileEntry[] | undefined;
  /** Every registered peer and its list, in registration order. */
  entries(): IterableIterator<[string, readonly FileEntry[]]>;
  /** Registered peers. */
  readonly size: number;
  /**
   * Called once by the server with its announcer: a shared (multi-process)
   * registry announces through it, to this process's peers, the peers
   * registered, updated and gone on other processes.
   */
  attach?(announcer: Pick<Announcer, 'announce' | 'registerPeer' | 'flush'>): void;
}

/**
 * The in-memory {@link FileRegistry}.
 *
 * @example
 * ```ts
 * const registry = memoryFileRegistry();
 * registry.add('peer-1', [{ path: 'a.txt', size: 5 }]);
 * registry.files('peer-1'); // [{ path: 'a.txt', size: 5 }]
 * ```
 */
export function memoryFileRegistry(): FileRegistry {
  const peers = new Map<string, readonly FileEntry[]>();
  return {
    add(id, files) {
      if (peers.has(id)) return false;
      peers.set(id, files);
      return true;
    },
    update(id, files) {
      if (!peers.has(id)) return false;
      peers.set(id, files);
      return true;
    },
    remove: (id) => peers.delete(id),
    has: (id) => peers.has(id),
    files: (id) => peers.get(id),
    entries: () => peers.entries(),
    get size() {
      return peers.size;
    },
  };
}
