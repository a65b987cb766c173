/**
 * Wire fixtures for registry: frames as other implementations send them (a
 * browser app's `JSON.stringify(pc.localDescription)`, a bare SDP string,
 * candidate strings, `null` at the end of candidates, extra keys), sent over
 * the real `signalbox serve` stack on 127.0.0.1 from raw `ws` sockets, and
 * what the other side receives, JSON for JSON. Then our client fetching from,
 * and serving to, a raw werift peer that signals in the other form.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import WebSocket from 'ws';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import { decodeChunk, encodeChunk } from '../machines/transfer/chunks.js';
import { sha256Hex } from '../machines/transfer/files.js';
import { createRegistryClient, type RegistryClient } from '../machines/registry/client.js';
import { memoryProvider } from '../machines/registry/files.js';
import { bytes, until } from './registry-helpers.js';
import { WERIFT_LOOPBACK } from './rtc-helpers.js';

type Json = { type: string; detail?: Record<string, unknown> };

let server: SignalboxServer;
const cleanup: Array<() => unknown> = [];

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
});
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});
afterAll(async () => {
  await server.close();
  // werift closes its sockets asynchronously.
  await new Promise((resolve) => setTimeout(resolve, 100));
});

/** A raw `ws` socket speaking JSON text frames: what any other client of the protocol is. */
interface Raw {
  id: string;
  send(frame: unknown): void;
  /** The next frame, parsed (fails after 5 s). */
  next(): Promise<Json>;
  /** The frames received and not taken yet. */
  readonly queued: Json[];
  /** Closes the socket; a `next()` waiting then rejects. */
  close(): void;
}

async function raw(): Promise<Raw> {
  const socket = new WebSocket(`ws://127.0.0.1:${server.address.port}/registry`);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  cleanup.push(() => socket.close());
  const queued: Json[] = [];
  const waiting: Array<{ take: (frame: Json) => void; fail: (error: Error) => void }> = [];
  socket.on('message', (data) => {
    const frame = JSON.parse(String(data)) as Json;
    const next = waiting.shift();
    if (next) next.take(frame);
    else queued.push(frame);
  });
  socket.on('close', () => {
    for (const { fail } of waiting.splice(0)) fail(new Error('closed'));
  });
  return {
    id: '',
    queued,
    send: (frame) => socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    close: () => socket.close(),
    next: () => {
      const frame = queued.shift();
      if (frame) return Promise.resolve(frame);
      return new Promise<Json>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no frame within 5 s')), 5000);
        waiting.push({
          take: (f) => {
            clearTimeout(timer);
            resolve(f);
          },
          fail: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        });
      });
    },
  };
}

/** A raw client that sent `Connect` and read `Welcome` and the peers already there. */
async function registered(files: unknown[] = []): Promise<Raw> {
  const client = await raw();
  client.send({ type: 'Connect', detail: { files } });
  const welcome = await client.next();
  expect(welcome).toMatchObject({ type: 'Welcome', detail: { id: expect.any(String), peers: expect.any(Number) } });
  client.id = welcome.detail!.id as string;
  for (let i = 0; i < (welcome.detail!.peers as number); i++) expect((await client.next()).type).toBe('RegisterPeer');
  return client;
}

const SDP =
  'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n';
const LINE = 'candidate:842163049 1 udp 1677729535 127.0.0.1 54321 typ srflx raddr 0.0.0.0 rport 0 generation 0';

/** Relay frames as other implementations write them; `peer` is filled in with the recipient's id. */
const fixtures: Array<{ name: string; type: string; detail: Record<string, unknown> }> = [
  { name: 'an Offer whose sdp is a string', type: 'Offer', detail: { connection: 'c1', sdp: SDP } },
  {
    name: 'an Offer whose sdp is { type, sdp } (JSON.stringify(pc.localDescription))',
    type: 'Offer',
    detail: { connection: 'c1', sdp: { type: 'offer', sdp: SDP } },
  },
  {
    name: 'an Answer whose sdp is { type, sdp }',
    type: 'Answer',
    detail: { connection: 'c1', sdp: { type: 'answer', sdp: SDP } },
  },
  { name: 'an Answer whose sdp is a string', type: 'Answer', detail: { connection: 'c1', sdp: SDP } },
  {
    name: 'a Candidate as a full RTCIceCandidateInit',
    type: 'Candidate',
    detail: {
      connection: 'c1',
      from: 'requester',
      candidate: { candidate: LINE, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'Xy7q' },
    },
  },
  {
    name: 'a Candidate as the candidate line alone',
    type: 'Candidate',
    detail: { connection: 'c1', from: 'holder', candidate: LINE },
  },
  {
    name: 'a Candidate of null (a browser’s last icecandidate event)',
    type: 'Candidate',
    detail: { connection: 'c1', from: 'holder', candidate: null },
  },
  {
    name: 'a Candidate with an empty candidate (the end of candidates, as an object)',
    type: 'Candidate',
    detail: { connection: 'c1', from: 'requester', candidate: { candidate: '', sdpMid: '0', sdpMLineIndex: 0 } },
  },
  {
    name: 'an Offer with keys we do not know, inside and beside sdp',
    type: 'Offer',
    detail: { connection: 'c1', sdp: { type: 'offer', sdp: SDP, x: [1, { y: null }] }, label: 'files', n: 3.5 },
  },
  {
    name: 'a Candidate with a number where we would put a string (for the receiver to judge)',
    type: 'Candidate',
    detail: { connection: 'c1', from: 'requester', candidate: 42 },
  },
];

