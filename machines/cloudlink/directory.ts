import type { ServerMessage } from './protocol.js';

/**
 * Who is in which lobby, and how far each host/peer handshake has got. The
 * hub and its sessions read and write lobbies only through this interface, so
 * a shared (multi-process) store can replace the in-memory one.
 */
export interface LobbyDirectory {
  /** Adds `id` to lobby (`ugi`, `lobby`) as `role`; returns the members of the other role to introduce. */
  join(id: string, ugi: string, lobby: string, role: Role): string[];
  /** Removes `id` and its handshakes; returns the members of the other role to tell. */
  leave(id: string): string[];
  /** True when `id` is in some lobby. */
  isMember(id: string): boolean;
  /** True when `a` and `b` are in the same lobby of the same game with opposite roles. */
  areMates(a: string, b: string): boolean;
  /** Where the handshake between `host` and `peer` stands. */
  stage(host: string, peer: string): Stage;
  setStage(host: string, peer: string, stage: Stage): void;
  /** Number of lobbies with at least one member. */
  readonly lobbies: number;
  /** Number of host–peer handshakes being tracked. */
  readonly pairs: number;
  /**
   * Hands a shared directory the server's router, for the introductions and
   * departures it delivers itself: a shared directory learns of a mate on
   * another process only later, so its `join` and `leave` return `[]` and it
   * sends NEW_HOST / NEW_PEER / SHUTDOWN_ACK once the change is in order.
   * The in-memory directory has none.
   */
  attach?(send: (id: string, message: ServerMessage) => boolean): void;
  /**
   * A relay from `id` to its mate `mate` could not be delivered. A shared
   * directory whose `mate` is held by another process (out of reach: Redis
   * is down) returns true: the server then tells `id` that `mate` left
   * (SHUTDOWN_ACK), and the directory introduces the two again, on both
   * sides, once Redis returns (SHUTDOWN_ACK to `mate`, then NEW_HOST /
   * NEW_PEER to both; their handshake starts over). False when it does
   * nothing: a mate on this process whose connection is closing is told
   * by its leave. The in-memory directory has none.
   */
  sever?(id: string, mate: string): boolean;
}

export type Role = 'host' | 'peer';

/**
 * Handshake progress between one host and one peer, in the seed's order:
 * MAKE_OFFER → ACCEPT_OFFER → MAKE_ANSWER (both ways) → ACK_CHECK → ACK_READY.
 */
export const Stage = { None: 0, Offered: 1, Accepted: 2, Checked: 3, Ready: 4 } as const;
export type Stage = (typeof Stage)[keyof typeof Stage];

// The Sets are made on first use: most lobbies hold one host and no peer, and
// an empty Set costs ~150 B, per idle connection.
interface Member {
  readonly key: string;
  readonly role: Role;
  pairs: Set<string> | undefined;
}

interface Lobby {
  hosts: Set<string> | undefined;
  peers: Set<string> | undefined;
}

/**
 * The in-memory {@link LobbyDirectory}.
 *
 * @example
 * ```ts
 * const directory = memoryDirectory();
 * directory.join(hostId, 'my-game', 'lobby-1', 'host'); // []
 * directory.join(peerId, 'my-game', 'lobby-1', 'peer'); // [hostId]
 * ```
 */
export function memoryDirectory(): LobbyDirectory {
  const lobbies = new Map<string, Lobby>();
  const members = new Map<string, Member>();
  const stages = new Map<string, Stage>();
  const pairKey = (host: string, peer: string) => `${host}\n${peer}`;

  return {
    join(id, ugi, lobby, role) {
      const key = JSON.stringify([ugi, lobby]);
      let entry = lobbies.get(key);
      if (!entry) lobbies.set(key, (entry = { hosts: undefined, peers: undefined }));
      if (role === 'host') (entry.hosts ??= new Set()).add(id);
      else (entry.peers ??= new Set()).add(id);
      members.set(id, { key, role, pairs: undefined });
      return [...((role === 'host' ? entry.peers : entry.hosts) ?? [])];
    },
    leave(id) {
      const member = members.get(id);
      if (!member) return [];
      members.delete(id);
      for (const pair of member.pairs ?? []) {
        stages.delete(pair);
        const [host, peer] = pair.split('\n') as [string, string];
        members.get(host === id ? peer : host)?.pairs?.delete(pair);
      }
      const entry = lobbies.get(member.key)!;
      (member.role === 'host' ? entry.hosts : entry.peers)?.delete(id);
      if (!entry.hosts?.size && !entry.peers?.size) lobbies.delete(member.key);
      return [...((member.role === 'host' ? entry.peers : entry.hosts) ?? [])];
    },
    isMember: (id) => members.has(id),
    areMates(a, b) {
      const ma = members.get(a);
      const mb = members.get(b);
      return ma !== undefined && mb !== undefined && ma.key === mb.key && ma.role !== mb.role;
    },
    stage(host, peer) {
      return stages.get(pairKey(host, peer)) ?? Stage.None;
    },
    setStage(host, peer, stage) {
      const key = pairKey(host, peer);
      if (!stages.has(key)) {
        for (const id of [host, peer]) {
          const member = members.get(id);
          if (member) (member.pairs ??= new Set()).add(key);
        }
      }
      stages.set(key, stage);
    },
    get lobbies() {
      return lobbies.size;
    },
    get pairs() {
      return stages.size;
    },
  };
}
