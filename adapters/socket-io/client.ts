import { ErrorCode, TransportError } from '../../src/errors.js';
import { frameEvents, type EventCodec } from '../../src/event-codec.js';
import { createTransport, type Transport } from '../../src/transport.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- socket.io's own listener types take any */

/**
 * The part of a socket.io-client 4 `Socket` this adapter uses. It is a
 * structural type: this library never imports socket.io-client, so it stays
 * out of your bundle; pass the socket that `io(url)` returned.
 *
 * @example
 * ```ts
 * import { io } from 'socket.io-client';
 * const socket: SocketIoLike = io('https://drop.example', { reconnection: false });
 * ```
 */
export interface SocketIoLike {
  readonly connected: boolean;
  /** True while connected or trying to (re)connect. */
  readonly active?: boolean;
  connect(): unknown;
  disconnect(): unknown;
  emit(event: string, ...args: any[]): unknown;
  onAny(listener: (event: any, ...args: any[]) => void): unknown;
  offAny(listener?: (...args: any[]) => void): unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event?: string, listener?: (...args: any[]) => void): unknown;
}

/**
 * Options of {@link socketIoTransport}.
 *
 * @example
 * ```ts
 * const init: SocketIoTransportInit = { events: clientSocketIoEvents() };
 * ```
 */
export interface SocketIoTransportInit {
  /**
   * How events map to frames and back; use the protocol's (filedrop:
   * `clientSocketIoEvents()`) to talk to a server that speaks its events.
   * @default frameEvents: each frame is one `message` event
   */
  events?: EventCodec;
}

/** How a socket.io-client disconnect reason reads as a WebSocket-style close code. */
function closeCode(reason: string): number {
  switch (reason) {
    case 'io server disconnect':
    case 'io client disconnect':
      return 1000;
    case 'parse error':
      return 1002;
    default:
      return 1006;
  }
}

/**
 * Wraps a socket.io-client `Socket` as a {@link Transport}, and resolves once
 * it is connected. Browser-safe. Wrap the socket as soon as `io()` returns it:
 * events that arrived before are not seen.
 *
 * Every event the server emits becomes a frame through `init.events`, and
 * every frame sent becomes an event. The transport is one connection: it
 * closes for good when the socket disconnects (then it stops the socket's
 * reconnection, if any), and `close()` disconnects the socket. A socket.io
 * close carries no code: the `close` event reports 1000 for a disconnect
 * either side asked for, 1006 for a lost connection. Rejects with a
 * `TransportError` `ERR_CONNECT_FAILED` at the first `connect_error` (after
 * stopping the socket).
 *
 * @example
 * ```ts
 * import { io } from 'socket.io-client';
 * import { clientSocketIoEvents, clientCodec, filedropReceiver } from 'signalbox/filedrop';
 * const signalling = fromTransport(
 *   () => socketIoTransport(io('https://drop.example'), { events: clientSocketIoEvents() }),
 *   clientCodec(),
 * );
 * ```
 */
export function socketIoTransport(socket: SocketIoLike, init: SocketIoTransportInit = {}): Promise<Transport> {
  const events = init.events ?? frameEvents;
  const onAny = (event: unknown, ...args: unknown[]) => {
    if (typeof args[args.length - 1] === 'function') args.pop();
    control.receive(events.receive(event, args));
  };
  const onDisconnect = (reason: string) => {
    detach();
    // Reconnecting would be a new connection (a new id): this one is over.
    socket.disconnect();
    control.closed(closeCode(reason), reason);
  };
  const detach = () => {
    socket.offAny(onAny);
    socket.off('disconnect', onDisconnect);
  };

  const control = createTransport({
    send(frame) {
      const [event, ...args] = events.send(frame);
      socket.emit(event, ...args);
    },
    close() {
      detach();
      socket.disconnect();
    },
  });

  return new Promise((resolve, reject) => {
    const settle = () => {
      socket.off('connect', onConnect);
      socket.off('connect_error', onConnectError);
    };
    const onConnect = () => {
      settle();
      socket.on('disconnect', onDisconnect);
      resolve(control.transport);
    };
    const onConnectError = (error: unknown) => {
      settle();
      detach();
      socket.disconnect();
      reject(
        new TransportError(ErrorCode.ConnectFailed, 'could not connect to the socket.io server', { cause: error }),
      );
    };
    socket.onAny(onAny);
    if (socket.connected) return onConnect();
    socket.on('connect', onConnect);
    socket.on('connect_error', onConnectError);
    if (socket.active === false) socket.connect();
  });
}
