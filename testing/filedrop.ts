import { createActor, SimulatedClock, type Actor } from 'xstate';
import { createMemoryNetwork, type MemoryNetwork, type MemoryNetworkInit } from '../adapters/memory/index.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { filedropReceiver, type ReceiverInput } from '../machines/filedrop/receiver.machine.js';
import { filedropSender, type SenderInput } from '../machines/filedrop/sender.machine.js';
import { createFileDropServer, type FileDropServer, type FileDropServerOptions } from '../machines/filedrop/server.js';
import { fromTransport, serve } from '../src/runtime.js';
import { memoryRtcFabric, type MemoryRtcFabric } from './memory-rtc.js';

export interface FileDropWorldOptions {
  /** Drives every timer of the world. @default new SimulatedClock() */
  clock?: SimulatedClock;
  /** Options of the server (frame cap, id generator, …). */
  server?: FileDropServerOptions;
  /** Latency of the memory network (scheduled on `clock`). @default 0 */
  latency?: MemoryNetworkInit['latency'];
  /** XState inspection observer for the server and every client. */
  inspect?: FileDropServerOptions['inspect'];
}

export interface FileDropWorld {
  readonly clock: SimulatedClock;
  readonly network: MemoryNetwork;
  readonly server: FileDropServer;
  /** In-memory WebRTC, in trickle mode. */
  readonly rtc: MemoryRtcFabric;
  /** Starts a sender connected to the world's server. */
  sender(input: SenderInput): Actor<typeof filedropSender>;
  /** Starts a receiver connected to the world's server. */
  receiver(input: ReceiverInput): Actor<typeof filedropReceiver>;
  /** Stops every client and the server. */
  close(): Promise<void>;
}

/**
 * A filedrop server, its senders and receivers, the network between them and
 * WebRTC (trickle ICE), all in memory and on one SimulatedClock.
 *
 * @example
 * ```ts
 * const world = createFileDropWorld();
 * const sender = world.sender({ source: memorySource(bytes, { name: 'a.bin' }), once: true });
 * const { id } = (await waitFor(sender, (s) => s.context.id !== undefined)).context;
 * const sink = memorySink();
 * const receiver = world.receiver({ code: id!, sink });
 * await waitFor(receiver, (s) => s.status === 'done'); // sink.bytes() equals bytes
 * await world.close();
 * ```
 */
export function createFileDropWorld(options: FileDropWorldOptions = {}): FileDropWorld {
  const clock = options.clock ?? new SimulatedClock();
  const network = createMemoryNetwork({ latency: options.latency, clock });
  const server = createFileDropServer({ clock, inspect: options.inspect, ...options.server });
  const listener = network.listen('filedrop');
  serve(listener, server);
  const rtc = memoryRtcFabric({ trickle: true });
  const actors: Array<{ stop(): void }> = [];
  const actorOptions = { clock, ...(options.inspect && { inspect: options.inspect }) };
  const signalling = () => fromTransport(() => network.connect('filedrop', { path: '/filedrop' }), clientCodec());

  return {
    clock,
    network,
    server,
    rtc,
    sender(input) {
      const logic = filedropSender.provide({ actors: { signalling: signalling(), rtc: rtc.rtc } });
      const actor = createActor(logic, { ...actorOptions, input }).start();
      actors.push(actor);
      return actor;
    },
    receiver(input) {
      const logic = filedropReceiver.provide({ actors: { signalling: signalling(), rtc: rtc.rtc } });
      const actor = createActor(logic, { ...actorOptions, input }).start();
      actors.push(actor);
      return actor;
    },
    async close() {
      for (const actor of actors) actor.stop();
      await server.close();
      await listener.close();
    },
  };
}
