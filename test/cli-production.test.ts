import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { main } from '../cli/main.js';

const OPTIONS = [
  '--max-connections N',
  '--max-connections-per-ip N',
  '--trust-proxy',
  '--allow-origin O',
  '--max-buffer BYTES',
  '--rate N',
  '--rate-bytes BYTES',
];

describe('signalbox serve: production options', () => {
  it('lists every limit, origin and proxy option in --help', async () => {
    let text = '';
    expect(await main(['serve', '--help'], { write: (t) => void (text += t) })).toBe(0);
    for (const option of OPTIONS) expect(text).toContain(option);
  });

  it.each([
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
});
