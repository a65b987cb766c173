import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { main, serveOptions } from '../cli/main.js';

const OPTIONS = [
  '--max-connections N',
  '--max-connections-per-ip N',
  '--trust-proxy',
  '--allow-origin O',
  '--max-buffer BYTES',
  '--rate N',
  '--rate-bytes BYTES',
  '--rate-strikes N',
  '--unknown-codes N',
  '--register-timeout MS',
  '--search-budget CHARS',
  '--search-factor N',
  '--max-files N',
];

/** `signalbox serve` with `args` in a child process; resolves once it listens, with its port. */
async function serveProcess(args: string[]) {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'cli/bin.ts', 'serve', '--port', '0', '--host', '127.0.0.1', ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const port = await new Promise<number>((resolve) =>
    createInterface({ input: child.stdout }).on('line', (text) => {
      const line = JSON.parse(text) as { msg: string; port?: number };
      if (line.msg === 'listening') resolve(line.port!);
    }),
  );
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

/** A raw WebSocket client of `path`: its frames as parsed JSON, and how it closed. */
async function rawClient(port: number, path: string) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`);
  const frames: Array<{ type: string; detail: Record<string, unknown> }> = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as (typeof frames)[number]));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, frames, closed, send: (value: unknown) => ws.send(JSON.stringify(value)) };
}

describe('signalbox serve: production options', () => {
  it('lists every limit, origin and proxy option in --help', async () => {
    let text = '';
    expect(await main(['serve', '--help'], { write: (t) => void (text += t) })).toBe(0);
    for (const option of OPTIONS) expect(text).toContain(option);
  });

  it('hands every limit to the server it starts, each protocol its own', () => {
    const options = serveOptions({
      'max-buffer': '65536',
      rate: '20',
      'rate-bytes': '2048',
      'rate-strikes': '5',
      'unknown-codes': '12',
      'register-timeout': '5000',
      'search-budget': '4096',
      'search-factor': '4',
      'max-files': '200',
      'max-frame': '9000',
    });
    expect(options.limits).toEqual({
      maxBufferedBytes: 65536,
      messagesPerSecond: 20,
      messageBurst: 40,
      bytesPerSecond: 2048,
      byteBurst: 8192,
      rateLimitStrikes: 5,
    });
    expect(options.filedrop).toEqual({ maxFrameSize: 9000, unknownCodes: { perMinute: 12, burst: 12 } });
    expect(options.workrooms).toEqual({
      maxFrameSize: 9000,
      registerTimeout: 5000,
      searchBudget: { floor: 4096, factor: 4 },
    });
    expect(options.registry).toEqual({ maxFrameSize: 9000, maxFiles: 200 });
    expect(serveOptions({ 'unknown-codes': '0' }).filedrop).toEqual({ unknownCodes: false });
    expect(serveOptions({ 'search-factor': '2' }).workrooms).toEqual({ searchBudget: { factor: 2 } });
    // Nothing given: every protocol keeps its own defaults.
    const none = serveOptions({});
    expect([none.filedrop, none.workrooms, none.registry, none.swarm]).toEqual([{}, {}, {}, {}]);
    expect(none.limits).toEqual({ maxBufferedBytes: undefined });
  });

  it.each([
    [['serve', '--rate-strikes', '0'], '--rate-strikes must be an integer'],
    [['serve', '--unknown-codes', 'all'], '--unknown-codes must be an integer'],
    [['serve', '--register-timeout', '10'], '--register-timeout must be an integer'],
    [['serve', '--search-budget', '100'], '--search-budget must be an integer'],
    [['serve', '--search-factor', '1.5'], '--search-factor must be an integer'],
    [['serve', '--max-files', '0'], '--max-files must be an integer'],
    [['serve', '--max-connections', '0'], '--max-connections must be an integer'],
    [['serve', '--max-connections-per-ip', 'many'], '--max-connections-per-ip must be an integer'],
    [['serve', '--rate', '0'], '--rate must be an integer'],
    [['serve', '--max-buffer', '10'], '--max-buffer must be an integer'],
    [['serve', '--allow-origin', 'https://game.example/play'], '--allow-origin must be an origin'],
    [['send', 'file.txt', '--trust-proxy'], '--trust-proxy is not an option of send (it is one of serve)'],
  ])('%j is a usage error (exit 2)', async (argv, message) => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(argv, { write: () => {} })).toBe(2);
      expect(stderr.mock.calls.map(([t]) => String(t)).join('')).toContain(message);
    } finally {
      stderr.mockRestore();
    }
  });

  it('applies --allow-origin and --max-connections-per-ip before the upgrade', async () => {
    const child = spawn(
      process.execPath,
      [
        ...['--import', 'tsx', 'cli/bin.ts', 'serve', '--port', '0', '--host', '127.0.0.1'],
        ...['--allow-origin', 'https://game.example', '--max-connections-per-ip', '1'],
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const port = await new Promise<number>((resolve) =>
      createInterface({ input: child.stdout }).on('line', (text) => {
        const line = JSON.parse(text) as { msg: string; port?: number };
        if (line.msg === 'listening') resolve(line.port!);
      }),
    );
    const connect = (headers: Record<string, string>) =>
      new Promise<WebSocket | number>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/swarm`, { headers });
        ws.once('open', () => resolve(ws));
        ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        ws.once('error', reject);
      });
    expect(await connect({ origin: 'https://evil.example' })).toBe(403);
    const first = await connect({ origin: 'https://game.example' });
    expect(first).toBeInstanceOf(WebSocket);
    expect(await connect({ origin: 'https://game.example' })).toBe(503);
    (first as WebSocket).terminate();
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('applies --register-timeout (workrooms) and --unknown-codes (filedrop)', async () => {
    const server = await serveProcess(['--register-timeout', '300', '--unknown-codes', '2']);
    try {
      // workrooms: a connection that never registers gets ERR_TIMEOUT and 1008 after 300 ms (not 30 s).
      const idle = await rawClient(server.port, '/workrooms');
      const started = Date.now();
      expect(await idle.closed).toEqual({ code: 1008, reason: 'register was not sent in time' });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(idle.frames).toEqual([{ type: 'error', detail: expect.objectContaining({ code: 'ERR_TIMEOUT' }) }]);
      // filedrop: two unknown codes are answered, the third is refused and the connection closed.
      const guesser = await rawClient(server.port, '/filedrop');
      for (const code of ['AAAAAAAA', 'BBBBBBBB', 'CCCCCCCC'])
        guesser.send({ type: 'request', detail: { peer: code } });
      expect(await guesser.closed).toMatchObject({ code: 1008 });
      expect(guesser.frames.map((f) => f.type)).toEqual(['assign', 'peer not exists', 'peer not exists', 'error']);
      expect(guesser.frames[3]!.detail).toMatchObject({ code: 'ERR_RATE_LIMITED' });
    } finally {
      expect(await server.stop()).toBe(0);
    }
  });
});
