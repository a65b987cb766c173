/**
 * The Node entry of the socket.io adapter: the server (on socket.io 4) and
 * the client.
 */
export { socketIoServer, type SocketIoServerInit, type SocketIoTransportServer } from './server.js';
export { socketIoTransport, type SocketIoLike, type SocketIoTransportInit } from './client.js';
export { frameEvents, type EventCodec } from '../../src/event-codec.js';
