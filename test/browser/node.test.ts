import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActor, waitFor } from 'xstate';
import { webSocketTransport } from '../../adapters/websocket/node.js';
import { clientCodec } from '../../machines/filedrop/codec.js';
import { memorySink, memorySource, sha256Hex } from '../../machines/transfer/files.js';
import { filedropReceiver } from '../../machines/filedrop/receiver.machine.js';
import { filedropSender } from '../../machines/filedrop/sender.machine.js';
import { fromRtc, type RtcActorInit } from '../../src/rtc/index.js';
import { fromTransport } from '../../src/runtime.js';
import { NDC_LOOPBACK, WERIFT_LOOPBACK } from '../rtc-helpers.js';
import { harnessWorld, patterned } from './browser.js';

let world: Awaited<ReturnType<typeof harnessWorld>>;
const actors: Array<{ stop(): void }> = [];

beforeAll(async () => {
  world = await harnessWorld();
});
afterAll(async () => {
  for (const actor of actors) actor.stop();
  await world?.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

/**
 * The Node backends on loopback only: werift with `iceUseIpv4: false` and
 * 127.0.0.1 as an additional host address, so its one candidate is
 * 127.0.0.1 (without it werift advertises every interface; on this machine
 * Chromium still connected, but the test would then depend on the host's
 * interfaces); node-datachannel bound to 127.0.0.1.
 */
const BACKENDS: Record<string, RtcActorInit> = {
  werift: { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true },
  'node-datachannel': { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK, trickle: true },
};

const nodeActors = (backend: string) => ({
  signalling: fromTransport(
    () => webSocketTransport(`ws://127.0.0.1:${world.server.address.port}/filedrop`),
    clientCodec(),
  ),
  rtc: fromRtc(BACKENDS[backend]!),
});

describe.each(Object.keys(BACKENDS))('Chromium ↔ Node on %s', (backend) => {
  it('Node sends, Chromium receives, the hash checked', async () => {
    const size = 2 * 1024 * 1024 + 11;
    const bytes = patterned(size, 11);
    const sender = createActor(filedropSender.provide({ actors: nodeActors(backend) }), {
      input: { source: memorySource(bytes, { name: 'from-node.bin' }), once: true },
    });
    actors.push(sender.start());
    const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;

    const { page, context } = await world.open();
    const got = await page.evaluate((code) => window.harness.receive(code), code);
    const expected = await sha256Hex(bytes);
    expect(got).toMatchObject({ name: 'from-node.bin', size, verified: expected, sha256: expected });
    await waitFor(sender, (s) => s.status === 'done', { timeout: 10_000 });
    expect(sender.getSnapshot().context.error).toBeUndefined();
    expect(sender.getSnapshot().context.completed).toBe(1);
    await context.close();
  });

  it('Chromium sends, Node receives, the hash checked', async () => {
    const size = 2 * 1024 * 1024 + 13;
    const { page, context } = await world.open();
    const offered = await page.evaluate(async (size) => {
      const { code, sha256, done } = await window.harness.send(size, 13);
      window.harness.keep('done', done);
      return { code, sha256 };
    }, size);

    const sink = memorySink();
    const receiver = createActor(filedropReceiver.provide({ actors: nodeActors(backend) }), {
      input: { code: offered.code, sink },
    });
    actors.push(receiver.start());
    await waitFor(receiver, (s) => s.status === 'done', { timeout: 30_000 });
    expect(receiver.getSnapshot().context.error).toBeUndefined();
    const expected = await sha256Hex(patterned(size, 13));
    expect(offered.sha256).toBe(expected);
    expect(await sha256Hex(sink.bytes())).toBe(expected);
    expect(await page.evaluate(() => window.harness.settle('done'))).toEqual({});
    await context.close();
  });
});
