import { afterEach, describe, expect, it } from 'vitest';
import {
  register,
  registrySocketTestbed,
  registryTestbed,
  settle,
  type MemoryTestbed,
  type RawClient,
  type Testbed,
} from './registry-helpers.js';

let bed: Testbed;
afterEach(async () => {
  await bed?.close();
});

const a1 = { path: 'a.txt', size: 5 };
const a2 = { path: 'docs/b.bin', size: 70_000, sha256: 'b'.repeat(64) };
const c1 = { path: 'c.txt', size: 1 };
const sdp = 'v=0\r\nsdp';
const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };

/** Two registered clients, A (files a1, a2) then B (c1), with what each was told consumed. */
async function two() {
  const a = await bed.open();
  await register(a, [a1, a2]);
  const b = await bed.open();
  expect(await register(b, [c1], 1)).toEqual([{ type: 'RegisterPeer', detail: { peer: a.id, files: [a1, a2] } }]);
  expect(await a.next()).toEqual({ type: 'RegisterPeer', detail: { peer: b.id, files: [c1] } });
  return { a, b };
}

describe('registry server: the seed procedure', () => {
  it('welcomes each client with a fresh id and tells it about the clients already there, in order', async () => {
    bed = registryTestbed();
    const a = await bed.open();
    expect(await register(a, [a1])).toEqual([]);
    const b = await bed.open();
    await register(b, [], 1);
    const c = await bed.open();
    const told = await register(c, [c1], 2);
    expect(told).toEqual([
      { type: 'RegisterPeer', detail: { peer: a.id, files: [a1] } },
      { type: 'RegisterPeer', detail: { peer: b.id, files: [] } },
    ]);
    expect(new Set([a.id, b.id, c.id]).size).toBe(3);
    expect(a.id).toMatch(/^[0-9a-f-]{36}$/);
    // Old clients hear of each newcomer once: b and c joined in one turn of the
    // event loop, so a hears of both in one Batch; b hears of c alone, in the seed's frame.
    expect(await a.next()).toEqual({
      type: 'Batch',
      detail: {
        events: [
          { type: 'RegisterPeer', detail: { peer: b.id, files: [] } },
          { type: 'RegisterPeer', detail: { peer: c.id, files: [c1] } },
        ],
      },
    });
    expect(await b.next()).toEqual({ type: 'RegisterPeer', detail: { peer: c.id, files: [c1] } });
    expect(bed.server.stats()).toEqual({ connections: 3, peers: 3, files: 2 });
    expect(bed.registry.files(c.id)).toEqual([c1]);
  });

  it('propagates UpdateFiles as UpdatePeer to everyone else', async () => {
    bed = registryTestbed();
    const { a, b } = await two();
    b.send({ type: 'UpdateFiles', detail: { files: [c1, a1] } });
    expect(await a.next()).toEqual({ type: 'UpdatePeer', detail: { peer: b.id, files: [c1, a1] } });
    await settle();
    expect(b.inbox).toEqual([]);
    expect(bed.registry.files(b.id)).toEqual([c1, a1]);
    expect(bed.server.stats()).toEqual({ connections: 2, peers: 2, files: 4 });
  });

  it('unregisters a client on Disconnect, tells the others and closes its socket', async () => {
    bed = registryTestbed();
    const { a, b } = await two();
    a.send({ type: 'Disconnect' });
    expect(await b.next()).toEqual({ type: 'UnregisterPeer', detail: { peer: a.id } });
    expect((await a.closed).code).toBe(1000);
    expect(bed.server.stats()).toEqual({ connections: 1, peers: 1, files: 1 });
  });

  it('unregisters a client whose socket closes without Disconnect the same way', async () => {
    const memory = registryTestbed();
    bed = memory;
    const { a, b } = await two();
    memory.network.sever(b.transport);
    expect(await a.next()).toEqual({ type: 'UnregisterPeer', detail: { peer: b.id } });
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 1, peers: 1, files: 2 });
    expect([...bed.server.sessions.keys()]).toEqual([a.id]);
  });

  it('relays a file connection’s Offer, Answer and Candidates, each stamped with who sent it', async () => {
    bed = registryTestbed();
    const { a, b } = await two();
    b.send({ type: 'Offer', detail: { peer: a.id, connection: 'c1', sdp } });
    expect(await a.next()).toEqual({ type: 'Offer', detail: { peer: b.id, connection: 'c1', sdp } });
    a.send({ type: 'Answer', detail: { peer: b.id, connection: 'c1', sdp } });
    a.send({ type: 'Candidate', detail: { peer: b.id, connection: 'c1', from: 'holder', candidate } });
    expect(await b.next()).toEqual({ type: 'Answer', detail: { peer: a.id, connection: 'c1', sdp } });
    expect(await b.next()).toEqual({
      type: 'Candidate',
      detail: { peer: a.id, connection: 'c1', from: 'holder', candidate },
    });
  });

  it('takes a Connect sent at once, before the client read anything', async () => {
    bed = registryTestbed();
    const a = await bed.open();
    a.send({ type: 'Connect', detail: { files: [a1] } });
    a.send({ type: 'UpdateFiles', detail: { files: [] } });
    expect((await a.next()).type).toBe('Welcome');
    await settle();
    expect(a.inbox).toEqual([]);
    expect(bed.server.stats().files).toBe(0);
  });

  it('closes a connection that does not send Connect in time (1008), leaving nothing', async () => {
    const memory = registryTestbed({ connectTimeout: 1000 });
    bed = memory;
    const a = await bed.open();
    await settle();
    memory.clock.increment(999);
    await settle();
    expect(a.transport.isOpen).toBe(true);
    memory.clock.increment(1);
    expect(await a.next()).toEqual({
      type: 'Error',
      detail: { code: 'ERR_TIMEOUT', message: 'Connect was not sent in time' },
    });
    expect((await a.closed).code).toBe(1008);
    await settle();
    expect(bed.server.stats()).toEqual({ connections: 0, peers: 0, files: 0 });
    expect(bed.server.sessions.size).toBe(0);
  });

  it('draws another id when the generator repeats one, and refuses the connection when it cannot find one', async () => {
    const ids = ['p1', 'p1', 'p2', 'p2'];
    bed = registryTestbed({ generateId: () => ids.shift() ?? 'p2' });
    const a = await bed.open();
    await register(a, []);
    const b = await bed.open();
    await register(b, [], 1);
    expect([a.id, b.id]).toEqual(['p1', 'p2']);
    const c = await bed.open();
    await settle();
    expect(c.transport.isOpen).toBe(false);
    expect(bed.server.stats().connections).toBe(2);
  });
});

