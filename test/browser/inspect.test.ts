import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { RTCPeerConnection } from 'werift';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActor, waitFor } from 'xstate';
import { webSocketTransport } from '../../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../../cli/server.js';
import { buildDemo } from '../../demo/build.js';
import { clientCodec } from '../../machines/filedrop/codec.js';
import { memorySource } from '../../machines/transfer/files.js';
import { filedropSender } from '../../machines/filedrop/sender.machine.js';
import { fromRtc } from '../../src/rtc/index.js';
import { fromTransport } from '../../src/runtime.js';
import { WERIFT_LOOPBACK } from '../rtc-helpers.js';
import { codeOf, launch, newPage } from './browser.js';

const SCREENSHOTS = process.env.SIGNALBOX_SCREENSHOTS ? new URL('../../docs/', import.meta.url).pathname : undefined;

let dir: string;
let server: SignalboxServer;
let browser: Browser;
let origin: string;
const actors: Array<{ stop(): void }> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'signalbox-inspect-'));
  await buildDemo(join(dir, 'site'));
  server = await startServer({ port: 0, host: '127.0.0.1', static: join(dir, 'site'), inspect: true });
  origin = `http://127.0.0.1:${server.address.port}`;
  browser = await launch();
});
afterAll(async () => {
  for (const actor of actors) actor.stop();
  await browser?.close();
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('the live inspector at /inspect', () => {
  it("shows a live server session's diagram with its current state, and a browser's own actors", async () => {
    const inspector = await newPage(browser, origin, '/inspect');
    await expect.poll(() => inspector.page.locator('#inspect-status').textContent()).toMatch(/^Live/);

    // A Node client opens a filedrop session on the server.
    const sender = createActor(
      filedropSender.provide({
        actors: {
          signalling: fromTransport(
            () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`),
            clientCodec(),
          ),
          rtc: fromRtc({ RTCPeerConnection, config: WERIFT_LOOPBACK, trickle: true }),
        },
      }),
      { input: { source: memorySource(new Uint8Array(1024), { name: 'x.bin' }) } },
    );
    actors.push(sender.start());
    const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;

    // The server's session for it is named by its peer id, drawn from its machine, its state highlighted.
    const session = inspector.page.locator(`.machine[data-machine="${code}"]`);
    await expect.poll(() => session.count(), { timeout: 10_000 }).toBe(1);
    const state = await session.getAttribute('data-state');
    expect(state).toBeTruthy();
    // filedropSession: open → closed, each with its transitions.
    expect(await session.locator('.sc-state').count()).toBe(2);
    expect(await session.locator('.sc-transitions li').count()).toBeGreaterThan(0);
    const active = await session.locator('.sc-state.active > .sc-name').allTextContents();
    expect(active.length).toBeGreaterThan(0);
    // Every highlighted box is a state named in the snapshot value.
    for (const name of active) expect(state).toContain(name.replace(/^→ /, ''));

    // A browser client sends its own actors: the demo with ?inspect, sending a file.
    const file = join(dir, 'note.txt');
    await writeFile(file, randomBytes(4096));
    const demo = await newPage(browser, origin, '/?inspect');
    await demo.page.setInputFiles('#file-input', file);
    const browserCode = await codeOf(demo.page);
    const own = inspector.page.locator('.machine[data-machine="filedropSender"]');
    await expect.poll(() => own.count(), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => own.locator('.events li').allTextContents()).toContain('assign ← signalling');
    // …and the server's session for that browser shows up too.
    await expect.poll(() => inspector.page.locator(`.machine[data-machine="${browserCode}"]`).count()).toBe(1);

    // A page opened later is told what is remembered.
    const late = await newPage(browser, origin, '/inspect');
    await expect.poll(() => late.page.locator(`.machine[data-machine="${code}"]`).count(), { timeout: 10_000 }).toBe(1);

    if (SCREENSHOTS) await inspector.page.screenshot({ path: join(SCREENSHOTS, 'inspector.png') });
    expect(inspector.errors).toEqual([]);
    expect(demo.errors).toEqual([]);
    await inspector.context.close();
    await late.context.close();
    await demo.context.close();
  });
});
