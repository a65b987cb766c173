import type { Emitter, EventType } from 'mitt';
import { ErrorCode, TransportError } from './errors.js';

/** What travels over a transport: a text frame or a binary frame. */
export type Frame = string | Uint8Array;

/** Why and how a transport closed. */
export interface CloseInfo {
  /** A WebSocket-style close code: 1000 normal, 1006 abnormal (the link dropped). */
  readonly code: number;
  readonly reason: string;
  /** `local` when this side called `close()`, `remote` otherwise. */
  readonly initiator: 'local' | 'remote';
}

export type TransportEvents = {
  /** A frame arrived. */
  message: Frame;
  /** The transport closed. Emitted exactly once. */
  close: CloseInfo;
  /** The channel reported a failure. A `close` follows. */
  error: TransportError;
  /** `bufferedAmount` fell to the low-water mark after crossing the high-water mark. */
  drain: undefined;
};

/**
 * One duplex, message-oriented connection. Every adapter returns one.
 *
 * Contract (the compliance suite in `test/transport-compliance.ts` checks it):
 * - It MUST be open when handed out; it only ever moves to closed.
 * - It MUST deliver frames in the order they were sent, text as `string` and
 *   binary as `Uint8Array`.
 * - Frames that arrive while nobody listens for `message` MUST be kept and
 *   delivered, in order, to the first `message` listener, even when the
 *   remote closed in the meantime (`close` then follows them), as long as
 *   that listener subscribes before the next macrotask.
 * - `close()` MUST be idempotent. Whichever side closes, each side MUST emit
 *   `close` exactly once; the closing side sees `initiator: 'local'`, the
 *   other `initiator: 'remote'`.
 * - `send()` after close MUST throw a {@link TransportError} with code
 *   `ERR_TRANSPORT_CLOSED`.
 * - A listener MUST be able to unsubscribe (itself or another) while being
 *   called; the current dispatch is unaffected.
 */
export interface Transport {
  /** False once closed, whichever side closed it. */
  readonly isOpen: boolean;
  /** Bytes queued locally and not yet handed to the network (0 where unknown). */
  readonly bufferedAmount: number;
  /** Sends a frame. Throws `ERR_TRANSPORT_CLOSED` once closed. */
  send(frame: Frame): void;
  /** Subscribes; returns the unsubscribe function. */
  on<K extends keyof TransportEvents>(type: K, handler: (event: TransportEvents[K]) => void): () => void;
  /** Closes both directions. Idempotent. @default code 1000 */
  close(code?: number, reason?: string): void;
}

