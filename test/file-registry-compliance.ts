import { describe, expect, it, vi } from 'vitest';
import type { FileRegistry } from '../machines/registry/registry.js';

/** Two processes' views of one registry peer list (the memory one: the same one twice). */
export interface FileRegistryPair {
  a: FileRegistry;
  b: FileRegistry;
  close(): Promise<void>;
}

const LIST = [{ path: 'a.txt', size: 5 }];
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

/**
 * The {@link FileRegistry} contract, run against the memory registry and the
 * Redis one, with the two sides on two processes: a peer registered, updated
 * or removed on one is seen so on the other, and an id is registered once.
 */
export function fileRegistryCompliance(name: string, open: () => Promise<FileRegistryPair>): void {
  describe(`FileRegistry compliance: ${name}`, () => {
    const withPair = (test: (pair: FileRegistryPair) => Promise<void>) => async () => {
      const pair = await open();
      try {
        await test(pair);
      } finally {
        await pair.close();
      }
    };

    it(
      'a peer registered on one process is listed on the other, with its files, once',
      withPair(async ({ a, b }) => {
        expect(a.add('peer-1', LIST)).toBe(true);
        expect(a.add('peer-1', [])).toBe(false);
        b.add('peer-2', []);
        await vi.waitFor(() => expect(b.has('peer-1') && a.has('peer-2')).toBe(true));
        expect(b.files('peer-1')).toEqual(LIST);
        expect(b.add('peer-1', [])).toBe(false);
        await settle();
        for (const r of [a, b]) {
          expect(r.size).toBe(2);
          expect(new Map(r.entries())).toEqual(
            new Map<string, unknown>([
              ['peer-1', LIST],
              ['peer-2', []],
            ]),
          );
        }
        expect(a.files('nobody')).toBeUndefined();
      }),
    );

    it(
      "a peer's new list is seen on the other process; an unknown peer cannot be updated",
      withPair(async ({ a, b }) => {
        a.add('peer-1', LIST);
        await vi.waitFor(() => expect(b.has('peer-1')).toBe(true));
        expect(a.update('peer-1', [{ path: 'b.txt', size: 1 }])).toBe(true);
        await vi.waitFor(() => expect(b.files('peer-1')).toEqual([{ path: 'b.txt', size: 1 }]));
        expect(a.update('nobody', [])).toBe(false);
        expect(b.has('nobody')).toBe(false);
      }),
    );

    it(
      'a peer removed on one process is gone on the other',
      withPair(async ({ a, b }) => {
        a.add('peer-1', LIST);
        await vi.waitFor(() => expect(b.has('peer-1')).toBe(true));
        expect(a.remove('peer-1')).toBe(true);
        expect(a.remove('peer-1')).toBe(false);
        await vi.waitFor(() => expect(b.has('peer-1')).toBe(false));
        expect(b.size).toBe(0);
        expect(b.files('peer-1')).toBeUndefined();
      }),
    );
  });
}
