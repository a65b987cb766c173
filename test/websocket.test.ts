import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SimulatedClock } from 'xstate';
import { WebSocket } from 'ws';
import { webSocketTransport as browserWebSocketTransport } from '../adapters/websocket/index.js';
import {
  rejectUnroutedUpgrades,
  webSocketServer,
  webSocketTransport,
  type WebSocketServerInit,
  type WebSocketTransportServer,
} from '../adapters/websocket/node.js';
import { ErrorCode, TransportError } from '../src/errors.js';
import type { Transport, TransportServerEvents } from '../src/transport.js';
import { nextEvent, nextFrames, transportCompliance } from './transport-compliance.js';

type Connection = TransportServerEvents['connection'];

/** An HTTP server on 127.0.0.1 and a free port, and how to stop it without leaking a handle. */
async function startHttp(): Promise<{ http: Server; url: (path: string) => string; stop: () => Promise<void> }> {
  const http = createServer((_, res) => res.writeHead(404).end());
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const { port } = http.address() as AddressInfo;
  return {
    http,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    stop: () =>
      new Promise<void>((resolve) => {
        http.closeAllConnections();
        http.close(() => resolve());
      }),
  };
}

const nextConnection = (server: WebSocketTransportServer) =>
  new Promise<Connection>((resolve) => {
    const off = server.on('connection', (connection) => {
      off();
      resolve(connection);
    });
  });

transportCompliance('websocket (ws client through the W3C API, webSocketServer)', async () => {
  const { http, url, stop } = await startHttp();
  const server = webSocketServer({ server: http, path: '/compliance' });
  const accepted = nextConnection(server);
  const a = await webSocketTransport(url('/compliance'));
  const { transport: b } = await accepted;
  return {
    a,
    b,
    teardown: async () => {
      await server.close();
      await stop();
    },
  };
});

