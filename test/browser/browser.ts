import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startServer, type SignalboxServer, type SignalboxServerOptions } from '../../cli/server.js';

/** Debian's chromium, or `CHROMIUM` from the environment. No browser is downloaded. */
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/**
 * Flags for headless Chromium with WebRTC on loopback. Chromium hides host
 * addresses behind mDNS names unless `WebRtcHideLocalIpsWithMdns` is off (and
 * a media permission is granted, see {@link newPage}); it drops loopback
 * candidates without `--allow-loopback-in-peer-connection`; the resolver
 * rule keeps every name but 127.0.0.1 from resolving, so nothing leaves the
 * machine. Only one `--disable-features` counts, so every feature is in it.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--allow-loopback-in-peer-connection',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
  '--disable-features=WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints',
];

/** Starts Chromium (a fresh profile in a temporary directory each time, which Playwright makes and removes). */
export function launch(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
}

/**
 * A new window (its own context, so its own storage) on `origin`, with the
 * camera and microphone granted: without a media permission Chromium gathers
 * only an mDNS candidate, which loopback cannot resolve. Page errors and
 * console errors are collected in `errors`.
 */
export async function newPage(
  browser: Browser,
  origin: string,
  path = '/',
): Promise<{ page: Page; context: BrowserContext; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 760 } });
  await context.grantPermissions(['camera', 'microphone'], { origin });
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
  await page.goto(origin + path);
  return { page, context, errors };
}

/** The test page: the library's browser entry points from source, bundled by esbuild, with {@link harness}. */
export async function buildHarness(dir: string): Promise<void> {
  await build({
    entryPoints: { harness: new URL('./pages/harness.ts', import.meta.url).pathname },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outdir: dir,
    logLevel: 'silent',
  });
  await writeFile(
    join(dir, 'index.html'),
    '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>harness</title><script type="module" src="/harness.js"></script>',
  );
}

/** A signalbox server on 127.0.0.1 port 0 serving the harness page, and a Chromium. */
export async function harnessWorld(options: SignalboxServerOptions = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'signalbox-browser-'));
  await buildHarness(dir);
  const server: SignalboxServer = await startServer({ port: 0, host: '127.0.0.1', static: dir, ...options });
  const browser = await launch();
  const origin = `http://127.0.0.1:${server.address.port}`;
  return {
    server,
    browser,
    origin,
    /** A new window on the harness, ready once `window.harness` is there. */
    async open() {
      const opened = await newPage(browser, origin);
      await opened.page.waitForFunction(() => 'harness' in window);
      return opened;
    },
    async close() {
      await browser.close();
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Byte i is (i * 31 + seed) & 255, as in the page's `harness.patterned`. */
export function patterned(size: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 255;
  return bytes;
}

/** The demo's code for the file a page offers, once the server has assigned it. */
export async function codeOf(page: Page): Promise<string> {
  const code = page.locator('#send-code');
  await page.waitForFunction(
    () => /^[0-9A-Z]{8}$/.test(document.getElementById('send-code')?.textContent ?? ''),
    null,
    {
      timeout: 15_000,
    },
  );
  return (await code.textContent())!;
}
