import { describe, expect, it } from 'vitest';
import { assign, createActor, sendTo, setup, waitFor } from 'xstate';
import { createMemoryNetwork, memoryPair } from '../adapters/memory/index.js';
import { jsonCodec } from '../src/codec.js';
import type { Message } from '../src/message.js';
import { feedActor, fromTransport, type SignallingCommand, type SignallingEvent } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import { nextEvent, nextFrames } from './transport-compliance.js';

/** A tiny client: records what its signalling actor reports, sends what it is told to. */
function harness(signalling: ReturnType<typeof fromTransport<Message, Message>>) {
  const machine = setup({
    types: {
      context: {} as { seen: Array<Message | SignallingEvent> },
      events: {} as Message | SignallingEvent | { type: 'say'; message: Message } | { type: 'hangUp' },
    },
    actors: { signalling },
  }).createMachine({
    context: { seen: [] },
    invoke: { id: 'signalling', src: 'signalling' },
    on: {
      say: {
        actions: sendTo(
          'signalling',
          ({ event }) =>
            ({ type: 'signalling.send', message: (event as { message: Message }).message }) satisfies SignallingCommand,
        ),
      },
      hangUp: {
        actions: sendTo('signalling', {
          type: 'signalling.close',
          code: 4001,
          reason: 'bye',
        } satisfies SignallingCommand),
      },
      '*': { actions: assign({ seen: ({ context, event }) => [...context.seen, event as Message] }) },
    },
  });
  return createActor(machine).start();
}

