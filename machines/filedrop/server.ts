import type { InspectionEvent, Observer } from 'xstate';
import type { Clock } from '../../src/clock.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import { memoryRouter, type Router } from '../../src/router.js';
import type { ProtocolServer } from '../../src/runtime.js';
import { sessionHost } from '../../src/session-host.js';
import type { ConnectionInfo, Transport } from '../../src/transport.js';
import { serverCodec } from './codec.js';
import { generatePeerId, isPeerId, type ServerMessage } from './protocol.js';
import { memoryRegistry, type PeerRegistry } from './registry.js';
import { filedropSession, type FileDropSessionActor, type SessionServices } from './server.machine.js';

export interface FileDropServerOptions {
  /** Largest frame a client may send, in characters; larger ones get an `error`. @default 65536 */
  maxFrameSize?: number;
  /** Delivery to sessions by id. @default memoryRouter */
  router?: Router<ServerMessage>;
  /** Connected peers and who asked whom. @default memoryRegistry() */
  registry?: PeerRegistry;
  /**
   * New peer ids. Pair a different format with `isPeerId`.
   * @default generatePeerId: 8 characters without look-alikes, crypto-random
   */
  generateId?: () => string;
  /** What a well-formed peer id is; anything else gets `invalid peer id`. @default isPeerId */
  isPeerId?: (value: unknown) => boolean;
  /** Timer source (sessions have no timers today; kept for symmetry with the other servers). */
  clock?: Clock;
  /** XState inspection observer; every session reports to it, named by its peer id. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** @default silentLogger */
  logger?: Logger;
}

export interface FileDropServer extends ProtocolServer {
  /** The running sessions, by peer id. */
  readonly sessions: ReadonlyMap<string, FileDropSessionActor>;
  /** Open sessions, and receiver → sender links (requests) between connected peers. */
  stats(): { connections: number; pairs: number };
}

/**
 * Creates a filedrop server: the hub that holds the shared state (the peer
 * registry, the router) and runs one {@link filedropSession} per connection.
 * Feed it connections with `serve()` (or call `accept` yourself); the path
 * is not looked at.
 *
 * @example
 * ```ts
 * const filedrop = createFileDropServer();
 * serve(webSocketServer({ server: httpServer, path: '/filedrop' }), filedrop);
 * ```
 */
export function createFileDropServer(options: FileDropServerOptions = {}): FileDropServer {
  const registry = options.registry ?? memoryRegistry();
  const router = options.router ?? memoryRouter<ServerMessage>(serverCodec());
  const generateId = options.generateId ?? generatePeerId;
  const codec = serverCodec({ maxFrameSize: options.maxFrameSize, isPeerId: options.isPeerId ?? isPeerId });
  const log = options.logger ?? silentLogger;
  const host = sessionHost({
    logic: filedropSession,
    codec,
    clock: options.clock,
    inspect: options.inspect,
    log,
    cleanup(id, code, reason, crashed) {
      // On shutdown nobody is told: everyone is going.
      for (const peer of registry.remove(id)) {
        if (crashed) router.send(peer, { type: 'peer not exists', detail: { peer: id } });
      }
      router.close(id, code, reason);
      router.remove(id);
    },
  });

  return {
    sessions: host.sessions,
    accept(transport: Transport, _info: ConnectionInfo) {
      if (!host.admits(transport)) return;
      const id = host.claimId(transport, {
        generate: generateId,
        claim: (candidate) => registry.add(candidate),
        protocol: 'filedrop',
      });
      if (id === undefined) return;
      const services: SessionServices = { router, registry, transport, log };
      host.start(id, transport, { id, services });
    },
    async close() {
      host.close();
    },
    stats: () => ({ connections: router.size, pairs: registry.pairs }),
  };
}
