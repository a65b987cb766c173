import { describe, expect, it, vi } from 'vitest';
import { Stage, type LobbyDirectory, type Role } from '../machines/cloudlink/directory.js';
import type { ServerMessage } from '../machines/cloudlink/protocol.js';

/** Two processes' views of one directory (the memory one: the same one twice). */
export interface DirectoryPair {
  a: LobbyDirectory;
  b: LobbyDirectory;
  close(): Promise<void>;
}

/**
 * What the sessions of one process are told, whichever way the directory
 * works: for one that returns the mates from `join`/`leave`, the harness
 * sends what the session machine sends; a shared one sends through `attach`.
 */
function clients(directories: LobbyDirectory[]) {
  const told = new Map<string, string[]>();
  const record = (id: string, message: ServerMessage) => {
    const detail = message.detail as { payload?: string; tx?: string };
    told.set(id, [...(told.get(id) ?? []), `${message.type} ${detail.payload ?? detail.tx}`]);
    return true;
  };
  for (const directory of directories) directory.attach?.(record);
  return {
    told: (id: string) => told.get(id) ?? [],
    join(directory: LobbyDirectory, id: string, ugi: string, lobby: string, role: Role) {
      for (const mate of directory.join(id, ugi, lobby, role)) {
        record(id, { type: role === 'host' ? 'NEW_PEER' : 'NEW_HOST', detail: { payload: mate } });
        record(mate, { type: role === 'host' ? 'NEW_HOST' : 'NEW_PEER', detail: { payload: id } });
      }
    },
    leave(directory: LobbyDirectory, id: string) {
      for (const mate of directory.leave(id)) record(mate, { type: 'SHUTDOWN_ACK', detail: { tx: id } });
    },
  };
}

/** Gives a shared directory time to apply what is in flight (a check that nothing more arrives). */
const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

/**
 * The {@link LobbyDirectory} contract, run against the memory directory and
 * the Redis one: who meets whom (once), UGI and lobby isolation, leaving,
 * and handshake stages, with the two sides on two processes.
 */
export function directoryCompliance(name: string, open: () => Promise<DirectoryPair>): void {
  describe(`LobbyDirectory compliance: ${name}`, () => {
    const withPair = (test: (pair: DirectoryPair) => Promise<void>) => async () => {
      const pair = await open();
      try {
        await test(pair);
      } finally {
        await pair.close();
      }
    };

    it(
      'a host and a peer of one lobby are introduced to each other once',
      withPair(async ({ a, b }) => {
        const c = clients([a, b]);
        c.join(a, 'h', 'game', 'lobby', 'host');
        await vi.waitFor(() => expect(b.isMember('h')).toBe(true));
        c.join(b, 'p', 'game', 'lobby', 'peer');
        await vi.waitFor(() => expect(c.told('p')).toEqual(['NEW_HOST h']));
        await vi.waitFor(() => expect(c.told('h')).toEqual(['NEW_PEER p']));
        await settle();
        expect([c.told('h'), c.told('p')]).toEqual([['NEW_PEER p'], ['NEW_HOST h']]);
        for (const d of [a, b]) {
          expect(d.areMates('h', 'p')).toBe(true);
          expect(d.areMates('p', 'h')).toBe(true);
          expect(d.lobbies).toBe(1);
        }
      }),
    );

    it(
      'joins racing on both processes still introduce each pair once',
      withPair(async ({ a, b }) => {
        const c = clients([a, b]);
        c.join(a, 'h1', 'game', 'lobby', 'host');
        c.join(b, 'p1', 'game', 'lobby', 'peer');
        c.join(b, 'h2', 'game', 'lobby', 'host');
        c.join(a, 'p2', 'game', 'lobby', 'peer');
        await vi.waitFor(() => expect(c.told('p2')).toHaveLength(2));
        await vi.waitFor(() => expect(c.told('h2')).toHaveLength(2));
        await settle();
        expect(c.told('h1').sort()).toEqual(['NEW_PEER p1', 'NEW_PEER p2']);
        expect(c.told('h2').sort()).toEqual(['NEW_PEER p1', 'NEW_PEER p2']);
        expect(c.told('p1').sort()).toEqual(['NEW_HOST h1', 'NEW_HOST h2']);
        expect(c.told('p2').sort()).toEqual(['NEW_HOST h1', 'NEW_HOST h2']);
      }),
    );

    it(
      'games (UGI) and lobbies are isolated, and two hosts are not mates',
      withPair(async ({ a, b }) => {
        const c = clients([a, b]);
        c.join(a, 'h', 'game-1', 'lobby', 'host');
        c.join(a, 'h2', 'game-1', 'lobby', 'host');
        c.join(b, 'other-game', 'game-2', 'lobby', 'peer');
        c.join(b, 'other-lobby', 'game-1', 'lobby-2', 'peer');
        await vi.waitFor(() => expect(a.isMember('other-lobby') && b.isMember('h2')).toBe(true));
        await settle();
        expect(c.told('h')).toEqual([]);
        expect(c.told('other-game')).toEqual([]);
        expect(c.told('other-lobby')).toEqual([]);
        for (const d of [a, b]) {
          expect(d.areMates('h', 'other-game')).toBe(false);
          expect(d.areMates('h', 'other-lobby')).toBe(false);
          expect(d.areMates('h', 'h2')).toBe(false);
          expect(d.lobbies).toBe(3);
        }
      }),
    );

    it(
      'a member that leaves is gone everywhere and its mates are told',
      withPair(async ({ a, b }) => {
        const c = clients([a, b]);
        c.join(a, 'h', 'game', 'lobby', 'host');
        c.join(b, 'p', 'game', 'lobby', 'peer');
        await vi.waitFor(() => expect(c.told('h')).toEqual(['NEW_PEER p']));
        c.leave(a, 'h');
        await vi.waitFor(() => expect(c.told('p')).toEqual(['NEW_HOST h', 'SHUTDOWN_ACK h']));
        await vi.waitFor(() => expect(b.isMember('h')).toBe(false));
        expect(a.isMember('h')).toBe(false);
        expect(a.areMates('h', 'p')).toBe(false);
        c.leave(b, 'p');
        await vi.waitFor(() => expect([a.lobbies, b.lobbies]).toEqual([0, 0]));
      }),
    );

    it(
      'a handshake stage set on one side is seen by the other, and cleared when one leaves',
      withPair(async ({ a, b }) => {
        const c = clients([a, b]);
        c.join(a, 'h', 'game', 'lobby', 'host');
        c.join(b, 'p', 'game', 'lobby', 'peer');
        await vi.waitFor(() => expect(a.areMates('h', 'p') && b.areMates('h', 'p')).toBe(true));
        expect(b.stage('h', 'p')).toBe(Stage.None);
        a.setStage('h', 'p', Stage.Offered);
        expect(a.stage('h', 'p')).toBe(Stage.Offered);
        await vi.waitFor(() => expect(b.stage('h', 'p')).toBe(Stage.Offered));
        b.setStage('h', 'p', Stage.Accepted);
        await vi.waitFor(() => expect(a.stage('h', 'p')).toBe(Stage.Accepted));
        c.leave(b, 'p');
        await vi.waitFor(() => expect([a.pairs, b.pairs]).toEqual([0, 0]));
        expect(a.stage('h', 'p')).toBe(Stage.None);
      }),
    );
  });
}
