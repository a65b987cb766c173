import { silentLogger } from '../../src/logger.js';
import { hubOptions, protocolServer, rateLimitedError } from '../../src/protocol-server.js';
import type { HostedProtocolServer, HubOptions } from '../../src/protocol-server.js';
import { memoryRouter } from '../../src/router.js';
import { serverCodec } from './codec.js';
import type { ServerMessage } from './protocol.js';
import { memoryRegistry, type MatchRegistry } from './registry.js';
import { swarmSession, tellMatch, tellPeerGone, type SessionServices } from './server.machine.js';

export interface SwarmServerOptions extends HubOptions<ServerMessage> {
  /** Largest frame a client may send, in characters; larger ones get an `error`. @default 65536 */
  maxFrameSize?: number;
  /** Most requests one connection may have pending or in a match at once. @default 16 */
  maxRequests?: number;
  /** How long a new connection has to send `i_am` before it is closed, in ms. @default 30000 */
  introTimeout?: number;
  /**
   * How long a match may take from the pairing to the forwarded answer, in
   * ms; then both ends get `error` with `ERR_TIMEOUT` and the match is gone.
   * @default 30000
   */
  matchTimeout?: number;
  /** Pending requests and matches in progress. @default memoryRegistry() */
  registry?: MatchRegistry;
  /** Session ids (internal: clients never see them). @default crypto.randomUUID */
  generateId?: () => string;
}

export interface SwarmServer extends HostedProtocolServer<typeof swarmSession> {
  /** Open connections, requests waiting for a partner, matches whose answer is still due. */
  stats(): { connections: number; pending: number; matches: number };
}

/**
 * Creates a swarm matchmaking server: the hub that holds the shared state
 * (the {@link MatchRegistry}, the router) and runs one {@link swarmSession}
 * per connection. Feed it connections with `serve()` (or call `accept`
 * yourself); the path is not looked at.
 *
 * @example
 * ```ts
 * const swarm = createSwarmServer();
 * serve(webSocketServer({ server: httpServer, path: '/swarm' }), swarm);
 * ```
 */
export function createSwarmServer(options: SwarmServerOptions = {}): SwarmServer {
  const registry = options.registry ?? memoryRegistry();
  const encoder = serverCodec();
  const router = options.router ?? memoryRouter<ServerMessage>(encoder);
  const generateId = options.generateId ?? (() => globalThis.crypto.randomUUID());
  const log = options.logger ?? silentLogger;
  const maxRequests = options.maxRequests ?? 16;
  const introTimeout = options.introTimeout ?? 30_000;
  const matchTimeout = options.matchTimeout ?? 30_000;
  const server = protocolServer({
    protocol: 'swarm',
    logic: swarmSession,
    codec: serverCodec({ maxFrameSize: options.maxFrameSize }),
    router,
    ...hubOptions(options),
    rateLimited: rateLimitedError(encoder, 'error'),
    cleanup(id, _code, _reason, crashed) {
      // On shutdown nobody is told: everyone is going.
      const others = registry.remove(id);
      if (crashed) tellPeerGone(router, others);
    },
    open(transport, _info, host) {
      const id = host.claimId(transport, {
        generate: generateId,
        claim: (candidate) => !host.sessions.has(candidate) && !router.has(candidate),
        protocol: 'swarm',
      });
      if (id === undefined) return undefined;
      const services: SessionServices = { router, registry, transport, log, maxRequests, introTimeout, matchTimeout };
      return { id, input: { id, services } };
    },
  });

  // A match a shared registry decided after `request` returned: both ends are told here, and its
  // timer runs as if the session whose request made it had started it (`match.expired` after
  // `matchTimeout`; if that session left first, its `leave` ended the match).
  const clock = options.clock ?? { setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms) };
  registry.attach?.((match) => {
    tellMatch(router, match);
    clock.setTimeout(
      () => server.sessions.get(match.bob.session)?.send({ type: 'match.expired', id: match.id }),
      matchTimeout,
    );
  });

  return {
    ...server,
    stats: () => ({ connections: router.size, pending: registry.pending, matches: registry.matches }),
  };
}
