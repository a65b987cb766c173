import { createActor, type Actor, type InspectionEvent, type Observer } from 'xstate';
import type { Clock } from '../../src/clock.js';
import { dispatchEmitted } from '../../src/events.js';
import { fromRtc, type RtcActorInit, type RtcActorLogic } from '../../src/rtc/rtc.actor.js';
import { fromTransport } from '../../src/runtime.js';
import type { Transport } from '../../src/transport.js';
import {
  checkedProfile,
  workroomsClient,
  type ClientCall,
  type ClientEmitted,
  type ClientInput,
} from './client.machine.js';
import { clientCodec, type WorkroomsCodecOptions } from './codec.js';
import type { DirectoryEntry, UserProfiles } from './protocol.js';

export interface WorkroomsClientOptions extends ClientInput {
  /**
   * The signalling connection to the server's `/workrooms`: a function that
   * opens one (called again on every reconnect), e.g.
   * `() => webSocketTransport('wss://example.org/workrooms')`.
   */
  connect: () => Transport | Promise<Transport>;
  /**
   * WebRTC: the `fromRtc` options (`{ RTCPeerConnection, config }`; trickle
   * ICE is always on, the protocol relays candidates), or an `rtc` actor logic.
   */
  rtc: RtcActorInit | RtcActorLogic;
  /** Options of the client codec (frame cap). */
  codec?: WorkroomsCodecOptions;
  /** Timer source of the reconnect delay. */
  clock?: Clock;
  /** XState inspection observer. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
}

/** The events a {@link WorkroomsClient} dispatches, by type: `client.addEventListener('inboundcall', …)`. */
export type WorkroomsClientEventMap = {
  [E in ClientEmitted as E['type']]: CustomEvent<E['detail']>;
};

// EventTarget's own parameter types: lib.dom names them, Node's types (a server app without DOM) do not.
type Listener = Parameters<EventTarget['addEventListener']>[1] | null;
type AddListenerOptions = Parameters<EventTarget['addEventListener']>[2];

/**
 * A workrooms client as an `EventTarget`: every event the
 * {@link workroomsClient} machine emits is dispatched as a `CustomEvent`
 * (`registered`, `outboundcall`, `inboundcall`, `connected`, `hangup`,
 * `autocomplete`, `error`, `disconnected`, `stopped`).
 */
export interface WorkroomsClient extends EventTarget {
  /** This run's `sessionid`: give it to whoever should call you, and to nobody else. */
  readonly sessionid: string;
  /** The running machine, for `getSnapshot()`, `subscribe()` or the inspector. */
  readonly actor: Actor<typeof workroomsClient>;
  /** The calls this client is in now. */
  calls(): ClientCall[];
  /** Calls `sessionid`: `outboundcall`, then `connected` once the call's data channel is open. */
  call(sessionid: string): void;
  /** Hangs up calls (all of them when none is named). */
  hangup(...callids: string[]): void;
  /**
   * Searches the directory of connected profiles. Resolves with `[]` when the
   * search was refused, or the connection dropped or the client stopped before
   * the answer came.
   */
  search(query: string): Promise<DirectoryEntry[]>;
  /** Announces this client's profiles (again after every reconnect). */
  profile(profiles: UserProfiles): void;
  /** Hangs up every call and disconnects; resolves once stopped. */
  leave(): Promise<void>;
  addEventListener<K extends keyof WorkroomsClientEventMap>(
    type: K,
    listener: (event: WorkroomsClientEventMap[K]) => void,
    options?: AddListenerOptions,
  ): void;
  addEventListener(type: string, listener: Listener, options?: AddListenerOptions): void;
  removeEventListener<K extends keyof WorkroomsClientEventMap>(
    type: K,
    listener: (event: WorkroomsClientEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: Listener, options?: boolean | EventListenerOptions): void;
}

/**
 * Starts a workrooms client.
 *
 * @example
 * ```ts
 * import { RTCPeerConnection } from 'werift'; // or the browser's global
 * const client = createWorkroomsClient({
 *   connect: () => webSocketTransport('wss://example.org/workrooms'),
 *   rtc: { RTCPeerConnection },
 *   profile: { github: { login: 'ada' } },
 * });
 * client.addEventListener('inboundcall', (e) => console.log('call from', e.detail.fromsessionid));
 * client.addEventListener('connected', (e) => e.detail.transport.send('hello'));
 * const [bob] = await client.search('bob');
 * client.call(bob.sessionid);
 * ```
 */
export function createWorkroomsClient(options: WorkroomsClientOptions): WorkroomsClient {
  const { connect, rtc, codec, clock, inspect, ...input } = options;
  if (typeof connect !== 'function') {
    throw new TypeError(
      "createWorkroomsClient() needs `connect`: a function that opens a transport to /workrooms, e.g. () => webSocketTransport('wss://…/workrooms') (it is called again on every reconnect)",
    );
  }
  checkedProfile(input.profile);
  const rtcLogic = 'RTCPeerConnection' in rtc ? fromRtc({ ...rtc, trickle: true }) : rtc;
  const logic = workroomsClient.provide({
    actors: { signalling: fromTransport(connect, clientCodec(codec)), rtc: rtcLogic },
  });
  const actor = createActor(logic, {
    input,
    ...(clock && { clock }),
    ...(inspect && { inspect }),
  });
  const target = new EventTarget();
  dispatchEmitted(actor, target);
  const searches: Array<{ search: string; resolve: (results: DirectoryEntry[]) => void }> = [];
  actor.on('autocomplete', ({ detail }) => {
    const index = searches.findIndex((s) => s.search === detail.search);
    if (index >= 0) searches.splice(index, 1)[0]!.resolve(detail.results);
  });
  actor.on('error', ({ detail }) => {
    // A search refused (offline, or by the server) has no results.
    if (detail.event === 'search' || detail.event === 'autocomplete') searches.shift()?.resolve([]);
  });
  // A search the connection dropped under, or that the client stopped before, gets no answer.
  const settleSearches = () => {
    for (const pending of searches.splice(0)) pending.resolve([]);
  };
  actor.on('disconnected', settleSearches);
  actor.on('stopped', settleSearches);
  actor.start();

  const client = Object.assign(target, {
    sessionid: actor.getSnapshot().context.sessionid,
    actor,
    calls: () => Object.values(actor.getSnapshot().context.calls),
    call: (to: string) => actor.send({ type: 'call', to }),
    hangup: (...callids: string[]) =>
      actor.send({
        type: 'end',
        callids: callids.length > 0 ? callids : Object.keys(actor.getSnapshot().context.calls),
      }),
    search: (query: string) =>
      new Promise<DirectoryEntry[]>((resolve) => {
        if (actor.getSnapshot().status !== 'active') return resolve([]);
        searches.push({ search: query, resolve });
        actor.send({ type: 'search', search: query });
      }),
    profile: (profiles: UserProfiles) => actor.send({ type: 'profile', profile: profiles }),
    leave: () =>
      new Promise<void>((resolve) => {
        if (actor.getSnapshot().status !== 'active') return resolve();
        const sub = actor.subscribe({
          complete: () => {
            sub.unsubscribe();
            resolve();
          },
        });
        actor.send({ type: 'leave' });
      }),
  });
  return client as WorkroomsClient;
}
