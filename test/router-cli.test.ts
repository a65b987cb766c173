import { afterEach, describe, expect, it, vi } from 'vitest';
import { main } from '../cli/main.js';
import { freePort } from './redis-server.js';

// The --redis option of `signalbox serve`, without a Redis: what a wrong setup gets.
describe('signalbox serve --redis', () => {
  afterEach(() => vi.restoreAllMocks());

  it('exits with 1 and a clear error when Redis is unreachable at start', async () => {
    const port = await freePort();
    let out = '';
    const code = await main(['serve', '--port', '0', '--host', '127.0.0.1', '--redis', `redis://127.0.0.1:${port}`], {
      write: (text) => void (out += text),
    });
    expect(code).toBe(1);
    const line = JSON.parse(out.trim().split('\n').at(-1)!) as { level: string; msg: string; error: string };
    expect(line).toMatchObject({ level: 'error', msg: 'could not start' });
    expect(line.error).toMatch(new RegExp(`cannot reach Redis at redis://127\\.0\\.0\\.1:${port}`));
  });

  it('does not print a password from the URL', async () => {
    const port = await freePort();
    let out = '';
    await main(['serve', '--port', '0', '--redis', `redis://user:s3cret@127.0.0.1:${port}`], {
      write: (text) => void (out += text),
    });
    expect(out).toContain('cannot reach Redis');
    expect(out).not.toContain('s3cret');
  });

  it('refuses --redis-ttl without --redis, and a TTL out of range, as usage errors', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(await main(['serve', '--redis-ttl', '5000'])).toBe(2);
    expect(await main(['serve', '--redis', 'redis://127.0.0.1:1', '--redis-ttl', '10'])).toBe(2);
    expect(stderr.mock.calls.map(([text]) => String(text)).join('')).toMatch(/--redis-ttl needs --redis/);
  });
});
