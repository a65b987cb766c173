import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import { dispatchEmitted } from '../../src/events.js';
import { fromRtc, type RtcActorInit, type RtcActorLogic } from '../../src/rtc/rtc.actor.js';
import { fromTransport, type TransportSource } from '../../src/runtime.js';
import { memorySink, type SinkOpener } from '../transfer/files.js';
import { registryClient, type RegistryClientEmitted, type RegistryClientInput } from './client.machine.js';
import { clientCodec, type RegistryCodecOptions } from './codec.js';
import { RegistryError } from './errors.js';
import type { FileEntry } from './protocol.js';

export interface RegistryClientOptions extends RegistryClientInput {
  /** The signalling connection to the server's `/registry`: a transport, or a function that opens one. */
  transport: TransportSource;
  /**
   * WebRTC: an `fromRtc` init (`{ RTCPeerConnection }`: the browser's global,
   * werift's or node-datachannel's; trickle ICE is turned on), or a ready `rtc`
   * actor logic.
   */
  rtc: RtcActorInit | RtcActorLogic;
  /** Options of the client codec (frame cap, list size). */
  codec?: RegistryCodecOptions;
  /** XState inspection observer. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

/** What a fetched file came to. `bytes` is set when no sink was given (the file was kept in memory). */
export interface FetchResult {
  peer: string;
  path: string;
  size: number;
  sha256: string;
  bytes?: Uint8Array;
}

/**
 * A registry client as an `EventTarget`: every event the machine emits is
 * dispatched as a `CustomEvent` of the same type (`registered`,
 * `peerRegistered`, `peerUpdated`, `peerUnregistered`, `peers`, `fetched`,
 * `fetchFailed`, `served`, `stopped`, …), and the commands are methods.
 */
export interface RegistryClient extends EventTarget {
  readonly actor: Actor<typeof registryClient>;
  /** Our server-assigned id, once registered. */
  readonly id: string | undefined;
  /** Every other peer and its list. */
  readonly peers: Readonly<Record<string, readonly FileEntry[]>>;
  /**
   * Resolves with our id once the server welcomed us and told us every peer
   * already there (so `requestFile` right after finds them); rejects if the
   * client stops first.
   */
  ready(): Promise<string>;
  /**
   * Fetches `path` from `peer` over a data channel of its own, verified by size
   * and SHA-256. Without a sink the bytes are kept in memory and returned.
   * Rejects with a {@link RegistryError}.
   */
  requestFile(peer: string, path: string, options?: { sink?: SinkOpener }): Promise<FetchResult>;
  /** Announces `files`, or the provider's current list. */
  updateFiles(files?: FileEntry[]): void;
  /** Sends `Disconnect` and stops. */
  leave(): void;
}

let requests = 0;

/**
 * Starts a registry client: registers `provider`'s files with the server,
 * keeps the other peers' lists, fetches and serves files peer to peer.
 *
 * @example
 * ```ts
 * import { RTCPeerConnection } from 'werift'; // or the browser's global
 * import { webSocketTransport } from 'signalbox/websocket/node';
 * import { directoryProvider } from 'signalbox/fs';
 *
 * const client = createRegistryClient({
 *   transport: () => webSocketTransport('ws://127.0.0.1:8080/registry'),
 *   rtc: { RTCPeerConnection },
 *   provider: directoryProvider('./shared'),
 * });
 * client.addEventListener('peers', (e) => console.log((e as CustomEvent).detail.peers));
 * const { bytes, sha256 } = await client.requestFile(peerId, 'docs/readme.md');
 * ```
 */
export function createRegistryClient(options: RegistryClientOptions): RegistryClient {
  const { transport, rtc, codec, inspect, ...input } = options;
  const rtcLogic = toRtc(rtc);
  const actor = createActor(
    registryClient.provide({
      actors: { signalling: fromTransport(transport, clientCodec(codec)), rtc: rtcLogic },
    }),
    { input, ...(inspect && { inspect }) },
  );
  const target = new EventTarget();
  dispatchEmitted(actor, target);
  const stopped = new Promise<RegistryError | undefined>((resolve) =>
    actor.on('stopped', ({ detail }) => resolve(detail.error)),
  );
  actor.start();

  // Getters are defined, not assigned: Object.assign would copy their values once.
  Object.defineProperties(target, {
    id: { get: () => actor.getSnapshot().context.id, enumerable: true },
    peers: { get: () => actor.getSnapshot().context.peers, enumerable: true },
  });
  const client = Object.assign(target as EventTarget & Pick<RegistryClient, 'id' | 'peers'>, {
    actor,
    ready() {
      const { id, awaiting } = actor.getSnapshot().context;
      if (id !== undefined && awaiting === 0) return Promise.resolve(id);
      return new Promise<string>((resolve, reject) => {
        const sub = actor.on('registered', ({ detail }) => {
          sub.unsubscribe();
          resolve(detail.id);
        });
        void stopped.then((error) => {
          sub.unsubscribe();
          reject(error ?? new RegistryError('cancelled', 'the client stopped before it was registered'));
        });
      });
    },
    requestFile(peer: string, path: string, opts: { sink?: SinkOpener } = {}) {
      const request = `q${++requests}`;
      const kept = opts.sink ? undefined : memorySink();
      return new Promise<FetchResult>((resolve, reject) => {
        const subs = [
          actor.on('fetched', ({ detail }) => {
            if (detail.request !== request) return;
            for (const s of subs) s.unsubscribe();
            const { peer: p, path: f, size, sha256 } = detail;
            resolve({ peer: p, path: f, size, sha256, ...(kept && { bytes: kept.bytes() }) });
          }),
          actor.on('fetchFailed', ({ detail }) => {
            if (detail.request !== request) return;
            for (const s of subs) s.unsubscribe();
            reject(detail.error);
          }),
        ];
        actor.send({ type: 'requestFile', peer, path, sink: opts.sink ?? kept!, request });
        if (actor.getSnapshot().status !== 'active') {
          for (const s of subs) s.unsubscribe();
          reject(new RegistryError('cancelled', 'the client has stopped'));
        }
      });
    },
    updateFiles(files?: FileEntry[]) {
      actor.send(files === undefined ? { type: 'updateFiles' } : { type: 'updateFiles', files });
    },
    leave() {
      actor.send({ type: 'leave' });
    },
  });
  return client;
}

function toRtc(rtc: RtcActorInit | RtcActorLogic): RtcActorLogic {
  if ('RTCPeerConnection' in rtc) return fromRtc({ trickle: true, ...rtc });
  return rtc;
}

export type { RegistryClientEmitted };
