import {
  createActor,
  enqueueActions,
  setup,
  stopChild,
  type ActorRefFrom,
  type InspectionEvent,
  type Observer,
} from 'xstate';
import type { Clock } from '../../src/clock.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import { memoryRouter, type Router } from '../../src/router.js';
import { fromTransport, type ProtocolServer } from '../../src/runtime.js';
import type { ConnectionInfo, Transport } from '../../src/transport.js';
import { serverCodec } from './codec.js';
import { memoryDirectory, type LobbyDirectory } from './directory.js';
import type { ServerMessage } from './protocol.js';
import { cloudlinkSession, type SessionServices, type SessionTiming } from './server.machine.js';

export interface HubInput {
  services: Omit<SessionServices, 'transport'>;
}

export type HubEvent =
  { type: 'hub.connect'; id: string; ugi: string; version: number; transport: Transport } | { type: 'hub.stop' };

/**
 * The CloudLink hub: spawns one {@link cloudlinkSession} per connection
 * (with the session id as its system id, so sessions can reach each other)
 * and stops them all when it stops.
 */
export const cloudlinkHub = setup({
  types: { context: {} as HubInput, events: {} as HubEvent, input: {} as HubInput },
  actors: { session: cloudlinkSession },
}).createMachine({
  id: 'cloudlinkHub',
  context: ({ input }) => input,
  initial: 'running',
  states: {
    running: {
      on: {
        'hub.connect': {
          actions: enqueueActions(({ context, event, enqueue }) => {
            const { id, ugi, version, transport } = event;
            enqueue.spawnChild('session', {
              id,
              systemId: id,
              input: { id, ugi, version, services: { ...context.services, transport } },
            });
          }),
        },
        // A finished session leaves the hub's children.
        'xstate.done.actor.*': {
          actions: stopChild(({ event }) => (event as unknown as { actorId: string }).actorId),
        },
        'hub.stop': 'stopped',
      },
    },
    stopped: { type: 'final' },
  },
});

export interface CloudLinkServerOptions extends Partial<SessionTiming> {
  /** Largest frame a client may send, in characters; larger ones get VIOLATION. @default 65536 */
  maxFrameSize?: number;
  /** Delivery to sessions by id. @default memoryRouter */
  router?: Router<ServerMessage>;
  /** Lobby membership and handshake progress. @default memoryDirectory() */
  directory?: LobbyDirectory;
  /** New peer ids. @default crypto.randomUUID */
  generateId?: () => string;
  /** Timer source for keepalives and timeouts (pass XState's `SimulatedClock` in tests). */
  clock?: Clock;
  /** XState inspection observer, e.g. from `@statelyai/inspect`. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** @default silentLogger */
  logger?: Logger;
}

export interface CloudLinkServer extends ProtocolServer {
  /** The running hub actor (its children are the sessions). */
  readonly hub: ActorRefFrom<typeof cloudlinkHub>;
  /** Open sessions and non-empty lobbies. */
  stats(): { connections: number; lobbies: number };
}

const PATH = /^\/ws\/([^/]*)\/?$/;

/**
 * Creates a CloudLink Omega server. Feed it connections with `serve()` (or
 * call `accept` yourself); each is expected at `/ws/{ugi}?v={version}`.
 *
 * @example
 * ```ts
 * const cloudlink = createCloudLinkServer({ keepaliveInterval: 10_000 });
 * serve(webSocketServer({ server: httpServer, path: (p) => p.startsWith('/ws/') }), cloudlink);
 * ```
 */
export function createCloudLinkServer(options: CloudLinkServerOptions = {}): CloudLinkServer {
  const directory = options.directory ?? memoryDirectory();
  const router = options.router ?? memoryRouter<ServerMessage>(serverCodec());
  const generateId = options.generateId ?? (() => globalThis.crypto.randomUUID());
  const logic = cloudlinkHub.provide({
    actors: {
      session: cloudlinkSession.provide({
        actors: {
          signalling: fromTransport(
            (input: { transport: Transport }) => input.transport,
            serverCodec({ maxFrameSize: options.maxFrameSize }),
          ),
        },
      }),
    },
  });
  const hub = createActor(logic, {
    input: {
      services: {
        router,
        directory,
        log: options.logger ?? silentLogger,
        timing: {
          keepaliveInterval: options.keepaliveInterval ?? 10_000,
          initTimeout: options.initTimeout ?? 10_000,
        },
      },
    },
    // XState treats an explicit `undefined` as "no clock": pass only what was given.
    ...(options.clock && { clock: options.clock }),
    ...(options.inspect && { inspect: options.inspect }),
  }).start();

  return {
    hub,
    accept(transport: Transport, info: ConnectionInfo) {
      const match = PATH.exec(info.path);
      let ugi = '';
      try {
        ugi = match ? decodeURIComponent(match[1]!) : '';
      } catch {
        // A malformed escape leaves the game id empty: the session answers VIOLATION.
      }
      const v = info.query.get('v');
      const version = v === null || v === '' ? 0 : /^\d+$/.test(v) ? Number(v) : Number.NaN;
      hub.send({ type: 'hub.connect', id: generateId(), ugi, version, transport });
    },
    async close() {
      hub.send({ type: 'hub.stop' });
    },
    stats: () => ({ connections: router.size, lobbies: directory.lobbies }),
  };
}
