import { assertEvent, assign, enqueueActions, setup, type ActorRefFrom } from 'xstate';
import { truncateUtf8 } from '../../src/logger.js';
import type { SessionServicesBase } from '../../src/protocol-server.js';
import type { SignallingEvent } from '../../src/runtime.js';
import { Stage, type LobbyDirectory, type Role } from './directory.js';
import {
  supportedVersions,
  VIOLATION_CLOSE_CODE,
  type ClientMessage,
  type MessageOf,
  type ServerMessage,
} from './protocol.js';

/** Timing of a server session, in milliseconds. */
export interface SessionTiming {
  /** How often the server sends KEEPALIVE; a client that leaves two unanswered is dropped. @default 10000 */
  keepaliveInterval: number;
  /** How long a new connection may take to send INIT. @default 10000 */
  initTimeout: number;
}

/** What a session needs from its server: shared state and its own connection. */
export interface SessionServices extends SessionServicesBase<ServerMessage> {
  readonly directory: LobbyDirectory;
  readonly timing: SessionTiming;
  /** Asks session `id` to send an early KEEPALIVE (SHUTDOWN_WRN said it may be gone). */
  readonly probe: (id: string) => void;
}

export interface SessionInput {
  /** The server-assigned peer id (INIT_OK's payload). */
  id: string;
  /** Unique Game Identifier from the path `/ws/{ugi}`. */
  ugi: string;
  /** Protocol version from `?v=`. */
  version: number;
  services: SessionServices;
}

export interface SessionContext {
  readonly id: string;
  readonly ugi: string;
  readonly version: number;
  /** The display name INIT carried, if its payload was a string (cut to {@link MAX_NAME_LENGTH}). */
  name?: string;
  role?: Role;
  lobby?: string;
  /** KEEPALIVEs sent since the client last sent one. */
  missed: number;
  readonly services: SessionServices;
}

export type SessionEvent =
  ClientMessage | SignallingEvent | { type: 'session.probe' } | { type: 'session.violation'; reason: string };

/** Client messages whose validity depends on the session's state. */
const STATEFUL = new Set<string>([
  'INIT',
  'CONFIG_HOST',
  'CONFIG_PEER',
  'MAKE_OFFER',
  'ACCEPT_OFFER',
  'MAKE_ANSWER',
  'ACK_CHECK',
  'ACK_READY',
]);

/** Client messages the server relays to a lobby mate. */
const RELAYED = ['MAKE_OFFER', 'ACCEPT_OFFER', 'MAKE_ANSWER', 'ACK_CHECK', 'ACK_READY'] as const;
type RelayType = (typeof RELAYED)[number];

/**
 * Longest display name kept from INIT, in UTF-16 code units; a longer one is
 * cut. INIT's payload may be any JSON: only a string is taken as a name.
 */
export const MAX_NAME_LENGTH = 64;

/**
 * Checks a relay against the lobby and the handshake stage. Returns the
 * message to deliver, `undefined` to drop it silently (the recipient has
 * left: a race, not misbehaviour), or a violation reason.
 */
function planRelay(
  context: SessionContext,
  event: MessageOf<ClientMessage, RelayType>,
): { deliver: ServerMessage; stage?: Stage } | { violation: string } | undefined {
  const { directory } = context.services;
  const { rx } = event.detail;
  const self = context.id;
  if (!directory.isMember(rx)) return undefined;
  if (!directory.areMates(self, rx)) {
    return {
      violation: `${event.type}: ${rx} is not a ${context.role === 'host' ? 'peer' : 'host'} in your lobby`,
    };
  }
  const host = context.role === 'host' ? self : rx;
  const peer = context.role === 'host' ? rx : self;
  const stage = directory.stage(host, peer);
  switch (event.type) {
    case 'MAKE_OFFER':
      return {
        deliver: {
          type: 'ANTICIPATE_OFFER',
          detail: { payload: event.detail.payload, tx: self },
        },
        stage: Stage.Offered,
      };
    case 'ACCEPT_OFFER':
      if (stage !== Stage.Offered) return { violation: `ACCEPT_OFFER: ${rx} has not made you an offer` };
      return {
        deliver: {
          type: 'RETURN_OFFER',
          detail: { payload: event.detail.payload, tx: self },
        },
        stage: Stage.Accepted,
      };
    case 'MAKE_ANSWER':
      if (stage < Stage.Accepted)
        return {
          violation: `MAKE_ANSWER: no offers have been exchanged with ${rx}`,
        };
      return {
        deliver: {
          type: 'ANTICIPATE_ANSWER',
          detail: { payload: event.detail.payload, tx: self },
        },
      };
    case 'ACK_CHECK':
      if (stage < Stage.Accepted)
        return {
          violation: `ACK_CHECK: no offers have been exchanged with ${rx}`,
        };
      return {
        deliver: { type: 'ACK_CHECK', detail: { tx: self } },
        stage: Stage.Checked,
      };
    case 'ACK_READY':
      if (stage !== Stage.Checked) return { violation: `ACK_READY: ${rx} did not send you ACK_CHECK` };
      return {
        deliver: { type: 'ACK_READY', detail: { tx: self } },
        stage: Stage.Ready,
      };
  }
}

