import type { MessageOf } from '../../src/message.js';
import type { FrameCache } from './announce.js';
import type { Announcement, FileEntry, ServerMessage } from './protocol.js';
import type { FileRegistry } from './registry.js';

/**
 * Most characters of one `Batch` frame of a `Welcome` list (unless one event
 * alone is larger). The last frame is joined again for each newcomer, so
 * the smaller the frames, the less a join costs; the larger, the fewer
 * frames a newcomer gets (7 for 5,000 peers with empty lists).
 */
export const WELCOME_BATCH_SIZE = 64 * 1024;

type RegisterPeer = MessageOf<ServerMessage, 'RegisterPeer'>;

/** One registered peer as a newcomer is told of it: its list, its `RegisterPeer` and that one's frame. */
interface Entry {
  list: readonly FileEntry[];
  message: RegisterPeer;
  part: string;
}

/**
 * Consecutive peers of the list whose `RegisterPeer` go out in one frame
 * (`Batch`, or the announcement itself when alone), at most
 * {@link WELCOME_BATCH_SIZE} characters with the commas between them.
 */
class Chunk {
  readonly entries = new Map<string, Entry>();
  size = 0;
  /** The frame's message while the chunk is as it was when built. */
  message: ServerMessage | undefined;
}

/**
 * The `Welcome` list, kept in step with the registry by the announcements
 * (every change to the registry is announced: `RegisterPeer`, `UpdatePeer`,
 * `UnregisterPeer`), so that a newcomer costs no pass over every peer: the
 * `Batch` frames of chunks nobody changed are reused as they are, the last
 * one is grown by the newcomers that join. Should the registry hold another
 * number of peers than this list (changed without an announcement), the list
 * is built again from it.
 */
export class WelcomeList {
  private chunks: Chunk[] = [];
  private readonly where = new Map<string, Chunk>();

  constructor(
    private readonly registry: FileRegistry,
    private readonly registerPeer: (peer: string, list: readonly FileEntry[]) => RegisterPeer,
    private readonly frames: FrameCache | undefined,
  ) {
    this.rebuild();
  }

  /** Keeps the list in step with an announcement made. */
  announced(message: Announcement): void {
    const { peer } = message.detail;
    if (message.type === 'UnregisterPeer') return this.remove(peer);
    const list = message.detail.files;
    const chunk = this.where.get(peer);
    if (chunk) {
      if (chunk.entries.get(peer)!.list === list) return;
      chunk.entries.set(peer, this.entry(peer, list));
      this.rechunk(chunk);
    } else if (message.type === 'RegisterPeer') this.append(peer, this.entry(peer, list));
  }

  /**
   * The `RegisterPeer` of every registered peer, in registration order: each
   * its own message, or with `batch` in `Batch` frames.
   */
  messages(batch: boolean): ServerMessage[] {
    if (this.where.size !== this.registry.size) this.rebuild();
    if (!batch) {
      const out: ServerMessage[] = [];
      for (const chunk of this.chunks) for (const { message } of chunk.entries.values()) out.push(message);
      return out;
    }
    return this.chunks.map((chunk) => (chunk.message ??= this.frameOf(chunk)));
  }

  private entry(peer: string, list: readonly FileEntry[]): Entry {
    const message = this.registerPeer(peer, list);
    return { list, message, part: this.frames ? this.frames.encode(message) : JSON.stringify(message) };
  }

  private rebuild(): void {
    this.chunks = [];
    this.where.clear();
    for (const [peer, list] of this.registry.entries()) this.append(peer, this.entry(peer, list));
  }

  private append(peer: string, entry: Entry): void {
    let last = this.chunks.at(-1);
    if (!last || (last.entries.size > 0 && last.size + entry.part.length > WELCOME_BATCH_SIZE)) {
      last = new Chunk();
      this.chunks.push(last);
    }
    last.entries.set(peer, entry);
    last.size += entry.part.length + 1;
    this.where.set(peer, last);
    last.message = undefined;
  }

  private remove(peer: string): void {
    const chunk = this.where.get(peer);
    if (!chunk) return;
    this.where.delete(peer);
    chunk.entries.delete(peer);
    this.rechunk(chunk);
  }

  /** `chunk` changed other than at its end: built again, split if it grew too large, dropped if empty. */
  private rechunk(chunk: Chunk): void {
    const at = this.chunks.indexOf(chunk);
    const parts: Chunk[] = [];
    let current = new Chunk();
    for (const [peer, entry] of chunk.entries) {
      if (current.entries.size > 0 && current.size + entry.part.length > WELCOME_BATCH_SIZE) {
        parts.push(current);
        current = new Chunk();
      }
      current.entries.set(peer, entry);
      current.size += entry.part.length + 1;
      this.where.set(peer, current);
    }
    if (current.entries.size > 0) parts.push(current);
    this.chunks.splice(at, 1, ...parts);
  }

  /** The frame of `chunk`: its one event alone, or a `Batch` whose frame is joined from theirs. */
  private frameOf(chunk: Chunk): ServerMessage {
    const entries = [...chunk.entries.values()];
    if (entries.length === 1) return entries[0]!.message;
    const message: ServerMessage = { type: 'Batch', detail: { events: entries.map((e) => e.message) } };
    this.frames?.remember(message, `{"type":"Batch","detail":{"events":[${entries.map((e) => e.part).join(',')}]}}`);
    return message;
  }
}
