/**
 * The browser entry of the WebSocket adapter: only the client, which uses the
 * W3C WebSocket API and imports nothing from Node. Node code imports
 * `./node.js` for the server and a client that defaults to `ws`.
 */
export {
  webSocketTransport,
  type WebSocketConstructor,
  type WebSocketLike,
  type WebSocketTransportInit,
} from './client.js';
