import { createActor, SimulatedClock, type Actor } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork, type MemoryNetworkInit } from '../adapters/memory/index.js';
import { workroomsClient, type ClientInput } from '../machines/workrooms/client.machine.js';
import { clientCodec } from '../machines/workrooms/codec.js';
import {
  createWorkroomsServer,
  type WorkroomsServer,
  type WorkroomsServerOptions,
} from '../machines/workrooms/server.js';
import { fromTransport, serve } from '../src/runtime.js';
import type { Transport } from '../src/transport.js';
import { memoryRtcFabric, type MemoryRtcFabric } from './memory-rtc.js';

export interface WorkroomsWorldOptions {
  /** Drives every timer of the world (grace periods, reconnect delays). @default new SimulatedClock() */
  clock?: SimulatedClock;
  /** Options of the server (grace period, frame cap, …). */
  server?: WorkroomsServerOptions;
  /** Latency of the memory network (scheduled on `clock`). @default 0 */
  latency?: MemoryNetworkInit['latency'];
  /** XState inspection observer for the server and every client. */
  inspect?: WorkroomsServerOptions['inspect'];
}

export interface WorkroomsWorld {
  readonly clock: SimulatedClock;
  readonly network: MemoryNetwork;
  readonly server: WorkroomsServer;
  /** In-memory WebRTC, in trickle mode. */
  readonly rtc: MemoryRtcFabric;
  /** Starts a client connected to the world's server. */
  client(input?: ClientInput): Actor<typeof workroomsClient>;
  /** The client's current signalling connection (a new one after each reconnect). */
  connectionOf(client: Actor<typeof workroomsClient>): Transport | undefined;
  /** Drops the client's signalling connection, as a network failure would (both ends close with 1006). */
  drop(client: Actor<typeof workroomsClient>): void;
  /** Stops every client and the server. */
  close(): Promise<void>;
}

/**
 * A workrooms server, its clients, the network between them and WebRTC
 * (trickle ICE), all in memory and on one SimulatedClock.
 *
 * @example
 * ```ts
 * const world = createWorkroomsWorld();
 * const alice = world.client();
 * const bob = world.client();
 * alice.send({ type: 'call', to: bob.getSnapshot().context.sessionid });
 * bob.on('connected', ({ detail }) => detail.transport.send('hi'));
 * world.drop(alice); // alice reconnects after its reconnectDelay (world.clock.increment) and keeps the call
 * await world.close();
 * ```
 */
export function createWorkroomsWorld(options: WorkroomsWorldOptions = {}): WorkroomsWorld {
  const clock = options.clock ?? new SimulatedClock();
  const network = createMemoryNetwork({ latency: options.latency, clock });
  const server = createWorkroomsServer({ clock, inspect: options.inspect, ...options.server });
  const listener = network.listen('workrooms');
  serve(listener, server);
  const rtc = memoryRtcFabric({ trickle: true });
  const actors: Array<{ stop(): void }> = [];
  const connections = new WeakMap<object, Transport>();
  const actorOptions = { clock, ...(options.inspect && { inspect: options.inspect }) };

  return {
    clock,
    network,
    server,
    rtc,
    client(input = {}) {
      const holder: { actor?: object } = {};
      const signalling = fromTransport(async () => {
        const transport = await network.connect('workrooms', { path: '/workrooms' });
        if (holder.actor) connections.set(holder.actor, transport);
        return transport;
      }, clientCodec());
      const logic = workroomsClient.provide({ actors: { signalling, rtc: rtc.rtc } });
      const actor = createActor(logic, { ...actorOptions, input });
      holder.actor = actor;
      actor.start();
      actors.push(actor);
      return actor;
    },
    connectionOf: (client) => connections.get(client),
    drop(client) {
      const transport = connections.get(client);
      if (transport) network.sever(transport);
    },
    async close() {
      for (const actor of actors) actor.stop();
      await server.close();
      await listener.close();
    },
  };
}
