import { SimulatedClock } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork, type MemoryNetworkInit } from '../adapters/memory/index.js';
import { createSwarmPeer, type SwarmPeer, type SwarmPeerOptions } from '../machines/swarm/client.js';
import { createSwarmServer, type SwarmServer, type SwarmServerOptions } from '../machines/swarm/server.js';
import { serve } from '../src/runtime.js';
import { memoryRtcFabric, type MemoryRtcFabric } from './memory-rtc.js';

export interface SwarmWorldOptions {
  /** Drives every timer of the world. @default new SimulatedClock() */
  clock?: SimulatedClock;
  /** Options of the server (frame cap, requests per connection, …). */
  server?: SwarmServerOptions;
  /** Latency of the memory network (scheduled on `clock`). @default 0 */
  latency?: MemoryNetworkInit['latency'];
  /** XState inspection observer for the server and every peer. */
  inspect?: SwarmServerOptions['inspect'];
}

export interface SwarmWorld {
  readonly clock: SimulatedClock;
  readonly network: MemoryNetwork;
  readonly server: SwarmServer;
  /** In-memory WebRTC (non-trickle, as swarm uses it). */
  readonly rtc: MemoryRtcFabric;
  /** Starts a peer connected to the world's server (its options as `createSwarmPeer` takes them). */
  peer(options?: Partial<Omit<SwarmPeerOptions, 'signalling' | 'rtc'>>): SwarmPeer;
  /** Stops every peer and the server. */
  close(): Promise<void>;
}

/**
 * A swarm server, its peers, the network between them and WebRTC, all in
 * memory and on one SimulatedClock.
 *
 * @example
 * ```ts
 * const world = createSwarmWorld();
 * const store = memoryStore();
 * const hash = store.add(bytes);
 * const a = world.peer({ store, connections: 1 });
 * const b = world.peer({ connections: 1 });
 * await b.fetch(hash); // b's store now holds the verified bytes
 * await world.close();
 * ```
 */
export function createSwarmWorld(options: SwarmWorldOptions = {}): SwarmWorld {
  const clock = options.clock ?? new SimulatedClock();
  const network = createMemoryNetwork({ latency: options.latency, clock });
  const server = createSwarmServer({ clock, inspect: options.inspect, ...options.server });
  const listener = network.listen('swarm');
  serve(listener, server);
  const rtc = memoryRtcFabric();
  const peers: SwarmPeer[] = [];
  return {
    clock,
    network,
    server,
    rtc,
    peer(peerOptions = {}) {
      const peer = createSwarmPeer({
        clock,
        ...(options.inspect && { inspect: options.inspect }),
        ...peerOptions,
        signalling: () => network.connect('swarm', { path: '/swarm' }),
        rtc: rtc.rtc,
      });
      peers.push(peer);
      return peer;
    },
    async close() {
      for (const peer of peers) peer.actor.stop();
      await server.close();
      await listener.close();
    },
  };
}