/**
 * Carries out a relay {@link planRelay} allowed: the pair's new handshake
 * stage, if any, then the frame to `rx`. A frame that cannot be delivered
 * because `rx`'s process is out of reach (Redis down) is answered as that
 * process's death would be: SHUTDOWN_ACK with `tx` = `rx` to the sender,
 * and the directory introduces the two again when Redis returns
 * ({@link LobbyDirectory.sever}). Not VIOLATION: the fault is the server's,
 * not the client's.
 */
function deliverRelay(
  context: SessionContext,
  event: MessageOf<ClientMessage, RelayType>,
  plan: { deliver: ServerMessage; stage?: Stage },
): void {
  const { rx } = event.detail;
  const { directory, router } = context.services;
  if (plan.stage !== undefined) {
    const [host, peer] = context.role === 'host' ? [context.id, rx] : [rx, context.id];
    directory.setStage(host, peer, plan.stage);
  }
  if (router.send(rx, plan.deliver)) return;
  if (directory.sever?.(context.id, rx)) router.send(context.id, { type: 'SHUTDOWN_ACK', detail: { tx: rx } });
}

const relay = enqueueActions<SessionContext, SessionEvent, undefined, SessionEvent, never, never, never, never, never>(
  ({ context, event, enqueue }) => {
    assertEvent(event, RELAYED);
    const plan = planRelay(context, event);
    if (!plan) return;
    if ('violation' in plan) {
      enqueue.raise({ type: 'session.violation', reason: plan.violation });
      return;
    }
    deliverRelay(context, event, plan);
  },
);

/**
 * The relays a host (`hosting`) and a peer (`joined`) may send: the events
 * those states take with the `relay` action (`test/cloudlink-server.test.ts`
 * checks the two agree).
 */
export const RELAYS_IN: Readonly<Record<'hosting' | 'joined', ReadonlySet<string>>> = {
  hosting: new Set<RelayType>(['MAKE_OFFER', 'MAKE_ANSWER', 'ACK_CHECK']),
  joined: new Set<RelayType>(['ACCEPT_OFFER', 'MAKE_ANSWER', 'ACK_READY']),
};

/**
 * The hot path of a signalling handshake: a relay that the session's
 * transition would only carry out (the sender hosting or joined, the
 * recipient a mate in its lobby, the handshake at a stage that allows it),
 * done without the transition, which changes nothing in the session (no
 * state, no context; the pair's stage lives in the directory) and cost about
 * a fifth of the server's CPU per relayed message (bench/README.md). Same
 * checks ({@link planRelay}), same effects ({@link deliverRelay}). Anything
 * else, every relay the machine would refuse or drop included, returns false
 * and goes to the machine as always.
 *
 * `createCloudLinkServer` passes it to its session host, which does not use
 * it when an inspector is attached (the inspector then sees every event).
 */
export function relayShortcut(session: CloudLinkSessionActor, message: ClientMessage): boolean {
  const snapshot = session.getSnapshot();
  const state = (snapshot.value as { open?: { protocol?: string } }).open?.protocol;
  if ((state !== 'hosting' && state !== 'joined') || !RELAYS_IN[state].has(message.type)) return false;
  const event = message as MessageOf<ClientMessage, RelayType>;
  const plan = planRelay(snapshot.context, event);
  if (plan === undefined || 'violation' in plan) return false;
  deliverRelay(snapshot.context, event, plan);
  return true;
}

