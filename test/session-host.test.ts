import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { jsonCodec } from '../src/codec.js';
import type { Message } from '../src/message.js';
import { sessionHost } from '../src/session-host.js';
import { silentLogger, type Logger } from '../src/logger.js';
import { nextEvent } from './transport-compliance.js';

const session = setup({ types: { events: {} as Message, input: {} as { id: string } } }).createMachine({
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

function host(log: Logger = silentLogger) {
  const cleaned: Array<[string, number, boolean]> = [];
  const h = sessionHost({
    logic: session,
    codec: jsonCodec(),
    log,
    cleanup: (id, code, _reason, crashed) => cleaned.push([id, code, crashed]),
  });
  return { h, cleaned };
}

describe('sessionHost', () => {
  it('feeds frames to the session and forgets it when it finishes, without cleanup', async () => {
    const { h, cleaned } = host();
    const [server, client] = memoryPair();
    h.start('a', server, { id: 'a' });
    expect([...h.sessions.keys()]).toEqual(['a']);
    client.send('{"type":"bye","detail":null}');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(h.sessions.size).toBe(0);
    expect(cleaned).toEqual([]);
  });

  it('cleans up after a session that crashes, and keeps the others', async () => {
    const { h, cleaned } = host();
    const [s1, c1] = memoryPair();
    const [s2] = memoryPair();
    h.start('a', s1, { id: 'a' });
    h.start('b', s2, { id: 'b' });
    c1.send('{"type":"boom","detail":null}');
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(cleaned).toEqual([['a', 1011, true]]);
    expect([...h.sessions.keys()]).toEqual(['b']);
  });

  it('on close stops every session through cleanup, then admits nobody', async () => {
    const { h, cleaned } = host();
    const [s1] = memoryPair();
    h.start('a', s1, { id: 'a' });
    h.close();
    expect(cleaned).toEqual([['a', 1001, false]]);
    expect(h.sessions.size).toBe(0);
    const [late, lateClient] = memoryPair();
    const closed = nextEvent(lateClient, 'close');
    expect(h.admits(late)).toBe(false);
    expect((await closed).code).toBe(1001);
  });

  it('does not admit a transport that already closed', async () => {
    const { h } = host();
    const [server, client] = memoryPair();
    const gone = nextEvent(server, 'close');
    client.close();
    await gone;
    expect(h.admits(server)).toBe(false);
  });

  it('claims the first id a draw takes, trying again while ids are taken', () => {
    const { h } = host();
    const [server] = memoryPair();
    const drawn = ['a', 'a', 'b'];
    const taken = new Set(['a']);
    const id = h.claimId(server, { generate: () => drawn.shift()!, claim: (id) => !taken.has(id), protocol: 'test' });
    expect(id).toBe('b');
    expect(drawn).toEqual([]);
    expect(server.isOpen).toBe(true);
  });

  it('refuses the connection with 1013 when 16 draws find no free id, and logs it', async () => {
    const errors: Array<[string, unknown]> = [];
    const { h } = host({ ...silentLogger, error: (message, fields) => errors.push([message, fields]) });
    const [server, client] = memoryPair();
    const closed = nextEvent(client, 'close');
    let draws = 0;
    const id = h.claimId(server, { generate: () => `id-${++draws}`, claim: () => false, protocol: 'test' });
    expect(id).toBeUndefined();
    expect(draws).toBe(16);
    expect(await closed).toMatchObject({ code: 1013, reason: 'no free peer id, try again later' });
    expect(errors).toEqual([['no free peer id', { protocol: 'test', attempts: 16 }]]);
  });
});
