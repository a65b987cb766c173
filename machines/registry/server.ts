import type { InspectionEvent, Observer } from 'xstate';
import type { Clock } from '../../src/clock.js';
import { silentLogger, type Logger } from '../../src/logger.js';
import { memoryRouter, type Router } from '../../src/router.js';
import type { ProtocolServer } from '../../src/runtime.js';
import { sessionHost } from '../../src/session-host.js';
import type { Codec } from '../../src/codec.js';
import type { Message } from '../../src/message.js';
import type { ConnectionInfo, Frame, Transport } from '../../src/transport.js';
import { serverCodec } from './codec.js';
import type { ClientMessage, ServerMessage } from './protocol.js';
import { memoryFileRegistry, type FileRegistry } from './registry.js';
import { registrySession, type RegistrySessionActor, type SessionServices } from './server.machine.js';

export interface RegistryServerOptions {
  /** Largest frame a client may send, in characters; larger ones get an `Error`. @default 262144 */
  maxFrameSize?: number;
  /** Most entries in one file list. @default 1000 */
  maxFiles?: number;
  /** How long a connection may stay without sending `Connect` before it is closed (1008). @default 30000 */
  connectTimeout?: number;
  /** Delivery to sessions by id. @default memoryRouter */
  router?: Router<ServerMessage>;
  /** Registered peers and their file lists. @default memoryFileRegistry() */
  registry?: FileRegistry;
  /** New peer ids. @default crypto.randomUUID */
  generateId?: () => string;
  /** Timer source for the sessions' `connectTimeout` (a SimulatedClock in tests). */
  clock?: Clock;
  /** XState inspection observer; every session reports to it, named by its peer id. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** @default silentLogger */
  logger?: Logger;
}

export interface RegistryServer extends ProtocolServer {
  /** The running sessions, by peer id (registered or still waiting for `Connect`). */
  readonly sessions: ReadonlyMap<string, RegistrySessionActor>;
  /** Open sessions, registered peers, and files listed in all. */
  stats(): { connections: number; peers: number; files: number };
}

/**
 * A broadcast hands the same message object to every recipient: encode it
 * once, not once per peer (a list of a thousand files to a thousand peers).
 */
function encodeOnce(codec: Codec<ClientMessage, ServerMessage>): Pick<Codec<Message, ServerMessage>, 'encode'> {
  const frames = new WeakMap<ServerMessage, Frame>();
  return {
    encode(message) {
      let frame = frames.get(message);
      if (frame === undefined) frames.set(message, (frame = codec.encode(message)));
      return frame;
    },
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
  const router = options.router ?? memoryRouter<ServerMessage>(encodeOnce(serverCodec()));
  const generateId = options.generateId ?? (() => globalThis.crypto.randomUUID());
  const codec = serverCodec({ maxFrameSize: options.maxFrameSize, maxFiles: options.maxFiles });
  const connectTimeout = options.connectTimeout ?? 30_000;
  const log = options.logger ?? silentLogger;
  const host = sessionHost({
    logic: registrySession,
    codec,
    clock: options.clock,
    inspect: options.inspect,
    log,
    cleanup(id, code, reason, crashed) {
      // On shutdown nobody is told: everyone is going.
      if (registry.remove(id) && crashed) {
        for (const [peer] of registry.entries()) router.send(peer, { type: 'UnregisterPeer', detail: { peer: id } });
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
        claim: (candidate) => !host.sessions.has(candidate) && !registry.has(candidate) && !router.has(candidate),
        protocol: 'registry',
      });
      if (id === undefined) return;
      const services: SessionServices = { router, registry, transport, log, connectTimeout };
      host.start(id, transport, { id, services });
    },
    async close() {
      host.close();
    },
    stats() {
      let files = 0;
      for (const [, list] of registry.entries()) files += list.length;
      return { connections: router.size, peers: registry.size, files };
    },
  };
}
