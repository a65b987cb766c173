import { silentLogger } from '../../src/logger.js';
import { hubOptions, protocolServer } from '../../src/protocol-server.js';
import type { HostedProtocolServer, HubOptions } from '../../src/protocol-server.js';
import { memoryRouter } from '../../src/router.js';
import { serverCodec } from './codec.js';
import { memoryDirectory, type LobbyDirectory } from './directory.js';
import { VIOLATION_CLOSE_CODE, type ClientMessage, type ServerMessage } from './protocol.js';
import { cloudlinkSession, relayShortcut, type SessionServices, type SessionTiming } from './server.machine.js';

export interface CloudLinkServerOptions extends Partial<SessionTiming>, HubOptions<ServerMessage> {
  /** Largest frame a client may send, in characters; larger ones get VIOLATION. @default 65536 */
  maxFrameSize?: number;
  /** Lobby membership and handshake progress (a shared one: `redisLobbyDirectory`). @default memoryDirectory() */
  directory?: LobbyDirectory;
  /** New peer ids. @default crypto.randomUUID */
  generateId?: () => string;
}

export interface CloudLinkServer extends HostedProtocolServer<typeof cloudlinkSession> {
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
  const encoder = serverCodec();
  const router = options.router ?? memoryRouter<ServerMessage>(encoder);
  directory.attach?.((id, message) => router.send(id, message));
  const generateId = options.generateId ?? (() => globalThis.crypto.randomUUID());
  const log = options.logger ?? silentLogger;
  const shared: Omit<SessionServices, 'transport'> = {
    router,
    directory,
    log,
    timing: {
      keepaliveInterval: options.keepaliveInterval ?? 10_000,
      initTimeout: options.initTimeout ?? 10_000,
    },
    probe: (id) => server.sessions.get(id)?.send({ type: 'session.probe' }),
  };
  const server = protocolServer({
    protocol: 'cloudlink',
    logic: cloudlinkSession,
    codec: serverCodec({ maxFrameSize: options.maxFrameSize }),
    shortcut: (session, message) => relayShortcut(session, message as ClientMessage),
    router,
    ...hubOptions(options),
    rateLimited(id, transport) {
      // CloudLink's one answer to a client that breaks the rules: VIOLATION, then a close.
      transport.send(encoder.encode({ type: 'VIOLATION', detail: { payload: 'rate limited' } }));
      transport.close(VIOLATION_CLOSE_CODE, 'rate limited');
      log.warn('violation', { session: id, reason: 'rate limited' });
    },
    cleanup: (id) => directory.leave(id),
    open(transport, info) {
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
      return { id, input: { id, ugi, version, services: { ...shared, transport } } };
    },
  });

  return {
    ...server,
    stats: () => ({ connections: router.size, lobbies: directory.lobbies }),
  };
}
