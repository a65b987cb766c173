import { afterEach, describe, expect, it } from 'vitest';
import { PEER_ID_ALPHABET } from '../machines/filedrop/protocol.js';
import { settle } from './socket-helpers.js';
import {
  filedropSocketTestbed,
  filedropTestbed,
  rawClient,
  type MemoryTestbed,
  type RawClient,
  type Testbed,
} from './filedrop-helpers.js';

let bed: Testbed;
afterEach(async () => {
  await bed?.close();
});

const offer = { type: 'offer', sdp: 'v=0\r\nsdp-offer' };
const answer = { type: 'answer', sdp: 'v=0\r\nsdp-answer' };
const candidate = { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMid: '0', sdpMLineIndex: 0 };
const file = { name: 'a.txt', size: 5, type: 'text/plain' };

/** A receiver that has requested from a sender, both connected. */
async function pair() {
  const sender = await bed.connect();
  const receiver = await bed.connect();
  receiver.send({ type: 'request', detail: { peer: sender.id } });
  expect(await sender.next()).toEqual({ type: 'request', detail: { peer: receiver.id } });
  return { sender, receiver };
}

describe('filedrop server: the seed procedure', () => {
  it('assigns each connection a fresh 8-character code without look-alike characters', async () => {
    bed = filedropTestbed();
    const clients = await Promise.all(Array.from({ length: 50 }, () => bed.connect()));
    const ids = clients.map((c) => c.id);
    for (const id of ids) expect(id).toMatch(new RegExp(`^[${PEER_ID_ALPHABET}]{8}$`));
    expect(PEER_ID_ALPHABET).not.toMatch(/[01ILOU]/);
    expect(new Set(ids).size).toBe(50);
  });

  it('relays the whole procedure, each message stamped with who sent it', async () => {
    bed = filedropTestbed();
    const { sender, receiver } = await pair();
    const s = sender.id;
    const r = receiver.id;
    sender.send({ type: 'response', detail: { peer: r, data: { ...file, sha256: 'a'.repeat(64) } } });
    expect(await receiver.next()).toEqual({
      type: 'response',
      detail: { peer: s, data: { ...file, sha256: 'a'.repeat(64) } },
    });
    // Candidates may come before the offer: the server does not order them.
    receiver.send({ type: 'candidate', detail: { peer: s, data: candidate } });
    receiver.send({ type: 'offer', detail: { peer: s, data: offer } });
    expect(await sender.next()).toEqual({ type: 'candidate', detail: { peer: r, data: candidate } });
    expect(await sender.next()).toEqual({ type: 'offer', detail: { peer: r, data: offer } });
    sender.send({ type: 'answer', detail: { peer: r, data: answer } });
    sender.send({ type: 'candidate', detail: { peer: r, data: candidate } });
    sender.send({ type: 'retry', detail: { peer: r } });
    expect(await receiver.next()).toEqual({ type: 'answer', detail: { peer: s, data: answer } });
    expect(await receiver.next()).toEqual({ type: 'candidate', detail: { peer: s, data: candidate } });
    expect(await receiver.next()).toEqual({ type: 'retry', detail: { peer: s } });
    receiver.send({ type: 'progress', detail: { peer: s, data: { received: 3, total: 5 } } });
    receiver.send({ type: 'progress', detail: { peer: s, data: { received: 5, total: 5, done: true } } });
    expect(await sender.next()).toEqual({ type: 'progress', detail: { peer: r, data: { received: 3, total: 5 } } });
    expect(await sender.next()).toEqual({
      type: 'progress',
      detail: { peer: r, data: { received: 5, total: 5, done: true } },
    });
    expect(bed.server.stats()).toEqual({ connections: 2, pairs: 1 });
  });

  it('lets several receivers request from one sender, each answered on its own', async () => {
    bed = filedropTestbed();
    const sender = await bed.connect();
    const receivers = await Promise.all([bed.connect(), bed.connect(), bed.connect()]);
    for (const receiver of receivers) receiver.send({ type: 'request', detail: { peer: sender.id } });
    const asked = [await sender.next(), await sender.next(), await sender.next()].map((f) => f.detail!.peer);
    expect(asked.sort()).toEqual(receivers.map((r) => r.id).sort());
    for (const receiver of receivers) {
      sender.send({ type: 'response', detail: { peer: receiver.id, data: file } });
      expect(await receiver.next()).toEqual({ type: 'response', detail: { peer: sender.id, data: file } });
    }
    expect(bed.server.stats().pairs).toBe(3);
  });

  it('takes frames a client sends before it has read its assign: assign still comes first', async () => {
    bed = filedropTestbed();
    const sender = await bed.connect();
    const transport = await bed.open();
    // Sent at once, without waiting for anything from the server.
    transport.send(JSON.stringify({ type: 'request', detail: { peer: sender.id } }));
    const eager = await rawClient(transport, false);
    const assign = await eager.next();
    expect(assign.type).toBe('assign');
    expect(await sender.next()).toEqual({ type: 'request', detail: { peer: assign.detail!.peer } });
  });

  it('tells the peers a client exchanged messages with that it left, and nobody else', async () => {
    bed = filedropTestbed();
    const { sender, receiver } = await pair();
    const stranger = await bed.connect();
    receiver.transport.close();
    expect(await sender.next()).toEqual({ type: 'peer not exists', detail: { peer: receiver.id } });
    // The stranger's next frame is the answer to its own probe: nothing came before it.
    stranger.send({ type: 'request', detail: { peer: receiver.id } });
    expect(await stranger.next()).toEqual({
      type: 'peer not exists',
      detail: { peer: receiver.id, event: 'request' },
    });
    // The sender is told about the receiver's departure once, and both directions are forgotten.
    expect(bed.server.stats()).toEqual({ connections: 2, pairs: 0 });
  });

  it('tells a receiver when the sender it asked leaves', async () => {
    bed = filedropTestbed();
    const { sender, receiver } = await pair();
    (bed as MemoryTestbed).network.sever(sender.transport);
    expect(await receiver.next()).toEqual({ type: 'peer not exists', detail: { peer: sender.id } });
  });

  it('draws another id when the generator repeats one, and refuses the connection when it cannot find a free one', async () => {
    const ids = ['AAAAAAAA', 'AAAAAAAA', 'BBBBBBBB', 'BBBBBBBB'];
    bed = filedropTestbed({ generateId: () => ids.shift() ?? 'BBBBBBBB' });
    expect((await bed.connect()).id).toBe('AAAAAAAA');
    expect((await bed.connect()).id).toBe('BBBBBBBB');
    const third = await bed.open();
    await settle();
    expect(third.isOpen).toBe(false);
    expect(bed.server.stats().connections).toBe(2);
    expect(bed.registry.peers).toBe(2);
  });

  it('serves ids of another format from generateId, and answers any string nobody holds with peer not exists', async () => {
    let n = 0;
    bed = filedropTestbed({ generateId: () => `peer-${++n}` });
    const sender = await bed.connect();
    const receiver = await bed.connect();
    expect([sender.id, receiver.id]).toEqual(['peer-1', 'peer-2']);
    receiver.send({ type: 'request', detail: { peer: 'peer-1' } });
    expect(await sender.next()).toEqual({ type: 'request', detail: { peer: 'peer-2' } });
    receiver.send({ type: 'request', detail: { peer: 'K7PQ2MZA' } });
    expect(await receiver.next()).toEqual({ type: 'peer not exists', detail: { peer: 'K7PQ2MZA', event: 'request' } });
  });
});

