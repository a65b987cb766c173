import { describe, expect, it, vi } from 'vitest';
import type { PeerRegistry } from '../machines/filedrop/registry.js';
import type { ServerMessage } from '../machines/filedrop/protocol.js';

/** Two processes' views of one filedrop registry (the memory one: the same one twice). */
export interface PeerRegistryPair {
  a: PeerRegistry;
  b: PeerRegistry;
  close(): Promise<void>;
}

/** What a shared registry may deliver on its own: to clients of its process whose partner left elsewhere. */
export type Deliver = (id: string, message: ServerMessage) => boolean;

/** Gives a shared registry time to apply what is in flight (a check that nothing more arrives). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

/**
 * The {@link PeerRegistry} contract, run against the memory registry and the
 * Redis one, with the two sides on two processes: codes are held once and
 * seen everywhere, links are seen by the sender's side, and when a peer
 * leaves every partner is told exactly once (by the caller, for those
 * `remove` returns; by the registry, for the others).
 */
export function peerRegistryCompliance(name: string, open: (deliver: Deliver) => Promise<PeerRegistryPair>): void {
  describe(`PeerRegistry compliance: ${name}`, () => {
    const withPair = (test: (pair: PeerRegistryPair) => Promise<void>) => async () => {
      const pair = await open(() => true);
      try {
        await test(pair);
      } finally {
        await pair.close();
      }
    };

    it(
      'a code is held once, and seen by every process',
      withPair(async ({ a, b }) => {
        expect(a.add('K7PQ2MZA')).toBe(true);
        expect(a.add('K7PQ2MZA')).toBe(false);
        await vi.waitFor(() => expect(b.has('K7PQ2MZA')).toBe(true));
        expect(b.add('K7PQ2MZA')).toBe(false);
        expect(b.has('NOBODY00')).toBe(false);
        expect(a.has('NOBODY00')).toBe(false);
        await vi.waitFor(() => expect(b.peers).toBe(1));
      }),
    );

    it(
      "a receiver's request on one process is seen by the sender's process, and only that way round",
      withPair(async ({ a, b }) => {
        a.add('SENDER01');
        b.add('RECEIVE1');
        await vi.waitFor(() => expect(b.has('SENDER01') && a.has('RECEIVE1')).toBe(true));
        expect(a.isLinked('RECEIVE1', 'SENDER01')).toBe(false);
        b.link('RECEIVE1', 'SENDER01');
        expect(b.isLinked('RECEIVE1', 'SENDER01')).toBe(true);
        await vi.waitFor(() => expect(a.isLinked('RECEIVE1', 'SENDER01')).toBe(true));
        expect(a.isLinked('SENDER01', 'RECEIVE1')).toBe(false);
        expect(b.pairs).toBe(1);
      }),
    );

    it(
      'a link to a code nobody holds is not made',
      withPair(async ({ a }) => {
        a.add('RECEIVE1');
        a.link('RECEIVE1', 'NOBODY00');
        expect(a.isLinked('RECEIVE1', 'NOBODY00')).toBe(false);
        expect(a.pairs).toBe(0);
      }),
    );

    it('a peer that leaves is gone everywhere, and each partner on either process is told once', async () => {
      const told = new Map<string, string[]>();
      const record: Deliver = (id, message) => {
        told.set(id, [...(told.get(id) ?? []), `${message.type} ${(message.detail as { peer: string }).peer}`]);
        return true;
      };
      const { a, b, close } = await open(record);
      try {
        a.add('SENDER01');
        a.add('NEAR0001');
        b.add('FAR00001');
        await vi.waitFor(() => expect(b.has('SENDER01') && a.has('FAR00001') && b.has('NEAR0001')).toBe(true));
        a.link('NEAR0001', 'SENDER01');
        b.link('FAR00001', 'SENDER01');
        await vi.waitFor(() => expect(a.isLinked('FAR00001', 'SENDER01')).toBe(true));
        // What the session does when it leaves: remove, then tell the partners returned.
        for (const peer of a.remove('SENDER01'))
          record(peer, { type: 'peer not exists', detail: { peer: 'SENDER01' } });
        await vi.waitFor(() => expect(b.has('SENDER01')).toBe(false));
        await vi.waitFor(() => expect(told.get('FAR00001')).toEqual(['peer not exists SENDER01']));
        await settle();
        expect(told.get('NEAR0001')).toEqual(['peer not exists SENDER01']);
        expect(told.get('FAR00001')).toEqual(['peer not exists SENDER01']);
        expect(a.has('SENDER01')).toBe(false);
        expect(b.isLinked('FAR00001', 'SENDER01')).toBe(false);
        expect([a.pairs, b.pairs]).toEqual([0, 0]);
        // The code is free again.
        expect(b.add('SENDER01')).toBe(true);
      } finally {
        await close();
      }
    });
  });
}
