import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type SignalboxServer } from '../../cli/server.js';
import { buildDemo } from '../../demo/build.js';
import { codeOf, launch, newPage } from './browser.js';

/** `SIGNALBOX_SCREENSHOTS=1 npm run test:browser` refreshes the README's pictures in docs/. */
const SCREENSHOTS = process.env.SIGNALBOX_SCREENSHOTS ? new URL('../../docs/', import.meta.url).pathname : undefined;

let dir: string;
let server: SignalboxServer;
let browser: Browser;
let origin: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'signalbox-demo-'));
  await buildDemo(join(dir, 'site'));
  server = await startServer({ port: 0, host: '127.0.0.1', static: join(dir, 'site'), inspect: true });
  origin = `http://127.0.0.1:${server.address.port}`;
  browser = await launch();
  if (SCREENSHOTS) await mkdir(SCREENSHOTS, { recursive: true });
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the demo at /', () => {
  it('moves a real file from one window to another by its link, the hash checked, and saves it', async () => {
    const data = randomBytes(3 * 1024 * 1024 + 77);
    const file = join(dir, 'holiday.bin');
    await writeFile(file, data);
    const sha256 = createHash('sha256').update(data).digest('hex');

    const sender = await newPage(browser, origin);
    await sender.page.setInputFiles('#file-input', file);
    const code = await codeOf(sender.page);
    expect(code).toMatch(/^[0-9A-Z]{8}$/);
    const link = await sender.page.locator('#send-link').getAttribute('href');
    expect(link).toBe(`${origin}/#${code}`);

    // The receiver opens the link.
    const receiver = await newPage(browser, origin, `/#${code}`);
    const hash = receiver.page.locator('#receive-hash');
    await expect.poll(() => hash.getAttribute('data-sha256'), { timeout: 45_000 }).toBe(sha256);
    expect(await receiver.page.locator('#receive-file').textContent()).toContain('holiday.bin');
    expect(await receiver.page.locator('#receive-progress').evaluate((p: HTMLProgressElement) => p.value)).toBe(1);
    expect(await receiver.page.locator('#receive-rate').textContent()).toMatch(/MiB of 3\.0 MiB · .+\/s/);
    await expect.poll(() => sender.page.locator('#send-receivers li.ok').count(), { timeout: 10_000 }).toBe(1);
    // Each side's machines panel shows its machine in its final state.
    expect(await receiver.page.locator('.machine[data-state="done"]').count()).toBe(1);

    const [download] = await Promise.all([
      receiver.page.waitForEvent('download'),
      receiver.page.locator('#receive-save').click(),
    ]);
    const saved = await readFile((await download.path())!);
    expect(createHash('sha256').update(saved).digest('hex')).toBe(sha256);

    if (SCREENSHOTS) {
      await sender.page.screenshot({ path: join(SCREENSHOTS, 'demo-sender.png') });
      await receiver.page.screenshot({ path: join(SCREENSHOTS, 'demo.png') });
    }
    expect(sender.errors).toEqual([]);
    expect(receiver.errors).toEqual([]);
    await sender.context.close();
    await receiver.context.close();
  });

  it('a receiver who types the code can cancel, and the sender sees it', async () => {
    // Big enough not to be over before the cancel, however fast the machine.
    const data = randomBytes(64 * 1024 * 1024);
    const file = join(dir, 'big.bin');
    await writeFile(file, data);
    const sender = await newPage(browser, origin);
    await sender.page.setInputFiles('#file-input', file);
    const code = await codeOf(sender.page);

    const receiver = await newPage(browser, origin);
    await receiver.page.fill('#receive-code', code.toLowerCase().replace(/(....)/, '$1-'));
    await receiver.page.click('#receive-form button');
    // Bytes are arriving: cancel mid-transfer.
    await expect
      .poll(() => receiver.page.locator('#receive-progress').evaluate((p: HTMLProgressElement) => p.value), {
        timeout: 45_000,
      })
      .toBeGreaterThan(0);
    await receiver.page.click('#receive-cancel');
    await expect.poll(() => receiver.page.locator('#receive-hash').textContent()).toMatch(/^cancelled:/);
    await expect
      .poll(() => sender.page.locator('#send-receivers li.bad').textContent(), { timeout: 10_000 })
      .toMatch(/remote-cancelled/);
    await sender.context.close();
    await receiver.context.close();
  });

  it('hosts and joins a CloudLink lobby by name and chats over the data channel', async () => {
    const host = await newPage(browser, origin);
    const peer = await newPage(browser, origin);
    await host.page.fill('#lobby-name', 'tea-room');
    await host.page.click('#lobby-host');
    await peer.page.fill('#lobby-name', 'tea-room');
    await peer.page.click('#lobby-join');
    await expect.poll(() => peer.page.locator('#lobby-status').textContent(), { timeout: 20_000 }).toMatch(/1 linked/);
    await expect.poll(() => host.page.locator('#lobby-status').textContent(), { timeout: 20_000 }).toMatch(/1 linked/);

    await peer.page.fill('#chat-input', 'hello from the peer');
    await peer.page.click('#chat-form button');
    await expect.poll(() => host.page.locator('#chat-log').textContent()).toContain('hello from the peer');
    await host.page.fill('#chat-input', 'and from the host');
    await host.page.click('#chat-form button');
    await expect.poll(() => peer.page.locator('#chat-log').textContent()).toContain('and from the host');

    await peer.page.click('#lobby-leave');
    await expect.poll(() => host.page.locator('#chat-log').textContent()).toMatch(/left/);
    if (SCREENSHOTS) await host.page.screenshot({ path: join(SCREENSHOTS, 'demo-lobby.png') });
    expect(host.errors).toEqual([]);
    expect(peer.errors).toEqual([]);
    await host.context.close();
    await peer.context.close();
  });
});