type Offender = (ctx: { sender: RawClient; receiver: RawClient; stranger: RawClient }) => RawClient;

const cases: Array<{
  name: string;
  who: Offender;
  frame: (ids: { sender: string; receiver: string; stranger: string }) => unknown;
  reply: (ids: { sender: string; receiver: string; stranger: string }) => unknown;
}> = [
  {
    name: 'a peer id that is not a string',
    who: ({ receiver }) => receiver,
    frame: () => ({ type: 'request', detail: { peer: 42 } }),
    reply: () => ({ type: 'invalid peer id', detail: { event: 'request' } }),
  },
  {
    name: 'no peer id at all',
    who: ({ sender }) => sender,
    frame: () => ({ type: 'retry', detail: {} }),
    reply: () => ({ type: 'invalid peer id', detail: { event: 'retry' } }),
  },
  // The original server answers every string nobody holds so, in our alphabet or not.
  {
    name: 'a string peer id outside the alphabet (look-alike characters) that nobody holds',
    who: ({ receiver }) => receiver,
    frame: () => ({ type: 'request', detail: { peer: 'K7PQ0OIL' } }),
    reply: () => ({ type: 'peer not exists', detail: { peer: 'K7PQ0OIL', event: 'request' } }),
  },
  {
    name: 'a string peer id in another form (lower case, too long) that nobody holds',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'offer', detail: { peer: `${sender.toLowerCase()}X`, data: offer } }),
    reply: ({ sender }) => ({ type: 'peer not exists', detail: { peer: `${sender.toLowerCase()}X`, event: 'offer' } }),
  },
  {
    name: 'a very long string peer id, echoed cut to 128 characters',
    who: ({ receiver }) => receiver,
    frame: () => ({ type: 'request', detail: { peer: 'Z'.repeat(1000) } }),
    reply: () => ({ type: 'peer not exists', detail: { peer: 'Z'.repeat(128), event: 'request' } }),
  },
  {
    name: 'a peer id nobody has',
    who: ({ receiver }) => receiver,
    frame: () => ({ type: 'request', detail: { peer: '22222222' } }),
    reply: () => ({ type: 'peer not exists', detail: { peer: '22222222', event: 'request' } }),
  },
  {
    name: 'a response from someone who was never asked',
    who: ({ stranger }) => stranger,
    frame: ({ receiver }) => ({ type: 'response', detail: { peer: receiver, data: file } }),
    reply: ({ receiver }) => ({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: `response: ${receiver} has not sent you a request`,
        event: 'response',
      },
    }),
  },
  {
    name: 'a response from the receiver to its sender (the wrong way)',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'response', detail: { peer: sender, data: file } }),
    reply: ({ sender }) => ({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: `response: ${sender} has not sent you a request`,
        event: 'response',
      },
    }),
  },
  {
    name: 'an answer or retry to someone who never asked',
    who: ({ stranger }) => stranger,
    frame: ({ sender }) => ({ type: 'retry', detail: { peer: sender } }),
    reply: ({ sender }) => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: `retry: ${sender} has not sent you a request`, event: 'retry' },
    }),
  },
  {
    name: 'an offer to a sender never requested',
    who: ({ stranger }) => stranger,
    frame: ({ sender }) => ({ type: 'offer', detail: { peer: sender, data: offer } }),
    reply: ({ sender }) => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: `offer: you have not sent ${sender} a request`, event: 'offer' },
    }),
  },
  {
    name: 'progress to a sender never requested',
    who: ({ stranger }) => stranger,
    frame: ({ sender }) => ({ type: 'progress', detail: { peer: sender, data: { received: 1, total: 2 } } }),
    reply: ({ sender }) => ({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: `progress: you have not sent ${sender} a request`,
        event: 'progress',
      },
    }),
  },
  {
    name: 'a candidate between strangers',
    who: ({ stranger }) => stranger,
    frame: ({ receiver }) => ({ type: 'candidate', detail: { peer: receiver, data: candidate } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: 'candidate: neither of you has sent the other a request',
        event: 'candidate',
      },
    }),
  },
  {
    name: 'a message to oneself',
    who: ({ sender }) => sender,
    frame: ({ sender }) => ({ type: 'request', detail: { peer: sender } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: 'request: you cannot send to yourself', event: 'request' },
    }),
  },
  {
    name: 'a frame over the size cap',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({
      type: 'offer',
      detail: { peer: sender, data: { type: 'offer', sdp: 'x'.repeat(70_000) } },
    }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_FRAME_TOO_LARGE', message: expect.stringContaining('exceeds the cap of 65536') },
    }),
  },
  {
    name: 'a frame that is not JSON',
    who: ({ receiver }) => receiver,
    frame: () => 'request K7PQ2MZA',
    reply: () => ({ type: 'error', detail: { code: 'ERR_MALFORMED_FRAME', message: 'frame is not valid JSON' } }),
  },
  {
    name: 'JSON that is not an object',
    who: ({ receiver }) => receiver,
    frame: () => '["request", "K7PQ2MZA"]',
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_MALFORMED_FRAME', message: expect.stringMatching(/JSON object/) },
    }),
  },
  {
    name: 'a binary frame',
    who: ({ receiver }) => receiver,
    frame: () => new Uint8Array([123, 125]),
    reply: () => ({ type: 'error', detail: { code: 'ERR_MALFORMED_FRAME', message: expect.stringMatching(/binary/) } }),
  },
  {
    name: 'an unknown message type',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'hangup', detail: { peer: sender } }),
    reply: () => ({ type: 'error', detail: { code: 'ERR_UNKNOWN_MESSAGE', message: 'unknown message type `hangup`' } }),
  },
  {
    name: 'a message only the server sends',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'peer not exists', detail: { peer: sender } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_NOT_PERMITTED', message: '`peer not exists` is sent by the server only' },
    }),
  },
  {
    name: 'a missing type',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ detail: { peer: sender } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: '`type` must be a non-empty string' },
    }),
  },
  {
    name: 'a key besides type and detail',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'request', detail: { peer: sender }, from: 'me' }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: 'request: unexpected key `from` next to type and detail' },
    }),
  },
  {
    name: 'a detail that is not an object',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'request', detail: sender }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^request: `detail` must be an object/) },
    }),
  },
  {
    name: 'an extra key in detail',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'request', detail: { peer: sender, data: 'please' } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^request: `detail.data`/) },
    }),
  },
  // The payload is the other client's to read, but it must have one, and not nest without end.
  {
    name: 'an offer without data',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({ type: 'offer', detail: { peer: sender } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^offer: `detail.data`/) },
    }),
  },
  {
    name: 'a candidate whose data nests 33 levels deep',
    who: ({ receiver }) => receiver,
    frame: ({ sender }) => ({
      type: 'candidate',
      detail: { peer: sender, data: JSON.parse(`${'['.repeat(33)}${']'.repeat(33)}`) },
    }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_INVALID_FIELD',
        message: 'candidate: `detail.data`: nests deeper than 32 levels',
      },
    }),
  },
  {
    name: 'done between strangers',
    who: ({ stranger }) => stranger,
    frame: ({ sender }) => ({ type: 'done', detail: { peer: sender } }),
    reply: () => ({
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: 'done: neither of you has sent the other a request',
        event: 'done',
      },
    }),
  },
  {
    name: 'a retry with data',
    who: ({ sender }) => sender,
    frame: ({ receiver }) => ({ type: 'retry', detail: { peer: receiver, data: {} } }),
    reply: () => ({
      type: 'error',
      detail: { code: 'ERR_INVALID_FIELD', message: expect.stringMatching(/^retry: `detail.data`/) },
    }),
  },
];

