import { WebSocket } from 'ws';
import type { Transport } from '../../src/transport.js';
import { webSocketTransport as connect, type WebSocketTransportInit } from './client.js';

export {
  claimUpgrades,
  rejectUnroutedUpgrades,
  webSocketServer,
  type WebSocketServerInit,
  type WebSocketTransportServer,
} from './server.js';
export type { WebSocketConstructor, WebSocketLike, WebSocketTransportInit } from './client.js';

/**
 * {@link connect | The WebSocket client} for Node: the same transport, with
 * `init.WebSocket` defaulting to `ws`'s `WebSocket` (Node 20 has no global one).
 *
 * @example
 * ```ts
 * import { webSocketTransport } from 'signalbox/websocket/node';
 * const transport = await webSocketTransport('ws://127.0.0.1:3000/workrooms');
 * transport.send(JSON.stringify({ type: 'register', detail: { sessionid } }));
 * ```
 */
export function webSocketTransport(url: string | URL, init: WebSocketTransportInit = {}): Promise<Transport> {
  return connect(url, { ...init, WebSocket: init.WebSocket ?? WebSocket });
}