describe('registry wire fixtures: the real server relays payloads untouched', () => {
  it('tells a newcomer in Welcome how many RegisterPeer follow', async () => {
    const a = await registered([{ path: 'a.txt', size: 1 }]);
    const b = await raw();
    b.send({ type: 'Connect', detail: { files: [] } });
    expect(await b.next()).toEqual({ type: 'Welcome', detail: { id: expect.any(String), peers: 1 } });
    expect(await b.next()).toEqual({
      type: 'RegisterPeer',
      detail: { peer: a.id, files: [{ path: 'a.txt', size: 1 }] },
    });
  });

  for (const { name, type, detail } of fixtures) {
    it(`relays ${name} exactly as sent, with peer set to the sender`, async () => {
      const a = await registered();
      const b = await registered();
      await a.next(); // b's RegisterPeer
      const sent = { type, detail: { peer: a.id, ...detail } };
      b.send(sent);
      const got = await a.next();
      expect(got).toEqual({ type, detail: { ...sent.detail, peer: b.id } });
      // Nothing else: no Error to the sender.
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(b.queued).toEqual([]);
    });
  }

  const refused: Array<{ name: string; frame: (to: string) => unknown; error: Record<string, unknown> }> = [
    {
      name: 'a payload nested deeper than 32',
      frame: (to) => ({
        type: 'Offer',
        detail: { peer: to, connection: 'c1', sdp: JSON.parse(`${'['.repeat(40)}${']'.repeat(40)}`) },
      }),
      error: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/nested deeper than 32/), event: 'Offer' },
    },
    {
      name: 'a relay without a connection id',
      frame: (to) => ({ type: 'Answer', detail: { peer: to, sdp: SDP } }),
      error: {
        code: 'ERR_INVALID_FIELD',
        message: expect.stringMatching(/^Answer: `detail.connection`/),
        event: 'Answer',
      },
    },
    {
      name: 'a Candidate that does not say which end sent it',
      frame: (to) => ({ type: 'Candidate', detail: { peer: to, connection: 'c1', candidate: null } }),
      error: {
        code: 'ERR_INVALID_FIELD',
        message: expect.stringMatching(/^Candidate: `detail.from`/),
        event: 'Candidate',
      },
    },
    {
      name: 'an Offer to nobody',
      frame: () => ({ type: 'Offer', detail: { peer: 'nobody', connection: 'c1', sdp: { type: 'offer', sdp: SDP } } }),
      error: { code: 'ERR_PEER_GONE', message: 'Offer: no peer nobody is registered', event: 'Offer' },
    },
  ];
  for (const { name, frame, error } of refused) {
    it(`refuses ${name}, for routing or safety, and forwards nothing`, async () => {
      const a = await registered();
      const b = await registered();
      await a.next();
      b.send(frame(a.id));
      expect(await b.next()).toEqual({ type: 'Error', detail: error });
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(a.queued).toEqual([]);
    });
  }
});

/**
 * A peer written against the README, on werift directly: it signals with a
 * bare SDP string and bare candidate strings, ends its candidates with
 * `null`, and speaks the data-channel frames by hand.
 */
function rawPeer(socket: Raw, role: 'holder' | 'requester', other: () => string, connection: () => string) {
  const pc = new RTCPeerConnection(WERIFT_LOOPBACK);
  cleanup.push(() => pc.close());
  pc.onIceCandidate.subscribe((candidate) => {
    socket.send({
      type: 'Candidate',
      detail: { peer: other(), connection: connection(), from: role, candidate: candidate?.candidate ?? null },
    });
  });
  /** Applies what our client sent: objects `{ type, sdp }` and RTCIceCandidateInit. */
  const apply = async (frame: Json) => {
    const detail = frame.detail!;
    if (frame.type === 'Candidate') {
      expect(detail.candidate).toEqual(expect.objectContaining({ candidate: expect.stringMatching(/^candidate:/) }));
      await pc.addIceCandidate(detail.candidate as never);
    } else if (frame.type === 'Offer' || frame.type === 'Answer') {
      expect(detail.sdp).toEqual({ type: frame.type.toLowerCase(), sdp: expect.stringMatching(/^v=0\r\n/) });
      await pc.setRemoteDescription(detail.sdp as never);
      if (frame.type === 'Offer') {
        await pc.setLocalDescription(await pc.createAnswer());
        socket.send({
          type: 'Answer',
          detail: { peer: other(), connection: connection(), sdp: pc.localDescription!.sdp },
        });
      }
    }
  };
  return { pc, apply };
}

