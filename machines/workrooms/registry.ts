import type { DirectoryEntry, UserProfiles } from './protocol.js';

/** One call between two sessions. */
export interface CallRecord {
  readonly callid: string;
  /** The caller (the outbound side, which makes the WebRTC offer). */
  readonly from: string;
  /** The callee. */
  readonly to: string;
}

/**
 * The shared state of a workrooms server: who holds each `sessionid` (and
 * whether it is connected or within its grace period), the directory of
 * profiles, and the calls. The hub and its sessions read and write it only
 * through this interface, so a shared (multi-process) store can replace the
 * in-memory one. A session is held by one connection (the server's own id for
 * it): a `register` on another connection takes it over.
 */
export interface WorkroomsRegistry {
  /**
   * Gives `sessionid` to `connection`, online. Returns the connection that
   * held it before (connected, or away within its grace period), if another.
   * Calls and the profile of the session stay.
   */
  claim(sessionid: string, connection: string): string | undefined;
  /** The connection holding `sessionid`. */
  holder(sessionid: string): string | undefined;
  /** The session `connection` holds, if it registered one and was not taken over. */
  heldBy(connection: string): string | undefined;
  /** True when `sessionid` is held and its connection is open. */
  isOnline(sessionid: string): boolean;
  /** The connection holding `sessionid` closed: it is away (its calls wait for it) until it comes back or is released. */
  setAway(sessionid: string, connection: string): void;
  /**
   * Forgets `sessionid`, its profile and its calls if `connection` still
   * holds it (a session that was taken over leaves the new holder alone).
   * Whoever is on those calls must be told first: see `callsOf`.
   */
  release(sessionid: string, connection: string): boolean;
  setProfile(sessionid: string, profiles: UserProfiles): void;
  profile(sessionid: string): UserProfiles | undefined;
  /** Online sessions (other than `exclude`) with a profile one of whose string fields contains `query`, case-insensitively. */
  search(query: string, limit: number, exclude?: string): DirectoryEntry[];

  addCall(call: CallRecord): void;
  call(callid: string): CallRecord | undefined;
  /** The call between `a` and `b`, whichever called. */
  callBetween(a: string, b: string): CallRecord | undefined;
  callsOf(sessionid: string): CallRecord[];
  removeCall(callid: string): CallRecord | undefined;

  /** Sessions held (online or away), sessions online, and calls. */
  readonly size: { sessions: number; online: number; calls: number };
}

interface SessionEntry {
  connection: string;
  online: boolean;
  profile?: UserProfiles;
  /** Search text: the profile's string fields, lower-cased. */
  haystack?: string;
  calls: Set<string>;
}

/**
 * The in-memory {@link WorkroomsRegistry}. `search` scans the online
 * profiles: fine for a directory of thousands.
 *
 * @example
 * ```ts
 * const registry = memoryRegistry();
 * registry.claim(alice, 'c1');
 * registry.claim(bob, 'c2');
 * registry.addCall({ callid, from: alice, to: bob });
 * registry.callsOf(bob); // [{ callid, from: alice, to: bob }]
 * ```
 */
export function memoryRegistry(): WorkroomsRegistry {
  const sessions = new Map<string, SessionEntry>();
  const calls = new Map<string, CallRecord>();
  const byConnection = new Map<string, string>();
  let online = 0;

  return {
    claim(sessionid, connection) {
      const entry = sessions.get(sessionid);
      byConnection.set(connection, sessionid);
      if (!entry) {
        sessions.set(sessionid, { connection, online: true, calls: new Set() });
        online++;
        return undefined;
      }
      const previous = entry.connection;
      if (previous !== connection) byConnection.delete(previous);
      if (!entry.online) online++;
      entry.connection = connection;
      entry.online = true;
      return previous === connection ? undefined : previous;
    },
    holder: (sessionid) => sessions.get(sessionid)?.connection,
    heldBy: (connection) => byConnection.get(connection),
    isOnline: (sessionid) => sessions.get(sessionid)?.online === true,
    setAway(sessionid, connection) {
      const entry = sessions.get(sessionid);
      if (entry?.connection !== connection || !entry.online) return;
      entry.online = false;
      online--;
    },
    release(sessionid, connection) {
      const entry = sessions.get(sessionid);
      if (entry?.connection !== connection) return false;
      for (const callid of entry.calls) removeCall(callid);
      sessions.delete(sessionid);
      byConnection.delete(connection);
      if (entry.online) online--;
      return true;
    },
    setProfile(sessionid, profiles) {
      const entry = sessions.get(sessionid);
      if (!entry) return;
      entry.profile = profiles;
      entry.haystack = strings(profiles).join('\n').toLowerCase();
    },
    profile: (sessionid) => sessions.get(sessionid)?.profile,
    search(query, limit, exclude) {
      const needle = query.trim().toLowerCase();
      const results: DirectoryEntry[] = [];
      if (!needle) return results;
      for (const [sessionid, entry] of sessions) {
        if (results.length >= limit) break;
        if (sessionid === exclude || !entry.online || !entry.haystack?.includes(needle)) continue;
        results.push({ sessionid, userprofiles: entry.profile! });
      }
      return results;
    },
    addCall(call) {
      calls.set(call.callid, call);
      sessions.get(call.from)?.calls.add(call.callid);
      sessions.get(call.to)?.calls.add(call.callid);
    },
    call: (callid) => calls.get(callid),
    callBetween(a, b) {
      for (const callid of sessions.get(a)?.calls ?? []) {
        const call = calls.get(callid)!;
        if (call.from === b || call.to === b) return call;
      }
      return undefined;
    },
    callsOf: (sessionid) => [...(sessions.get(sessionid)?.calls ?? [])].map((callid) => calls.get(callid)!),
    removeCall,
    get size() {
      return { sessions: sessions.size, online, calls: calls.size };
    },
  };

  function removeCall(callid: string): CallRecord | undefined {
    const call = calls.get(callid);
    if (!call) return undefined;
    calls.delete(callid);
    sessions.get(call.from)?.calls.delete(callid);
    sessions.get(call.to)?.calls.delete(callid);
    return call;
  }
}

/** The string values of a profile, two levels deep (`github.login`, `github.name`, …). */
function strings(profiles: UserProfiles): string[] {
  const out: string[] = [];
  for (const profile of Object.values(profiles)) {
    for (const value of Object.values(profile)) if (typeof value === 'string') out.push(value);
  }
  return out;
}
