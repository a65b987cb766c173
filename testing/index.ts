/**
 * What signalbox's own tests use, for yours: the memory network, an
 * in-process WebRTC stand-in, a SimulatedClock, and whole CloudLink and
 * filedrop worlds (server and clients) in one process.
 *
 * @packageDocumentation
 */
import { createActor, SimulatedClock, type Actor } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork, type MemoryNetworkInit } from '../adapters/memory/index.js';
import { clientCodec } from '../machines/cloudlink/codec.js';
import type { ClientInput } from '../machines/cloudlink/client.js';
import { cloudlinkHost } from '../machines/cloudlink/host.machine.js';
import { cloudlinkPeer } from '../machines/cloudlink/peer.machine.js';
import {
  createCloudLinkServer,
  type CloudLinkServer,
  type CloudLinkServerOptions,
} from '../machines/cloudlink/server.js';
import { fromTransport, serve } from '../src/runtime.js';
import { memoryRtcFabric, type MemoryRtcFabric } from './memory-rtc.js';

export { SimulatedClock } from 'xstate';
export { createMemoryNetwork, memoryPair } from '../adapters/memory/index.js';
export type { MemoryNetwork, MemoryNetworkInit, MemoryServer, MemoryConnectInit } from '../adapters/memory/index.js';
export { memoryRtcFabric, type MemoryRtcFabric, type MemoryRtcFabricInit } from './memory-rtc.js';
export { createFileDropWorld, type FileDropWorld, type FileDropWorldOptions } from './filedrop.js';
export { createSwarmWorld, type SwarmWorld, type SwarmWorldOptions } from './swarm.js';
export { createRegistryWorld, type RegistryWorld, type RegistryWorldOptions } from './registry.js';
export { createWorkroomsWorld, type WorkroomsWorld, type WorkroomsWorldOptions } from './workrooms.js';

export interface CloudLinkWorldOptions {
  /** Drives every timer of the world. @default new SimulatedClock() */
  clock?: SimulatedClock;
  /** Options of the server (keepalive, frame cap, …). */
  server?: CloudLinkServerOptions;
  /** Latency of the memory network (scheduled on `clock`). @default 0 */
  latency?: MemoryNetworkInit['latency'];
  /** XState inspection observer for the server and every client (e.g. `createBrowserInspector().inspect`). */
  inspect?: CloudLinkServerOptions['inspect'];
}

export interface ClientOptions extends ClientInput {
  /** Game id, the `{ugi}` of `/ws/{ugi}`. @default 'game' */
  ugi?: string;
  /** Value of the `v` query parameter; omitted by default. */
  version?: string;
}

export interface CloudLinkWorld {
  readonly clock: SimulatedClock;
  readonly network: MemoryNetwork;
  readonly server: CloudLinkServer;
  readonly rtc: MemoryRtcFabric;
  /** Starts a host actor connected to the world's server. */
  host(options: ClientOptions): Actor<typeof cloudlinkHost>;
  /** Starts a peer actor connected to the world's server. */
  peer(options: ClientOptions): Actor<typeof cloudlinkPeer>;
  /** Stops every client and the server. */
  close(): Promise<void>;
}

/**
 * A CloudLink server, its clients, the network between them and WebRTC, all
 * in memory and on one SimulatedClock.
 *
 * @example
 * ```ts
 * const world = createCloudLinkWorld();
 * const host = world.host({ lobby: 'L' });
 * const peer = world.peer({ lobby: 'L' });
 * host.on('linked', ({ detail }) => detail.transport.send('hello'));
 * world.clock.increment(10_000); // time passes: keepalives flow
 * await world.close();
 * ```
 */
export function createCloudLinkWorld(options: CloudLinkWorldOptions = {}): CloudLinkWorld {
  const clock = options.clock ?? new SimulatedClock();
  const network = createMemoryNetwork({ latency: options.latency, clock });
  const server = createCloudLinkServer({ clock, inspect: options.inspect, ...options.server });
  const listener = network.listen('cloudlink');
  serve(listener, server);
  const rtc = memoryRtcFabric();
  const actors: Array<{ stop(): void }> = [];

  const signalling = ({ ugi = 'game', version }: ClientOptions) =>
    fromTransport(
      () =>
        network.connect('cloudlink', {
          path: `/ws/${encodeURIComponent(ugi)}`,
          query: version === undefined ? undefined : { v: version },
        }),
      clientCodec(),
    );
  const input = ({ ugi: _ugi, version: _version, ...clientInput }: ClientOptions): ClientInput => clientInput;
  const start = <M extends typeof cloudlinkHost | typeof cloudlinkPeer>(machine: M, opts: ClientOptions): Actor<M> => {
    const logic = (machine as typeof cloudlinkHost).provide({ actors: { signalling: signalling(opts), rtc: rtc.rtc } });
    const actor = createActor(logic, {
      input: input(opts),
      clock,
      ...(options.inspect && { inspect: options.inspect }),
    }).start();
    actors.push(actor);
    return actor as unknown as Actor<M>;
  };

  return {
    clock,
    network,
    server,
    rtc,
    host: (opts) => start(cloudlinkHost, opts),
    peer: (opts) => start(cloudlinkPeer, opts),
    async close() {
      for (const actor of actors) actor.stop();
      await server.close();
      await listener.close();
    },
  };
}
