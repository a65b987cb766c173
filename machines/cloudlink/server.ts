import { createActor, type InspectionEvent, type Observer } from 'xstate';
import type { Clock } from '../../src/clock.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import { memoryRouter, type Router } from '../../src/router.js';
import { feedActor, type ProtocolServer } from '../../src/runtime.js';
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
  const sessions = new Map<string, CloudLinkSessionActor>();
  const codec = serverCodec({ maxFrameSize: options.maxFrameSize });
  const shared: Omit<SessionServices, 'transport'> = {
    router,
    directory,
    log: options.logger ?? silentLogger,
    timing: {
      keepaliveInterval: options.keepaliveInterval ?? 10_000,
      initTimeout: options.initTimeout ?? 10_000,
    },
    probe: (id) => sessions.get(id)?.send({ type: 'session.probe' }),
  };
  // XState treats an explicit `undefined` as "no clock": pass only what was given.
  const actorOptions = {
    ...(options.clock && { clock: options.clock }),
    ...(options.inspect && { inspect: options.inspect }),
  };
  let closed = false;
  /** Stops feeding each session's transport into it. */
  const feeds = new Map<string, () => void>();
  /** Drops what a session that did not end through its `closed` state left behind. */
  const forget = (id: string, code: number, reason: string) => {
    feeds.get(id)?.();
    feeds.delete(id);
    sessions.delete(id);
    directory.leave(id);
    router.close(id, code, reason);
    router.remove(id);
  };

  return {
    sessions,
    accept(transport: Transport, info: ConnectionInfo) {
      if (closed || !transport.isOpen) {
        // A connection that died before we got it must not leave a session behind.
        transport.close(1001, 'server closing');
        return;
      }
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
      const session = createActor(cloudlinkSession, {
        ...actorOptions,
        id,
        input: { id, ugi, version, services: { ...shared, transport } },
      });
      sessions.set(id, session);
      session.subscribe({
        complete: () => {
          feeds.get(id)?.();
          feeds.delete(id);
          sessions.delete(id);
        },
        error: (error) => {
          shared.log.error('session crashed', { session: id, error: String(error) });
          forget(id, 1011, 'server error');
        },
      });
      session.start();
      // Frames go straight from the transport into the session: no actor in between.
      if (session.getSnapshot().status === 'active') feeds.set(id, feedActor(session, transport, codec));
    },
    async close() {
      closed = true;
      for (const [id, session] of [...sessions]) {
        session.stop();
        forget(id, 1001, 'server closing');
      }
    },
    stats: () => ({ connections: router.size, lobbies: directory.lobbies }),
  };
}
