import type { Clock } from '../../src/clock.js';
import { clockNow } from '../../src/limits.js';
import type { MessageOf } from '../../src/message.js';
import type { Router } from '../../src/router.js';
import type { Announcement, FileEntry, ServerMessage } from './protocol.js';
import type { Pacer } from './pacer.js';
import type { FileRegistry } from './registry.js';
import { WelcomeList, WELCOME_BATCH_SIZE } from './welcome.js';

export { WELCOME_BATCH_SIZE };

/**
 * Delivers the registry's announcements (`RegisterPeer`, `UpdatePeer`,
 * `UnregisterPeer`) to every other registered peer, cheaply when thousands
 * join at once:
 *
 * - Announcements are queued and sent together in rounds. A round goes out
 *   at the end of the turn of the event loop it started in (`setImmediate`)
 *   while there are few peers, and later as they grow: each round writes
 *   one frame to every registered peer, so rounds are spaced by
 *   {@link ANNOUNCE_PACE} (peers ÷ 20 ms: 5 ms at 100 peers, 250 ms at
 *   5,000) to keep the writes at about 20,000 a second however many join.
 *   A recipient with one queued announcement gets it as its own frame (the
 *   seed's format); one with several gets them in one `Batch` frame, in
 *   order. With a {@link Pacer}, a round and each `Welcome` list are bulk
 *   writes, spread over turns; a round due while the pacer still holds
 *   frames waits for them, a turn at a time, at most
 *   {@link MAX_ANNOUNCE_DELAY} more.
 * - Every announcement also keeps the `Welcome` list in step (see
 *   {@link WelcomeList}), so a newcomer costs no pass over every peer.
 * - Recipients that get the same announcements get the same message object,
 *   which the server's router encodes once (so a burst costs one encode per
 *   distinct batch, not one per peer).
 * - A recipient never gets its own announcements, nor those made before it
 *   registered (the `Welcome` list already holds them).
 * - Only peers connected to this process are sent anything: with a shared
 *   registry, each process announces to its own peers what it learns from
 *   the others (see {@link FileRegistry.attach}).
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
  /**
   * What a newcomer is sent after `Welcome`: a `RegisterPeer` for every
   * registered peer, each its own frame, or with `batch` in `Batch` frames of
   * at most {@link WELCOME_BATCH_SIZE} characters (one event at least).
   */
  welcomeList(batch: boolean): ServerMessage[];
  /**
   * Sends `id` its `Welcome` and its {@link welcomeList} (paced, see
   * {@link Pacer}). Call it before `id` is added to the registry.
   */
  welcome(id: string, batch: boolean): void;
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

/**
 * Registered peers per millisecond of delay before a round of announcements
 * goes out: a round for `n` peers waits `n / ANNOUNCE_PACE` ms (at most
 * {@link MAX_ANNOUNCE_DELAY}), so the frames it writes come to about
 * `ANNOUNCE_PACE` × 1000 a second at most, whatever the crowd (each is a
 * write to a socket, the cost that made thousands of joins pile up).
 */
export const ANNOUNCE_PACE = 20;

/** The longest an announcement waits for its round, in ms. */
export const MAX_ANNOUNCE_DELAY = 250;

/** The server's encodings, shared with its router: encoded once, and frames built by hand filed under their message. */
export interface FrameCache {
  encode(message: ServerMessage): string;
  remember(message: ServerMessage, frame: string): void;
}

/**
 * The {@link Announcer} of one registry server. `clock` times the rounds (a
 * `SimulatedClock` in tests); `frames` is the router's encoder, through
 * which a `Welcome` list's `Batch` frames are joined from the frames of
 * their events instead of encoded again (without it they are encoded whole).
 */
export function announcer(
  router: Router<ServerMessage>,
  registry: FileRegistry,
  { clock, frames, pacer }: { clock?: Clock; frames?: FrameCache; pacer?: Pick<Pacer, 'bulk' | 'held'> } = {},
): Announcer {
  const bulk = pacer ? (sends: () => void) => pacer.bulk(sends) : (sends: () => void) => sends();
  const now = clockNow(clock);
  let round = emptyRound();
  /** Cancels the scheduled round, if any. */
  let pending: (() => void) | undefined;
  /** When the round due now was first due (it waits for the pacer), or undefined. */
  let due: number | undefined;

  /**
   * A round due while the pacer still holds frames waits for them, a turn at
   * a time, at most {@link MAX_ANNOUNCE_DELAY} more: while the server is
   * behind, more announcements go in one round, and fewer frames are written.
   */
  const ready = () => {
    if (!pacer || pacer.held === 0) return true;
    const at = now();
    due ??= at;
    if (at - due >= MAX_ANNOUNCE_DELAY) return true;
    const immediate = setImmediate(deliver);
    pending = () => clearImmediate(immediate);
    return false;
  };

  const schedule = () => {
    const delay = Math.min(MAX_ANNOUNCE_DELAY, Math.floor(registry.size / ANNOUNCE_PACE));
    if (delay < 1) {
      const immediate = setImmediate(deliver);
      pending = () => clearImmediate(immediate);
    } else if (clock) {
      const timer = clock.setTimeout(deliver, delay);
      pending = () => clock.clearTimeout(timer);
    } else {
      const timer = setTimeout(deliver, delay);
      pending = () => clearTimeout(timer);
    }
  };
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
    if (!ready()) return;
    due = undefined;
    // A send may end a session (a recipient closed as too slow) whose leave is announced at
    // once: that goes in the next round, not into the one being delivered (nor is it lost).
    const delivering = round;
    round = emptyRound();
    const shared = new Map<number, ServerMessage | undefined>();
    bulk(() => {
      for (const [peer] of registry.entries()) {
        // A peer held by another process (a shared registry) hears it from its own process.
        if (!router.has(peer)) continue;
        const message = share(delivering, peer, delivering.starts.get(peer) ?? 0, shared);
        if (message) router.send(peer, message);
      }
    });
  }

  const registerPeer = (peer: string, files: readonly FileEntry[]) => {
    let message = registerMessages.get(files);
    if (message?.detail.peer !== peer) {
      message = { type: 'RegisterPeer', detail: { peer, files: files as FileEntry[] } };
      registerMessages.set(files, message);
    }
    return message;
  };

  const welcome = new WelcomeList(registry, registerPeer, frames);

  return {
    announce(from, message) {
      welcome.announced(message);
      round.lastOwn.set(from, round.queue.length);
      round.queue.push({ from, message });
      if (!pending) schedule();
    },
    joined(id) {
      if (round.queue.length > 0) round.starts.set(id, round.queue.length);
    },
    flush(id) {
      const start = round.starts.get(id) ?? 0;
      if (start >= round.queue.length || !registry.has(id) || !router.has(id)) return;
      const message = share(round, id, start, new Map());
      round.starts.set(id, round.queue.length);
      if (message) router.send(id, message);
    },
    registerPeer,
    welcomeList: (batch) => welcome.messages(batch),
    welcome(id, batch) {
      // `peers` tells the client how many `RegisterPeer` follow, so it knows when its list is whole.
      const list = welcome.messages(batch);
      bulk(() => {
        router.send(id, { type: 'Welcome', detail: { id, peers: registry.size } });
        for (const message of list) router.send(id, message);
      });
    },
    stop() {
      pending?.();
      pending = undefined;
      due = undefined;
      round = emptyRound();
    },
  };
}
