import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { createActor, waitFor } from 'xstate';
import { directorySink, fileSource } from '../adapters/fs/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { sha256Hex } from '../machines/filedrop/files.js';
import { filedropReceiver, type ReceiverEmitted } from '../machines/filedrop/receiver.machine.js';
import { filedropSender, type SenderEmitted } from '../machines/filedrop/sender.machine.js';
import { DEFAULT_HIGH_WATER_MARK } from '../src/backpressure.js';
import { fromRtc, type RtcActorInit } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import { bytes } from './filedrop-helpers.js';
import { NDC_LOOPBACK, WERIFT_LOOPBACK } from './rtc-helpers.js';

let server: SignalboxServer;
let dir: string;
const actors: Array<{ stop(): void }> = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
  dir = await mkdtemp(join(tmpdir(), 'signalbox-e2e-'));
});
afterAll(async () => {
  for (const actor of actors) actor.stop();
  await server.close();
  await rm(dir, { recursive: true, force: true });
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

type Backend = 'werift' | 'node-datachannel';

const BACKENDS: Record<Backend, RtcActorInit> = {
  werift: { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK, trickle: true },
  'node-datachannel': { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK, trickle: true },
};

/**
 * Sends a 10 MiB file from disk to disk through the real server, the sender
 * on `senderBackend` and the receiver on `receiverBackend`, and checks that
 * bytes and SHA-256 are equal.
 */
async function transfer(senderBackend: Backend, receiverBackend: Backend) {
  const name = `ten-${senderBackend}-${receiverBackend}.bin`;
  const data = bytes(10 * 1024 * 1024, 42);
  await writeFile(join(dir, name), data);
  const out = await mkdtemp(join(dir, 'out-'));

  const provide = (backend: Backend) => ({
    signalling: fromTransport(
      () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/filedrop`),
      clientCodec(),
    ),
    rtc: fromRtc(BACKENDS[backend]),
  });
  const source = await fileSource(join(dir, name));
  const sender = createActor(filedropSender.provide({ actors: provide(senderBackend) }), {
    input: { source, once: true },
  });
  const senderEvents: SenderEmitted[] = [];
  sender.on('*', (e: SenderEmitted) => senderEvents.push(e));
  actors.push(sender.start());
  const code = (await waitFor(sender, (s) => s.context.id !== undefined, { timeout: 5000 })).context.id!;

  const receiver = createActor(filedropReceiver.provide({ actors: provide(receiverBackend) }), {
    input: { code, sink: directorySink(out) },
  });
  const receiverEvents: ReceiverEmitted[] = [];
  receiver.on('*', (e: ReceiverEmitted) => receiverEvents.push(e));
  actors.push(receiver.start());

  await waitFor(receiver, (s) => s.status === 'done', { timeout: 15_000 });
  expect(receiver.getSnapshot().context.error).toBeUndefined();
  expect(receiver.getSnapshot().value).toBe('done');
  await waitFor(sender, (s) => s.status === 'done', { timeout: 5000 });
  expect(sender.getSnapshot().value).toBe('done');

  const received = new Uint8Array(await readFile(join(out, name)));
  expect(received.byteLength).toBe(data.byteLength);
  expect(sha256Hex(received)).toBe(sha256Hex(data));
  expect(Buffer.compare(received, data)).toBe(0);
  expect(receiverEvents.find((e) => e.type === 'completed')).toEqual({
    type: 'completed',
    detail: {
      file: { name, size: data.byteLength, type: 'application/octet-stream', sha256: sha256Hex(data) },
      sha256: sha256Hex(data),
    },
  });
  const progress = senderEvents.filter((e) => e.type === 'progress');
  expect(progress.length).toBeGreaterThan(1);
  expect(progress.at(-1)!.detail.received).toBe(data.byteLength);
  // Both left the server: their sessions are gone.
  for (let i = 0; i < 250 && server.health().connections.filedrop > 0; i++) await new Promise((r) => setTimeout(r, 20));
  expect(server.health().connections.filedrop).toBe(0);
}

describe('filedrop end to end: real server, ws, 10 MiB from disk to disk, bytes and SHA-256 equal', () => {
  it('werift → werift', async () => {
    // werift's throughput collapses above a 256 KiB send buffer: keep the default.
    expect(DEFAULT_HIGH_WATER_MARK).toBeLessThanOrEqual(256 * 1024);
    await transfer('werift', 'werift');
  });

  it('node-datachannel → werift', async () => {
    await transfer('node-datachannel', 'werift');
  });

  it('werift → node-datachannel', async () => {
    await transfer('werift', 'node-datachannel');
  });
});