const joinLobby = enqueueActions<
  SessionContext,
  SessionEvent,
  undefined,
  SessionEvent,
  never,
  never,
  never,
  never,
  never
>(({ context, event, enqueue }) => {
  assertEvent(event, ['CONFIG_HOST', 'CONFIG_PEER']);
  const { type, detail } = event;
  const role: Role = type === 'CONFIG_HOST' ? 'host' : 'peer';
  const { router, directory } = context.services;
  enqueue.assign({ role, lobby: detail.payload });
  const mates = directory.join(context.id, context.ugi, detail.payload, role);
  router.send(context.id, {
    type: role === 'host' ? 'ACK_HOST' : 'ACK_PEER',
    detail: { payload: detail.payload },
  });
  for (const mate of mates) {
    router.send(context.id, {
      type: role === 'host' ? 'NEW_PEER' : 'NEW_HOST',
      detail: { payload: mate },
    });
    router.send(mate, {
      type: role === 'host' ? 'NEW_HOST' : 'NEW_PEER',
      detail: { payload: context.id },
    });
  }
});

const reportVanished = enqueueActions<
  SessionContext,
  SessionEvent,
  undefined,
  SessionEvent,
  never,
  never,
  never,
  never,
  never
>(({ context, event, enqueue }) => {
  assertEvent(event, 'SHUTDOWN_WRN');
  const { rx } = event.detail;
  const { directory, router } = context.services;
  if (context.role === undefined) {
    enqueue.raise({
      type: 'session.violation',
      reason: 'SHUTDOWN_WRN before joining a lobby',
    });
  } else if (!directory.isMember(rx)) {
    // Already gone: confirm it so the reporter can clean up.
    router.send(context.id, { type: 'SHUTDOWN_ACK', detail: { tx: rx } });
  } else if (!directory.areMates(context.id, rx)) {
    enqueue.raise({
      type: 'session.violation',
      reason: `SHUTDOWN_WRN: ${rx} is not in your lobby`,
    });
  } else {
    // Still connected as far as we know: probe it now instead of waiting for the next tick.
    context.services.probe(rx);
  }
});

/**
 * The `'*'` of a protocol state: any other stateful message is a VIOLATION
 * (`expected` says what was due, or why not) and closes the session.
 */
function otherwise(expected: string) {
  return {
    guard: 'isStateful',
    target: '#session.closed',
    actions: {
      type: 'violate',
      params: ({ event }: { event: SessionEvent }) => ({
        reason: `${event.type}${expected.startsWith(':') ? '' : ' '}${expected}`,
      }),
    },
  } as const;
}

/**
 * One client's connection to a CloudLink server: INIT, then host or peer,
 * then relays checked against the lobby and the handshake order. Anything
 * else gets VIOLATION and a close; every way out (SHUTDOWN, violation,
 * missed keepalives, a dropped socket) leaves the lobby and tells its mates
 * with SHUTDOWN_ACK.
 */
