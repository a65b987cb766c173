import { setup, type ActorRefFrom } from 'xstate';
import type { SessionContextOf, SessionInputOf, SessionServicesBase } from '../../src/protocol-server.js';
import type { SignallingEvent } from '../../src/runtime.js';
import type { Announcer } from './announce.js';
import { copyFiles, RegistryDecodeError } from './codec.js';
import type { ClientMessage, FileEntry, RelayMessage, ServerErrorCode, ServerMessage } from './protocol.js';
import type { FileRegistry } from './registry.js';

/** What a session needs from its server: shared state, its own connection, its timing. */
export interface SessionServices extends SessionServicesBase<ServerMessage> {
  readonly registry: FileRegistry;
  /** Sends announcements to the other peers, coalesced (see {@link Announcer}). */
  readonly announcer: Announcer;
  /** How long a connection may stay without sending `Connect`, in ms. */
  readonly connectTimeout: number;
}

/** `id`: the peer id the server allocated for this connection. */
export type SessionInput = SessionInputOf<SessionServices>;

export type SessionContext = SessionContextOf<SessionServices>;

export type SessionEvent = ClientMessage | SignallingEvent;

/** An `Error` message back to this client. */
function errorFor(code: ServerErrorCode, message: string, event?: string): ServerMessage {
  return { type: 'Error', detail: event === undefined ? { code, message } : { code, message, event } };
}

/**
 * Where a relay goes and what is delivered, or the `Error` this client gets
 * instead: the recipient must be another registered peer, and it receives
 * the message with `peer` set to the sender.
 */
export function planRelay(context: SessionContext, event: RelayMessage): { to: string; message: ServerMessage } {
  const self = context.id;
  const to = event.detail.peer;
  if (to === self) {
    return {
      to: self,
      message: errorFor('ERR_NOT_PERMITTED', `${event.type}: you cannot send to yourself`, event.type),
    };
  }
  if (!context.services.registry.has(to)) {
    return { to: self, message: errorFor('ERR_PEER_GONE', `${event.type}: no peer ${to} is registered`, event.type) };
  }
  return { to, message: { type: event.type, detail: { ...event.detail, peer: self } } as ServerMessage };
}

const refuse = (code: ServerErrorCode, message: (type: string) => string) => ({
  type: 'reply' as const,
  params: ({ event }: { event: SessionEvent }) => errorFor(code, message(event.type), event.type),
});

/**
 * The registry session's types and named implementations (actions take
 * their event fields as typed `params`), from which {@link registrySession}
 * is made.
 */
export const registrySessionSetup = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionEvent,
    input: {} as SessionInput,
  },
  delays: {
    connectTimeout: ({ context }) => context.services.connectTimeout,
  },
  actions: {
    addRoute: ({ context }) => context.services.router.add(context.id, context.services.transport),
    reply: ({ context }, message: ServerMessage) => void context.services.router.send(context.id, message),
    register: ({ context }, { files: given, batch }: { files: FileEntry[]; batch?: true }) => {
      const { registry, announcer } = context.services;
      const files = copyFiles(given);
      announcer.welcome(context.id, batch === true);
      registry.add(context.id, files);
      announcer.announce(context.id, announcer.registerPeer(context.id, files));
      announcer.joined(context.id);
    },
    update: ({ context }, { files: given }: { files: FileEntry[] }) => {
      const files = copyFiles(given);
      context.services.registry.update(context.id, files);
      context.services.announcer.announce(context.id, { type: 'UpdatePeer', detail: { peer: context.id, files } });
    },
    relay: ({ context }, event: RelayMessage) => {
      const { to, message } = planRelay(context, event);
      // What either end was told about the other comes before the relay.
      context.services.announcer.flush(context.id);
      if (to !== context.id) context.services.announcer.flush(to);
      if (context.services.router.send(to, message) || to === context.id) return;
      // Registered but not reachable (closing, or on a process that dropped it).
      context.services.router.send(
        context.id,
        errorFor('ERR_PEER_GONE', `${event.type}: peer ${to} is not reachable`, event.type),
      );
    },
    expire: ({ context }) => {
      const { router, transport } = context.services;
      router.send(context.id, errorFor('ERR_TIMEOUT', 'Connect was not sent in time'));
      transport.close(1008, 'Connect was not sent in time');
    },
    leave: ({ context }) => {
      const { router, registry, announcer, transport, log } = context.services;
      if (registry.remove(context.id))
        announcer.announce(context.id, { type: 'UnregisterPeer', detail: { peer: context.id } });
      router.remove(context.id);
      transport.close(1000, 'session ended');
      log.info('session closed', { protocol: 'registry', session: context.id });
    },
  },
});

/**
 * One client's connection to a registry server. It waits for `Connect` (the
 * client's file list), registers the client under its server-assigned id,
 * answers `Welcome` and a `RegisterPeer` for each peer already there, and
 * announces the newcomer to them (`RegisterPeer`). `UpdateFiles` is
 * announced as `UpdatePeer`; `Offer` / `Answer` / `Candidate` of a file
 * connection go to the peer they name. `Disconnect`, or the socket closing
 * without it, unregisters the client and tells every other peer
 * (`UnregisterPeer`). Whatever it refuses is answered with an `Error`; the
 * connection stays open, except when `Connect` does not come in time.
 */
export const registrySession = registrySessionSetup.createMachine({
  id: 'registrySession',
  context: ({ input }) => ({ id: input.id, services: input.services }),
  entry: 'addRoute',
  initial: 'open',
  states: {
    open: {
      on: {
        'signalling.error': {
          actions: {
            type: 'reply',
            params: ({ event: { error } }) =>
              errorFor(
                error.code as ServerErrorCode,
                error.message,
                error instanceof RegistryDecodeError ? error.event : undefined,
              ),
          },
        },
        'signalling.closed': 'closed',
        Disconnect: 'closed',
      },
      initial: 'awaitingConnect',
      states: {
        awaitingConnect: {
          after: { connectTimeout: { target: '#registrySession.closed', actions: 'expire' } },
          on: {
            Connect: { target: 'registered', actions: { type: 'register', params: ({ event }) => event.detail } },
            UpdateFiles: { actions: refuse('ERR_NOT_PERMITTED', (type) => `${type} before Connect`) },
            Offer: { actions: refuse('ERR_NOT_PERMITTED', (type) => `${type} before Connect`) },
            Answer: { actions: refuse('ERR_NOT_PERMITTED', (type) => `${type} before Connect`) },
            Candidate: { actions: refuse('ERR_NOT_PERMITTED', (type) => `${type} before Connect`) },
          },
        },
        registered: {
          on: {
            Connect: { actions: refuse('ERR_NOT_PERMITTED', () => 'Connect: already connected; send UpdateFiles') },
            UpdateFiles: { actions: { type: 'update', params: ({ event }) => event.detail } },
            Offer: { actions: { type: 'relay', params: ({ event }) => event } },
            Answer: { actions: { type: 'relay', params: ({ event }) => event } },
            Candidate: { actions: { type: 'relay', params: ({ event }) => event } },
          },
        },
      },
    },
    closed: { type: 'final', entry: 'leave' },
  },
});

export type RegistrySessionActor = ActorRefFrom<typeof registrySession>;
