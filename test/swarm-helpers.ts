import type { MemoryNetwork } from '../adapters/memory/index.js';
import { memoryRegistry, type MatchRegistry } from '../machines/swarm/registry.js';
import { createSwarmServer, type SwarmServer, type SwarmServerOptions } from '../machines/swarm/server.js';
import type { Transport } from '../src/transport.js';
import {
  rawSocket,
  servedInMemory,
  servedOnSocket,
  settle as settleRounds,
  until as untilWithin,
  type RawSocket,
} from './socket-helpers.js';

export { bytes } from './socket-helpers.js';

/** A frame as the server sends it, parsed: swarm's always carry a `detail`. */
export interface Frame {
  type: string;
  detail: Record<string, unknown>;
}

/** A hand-driven swarm client speaking raw JSON frames, for server tests. */
export type RawClient = RawSocket<Frame>;

export function rawClient(transport: Transport): RawClient {
  return rawSocket<Frame>(transport);
}

export interface Testbed {
  server: SwarmServer;
  registry: MatchRegistry;
  /** Connects a raw client that has introduced itself as `clientId` (unless undefined). */
  connect(clientId?: string): Promise<RawClient>;
  close(): Promise<void>;
}

export interface MemoryTestbed extends Testbed {
  network: MemoryNetwork;
}

/** Opens a raw client with `open`, and sends `i_am` as `clientId` (unless undefined). */
async function introduced(open: () => Promise<Transport>, clientId: string | undefined): Promise<RawClient> {
  const client = rawClient(await open());
  if (clientId !== undefined) client.send({ type: 'i_am', detail: { client_id: clientId } });
  return client;
}

/** A swarm server on a memory network. */
export function swarmTestbed(options: SwarmServerOptions = {}): MemoryTestbed {
  const registry = options.registry ?? memoryRegistry();
  const server = createSwarmServer({ registry, ...options });
  const served = servedInMemory(server, 'swarm');
  return {
    network: served.network,
    registry,
    server,
    connect: (clientId) => introduced(() => served.open('/swarm'), clientId),
    close: served.close,
  };
}

/** The real `signalbox serve` stack (http + ws) on 127.0.0.1 port 0, swarm at `/swarm`. */
export async function swarmSocketTestbed(options: SwarmServerOptions = {}): Promise<Testbed> {
  const registry = options.registry ?? memoryRegistry();
  const served = await servedOnSocket({ swarm: { registry, ...options } });
  return {
    registry,
    server: served.running.swarm,
    connect: (clientId) => introduced(() => served.open('/swarm'), clientId),
    close: served.close,
  };
}

/** Lets queued deliveries run (five rounds unless told). */
export const settle = (rounds = 5): Promise<void> => settleRounds(rounds);

/** Waits until `check` holds (real time, for sockets), failing after `ms` (two seconds unless told). */
export const until = (check: () => boolean, ms = 2000): Promise<void> => untilWithin(check, ms);

// ---- peers in memory -------------------------------------------------------------

import type { SimulatedClock as Clock } from 'xstate';
import type { SwarmPeer, SwarmPeerOptions } from '../machines/swarm/client.js';
import type { PeerEmitted } from '../machines/swarm/peer.machine.js';
import { createSwarmWorld } from '../testing/swarm.js';

export interface PeerWorld {
  clock: Clock;
  server: SwarmServer;
  /** Starts a peer (client id `peer-N`) on the world's server, memory network and memory WebRTC. */
  peer(options?: Partial<SwarmPeerOptions>): SwarmPeer & { events: PeerEmitted[] };
  /** Links `a` and `b` (a asks first, so it is alice of the match); resolves with each side's link name. */
  link(a: SwarmPeer, b: SwarmPeer): Promise<{ ab: string; ba: string }>;
  close(): Promise<void>;
}

