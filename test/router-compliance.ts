import { describe, expect, it, vi } from 'vitest';
import { TransportError, ErrorCode } from '../src/errors.js';
import type { Message } from '../src/message.js';
import type { Router } from '../src/router.js';
import type { Frame, Transport } from '../src/transport.js';

/** Two routers as two processes see one network (the memory router: the same one twice). */
export interface RouterPair {
  a: Router<Message>;
  b: Router<Message>;
  close(): Promise<void>;
}

/** The codec the suite routes with. */
export const jsonEncoder = { encode: (message: Message): Frame => JSON.stringify(message) };

/**
 * `inner`, except that `send` refuses (answers false for) the sessions
 * `refuses` names, as the Redis router does for a session on another process
 * while Redis is down, or any router for a connection that is closing.
 */
export function refusingRouter<M extends Message>(inner: Router<M>, refuses: (id: string) => boolean): Router<M> {
  return {
    add: (id, transport) => inner.add(id, transport),
    remove: (id) => inner.remove(id),
    has: (id) => inner.has(id),
    send: (id, message) => !refuses(id) && inner.send(id, message),
    close: (id, code, reason) => inner.close(id, code, reason),
    get size() {
      return inner.size;
    },
  };
}

/** A transport that records what it is sent and how it was closed. */
export function recordingTransport(options: { failing?: boolean } = {}): Transport & {
  frames: Frame[];
  closed?: { code?: number; reason?: string };
} {
  const frames: Frame[] = [];
  const transport = {
    frames,
    closed: undefined as { code?: number; reason?: string } | undefined,
    get isOpen() {
      return transport.closed === undefined;
    },
    bufferedAmount: 0,
    send(frame: Frame) {
      if (options.failing) throw new TransportError(ErrorCode.TransportFailed, 'broken');
      frames.push(frame);
    },
    on: () => () => {},
    close(code?: number, reason?: string) {
      transport.closed = { code, reason };
    },
  };
  return transport as unknown as Transport & { frames: Frame[]; closed?: { code?: number; reason?: string } };
}

const msg = (n: number): Message => ({ type: 'M', detail: { n } });
const received = (t: { frames: Frame[] }) =>
  t.frames.map((f) => (JSON.parse(f as string) as { detail: { n: number } }).detail.n);

/**
 * The {@link Router} contract every implementation keeps, run against the
 * memory router and the Redis one: what one process sees of its own
 * sessions, and delivery between two processes.
 */
export function routerCompliance(name: string, open: () => Promise<RouterPair>): void {
  describe(`Router compliance: ${name}`, () => {
    const withPair = (test: (pair: RouterPair) => Promise<void>) => async () => {
      const pair = await open();
      try {
        await test(pair);
      } finally {
        await pair.close();
      }
    };

    it(
      'add, has, size and remove track the sessions held here',
      withPair(async ({ a }) => {
        expect(a.has('s1')).toBe(false);
        a.add('s1', recordingTransport());
        a.add('s2', recordingTransport());
        expect(a.has('s1')).toBe(true);
        expect(a.size).toBe(2);
        a.remove('s1');
        a.remove('s1');
        expect(a.has('s1')).toBe(false);
        expect(a.size).toBe(1);
      }),
    );

    it(
      'delivers to a session held here at once, encoded, and says so',
      withPair(async ({ a }) => {
        const t = recordingTransport();
        a.add('s1', t);
        expect(a.send('s1', msg(1))).toBe(true);
        expect(t.frames).toEqual([JSON.stringify(msg(1))]);
      }),
    );

    it(
      'refuses delivery to a closed or failing session held here',
      withPair(async ({ a }) => {
        const closed = recordingTransport();
        closed.close();
        a.add('closed', closed);
        a.add('failing', recordingTransport({ failing: true }));
        expect(a.send('closed', msg(1))).toBe(false);
        expect(a.send('failing', msg(1))).toBe(false);
      }),
    );

    it(
      'closes a session held here with its code and reason',
      withPair(async ({ a }) => {
        const t = recordingTransport();
        a.add('s1', t);
        a.close('s1', 4000, 'bye');
        expect(t.closed).toEqual({ code: 4000, reason: 'bye' });
      }),
    );

    it(
      'delivers to a session held by the other process, in the order sent',
      withPair(async ({ a, b }) => {
        const t = recordingTransport();
        b.add('far', t);
        await settle();
        for (let n = 0; n < 20; n++) expect(a.send('far', msg(n))).toBe(true);
        await vi.waitFor(() => expect(received(t)).toHaveLength(20));
        expect(received(t)).toEqual([...Array(20).keys()]);
      }),
    );

    it(
      'closes a session held by the other process',
      withPair(async ({ a, b }) => {
        const t = recordingTransport();
        b.add('far', t);
        await settle();
        a.close('far', 4001, 'kicked');
        await vi.waitFor(() => expect(t.closed).toEqual({ code: 4001, reason: 'kicked' }));
      }),
    );

    it(
      'drops what is sent to a session after it was removed over there',
      withPair(async ({ a, b }) => {
        const gone = recordingTransport();
        const marker = recordingTransport();
        b.add('gone', gone);
        b.add('marker', marker);
        await settle();
        b.remove('gone');
        await settle();
        a.send('gone', msg(1));
        a.send('marker', msg(2));
        // Deliveries from one process keep their order: once the marker is in, the other was dropped.
        await vi.waitFor(() => expect(received(marker)).toEqual([2]));
        expect(gone.frames).toEqual([]);
      }),
    );
  });
}

/** Lets fire-and-forget writes (a route's key) reach a shared store. */
async function settle(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 50));
}
