import { assertEvent, assign, setup, type ActorRefFrom } from 'xstate';
import type { SessionServicesBase } from '../../src/protocol-server.js';
import type { Router } from '../../src/router.js';
import type { SignallingEvent } from '../../src/runtime.js';
import { MAX_CALLS, WorkroomsDecodeError } from './codec.js';
import {
  CLOSE_TAKEN_OVER,
  type ClientMessage,
  type DirectoryEntry,
  type HangupEntry,
  type MessageOf,
  type RelayType,
  type ServerErrorCode,
  type ServerMessage,
  type UserProfiles,
} from './protocol.js';
import type { CallRecord, WorkroomsRegistry } from './registry.js';

/** What a session needs from its server: shared state, its own connection, and the server's settings. */
export interface SessionServices extends SessionServicesBase<ServerMessage> {
  /** Delivery to sessions by `sessionid` (and by connection id). */
  readonly router: Router<ServerMessage>;
  readonly registry: WorkroomsRegistry;
  /** A fresh, unguessable `callid`. */
  readonly generateCallId: () => string;
  /** Tells the session of `connection` that its `sessionid` was taken over by a new connection. */
  readonly evict: (connection: string) => void;
  /** Accepts or refuses a `userprofile` (say, by checking an OAuth token in it). */
  readonly verifyProfile?: (profiles: UserProfiles, sessionid: string) => boolean;
  /** How long the calls of a session whose connection dropped wait for it to register again, in ms. */
  readonly grace: number;
  /** How long a new connection has to send `register` before it is closed, in ms. */
  readonly registerTimeout: number;
  /** Most results of one `autocomplete`. */
  readonly searchLimit: number;
  /** The size of one `autocomplete` answer: see {@link SearchBudget}. */
  readonly searchBudget: SearchBudget;
}

/**
 * How large one `autocomplete` answer may be, in characters of its frame
 * (UTF-16 code units, like every size of this protocol): the larger of
 * `floor` and `factor` × the size of the request. Results are cut at a
 * profile boundary to fit, and the answer then says `truncated: true`. So a
 * search costs the server at most `factor` times what the client sent, or
 * `floor` for a small one: never 6,000 times a 48-character request.
 */
export interface SearchBudget {
  /** The budget of any request, however small: room for the largest profile (16384) and then some. */
  readonly floor: number;
  /** The budget per character of the request, for requests large enough that `factor` × size exceeds `floor`. */
  readonly factor: number;
}

/** What `,"truncated":true` adds to an answer. */
const TRUNCATED_MARK = 17;

export interface SessionInput {
  /** The server's own id for this connection (not the client's `sessionid`). */
  connection: string;
  services: SessionServices;
}

export interface SessionContext {
  readonly connection: string;
  readonly services: SessionServices;
  /** The `sessionid` this connection registered. */
  sessionid?: string;
}

/** Sent by the server to a session whose `sessionid` a `register` on another connection took over. */
export type TakenOver = { type: 'session.takenOver' };

export type SessionEvent = ClientMessage | SignallingEvent | TakenOver;

export { CLOSE_TAKEN_OVER };

type Ctx = { context: SessionContext };

/** The `detail` of a client message: what the action of that message's transition is given as `params`. */
type Detail<T extends ClientMessage['type']> = MessageOf<ClientMessage, T>['detail'];

/** Sends to this connection: the router holds it under the connection id as well as under its `sessionid`. */
const reply = (context: SessionContext, message: ServerMessage) =>
  context.services.router.send(context.connection, message);

const refusal = (code: ServerErrorCode, event: string, message: string): ServerMessage => ({
  type: 'error',
  detail: { code, message, event },
});

const otherSide = (call: CallRecord, sessionid: string) => (call.from === sessionid ? call.to : call.from);

/**
 * @internal Hangs up `calls` on behalf of `by`: removes them and tells each
 * side that is online (one `hangup` each), `by` itself only when `tellSelf`.
 */
export function hangUpCalls(
  { registry, router }: Pick<SessionServices, 'registry' | 'router'>,
  calls: CallRecord[],
  by: string,
  tellSelf: boolean,
): void {
  const perSession = new Map<string, Array<Required<HangupEntry>>>();
  for (const call of calls) {
    if (!registry.removeCall(call.callid)) continue;
    for (const party of [call.from, call.to]) {
      if (party === by && !tellSelf) continue;
      const list = perSession.get(party) ?? [];
      list.push({ callid: call.callid, sessionid: by });
      perSession.set(party, list);
    }
  }
  for (const [to, list] of perSession) router.send(to, { type: 'hangup', detail: { calls: list } });
}