const bad = (code: string, message: string | RegExp, event?: string) => ({
  type: 'Error',
  detail: {
    code,
    message: typeof message === 'string' ? message : expect.stringMatching(message),
    ...(event && { event }),
  },
});
const connect = (files: unknown) => ({ type: 'Connect', detail: { files } });
const update = (files: unknown) => ({ type: 'UpdateFiles', detail: { files } });

/** Bad input from a registered client (B); A is registered too. */
const cases: Array<{ name: string; frame: (ids: { a: string; b: string }) => unknown; reply: unknown }> = [
  {
    name: 'a second Connect',
    frame: () => connect([]),
    reply: bad('ERR_NOT_PERMITTED', 'Connect: already connected; send UpdateFiles', 'Connect'),
  },
  {
    name: 'an Offer to oneself',
    frame: ({ b }) => ({ type: 'Offer', detail: { peer: b, connection: 'c', sdp } }),
    reply: bad('ERR_NOT_PERMITTED', 'Offer: you cannot send to yourself', 'Offer'),
  },
  {
    name: 'an Offer to a peer nobody has',
    frame: () => ({ type: 'Offer', detail: { peer: 'nobody', connection: 'c', sdp } }),
    reply: bad('ERR_PEER_GONE', 'Offer: no peer nobody is registered', 'Offer'),
  },
  {
    name: 'a bad connection id',
    frame: ({ a }) => ({ type: 'Answer', detail: { peer: a, connection: 'no spaces/please', sdp } }),
    reply: bad('ERR_INVALID_FIELD', /^Answer: `detail.connection`: a connection id is/, 'Answer'),
  },
  {
    name: 'a Candidate without its side',
    frame: ({ a }) => ({ type: 'Candidate', detail: { peer: a, connection: 'c', candidate } }),
    reply: bad('ERR_INVALID_FIELD', /^Candidate: `detail.from`/, 'Candidate'),
  },
  {
    name: 'a file list that is not an array',
    frame: () => update({ 'a.txt': 5 }),
    reply: bad('ERR_INVALID_FIELD', /^UpdateFiles: `detail.files`/, 'UpdateFiles'),
  },
  {
    name: 'a path that climbs out with ../',
    frame: () => update([{ path: 'docs/../../etc/passwd', size: 1 }]),
    reply: bad(
      'ERR_INVALID_FIELD',
      'UpdateFiles: `detail.files.0.path`: a `..` segment leaves the shared directory',
      'UpdateFiles',
    ),
  },
  {
    name: 'an absolute path',
    frame: () => update([a1, { path: '/etc/passwd', size: 1 }]),
    reply: bad('ERR_INVALID_FIELD', 'UpdateFiles: `detail.files.1.path`: a path must be relative', 'UpdateFiles'),
  },
  {
    name: 'a Windows drive path',
    frame: () => update([{ path: 'C:/Windows/win.ini', size: 1 }]),
    reply: bad('ERR_INVALID_FIELD', 'UpdateFiles: `detail.files.0.path`: a path must be relative', 'UpdateFiles'),
  },
  {
    name: 'a path with a NUL byte',
    frame: () => update([{ path: 'a.txt\u0000.png', size: 1 }]),
    reply: bad('ERR_INVALID_FIELD', /^UpdateFiles: `detail.files.0.path`: a path must not contain NUL/, 'UpdateFiles'),
  },
  {
    name: 'a path with backslashes',
    frame: () => update([{ path: '..\\..\\x', size: 1 }]),
    reply: bad('ERR_INVALID_FIELD', /`detail.files.0.path`: a path uses `\/` as its separator/, 'UpdateFiles'),
  },
  {
    name: 'an empty path',
    frame: () => update([{ path: '', size: 1 }]),
    reply: bad('ERR_INVALID_FIELD', 'UpdateFiles: `detail.files.0.path`: a path must not be empty', 'UpdateFiles'),
  },
  {
    name: 'a path listed twice',
    frame: () => update([a1, { ...a1, size: 9 }]),
    reply: bad(
      'ERR_INVALID_FIELD',
      'UpdateFiles: `detail.files`: a file list must not name a path twice',
      'UpdateFiles',
    ),
  },
  {
    name: 'a negative size',
    frame: () => update([{ path: 'a', size: -1 }]),
    reply: bad('ERR_INVALID_FIELD', /^UpdateFiles: `detail.files.0.size`/, 'UpdateFiles'),
  },
  {
    name: 'a malformed digest',
    frame: () => update([{ path: 'a', size: 1, sha256: 'XYZ' }]),
    reply: bad(
      'ERR_INVALID_FIELD',
      /^UpdateFiles: `detail.files.0.sha256`: sha256 must be 64 lowercase hex/,
      'UpdateFiles',
    ),
  },
  {
    name: 'an extra key in a file entry',
    frame: () => update([{ path: 'a', size: 1, owner: 'root' }]),
    reply: bad('ERR_INVALID_FIELD', /^UpdateFiles: `detail.files.0.owner`/, 'UpdateFiles'),
  },
  {
    name: 'more files than a list may hold',
    frame: () => update(Array.from({ length: 1001 }, (_, i) => ({ path: `f${i}`, size: i }))),
    reply: bad('ERR_INVALID_FIELD', 'UpdateFiles: `detail.files`: a file list has at most 1000 entries', 'UpdateFiles'),
  },
  {
    name: 'a frame over the size cap',
    frame: ({ a }) => ({ type: 'Offer', detail: { peer: a, connection: 'c', sdp: 'x'.repeat(300_000) } }),
    reply: bad('ERR_FRAME_TOO_LARGE', /exceeds the cap of 262144/),
  },
  {
    name: 'a frame that is not JSON',
    frame: () => 'Connect me',
    reply: bad('ERR_MALFORMED_FRAME', 'frame is not valid JSON'),
  },
  { name: 'JSON that is not an object', frame: () => '[1,2]', reply: bad('ERR_MALFORMED_FRAME', /JSON object/) },
  { name: 'a binary frame', frame: () => new Uint8Array([123, 125]), reply: bad('ERR_MALFORMED_FRAME', /binary/) },
  {
    name: 'an unknown message type',
    frame: () => ({ type: 'RequestFile', detail: { path: 'a.txt' } }),
    reply: bad('ERR_UNKNOWN_MESSAGE', 'unknown message type `RequestFile`'),
  },
  {
    name: 'a message only the server sends',
    frame: ({ a }) => ({ type: 'UnregisterPeer', detail: { peer: a } }),
    reply: bad('ERR_NOT_PERMITTED', '`UnregisterPeer` is sent by the server only'),
  },
  {
    name: 'a key besides type and detail',
    frame: () => ({ type: 'UpdateFiles', detail: { files: [] }, from: 'me' }),
    reply: bad('ERR_INVALID_FIELD', 'UpdateFiles: unexpected key `from` next to type and detail'),
  },
  {
    name: 'a Disconnect with a detail',
    frame: () => ({ type: 'Disconnect', detail: { now: true } }),
    reply: bad('ERR_INVALID_FIELD', /^Disconnect: `detail.now`/, 'Disconnect'),
  },
];

