/**
 * The browser entry of the socket.io adapter: only the client, which wraps a
 * socket.io-client `Socket` you create (this library does not import
 * socket.io-client). Node code imports `./node.js` for the server.
 */
export { socketIoTransport, type SocketIoLike, type SocketIoTransportInit } from './client.js';
export { frameEvents, type EventCodec } from '../../src/event-codec.js';
