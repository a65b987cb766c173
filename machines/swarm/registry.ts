/** One end of a request: the session it came from and its `context_id` there. */
export interface RequestEnd {
  /** The server's id of the session (not the client's `client_id`). */
  session: string;
  /** The client's name for the request. */
  context: string;
}

/** A pending request: who asked, and as which client. */
export interface PendingRequest extends RequestEnd {
  client: string;
}

/**
 * Two requests the registry paired. `alice` waited longest and makes the
 * offer; `bob` answers it.
 */
export interface Match {
  /** Names this match (unique in the registry), for {@link MatchRegistry.expire}. */
  id: string;
  alice: RequestEnd;
  bob: RequestEnd;
}

/**
 * The shared state of a swarm server: the requests waiting for a partner
 * and the matches whose offer and answer are still on their way. The hub
 * and its sessions use it only through this interface, so a shared
 * (multi-process) store can replace the in-memory one.
 *
 * Its one rule: two requests of the same `client_id` are never paired,
 * even from different connections (the seed's "same device").
 */
export interface MatchRegistry {
  /**
   * Files a request: pairs it with the oldest pending request of another
   * client and returns the match, or leaves it pending and returns
   * `undefined`.
   */
  request(request: PendingRequest): Match | undefined;
  /** True when `session` has a request named `context` pending or in a match. */
  has(session: string, context: string): boolean;
  /** Requests of `session` pending or in a match. */
  count(session: string): number;
  /**
   * alice sent her offer for `context`: returns bob's end, to forward it to,
   * and waits for his answer. `undefined` if `session` is not alice of such a
   * match, or has sent its offer already.
   */
  offer(session: string, context: string): RequestEnd | undefined;
  /**
   * bob answered for `context`: returns alice's end, to forward it to, and
   * forgets the match. `undefined` unless `session` is bob of such a match
   * and alice's offer went to him.
   */
  answer(session: string, context: string): RequestEnd | undefined;
  /**
   * Forgets match `id` if its answer has not been forwarded yet (it took too
   * long) and returns it, to tell both ends; `undefined` if it is over.
   */
  expire(id: string): Match | undefined;
  /**
   * A relay from `session` (an end of a match, under its `context`) could not
   * be delivered to the other end: forgets that match at once, whatever its
   * stage, and returns the other end; `undefined` if `session` has no match
   * under `context` (already over).
   */
  drop(session: string, context: string): RequestEnd | undefined;
  /**
   * Forgets everything of `session` (it left): its pending requests and its
   * matches in progress. Returns the other ends of those matches, to tell them.
   */
  remove(session: string): RequestEnd[];
  /** Requests waiting for a partner. */
  readonly pending: number;
  /** Matches whose answer has not been forwarded yet. */
  readonly matches: number;
  /**
   * Called once by the server: a shared (multi-process) registry, whose
   * `request` returns before the pairing is decided, hands each match it
   * makes for a request of this process to `made` (the server tells both
   * ends and starts the match's timer, as the session does for a match
   * `request` returns).
   */
  attach?(made: (match: Match) => void): void;
}

interface MatchEntry extends Match {
  stage: 'offering' | 'answering';
}

const key = (session: string, context: string) => `${session}\u0000${context}`;

/**
 * The in-memory {@link MatchRegistry}: pending requests in arrival order,
 * matches by both of their ends.
 *
 * @example
 * ```ts
 * const registry = memoryRegistry();
 * registry.request({ session: 's1', client: 'laptop', context: 'a' }); // undefined: waits
 * registry.request({ session: 's2', client: 'laptop', context: 'b' }); // undefined: same client
 * registry.request({ session: 's3', client: 'phone', context: 'x' });
 * // { id: '1', alice: { session: 's1', context: 'a' }, bob: { session: 's3', context: 'x' } }
 * ```
 */
export function memoryRegistry(): MatchRegistry {
  /** Pending requests by key; a Map keeps arrival order. */
  const pending = new Map<string, PendingRequest>();
  /** Matches in progress, under both ends' keys. */
  const matches = new Map<string, MatchEntry>();
  /** The same, by id. */
  const byId = new Map<string, MatchEntry>();
  let serial = 0;
  /** Keys of each session's requests, pending or matched. */
  const bySession = new Map<string, Set<string>>();
  let matchCount = 0;

  const own = (session: string, k: string) => {
    let keys = bySession.get(session);
    if (!keys) bySession.set(session, (keys = new Set()));
    keys.add(k);
  };
  const disown = (end: RequestEnd) => {
    const keys = bySession.get(end.session);
    keys?.delete(key(end.session, end.context));
    if (keys?.size === 0) bySession.delete(end.session);
  };
  const forget = (match: MatchEntry) => {
    byId.delete(match.id);
    matches.delete(key(match.alice.session, match.alice.context));
    matches.delete(key(match.bob.session, match.bob.context));
    disown(match.alice);
    disown(match.bob);
    matchCount--;
  };

  return {
    request(request) {
      const k = key(request.session, request.context);
      if (pending.has(k) || matches.has(k)) return undefined;
      for (const [otherKey, other] of pending) {
        if (other.client === request.client) continue;
        pending.delete(otherKey);
        const match: MatchEntry = {
          id: `${++serial}`,
          alice: { session: other.session, context: other.context },
          bob: { session: request.session, context: request.context },
          stage: 'offering',
        };
        matches.set(otherKey, match);
        matches.set(k, match);
        byId.set(match.id, match);
        own(request.session, k);
        matchCount++;
        return { id: match.id, alice: match.alice, bob: match.bob };
      }
      pending.set(k, { ...request });
      own(request.session, k);
      return undefined;
    },
    has: (session, context) => bySession.get(session)?.has(key(session, context)) === true,
    count: (session) => bySession.get(session)?.size ?? 0,
    offer(session, context) {
      const match = matches.get(key(session, context));
      if (!match || match.stage !== 'offering' || match.alice.session !== session || match.alice.context !== context) {
        return undefined;
      }
      match.stage = 'answering';
      return match.bob;
    },
    answer(session, context) {
      const match = matches.get(key(session, context));
      if (!match || match.stage !== 'answering' || match.bob.session !== session || match.bob.context !== context) {
        return undefined;
      }
      forget(match);
      return match.alice;
    },
    expire(id) {
      const match = byId.get(id);
      if (!match) return undefined;
      forget(match);
      return { id, alice: match.alice, bob: match.bob };
    },
    drop(session, context) {
      const match = matches.get(key(session, context));
      if (!match) return undefined;
      forget(match);
      return match.alice.session === session && match.alice.context === context ? match.bob : match.alice;
    },
    remove(session) {
      const others: RequestEnd[] = [];
      for (const k of [...(bySession.get(session) ?? [])]) {
        pending.delete(k);
        const match = matches.get(k);
        if (!match) continue;
        forget(match);
        others.push(match.alice.session === session ? match.bob : match.alice);
      }
      bySession.delete(session);
      return others;
    },
    get pending() {
      return pending.size;
    },
    get matches() {
      return matchCount;
    },
  };
}
