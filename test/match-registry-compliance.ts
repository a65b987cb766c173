import { describe, expect, it, vi } from 'vitest';
import type { Match, MatchRegistry, PendingRequest } from '../machines/swarm/registry.js';

/** Two processes' views of one swarm match registry (the memory one: the same one twice). */
export interface MatchRegistryPair {
  a: MatchRegistry;
  b: MatchRegistry;
  close(): Promise<void>;
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 100));
const req = (session: string, client: string, context = 'ctx'): PendingRequest => ({ session, client, context });

/** What each test gets besides the pair. */
interface Filing {
  /** Files a request on a registry, keeping the match if `request` returns one. */
  file(r: MatchRegistry, p: PendingRequest): void;
  /** Every match made so far, returned by `request` or told through `attach`. */
  made: Match[];
  /**
   * Files alice's request (client `aliceClient`) on A, then bob's (client `phone`) on B, and
   * waits for their match, the first one made: alice waited, so she is its alice.
   */
  meet(aliceClient?: string): Promise<Match>;
}

/**
 * The {@link MatchRegistry} contract, run against the memory registry and the
 * Redis one, with requests filed on two processes: each is paired with the
 * oldest pending request of another client, never two of one client, each
 * once; the match then runs offer → answer across the two.
 */
export function matchRegistryCompliance(name: string, open: () => Promise<MatchRegistryPair>): void {
  describe(`MatchRegistry compliance: ${name}`, () => {
    const withPair = (test: (pair: MatchRegistryPair, filing: Filing) => Promise<void>) => async () => {
      const pair = await open();
      // A match comes back from `request`, or (a shared registry) later through `attach`.
      const made: Match[] = [];
      for (const r of new Set([pair.a, pair.b])) r.attach?.((match) => made.push(match));
      const file = (r: MatchRegistry, p: PendingRequest) => {
        const match = r.request(p);
        if (match) made.push(match);
      };
      const meet = async (aliceClient = 'laptop') => {
        file(pair.a, req('alice', aliceClient));
        await settle();
        file(pair.b, req('bob', 'phone'));
        await vi.waitFor(() => expect(made).toHaveLength(1));
        return made[0]!;
      };
      try {
        await test(pair, { file, made, meet });
      } finally {
        await pair.close();
      }
    };

    it(
      'requests on two processes are paired: the one that waited is alice',
      withPair(async ({ a, b }, { file, made }) => {
        file(a, req('s1', 'laptop'));
        await settle();
        expect(made).toEqual([]);
        expect(a.has('s1', 'ctx')).toBe(true);
        expect(a.count('s1')).toBe(1);
        file(b, req('s2', 'phone'));
        await vi.waitFor(() => expect(made).toHaveLength(1));
        expect(made[0]).toMatchObject({
          alice: { session: 's1', context: 'ctx' },
          bob: { session: 's2', context: 'ctx' },
        });
        expect(b.has('s2', 'ctx')).toBe(true);
        await settle();
        expect(made).toHaveLength(1);
      }),
    );

    it(
      'two requests of one client are never paired, even on two processes; another client takes the oldest',
      withPair(async ({ a, b }, { file, made }) => {
        file(a, req('s1', 'laptop', 'one'));
        await settle();
        file(b, req('s2', 'laptop', 'two'));
        await settle();
        file(a, req('s1', 'laptop', 'three'));
        await settle();
        expect(made).toEqual([]);
        file(b, req('s3', 'phone'));
        await vi.waitFor(() => expect(made).toHaveLength(1));
        expect(made[0]).toMatchObject({ alice: { session: 's1', context: 'one' }, bob: { session: 's3' } });
        file(a, req('s4', 'tablet'));
        await vi.waitFor(() => expect(made).toHaveLength(2));
        expect(made[1]).toMatchObject({ alice: { session: 's2', context: 'two' }, bob: { session: 's4' } });
      }),
    );

    it(
      'many requests racing on both processes: every match pairs two clients, and nobody twice',
      withPair(async ({ a, b }, { file, made }) => {
        for (let i = 0; i < 20; i++) file(i % 2 ? a : b, req(`s${i}`, `client-${i % 5}`));
        await vi.waitFor(() => expect(made.length).toBeGreaterThanOrEqual(8));
        await settle();
        const ends = made.flatMap((m) => [m.alice.session, m.bob.session]);
        expect(new Set(ends).size).toBe(ends.length);
        for (const m of made) expect(Number(m.alice.session.slice(1)) % 5).not.toBe(Number(m.bob.session.slice(1)) % 5);
        // 20 requests of 5 clients, 4 each: all can be paired.
        expect(made).toHaveLength(10);
      }),
    );

    it(
      "alice's offer on her process, then bob's answer on his, end the match; out of turn they are refused",
      withPair(async ({ a, b }, { meet }) => {
        await meet();
        await settle();
        expect(b.answer('bob', 'ctx')).toBeUndefined();
        expect(b.offer('bob', 'ctx')).toBeUndefined();
        expect(a.offer('alice', 'ctx')).toEqual({ session: 'bob', context: 'ctx' });
        expect(a.offer('alice', 'ctx')).toBeUndefined();
        await vi.waitFor(() => expect(b.answer('bob', 'ctx')).toEqual({ session: 'alice', context: 'ctx' }));
        await vi.waitFor(() => expect(a.has('alice', 'ctx')).toBe(false));
        expect(b.has('bob', 'ctx')).toBe(false);
        expect([a.matches, b.matches]).toEqual([0, 0]);
      }),
    );

    it(
      'a session that leaves: its pending request is never paired, and the other end of its match is returned',
      withPair(async ({ a, b }, { file, meet }) => {
        file(a, req('gone', 'laptop', 'pending'));
        await settle();
        expect(a.remove('gone')).toEqual([]);
        await settle();
        expect(await meet('tablet')).toMatchObject({
          alice: { session: 'alice' },
          bob: { session: 'bob' },
        });
        await settle();
        expect(b.remove('bob')).toEqual([{ session: 'alice', context: 'ctx' }]);
        await vi.waitFor(() => expect(a.has('alice', 'ctx')).toBe(false));
        expect(a.offer('alice', 'ctx')).toBeUndefined();
      }),
    );

    it(
      'a match dropped by the end whose relay failed is over on both processes, whatever its stage',
      withPair(async ({ a, b }, { meet }) => {
        await meet();
        await settle();
        expect(a.offer('alice', 'ctx')).toEqual({ session: 'bob', context: 'ctx' });
        expect(a.drop('alice', 'ctx')).toEqual({ session: 'bob', context: 'ctx' });
        expect(a.drop('alice', 'ctx')).toBeUndefined();
        expect(a.has('alice', 'ctx')).toBe(false);
        await vi.waitFor(() => expect(b.has('bob', 'ctx')).toBe(false));
        expect(b.answer('bob', 'ctx')).toBeUndefined();
        expect([a.matches, b.matches]).toEqual([0, 0]);
      }),
    );

    it(
      'an expired match is over on both processes',
      withPair(async ({ a, b }, { meet }) => {
        const match = await meet();
        expect(b.expire(match.id)).toMatchObject({ alice: { session: 'alice' }, bob: { session: 'bob' } });
        expect(b.expire(match.id)).toBeUndefined();
        await vi.waitFor(() => expect(a.has('alice', 'ctx')).toBe(false));
        expect(a.offer('alice', 'ctx')).toBeUndefined();
      }),
    );
  });
}
