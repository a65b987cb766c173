/**
 * The limit per client address on unknown filedrop codes: a token bucket
 * shared by all that address's connections, on a SimulatedClock.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { SimulatedClock } from 'xstate';
import { guessLimiter } from '../machines/filedrop/guesses.js';
import { filedropSocketTestbed, type Testbed } from './filedrop-helpers.js';

let bed: Testbed | undefined;
afterEach(async () => {
  await bed?.close();
  bed = undefined;
});

const probe = (code: string) => ({ type: 'request', detail: { peer: code } });

describe('filedrop: unknown codes per address', () => {
  it('answers peer not exists up to the burst, then ERR_RATE_LIMITED and a close, shared across connections', async () => {
    const clock = new SimulatedClock();
    bed = await filedropSocketTestbed({ clock, unknownCodes: { perMinute: 6, burst: 2 } });
    const a = await bed.connect();
    for (const code of ['AAAAAAAA', 'BBBBBBBB']) {
      a.send(probe(code));
      expect(await a.next()).toEqual({ type: 'peer not exists', detail: { peer: code, event: 'request' } });
    }
    // Another connection from the same address shares the spent bucket.
    const b = await bed.connect();
    b.send(probe('CCCCCCCC'));
    expect(await b.next()).toEqual({
      type: 'error',
      detail: {
        code: 'ERR_RATE_LIMITED',
        message: 'request: too many unknown codes from your address; the connection is closed',
        event: 'request',
      },
    });
    expect(await b.closed).toMatchObject({ code: 1008 });
    // A known code still passes: only unknown ones spend tokens.
    const sender = await bed.connect();
    a.send(probe(sender.id));
    expect(await sender.next()).toEqual({ type: 'request', detail: { peer: a.id } });
    // 6 a minute: one more after 10 s.
    clock.increment(10_000);
    a.send(probe('DDDDDDDD'));
    expect(await a.next()).toEqual({ type: 'peer not exists', detail: { peer: 'DDDDDDDD', event: 'request' } });
    a.send(probe('EEEEEEEE'));
    expect(await a.next()).toMatchObject({ type: 'error', detail: { code: 'ERR_RATE_LIMITED' } });
    expect(await a.closed).toMatchObject({ code: 1008 });
  });

  it('can be turned off', async () => {
    bed = await filedropSocketTestbed({ unknownCodes: false });
    const a = await bed.connect();
    for (let i = 0; i < 40; i++) a.send(probe(`X${i}`.padEnd(8, 'X')));
    for (let i = 0; i < 40; i++) expect(await a.next()).toMatchObject({ type: 'peer not exists' });
  });

  it('keeps at most maxAddresses buckets, forgetting the longest idle', () => {
    const clock = new SimulatedClock();
    const allow = guessLimiter({ perMinute: 1, burst: 1, maxAddresses: 2 }, clock);
    expect(allow('a')).toBe(true);
    expect(allow('a')).toBe(false);
    expect(allow('b')).toBe(true);
    expect(allow('c')).toBe(true); // 'a' is forgotten: over the cap
    expect(allow('b')).toBe(false); // 'b' is still tracked
    expect(allow('a')).toBe(true); // a fresh bucket
  });
});
