/**
 * What `socketIoServer` lets go of in socket.io's and engine.io's objects
 * once a connection is handed out (adapters/socket-io/trim.ts), asserted as
 * object state: each trim reaches into socket.io / engine.io internals and
 * does nothing when their shape changes, so these tests are what notices a
 * trim that silently stopped applying. And the connections keep working
 * after it: both transports, the upgrade, heartbeats, closes from either
 * side and engine.io's own bookkeeping.
 */
import { EventEmitter } from 'node:events';
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { io as connectClient, type Socket as ClientSocket } from 'socket.io-client';
import type { Socket } from 'socket.io';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { socketIoServer, type SocketIoTransportServer } from '../adapters/socket-io/server.js';
import { CompactHandshake } from '../adapters/socket-io/trim.js';
import type { CloseInfo, Transport, TransportServerEvents } from '../src/transport.js';

let http: Server;
let url: string;
let server: SocketIoTransportServer | undefined;
const clients: ClientSocket[] = [];

beforeAll(async () => {
  http = createServer((_, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
});
afterEach(async () => {
  for (const client of clients.splice(0)) client.disconnect();
  await server?.close();
  server = undefined;
});
afterAll(() => new Promise<void>((resolve) => http.close(() => resolve())));

/** engine.io's connection and what lies under it, as the trims see them. */
interface EngineSocket extends EventEmitter {
  request: unknown;
  cleanupFn: unknown[];
  readyState: string;
  transport: EventEmitter & { name: string; socket?: EventEmitter };
}

const engineOf = (socket: Socket) => socket.conn as unknown as EngineSocket;
const eventsOf = (emitter: EventEmitter) => (emitter as unknown as { _events: object })._events;
const anyListenersOf = (socket: Socket) => (socket as unknown as { _anyListeners: unknown[] })._anyListeners;
const decodedOf = (socket: Socket) =>
  (socket.client as unknown as { decoder: { _callbacks: { $decoded: unknown[] } } }).decoder._callbacks.$decoded;
/** Node's `once` wrappers among an event's listeners. */
const onceWrappers = (emitter: EventEmitter, event: string) =>
  emitter.rawListeners(event).filter((listener) => listener.name === 'bound onceWrapper');
/** Every event's listeners, unwrapped (as `listeners()` gives them). */
const listenerMap = (emitter: EventEmitter) => emitter.eventNames().map((name) => [name, emitter.listeners(name)]);
const tick = () => new Promise((resolve) => setImmediate(resolve));
/** Waits up to 2 s for `check` to hold. */
async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

/** What the trims replace, read in an `io.on('connection')` listener (it runs before they do). */
interface Seen {
  socket: Socket;
  handshake: Socket['handshake'];
  headers: Socket['handshake']['headers'];
  time: string;
  query: Socket['handshake']['query'];
  requestKept: boolean;
  events: Map<EventEmitter, { table: object; listeners: ReturnType<typeof listenerMap> }>;
  arrays: { anyListeners: unknown[]; cleanupFn: unknown[]; decoded: unknown[] };
  onceWrapped: { conn: number; transport: number; ws: number };
}

/** A server whose transports echo every frame, and what its next connection looked like before the trims. */
function echoServer(options: Parameters<typeof socketIoServer>[0]['options'] = {}) {
  const transports = socketIoServer({ server: http, options });
  server = transports;
  transports.on('connection', ({ transport }) => transport.on('message', (frame) => transport.send(frame)));
  const seen = new Promise<Seen>((resolve) =>
    transports.io.on('connection', (socket) => {
      const conn = engineOf(socket);
      const { transport } = conn;
      const ws = transport.socket;
      const emitters = [socket, conn, ...(transport.name === 'websocket' ? [transport, ws!] : [])];
      resolve({
        socket,
        handshake: socket.handshake,
        headers: socket.handshake.headers,
        time: socket.handshake.time,
        query: socket.handshake.query,
        requestKept: conn.request !== null,
        events: new Map(emitters.map((e) => [e, { table: eventsOf(e), listeners: listenerMap(e) }])),
        arrays: { anyListeners: anyListenersOf(socket), cleanupFn: conn.cleanupFn, decoded: decodedOf(socket) },
        onceWrapped: {
          conn: onceWrappers(conn, 'close').length,
          transport: ws ? onceWrappers(transport, 'close').length + onceWrappers(transport, 'error').length : 0,
          ws: ws ? onceWrappers(ws, 'close').length : 0,
        },
      });
    }),
  );
  const accepted = new Promise<TransportServerEvents['connection']>((resolve) => transports.on('connection', resolve));
  return { transports, seen, accepted };
}

function client(options: Parameters<typeof connectClient>[1] = {}): ClientSocket {
  const socket = connectClient(url, { reconnection: false, forceNew: true, transports: ['websocket'], ...options });
  clients.push(socket);
  return socket;
}

/** Sends `text` as a frame and resolves with the echo. */
function echo(socket: ClientSocket, text: string): Promise<unknown> {
  return new Promise((resolve) => {
    socket.once('message', resolve);
    socket.emit('message', text);
  });
}

const closed = (transport: Transport) => new Promise<CloseInfo>((resolve) => transport.on('close', resolve));

describe('socketIoServer trims a WebSocket connection once it is handed out', () => {
  it('lets go of the request and the handshake headers after every connection listener saw them', async () => {
    const { seen, accepted } = echoServer();
    const socket = client({ query: { room: 'a b' } });
    const before = await seen;
    const { info } = await accepted;
    await tick();
    // A connection listener saw everything.
    expect(before.requestKept).toBe(true);
    expect(before.headers.upgrade).toBe('websocket');
    expect(before.query).toMatchObject({ EIO: '4', transport: 'websocket', room: 'a b' });
    // … and so did the session, through ConnectionInfo.
    expect(info.headers.upgrade).toBe('websocket');
    expect(info.query.get('room')).toBe('a b');
    // Then they were let go.
    const { handshake } = before.socket;
    expect(engineOf(before.socket).request).toBeNull();
    expect(before.socket.request).toBeNull();
    expect(handshake).toBeInstanceOf(CompactHandshake);
    expect(handshake.headers).toEqual({});
    // The rest reads as it did.
    expect(handshake.time).toBe(before.time);
    expect(handshake.query).toEqual(before.query);
    for (const key of ['address', 'xdomain', 'secure', 'issued', 'url', 'auth'] as const) {
      expect(handshake[key]).toEqual(before.handshake[key]);
    }
    expect(JSON.parse(JSON.stringify(handshake))).toEqual(
      JSON.parse(JSON.stringify({ ...before.handshake, headers: {} })),
    );
    expect(await echo(socket, 'still there')).toBe('still there');
  });

  it('keeps what a middleware changed or added, and every field can still be assigned', async () => {
    const { transports, seen } = echoServer();
    transports.io.use((socket, next) => {
      socket.handshake.query.room = 'changed';
      Object.assign(socket.handshake, { user: 'ada' });
      next();
    });
    client({ query: { room: 'a' } });
    const { socket } = await seen;
    await tick();
    const handshake = socket.handshake as Socket['handshake'] & { user?: string };
    expect(handshake).toBeInstanceOf(CompactHandshake);
    expect(handshake.query.room).toBe('changed');
    expect(handshake.user).toBe('ada');
    expect(handshake.auth).toEqual({});
    handshake.headers = { 'x-set': 'later' };
    handshake.time = 'then';
    handshake.query = { room: 'b' };
    expect([handshake.headers, handshake.time, handshake.query]).toEqual([{ 'x-set': 'later' }, 'then', { room: 'b' }]);
  });

  it("keeps a client's auth", async () => {
    const { seen } = echoServer();
    client({ auth: { token: 'abc' } });
    const { socket } = await seen;
    await tick();
    expect(socket.handshake).toBeInstanceOf(CompactHandshake);
    expect(socket.handshake.auth).toEqual({ token: 'abc' });
  });

  it('rebuilds the listener tables with the same listeners, once wrappers of close events unwrapped', async () => {
    const { seen } = echoServer();
    client();
    const before = await seen;
    await tick();
    // What the trims work on was there (else this test checks nothing).
    expect(before.events.size).toBe(4);
    expect(before.onceWrapped.conn).toBeGreaterThan(0);
    expect(before.onceWrapped.transport).toBe(2);
    expect(before.onceWrapped.ws).toBe(1);
    const conn = engineOf(before.socket);
    // engine.io's listeners that serve no WebSocket connection are gone.
    expect(conn.transport.listenerCount('headers')).toBe(0);
    expect(conn.transport.socket!.listeners('error').map((l) => l.name)).not.toContain('onUpgradeError');
    for (const [emitter, { table, listeners }] of before.events) {
      expect(eventsOf(emitter)).not.toBe(table);
      expect(Object.getPrototypeOf(eventsOf(emitter))).toBeNull();
      // The same listeners in the same order, but for those two.
      const kept = listeners
        .filter(([name]) => !(emitter === conn.transport && name === 'headers'))
        .map(([name, list]) => [
          name,
          (list as Array<(...args: unknown[]) => unknown>).filter((l) => l.name !== 'onUpgradeError'),
        ]);
      expect(listenerMap(emitter)).toEqual(kept);
    }
    expect(onceWrappers(conn, 'close')).toEqual([]);
    expect(onceWrappers(conn.transport, 'close')).toEqual([]);
    expect(onceWrappers(conn.transport, 'error')).toEqual([]);
    expect(onceWrappers(conn.transport.socket!, 'close')).toEqual([]);
  });

  it('copies the arrays that grew by push', async () => {
    const { seen } = echoServer();
    client();
    const before = await seen;
    await tick();
    const { socket } = before;
    const now = {
      anyListeners: anyListenersOf(socket),
      cleanupFn: engineOf(socket).cleanupFn,
      decoded: decodedOf(socket),
    };
    for (const key of ['anyListeners', 'cleanupFn', 'decoded'] as const) {
      expect(now[key]).not.toBe(before.arrays[key]);
      expect(now[key]).toEqual(before.arrays[key]);
      expect(now[key].length).toBeGreaterThan(0);
    }
  });

  it('the connection keeps working: frames both ways, heartbeats, a client disconnect, engine.io counts it once', async () => {
    const { transports, accepted, seen } = echoServer({ pingInterval: 30, pingTimeout: 500 });
    const socket = client();
    const { transport } = await accepted;
    await seen;
    await tick();
    expect(await echo(socket, 'one')).toBe('one');
    // Several heartbeats after the trims.
    let pings = 0;
    socket.io.on('ping', () => pings++);
    while (pings < 3) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await echo(socket, 'two')).toBe('two');
    expect(transports.io.engine.clientsCount).toBe(1);
    const serverClosed = closed(transport);
    socket.disconnect();
    expect(await serverClosed).toMatchObject({ initiator: 'remote' });
    expect(transports.connections).toBe(0);
    // engine.io's connection closes after socket.io's: its count goes to 0, not below.
    await until(() => transports.io.engine.clientsCount === 0);
    await tick();
    expect(transports.io.engine.clientsCount).toBe(0);
  });

  it('a server close reaches the client', async () => {
    const { transports, accepted } = echoServer();
    const socket = client();
    const { transport } = await accepted;
    await tick();
    const disconnected = new Promise((resolve) => socket.once('disconnect', resolve));
    transport.close(1000, 'bye');
    expect(await disconnected).toBe('io server disconnect');
    await until(() => transports.io.engine.clientsCount === 0);
    await tick();
    expect(transports.io.engine.clientsCount).toBe(0);
  });

  it('a client that stops answering pings is closed by the ping timeout, and counted once', async () => {
    const { transports, accepted } = echoServer({ pingInterval: 30, pingTimeout: 60 });
    // A raw engine.io client: it connects to the main namespace and never answers a ping.
    const raw = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    raw.once('message', () => raw.send('40'));
    try {
      const { transport } = await accepted;
      await tick();
      expect(await closed(transport)).toEqual({ code: 1006, reason: 'ping timeout', initiator: 'remote' });
      expect(transports.io.engine.clientsCount).toBe(0);
    } finally {
      raw.terminate();
    }
  });
});

describe('socketIoServer trims a long-polling connection, and its transport once it upgrades', () => {
  it('polling only: the request and headers are let go, frames go both ways', async () => {
    const { seen } = echoServer();
    const socket = client({ transports: ['polling'] });
    const before = await seen;
    await tick();
    expect(before.requestKept).toBe(true);
    expect(engineOf(before.socket).request).toBeNull();
    expect(before.socket.handshake.headers).toEqual({});
    expect(before.socket.handshake.query).toMatchObject({ transport: 'polling' });
    expect(await echo(socket, 'polled')).toBe('polled');
  });

  it('after the upgrade to WebSocket: the new transport is trimmed, and the connection works and closes', async () => {
    const { transports, seen, accepted } = echoServer();
    const socket = client({ transports: ['polling', 'websocket'] });
    const before = await seen;
    const { transport } = await accepted;
    const conn = engineOf(before.socket);
    expect(conn.transport.name).toBe('polling');
    if (socket.io.engine?.transport.name !== 'websocket') {
      await new Promise((resolve) => socket.io.engine.once('upgrade', resolve));
    }
    await tick();
    expect(conn.transport.name).toBe('websocket');
    expect(onceWrappers(conn, 'close')).toEqual([]);
    expect(onceWrappers(conn.transport, 'close')).toEqual([]);
    expect(onceWrappers(conn.transport, 'error')).toEqual([]);
    expect(onceWrappers(conn.transport.socket!, 'close')).toEqual([]);
    expect(conn.listenerCount('upgrade')).toBe(0);
    expect(await echo(socket, 'upgraded')).toBe('upgraded');
    const serverClosed = closed(transport);
    socket.disconnect();
    await serverClosed;
    await until(() => transports.io.engine.clientsCount === 0);
    await tick();
    expect(transports.io.engine.clientsCount).toBe(0);
  });
});

describe("engine.io's stand-in response for an upgrade's middlewares", () => {
  /** Upgrades with a raw engine.io client, each middleware given the stand-in; resolves once connected. */
  async function upgradeWith(listenForClose: boolean) {
    const transports = socketIoServer({ server: http });
    server = transports;
    const standIns: EventEmitter[] = [];
    let closes = 0;
    transports.io.engine.use((_req: IncomingMessage, res: ServerResponse, next: () => void) => {
      const response: object = res;
      if (!(response instanceof ServerResponse)) {
        standIns.push(response as EventEmitter);
        if (listenForClose) res.on('close', () => closes++);
      }
      next();
    });
    const accepted = new Promise<TransportServerEvents['connection']>((resolve) =>
      transports.on('connection', resolve),
    );
    const raw = new WebSocket(`${url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    raw.once('message', () => raw.send('40'));
    const { transport } = await accepted;
    expect(standIns).toHaveLength(1);
    return { standIn: standIns[0]!, transport, raw, closes: () => closes };
  }

  it('with no middleware listening for its close, lets go of it once the upgrade completes', async () => {
    const { standIn, transport, raw } = await upgradeWith(false);
    expect((standIn as unknown as { req: unknown }).req).toBeNull();
    // Its relay from the TCP socket is gone: a close listener added now hears nothing.
    let heard = 0;
    standIn.on('close', () => heard++);
    const serverClosed = closed(transport);
    raw.terminate();
    await serverClosed;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(heard).toBe(0);
  });

  it("a middleware that listens for its close still hears the connection's close", async () => {
    const { standIn, transport, raw, closes } = await upgradeWith(true);
    expect((standIn as unknown as { req: unknown }).req).toBeNull();
    expect(closes()).toBe(0);
    const serverClosed = closed(transport);
    raw.terminate();
    await serverClosed;
    for (let i = 0; i < 50 && closes() === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(closes()).toBe(1);
  });
});
