import { setup, type ActorRefFrom } from 'xstate';
import type { SessionContextOf, SessionInputOf, SessionServicesBase } from '../../src/protocol-server.js';
import type { SignallingEvent } from '../../src/runtime.js';
import type { InvalidPeer } from './codec.js';
import { direction, type RelayedMessage, type ServerErrorCode, type ServerMessage } from './protocol.js';
import type { PeerRegistry } from './registry.js';

/** What a session needs from its server: shared state and its own connection. */
export interface SessionServices extends SessionServicesBase<ServerMessage> {
  readonly registry: PeerRegistry;
  /** Spends one of this client address's unknown-code tokens: false when it has none left. */
  readonly guess?: () => boolean;
}

/** `id`: the peer id the server allocated (and registered) for this connection. */
export type SessionInput = SessionInputOf<SessionServices>;

export type SessionContext = SessionContextOf<SessionServices>;

export type SessionEvent = RelayedMessage | InvalidPeer | SignallingEvent;

/** One message to deliver: to another peer, or back to this client (`to` is its own id). */
export interface Transmission {
  to: string;
  message: ServerMessage;
  /** A `request`: record that this client asked `to`. */
  link?: boolean;
  /** Close this client's connection after the message (it keeps guessing codes). */
  close?: boolean;
}

/** Longest `peer` a `peer not exists` echoes (a client may name any string). */
const MAX_ECHOED_PEER = 128;

/**
 * Checks one client message against the registry. A receiver must `request`
 * a sender before anything else passes between them; then each message may
 * only go its way (offer and progress to the sender; response, answer and
 * retry to the receiver; candidates and done both ways). What passes is
 * forwarded with `peer` set to the sender's id and `data` as it came.
 */
export function planRelay(context: SessionContext, event: RelayedMessage): Transmission {
  const { registry } = context.services;
  const self = context.id;
  const reply = (message: ServerMessage): Transmission => ({ to: self, message });
  const refuse = (code: ServerErrorCode, type: string, message: string) =>
    reply({ type: 'error', detail: { code, message, event: type } });
  const to = event.detail.peer;
  if (to === self) return refuse('ERR_NOT_PERMITTED', event.type, `${event.type}: you cannot send to yourself`);
  if (!registry.has(to)) {
    if (context.services.guess?.() === false) {
      return {
        ...refuse(
          'ERR_RATE_LIMITED',
          event.type,
          `${event.type}: too many unknown codes from your address; the connection is closed`,
        ),
        close: true,
      };
    }
    return reply({ type: 'peer not exists', detail: { peer: to.slice(0, MAX_ECHOED_PEER), event: event.type } });
  }
  const way = direction[event.type];
  const asked = registry.isLinked(self, to);
  const askedBy = registry.isLinked(to, self);
  if (way === 'toSender' && !asked) {
    return refuse('ERR_NOT_PERMITTED', event.type, `${event.type}: you have not sent ${to} a request`);
  }
  if (way === 'toReceiver' && !askedBy) {
    return refuse('ERR_NOT_PERMITTED', event.type, `${event.type}: ${to} has not sent you a request`);
  }
  if (way === 'either' && !asked && !askedBy) {
    return refuse('ERR_NOT_PERMITTED', event.type, `${event.type}: neither of you has sent the other a request`);
  }
  const message = { type: event.type, detail: { ...event.detail, peer: self } } as ServerMessage;
  return way === 'request' ? { to, message, link: true } : { to, message };
}

/**
 * One client's connection to a filedrop server. It is told its id
 * (`assign`) as it starts, then relays the seed's messages between peers,
 * each checked against the registry; whatever it refuses is answered with
 * `invalid peer id` (a `peer` that is not a string), `peer not exists` (a
 * string nobody holds) or `error`, and nothing is
 * forwarded. The connection stays open through errors. When it closes the
 * session leaves the registry and tells every peer it exchanged messages
 * with (`peer not exists` without `event`).
 */
export const filedropSession = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  actions: {
    register: ({ context }) => context.services.router.add(context.id, context.services.transport),
    transmit: ({ context }, { to, message, link, close }: Transmission) => {
      const { registry, router } = context.services;
      if (close) {
        router.send(context.id, message);
        context.services.transport.close(1008, 'too many unknown codes');
        return;
      }
      if (link) registry.link(context.id, to);
      // Registered but not reachable (it is closing, or lives on another process that dropped it).
      if (!router.send(to, message) && to !== context.id) {
        router.send(context.id, { type: 'peer not exists', detail: { peer: to, event: message.type } });
      }
    },
    leave: ({ context }) => {
      const { router, registry, transport, log } = context.services;
      for (const peer of registry.remove(context.id)) {
        router.send(peer, { type: 'peer not exists', detail: { peer: context.id } });
      }
      router.remove(context.id);
      transport.close(1000, 'session ended');
      log.info('session closed', { protocol: 'filedrop', session: context.id });
    },
  },
}).createMachine({
  id: 'filedropSession',
  context: ({ input }) => ({ id: input.id, services: input.services }),
  entry: [
    'register',
    {
      type: 'transmit',
      params: ({ context }) => ({ to: context.id, message: { type: 'assign', detail: { peer: context.id } } }),
    },
  ],
  initial: 'open',
  states: {
    open: {
      on: {
        request: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        response: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        offer: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        answer: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        candidate: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        retry: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        progress: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        done: { actions: { type: 'transmit', params: ({ context, event }) => planRelay(context, event) } },
        'session.invalidPeer': {
          actions: {
            type: 'transmit',
            params: ({ context, event }) => ({
              to: context.id,
              message: { type: 'invalid peer id', detail: { event: event.detail.event } },
            }),
          },
        },
        'signalling.error': {
          actions: {
            type: 'transmit',
            params: ({ context, event }) => ({
              to: context.id,
              message: {
                type: 'error',
                detail: { code: event.error.code as ServerErrorCode, message: event.error.message },
              },
            }),
          },
        },
        'signalling.closed': 'closed',
      },
    },
    closed: { type: 'final', entry: 'leave' },
  },
});

export type FileDropSessionActor = ActorRefFrom<typeof filedropSession>;
