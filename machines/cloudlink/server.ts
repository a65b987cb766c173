import type { InspectionEvent, Observer } from 'xstate';
import type { Clock } from '../../src/clock.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import { memoryRouter, type Router } from '../../src/router.js';
import type { ProtocolServer } from '../../src/runtime.js';
import { sessionHost } from '../../src/session-host.js';
import type { ConnectionInfo, Transport } from '../../src/transport.js';
import { serverCodec } from './codec.js';
import { memoryDirectory, type LobbyDirectory } from './directory.js';
import type { ServerMessage } from './protocol.js';
import {
  cloudlinkSession,
  type CloudLinkSessionActor,
  type SessionServices,
  type SessionTiming,
} from './server.machine.js';

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
  /** XState inspection observer, e.g. from `@statelyai/inspect`; every session reports to it. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** @default silentLogger */
  logger?: Logger;
}

export interface CloudLinkServer extends ProtocolServer {
  /** The running sessions, by peer id. */
  readonly sessions: ReadonlyMap<string, CloudLinkSessionActor>;
  /** Open sessions and non-empty lobbies. */
  stats(): { connections: number; lobbies: number };
}

const PATH = /^\/ws\/([^/]*)\/?$/;

/**
 * Creates a CloudLink Omega server: the hub that holds the shared registries
 * (the lobby directory, the router) and runs one {@link cloudlinkSession}
 * actor per connection. Feed it connections with `serve()` (or call `accept`
 * yourself); each is expected at `/ws/{ugi}?v={version}`.
 *
 * The hub is plain code rather than a parent machine: sessions spawned as
 * children of one actor made every connect and disconnect cost O(sessions)
 * inside XState (copying the children record, scanning every timer).
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
  const codec = serverCodec({ maxFrameSize: options.maxFrameSize });
  const log = options.logger ?? silentLogger;
  const host = sessionHost({
    logic: cloudlinkSession,
    codec,
    clock: options.clock,
    inspect: options.inspect,
    log,
    cleanup(id, code, reason) {
      directory.leave(id);
      router.close(id, code, reason);
      router.remove(id);
    },
  });
  const shared: Omit<SessionServices, 'transport'> = {
    router,
    directory,
    log,
    timing: {
      keepaliveInterval: options.keepaliveInterval ?? 10_000,
      initTimeout: options.initTimeout ?? 10_000,
    },
    probe: (id) => host.sessions.get(id)?.send({ type: 'session.probe' }),
  };

  return {
    sessions: host.sessions,
    accept(transport: Transport, info: ConnectionInfo) {
      if (!host.admits(transport)) return;
      const match = PATH.exec(info.path);
      let ugi = '';
      try {
        ugi = match ? decodeURIComponent(match[1]!) : '';
      } catch {
        // A malformed escape leaves the game id empty: the session answers VIOLATION.
      }
      const v = info.query.get('v');
      const version = v === null || v === '' ? 0 : /^\d+$/.test(v) ? Number(v) : Number.NaN;
      const id = generateId();
      host.start(id, transport, { id, ugi, version, services: { ...shared, transport } });
    },
    async close() {
      host.close();
    },
    stats: () => ({ connections: router.size, lobbies: directory.lobbies }),
  };
}
