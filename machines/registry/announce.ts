import type { MessageOf } from '../../src/message.js';
import type { Router } from '../../src/router.js';
import type { Announcement, FileEntry, ServerMessage } from './protocol.js';
import type { FileRegistry } from './registry.js';

/**
 * Delivers the registry's announcements (`RegisterPeer`, `UpdatePeer`,
 * `UnregisterPeer`) to every other registered peer, cheaply when thousands
 * join at once:
 *
 * - Announcements made in one turn of the event loop are queued and sent
 *   together (`setImmediate`). A recipient with one queued announcement gets
 *   it as its own frame (the seed's format); one with several gets them in
 *   one `Batch` frame, in order.
 * - Recipients that get the same announcements get the same message object,
 *   which the server's router encodes once (so a burst costs one encode per
 *   distinct batch, not one per peer).
 * - A recipient never gets its own announcements, nor those made before it
 *   registered (the `Welcome` list already holds them).
 */
export interface Announcer {
  /** Queues `message`, made by `from`, for every registered peer but `from`. */
  announce(from: string, message: Announcement): void;
  /**
   * `id` registered now: it gets the announcements made from now on. Call it
   * after its `Welcome` list was sent and its own `RegisterPeer` announced.
   */
  joined(id: string): void;
  /**
   * Sends what is queued for `id` now. Call it before a direct message to
   * `id` (a relay), so that it never hears from a peer it has not yet been
   * told about, or about a peer after it was told it left.
   */
  flush(id: string): void;
  /** The `RegisterPeer` for a peer's current list, one object per list (so it is encoded once). */
  registerPeer(peer: string, files: readonly FileEntry[]): MessageOf<ServerMessage, 'RegisterPeer'>;
  /** Stops the pending delivery (server shutdown: nobody is told anything more). */
  stop(): void;
}

interface Queued {
  from: string;
  message: Announcement;
}

/** What is queued for delivery at the end of this turn. */
interface Round {
  queue: Queued[];
  /** Where a recipient's share of `queue` starts, when not at 0 (it registered or was flushed since). */
  starts: Map<string, number>;
  /** The index in `queue` of each peer's last own announcement. */
  lastOwn: Map<string, number>;
}

const emptyRound = (): Round => ({ queue: [], starts: new Map(), lastOwn: new Map() });

/** The {@link Announcer} of one registry server. */
export function announcer(router: Router<ServerMessage>, registry: FileRegistry): Announcer {
  let round = emptyRound();
  let pending: ReturnType<typeof setImmediate> | undefined;
  const registerMessages = new WeakMap<readonly FileEntry[], MessageOf<ServerMessage, 'RegisterPeer'>>();

  /** One message for `events`: the announcement itself when alone, else a `Batch`. */
  const frameOf = (events: Announcement[]): ServerMessage =>
    events.length === 1 ? events[0]! : { type: 'Batch', detail: { events } };

  /** The message `id` gets for `queue` from `start`, or undefined when there is nothing for it. */
  function share({ queue, lastOwn }: Round, id: string, start: number, shared: Map<number, ServerMessage | undefined>) {
    if ((lastOwn.get(id) ?? -1) < start) {
      // The common case: the same slice as every other recipient that starts here.
      if (!shared.has(start)) {
        const events = queue.slice(start).map((q) => q.message);
        shared.set(start, events.length === 0 ? undefined : frameOf(events));
      }
      return shared.get(start);
    }
    const events = queue.slice(start).flatMap((q) => (q.from === id ? [] : [q.message]));
    return events.length === 0 ? undefined : frameOf(events);
  }

  function deliver(): void {
    pending = undefined;
    // A send may end a session (a recipient closed as too slow) whose leave is announced at
    // once: that goes in the next round, not into the one being delivered (nor is it lost).
    const delivering = round;
    round = emptyRound();
    const shared = new Map<number, ServerMessage | undefined>();
    for (const [peer] of registry.entries()) {
      const message = share(delivering, peer, delivering.starts.get(peer) ?? 0, shared);
      if (message) router.send(peer, message);
    }
  }

  return {
    announce(from, message) {
      round.lastOwn.set(from, round.queue.length);
      round.queue.push({ from, message });
      pending ??= setImmediate(deliver);
    },
    joined(id) {
      if (round.queue.length > 0) round.starts.set(id, round.queue.length);
    },
    flush(id) {
      const start = round.starts.get(id) ?? 0;
      if (start >= round.queue.length || !registry.has(id)) return;
      const message = share(round, id, start, new Map());
      round.starts.set(id, round.queue.length);
      if (message) router.send(id, message);
    },
    registerPeer(peer, files) {
      let message = registerMessages.get(files);
      if (message?.detail.peer !== peer) {
        message = { type: 'RegisterPeer', detail: { peer, files: files as FileEntry[] } };
        registerMessages.set(files, message);
      }
      return message;
    },
    stop() {
      if (pending) clearImmediate(pending);
      pending = undefined;
      round = emptyRound();
    },
  };
}
