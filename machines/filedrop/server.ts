import { silentLogger } from '../../src/logger.js';
import { hubOptions, protocolServer, rateLimitedError } from '../../src/protocol-server.js';
import type { HostedProtocolServer, HubOptions } from '../../src/protocol-server.js';
import { memoryRouter } from '../../src/router.js';
import { serverCodec } from './codec.js';
import { guessLimiter, type UnknownCodeLimits } from './guesses.js';
import { generatePeerId, type ServerMessage } from './protocol.js';
import { memoryRegistry, type PeerRegistry } from './registry.js';
import { filedropSession, type SessionServices } from './server.machine.js';

export interface FileDropServerOptions extends HubOptions<ServerMessage> {
  /** Largest frame a client may send, in characters; larger ones get an `error`. @default 65536 */
  maxFrameSize?: number;
  /**
   * How many codes nobody holds (`peer not exists` answers) one client
   * address may name, shared by all its connections; past it a message
   * naming an unknown code is answered `error` `ERR_RATE_LIMITED` and the
   * connection is closed (1008). `false` turns the limit off.
   * @default { perMinute: 30, burst: 30, maxAddresses: 100000 }
   */
  unknownCodes?: UnknownCodeLimits | false;
  /** Connected peers and who asked whom. @default memoryRegistry() */
  registry?: PeerRegistry;
  /**
   * New peer ids (any string: a client naming a string nobody holds gets
   * `peer not exists`, whatever its form).
   * @default generatePeerId: 8 characters without look-alikes, crypto-random
   */
  generateId?: () => string;
}

export interface FileDropServer extends HostedProtocolServer<typeof filedropSession> {
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
  const encoder = serverCodec();
  const router = options.router ?? memoryRouter<ServerMessage>(encoder);
  const generateId = options.generateId ?? generatePeerId;
  const log = options.logger ?? silentLogger;
  const guesses = options.unknownCodes === false ? undefined : guessLimiter(options.unknownCodes, options.clock);
  const server = protocolServer({
    protocol: 'filedrop',
    logic: filedropSession,
    codec: serverCodec({ maxFrameSize: options.maxFrameSize }),
    router,
    ...hubOptions(options),
    rateLimited: rateLimitedError(encoder, 'error'),
    cleanup(id, _code, _reason, crashed) {
      // On shutdown nobody is told: everyone is going.
      for (const peer of registry.remove(id)) {
        if (crashed) router.send(peer, { type: 'peer not exists', detail: { peer: id } });
      }
    },
    open(transport, info, host) {
      const id = host.claimId(transport, {
        generate: generateId,
        claim: (candidate) => registry.add(candidate),
        protocol: 'filedrop',
      });
      if (id === undefined) return undefined;
      // The address alone: a closure over `info` would keep its headers for the whole session.
      const remote = info.remoteAddress;
      const services: SessionServices = {
        router,
        registry,
        transport,
        log,
        guess: guesses && (() => guesses(remote)),
      };
      return { id, input: { id, services } };
    },
  });

  return {
    ...server,
    stats: () => ({ connections: router.size, pairs: registry.pairs }),
  };
}