const testbeds: Array<[string, () => Promise<Testbed>]> = [
  ['memory network', async () => registryTestbed()],
  ['real server (http + ws)', () => registrySocketTestbed()],
];

for (const [where, makeBed] of testbeds) {
  describe(`registry server: bad input over the ${where}`, () => {
    for (const { name, frame, reply } of cases) {
      it(`answers ${name}, changes and forwards nothing, and stays up`, async () => {
        bed = await makeBed();
        const { a, b } = await two();
        b.send(frame({ a: a.id, b: b.id }));
        expect(await b.next()).toEqual(reply);
        // Still registered, with the same list, and still served: the probe is the first thing A sees.
        expect(bed.registry.files(b.id)).toEqual([c1]);
        b.send({ type: 'Offer', detail: { peer: a.id, connection: 'probe', sdp } });
        expect(await a.next()).toEqual({ type: 'Offer', detail: { peer: b.id, connection: 'probe', sdp } });
        expect(a.inbox).toEqual([]);
        expect(b.inbox).toEqual([]);
        expect(bed.server.stats()).toEqual({ connections: 2, peers: 2, files: 3 });
      });
    }

    it('refuses everything but Connect (and Disconnect) before Connect, registering nothing', async () => {
      bed = await makeBed();
      const a = await bed.open();
      await register(a, [a1]);
      const b = await bed.open();
      b.send(update([c1]));
      expect(await b.next()).toEqual(bad('ERR_NOT_PERMITTED', 'UpdateFiles before Connect', 'UpdateFiles'));
      b.send({ type: 'Offer', detail: { peer: a.id, connection: 'c', sdp } });
      expect(await b.next()).toEqual(bad('ERR_NOT_PERMITTED', 'Offer before Connect', 'Offer'));
      b.send({ type: 'Answer', detail: { peer: a.id, connection: 'c', sdp } });
      expect(await b.next()).toEqual(bad('ERR_NOT_PERMITTED', 'Answer before Connect', 'Answer'));
      b.send({ type: 'Candidate', detail: { peer: a.id, connection: 'c', from: 'holder', candidate } });
      expect(await b.next()).toEqual(bad('ERR_NOT_PERMITTED', 'Candidate before Connect', 'Candidate'));
      // A malformed list in Connect registers nothing either.
      b.send(connect([{ path: '../x', size: 1 }]));
      expect((await b.next()).detail).toMatchObject({ code: 'ERR_INVALID_FIELD' });
      expect(bed.server.stats()).toEqual({ connections: 2, peers: 1, files: 1 });
      b.send({ type: 'Disconnect', detail: {} });
      expect((await b.closed).code).toBe(1000);
      await settle();
      expect(a.inbox).toEqual([]);
      expect(bed.server.stats()).toEqual({ connections: 1, peers: 1, files: 1 });
    });
  });
}

