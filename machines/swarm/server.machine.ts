import { assign, enqueueActions, setup, type ActorRefFrom } from 'xstate';
import type { SessionContextOf, SessionInputOf, SessionServicesBase } from '../../src/protocol-server.js';
import { RouterError, type Router } from '../../src/router.js';
import type { SignallingEvent } from '../../src/runtime.js';
import type { ClientMessage, MessageOf, ServerErrorCode, ServerMessage } from './protocol.js';
import type { Match, MatchRegistry, RequestEnd } from './registry.js';

/** What a session needs from its server: shared state, its connection, its limits. */
export interface SessionServices extends SessionServicesBase<ServerMessage> {
  readonly registry: MatchRegistry;
  /** Most requests one connection may have pending or in a match at once. */
  readonly maxRequests: number;
  /** How long a connection has to send `i_am`, in ms. */
  readonly introTimeout: number;
  /** How long a match may take from the pairing to the forwarded answer, in ms. */
  readonly matchTimeout: number;
}

/** `id`: the server's id of this connection (clients never see it). */
export type SessionInput = SessionInputOf<SessionServices>;

export interface SessionContext extends SessionContextOf<SessionServices> {
  /** From `i_am`. */
  clientId?: string;
}

/** Raised (delayed by `matchTimeout`) by the session whose request made match `id`. */
export type MatchExpired = { type: 'match.expired'; id: string };

export type SessionEvent = ClientMessage | SignallingEvent | MatchExpired;

type Refusal = { code: ServerErrorCode; message: string; event?: string; context_id?: string };

/**
 * One client's connection to a swarm server. The client introduces itself
 * (`i_am`), then files requests for peers (`requesting_peers`); the
 * registry pairs each with a pending request of another client (never the
 * same `client_id`), and the session tells both ends their role
 * (`requesting_offer` to the one that waited, `wait_for_offer` to the
 * newcomer). It then forwards alice's `sending_offer` and bob's
 * `sending_answer` within their match only. Whatever it refuses is
 * answered with `error`; the connection stays open. A match whose answer
 * has not been forwarded within `matchTimeout` is dropped and both ends are
 * told (`error` with `ERR_TIMEOUT` and their `context_id`), so a peer that
 * never offers or answers cannot hold a request forever. A connection that
 * does not introduce itself within `introTimeout` is closed. When the
 * connection closes, its pending requests go, and the other end of each
 * match in progress is told (`error` with `ERR_PEER_GONE` and its
 * `context_id`). An offer or answer that cannot be delivered (the other
 * end's process is out of reach while Redis is down, or no process holds
 * the other end any more) ends its match at once: the sender gets `error`
 * with `ERR_PEER_GONE` and its `context_id`.
 */
export const swarmSession = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  delays: {
    introTimeout: ({ context }) => context.services.introTimeout,
    matchTimeout: ({ context }) => context.services.matchTimeout,
  },
  actions: {
    register: ({ context }) => context.services.router.add(context.id, context.services.transport),
    introduce: assign((_, { client_id }: { client_id: string }) => ({ clientId: client_id })),
    refuse: ({ context }, refusal: Refusal) =>
      void context.services.router.send(context.id, { type: 'error', detail: refusal }),
    request: enqueueActions(({ context, enqueue }, { context_id }: { context_id: string }) => {
      const { registry, router, maxRequests } = context.services;
      const refuse = (message: string) =>
        router.send(context.id, {
          type: 'error',
          detail: { code: 'ERR_NOT_PERMITTED', message, event: 'requesting_peers', context_id },
        });
      if (registry.has(context.id, context_id)) return void refuse(`context_id ${context_id} is already in use`);
      if (registry.count(context.id) >= maxRequests) {
        return void refuse(`at most ${maxRequests} requests may wait at once`);
      }
      const match = registry.request({ session: context.id, client: context.clientId!, context: context_id });
      if (!match) return;
      tellMatch(router, match);
      // One timer per match, in the session that made it (if it leaves first, `leave` ends the match).
      enqueue.raise({ type: 'match.expired', id: match.id } satisfies MatchExpired, { delay: 'matchTimeout' });
    }),
    expire: ({ context }, { id }: { id: string }) => {
      const { registry, router, matchTimeout } = context.services;
      const match = registry.expire(id);
      if (!match) return; // answered in time
      endMatches(
        router,
        [match.alice, match.bob],
        'ERR_TIMEOUT',
        `the match was not answered within ${matchTimeout} ms`,
      );
    },
    relayOffer: ({ context }, detail: MessageOf<ClientMessage, 'sending_offer'>['detail']) =>
      relay(context, { type: 'sending_offer', detail }),
    relayAnswer: ({ context }, detail: MessageOf<ClientMessage, 'sending_answer'>['detail']) =>
      relay(context, { type: 'sending_answer', detail }),
    leave: ({ context }) => {
      const { router, registry, transport, log } = context.services;
      tellPeerGone(router, registry.remove(context.id));
      router.remove(context.id);
      transport.close(1000, 'session ended');
      log.info('session closed', { protocol: 'swarm', session: context.id });
    },
    closeIdle: ({ context }) => context.services.transport.close(1008, 'no i_am in time'),
  },
}).createMachine({
  id: 'swarmSession',
  context: ({ input }) => ({ id: input.id, services: input.services }),
  entry: 'register',
  initial: 'awaitingIntro',
  on: {
    'signalling.error': {
      actions: {
        type: 'refuse',
        params: ({ event }) => ({ code: event.error.code as ServerErrorCode, message: event.error.message }),
      },
    },
    'signalling.closed': '.closed',
  },
  states: {
    awaitingIntro: {
      after: { introTimeout: { target: 'closed', actions: 'closeIdle' } },
      on: {
        i_am: { target: 'ready', actions: { type: 'introduce', params: ({ event }) => event.detail } },
        requesting_peers: { actions: { type: 'refuse', params: ({ event }) => introduceFirst(event.type) } },
        sending_offer: { actions: { type: 'refuse', params: ({ event }) => introduceFirst(event.type) } },
        sending_answer: { actions: { type: 'refuse', params: ({ event }) => introduceFirst(event.type) } },
      },
    },
    ready: {
      on: {
        i_am: {
          actions: {
            type: 'refuse',
            params: ({ context }) => ({
              code: 'ERR_NOT_PERMITTED' as const,
              message: `i_am comes once: this connection is ${context.clientId}`,
              event: 'i_am',
            }),
          },
        },
        requesting_peers: { actions: { type: 'request', params: ({ event }) => event.detail } },
        sending_offer: { actions: { type: 'relayOffer', params: ({ event }) => event.detail } },
        sending_answer: { actions: { type: 'relayAnswer', params: ({ event }) => event.detail } },
        'match.expired': { actions: { type: 'expire', params: ({ event }) => ({ id: event.id }) } },
      },
    },
    closed: { type: 'final', entry: 'leave' },
  },
});