const testbeds: Array<[string, () => Promise<Testbed>]> = [
  ['memory network', async () => filedropTestbed()],
  ['real server (http + ws)', () => filedropSocketTestbed()],
];

for (const [where, makeBed] of testbeds) {
  describe(`filedrop server: bad input over the ${where}`, () => {
    for (const { name, who, frame, reply } of cases) {
      it(`answers ${name}, forwards nothing and stays up`, async () => {
        bed = await makeBed();
        const { sender, receiver } = await pair();
        const stranger = await bed.connect();
        const ids = { sender: sender.id, receiver: receiver.id, stranger: stranger.id };
        const offender = who({ sender, receiver, stranger });
        const raw = frame(ids);
        offender.send(raw);
        expect(await offender.next()).toEqual(reply(ids));
        // Still connected and still served: a probe goes through, and it is the first thing anyone else sees.
        const target = offender === sender ? receiver : sender;
        if (offender === receiver)
          receiver.send({ type: 'progress', detail: { peer: sender.id, data: { received: 0, total: 1 } } });
        else offender.send({ type: 'request', detail: { peer: target.id } });
        const probe = await target.next();
        expect(probe.detail!.peer).toBe(offender.id);
        expect(probe.type).toBe(offender === receiver ? 'progress' : 'request');
        for (const other of [sender, receiver, stranger]) expect(other.inbox).toEqual([]);
        expect(bed.server.stats().connections).toBe(3);
      });
    }
  });
}

