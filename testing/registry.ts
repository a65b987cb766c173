import { createActor, SimulatedClock, type Actor } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork, type MemoryNetworkInit } from '../adapters/memory/index.js';
import { registryClient, type RegistryClientInput } from '../machines/registry/client.machine.js';
import { clientCodec } from '../machines/registry/codec.js';
import { createRegistryServer, type RegistryServer, type RegistryServerOptions } from '../machines/registry/server.js';
import { fromTransport, serve } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import { memoryRtcFabric, type MemoryRtcFabric } from './memory-rtc.js';

export interface RegistryWorldOptions {
  /** Drives every timer of the world. @default new SimulatedClock() */
  clock?: SimulatedClock;
  /** Options of the server (frame cap, list size, connect timeout, …). */
  server?: RegistryServerOptions;
  /** Latency of the memory network (scheduled on `clock`). @default 0 */
  latency?: MemoryNetworkInit['latency'];
  /** XState inspection observer for the server and every client. */
  inspect?: RegistryServerOptions['inspect'];
}

export interface RegistryWorld {
  readonly clock: SimulatedClock;
  readonly network: MemoryNetwork;
  readonly server: RegistryServer;
  /** In-memory WebRTC, in trickle mode. */
  readonly rtc: MemoryRtcFabric;
  /** Starts a client connected to the world's server. */
  client(input: RegistryClientInput): Actor<typeof registryClient>;
  /** The client's signalling connection, once open. */
  connectionOf(client: Actor<typeof registryClient>): Transport | undefined;
  /** Stops every client and the server. */
  close(): Promise<void>;
}

/**
 * A registry server, its clients, the network between them and WebRTC
 * (trickle ICE), all in memory and on one SimulatedClock.
 *
 * @example
 * ```ts
 * const world = createRegistryWorld();
 * const a = world.client({ provider: memoryProvider({ 'a.txt': bytes }) });
 * const b = world.client({ provider: memoryProvider({}) });
 * const { id } = (await waitFor(a, (s) => s.context.id !== undefined)).context;
 * b.send({ type: 'requestFile', peer: id!, path: 'a.txt', sink: memorySink() });
 * await world.close();
 * ```
 */
export function createRegistryWorld(options: RegistryWorldOptions = {}): RegistryWorld {
  const clock = options.clock ?? new SimulatedClock();
  const network = createMemoryNetwork({ latency: options.latency, clock });
  const server = createRegistryServer({
    clock,
    ...options.server,
    ...(options.inspect && { inspect: options.inspect }),
  });
  const listener = network.listen('registry');
  serve(listener, server);
  const rtc = memoryRtcFabric({ trickle: true });
  const actors: Array<Actor<typeof registryClient>> = [];
  const connections = new WeakMap<object, Transport>();

  return {
    clock,
    network,
    server,
    rtc,
    client(input) {
      // Opened on start, once `actor` exists.
      const signalling = fromTransport(async () => {
        const transport = await network.connect('registry', { path: '/registry' });
        connections.set(actor, transport);
        return transport;
      }, clientCodec());
      const actor = createActor(registryClient.provide({ actors: { signalling, rtc: rtc.rtc } }), {
        input,
        clock,
        ...(options.inspect && { inspect: options.inspect }),
      });
      actors.push(actor);
      return actor.start();
    },
    connectionOf: (client) => connections.get(client),
    async close() {
      for (const actor of actors) actor.stop();
      await server.close();
      await listener.close();
    },
  };
}
