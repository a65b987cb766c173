import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startServer, type SignalboxServer } from '../cli/server.js';

let running: SignalboxServer | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

const get = (path: string) => fetch(`http://127.0.0.1:${running!.address.port}${path}`);

/** The value of one sample in Prometheus text, by its name and labels as written. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A WebSocket client and the frames it received, parsed, from the start. */
async function open(path: string, headers: Record<string, string> = {}) {
  const client = new WebSocket(`ws://127.0.0.1:${running!.address.port}${path}`, { headers });
  const inbox: Array<{ type: string; detail: { peer: string } }> = [];
  client.on('message', (data) => inbox.push(JSON.parse(String(data)) as (typeof inbox)[number]));
  await new Promise((resolve, reject) => {
    client.once('open', resolve);
    client.once('unexpected-response', resolve);
    client.once('error', reject);
  });
  return Object.assign(client, { inbox });
}

const until = async (check: () => boolean) => {
  for (let i = 0; !check(); i++) {
    if (i > 200) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};

describe('GET /metrics', () => {
  it('counts connections, messages, relays, refusals and closes in Prometheus text', async () => {
    running = await startServer({
      port: 0,
      host: '127.0.0.1',
      heartbeatInterval: false,
      allowOrigins: ['https://a.example'],
    });
    const a = await open('/filedrop');
    const b = await open('/filedrop');
    await until(() => a.inbox.length === 1 && b.inbox.length === 1);
    // a asks b: the server relays the request to b.
    a.send(JSON.stringify({ type: 'request', detail: { peer: b.inbox[0]!.detail.peer } }));
    await until(() => b.inbox.length === 2);
    expect(b.inbox[1]).toEqual({ type: 'request', detail: { peer: a.inbox[0]!.detail.peer } });
    await open('/swarm', { origin: 'https://evil.example' });
    const res = await get('/metrics');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(sample(text, 'signalbox_connections{protocol="filedrop"}')).toBe(2);
    expect(sample(text, 'signalbox_connections{protocol="swarm"}')).toBe(0);
    expect(sample(text, 'signalbox_socketio_connections')).toBe(0);
    expect(sample(text, 'signalbox_connections_opened_total{protocol="filedrop"}')).toBe(2);
    expect(sample(text, 'signalbox_messages_received_total{protocol="filedrop"}')).toBe(1);
    expect(sample(text, 'signalbox_messages_sent_total{protocol="filedrop"}')).toBe(3); // two assigns, one relay
    expect(sample(text, 'signalbox_relays_total{protocol="filedrop"}')).toBe(1);
    expect(sample(text, 'signalbox_refusals_total{reason="origin",status="403"}')).toBe(1);
    expect(sample(text, 'signalbox_buffered_bytes{protocol="filedrop"}')).toBe(0);
    expect(text).toContain('process_resident_memory_bytes');

    const closed = new Promise((resolve) => a.once('close', resolve));
    a.close(1000);
    await closed;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const after = await (await get('/metrics')).text();
    expect(sample(after, 'signalbox_closes_total{protocol="filedrop",code="1000",reason=""}')).toBe(1);
    expect(sample(after, 'signalbox_connections{protocol="filedrop"}')).toBe(1);
    b.terminate();
  });

  it('counts rate-limit hits', async () => {
    running = await startServer({
      port: 0,
      host: '127.0.0.1',
      heartbeatInterval: false,
      limits: { messagesPerSecond: 1, messageBurst: 1 },
    });
    const client = await open('/swarm');
    client.send('{}');
    client.send('{}');
    client.send('{}');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const text = await (await get('/metrics')).text();
    expect(sample(text, 'signalbox_rate_limited_total{protocol="swarm",kind="messages"}')).toBe(2);
    client.terminate();
  });

  it('is not served with metrics: false, and /health counts socket.io on its own', async () => {
    running = await startServer({ port: 0, host: '127.0.0.1', heartbeatInterval: false, metrics: false });
    expect((await get('/metrics')).status).toBe(404);
    const health = (await (await get('/health')).json()) as { connections: Record<string, number> };
    expect(health.connections).toMatchObject({ total: 0, socketIo: 0 });
  });
});