describe('filedrop server: nothing leaks', () => {
  const steps: Array<[string, (c: { sender: RawClient; receiver: RawClient }) => Promise<void>]> = [
    ['request', async () => {}],
    [
      'response',
      async ({ sender, receiver }) => {
        sender.send({ type: 'response', detail: { peer: receiver.id, data: file } });
        await receiver.next();
      },
    ],
    [
      'offer',
      async ({ sender, receiver }) => {
        receiver.send({ type: 'offer', detail: { peer: sender.id, data: offer } });
        await sender.next();
      },
    ],
    [
      'answer and candidates',
      async ({ sender, receiver }) => {
        sender.send({ type: 'answer', detail: { peer: receiver.id, data: answer } });
        sender.send({ type: 'candidate', detail: { peer: receiver.id, data: candidate } });
        receiver.send({ type: 'candidate', detail: { peer: sender.id, data: candidate } });
        await receiver.next();
        await receiver.next();
        await sender.next();
      },
    ],
    [
      'progress',
      async ({ sender, receiver }) => {
        receiver.send({ type: 'progress', detail: { peer: sender.id, data: { received: 2, total: 5 } } });
        await sender.next();
      },
    ],
  ];

  for (const vanishing of ['sender', 'receiver'] as const) {
    for (const [after] of steps) {
      it(`forgets a ${vanishing} that vanishes after ${after}`, async () => {
        const memory = filedropTestbed();
        bed = memory;
        const clients = await pair();
        for (const [name, step] of steps) {
          await step(clients);
          if (name === after) break;
        }
        const [gone, stays] =
          vanishing === 'sender' ? [clients.sender, clients.receiver] : [clients.receiver, clients.sender];
        memory.network.sever(gone.transport);
        expect(await stays.next()).toEqual({ type: 'peer not exists', detail: { peer: gone.id } });
        await settle();
        expect(bed.server.stats()).toEqual({ connections: 1, pairs: 0 });
        expect(bed.registry.peers).toBe(1);
        expect([...bed.server.sessions.keys()]).toEqual([stays.id]);
        stays.transport.close();
        await settle();
        expect(bed.server.stats()).toEqual({ connections: 0, pairs: 0 });
        expect(bed.registry.peers).toBe(0);
        expect(bed.server.sessions.size).toBe(0);
      });
    }
  }

  it('forgets a thousand clients that come and go, requesting from each other', async () => {
    bed = filedropTestbed();
    for (let round = 0; round < 10; round++) {
      const clients = await Promise.all(Array.from({ length: 100 }, () => bed.connect()));
      for (let i = 1; i < clients.length; i++) {
        clients[i]!.send({ type: 'request', detail: { peer: clients[i - 1]!.id } });
      }
      await settle();
      expect(bed.server.stats().pairs).toBe(99);
      for (const c of clients) c.transport.close();
      await settle();
    }
    expect(bed.server.stats()).toEqual({ connections: 0, pairs: 0 });
    expect(bed.registry.peers).toBe(0);
    expect(bed.server.sessions.size).toBe(0);
  });

  it('closes every connection on close(), telling nobody', async () => {
    bed = filedropTestbed();
    const { sender, receiver } = await pair();
    await bed.server.close();
    expect((await sender.closed).code).toBe(1001);
    expect((await receiver.closed).code).toBe(1001);
    expect(sender.inbox).toEqual([]);
    expect(bed.server.stats()).toEqual({ connections: 0, pairs: 0 });
    expect(bed.registry.peers).toBe(0);
  });
});