/** True when this connection still holds its `sessionid` (it was not taken over). */
const holds = ({ context }: Ctx) =>
  context.sessionid !== undefined && context.services.registry.holder(context.sessionid) === context.connection;

// The actions of the relays and of what comes before `register` are given the message itself.
const relay = {
  type: 'relay',
  params: ({ event }: { event: MessageOf<ClientMessage, RelayType> }) => event,
} as const;
const refuseBeforeRegister = {
  type: 'refuseBeforeRegister',
  params: ({ event }: { event: ClientMessage }) => ({ type: event.type }),
} as const;

/**
 * @internal The setup (types, actions with their `params`, guards, actors) that
 * {@link workroomsSession} is created from; exported for the type tests, which show
 * that an action wired to a transition whose event lacks what it reads does
 * not compile.
 */
export const workroomsSessionSetup = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  delays: {
    grace: ({ context }) => context.services.grace,
    registerTimeout: ({ context }) => context.services.registerTimeout,
  },
  guards: {
    hasCalls: ({ context }) => holds({ context }) && context.services.registry.callsOf(context.sessionid!).length > 0,
  },
  actions: {
    open: ({ context }) => context.services.router.add(context.connection, context.services.transport),
    rememberSession: assign((_, { sessionid }: Detail<'register'>) => ({ sessionid })),
    register: ({ context }, detail: Detail<'register'>) => {
      const { registry, router, transport, evict, log } = context.services;
      const sessionid = context.sessionid!;
      const previous = registry.claim(sessionid, context.connection);
      if (previous !== undefined) {
        log.info('session taken over', { protocol: 'workrooms', connection: context.connection, previous });
        evict(previous);
      }
      router.add(sessionid, transport);
      const listed = new Set(detail.calls.map((call) => call.callid));
      const held = registry.callsOf(sessionid);
      // Calls the client no longer has are over, for the other side too.
      hangUpCalls(
        context.services,
        held.filter((call) => !listed.has(call.callid)),
        sessionid,
        false,
      );
      const restored = held.filter((call) => listed.has(call.callid)).map((call) => call.callid);
      reply(context, { type: 'registered', detail: { sessionid, calls: restored } });
      // Calls the server no longer has (hung up, or their grace ran out): the client drops them.
      const gone = detail.calls.filter(
        (call, i) => !restored.includes(call.callid) && detail.calls.findIndex((c) => c.callid === call.callid) === i,
      );
      if (gone.length > 0) {
        const peer = (call: (typeof detail.calls)[number]) =>
          call.fromsessionid === sessionid ? call.tosessionid : call.fromsessionid;
        reply(context, {
          type: 'hangup',
          detail: { calls: gone.map((call) => ({ callid: call.callid, sessionid: peer(call) ?? sessionid })) },
        });
      }
      log.info('session registered', { protocol: 'workrooms', connection: context.connection, restored });
    },
    setProfile: ({ context }, profiles: Detail<'userprofile'>) => {
      const { registry, verifyProfile, log } = context.services;
      let accepted = true;
      if (verifyProfile) {
        try {
          accepted = verifyProfile(profiles, context.sessionid!) === true;
        } catch (error) {
          // A hook that throws on odd input refuses it; it must not take the session down.
          log.warn('verifyProfile threw', {
            protocol: 'workrooms',
            connection: context.connection,
            error: String(error),
          });
          accepted = false;
        }
      }
      if (!accepted) {
        reply(context, refusal('ERR_NOT_PERMITTED', 'userprofile', 'userprofile: the server refused this profile'));
        return;
      }
      registry.setProfile(context.sessionid!, profiles);
    },
    placeCall: ({ context }, { to }: Detail<'call'>) => {
      const { registry, router, generateCallId } = context.services;
      const self = context.sessionid!;
      if (to === self) {
        reply(context, refusal('ERR_NOT_PERMITTED', 'call', 'call: you cannot call yourself'));
        return;
      }
      if (!registry.isOnline(to)) {
        reply(context, refusal('ERR_PEER_GONE', 'call', `call: no session ${to} is connected`));
        return;
      }
      const existing = registry.callBetween(self, to);
      if (existing) {
        reply(
          context,
          refusal('ERR_NOT_PERMITTED', 'call', `call: you already have call ${existing.callid} with ${to}`),
        );
        return;
      }
      // `register` and `hangup` name at most MAX_CALLS calls: a session holds no more, or it could not register again.
      for (const party of [self, to]) {
        if (registry.callsOf(party).length >= MAX_CALLS) {
          const who = party === self ? 'you have' : `${to} has`;
          reply(
            context,
            refusal('ERR_NOT_PERMITTED', 'call', `call: ${who} ${MAX_CALLS} calls, the most a session may hold`),
          );
          return;
        }
      }
      let callid = generateCallId();
      while (registry.call(callid)) callid = generateCallId();
      registry.addCall({ callid, from: self, to });
      const base = { callid, fromsessionid: self, tosessionid: to };
      const delivered = router.send(to, {
        type: 'inboundcall',
        detail: { inbound: true, ...base, userprofiles: registry.profile(self) ?? {} },
      });
      if (!delivered) {
        // Its connection closed a moment ago (the close is on its way): no call, rather than one only the caller knows.
        registry.removeCall(callid);
        reply(context, refusal('ERR_PEER_GONE', 'call', `call: no session ${to} is connected`));
        return;
      }
      router.send(self, {
        type: 'outboundcall',
        detail: { outbound: true, ...base, userprofiles: registry.profile(to) ?? {} },
      });
    },
    hangUp: ({ context }, { calls }: Detail<'hangup'>) => {
      const { registry } = context.services;
      const self = context.sessionid!;
      const found: CallRecord[] = [];
      const unknown: string[] = [];
      for (const { callid } of calls) {
        const call = registry.call(callid);
        if (call && (call.from === self || call.to === self)) {
          if (!found.includes(call)) found.push(call);
        } else if (!unknown.includes(callid)) unknown.push(callid);
      }
      if (unknown.length > 0) {
        reply(context, refusal('ERR_NOT_PERMITTED', 'hangup', `hangup: you have no call ${unknown.join(', ')}`));
      }
      hangUpCalls(context.services, found, self, true);
    },
    search: ({ context }, request: Detail<'autocomplete'>) => {
      const { registry, searchLimit, searchBudget } = context.services;
      const { search } = request;
      // The request re-encoded is never longer than it was on the wire (whitespace and escapes go), so the
      // budget never grows past `factor` × what the client sent.
      const size = JSON.stringify({ type: 'autocomplete', detail: request }).length;
      const budget = Math.max(searchBudget.floor, searchBudget.factor * size);
      // One more than the limit tells whether the count cut the answer short.
      const found = registry.search(search, searchLimit + 1, context.sessionid);
      let truncated = found.length > searchLimit;
      const results: DirectoryEntry[] = [];
      // The frame as the codec encodes it, with room left for the mark; each result adds itself and a comma.
      let length = JSON.stringify({ type: 'autocomplete', detail: { search, results } }).length + TRUNCATED_MARK;
      for (const entry of found.slice(0, searchLimit)) {
        const added = JSON.stringify(entry).length + (results.length > 0 ? 1 : 0);
        if (length + added > budget) {
          truncated = true;
          break;
        }
        length += added;
        results.push(entry);
      }
      reply(context, {
        type: 'autocomplete',
        detail: truncated ? { search, results, truncated } : { search, results },
      });
    },
    /** Sends an `offer`, `answer` or `ice` on to the other side of its call, as it came but for `peerid`. */
    relay: ({ context }, relayed: MessageOf<ClientMessage, RelayType>) => {
      const { callid, peerid } = relayed.detail;
      const { registry, router } = context.services;
      const self = context.sessionid!;
      const call = registry.call(callid);
      if (!call || (call.from !== self && call.to !== self)) {
        reply(context, refusal('ERR_NOT_PERMITTED', relayed.type, `${relayed.type}: you have no call ${callid}`));
        return;
      }
      const other = otherSide(call, self);
      if (peerid !== other) {
        reply(
          context,
          refusal('ERR_NOT_PERMITTED', relayed.type, `${relayed.type}: ${peerid} is not on call ${callid}`),
        );
        return;
      }
      const message = { type: relayed.type, detail: { ...relayed.detail, peerid: self } } as ServerMessage;
      if (!router.send(other, message)) {
        reply(
          context,
          refusal('ERR_PEER_GONE', relayed.type, `${relayed.type}: ${other} is not connected (it may come back)`),
        );
      }
    },
    refuseBeforeRegister: ({ context }, { type }: { type: ClientMessage['type'] }) => {
      reply(context, refusal('ERR_NOT_PERMITTED', type, `${type}: send register first`));
    },
    expire: ({ context }) => {
      reply(context, { type: 'error', detail: { code: 'ERR_TIMEOUT', message: 'register was not sent in time' } });
      context.services.transport.close(1008, 'register was not sent in time');
    },
    refuseRegister: ({ context }) => {
      reply(context, refusal('ERR_NOT_PERMITTED', 'register', 'register: this connection is already registered'));
    },
    reportBadFrame: ({ context, event }) => {
      assertEvent(event, 'signalling.error');
      const { error } = event;
      const detail: { code: ServerErrorCode; message: string; event?: string } = {
        code: error.code as ServerErrorCode,
        message: error.message,
      };
      if (error instanceof WorkroomsDecodeError && error.event) detail.event = error.event;
      reply(context, { type: 'error', detail });
    },
    goAway: ({ context }) => {
      context.services.router.remove(context.connection);
      if (!holds({ context })) return;
      context.services.registry.setAway(context.sessionid!, context.connection);
      context.services.router.remove(context.sessionid!);
      context.services.log.info('session away', { protocol: 'workrooms', connection: context.connection });
    },
    leave: ({ context }) => {
      const { registry, router, transport, log } = context.services;
      if (holds({ context })) {
        const sessionid = context.sessionid!;
        hangUpCalls(context.services, registry.callsOf(sessionid), sessionid, false);
        registry.release(sessionid, context.connection);
        router.remove(sessionid);
      }
      router.remove(context.connection);
      transport.close(1000, 'session ended');
      log.info('session closed', { protocol: 'workrooms', connection: context.connection });
    },
    closeStale: ({ context }) => {
      context.services.router.remove(context.connection);
      context.services.transport.close(CLOSE_TAKEN_OVER, 'taken over by a new connection');
      context.services.log.info('session replaced', { protocol: 'workrooms', connection: context.connection });
    },
  },
});

