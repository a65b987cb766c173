import { silentLogger } from '../../src/logger.js';
import { hubOptions, protocolServer, rateLimitedError } from '../../src/protocol-server.js';
import type { HostedProtocolServer, HubOptions } from '../../src/protocol-server.js';
import { memoryRouter } from '../../src/router.js';
import type { Transport } from '../../src/transport.js';
import { serverCodec } from './codec.js';
import { generateId, type ServerMessage, type UserProfiles } from './protocol.js';
import { memoryRegistry, type WorkroomsRegistry } from './registry.js';
import { hangUpCalls, workroomsSession, type SearchBudget, type SessionServices } from './server.machine.js';

export interface WorkroomsServerOptions extends HubOptions<ServerMessage> {
  /** Largest frame a client may send, in characters; larger ones get an `error`. @default 65536 */
  maxFrameSize?: number;
  /**
   * How long the calls of a client whose connection dropped wait for it to
   * `register` again before they are hung up for the other side, in ms.
   * @default 30000
   */
  grace?: number;
  /** How long a new connection has to send `register` before it is closed (1008), in ms. @default 30000 */
  registerTimeout?: number;
  /** Most results of one `autocomplete`. @default 20 */
  searchLimit?: number;
  /**
   * Most characters of one `autocomplete` answer: `max(floor, factor × request size)`;
   * results past it are left out and the answer says `truncated: true`.
   * @default { floor: 32768, factor: 16 }
   */
  searchBudget?: Partial<SearchBudget>;
  /**
   * Accepts or refuses each `userprofile` (OAuth is outside the library: check
   * a token here). It must return `true`, synchronously, to accept; anything
   * else, or a throw, refuses, and a refused profile gets `error`
   * `ERR_NOT_PERMITTED`.
   * @default every profile is taken as given
   */
  verifyProfile?: (profiles: UserProfiles, sessionid: string) => boolean;
  /** New call ids. @default generateId: 22 URL-safe characters, crypto-random */
  generateCallId?: () => string;
  /** Sessions, profiles and calls. @default memoryRegistry() */
  registry?: WorkroomsRegistry;
}

export interface WorkroomsServer extends HostedProtocolServer<typeof workroomsSession> {
  /** The running sessions, by connection id (`conn:1`, …), including those away within their grace period. */
  readonly sessions: HostedProtocolServer<typeof workroomsSession>['sessions'];
  /**
   * Open connections; registered sessions (connected or away); sessions away
   * (their connection dropped, their calls waiting); calls.
   */
  stats(): { connections: number; sessions: number; away: number; calls: number };
}

/**
 * Creates a workrooms server: the hub that holds the shared state (the
 * registry of sessions, profiles and calls; the router) and runs one
 * {@link workroomsSession} per connection. Feed it connections with
 * `serve()` (or call `accept` yourself); the path is not looked at.
 *
 * @example
 * ```ts
 * const workrooms = createWorkroomsServer({ grace: 10_000 });
 * serve(webSocketServer({ server: httpServer, path: '/workrooms' }), workrooms);
 * ```
 */
export function createWorkroomsServer(options: WorkroomsServerOptions = {}): WorkroomsServer {
  const registry = options.registry ?? memoryRegistry();
  const encoder = serverCodec();
  const router = options.router ?? memoryRouter<ServerMessage>(encoder);
  const log = options.logger ?? silentLogger;
  const transports = new Map<string, Transport>();
  let next = 0;

  const server = protocolServer({
    protocol: 'workrooms',
    logic: workroomsSession,
    codec: serverCodec({ maxFrameSize: options.maxFrameSize }),
    ...hubOptions(options),
    rateLimited: rateLimitedError(encoder, 'error'),
    cleanup(connection, code, reason, crashed) {
      const sessionid = registry.heldBy(connection);
      if (sessionid !== undefined) {
        // A crash ends the calls for the other sides; on shutdown nobody is told: everyone is going.
        if (crashed) hangUpCalls({ registry, router }, registry.callsOf(sessionid), sessionid, false);
        registry.release(sessionid, connection);
        router.remove(sessionid);
      }
      router.remove(connection);
      transports.get(connection)?.close(code, reason);
      transports.delete(connection);
    },
    open(transport) {
      // Not a valid sessionid (`:` is outside the id alphabet): the two never collide in the router.
      const connection = `conn:${++next}`;
      transports.set(connection, transport);
      transport.on('close', () => transports.delete(connection));
      return { id: connection, input: { connection, services: services(transport) } };
    },
  });

  const services = (transport: Transport): SessionServices => ({
    router,
    registry,
    transport,
    log,
    generateCallId: options.generateCallId ?? generateId,
    evict: (previous) => server.sessions.get(previous)?.send({ type: 'session.takenOver' }),
    verifyProfile: options.verifyProfile,
    grace: options.grace ?? 30_000,
    registerTimeout: options.registerTimeout ?? 30_000,
    searchLimit: options.searchLimit ?? 20,
    searchBudget: { floor: options.searchBudget?.floor ?? 32_768, factor: options.searchBudget?.factor ?? 16 },
  });

  return {
    ...server,
    stats() {
      const { sessions, online, calls } = registry.size;
      return { connections: transports.size, sessions, away: sessions - online, calls };
    },
  };
}
