import { describe, expect, it, vi } from 'vitest';
import type { WorkroomsRegistry } from '../machines/workrooms/registry.js';

/** Two processes' views of one workrooms registry (the memory one: the same one twice). */
export interface WorkroomsRegistryPair {
  a: WorkroomsRegistry;
  b: WorkroomsRegistry;
  /** Connections a takeover decided elsewhere evicted (a shared registry's `attach`). */
  evicted: string[];
  close(): Promise<void>;
}

const ALICE = 'alice-session-id-00001';
const BOB = 'bob-session-id-0000001';
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

/**
 * The {@link WorkroomsRegistry} contract, run against the memory registry and
 * the Redis one, with the two sides on two processes (connection ids `a…`
 * on one, `b…` on the other): sessions, profiles and calls made on one are
 * seen on the other, and a `sessionid` is held by one connection, the last
 * to claim it, whose predecessor is evicted once.
 */
export function workroomsRegistryCompliance(name: string, open: () => Promise<WorkroomsRegistryPair>): void {
  describe(`WorkroomsRegistry compliance: ${name}`, () => {
    const withPair =
      (
        test: (
          pair: WorkroomsRegistryPair,
          claim: (r: WorkroomsRegistry, s: string, c: string) => void,
        ) => Promise<void>,
      ) =>
      async () => {
        const pair = await open();
        // What the session does on register: claim, and evict the connection it replaced if it is here.
        const claim = (registry: WorkroomsRegistry, s: string, c: string) => {
          const previous = registry.claim(s, c);
          if (previous !== undefined && !previous.includes('/')) pair.evicted.push(previous);
        };
        try {
          await test(pair, claim);
        } finally {
          await pair.close();
        }
      };

    it(
      'a session registered on one process is online, searchable and callable from the other',
      withPair(async ({ a, b }, claim) => {
        claim(a, ALICE, 'a1');
        a.setProfile(ALICE, { github: { login: 'alice', name: 'Alice Liddell' } });
        claim(b, BOB, 'b1');
        await vi.waitFor(() => expect(b.search('lidd', 10)).toHaveLength(1));
        expect(b.search('lidd', 10)).toEqual([
          { sessionid: ALICE, userprofiles: { github: { login: 'alice', name: 'Alice Liddell' } } },
        ]);
        expect(b.search('lidd', 10, ALICE)).toEqual([]);
        expect(b.isOnline(ALICE)).toBe(true);
        expect(b.profile(ALICE)).toEqual({ github: { login: 'alice', name: 'Alice Liddell' } });
        expect(a.heldBy('a1')).toBe(ALICE);
        expect(a.holder(ALICE)).toBe('a1');
        await vi.waitFor(() => expect(a.isOnline(BOB)).toBe(true));
        await vi.waitFor(() => expect(b.size.sessions).toBe(2));
      }),
    );

    it(
      'a call placed on one process is seen on the other, and its hangup too',
      withPair(async ({ a, b }, claim) => {
        claim(a, ALICE, 'a1');
        claim(b, BOB, 'b1');
        await vi.waitFor(() => expect(a.isOnline(BOB) && b.isOnline(ALICE)).toBe(true));
        a.addCall({ callid: 'call-1', from: ALICE, to: BOB });
        await vi.waitFor(() => expect(b.call('call-1')).toEqual({ callid: 'call-1', from: ALICE, to: BOB }));
        expect(b.callBetween(BOB, ALICE)?.callid).toBe('call-1');
        expect(b.callsOf(BOB).map((c) => c.callid)).toEqual(['call-1']);
        expect(b.removeCall('call-1')?.callid).toBe('call-1');
        expect(b.removeCall('call-1')).toBeUndefined();
        await vi.waitFor(() => expect(a.call('call-1')).toBeUndefined());
        expect(a.callsOf(ALICE)).toEqual([]);
        expect(a.size.calls).toBe(0);
      }),
    );

    it(
      'away on one process is seen on the other; a release is gone everywhere with its calls',
      withPair(async ({ a, b }, claim) => {
        claim(a, ALICE, 'a1');
        a.setProfile(ALICE, { github: { login: 'alice' } });
        claim(b, BOB, 'b1');
        await vi.waitFor(() => expect(a.isOnline(BOB) && b.isOnline(ALICE)).toBe(true));
        a.addCall({ callid: 'call-1', from: ALICE, to: BOB });
        a.setAway(ALICE, 'a1');
        await vi.waitFor(() => expect(b.isOnline(ALICE)).toBe(false));
        expect(b.search('alice', 10)).toEqual([]);
        expect(b.size).toMatchObject({ sessions: 2, online: 1 });
        expect(a.release(ALICE, 'b1')).toBe(false);
        expect(a.release(ALICE, 'a1')).toBe(true);
        await vi.waitFor(() => expect(b.holder(ALICE)).toBeUndefined());
        expect(b.callsOf(BOB)).toEqual([]);
        expect(b.size).toEqual({ sessions: 1, online: 1, calls: 0 });
      }),
    );

    it(
      'a register on the other process takes the session over with its calls, and the old connection is evicted',
      withPair(async (pair, claim) => {
        const { a, b } = pair;
        claim(a, ALICE, 'a1');
        claim(a, BOB, 'a2');
        a.addCall({ callid: 'call-1', from: ALICE, to: BOB });
        a.setAway(ALICE, 'a1');
        await vi.waitFor(() => expect(b.call('call-1')).toBeDefined());
        await vi.waitFor(() => expect(b.isOnline(ALICE)).toBe(false));
        claim(b, ALICE, 'b1');
        expect(b.holder(ALICE)).toBe('b1');
        expect(b.heldBy('b1')).toBe(ALICE);
        expect(b.callsOf(ALICE).map((c) => c.callid)).toEqual(['call-1']);
        await vi.waitFor(() => expect(pair.evicted).toEqual(['a1']));
        await vi.waitFor(() => expect(a.holder(ALICE)).not.toBe('a1'));
        expect(a.isOnline(ALICE)).toBe(true);
        // The old connection no longer holds it: its release changes nothing.
        expect(a.release(ALICE, 'a1')).toBe(false);
        await settle();
        expect(b.holder(ALICE)).toBe('b1');
        expect(a.callsOf(BOB).map((c) => c.callid)).toEqual(['call-1']);
      }),
    );

    it(
      'two registers of one sessionid racing on both processes: one holder everywhere, the other evicted once',
      withPair(async (pair, claim) => {
        const { a, b } = pair;
        claim(a, ALICE, 'a1');
        claim(b, ALICE, 'b1');
        await vi.waitFor(() => expect(pair.evicted).toHaveLength(1));
        await settle();
        expect(pair.evicted).toHaveLength(1);
        const winner = pair.evicted[0] === 'a1' ? 'b1' : 'a1';
        const [home, away] = winner === 'a1' ? [a, b] : [b, a];
        expect(home.holder(ALICE)).toBe(winner);
        expect(home.heldBy(winner)).toBe(ALICE);
        await vi.waitFor(() => expect(away.holder(ALICE)).not.toBe(pair.evicted[0]));
        expect(away.isOnline(ALICE)).toBe(true);
        expect(away.size.sessions).toBe(1);
      }),
    );
  });
}
