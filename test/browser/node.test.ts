import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createActor, waitFor } from 'xstate';
import { webSocketTransport } from '../../adapters/websocket/node.js';
import { clientCodec as cloudlinkCodec, cloudlinkHost, cloudlinkPeer } from '../../machines/cloudlink/index.js';
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

/**
 * A CloudLink link between Chromium and node-datachannel, non-trickle as the
 * protocol is: each side answers the other's offer made earlier than its
 * answer reaches it (RtcInput.lateAnswer). Chromium answers the Node side's
 * libdatachannel offer as the DTLS server (`a=setup:passive`); node-datachannel
 * answers Chromium's offer with the offer's candidates held until released.
 */
describe('CloudLink: Chromium ↔ node-datachannel', () => {
  const nodeSide = (role: 'host' | 'peer', ugi: string, lobby: string, say: string) => {
    const answerSetup: string[] = [];
    const machine = role === 'host' ? cloudlinkHost : cloudlinkPeer;
    const actor = createActor(
      (machine as typeof cloudlinkPeer).provide({
        actors: {
          signalling: fromTransport(
            () => webSocketTransport(`ws://127.0.0.1:${world.server.address.port}/ws/${ugi}?v=0`),
            cloudlinkCodec(),
          ),
          rtc: fromRtc({ RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK }),
        },
      }),
      {
        input: { lobby, name: `node ${role}` },
        // The DTLS role Chromium's answer to our (libdatachannel) offer takes.
        inspect: (inspection) => {
          if (inspection.type !== '@xstate.event' || inspection.event.type !== 'ANTICIPATE_ANSWER') return;
          const sdp = JSON.stringify((inspection.event as { detail?: { payload?: unknown } }).detail?.payload);
          answerSetup.push(...(sdp.match(/a=setup:\w+/g) ?? []));
        },
      },
    );
    const heard = new Promise<{ from: string; text: string }>((resolve, reject) => {
      actor.on('linked', ({ detail }) => {
        detail.transport.on('message', (frame) => resolve({ from: detail.id, text: String(frame) }));
        detail.transport.send(say);
      });
      actor.on('stopped', ({ detail }) => reject(new Error(detail.error?.message ?? 'stopped')));
    });
    actors.push(actor.start());
    return { actor, heard, answerSetup };
  };

  it.each(['host', 'peer'] as const)('a Node %s and a Chromium one link and talk', async (nodeRole) => {
    const lobby = `lobby-node-${nodeRole}`;
    const pageRole: 'host' | 'peer' = nodeRole === 'host' ? 'peer' : 'host';
    const { page, context, errors } = await world.open();
    const node = nodeSide(nodeRole, 'mixed', lobby, `hello from the node ${nodeRole}`);
    const nodeId = (await waitFor(node.actor, (s) => s.context.id !== undefined, { timeout: 10_000 })).context.id;
    const pageId = await page.evaluate(
      async ({ role, lobby, say }) => {
        const { id, heard } = await window.harness.cloudlink(role, 'mixed', lobby, say);
        window.harness.keep('heard', heard);
        return id;
      },
      { role: pageRole, lobby, say: `hello from the chromium ${pageRole}` },
    );
    expect(await node.heard).toEqual({ from: pageId, text: `hello from the chromium ${pageRole}` });
    expect(await page.evaluate(() => window.harness.settle('heard'))).toEqual({
      from: nodeId,
      text: `hello from the node ${nodeRole}`,
    });
    expect(node.answerSetup).toEqual(['a=setup:passive']);
    expect(errors).toEqual([]);
    node.actor.stop();
    await context.close();
  });
});
