import { describe, expect, it } from 'vitest';
import { setup } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { jsonCodec } from '../src/codec.js';
import type { Message } from '../src/message.js';
import { sessionHost } from '../src/session-host.js';
import { silentLogger } from '../src/logger.js';
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

function host() {
  const cleaned: Array<[string, number, boolean]> = [];
  const h = sessionHost({
    logic: session,
    codec: jsonCodec(),
    log: silentLogger,
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
});
