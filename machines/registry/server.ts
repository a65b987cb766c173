import { silentLogger } from '../../src/logger.js';
import { hubOptions, protocolServer, rateLimitedError } from '../../src/protocol-server.js';
import type { HostedProtocolServer, HubOptions } from '../../src/protocol-server.js';
import { memoryRouter } from '../../src/router.js';
import type { Codec } from '../../src/codec.js';
import type { Frame } from '../../src/transport.js';
import { serverCodec } from './codec.js';
import type { ClientMessage, ServerMessage } from './protocol.js';
import { announcer as makeAnnouncer, type FrameCache } from './announce.js';
import { pacer as makePacer, type PacerOptions } from './pacer.js';
import { memoryFileRegistry, type FileRegistry } from './registry.js';
import { registrySession, type SessionServices } from './server.machine.js';

export interface RegistryServerOptions extends HubOptions<ServerMessage> {
  /** Largest frame a client may send, in characters; larger ones get an `Error`. @default 262144 */
  maxFrameSize?: number;
  /** Most entries in one file list. @default 1000 */
  maxFiles?: number;
  /** How long a connection may stay without sending `Connect` before it is closed (1008). @default 30000 */
  connectTimeout?: number;
  /** Registered peers and their file lists. @default memoryFileRegistry() */
  registry?: FileRegistry;
  /** New peer ids. @default crypto.randomUUID */
  generateId?: () => string;
  /**
   * How much of the announcement rounds and `Welcome` lists is written in
   * one turn of the event loop before the rest waits for the next (see
   * `pacer.ts`). @default { sliceSize: 524288, sliceFrames: 256 }
   */
  pacing?: PacerOptions;
}

export interface RegistryServer extends HostedProtocolServer<typeof registrySession> {
  /** Open sessions, registered peers, and files listed in all. */
  stats(): { connections: number; peers: number; files: number };
}

/**
 * A broadcast hands the same message object to every recipient: encode it
 * once, not once per peer (a list of a thousand files to a thousand peers).
 * `remember` files a frame built another way (a `Batch` joined from the
 * frames of its events) as the encoding of its message. Give a router of
 * your own (a Redis one) the server's encoder too.
 */
export function encodeOnce(codec: Codec<ClientMessage, ServerMessage>): FrameCache {
  const frames = new WeakMap<ServerMessage, Frame>();
  return {
    encode(message) {
      let frame = frames.get(message);
      if (frame === undefined) frames.set(message, (frame = codec.encode(message)));
      return frame as string;
    },
    remember: (message, frame) => void frames.set(message, frame),
  };
}

/**
 * Creates a registry server: the hub that holds the shared state (the peer
 * list behind a {@link FileRegistry}, the router) and runs one
 * {@link registrySession} per connection. Feed it connections with
 * `serve()` (or call `accept` yourself); the path is not looked at.
 *
 * @example
 * ```ts
 * const registry = createRegistryServer();
 * serve(webSocketServer({ server: httpServer, path: '/registry' }), registry);
 * ```
 */
export function createRegistryServer(options: RegistryServerOptions = {}): RegistryServer {
  const registry = options.registry ?? memoryFileRegistry();
  const encoder = serverCodec();
  const frames = encodeOnce(encoder);
  const router = options.router ?? memoryRouter<ServerMessage>(frames);
  const generateId = options.generateId ?? (() => globalThis.crypto.randomUUID());
  const connectTimeout = options.connectTimeout ?? 30_000;
  const log = options.logger ?? silentLogger;
  const pacer = makePacer(options.pacing);
  const announcer = makeAnnouncer(router, registry, { clock: options.clock, frames, pacer });
  registry.attach?.(announcer);
  const server = protocolServer({
    protocol: 'registry',
    logic: registrySession,
    codec: serverCodec({ maxFrameSize: options.maxFrameSize, maxFiles: options.maxFiles }),
    router,
    ...hubOptions(options),
    rateLimited: rateLimitedError(encoder, 'Error'),
    cleanup(id, _code, _reason, crashed) {
      // On shutdown nobody is told: everyone is going.
      if (registry.remove(id) && crashed) announcer.announce(id, { type: 'UnregisterPeer', detail: { peer: id } });
    },
    open(transport, _info, host) {
      const id = host.claimId(transport, {
        generate: generateId,
        claim: (candidate) => !host.sessions.has(candidate) && !registry.has(candidate) && !router.has(candidate),
        protocol: 'registry',
      });
      if (id === undefined) return undefined;
      // Everything sent to this connection goes through its outbox, in order behind what the
      // pacer still holds for it.
      const outbox = pacer.outbox(transport);
      const services: SessionServices = { router, registry, announcer, transport: outbox, log, connectTimeout };
      return { id, input: { id, services } };
    },
  });

  return {
    ...server,
    async close() {
      // Sessions ending on the way out announce nothing more.
      announcer.stop();
      pacer.stop();
      await server.close();
      announcer.stop();
      pacer.stop();
    },
    stats() {
      let files = 0;
      for (const [, list] of registry.entries()) files += list.length;
      return { connections: router.size, peers: registry.size, files };
    },
  };
}