/**
 * One client's connection to a workrooms server. It waits for `register`,
 * which names the client's `sessionid` (taking the session over from an
 * older connection if it is still held) and the calls it still has; then it
 * places calls, relays each call's `offer` / `answer` / `ice` to the other
 * side of that call only, hangs calls up, keeps the profile and answers
 * `autocomplete`. Whatever it refuses is answered with `error` and changes
 * nothing. A connection that does not `register` within `registerTimeout`
 * gets `error` `ERR_TIMEOUT` and is closed (1008).
 *
 * When the connection drops the session is `away`: its calls wait `grace`
 * ms for a `register` of the same `sessionid` on a new connection, and are
 * then hung up for the other side. A session without calls ends at once.
 */
export const workroomsSession = workroomsSessionSetup.createMachine({
  id: 'workroomsSession',
  context: ({ input }) => ({ connection: input.connection, services: input.services }),
  entry: 'open',
  initial: 'unregistered',
  states: {
    // A connection that never registers would hold a socket and a session forever.
    unregistered: {
      after: { registerTimeout: { target: 'closed', actions: 'expire' } },
      on: {
        register: {
          target: 'registered',
          actions: [
            { type: 'rememberSession', params: ({ event }) => event.detail },
            { type: 'register', params: ({ event }) => event.detail },
          ],
        },
        userprofile: { actions: refuseBeforeRegister },
        call: { actions: refuseBeforeRegister },
        hangup: { actions: refuseBeforeRegister },
        autocomplete: { actions: refuseBeforeRegister },
        offer: { actions: refuseBeforeRegister },
        answer: { actions: refuseBeforeRegister },
        ice: { actions: refuseBeforeRegister },
        'signalling.error': { actions: 'reportBadFrame' },
        'signalling.closed': 'closed',
      },
    },
    registered: {
      on: {
        register: { actions: 'refuseRegister' },
        userprofile: { actions: { type: 'setProfile', params: ({ event }) => event.detail } },
        call: { actions: { type: 'placeCall', params: ({ event }) => event.detail } },
        hangup: { actions: { type: 'hangUp', params: ({ event }) => event.detail } },
        autocomplete: { actions: { type: 'search', params: ({ event }) => event.detail } },
        offer: { actions: relay },
        answer: { actions: relay },
        ice: { actions: relay },
        'signalling.error': { actions: 'reportBadFrame' },
        'signalling.closed': [{ guard: 'hasCalls', target: 'away' }, { target: 'closed' }],
        'session.takenOver': 'replaced',
      },
    },
    // The connection dropped with calls open: they wait for the client to register again.
    away: {
      entry: 'goAway',
      after: { grace: 'closed' },
      on: { 'session.takenOver': 'replaced' },
    },
    closed: { type: 'final', entry: 'leave' },
    // A register of our sessionid on another connection took the session (and its calls) over.
    replaced: { type: 'final', entry: 'closeStale' },
  },
});

export type WorkroomsSessionActor = ActorRefFrom<typeof workroomsSession>;
