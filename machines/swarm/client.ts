import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import type { Clock } from '../../src/clock.js';
import { dispatchEmitted } from '../../src/events.js';
import { fromRtc, type RtcActorInit, type RtcActorLogic } from '../../src/rtc/rtc.actor.js';
import { fromTransport, type TransportSource } from '../../src/runtime.js';
import { clientCodec } from './codec.js';
import { SwarmError } from './errors.js';
import { swarmMatch } from './match.machine.js';
import { swarmPeer, type PeerEmitted, type PeerInput } from './peer.machine.js';
import type { Hash } from './protocol.js';
import { memoryStore, type ResourceStore } from './store.js';

export interface SwarmPeerOptions extends Omit<PeerInput, 'store'> {
  /** The connection to the server's `/swarm`: a transport, or a function that opens one. */
  signalling: TransportSource;
  /**
   * WebRTC: what `fromRtc` takes (`{ RTCPeerConnection, config }`), or an
   * `rtc` actor logic of your own. Trickle is never used: swarm has no
   * candidate message.
   */
  rtc: RtcActorInit | RtcActorLogic;
  /** Where resources are kept. @default memoryStore() */
  store?: ResourceStore;
  clock?: Clock;
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

/** A running swarm peer: an `EventTarget` that dispatches every {@link PeerEmitted} as a `CustomEvent`. */
export interface SwarmPeer extends EventTarget {
  readonly actor: Actor<typeof swarmPeer>;
  readonly store: ResourceStore;
  readonly clientId: string;
  /** Asks the server for `count` more peers. */
  connect(count?: number): void;
  /**
   * Fetches `hash` into the store; resolves once the verified bytes are
   * there (at once if they already are), rejects with a {@link SwarmError}.
   * A fetch waits for a first peer.
   */
  fetch(hash: Hash, options?: { urgent?: boolean }): Promise<{ hash: Hash; size: number; from?: string }>;
  /** Asks the remote of `link` for its peer list (a `peer-list` event follows). */
  requestPeerList(link: string): void;
  /** The ready links and their remote `client_id`s. */
  links(): Array<{ link: string; peer: string }>;
  /** Leaves the server and closes every link. */
  leave(): void;
}

/**
 * A swarm peer with the machine wired up: signalling with the swarm codec,
 * non-trickle WebRTC, a memory store unless given one.
 *
 * @example
 * ```ts
 * import { RTCPeerConnection } from 'werift';
 * import { webSocketTransport } from 'signalbox/websocket/node';
 *
 * const peer = createSwarmPeer({
 *   signalling: () => webSocketTransport('ws://127.0.0.1:8080/swarm'),
 *   rtc: { RTCPeerConnection },
 *   connections: 3,
 * });
 * peer.addEventListener('linked', (e) => console.log('linked to', e.detail.peer));
 * const { size } = await peer.fetch('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08');
 * ```
 */
export function createSwarmPeer(options: SwarmPeerOptions): SwarmPeer {
  const { signalling, rtc, store = memoryStore(), clock, inspect, ...input } = options;
  const rtcLogic = typeof rtc === 'object' && 'RTCPeerConnection' in rtc ? fromRtc({ ...rtc, trickle: false }) : rtc;
  const logic = swarmPeer.provide({
    actors: {
      signalling: fromTransport(signalling, clientCodec()),
      match: swarmMatch.provide({ actors: { rtc: rtcLogic as RtcActorLogic } }),
    },
  });
  const actor = createActor(logic, {
    input: { ...input, store },
    ...(clock && { clock }),
    ...(inspect && { inspect }),
  });
  const target = new EventTarget();
  dispatchEmitted(actor, target);
  actor.start();

  const fetch = (hash: Hash, fetchOptions: { urgent?: boolean } = {}) =>
    new Promise<{ hash: Hash; size: number; from?: string }>((resolve, reject) => {
      const subs = [
        actor.on('fetched', ({ detail }) => {
          if (detail.hash !== hash) return;
          for (const sub of subs) sub.unsubscribe();
          resolve(detail);
        }),
        actor.on('fetch-failed', ({ detail }) => {
          if (detail.hash !== hash) return;
          for (const sub of subs) sub.unsubscribe();
          reject(detail.error);
        }),
      ];
      if (actor.getSnapshot().status !== 'active') {
        for (const sub of subs) sub.unsubscribe();
        reject(new SwarmError('cancelled', 'the peer has stopped'));
        return;
      }
      actor.send({ type: 'fetch', hash, urgent: fetchOptions.urgent ?? true });
    });

  return Object.assign(target, {
    actor,
    store,
    clientId: actor.getSnapshot().context.clientId,
    connect: (count = 1) => actor.send({ type: 'connect', count }),
    fetch,
    requestPeerList: (link: string) => actor.send({ type: 'requestPeerList', link }),
    links: () =>
      Object.entries(actor.getSnapshot().context.links)
        .filter(([, l]) => l.peer !== undefined)
        .map(([link, l]) => ({ link, peer: l.peer! })),
    leave: () => actor.send({ type: 'leave' }),
  });
}

export type { PeerEmitted };
