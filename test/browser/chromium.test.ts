import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../machines/transfer/files.js';
import { harnessWorld, patterned } from './browser.js';

let world: Awaited<ReturnType<typeof harnessWorld>>;

beforeAll(async () => {
  world = await harnessWorld();
});
afterAll(async () => {
  await world?.close();
});

describe('Chromium ↔ Chromium', () => {
  it('links a CloudLink host and peer in two windows, which talk over the data channel', async () => {
    const host = await world.open();
    const peer = await world.open();
    const hosted = await host.page.evaluate(async () => {
      const { id, heard } = await window.harness.cloudlink('host', 'browser', 'lobby-1', 'hello from the host');
      window.harness.keep('heard', heard);
      return id;
    });
    const joined = await peer.page.evaluate(async () => {
      const { id, heard } = await window.harness.cloudlink('peer', 'browser', 'lobby-1', 'hello from the peer');
      window.harness.keep('heard', heard);
      return id;
    });
    const atHost = await host.page.evaluate(() => window.harness.settle('heard'));
    const atPeer = await peer.page.evaluate(() => window.harness.settle('heard'));
    expect(atHost).toEqual({ from: joined, text: 'hello from the peer' });
    expect(atPeer).toEqual({ from: hosted, text: 'hello from the host' });
    expect(host.errors).toEqual([]);
    expect(peer.errors).toEqual([]);
    await host.context.close();
    await peer.context.close();
  });

  it('drops a 6 MiB file from one window to another, the hash checked on both ends', async () => {
    const size = 6 * 1024 * 1024 + 123;
    const sender = await world.open();
    const receiver = await world.open();
    const offered = await sender.page.evaluate(async (size) => {
      const { code, sha256, done } = await window.harness.send(size, 7);
      window.harness.keep('done', done);
      return { code, sha256 };
    }, size);
    expect(offered.code).toMatch(/^[0-9A-Z]{8}$/);
    const got = await receiver.page.evaluate((code) => window.harness.receive(code), offered.code);
    const expected = await sha256Hex(patterned(size, 7));
    expect(offered.sha256).toBe(expected);
    expect(got).toMatchObject({ name: 'pattern.bin', size, verified: expected, sha256: expected });
    expect(got.progressEvents).toBeGreaterThan(1);
    expect(await sender.page.evaluate(() => window.harness.settle('done'))).toEqual({});
    await sender.context.close();
    await receiver.context.close();
  });

  it('drops a file between two tabs over BroadcastChannel, with no signalling server', async () => {
    // Two tabs of one window share BroadcastChannel; the hub runs in the first.
    const first = await world.open();
    const second = await first.context.newPage();
    await second.goto(world.origin);
    await second.waitForFunction(() => 'harness' in window);
    // The windows of earlier tests are gone from the server before this starts.
    await expect.poll(() => world.server.health().connections.total).toBe(0);

    const size = 1024 * 1024 + 5;
    const offered = await first.page.evaluate(async (size) => {
      window.harness.broadcastHub('drop');
      const { code, sha256, done } = await window.harness.send(size, 3, window.harness.overBroadcastChannel('drop'));
      window.harness.keep('done', done);
      return { code, sha256 };
    }, size);
    const got = await second.evaluate(
      (code) => window.harness.receive(code, window.harness.overBroadcastChannel('drop')),
      offered.code,
    );
    expect(got).toMatchObject({ size, verified: offered.sha256, sha256: offered.sha256 });
    expect(await first.page.evaluate(() => window.harness.settle('done'))).toEqual({});
    // Nothing went through the server.
    expect(world.server.health().connections.total).toBe(0);
    await first.context.close();
  });
});