describe('registry wire: our client and a raw peer that sends the other form', () => {
  let client: RegistryClient | undefined;
  afterEach(() => {
    client?.actor.stop();
    client = undefined;
  });

  const start = (files: Record<string, Uint8Array> = {}) => {
    client = createRegistryClient({
      transport: () => webSocketTransport(`ws://127.0.0.1:${server.address.port}/registry`),
      rtc: { RTCPeerConnection, config: WERIFT_LOOPBACK },
      provider: memoryProvider(files),
    });
    return client;
  };

  it('ready() resolves once the peers already there are known: requestFile right after finds them', async () => {
    // Long lists make RegisterPeer frames that arrive in reads of their own, after Welcome.
    const list = (peer: number) =>
      Array.from({ length: 900 }, (_, i) => ({
        path: `shared/peer-${peer}/${'d'.repeat(150)}/file-${i}.bin`,
        size: i,
      }));
    const holders: Raw[] = [];
    for (let peer = 0; peer < 3; peer++) holders.push(await registered(list(peer)));
    // The trap was a race: try it a few times.
    for (let round = 0; round < 6; round++) {
      const c = start();
      await c.ready();
      expect(Object.keys(c.peers)).toEqual(holders.map((h) => h.id));
      const last = holders.at(-1)!;
      // Checked locally at once: a listed path of a known peer starts a fetch (no `no-such-peer`).
      void c.requestFile(last.id, list(2)[0]!.path).catch(() => {});
      expect(Object.values(c.actor.getSnapshot().context.jobs)).toEqual([
        expect.objectContaining({ kind: 'fetch', peer: last.id }),
      ]);
      c.actor.stop();
      client = undefined;
    }
  });

  it('fetches from a raw holder that answers with a bare SDP string and candidate strings', async () => {
    const data = bytes(40_000, 7);
    const sha256 = sha256Hex(data);
    const holder = await registered([{ path: 'docs/a.bin', size: data.byteLength, sha256 }]);
    const c = start();
    const id = await c.ready();
    let connection = '';
    const { pc, apply } = rawPeer(
      holder,
      'holder',
      () => id,
      () => connection,
    );
    pc.onDataChannel.subscribe((channel: RTCDataChannel) => {
      channel.onMessage.subscribe((frame) => {
        const message = JSON.parse(String(frame)) as Json;
        expect(message).toEqual({ type: 'RequestFile', detail: { path: 'docs/a.bin' } });
        channel.send(JSON.stringify({ type: 'File', detail: { path: 'docs/a.bin', size: data.byteLength, sha256 } }));
        for (let seq = 0, at = 0; at < data.byteLength; seq++, at += 16384) {
          channel.send(Buffer.from(encodeChunk(seq, data.subarray(at, at + 16384))));
        }
      });
    });
    const pump = (async () => {
      await holder.next(); // our client's RegisterPeer
      for (;;) {
        const frame = await holder.next().catch(() => undefined);
        if (!frame) return;
        connection = frame.detail!.connection as string;
        await apply(frame);
      }
    })();
    const result = await c.requestFile(holder.id, 'docs/a.bin');
    expect(result.sha256).toBe(sha256);
    expect(result.bytes).toEqual(data);
    holder.close();
    await pump;
  });

  it('serves a raw requester that offers with a bare SDP string and candidate strings', async () => {
    const data = bytes(30_000, 9);
    const c = start({ 'b.bin': data });
    const id = await c.ready();
    const requester = await registered();
    await until(() => Object.keys(c.peers).includes(requester.id));
    const { pc, apply } = rawPeer(
      requester,
      'requester',
      () => id,
      () => 'raw1',
    );
    const channel = pc.createDataChannel('registry', { ordered: true });
    const chunks: Uint8Array[] = [];
    let header: Json | undefined;
    const complete = new Promise<void>((resolve) => {
      channel.onMessage.subscribe((frame) => {
        if (typeof frame === 'string') header = JSON.parse(frame) as Json;
        else {
          const chunk = decodeChunk(new Uint8Array(frame));
          if ('invalid' in chunk) throw new Error(chunk.invalid);
          chunks.push(chunk.data);
          if (chunks.reduce((n, part) => n + part.byteLength, 0) === data.byteLength) resolve();
        }
      });
    });
    channel.stateChanged.subscribe((state) => {
      if (state === 'open') channel.send(JSON.stringify({ type: 'RequestFile', detail: { path: 'b.bin' } }));
    });
    await pc.setLocalDescription(await pc.createOffer());
    requester.send({ type: 'Offer', detail: { peer: id, connection: 'raw1', sdp: pc.localDescription!.sdp } });
    const pump = (async () => {
      for (;;) {
        const frame = await requester.next().catch(() => undefined);
        if (!frame) return;
        await apply(frame);
      }
    })();
    const served = new Promise((resolve) => c.addEventListener('served', resolve, { once: true }));
    await complete;
    expect(header).toEqual({ type: 'File', detail: { path: 'b.bin', size: data.byteLength, sha256: sha256Hex(data) } });
    expect(Buffer.concat(chunks)).toEqual(Buffer.from(data));
    pc.close();
    await served;
    requester.close();
    await pump;
  });
});
