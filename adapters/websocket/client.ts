import { ErrorCode, TransportError } from '../../src/errors.js';
import { createTransport, type Transport } from '../../src/transport.js';

/**
 * The part of the W3C `WebSocket` this adapter uses. The browser global and
 * the `ws` package both provide it, so they share one code path.
 *
 * @example
 * ```ts
 * const socket: WebSocketLike = new WebSocket('wss://example.com/registry');
 * ```
 */
export interface WebSocketLike {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: string;
  send(data: string | ArrayBufferView<ArrayBuffer>): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open', listener: () => void): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
  addEventListener(type: 'close', listener: (event: { code: number; reason: string }) => void): void;
  /** The browser passes a bare `Event`; `ws` an `ErrorEvent` with `error` and `message`. */
  addEventListener(type: 'error', listener: (event: object) => void): void;
}

/**
 * A `WebSocket` constructor: `globalThis.WebSocket`, or `WebSocket` from `ws`.
 *
 * @example
 * ```ts
 * import { WebSocket } from 'ws';
 * const Impl: WebSocketConstructor = WebSocket;
 * ```
 */
export type WebSocketConstructor = new (url: string | URL, protocols?: string | string[]) => WebSocketLike;

/**
 * Options of {@link webSocketTransport}.
 *
 * @example
 * ```ts
 * import { WebSocket } from 'ws';
 * const transport = await webSocketTransport('ws://127.0.0.1:3000/swarm', { WebSocket, protocols: ['swarm.v1'] });
 * ```
 */
export interface WebSocketTransportInit {
  /**
   * The WebSocket implementation. Node 20 has no global one: pass `WebSocket`
   * from `ws`, or import `webSocketTransport` from the node entry, which does.
   * @default globalThis.WebSocket
   */
  WebSocket?: WebSocketConstructor;
  /**
   * Subprotocols offered in the handshake.
   * @default none
   */
  protocols?: string | string[];
}

// Codes a script may send (RFC 6455 §7.4, WHATWG WebSockets `close()`).
const isSendableCode = (code: number) => code === 1000 || (code >= 3000 && code <= 4999);

/**
 * Opens a WebSocket and resolves with it as a {@link Transport} once it is
 * open. Rejects with a `TransportError` `ERR_CONNECT_FAILED` if the socket
 * cannot connect (refused, DNS, handshake rejected). Throws a `TypeError` at
 * once if no WebSocket implementation is available.
 *
 * Text frames arrive as `string`, binary as `Uint8Array`. `bufferedAmount`
 * is the socket's; `drain` is never emitted (the WebSocket API has no event
 * for it): poll `bufferedAmount` to pace large sends. `close(code)` with a
 * code the WebSocket API refuses to send (it allows 1000 and 3000–4999, e.g.
 * not 1001) closes with 1000 instead; the local `close` event still reports
 * the code given.
 *
 * @example
 * ```ts
 * const transport = await webSocketTransport('wss://example.com/ws/my-game?v=1');
 * transport.on('message', (frame) => console.log(frame));
 * transport.send(JSON.stringify({ opcode: 'INIT' }));
 * ```
 */
export function webSocketTransport(url: string | URL, init: WebSocketTransportInit = {}): Promise<Transport> {
  const WebSocketImpl = init.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (!WebSocketImpl) {
    throw new TypeError(
      "No WebSocket implementation: pass one as `init.WebSocket`. In Node, use `import { WebSocket } from 'ws'` " +
        "and `webSocketTransport(url, { WebSocket })`, or import `webSocketTransport` from 'signalbox/websocket/node'.",
    );
  }
  const socket = init.protocols === undefined ? new WebSocketImpl(url) : new WebSocketImpl(url, init.protocols);
  socket.binaryType = 'arraybuffer';

  const control = createTransport({
    // The DOM type leaves out views on a SharedArrayBuffer; browsers refuse those at run time.
    send: (frame) => socket.send(frame as string | Uint8Array<ArrayBuffer>),
    close(code, reason) {
      try {
        socket.close(isSendableCode(code) ? code : 1000, reason);
      } catch {
        // The reason is longer than the 123 bytes a close frame can carry.
        socket.close(isSendableCode(code) ? code : 1000);
      }
    },
    bufferedAmount: () => socket.bufferedAmount,
  });

  return new Promise((resolve, reject) => {
    let opened = false;
    const refuse = (cause: unknown) => {
      if (opened) return;
      opened = true;
      reject(new TransportError(ErrorCode.ConnectFailed, `could not connect to ${String(url)}`, { cause }));
    };

    socket.addEventListener('open', () => {
      if (opened) return;
      opened = true;
      resolve(control.transport);
    });
    socket.addEventListener('message', (event: { data: unknown }) => {
      const { data } = event;
      if (typeof data === 'string') control.receive(data);
      else if (data instanceof ArrayBuffer) control.receive(new Uint8Array(data));
      else if (ArrayBuffer.isView(data)) control.receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      else control.failed(new TransportError(ErrorCode.TransportFailed, 'WebSocket delivered a frame of unknown type'));
    });
    socket.addEventListener('error', (errorEvent) => {
      const event = errorEvent as { error?: unknown; message?: string };
      const cause = event.error ?? event;
      if (!opened) return refuse(cause);
      control.failed(
        new TransportError(ErrorCode.TransportFailed, event.message || `WebSocket to ${String(url)} failed`, { cause }),
      );
    });
    socket.addEventListener('close', (event: { code: number; reason: string }) => {
      refuse(new Error(`closed before opening (${event.code} ${event.reason})`.trim()));
      control.closed(event.code, event.reason);
    });
  });
}
