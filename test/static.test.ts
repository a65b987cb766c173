import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { CONTENT_SECURITY_POLICY } from '../cli/static.js';

let dir: string;
let server: SignalboxServer;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'signalbox-static-'));
  await mkdir(join(dir, 'site', 'sub'), { recursive: true });
  await writeFile(join(dir, 'site', 'index.html'), '<p>home</p>');
  await writeFile(join(dir, 'site', 'inspect.html'), '<p>inspect</p>');
  await writeFile(join(dir, 'site', 'app.js'), 'console.log(1)');
  await writeFile(join(dir, 'secret.txt'), 'outside the root');
  server = await startServer({ port: 0, host: '127.0.0.1', static: join(dir, 'site') });
  base = `http://127.0.0.1:${server.address.port}`;
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('static files (the demo)', () => {
  it('serves / as index.html and a name without an extension as that .html, with types and a same-origin CSP', async () => {
    const home = await fetch(`${base}/`);
    expect(home.status).toBe(200);
    expect(await home.text()).toBe('<p>home</p>');
    expect(home.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(home.headers.get('content-security-policy')).toBe(CONTENT_SECURITY_POLICY);
    expect(home.headers.get('x-content-type-options')).toBe('nosniff');
    expect(await (await fetch(`${base}/inspect`)).text()).toBe('<p>inspect</p>');
    const js = await fetch(`${base}/app.js`);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const head = await fetch(`${base}/app.js`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe('14');
    expect(await head.text()).toBe('');
  });

  it('answers 404 for what is not a file under the root: missing, directories, other methods, traversal', async () => {
    for (const path of [
      '/nope',
      '/nope.js',
      '/sub',
      '/sub/',
      '/%2e%2e/secret.txt',
      '/..%2fsecret.txt',
      '/%00',
      '/%E0%A4%A',
    ])
      expect((await fetch(`${base}${path}`)).status, path).toBe(404);
    expect((await fetch(`${base}/`, { method: 'POST' })).status).toBe(404);
    // /health is still the server's own.
    expect(((await (await fetch(`${base}/health`)).json()) as { status: string }).status).toBe('ok');
  });
});