describe('registry server: large file lists', () => {
  const list = (n: number, pathLength: number) =>
    Array.from({ length: n }, (_, i) => ({ path: `${i}`.padStart(pathLength, 'f'), size: i }));

  for (const [where, makeBed] of testbeds) {
    it(`refuses a list whose frame is over the 256 KiB cap with ERR_FRAME_TOO_LARGE, keeping the old list (${where})`, async () => {
      bed = await makeBed();
      const { a, b } = await two();
      const frame = JSON.stringify(update(list(300, 1000)));
      expect(frame.length).toBeGreaterThan(262_144);
      b.send(frame);
      expect(await b.next()).toEqual(bad('ERR_FRAME_TOO_LARGE', /^frame of \d+ characters exceeds the cap of 262144$/));
      expect(bed.registry.files(b.id)).toEqual([c1]);
      await settle();
      expect(a.inbox).toEqual([]);
      // The largest list that fits is taken.
      b.send(update(list(1000, 200)));
      expect((await a.next()).type).toBe('UpdatePeer');
      expect(bed.server.stats().files).toBe(1002);
    });
  }

  it('closes a connection whose frame is over the WebSocket limit (1009) and unregisters it like any close', async () => {
    bed = await registrySocketTestbed();
    const { a, b } = await two();
    b.send(JSON.stringify(update(list(800, 1000))));
    expect((await b.closed).code).toBe(1009);
    expect(await a.next()).toEqual({ type: 'UnregisterPeer', detail: { peer: b.id } });
    expect(bed.server.stats()).toEqual({ connections: 1, peers: 1, files: 2 });
  });
});

