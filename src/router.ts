import type { Codec } from './codec.js';
import { ErrorCode, SignalboxError, TransportError } from './errors.js';
import type { Message } from './message.js';
import type { Transport } from './transport.js';

/**
 * The one seam through which a server delivers a message to a session by id.
 * The in-memory router below writes straight to the session's transport; a
 * multi-process deployment swaps in one that publishes to the process holding
 * the session.
 */
export interface Router<M extends Message = Message> {
  /** Registers a session's transport under `id`. */
  add(id: string, transport: Transport): void;
  remove(id: string): void;
  has(id: string): boolean;
  /** Delivers `message` to session `id`; false when no such session is connected here. */
  send(id: string, message: M): boolean;
  /**
   * Delivers `message` to session `id` and says how it went, for a router
   * whose `send` cannot know (one that hands messages to other processes):
   * resolves once delivered, rejects with a {@link RouterError} when it was
   * not. Without it, `send`'s answer is all there is to know.
   */
  deliver?(id: string, message: M): Promise<void>;
  /** Closes session `id`'s connection. */
  close(id: string, code?: number, reason?: string): void;
  readonly size: number;
}

/**
 * A {@link Router} for sessions held by this process.
 *
 * @example
 * ```ts
 * const router = memoryRouter(serverCodec());
 * router.add(id, transport);
 * router.send(id, { type: 'KEEPALIVE', detail: {} });
 * ```
 */
export function memoryRouter<M extends Message>(codec: Pick<Codec<Message, M>, 'encode'>): Router<M> {
  const transports = new Map<string, Transport>();
  return {
    add: (id, transport) => void transports.set(id, transport),
    remove: (id) => void transports.delete(id),
    has: (id) => transports.has(id),
    send(id, message) {
      const transport = transports.get(id);
      if (!transport?.isOpen) return false;
      try {
        transport.send(codec.encode(message));
        return true;
      } catch (error) {
        if (error instanceof TransportError) return false;
        throw error;
      }
    },
    close: (id, code, reason) => transports.get(id)?.close(code, reason),
    get size() {
      return transports.size;
    },
  };
}

/**
 * A delivery to another process refused: `ERR_UNAVAILABLE` while the shared
 * store (Redis) is unreachable, `ERR_PEER_GONE` when no process holds the
 * session.
 */
export class RouterError extends SignalboxError {
  override readonly name = 'RouterError';
  constructor(
    code: typeof ErrorCode.Unavailable | typeof ErrorCode.PeerGone,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}