/** Tells both ends of a new match their role: `requesting_offer` to alice, who waited; `wait_for_offer` to bob. */
export function tellMatch(router: Router<ServerMessage>, match: Match): void {
  router.send(match.alice.session, { type: 'requesting_offer', detail: { context_id: match.alice.context } });
  router.send(match.bob.session, { type: 'wait_for_offer', detail: { context_id: match.bob.context } });
}

/**
 * Relays alice's offer to bob, or bob's answer to alice, within their match:
 * the description and any other key go on untouched; only `context_id`
 * becomes the recipient's. One that belongs to no match waiting for it is
 * refused (nothing is forwarded).
 *
 * One that cannot be delivered ends its match at once, as for a partner that
 * left: the other end's process is out of reach (Redis down), no process
 * holds the other end any more (its process died and is not yet found dead),
 * or its connection is closing. A router with `deliver` (the Redis one) says
 * so when the delivery fails, a moment later; its `send` cannot know.
 */
function relay(context: SessionContext, message: MessageOf<ClientMessage, 'sending_offer' | 'sending_answer'>): void {
  const { registry, router, log } = context.services;
  const context_id = message.detail.context_id;
  const offer = message.type === 'sending_offer';
  const other = offer ? registry.offer(context.id, context_id) : registry.answer(context.id, context_id);
  if (!other) {
    const why = offer ? 'no match is waiting for your offer' : 'no offer is waiting for your answer';
    router.send(context.id, {
      type: 'error',
      detail: {
        code: 'ERR_NOT_PERMITTED',
        message: `${why} under context_id ${context_id}`,
        event: message.type,
        context_id,
      },
    });
    return;
  }
  const forwarded: ServerMessage = offer
    ? { type: 'forwarding_offer', detail: { ...message.detail, context_id: other.context } }
    : { type: 'forwarding_answer', detail: { ...message.detail, context_id: other.context } };
  const undelivered = () => {
    // The other end hears of it from its own process: at once when it is closing here, or through
    // a shared registry's `drop` (once Redis is back, if it was down).
    const open = registry.drop(context.id, context_id) !== undefined;
    // A forwarded answer ended its match already; an offer's match may have ended while the
    // delivery was under way (its other end left or was found dead), its sender told then.
    if (offer && !open) return;
    endMatches(
      router,
      [{ session: context.id, context: context_id }],
      'ERR_PEER_GONE',
      `the other peer of this match cannot be reached: your ${offer ? 'offer' : 'answer'} was not delivered`,
    );
  };
  if (!router.deliver) {
    if (!router.send(other.session, forwarded)) undelivered();
    return;
  }
  router.deliver(other.session, forwarded).catch((error: unknown) => {
    if (!(error instanceof RouterError)) log.error('swarm: relay failed', { error: String(error) });
    undelivered();
  });
}

/** Tells each of `ends` that its match in progress is over: `error` with `code` and its own `context_id`. */
function endMatches(
  router: Pick<Router<ServerMessage>, 'send'>,
  ends: readonly RequestEnd[],
  code: 'ERR_PEER_GONE' | 'ERR_TIMEOUT',
  message: string,
): void {
  for (const end of ends)
    router.send(end.session, { type: 'error', detail: { code, message, context_id: end.context } });
}

/** Tells the other end of each match in progress that its peer left (`error`, `ERR_PEER_GONE`, its `context_id`). */
export function tellPeerGone(
  router: Pick<Router<ServerMessage>, 'send'>,
  others: readonly RequestEnd[],
  message = 'the other peer of this match left',
): void {
  endMatches(router, others, 'ERR_PEER_GONE', message);
}

function introduceFirst(event: string): Refusal {
  return { code: 'ERR_NOT_PERMITTED', message: `${event}: introduce yourself with i_am first`, event };
}

export type SwarmSessionActor = ActorRefFrom<typeof swarmSession>;
