/**
 * End to end: the real `signalbox serve` stack on 127.0.0.1, three registry
 * clients on werift (loopback only) serving directories from disk, seeing
 * each other's lists change and fetching files from each other.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection } from 'werift';
import { directoryProvider, directorySink } from '../adapters/fs/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { createRegistryClient, type RegistryClient } from '../machines/registry/client.js';
import { RegistryError } from '../machines/registry/errors.js';
import { bytes, until } from './registry-helpers.js';
import { NDC_LOOPBACK, WERIFT_LOOPBACK } from './rtc-helpers.js';

let server: SignalboxServer;
let base: string;
const clients: RegistryClient[] = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
  base = await mkdtemp(join(tmpdir(), 'signalbox-registry-e2e-'));
});
afterAll(async () => {
  for (const client of clients) client.actor.stop();
  await server.close();
  await rm(base, { recursive: true, force: true });
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

async function start(
  name: string,
  files: Record<string, Uint8Array>,
  backend: 'werift' | 'node-datachannel' = 'werift',
) {
  const dir = join(base, name);
  for (const [path, data] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), data);
  }
  await mkdir(dir, { recursive: true });
  const client = createRegistryClient({
    transport: () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/registry`),
    rtc:
      backend === 'werift'
        ? { RTCPeerConnection, config: WERIFT_LOOPBACK }
        : { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK },
    provider: directoryProvider(dir),
  });
  clients.push(client);
  const id = await client.ready();
  return { client, id, dir };
}

describe('registry end to end: real server, ws, three werift clients', () => {
  it('see each other’s lists change and fetch files from each other, bytes and SHA-256 verified', async () => {
    const aData = bytes(3 * 1024 * 1024, 11);
    const bData = bytes(100_000, 12);
    const cData = new TextEncoder().encode('notes of c');
    const a = await start('a', { 'video/clip.bin': aData });
    const b = await start('b', { 'b.bin': bData });
    const c = await start('c', { 'notes.txt': cData });
    for (const x of [a, b, c]) await until(() => Object.keys(x.client.peers).length === 2);
    expect(c.client.peers[a.id]).toEqual([
      { path: 'video/clip.bin', size: aData.byteLength, sha256: sha256Hex(aData) },
    ]);
    expect(server.health().connections.registry).toBe(3);

    // B adds a file: A and C see B's new list.
    const extra = bytes(5000, 13);
    await writeFile(join(b.dir, 'later.bin'), extra);
    const updated: string[] = [];
    a.client.addEventListener('peerUpdated', (e) => updated.push((e as CustomEvent).detail.peer));
    b.client.updateFiles();
    await until(() => a.client.peers[b.id]?.length === 2 && c.client.peers[b.id]?.length === 2);
    expect(updated).toEqual([b.id]);

    // Fetches in every direction, at once: into memory, and one to disk.
    const out = join(base, 'out');
    await mkdir(out);
    const [fromA, fromB, fromC, later] = await Promise.all([
      c.client.requestFile(a.id, 'video/clip.bin', { sink: directorySink(out) }),
      a.client.requestFile(b.id, 'b.bin'),
      b.client.requestFile(c.id, 'notes.txt'),
      c.client.requestFile(b.id, 'later.bin'),
    ]);
    expect(fromA).toEqual({ peer: a.id, path: 'video/clip.bin', size: aData.byteLength, sha256: sha256Hex(aData) });
    const onDisk = new Uint8Array(await readFile(join(out, 'clip.bin')));
    expect(sha256Hex(onDisk)).toBe(sha256Hex(aData));
    expect(Buffer.compare(onDisk, aData)).toBe(0);
    expect(sha256Hex(fromB.bytes!)).toBe(sha256Hex(bData));
    expect(fromB.sha256).toBe(sha256Hex(bData));
    expect(new TextDecoder().decode(fromC.bytes!)).toBe('notes of c');
    expect(sha256Hex(later.bytes!)).toBe(sha256Hex(extra));

    // Bad requests are refused with typed errors, nothing served.
    const refused = await a.client.requestFile(b.id, '../a/video/clip.bin').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(RegistryError);
    expect((refused as RegistryError).reason).toBe('invalid-path');
    const unlisted = await a.client.requestFile(c.id, 'secret.txt').catch((e: RegistryError) => e);
    expect((unlisted as RegistryError).reason).toBe('not-listed');

    // C leaves: A and B see it go, and the server forgets it.
    c.client.leave();
    await until(() => !(c.id in a.client.peers) && !(c.id in b.client.peers));
    await until(() => server.health().connections.registry === 2);
    expect(server.registry.stats()).toEqual({ connections: 2, peers: 2, files: 3 });
  }, 60_000);

  it('a node-datachannel client and a werift client fetch from each other', async () => {
    const ndcData = bytes(500_000, 41);
    const wData = bytes(300_000, 42);
    const ndc = await start('ndc', { 'n.bin': ndcData }, 'node-datachannel');
    const w = await start('w', { 'w.bin': wData });
    await until(() => w.id in ndc.client.peers && ndc.id in w.client.peers);
    const [fromNdc, fromW] = await Promise.all([
      w.client.requestFile(ndc.id, 'n.bin'),
      ndc.client.requestFile(w.id, 'w.bin'),
    ]);
    expect(sha256Hex(fromNdc.bytes!)).toBe(sha256Hex(ndcData));
    expect(fromNdc.sha256).toBe(sha256Hex(ndcData));
    expect(sha256Hex(fromW.bytes!)).toBe(sha256Hex(wData));
    ndc.client.leave();
    w.client.leave();
    await until(() => !server.registry.sessions.has(ndc.id) && !server.registry.sessions.has(w.id));
  }, 60_000);

  it('fails a fetch with peer-gone when the holder vanishes mid-transfer, leaving no file and no session', async () => {
    const big = bytes(8 * 1024 * 1024, 31);
    const peersBefore = server.registry.stats().peers;
    const holder = await start('holder', { 'big.bin': big });
    const requester = await start('requester', {});
    await until(() => holder.id in requester.client.peers);
    const out = join(base, 'vanish-out');
    await mkdir(out);
    let progressed = false;
    requester.client.addEventListener('progress', () => {
      if (progressed) return;
      progressed = true;
      // The holder's process dies: its socket closes without Disconnect, its data channel with it.
      holder.client.actor.stop();
    });
    const error = await requester.client.requestFile(holder.id, 'big.bin', { sink: directorySink(out) }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(progressed).toBe(true);
    expect(error).toBeInstanceOf(RegistryError);
    expect((error as RegistryError).reason).toBe('peer-gone');
    expect((error as RegistryError).code).toBe('ERR_PEER_GONE');
    await until(() => !(holder.id in requester.client.peers));
    // The sink was aborted: neither the file nor its .part is left.
    await until(() => existsSync(join(out, 'big.bin.part')) === false);
    expect(existsSync(join(out, 'big.bin'))).toBe(false);
    expect(requester.client.actor.getSnapshot().context.jobs).toEqual({});
    requester.client.leave();
    // Both are forgotten by the server.
    await until(() => !server.registry.sessions.has(requester.id));
    expect(server.registry.sessions.has(holder.id)).toBe(false);
    expect(server.registry.stats().peers).toBe(peersBefore);
  }, 60_000);
});
