import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ErrorCode, TransportError } from '../src/errors.js';
import type { Frame, Transport, TransportEvents } from '../src/transport.js';

/**
 * Two connected transports, and how to release whatever joined them.
 *
 * @example
 * ```ts
 * const [a, b] = memoryPair();
 * const pair: TransportPair = { a, b, teardown: () => server.close() };
 * ```
 */
export interface TransportPair {
  a: Transport;
  b: Transport;
  teardown?: () => Promise<void> | void;
}

/**
 * What the adapter under test can do; the tests for a missing capability are skipped.
 *
 * @example
 * ```ts
 * transportCompliance('text-only transport', setup, { binary: false, closeCode: false });
 * ```
 */
export interface ComplianceOptions {
  /** The adapter carries binary frames. @default true */
  binary?: boolean;
  /** The adapter carries the close code and reason to the other side. @default true */
  closeCode?: boolean;
}

/** How long a helper waits for an event before it fails the test. */
const EVENT_TIMEOUT = 3000;
/** How long to wait for frames to cross, where a test cannot observe their arrival. */
const SETTLE = 50;

/**
 * Resolves with the next `type` event of `transport`; rejects after `timeout`
 * ms so that a broken adapter fails the test instead of hanging it.
 *
 * @example
 * ```ts
 * const closed = nextEvent(b, 'close');
 * a.close();
 * expect((await closed).initiator).toBe('remote');
 * ```
 */