/** {@link createSwarmWorld} with peers that record what they emit, and a way to link two of them. */
export function peerWorld(): PeerWorld {
  const world = createSwarmWorld();
  let n = 0;
  return {
    clock: world.clock,
    server: world.server,
    peer(options = {}) {
      const events: PeerEmitted[] = [];
      const peer = world.peer({ clientId: `peer-${++n}`, ...options });
      peer.actor.on('*', (e) => events.push(e as PeerEmitted));
      return Object.assign(peer, { events });
    },
    async link(a, b) {
      const linked = (peer: SwarmPeer, other: SwarmPeer) =>
        new Promise<string>((resolve) => {
          const sub = peer.actor.on('linked', ({ detail }) => {
            if (detail.peer !== other.clientId) return;
            sub.unsubscribe();
            resolve(detail.link);
          });
        });
      const ab = linked(a, b);
      const ba = linked(b, a);
      const before = world.server.stats().pending;
      a.connect();
      await until(() => world.server.stats().pending > before);
      b.connect();
      return { ab: await ab, ba: await ba };
    },
    close: () => world.close(),
  };
}

// ---- one real peer, the server and its remotes played by the test ------------------

import { createActor, SimulatedClock } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { clientCodec } from '../machines/swarm/codec.js';
import { swarmMatch } from '../machines/swarm/match.machine.js';
import { swarmPeer } from '../machines/swarm/peer.machine.js';
import { memoryStore, type ResourceStore } from '../machines/swarm/store.js';
import { fromTransport } from '../src/runtime.js';
import { scriptedRtc } from './model-helpers.js';

/** A data-channel end the test drives: raw frames in and out. */
export interface RawChannel {
  readonly transport: Transport;
  readonly frames: Array<Frame | Uint8Array>;
  send(frame: unknown): void;
  next(ms?: number): Promise<Frame | Uint8Array>;
}

export function rawChannel(transport: Transport): RawChannel {
  const frames: Array<Frame | Uint8Array> = [];
  const waiters: Array<() => void> = [];
  let read = 0;
  transport.on('message', (frame) => {
    frames.push(typeof frame === 'string' ? (JSON.parse(frame) as Frame) : frame);
    for (const waiter of waiters.splice(0)) waiter();
  });
  return {
    transport,
    frames,
    send: (frame) =>
      transport.send(typeof frame === 'string' || frame instanceof Uint8Array ? frame : JSON.stringify(frame)),
    async next(ms = 2000) {
      const deadline = Date.now() + ms;
      while (read >= frames.length) {
        if (Date.now() > deadline) throw new Error(`no data-channel frame within ${ms} ms`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 20);
        });
      }
      return frames[read++]!;
    },
  };
}

/**
 * One real swarm peer (client id `me`) on a SimulatedClock, whose server is
 * a raw client end the test plays, and whose WebRTC is scripted: `link()`
 * walks it through a match as bob and hands back the remote data-channel end.
 */
export function soloPeer(store: ResourceStore = memoryStore()) {
  const clock = new SimulatedClock();
  const [client, serverEnd] = memoryPair();
  const rtc = scriptedRtc();
  const events: PeerEmitted[] = [];
  const actor = createActor(
    swarmPeer.provide({
      actors: {
        signalling: fromTransport(client, clientCodec()),
        match: swarmMatch.provide({ actors: { rtc: rtc.logic } }),
      },
    }),
    { input: { clientId: 'me', store, answerTimeout: 1000, stallTimeout: 1000 }, clock },
  );
  actor.on('*', (e) => events.push(e as PeerEmitted));
  actor.start();
  const server = rawClient(serverEnd);
  let n = 0;
  return {
    clock,
    actor,
    store,
    rtc,
    events,
    server,
    /** A link as bob of a match: resolves once the remote introduced itself as `remoteId`. */
    async link(remoteId = 'remote'): Promise<{ link: string; remote: RawChannel }> {
      actor.send({ type: 'connect', count: 1 });
      let request = await server.next();
      while (request.type !== 'requesting_peers') request = await server.next();
      const link = request.detail.context_id as string;
      server.send({ type: 'wait_for_offer', detail: { context_id: link } });
      server.send({ type: 'forwarding_offer', detail: { offer: `v=0 offer ${++n}`, context_id: link } });
      await settle();
      rtc.live.get(link)!.emit({ type: 'rtc.description', label: link, description: { type: 'answer', sdp: 'v=0 a' } });
      const answer = await server.next();
      if (answer.type !== 'sending_answer') throw new Error(`expected sending_answer, got ${answer.type}`);
      const remote = rawChannel(rtc.open(link));
      remote.send({ type: 'i_am', detail: { client_id: remoteId } });
      const iAm = await remote.next();
      if ((iAm as Frame).type !== 'i_am') throw new Error('expected our i_am back');
      return { link, remote };
    },
    stop: () => actor.stop(),
  };
}
