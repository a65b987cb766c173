import { TransportError } from '../../src/errors.js';
import {
  TransportView,
  type Frame,
  type Transport,
  type TransportEvents,
  type TransportFunctions,
} from '../../src/transport.js';

/**
 * Spreads the registry server's bulk writes (announcement rounds, `Welcome`
 * lists) over turns of the event loop, so that a crowd joining never blocks
 * the process for long: `/health`, relays and every other connection are
 * served between the slices.
 *
 * Every connection's transport is wrapped in an {@link Pacer.outbox}; all
 * its frames go through it, in order:
 *
 * - A frame sent while its connection has nothing held is written at once,
 *   unless it is a bulk send ({@link Pacer.bulk}) and this turn's budget
 *   ({@link SLICE_SIZE} characters or {@link SLICE_FRAMES} frames, counting
 *   every frame written) is spent: then it is held.
 * - A frame sent while its connection has frames held goes behind them,
 *   bulk or not: a peer never gets a relay, an announcement or an `Error`
 *   ahead of what was sent to it before.
 * - Held frames are written a slice at a time, one slice a turn
 *   (`setImmediate`), connection after connection in the order they first
 *   had something held.
 *
 * Frames are written through the connection's own transport, so they count
 * toward its outbound cap (1008 `too slow`) as they are written. A
 * connection that closes (either side) has its held frames dropped.
 */
export interface Pacer {
  /** `transport`, its sends in order behind what is held for it. Add this one to the router. */
  outbox(transport: Transport): Transport;
  /** Runs `sends` (router sends) as bulk: past this turn's budget, their frames are held for later turns. */
  bulk(sends: () => void): void;
  /** Frames held for all connections. */
  readonly held: number;
  /** Drops everything held and stops writing (server shutdown). */
  stop(): void;
}

/** Characters written in one turn of the event loop before bulk frames are held for the next. */
export const SLICE_SIZE = 512 * 1024;

/** Frames written in one turn before bulk frames are held for the next (each is a socket write). */
export const SLICE_FRAMES = 256;

/** The options of {@link pacer}. */
export interface PacerOptions {
  /** @default SLICE_SIZE */
  sliceSize?: number;
  /** @default SLICE_FRAMES */
  sliceFrames?: number;
}

const sizeOf = (frame: Frame) => (typeof frame === 'string' ? frame.length : frame.byteLength);

/** One connection's side: what is held for it, and the transport the router is given. */
class Outbox implements TransportFunctions {
  readonly view: Transport;
  /** Frames held, in order, from `head`. */
  queue: Frame[] = [];
  head = 0;
  /** Characters (bytes of binary) held. */
  size = 0;

  constructor(
    readonly pacer: PacerState,
    readonly inner: Transport,
  ) {
    inner.on('close', () => pacer.drop(this));
    this.view = new TransportView(this);
  }

  get holding(): boolean {
    return this.head < this.queue.length;
  }

  isOpen(): boolean {
    return this.inner.isOpen;
  }

  bufferedAmount(): number {
    return this.inner.bufferedAmount + this.size;
  }

  send(frame: Frame): void {
    this.pacer.send(this, frame);
  }

  on<K extends keyof TransportEvents>(type: K, handler: (event: TransportEvents[K]) => void): () => void {
    return this.inner.on(type, handler);
  }

  close(code?: number, reason?: string): void {
    // A peer that goes is told nothing more: what is held for it is dropped.
    this.pacer.drop(this);
    this.inner.close(code, reason);
  }
}

class PacerState {
  /** Outboxes with frames held, in the order they first had some. */
  readonly waiting = new Set<Outbox>();
  held = 0;
  spent = 0;
  written = 0;
  inBulk = false;
  turn: NodeJS.Immediate | undefined;
  readonly sliceSize: number;
  readonly sliceFrames: number;

  constructor(options: PacerOptions) {
    this.sliceSize = options.sliceSize ?? SLICE_SIZE;
    this.sliceFrames = options.sliceFrames ?? SLICE_FRAMES;
  }

  get spentTurn(): boolean {
    return this.spent >= this.sliceSize || this.written >= this.sliceFrames;
  }

  send(box: Outbox, frame: Frame): void {
    if (!box.inner.isOpen) {
      box.inner.send(frame); // throws ERR_TRANSPORT_CLOSED, as the contract says
      return;
    }
    if (!box.holding && !(this.inBulk && this.spentTurn)) {
      this.write(box, frame);
      return;
    }
    box.queue.push(frame);
    box.size += sizeOf(frame);
    this.held++;
    this.waiting.add(box);
    this.arm();
  }

  write(box: Outbox, frame: Frame): void {
    this.spent += sizeOf(frame);
    this.written++;
    this.arm();
    box.inner.send(frame);
  }

  /** The budget is the turn's: the next turn starts it again, and writes what is held. */
  arm(): void {
    this.turn ??= setImmediate(() => {
      this.turn = undefined;
      this.spent = 0;
      this.written = 0;
      this.drain();
    });
  }

  drain(): void {
    for (const box of this.waiting) {
      if (!box.inner.isOpen) {
        this.drop(box);
        continue;
      }
      while (box.holding && !this.spentTurn) {
        const frame = box.queue[box.head]!;
        box.queue[box.head++] = '';
        box.size -= sizeOf(frame);
        this.held--;
        if (!box.holding) this.reset(box);
        else if (box.head >= 1024 && box.head * 2 >= box.queue.length) {
          // A connection that is never empty: its written frames are let go of now and then.
          box.queue = box.queue.slice(box.head);
          box.head = 0;
        }
        try {
          // Writing may close it (too slow): then the rest was dropped.
          this.write(box, frame);
        } catch (error) {
          if (!(error instanceof TransportError)) throw error;
          this.drop(box); // closed meanwhile: nobody to write to
        }
      }
      if (this.spentTurn) break;
    }
  }

  /** Forgets what is held for `box`. */
  drop(box: Outbox): void {
    this.held -= box.queue.length - box.head;
    this.reset(box);
  }

  reset(box: Outbox): void {
    box.queue = [];
    box.head = 0;
    box.size = 0;
    this.waiting.delete(box);
  }
}

/**
 * The {@link Pacer} of one registry server.
 *
 * @example
 * ```ts
 * const pace = pacer();
 * router.add(id, pace.outbox(transport));
 * pace.bulk(() => { for (const peer of peers) router.send(peer, round); });
 * ```
 */
export function pacer(options: PacerOptions = {}): Pacer {
  const state = new PacerState(options);
  return {
    outbox: (transport) => new Outbox(state, transport).view,
    bulk(sends) {
      const outer = state.inBulk;
      state.inBulk = true;
      try {
        sends();
      } finally {
        state.inBulk = outer;
      }
    },
    get held() {
      return state.held;
    },
    stop() {
      if (state.turn) clearImmediate(state.turn);
      state.turn = undefined;
      for (const box of state.waiting) state.drop(box);
    },
  };
}