export function nextEvent<K extends keyof TransportEvents>(
  transport: Transport,
  type: K,
  timeout = EVENT_TIMEOUT,
): Promise<TransportEvents[K]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no '${type}' event within ${timeout} ms`));
    }, timeout);
    const off = transport.on(type, (event) => {
      clearTimeout(timer);
      off();
      resolve(event);
    });
  });
}

/**
 * Resolves with the next `count` frames of `transport`, in arrival order;
 * rejects after `timeout` ms with what had arrived so far.
 *
 * @example
 * ```ts
 * const frames = nextFrames(b, 2);
 * a.send('one');
 * a.send('two');
 * expect(await frames).toEqual(['one', 'two']);
 * ```
 */
export function nextFrames(transport: Transport, count: number, timeout = EVENT_TIMEOUT): Promise<Frame[]> {
  return new Promise((resolve, reject) => {
    const frames: Frame[] = [];
    const timer = setTimeout(() => {
      off();
      reject(new Error(`only ${frames.length} of ${count} frames arrived within ${timeout} ms`));
    }, timeout);
    const off = transport.on('message', (frame) => {
      frames.push(frame);
      if (frames.length === count) {
        clearTimeout(timer);
        off();
        resolve(frames);
      }
    });
  });
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Resolves as soon as `condition()` holds, checking on a 0 ms interval. An
 * adapter that defers work with a 0 ms timer arms it after our interval, so
 * this check runs first (Node keeps timers of one duration in arming order).
 */
function until(condition: () => boolean, timeout = EVENT_TIMEOUT): Promise<void> {
  const deadline = Date.now() + timeout;
  return new Promise((resolve, reject) => {
    if (condition()) return resolve();
    const interval = setInterval(() => {
      if (condition()) resolve();
      else if (Date.now() > deadline) reject(new Error(`condition not met within ${timeout} ms`));
      else return;
      clearInterval(interval);
    }, 0);
  });
}

const bytes = (length: number, seed = 0) => Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);

/**
 * The {@link Transport} contract as one vitest suite. `setup` runs before each
 * test and returns two fresh, connected transports; both are closed and
 * `teardown` is called after each test. A test that needs a capability the
 * adapter lacks (see {@link ComplianceOptions}) is skipped.
 *
 * @example
 * ```ts
 * transportCompliance('memory transport', async () => {
 *   const [a, b] = memoryPair();
 *   return { a, b };
 * });
 * ```
 */
export function transportCompliance(
  name: string,
  setup: () => Promise<TransportPair>,
  options: ComplianceOptions = {},
): void {
  const binary = options.binary ?? true;
  const closeCode = options.closeCode ?? true;

  describe(name, () => {
    let pair: TransportPair;
    let a: Transport;
    let b: Transport;

    beforeEach(async () => {
      pair = await setup();
      ({ a, b } = pair);
    });

    afterEach(async () => {
      a.close();
      b.close();
      await pair.teardown?.();
    });

    const directions = [
      ['a to b', () => [a, b] as const],
      ['b to a', () => [b, a] as const],
    ] as const;

    it('hands out both ends open', () => {
      expect(a.isOpen).toBe(true);
      expect(b.isOpen).toBe(true);
    });

    for (const [label, ends] of directions) {
      it(`delivers 200 frames from ${label} in the order they were sent`, async () => {
        const [from, to] = ends();
        const sent = Array.from({ length: 200 }, (_, i) => `frame ${i}`);
        const received = nextFrames(to, sent.length);
        for (const frame of sent) from.send(frame);
        expect(await received).toEqual(sent);
      });

      it(`delivers text from ${label} as a string`, async () => {
        const [from, to] = ends();
        const received = nextEvent(to, 'message');
        from.send('héllo ✓ 👋 {"type":"x"}');
        const frame = await received;
        expect(typeof frame).toBe('string');
        expect(frame).toBe('héllo ✓ 👋 {"type":"x"}');
      });

      it.skipIf(!binary)(`delivers binary from ${label} as a Uint8Array with the same bytes`, async () => {
        const [from, to] = ends();
        const sent = bytes(1000, 7);
        const received = nextEvent(to, 'message');
        from.send(sent);
        const frame = await received;
        expect(frame).toBeInstanceOf(Uint8Array);
        expect(Array.from(frame as Uint8Array)).toEqual(Array.from(sent));
      });
    }

    it.skipIf(!binary)('sends only the bytes of a Uint8Array view, not its whole buffer', async () => {
      const backing = bytes(64);
      const view = backing.subarray(10, 20);
      const received = nextEvent(b, 'message');
      a.send(view);
      const frame = await received;
      expect(frame).toBeInstanceOf(Uint8Array);
      expect(Array.from(frame as Uint8Array)).toEqual(Array.from(view));
    });

    it.skipIf(!binary)('keeps the order of interleaved text and binary frames', async () => {
      const sent: Frame[] = [];
      for (let i = 0; i < 50; i++) sent.push(i % 2 ? `text ${i}` : Uint8Array.of(i, i + 1));
      const received = nextFrames(b, sent.length);
      for (const frame of sent) a.send(frame);
      const frames = await received;
      expect(frames.map((f) => (typeof f === 'string' ? f : Array.from(f)))).toEqual(
        sent.map((f) => (typeof f === 'string' ? f : Array.from(f))),
      );
    });

    it('an empty text frame arrives as an empty string', async () => {
      const received = nextFrames(b, 2);
      a.send('');
      a.send('after');
      expect(await received).toEqual(['', 'after']);
    });

    it('keeps frames that arrive before anyone listens and delivers them in order to the first listener', async () => {
      const sent = ['one', 'two', 'three', 'four', 'five'];
      for (const frame of sent) a.send(frame);
      await delay(SETTLE);
      const received = nextFrames(b, sent.length + 1);
      a.send('six');
      expect(await received).toEqual([...sent, 'six']);
    });

    it('delivers kept frames to a listener that subscribed before the close arrived', async () => {
      const sent = ['one', 'two', 'three'];
      for (const frame of sent) a.send(frame);
      await delay(SETTLE);
      const closed = nextEvent(b, 'close');
      a.close();
      const received: Frame[] = [];
      b.on('message', (frame) => received.push(frame));
      await closed;
      expect(received).toEqual(sent);
    });

    it('delivers kept frames, then close, to a listener that subscribes just after the remote closed', async () => {
      const sent = ['last', 'words'];
      for (const frame of sent) a.send(frame);
      await delay(SETTLE);
      a.close(4002, 'hung up');
      await until(() => !b.isOpen);
      const log: unknown[] = [];
      b.on('message', (frame) => log.push(frame));
      b.on('close', (info) => log.push(info.initiator));
      await nextEvent(b, 'close').catch(() => undefined);
      expect(log).toEqual([...sent, 'remote']);
    });

    it('close() is idempotent: each side emits close exactly once', async () => {
      const aCloses: unknown[] = [];
      const bCloses: unknown[] = [];
      a.on('close', (info) => aCloses.push(info));
      b.on('close', (info) => bCloses.push(info));
      const bClosed = nextEvent(b, 'close');
      expect(() => {
        a.close();
        a.close();
        a.close(4000, 'again');
      }).not.toThrow();
      await bClosed;
      b.close();
      await delay(SETTLE);
      expect(aCloses).toHaveLength(1);
      expect(bCloses).toHaveLength(1);
      expect(a.isOpen).toBe(false);
      expect(b.isOpen).toBe(false);
    });

    for (const [label, ends] of directions) {
      const [closer, other] = label === 'a to b' ? ['a', 'b'] : ['b', 'a'];
      it(`closing ${closer} emits close once on each side: local on ${closer}, remote on ${other}`, async () => {
        const [from, to] = ends();
        const fromCloses: string[] = [];
        const toCloses: string[] = [];
        from.on('close', (info) => fromCloses.push(info.initiator));
        to.on('close', (info) => toCloses.push(info.initiator));
        const fromClosed = nextEvent(from, 'close');
        const toClosed = nextEvent(to, 'close');
        from.close();
        expect(from.isOpen).toBe(false);
        expect((await fromClosed).initiator).toBe('local');
        expect((await toClosed).initiator).toBe('remote');
        expect(to.isOpen).toBe(false);
        await delay(SETTLE);
        expect(fromCloses).toEqual(['local']);
        expect(toCloses).toEqual(['remote']);
      });

      it.skipIf(!closeCode)(`carries the close code and reason from ${label}`, async () => {
        const [from, to] = ends();
        const fromClosed = nextEvent(from, 'close');
        const toClosed = nextEvent(to, 'close');
        from.close(4001, 'game over');
        expect(await fromClosed).toMatchObject({ code: 4001, reason: 'game over', initiator: 'local' });
        expect(await toClosed).toMatchObject({ code: 4001, reason: 'game over', initiator: 'remote' });
      });

      it(`send() throws ERR_TRANSPORT_CLOSED on both sides after ${closer} closes`, async () => {
        const [from, to] = ends();
        const toClosed = nextEvent(to, 'close');
        from.close();
        await toClosed;
        for (const end of [from, to]) {
          let thrown: unknown;
          try {
            end.send('too late');
          } catch (error) {
            thrown = error;
          }
          expect(thrown).toBeInstanceOf(TransportError);
          expect((thrown as TransportError).code).toBe(ErrorCode.TransportClosed);
        }
      });
    }

    it('reports a bufferedAmount of 0 once closed', async () => {
      a.close();
      expect(a.bufferedAmount).toBe(0);
    });

    it('lets a listener unsubscribe itself and another during dispatch without affecting that dispatch', async () => {
      const calls: string[] = [];
      let offFirst = () => {};
      let offSecond = () => {};
      offFirst = b.on('message', (frame) => {
        calls.push(`first ${String(frame)}`);
        offFirst();
        offSecond();
      });
      offSecond = b.on('message', (frame) => calls.push(`second ${String(frame)}`));
      b.on('message', (frame) => calls.push(`third ${String(frame)}`));
      const both = nextFrames(b, 2);
      a.send('1');
      a.send('2');
      await both;
      expect(calls).toEqual(['first 1', 'second 1', 'third 1', 'third 2']);
    });

    it('lets a close listener unsubscribe another during dispatch without affecting that dispatch', async () => {
      const calls: string[] = [];
      let offSecond = () => {};
      b.on('close', () => {
        calls.push('first');
        offSecond();
      });
      offSecond = b.on('close', () => calls.push('second'));
      const closed = nextEvent(b, 'close');
      a.close();
      await closed;
      expect(calls).toEqual(['first', 'second']);
    });

    it('gives an unsubscribed listener nothing afterwards', async () => {
      const gone: unknown[] = [];
      const offMessage = b.on('message', (frame) => gone.push(frame));
      const offClose = b.on('close', (info) => gone.push(info));
      offMessage();
      offClose();
      offMessage();
      const received = nextFrames(b, 2);
      a.send('one');
      a.send('two');
      expect(await received).toEqual(['one', 'two']);
      const closed = nextEvent(b, 'close');
      a.close();
      await closed;
      expect(gone).toEqual([]);
    });
  });
}
