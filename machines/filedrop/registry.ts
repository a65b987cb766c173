/**
 * Who is connected and who has asked whom. The hub and its sessions read
 * and write this shared state only through this interface, so a shared
 * (multi-process) store can replace the in-memory one.
 */
export interface PeerRegistry {
  /** Registers a connected peer; false when the id is taken. */
  add(id: string): boolean;
  /**
   * Forgets `id` and its requests; returns the peers it exchanged messages
   * with, for the caller to tell. A shared registry returns those held by
   * this process and has each other process tell its own.
   */
  remove(id: string): string[];
  has(id: string): boolean;
  /** Records that `receiver` sent `request` to `sender`: from now on they may exchange the rest. */
  link(receiver: string, sender: string): void;
  /** True when `receiver` has sent `request` to `sender` and both are still connected. */
  isLinked(receiver: string, sender: string): boolean;
  /** Connected peers. */
  readonly peers: number;
  /** Receiver → sender links. */
  readonly pairs: number;
}

/**
 * The in-memory {@link PeerRegistry}.
 *
 * @example
 * ```ts
 * const registry = memoryRegistry();
 * registry.add('K7PQ2MZA');
 * registry.add('H3XN8RTW');
 * registry.link('H3XN8RTW', 'K7PQ2MZA'); // H3XN8RTW asked K7PQ2MZA for its file
 * registry.remove('K7PQ2MZA'); // ['H3XN8RTW']
 * ```
 */
export function memoryRegistry(): PeerRegistry {
  /**
   * Each peer's links, both ways: `asked` = senders it requested from, `askedBy` = receivers that
   * requested from it. Each Set is made on first use: most connected peers never ask or are asked
   * (an empty Set is ~150 B, and a server holds one entry per connection).
   */
  const peers = new Map<string, { asked?: Set<string>; askedBy?: Set<string> }>();
  let pairs = 0;
  return {
    add(id) {
      if (peers.has(id)) return false;
      peers.set(id, {});
      return true;
    },
    remove(id) {
      const entry = peers.get(id);
      if (!entry) return [];
      peers.delete(id);
      const asked = entry.asked ?? [];
      const askedBy = entry.askedBy ?? [];
      for (const sender of asked) peers.get(sender)?.askedBy?.delete(id);
      for (const receiver of askedBy) peers.get(receiver)?.asked?.delete(id);
      pairs -= (entry.asked?.size ?? 0) + (entry.askedBy?.size ?? 0);
      return [...new Set([...asked, ...askedBy])];
    },
    has: (id) => peers.has(id),
    link(receiver, sender) {
      const r = peers.get(receiver);
      const s = peers.get(sender);
      if (!r || !s || r.asked?.has(sender)) return;
      (r.asked ??= new Set()).add(sender);
      (s.askedBy ??= new Set()).add(receiver);
      pairs++;
    },
    isLinked: (receiver, sender) => peers.get(receiver)?.asked?.has(sender) === true,
    get peers() {
      return peers.size;
    },
    get pairs() {
      return pairs;
    },
  };
}
