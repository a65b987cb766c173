import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, type SignalboxServer, type SignalboxServerOptions } from '../cli/server.js';
import type { Logger } from '../src/logger.js';
import type { ConnectionInfo } from '../src/transport.js';

let running: SignalboxServer | undefined;
const clients: WebSocket[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.terminate();
  await running?.close();
  running = undefined;
});

async function start(options: SignalboxServerOptions) {
  running = await startServer({ port: 0, host: '127.0.0.1', heartbeatInterval: false, ...options });
  return running;
}

/** Opens a WebSocket to `path`; resolves with `open` or the HTTP status of the refusal. */
function connect(path: string, headers: Record<string, string> = {}): Promise<'open' | number> {
  const client = new WebSocket(`ws://127.0.0.1:${running!.address.port}${path}`, { headers });
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once('open', () => resolve('open'));
    client.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    client.once('error', reject);
  });
}

function recordingLogger() {
  const lines: Array<[string, string, Record<string, unknown> | undefined]> = [];
  const logger: Logger = {
    info: (m, f) => lines.push(['info', m, f]),
    warn: (m, f) => lines.push(['warn', m, f]),
    error: (m, f) => lines.push(['error', m, f]),
  };
  return { logger, lines };
}

describe('connection limits', () => {
  it('refuses with 503 past the per-address limit, and lets one in again when another leaves', async () => {
    await start({ maxConnectionsPerIp: 2 });
    expect(await connect('/swarm')).toBe('open');
    expect(await connect('/registry')).toBe('open');
    expect(await connect('/swarm')).toBe(503);
    clients[0]!.close();
    await new Promise((resolve) => clients[0]!.once('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await connect('/swarm')).toBe('open');
  });

  it('refuses with 503 past the total limit, whatever the address', async () => {
    await start({ maxConnections: 1, trustProxy: true });
    expect(await connect('/swarm', { 'x-forwarded-for': '203.0.113.1' })).toBe('open');
    expect(await connect('/swarm', { 'x-forwarded-for': '203.0.113.2' })).toBe(503);
  });

  it('behind a proxy counts each client by the last X-Forwarded-For entry', async () => {
    await start({ maxConnectionsPerIp: 1, trustProxy: true });
    expect(await connect('/swarm', { 'x-forwarded-for': '198.51.100.9, 203.0.113.1' })).toBe('open');
    expect(await connect('/swarm', { 'x-forwarded-for': '203.0.113.2' })).toBe('open');
    expect(await connect('/swarm', { 'x-forwarded-for': '10.0.0.1, 203.0.113.1' })).toBe(503);
  });

  it('without --trust-proxy ignores X-Forwarded-For', async () => {
    await start({ maxConnectionsPerIp: 1 });
    expect(await connect('/swarm', { 'x-forwarded-for': '203.0.113.1' })).toBe('open');
    expect(await connect('/swarm', { 'x-forwarded-for': '203.0.113.2' })).toBe(503);
  });
});

describe('origin allow-list', () => {
  it('answers 403 to an upgrade from another origin, on every path', async () => {
    const { logger, lines } = recordingLogger();
    await start({ allowOrigins: ['https://game.example'], logger });
    for (const path of ['/ws/game', '/filedrop', '/swarm', '/workrooms', '/registry']) {
      expect(await connect(path, { origin: 'https://evil.example' })).toBe(403);
    }
    expect(await connect('/swarm', { origin: 'https://game.example' })).toBe('open');
    expect(await connect('/swarm')).toBe('open'); // not a browser: no Origin
    expect(lines.filter(([, m]) => m === 'any origin allowed')).toEqual([]);
    expect(lines).toContainEqual(['warn', 'refused', expect.objectContaining({ reason: 'origin', status: 403 })]);
  });

  it('says at startup that any origin is allowed when no list is given', async () => {
    const { logger, lines } = recordingLogger();
    await start({ logger });
    expect(lines).toContainEqual(['warn', 'any origin allowed', expect.anything()]);
    expect(await connect('/swarm', { origin: 'https://evil.example' })).toBe('open');
  });

  it('socket.io: refuses another origin (403) and answers CORS for an allowed one only', async () => {
    await start({ allowOrigins: ['https://game.example'] });
    const url = `http://127.0.0.1:${running!.address.port}/socket.io/?EIO=4&transport=polling`;
    const evil = await fetch(url, { headers: { origin: 'https://evil.example' } });
    expect(evil.status).toBe(403);
    expect(evil.headers.get('access-control-allow-origin')).toBeNull();
    const good = await fetch(url, { headers: { origin: 'https://game.example' } });
    expect(good.status).toBe(200);
    expect(good.headers.get('access-control-allow-origin')).toBe('https://game.example');
    await good.text();
  });
});

describe('authorize', () => {
  const authorize = async ({ query }: ConnectionInfo) => {
    await new Promise((resolve) => setTimeout(resolve, 5));
    const token = query.get('token');
    return token === 'let-me-in' ? true : token === null ? 401 : false;
  };

  it('sees the path, query, headers and address, and refuses before the upgrade with its status', async () => {
    const seen: ConnectionInfo[] = [];
    await start({ authorize: (info) => (seen.push(info), authorize(info)) });
    expect(await connect('/swarm')).toBe(401);
    expect(await connect('/swarm?token=wrong')).toBe(403);
    expect(await connect('/ws/game?token=let-me-in', { 'x-team': 'blue' })).toBe('open');
    expect(seen[2]).toMatchObject({ path: '/ws/game', remoteAddress: '127.0.0.1' });
    expect(seen[2]!.query.get('token')).toBe('let-me-in');
    expect(seen[2]!.headers['x-team']).toBe('blue');
    expect(running!.cloudlink.sessions.size).toBe(1);
    expect(running!.swarm.sessions.size).toBe(0);
  });

  it('a throwing authorize refuses with 403 and is logged', async () => {
    const { logger, lines } = recordingLogger();
    await start({
      logger,
      authorize: () => {
        throw new Error('auth service down');
      },
    });
    expect(await connect('/swarm')).toBe(403);
    expect(lines).toContainEqual([
      'error',
      'authorize failed',
      expect.objectContaining({ error: expect.stringContaining('auth service down') }),
    ]);
  });

  it("a protocol's own authorize (create…Server option) runs before its upgrade too", async () => {
    await start({ swarm: { authorize: ({ query }) => (query.get('room') === 'a' ? true : 401) } });
    expect(await connect('/swarm')).toBe(401);
    expect(await connect('/swarm?room=a')).toBe('open');
    expect(await connect('/registry')).toBe('open');
  });

  it('socket.io: a refused handshake gets 403', async () => {
    await start({ authorize });
    const url = `http://127.0.0.1:${running!.address.port}/socket.io/?EIO=4&transport=polling`;
    expect((await fetch(url)).status).toBe(403);
    const ok = await fetch(`${url}&token=let-me-in`);
    expect(ok.status).toBe(200);
    await ok.text();
  });
});