describe('filedrop server: frames far over the cap on a real socket', () => {
  it('closes only that connection with 1009, telling its partner it left; the server stays up', async () => {
    bed = await filedropSocketTestbed();
    const { sender, receiver } = await pair();
    // Over three times maxFrameSize (65536): the WebSocket itself refuses it.
    receiver.send({
      type: 'progress',
      detail: { peer: sender.id, data: { received: 0, total: 0 }, pad: 'x'.repeat(300_000) },
    });
    expect(await receiver.closed).toMatchObject({ code: 1009 });
    expect(await sender.next()).toEqual({ type: 'peer not exists', detail: { peer: receiver.id } });
    const other = await bed.connect();
    other.send({ type: 'request', detail: { peer: sender.id } });
    expect(await sender.next()).toEqual({ type: 'request', detail: { peer: other.id } });
  });
});

describe('filedrop server in startServer', () => {
  it('serves /filedrop next to CloudLink and counts its connections in /health', async () => {
    bed = await filedropSocketTestbed();
    await pair();
    const { startServer } = await import('../cli/server.js');
    const running = await startServer({ port: 0, host: '127.0.0.1' });
    try {
      const { webSocketTransport } = await import('../adapters/websocket/node.js');
      const a = await rawClient(await webSocketTransport(`ws://127.0.0.1:${running.address.port}/filedrop`));
      const b = await rawClient(await webSocketTransport(`ws://127.0.0.1:${running.address.port}/filedrop`));
      expect(a.id).not.toBe(b.id);
      const health = (await (await fetch(`http://127.0.0.1:${running.address.port}/health`)).json()) as {
        connections: Record<string, number>;
      };
      expect(health.connections).toEqual({
        total: 2,
        socketIo: 0,
        cloudlink: 0,
        filedrop: 2,
        swarm: 0,
        workrooms: 0,
        registry: 0,
      });
    } finally {
      await running.close();
    }
  });
});
