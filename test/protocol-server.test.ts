import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { createMemoryNetwork, memoryPair } from '../adapters/memory/index.js';
import { jsonCodec } from '../src/codec.js';
import type { Message } from '../src/message.js';
import { protocolServer } from '../src/protocol-server.js';
import { memoryRouter } from '../src/router.js';
import { serve } from '../src/runtime.js';
import type { ConnectionInfo, Transport } from '../src/transport.js';
import { nextEvent } from './transport-compliance.js';

const session = setup({
  types: { events: {} as Message, input: {} as { id: string; transport: Transport } },
}).createMachine({
  initial: 'open',
  states: {
    open: {
      on: {
        boom: {
          actions: () => {
            throw new Error('bug in the session');
          },
        },
        bye: 'done',
      },
    },
    done: { type: 'final' },
  },
});

const info = (path = '/echo'): ConnectionInfo => ({
  path,
  query: new URLSearchParams(),
  remoteAddress: '127.0.0.1',
  headers: {},
});

function echoServer(refuse = (_path: string) => false) {
  const router = memoryRouter(jsonCodec());
  const cleaned: Array<[string, number, boolean]> = [];
  let next = 0;
  const server = protocolServer({
    protocol: 'echo',
    logic: session,
    codec: jsonCodec(),
    router,
    cleanup: (id, code, _reason, crashed) => cleaned.push([id, code, crashed]),
    open(transport, { path }) {
      if (refuse(path)) {
        transport.close(1008, 'no');
        return undefined;
      }
      const id = `s${++next}`;
      router.add(id, transport);
      return { id, input: { id, transport } };
    },
  });
  return { server, router, cleaned };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('protocolServer', () => {
  it('starts one session per accepted connection under the id the protocol drew', () => {
    const { server } = echoServer();
    server.accept(memoryPair()[0], info());
    server.accept(memoryPair()[0], info());
    expect([...server.sessions.keys()]).toEqual(['s1', 's2']);
  });

  it('starts nothing for a connection the protocol refused', async () => {
    const { server } = echoServer((path) => path === '/nope');
    const [transport, client] = memoryPair();
    const closed = nextEvent(client, 'close');
    server.accept(transport, info('/nope'));
    expect(server.sessions.size).toBe(0);
    expect((await closed).code).toBe(1008);
  });

  it('closes a connection that died before it was accepted, without asking the protocol', async () => {
    const { server } = echoServer(() => {
      throw new Error('open must not be called');
    });
    const [transport, client] = memoryPair();
    const gone = nextEvent(transport, 'close');
    client.close();
    await gone;
    server.accept(transport, info());
    expect(server.sessions.size).toBe(0);
  });

  it('after a crash runs the cleanup, then closes the connection (1011) and drops its route', async () => {
    const { server, router, cleaned } = echoServer();
    const [transport, client] = memoryPair();
    server.accept(transport, info());
    const closed = nextEvent(client, 'close');
    client.send('{"type":"boom","detail":null}');
    await tick();
    expect(cleaned).toEqual([['s1', 1011, true]]);
    expect((await closed).code).toBe(1011);
    expect(router.has('s1')).toBe(false);
    expect(server.sessions.size).toBe(0);
  });

  it('forgets a session that finished without running the cleanup', async () => {
    const { server, cleaned } = echoServer();
    const [transport, client] = memoryPair();
    server.accept(transport, info());
    client.send('{"type":"bye","detail":null}');
    await tick();
    expect(server.sessions.size).toBe(0);
    expect(cleaned).toEqual([]);
  });

  it('on close stops every session (1001) and admits nobody after', async () => {
    const { server, router, cleaned } = echoServer();
    const [transport, client] = memoryPair();
    server.accept(transport, info());
    const closed = nextEvent(client, 'close');
    await server.close();
    expect(cleaned).toEqual([['s1', 1001, false]]);
    expect((await closed).code).toBe(1001);
    expect(router.size).toBe(0);
    server.accept(memoryPair()[0], info());
    expect(server.sessions.size).toBe(0);
  });
});

describe('serve() and authorize', () => {
  it('on a transport server that cannot refuse before opening, closes a refused connection with 1008', async () => {
    const network = createMemoryNetwork();
    const { server } = echoServer();
    const guarded = { ...server, authorize: (info: ConnectionInfo) => info.query.get('token') === 'ok' };
    serve(network.listen('echo'), guarded);
    const refused = await network.connect('echo', { path: '/echo', query: { token: 'no' } });
    expect(await nextEvent(refused, 'close')).toMatchObject({ code: 1008, reason: 'not authorized' });
    await network.connect('echo', { path: '/echo', query: { token: 'ok' } });
    await tick();
    expect(server.sessions.size).toBe(1);
  });
});