/** Where a server-side connection came from. */
export interface ConnectionInfo {
  /** Request path without the query, e.g. `/ws/my-game`. */
  readonly path: string;
  readonly query: URLSearchParams;
  readonly remoteAddress: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export type TransportServerEvents = {
  connection: { transport: Transport; info: ConnectionInfo };
  close: undefined;
};

/**
 * Decides whether a client may connect, before the connection is accepted
 * (for WebSocket: before the upgrade). `true` accepts; `false` refuses with
 * HTTP 403, a number with that status (401, 403, 503). It may be async; a
 * throw or rejection refuses with 403.
 */
export type ConnectionCheck = (info: ConnectionInfo) => boolean | number | Promise<boolean | number>;

/** Accepts connections and hands each out as an open {@link Transport}. */
export interface TransportServer {
  on<K extends keyof TransportServerEvents>(type: K, handler: (event: TransportServerEvents[K]) => void): () => void;
  /**
   * Adds a check every new connection must pass before it is accepted, after
   * those added before it; returns the function that removes it. Absent on a
   * transport server that cannot refuse a connection before it opens.
   */
  verify?(check: ConnectionCheck): () => void;
  /** Stops accepting and closes every open connection. */
  close(): Promise<void>;
}

/** The adapter-facing half of a transport built with {@link createTransport}. */
export interface TransportControl {
  readonly transport: Transport;
  /** Call when a frame arrives from the channel. */
  receive(frame: Frame): void;
  /** Call when the channel closed without our asking (or finished closing). */
  closed(code: number, reason: string): void;
  /** Call when the channel reports a failure; the adapter should then call `closed`. */
  failed(error: unknown): void;
  /** Call when the channel's send buffer drained. */
  drained(): void;
}

export interface TransportImpl {
  send(frame: Frame): void;
  /** Start closing the channel; called at most once, from `transport.close()`. */
  close(code: number, reason: string): void;
  bufferedAmount?(): number;
}

/** The functions behind a {@link TransportView}. */
export interface TransportFunctions {
  isOpen(): boolean;
  bufferedAmount(): number;
  send(frame: Frame): void;
  on: Transport['on'];
  close(code?: number, reason?: string): void;
}

/**
 * @internal A {@link Transport} over plain functions. A class, so that its
 * getters live on a shared prototype: V8 keeps an object literal with getters
 * in dictionary mode (about 450 bytes each, and a hash lookup on every
 * access), and a server holds one or two transports per connection.
 */
export class TransportView implements Transport {
  // An ordinary (TypeScript-private) property, not `#fns`: a caller may wrap
  // a transport with `Object.create(transport)` or a Proxy, and a `#` field is
  // unreachable through those. Not enumerable: `fns` is often the object
  // holding this view (a cycle) or a socket, and a transport sits in machine
  // contexts that inspectors and model tests serialize as JSON.
  declare private readonly fns: TransportFunctions;
  constructor(fns: TransportFunctions) {
    Object.defineProperty(this, 'fns', { value: fns });
  }
  get isOpen(): boolean {
    return this.fns.isOpen();
  }
  get bufferedAmount(): number {
    return this.fns.bufferedAmount();
  }
  send(frame: Frame): void {
    this.fns.send(frame);
  }
  on<K extends keyof TransportEvents>(type: K, handler: (event: TransportEvents[K]) => void): () => void {
    return this.fns.on(type, handler);
  }
  close(code?: number, reason?: string): void {
    this.fns.close(code, reason);
  }
}

/**
 * Builds a {@link Transport} that keeps the contract (ordering of listeners,
 * idempotent close, send-after-close errors, buffering until the first
 * listener) so that an adapter only bridges its channel.
 *
 * @example
 * ```ts
 * const control = createTransport({
 *   send: (frame) => socket.send(frame),
 *   close: (code, reason) => socket.close(code, reason),
 * });
 * socket.onmessage = (e) => control.receive(e.data);
 * socket.onclose = (e) => control.closed(e.code, e.reason);
 * return control.transport;
 * ```
 */
export function createTransport(impl: TransportImpl): TransportControl {
  return new ManagedTransport(impl);
}

type Handler = (event: unknown) => void;

/**
 * What {@link createTransport} returns: the transport's state, its
 * functions (wrapped in a {@link TransportView} for the consumer) and the
 * adapter's side. A class, not closures over local variables: a server holds
 * one per connection, and a dozen closures with their context cost more than
 * the connection's socket.
 */
class ManagedTransport implements TransportFunctions, TransportControl {
  readonly transport: Transport;
  private readonly impl: TransportImpl;
  private open = true;
  private closeSent = false;
  private localClose: { code: number; reason: string } | undefined;
  private backlog: Frame[] | undefined;
  private flushScheduled = false;
  private pendingClose: CloseInfo | undefined;
  // Listeners by event, without a Map per transport: arrays of their exact
  // size (one that grew by push holds room for 17), copied on change.
  private onMessage: readonly Handler[] | undefined;
  private onClose: readonly Handler[] | undefined;
  private onError: readonly Handler[] | undefined;
  private onDrain: readonly Handler[] | undefined;

  constructor(impl: TransportImpl) {
    this.impl = impl;
    this.transport = new TransportView(this);
  }

  // --- TransportFunctions: what the consumer calls through the view.

  isOpen(): boolean {
    return this.open;
  }

  bufferedAmount(): number {
    return this.open && this.impl.bufferedAmount ? this.impl.bufferedAmount() : 0;
  }

  send(frame: Frame): void {
    if (!this.open) throw new TransportError(ErrorCode.TransportClosed, 'send() on a closed transport');
    this.impl.send(frame);
  }

  on<K extends keyof TransportEvents>(type: K, handler: (event: TransportEvents[K]) => void): () => void {
    if (this.closeSent) return () => {};
    const h = handler as Handler;
    const list = this.listeners(type);
    this.setListeners(type, list ? list.concat(h) : [h]);
    if (type === 'message' && this.backlog && !this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => this.flush());
    }
    return () => {
      const current = this.listeners(type);
      // As mitt: removes the first registration of this handler, if any.
      const at = current ? current.indexOf(h) : -1;
      if (at >= 0) this.setListeners(type, current!.length === 1 ? undefined : current!.filter((_, i) => i !== at));
    };
  }