describe('registry server: nothing leaks', () => {
  const ways: Array<[string, (m: MemoryTestbed, c: RawClient) => void]> = [
    ['Disconnect', (_, c) => c.send({ type: 'Disconnect' })],
    ['its socket closing', (_, c) => c.transport.close()],
    ['its link being severed', (m, c) => m.network.sever(c.transport)],
  ];
  for (const [how, leave] of ways) {
    it(`forgets a client that leaves by ${how}, mid-relay, and tells every other peer once`, async () => {
      const memory = registryTestbed();
      bed = memory;
      const { a, b } = await two();
      const c = await bed.open();
      await register(c, [], 2);
      await a.next();
      await b.next();
      b.send({ type: 'Offer', detail: { peer: a.id, connection: 'c1', sdp } });
      await a.next();
      leave(memory, a);
      expect(await b.next()).toEqual({ type: 'UnregisterPeer', detail: { peer: a.id } });
      expect(await c.next()).toEqual({ type: 'UnregisterPeer', detail: { peer: a.id } });
      // The holder is gone: the requester's Answer-side traffic is refused, not lost.
      b.send({ type: 'Candidate', detail: { peer: a.id, connection: 'c1', from: 'requester', candidate } });
      expect(await b.next()).toEqual(bad('ERR_PEER_GONE', `Candidate: no peer ${a.id} is registered`, 'Candidate'));
      await settle();
      expect(b.inbox).toEqual([]);
      expect(c.inbox).toEqual([]);
      expect(bed.server.stats()).toEqual({ connections: 2, peers: 2, files: 1 });
      expect([...bed.server.sessions.keys()].sort()).toEqual([b.id, c.id].sort());
      b.transport.close();
      c.transport.close();
      await settle();
      expect(bed.server.stats()).toEqual({ connections: 0, peers: 0, files: 0 });
      expect(bed.server.sessions.size).toBe(0);
    });
  }

  it('forgets a client that leaves before Connect, telling nobody', async () => {
    bed = registryTestbed();
    const a = await bed.open();
    await register(a, [a1]);
    const b = await bed.open();
    b.transport.close();
    await settle();
    expect(a.inbox).toEqual([]);
    expect(bed.server.stats()).toEqual({ connections: 1, peers: 1, files: 1 });
    expect(bed.server.sessions.size).toBe(1);
  });

  it('forgets a thousand clients that come and go, listing files and updating them', async () => {
    bed = registryTestbed();
    for (let round = 0; round < 10; round++) {
      const clients = await Promise.all(Array.from({ length: 100 }, () => bed.open()));
      for (const [i, c] of clients.entries()) c.send(connect([{ path: `f${i}`, size: i }]));
      await settle();
      expect(bed.server.stats()).toEqual({ connections: 100, peers: 100, files: 100 });
      for (const c of clients) c.send(update([]));
      await settle();
      expect(bed.server.stats().files).toBe(0);
      for (const c of clients) c.transport.close();
      await settle();
    }
    expect(bed.server.stats()).toEqual({ connections: 0, peers: 0, files: 0 });
    expect(bed.server.sessions.size).toBe(0);
  });

  it('closes every connection on close(), telling nobody', async () => {
    bed = registryTestbed();
    const { a, b } = await two();
    await bed.server.close();
    expect((await a.closed).code).toBe(1001);
    expect((await b.closed).code).toBe(1001);
    expect(a.inbox).toEqual([]);
    expect(b.inbox).toEqual([]);
    expect(bed.server.stats()).toEqual({ connections: 0, peers: 0, files: 0 });
  });
});

describe('registry server in startServer', () => {
  it('serves /registry next to the other protocols and counts its connections in /health', async () => {
    const running = await registrySocketTestbed();
    bed = running;
    await two();
    const { startServer } = await import('../cli/server.js');
    const server = await startServer({ port: 0, host: '127.0.0.1' });
    try {
      const { webSocketTransport } = await import('../adapters/websocket/node.js');
      const { rawClient } = await import('./registry-helpers.js');
      const c = rawClient(await webSocketTransport(`ws://127.0.0.1:${server.address.port}/registry`));
      await register(c, [a1]);
      const health = (await (await fetch(`http://127.0.0.1:${server.address.port}/health`)).json()) as {
        connections: Record<string, number>;
      };
      expect(health.connections.registry).toBe(1);
      expect(health.connections.total).toBe(1);
      expect(server.registry.stats()).toEqual({ connections: 1, peers: 1, files: 1 });
    } finally {
      await server.close();
    }
  });
});