describe('webSocketServer and webSocketTransport', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  const clients: Transport[] = [];

  /** An HTTP server with the given webSocketServers, all stopped after the test. */
  async function serve(...inits: Array<Omit<WebSocketServerInit, 'server'>>) {
    const { http, url, stop } = await startHttp();
    const servers = inits.map((init) => webSocketServer({ ...init, server: http }));
    cleanup.push(async () => {
      await Promise.all(servers.map((s) => s.close()));
      await stop();
    });
    const connect = async (path: string) => {
      const transport = await webSocketTransport(url(path));
      clients.push(transport);
      return transport;
    };
    return { http, url, servers, connect };
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    for (const step of cleanup.splice(0).reverse()) await step();
    vi.unstubAllGlobals();
  });

  it('routes each connection to the server of its path and refuses a path nobody serves', async () => {
    const { http, servers, connect } = await serve(
      { path: '/one' },
      { path: (pathname) => pathname.startsWith('/two/') },
    );
    rejectUnroutedUpgrades(http);
    rejectUnroutedUpgrades(http);
    const [one, two] = servers as [WebSocketTransportServer, WebSocketTransportServer];
    const seen: string[] = [];
    one.on('connection', ({ info }) => seen.push(`one ${info.path}`));
    two.on('connection', ({ info }) => seen.push(`two ${info.path}`));

    await connect('/one');
    await connect('/two/lobby');
    await connect('/two/other');
    const refused = connect('/three');
    await expect(refused).rejects.toBeInstanceOf(TransportError);
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
    expect(String(((await refused.catch((e: unknown) => e)) as TransportError).cause)).toMatch(/404/);
    await expect(connect('/one/more')).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });

    expect(seen).toEqual(['one /one', 'two /two/lobby', 'two /two/other']);
    expect(one.connections).toBe(1);
    expect(two.connections).toBe(2);
  });

  it('pings every heartbeatInterval and cuts off a client that answered nothing since the last ping (1006)', async () => {
    const clock = new SimulatedClock();
    const { servers, url } = await serve({ path: '/beat', heartbeatInterval: 1000, clock });
    const server = servers[0]!;
    const accepted = [nextConnection(server)];
    // A client that answers pings (ws does by itself), and one that does not.
    const live = new WebSocket(url('/beat'));
    const { transport: liveEnd } = await accepted[0]!;
    accepted.push(nextConnection(server));
    const mute = new WebSocket(url('/beat'), { autoPong: false });
    const { transport: muteEnd } = await accepted[1]!;
    const pings = { live: 0, mute: 0 };
    live.on('ping', () => pings.live++);
    mute.on('ping', () => pings.mute++);
    const muteClosed = nextEvent(muteEnd, 'close');
    const pinged = (n: number) => vi.waitFor(() => expect(pings).toEqual({ live: n, mute: n }));

    clock.increment(1000);
    await pinged(1);
    clock.increment(999); // not yet a whole interval: nobody is judged
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(server.connections).toBe(2);
    clock.increment(1);
    expect(await muteClosed).toMatchObject({ code: 1006, initiator: 'remote' });
    // The one that answered is pinged again and stays.
    await vi.waitFor(() => expect(pings.live).toBe(2));
    await new Promise((resolve) => setTimeout(resolve, 50)); // its pong travels back
    clock.increment(1000);
    await vi.waitFor(() => expect(pings.live).toBe(3));
    expect(liveEnd.isOpen).toBe(true);
    expect(server.connections).toBe(1);
    live.close();
  });

  it('refuses a heartbeatInterval that is not a positive number, saying what it takes', async () => {
    const { http, stop } = await startHttp();
    cleanup.push(stop);
    for (const heartbeatInterval of [0, -5, Number.NaN])
      expect(() => webSocketServer({ server: http, path: '/x', heartbeatInterval })).toThrow(
        /heartbeatInterval must be a positive number of ms or false/,
      );
  });

  it('sends no pings with heartbeatInterval: false', async () => {
    const clock = new SimulatedClock();
    const { servers, url } = await serve({ path: '/quiet', heartbeatInterval: false, clock });
    const accepted = nextConnection(servers[0]!);
    const mute = new WebSocket(url('/quiet'), { autoPong: false });
    let pings = 0;
    mute.on('ping', () => pings++);
    const { transport } = await accepted;
    clock.increment(10_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(pings).toBe(0);
    expect(transport.isOpen).toBe(true);
    mute.close();
  });

  it('reports path, query, remote address and headers in ConnectionInfo', async () => {
    const { servers, connect, url } = await serve({ path: (p) => p.startsWith('/ws/') });
    const accepted = nextConnection(servers[0]!);
    await connect('/ws/my-game?v=1&name=ada%20l');
    const { info } = await accepted;
    expect(info.path).toBe('/ws/my-game');
    expect(info.query.get('v')).toBe('1');
    expect(info.query.get('name')).toBe('ada l');
    expect(info.remoteAddress).toBe('127.0.0.1');
    expect(info.headers.host).toBe(new URL(url('/')).host);
    expect(info.headers['sec-websocket-key']).toEqual(expect.any(String));
  });

  it('delivers text as a string and binary as a plain Uint8Array on the server side', async () => {
    const { servers, connect } = await serve({ path: '/echo' });
    const accepted = nextConnection(servers[0]!);
    const client = await connect('/echo');
    const { transport } = await accepted;
    const frames = nextFrames(transport, 2);
    client.send('{"type":"hi"}');
    client.send(Uint8Array.of(0, 1, 254, 255));
    const [text, binary] = await frames;
    expect(text).toBe('{"type":"hi"}');
    expect(Object.getPrototypeOf(binary)).toBe(Uint8Array.prototype);
    expect(Array.from(binary as Uint8Array)).toEqual([0, 1, 254, 255]);
  });

  it('sends the same long text (encoded once for recipients in a row) as text to each, and other texts between', async () => {
    const { servers, connect } = await serve({ path: '/fan' });
    const transports: Transport[] = [];
    const clients: Transport[] = [];
    for (let i = 0; i < 3; i++) {
      const accepted = nextConnection(servers[0]!);
      clients.push(await connect('/fan'));
      transports.push((await accepted).transport);
    }
    const long = JSON.stringify({ type: 'Batch', detail: { text: 'é€😀'.repeat(2000) } });
    const other = JSON.stringify({ type: 'Other', detail: 'x'.repeat(3000) });
    const got = clients.map((client) => nextFrames(client, 3));
    for (const transport of transports) transport.send(long);
    transports[1]!.send(other);
    for (const transport of transports) transport.send(long);
    transports[0]!.send('short');
    transports[2]!.send(other);
    expect(await got[0]).toEqual([long, long, 'short']);
    expect(await got[1]).toEqual([long, other, long]);
    expect(await got[2]).toEqual([long, long, other]);
  });

  it('rejects with ERR_CONNECT_FAILED when nothing listens on the port', async () => {
    const { url, stop } = await startHttp();
    await stop();
    const attempt = webSocketTransport(url('/'));
    await expect(attempt).rejects.toBeInstanceOf(TransportError);
    await expect(attempt).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
  });

  it('closes every client with 1001 on server.close(), stops accepting and emits close', async () => {
    const { http, servers, connect } = await serve({ path: '/game' });
    rejectUnroutedUpgrades(http);
    const server = servers[0]!;
    const serverSides: Transport[] = [];
    server.on('connection', ({ transport }) => serverSides.push(transport));
    let closeEvents = 0;
    server.on('close', () => closeEvents++);
    const a = await connect('/game');
    const b = await connect('/game');
    const closes = [a, b].map((client) => nextEvent(client, 'close'));
    const serverCloses = serverSides.map((transport) => nextEvent(transport, 'close'));
    await server.close();
    await server.close();
    for (const info of await Promise.all(closes)) expect(info).toMatchObject({ code: 1001, initiator: 'remote' });
    for (const info of await Promise.all(serverCloses)) expect(info).toMatchObject({ code: 1001, initiator: 'local' });
    expect(closeEvents).toBe(1);
    expect(server.connections).toBe(0);
    await expect(connect('/game')).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
  });

  it('answers 403 when verifyUpgrade refuses, and accepts when it resolves true', async () => {
    const { servers, connect } = await serve({
      path: '/private',
      verifyUpgrade: async (info) => info.query.get('token') === 'secret',
    });
    const accepted = nextConnection(servers[0]!);
    const refused = connect('/private?token=guess');
    await expect(refused).rejects.toMatchObject({ code: ErrorCode.ConnectFailed });
    expect(String(((await refused.catch((e: unknown) => e)) as TransportError).cause)).toMatch(/403/);
    await connect('/private?token=secret');
    expect((await accepted).info.query.get('token')).toBe('secret');
  });

  it('closes a connection with 1009 when a frame exceeds maxPayload', async () => {
    const { servers, connect } = await serve({ path: '/small', maxPayload: 1024 });
    const accepted = nextConnection(servers[0]!);
    const client = await connect('/small');
    await accepted;
    const closed = nextEvent(client, 'close');
    client.send('x'.repeat(2048));
    expect(await closed).toMatchObject({ code: 1009, initiator: 'remote' });
  });

  it('emits drain on the server side once bufferedAmount falls back to the low-water mark', async () => {
    const { servers, connect } = await serve({ path: '/bulk', highWaterMark: 1 << 16, lowWaterMark: 0 });
    const accepted = nextConnection(servers[0]!);
    const client = await connect('/bulk');
    const { transport } = await accepted;
    const chunk = new Uint8Array(1 << 20);
    const arrived = nextFrames(client, 16, 10_000);
    for (let i = 0; i < 16; i++) transport.send(chunk);
    expect(transport.bufferedAmount).toBeGreaterThan(1 << 16);
    await nextEvent(transport, 'drain', 10_000);
    expect(transport.bufferedAmount).toBe(0);
    expect(await arrived).toHaveLength(16);
  });

  it('sends a close code the WebSocket API refuses (1001) as 1000 from the client', async () => {
    const { servers, connect } = await serve({ path: '/bye' });
    const accepted = nextConnection(servers[0]!);
    const client = await connect('/bye');
    const { transport } = await accepted;
    const remote = nextEvent(transport, 'close');
    const local = nextEvent(client, 'close');
    client.close(1001, 'actor stopped');
    expect(await local).toMatchObject({ code: 1001, reason: 'actor stopped', initiator: 'local' });
    expect(await remote).toMatchObject({ code: 1000, reason: 'actor stopped', initiator: 'remote' });
  });

  it('tells a Node user without a global WebSocket to pass the one from ws', () => {
    vi.stubGlobal('WebSocket', undefined);
    expect(() => browserWebSocketTransport('ws://127.0.0.1:1/')).toThrow(/import \{ WebSocket \} from 'ws'/);
  });

  it('takes the WebSocket constructor from init in the browser entry', async () => {
    const { servers, url } = await serve({ path: '/injected' });
    const accepted = nextConnection(servers[0]!);
    const client = await browserWebSocketTransport(url('/injected'), { WebSocket, protocols: ['signalbox'] });
    clients.push(client);
    expect((await accepted).info.headers['sec-websocket-protocol']).toBe('signalbox');
  });
});