describe('fromTransport', () => {
  it('opens the transport, reports signalling.open, and turns frames into events', async () => {
    const [client, server] = memoryPair();
    const actor = harness(fromTransport(client, jsonCodec()));
    server.send('{"type":"hello","detail":{"n":1}}');
    await waitFor(actor, (s) => s.context.seen.length === 2);
    expect(actor.getSnapshot().context.seen).toEqual([
      { type: 'signalling.open' },
      { type: 'hello', detail: { n: 1 } },
    ]);
  });

  it('queues messages sent before the transport is open and sends them in order once it is', async () => {
    const network = createMemoryNetwork();
    const listener = network.listen('x');
    const accepted = new Promise<Transport>((resolve) =>
      listener.on('connection', ({ transport }) => resolve(transport)),
    );
    const actor = harness(fromTransport(() => network.connect('x'), jsonCodec()));
    actor.send({ type: 'say', message: { type: 'first', detail: 1 } });
    actor.send({ type: 'say', message: { type: 'second', detail: 2 } });
    const server = await accepted;
    expect(await nextFrames(server, 2)).toEqual(['{"type":"first","detail":1}', '{"type":"second","detail":2}']);
    actor.stop();
  });

  it('reports a frame the codec rejects as signalling.error and keeps going', async () => {
    const [client, server] = memoryPair();
    const actor = harness(fromTransport(client, jsonCodec()));
    server.send('not json');
    server.send('{"type":"ok","detail":null}');
    await waitFor(actor, (s) => s.context.seen.length === 3);
    const [, error, ok] = actor.getSnapshot().context.seen;
    expect(error).toMatchObject({
      type: 'signalling.error',
      error: { code: 'ERR_MALFORMED_FRAME', name: 'ProtocolError' },
    });
    expect(ok).toEqual({ type: 'ok', detail: null });
    expect(client.isOpen).toBe(true);
  });

  it('reports the remote closing as signalling.closed with the close info', async () => {
    const [client, server] = memoryPair();
    const actor = harness(fromTransport(client, jsonCodec()));
    server.close(4002, 'go away');
    await waitFor(actor, (s) => s.context.seen.some((e) => e.type === 'signalling.closed'));
    expect(actor.getSnapshot().context.seen.at(-1)).toEqual({
      type: 'signalling.closed',
      info: { code: 4002, reason: 'go away', initiator: 'remote' },
    });
  });

  it('reports a failed connect as signalling.closed carrying ERR_CONNECT_FAILED', async () => {
    const actor = harness(fromTransport(() => createMemoryNetwork().connect('nobody'), jsonCodec()));
    await waitFor(actor, (s) => s.context.seen.length === 1);
    expect(actor.getSnapshot().context.seen[0]).toMatchObject({
      type: 'signalling.closed',
      error: { code: 'ERR_CONNECT_FAILED' },
    });
  });

  it('reports a connect function that throws the same way', async () => {
    const actor = harness(
      fromTransport(() => {
        throw new Error('no network');
      }, jsonCodec()),
    );
    await waitFor(actor, (s) => s.context.seen.length === 1);
    expect(actor.getSnapshot().context.seen[0]).toMatchObject({
      type: 'signalling.closed',
      error: { code: 'ERR_CONNECT_FAILED', message: 'no network' },
    });
  });

  it('closes the transport with the given code on signalling.close, and when the actor stops', async () => {
    const [client, server] = memoryPair();
    const actor = harness(fromTransport(client, jsonCodec()));
    const closed = nextEvent(server, 'close');
    actor.send({ type: 'hangUp' });
    expect(await closed).toMatchObject({ code: 4001, reason: 'bye' });

    const [client2, server2] = memoryPair();
    const other = harness(fromTransport(client2, jsonCodec()));
    const closed2 = nextEvent(server2, 'close');
    other.stop();
    expect((await closed2).initiator).toBe('remote');
    expect(client2.isOpen).toBe(false);
  });

  it('ignores sends after the transport closed instead of throwing', async () => {
    const [client, server] = memoryPair();
    const actor = harness(fromTransport(client, jsonCodec()));
    server.close();
    await waitFor(actor, (s) => s.context.seen.some((e) => e.type === 'signalling.closed'));
    expect(() => actor.send({ type: 'say', message: { type: 'late', detail: 0 } })).not.toThrow();
    expect(actor.getSnapshot().status).toBe('active');
  });

  it('crashes on a message its codec cannot encode, after letting go of the transport (1011, no more frames)', async () => {
    const [client, server] = memoryPair();
    const actor = harness(fromTransport(client, jsonCodec()));
    await waitFor(actor, (s) => s.context.seen.length === 1);
    const closed = nextEvent(server, 'close');
    actor.send({ type: 'say', message: { type: 'big', detail: 1n } });
    expect(await closed).toMatchObject({ code: 1011, reason: 'internal error' });
    const { seen } = actor.getSnapshot().context;
    expect(seen.map((e) => e.type)).toEqual(['signalling.open', 'xstate.error.actor.signalling']);
    expect(() => server.send('{"type":"late","detail":0}')).toThrow(); // closed: nothing can arrive
    expect(client.isOpen).toBe(false);
  });

  it('encodes when asked, so a message it cannot encode crashes it even before the transport opens', async () => {
    let open!: (t: Transport) => void;
    const actor = harness(fromTransport(() => new Promise<Transport>((resolve) => (open = resolve)), jsonCodec()));
    actor.send({ type: 'say', message: { type: 'big', detail: 1n } });
    expect(actor.getSnapshot().context.seen.map((e) => e.type)).toEqual(['xstate.error.actor.signalling']);
    const [client, server] = memoryPair();
    const closed = nextEvent(server, 'close');
    open(client);
    // The transport that opens after the crash is closed at once, not adopted.
    expect((await closed).code).toBe(1001);
    expect(actor.getSnapshot().context.seen).toHaveLength(1);
  });

  it('reports a transport whose send throws something other than a TransportError as closed with ERR_TRANSPORT_FAILED', async () => {
    const [client, server] = memoryPair();
    const broken: Transport = Object.assign(Object.create(client) as Transport, {
      send: () => {
        throw new RangeError('adapter bug');
      },
    });
    const actor = harness(fromTransport(broken, jsonCodec()));
    const closed = nextEvent(server, 'close');
    actor.send({ type: 'say', message: { type: 'hi', detail: 0 } });
    expect((await closed).code).toBe(1011);
    const last = actor.getSnapshot().context.seen.at(-1) as Extract<SignallingEvent, { type: 'signalling.closed' }>;
    expect(last).toMatchObject({
      type: 'signalling.closed',
      info: { code: 1011, initiator: 'local' },
      error: { code: 'ERR_TRANSPORT_FAILED', message: 'adapter bug' },
    });
    expect(actor.getSnapshot().status).toBe('active');
  });
});

describe('feedActor', () => {
  it('sends decoded frames, codec rejections and the close to the actor, until stopped', async () => {
    const [client, server] = memoryPair();
    const got: unknown[] = [];
    feedActor({ send: (event) => got.push(event) }, server, jsonCodec());
    client.send('{"type":"a","detail":1}');
    client.send('nope');
    await nextEvent(server, 'message');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(got).toEqual([
      { type: 'a', detail: 1 },
      { type: 'signalling.error', error: expect.objectContaining({ code: 'ERR_MALFORMED_FRAME' }) },
    ]);
    client.close(4000, 'done');
    await nextEvent(server, 'close');
    expect(got.at(-1)).toEqual({
      type: 'signalling.closed',
      info: { code: 4000, reason: 'done', initiator: 'remote' },
    });

    const [c2, s2] = memoryPair();
    const later: unknown[] = [];
    feedActor({ send: (event) => later.push(event) }, s2, jsonCodec())();
    c2.send('{"type":"ignored","detail":null}');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(later).toEqual([]);
  });
});