export const cloudlinkSession = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  delays: {
    keepalive: ({ context }) => context.services.timing.keepaliveInterval,
    initTimeout: ({ context }) => context.services.timing.initTimeout,
  },
  guards: {
    lacksGameId: ({ context }) => context.ugi.length === 0 || context.ugi.length > 128,
    isSupportedVersion: ({ context }) => supportedVersions.includes(context.version),
    isStateful: ({ event }) => STATEFUL.has(event.type),
    isUnresponsive: ({ context }) => context.missed >= 2,
    isQuiet: ({ context }) => context.missed === 0,
  },
  actions: {
    register: ({ context }) => context.services.router.add(context.id, context.services.transport),
    violate: ({ context }, { reason }: { reason: string }) => {
      context.services.router.send(context.id, {
        type: 'VIOLATION',
        detail: { payload: reason },
      });
      context.services.transport.close(VIOLATION_CLOSE_CODE, truncateUtf8(reason));
      context.services.log.warn('violation', {
        session: context.id,
        ugi: context.ugi,
        reason,
      });
    },
    ping: assign(({ context }) => {
      context.services.router.send(context.id, {
        type: 'KEEPALIVE',
        detail: {},
      });
      return { missed: context.missed + 1 };
    }),
    pong: assign({ missed: 0 }),
    dropUnresponsive: ({ context }) => context.services.transport.close(4000, 'keepalive timeout'),
    closeNormally: ({ context }) => context.services.transport.close(1000, 'shutdown'),
    init: assign(({ context, event }) => {
      assertEvent(event, 'INIT');
      context.services.router.send(context.id, {
        type: 'INIT_OK',
        detail: { payload: context.id },
      });
      const { payload } = event.detail;
      return { name: typeof payload === 'string' ? payload.slice(0, MAX_NAME_LENGTH) : undefined };
    }),
    joinLobby,
    relay,
    reportVanished,
    leave: ({ context }) => {
      const { router, directory, transport } = context.services;
      for (const mate of directory.leave(context.id)) {
        router.send(mate, { type: 'SHUTDOWN_ACK', detail: { tx: context.id } });
      }
      router.remove(context.id);
      transport.close(1000, 'session ended');
      context.services.log.info('session closed', {
        session: context.id,
        ugi: context.ugi,
        role: context.role,
      });
    },
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({
    id: input.id,
    ugi: input.ugi,
    version: input.version,
    missed: 0,
    services: input.services,
  }),
  initial: 'checkingEndpoint',
  entry: 'register',
  states: {
    checkingEndpoint: {
      always: [
        {
          guard: 'lacksGameId',
          target: 'closed',
          actions: {
            type: 'violate',
            params: {
              reason: 'the path must be /ws/{ugi} with a game id of 1 to 128 characters',
            },
          },
        },
        { guard: 'isSupportedVersion', target: 'open' },
        {
          target: 'closed',
          actions: {
            type: 'violate',
            params: ({ context }) => ({
              reason: `unsupported version ${context.version}; this server speaks v=${supportedVersions.join(', ')}`,
            }),
          },
        },
      ],
    },
    open: {
      type: 'parallel',
      on: {
        'signalling.error': {
          target: 'closed',
          actions: {
            type: 'violate',
            params: ({ event }) => ({ reason: event.error.message }),
          },
        },
        'signalling.closed': 'closed',
        'session.violation': {
          target: 'closed',
          actions: {
            type: 'violate',
            params: ({ event }) => ({ reason: event.reason }),
          },
        },
        KEEPALIVE: { actions: 'pong' },
        SHUTDOWN: { target: 'closed', actions: 'closeNormally' },
        SHUTDOWN_WRN: { actions: 'reportVanished' },
      },
      states: {
        protocol: {
          initial: 'awaitingInit',
          states: {
            awaitingInit: {
              after: {
                initTimeout: {
                  target: '#session.closed',
                  actions: {
                    type: 'violate',
                    params: { reason: 'INIT was not sent in time' },
                  },
                },
              },
              on: {
                INIT: { target: 'initialized', actions: 'init' },
                '*': otherwise('before INIT'),
              },
            },
            initialized: {
              on: {
                CONFIG_HOST: { target: 'hosting', actions: 'joinLobby' },
                CONFIG_PEER: { target: 'joined', actions: 'joinLobby' },
                '*': otherwise(': expected CONFIG_HOST or CONFIG_PEER'),
              },
            },
            hosting: {
              on: {
                MAKE_OFFER: { actions: 'relay' },
                MAKE_ANSWER: { actions: 'relay' },
                ACK_CHECK: { actions: 'relay' },
                '*': otherwise('is not allowed from a host'),
              },
            },
            joined: {
              on: {
                ACCEPT_OFFER: { actions: 'relay' },
                MAKE_ANSWER: { actions: 'relay' },
                ACK_READY: { actions: 'relay' },
                '*': otherwise('is not allowed from a peer'),
              },
            },
          },
        },
        keepalive: {
          initial: 'idle',
          states: {
            idle: { on: { INIT: 'beating' } },
            beating: {
              after: {
                keepalive: [
                  {
                    guard: 'isUnresponsive',
                    target: '#session.closed',
                    actions: 'dropUnresponsive',
                  },
                  { target: 'beating', reenter: true, actions: 'ping' },
                ],
              },
              on: {
                'session.probe': {
                  guard: 'isQuiet',
                  target: 'beating',
                  reenter: true,
                  actions: 'ping',
                },
              },
            },
          },
        },
      },
    },
    closed: { type: 'final', entry: 'leave' },
  },
});

export type CloudLinkSessionActor = ActorRefFrom<typeof cloudlinkSession>;
