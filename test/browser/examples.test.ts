import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { RTCPeerConnection } from 'werift';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActor, waitFor } from 'xstate';
import { webSocketTransport } from '../../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../../cli/server.js';
import { clientCodec } from '../../machines/filedrop/codec.js';
import { memorySource, sha256Hex } from '../../machines/transfer/files.js';
import { filedropSender } from '../../machines/filedrop/sender.machine.js';
import { fromRtc } from '../../src/rtc/index.js';
import { fromTransport } from '../../src/runtime.js';
import { WERIFT_LOOPBACK } from '../rtc-helpers.js';
import { launch, newPage, patterned } from './browser.js';

const EXAMPLES = ['react', 'svelte', 'vue'].filter((name) =>
  existsSync(fileURLToPath(new URL(`../../examples/${name}/package.json`, import.meta.url))),
);

let browser: Browser;
const actors: Array<{ stop(): void }> = [];
beforeAll(async () => {
  browser = await launch();
});
afterAll(async () => {
  for (const actor of actors) actor.stop();
  await browser?.close();
});

describe.each(EXAMPLES)('examples/%s', (name) => {
  const root = fileURLToPath(new URL(`../../examples/${name}/`, import.meta.url));
  // Each example installs its own dependencies (`npm install` there; .ci/run does it). CI must have them.
  const installed = existsSync(join(root, 'node_modules'));

  it.skipIf(!installed && !process.env.CI)(
    'builds with Vite and receives a file from Node, the hash checked',
    async () => {
      const out = await mkdtemp(join(tmpdir(), `signalbox-example-${name}-`));
      let server: SignalboxServer | undefined;
      try {
        await promisify(execFile)('npx', ['vite', 'build', '--outDir', out, '--emptyOutDir'], { cwd: root });
        server = await startServer({ port: 0, host: '127.0.0.1', static: out });
        const port = server.address.port;
        const bytes = patterned(1024 * 1024 + 3, 5);
        const sender = createActor(
          filedropSender.provide({
            actors: {
              signalling: fromTransport(() => webSocketTransport(`ws://127.0.0.1:${port}/filedrop`), clientCodec()),
              rtc: fromRtc({ RTCPeerConnection, config: WERIFT_LOOPBACK, trickle: true }),
            },
          }),
          { input: { source: memorySource(bytes, { name: `${name}.bin` }), once: true } },
        );
        actors.push(sender.start());
        const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;

        const { page, context, errors } = await newPage(browser, `http://127.0.0.1:${port}`, `/#${code}`);
        await expect
          .poll(() => page.locator('#sha256').textContent(), { timeout: 30_000 })
          .toBe(await sha256Hex(bytes));
        expect(await page.locator('#progress').evaluate((p: HTMLProgressElement) => p.value)).toBe(bytes.byteLength);
        await waitFor(sender, (s) => s.status === 'done', { timeout: 10_000 });
        expect(sender.getSnapshot().context.completed).toBe(1);
        expect(errors).toEqual([]);
        await context.close();
      } finally {
        await server?.close();
        await rm(out, { recursive: true, force: true });
      }
    },
  );
});