  close(code = 1000, reason = ''): void {
    if (!this.open) return;
    this.open = false;
    this.localClose = { code, reason };
    try {
      this.impl.close(code, reason);
    } finally {
      this.finish(code, reason);
    }
  }

  // --- TransportControl: what the adapter calls.

  receive(frame: Frame): void {
    if (!this.open) return;
    if (this.backlog || !this.hasListener()) {
      (this.backlog ??= []).push(frame);
      if (this.hasListener() && !this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
      return;
    }
    this.emit(this.onMessage, frame);
  }

  closed(code: number, reason: string): void {
    this.finish(code, reason);
  }

  failed(error: unknown): void {
    if (this.closeSent) return;
    const err =
      error instanceof TransportError
        ? error
        : new TransportError(ErrorCode.TransportFailed, error instanceof Error ? error.message : String(error), {
            cause: error,
          });
    this.emit(this.onError, err);
  }

  drained(): void {
    if (this.open) this.emit(this.onDrain, undefined);
  }

  // --- Internals.

  private listeners(type: keyof TransportEvents): readonly Handler[] | undefined {
    switch (type) {
      case 'message':
        return this.onMessage;
      case 'close':
        return this.onClose;
      case 'error':
        return this.onError;
      default:
        return this.onDrain;
    }
  }

  private setListeners(type: keyof TransportEvents, list: readonly Handler[] | undefined): void {
    switch (type) {
      case 'message':
        this.onMessage = list;
        break;
      case 'close':
        this.onClose = list;
        break;
      case 'error':
        this.onError = list;
        break;
      default:
        this.onDrain = list;
    }
  }

  // The lists are replaced, never changed in place, so an emit walks the
  // listeners of the moment without copying them.
  private emit(list: readonly Handler[] | undefined, event: unknown): void {
    if (list) for (const handler of list) handler(event);
  }

  private hasListener(): boolean {
    return this.onMessage !== undefined;
  }

  private emitClose(info: CloseInfo): void {
    this.closeSent = true;
    this.open = false;
    this.backlog = undefined;
    this.pendingClose = undefined;
    this.emit(this.onClose, info);
    this.onMessage = this.onClose = this.onError = this.onDrain = undefined;
  }

  // Frames kept while nobody listened go out on a later microtask, so a
  // handler never runs inside the `on()` call that registered it.
  private flush(): void {
    this.flushScheduled = false;
    while (this.backlog?.length && this.hasListener() && (this.open || this.pendingClose)) {
      this.emit(this.onMessage, this.backlog.shift()!);
    }
    if (!this.backlog?.length) {
      this.backlog = undefined;
      if (this.pendingClose) this.emitClose(this.pendingClose);
    }
  }

  private finish(code: number, reason: string): void {
    if (this.closeSent || this.pendingClose) return;
    if (this.localClose) {
      this.emitClose({ code: this.localClose.code, reason: this.localClose.reason, initiator: 'local' });
      return;
    }
    const info: CloseInfo = { code, reason, initiator: 'remote' };
    // A remote close can overtake the scheduled flush: frames that arrived
    // before it still go to the listeners that subscribed in time.
    if (this.backlog?.length && this.hasListener()) this.flush();
    if (this.closeSent) return;
    if (this.backlog?.length) {
      // Nobody listens yet (say, the server's last words before it hung up):
      // keep the frames for a listener that subscribes in this tick, and
      // report the close after them.
      this.open = false;
      this.pendingClose = info;
      setTimeout(() => {
        if (this.pendingClose === info) this.emitClose(info);
      }, 0);
      return;
    }
    this.emitClose(info);
  }
}

/**
 * The `on(type, handler)` of a {@link TransportServer} (or any evented
 * object) over a mitt emitter: it returns the unsubscribe function.
 *
 * @example
 * ```ts
 * const emitter = mitt<TransportServerEvents>();
 * const server: TransportServer = { on: subscriber(emitter), close: async () => {} };
 * ```
 */
export function subscriber<E extends Record<EventType, unknown>>(emitter: Emitter<E>) {
  return <K extends keyof E>(type: K, handler: (event: E[K]) => void): (() => void) => {
    emitter.on(type, handler);
    return () => emitter.off(type, handler);
  };
}
