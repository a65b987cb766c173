import {
  assertEvent,
  enqueueActions,
  setup,
  type ActorRefFrom,
  type AnyActorRef,
  type DoneActorEvent,
  type ErrorActorEvent,
} from 'xstate';
import { ErrorCode, errorCodeOf, SignalboxError } from '../../src/errors.js';
import { missingActor, type SignallingCommand, type SignallingEvent } from '../../src/runtime.js';
import type { Transport } from '../../src/transport.js';
import { swarmAlice, type AliceInput, type AliceOutput } from './alice.machine.js';
import { swarmBob, type BobInput, type BobReserve, type ReserveResult } from './bob.machine.js';
import { SwarmError, type Miss } from './errors.js';
import { linkChannel, sendFrame, type LinkEvent, type LinkRef } from './link.js';
import {
  swarmMatch,
  type MatchInput,
  type MatchMessage,
  type MatchOutput,
  type MatchReport,
  type MatchRole,
} from './match.machine.js';
import {
  isHash,
  peerReplyTypes,
  peerRequestTypes,
  type ClientMessage,
  type Hash,
  type MessageOf,
  type PeerMessage,
  type ServerMessage,
} from './protocol.js';
import type { ResourceStore } from './store.js';

export interface PeerInput {
  /**
   * This device's `client_id`. The server never pairs two requests of the
   * same id, so give every tab or process of one device the same id if they
   * should not connect to each other.
   * @default crypto.randomUUID()
   */
  clientId?: string;
  /** Where resources are kept and served from. */
  store: ResourceStore;
  /** How many peers to ask the server for once connected (more with the `connect` command). @default 0 */
  connections?: number;
  /** Largest resource accepted from a peer, in bytes. @default 268435456 (256 MiB) */
  maxSize?: number;
  /** How long a peer has to answer a query or a request. @default 10000 */
  answerTimeout?: number;
  /** How long a peer has to answer `reserve_resource`. @default 60000 */
  reserveTimeout?: number;
  /** Longest silence between two chunks of a transfer. @default 15000 */
  stallTimeout?: number;
  /** Most `reserve_resource` one remote may have waiting at once; more get `error`. @default 16 */
  maxReserves?: number;
}

/** One open data channel with another peer. */
export interface PeerLink {
  transport: Transport;
  /** Our role in the match that made the link: alice introduces herself first, bob answers her `i_am` with his. */
  role: MatchRole;
  /** The remote's `client_id`, once its `i_am` came: from then on the link is ready. */
  peer?: string;
}

/** A resource to fetch. `urgent: false` asks with `reserve_resource`. */
export interface FetchJob {
  hash: Hash;
  urgent: boolean;
}

export interface PeerContext {
  readonly clientId: string;
  readonly store: ResourceStore;
  readonly alice: Pick<AliceInput, 'maxSize' | 'answerTimeout' | 'reserveTimeout' | 'stallTimeout'>;
  readonly bob: Pick<BobInput, 'maxReserves'>;
  /** `requesting_peers` to send once connected. */
  connections: number;
  /** Numbers our `context_id`s (each request is a `swarmMatch` child, `match:<context_id>`). */
  requests: number;
  links: Record<string, PeerLink>;
  /** The last `sending_peer_list` of each link. */
  peerLists: Record<string, string[]>;
  /** Fetches waiting for their turn (one runs at a time). */
  queue: FetchJob[];
  current?: FetchJob;
  /** Hashes the application asked for with `fetch`. */
  wanted: Hash[];
  /** For each hash, the links whose remote reserved it from us (tier 2). */
  reservers: Record<Hash, string[]>;
  error?: SignalboxError;
}

/** What the application may send a peer. */
export type PeerCommand =
  /** Ask the server for `count` more peers. @default 1 */
  | { type: 'connect'; count?: number }
  /** Fetch a resource into the store; `urgent: false` lets peers fetch it from their own peers first. */
  | { type: 'fetch'; hash: Hash; urgent?: boolean }
  /** Ask the remote of `link` for its peer list (`peer-list` follows). */
  | { type: 'requestPeerList'; link: string }
  | { type: 'leave' };

export type PeerEvent =
  | ServerMessage
  | SignallingEvent
  | MatchReport
  | DoneActorEvent<MatchOutput, `match:${string}`>
  | LinkEvent
  | BobReserve
  | PeerCommand
  | DoneActorEvent<AliceOutput, 'alice'>
  /** The signalling actor failed to start (the transport could not be opened). */
  | ErrorActorEvent<unknown, 'signalling'>;

/** Why a link ended. */
export type UnlinkReason = 'closed' | 'failed' | 'protocol' | 'left';

/** Emitted by a peer (subscribe with `actor.on(type, …)` or `dispatchEmitted`). */
export type PeerEmitted =
  /** Connected to the server and introduced. */
  | { type: 'online'; detail: { clientId: string } }
  /** The server paired a request: `role` alice makes the offer, bob answers. */
  | { type: 'matched'; detail: { context_id: string; role: 'alice' | 'bob' } }
  /**
   * A request or match ended before a data channel opened: `peer-gone` (the
   * other side left), `timeout` (the server gave up on it), `rtc-failed`
   * (WebRTC failed), `protocol` (the server refused the request, `error.code`
   * says why).
   */
  | { type: 'match-failed'; detail: { context_id: string; error: SwarmError } }
  /** A data channel opened and the remote introduced itself. */
  | { type: 'linked'; detail: { link: string; peer: string } }
  | { type: 'unlinked'; detail: { link: string; peer?: string; reason: UnlinkReason } }
  | { type: 'peer-list'; detail: { link: string; peer?: string; peers: string[] } }
  /** A verified resource was stored (fetched for us or, tier 2, for a peer). */
  | { type: 'resource'; detail: { hash: Hash; size: number; from: string } }
  /**
   * A `fetch` ended: the resource is in the store, from link `from` (none if
   * it was there already); `misses` are the peers asked before, and why each
   * did not deliver.
   */
  | { type: 'fetched'; detail: { hash: Hash; size: number; from?: string; misses: readonly Miss[] } }
  /** A `fetch` failed; `error.misses` says why each peer asked did not deliver. */
  | { type: 'fetch-failed'; detail: { hash: Hash; error: SwarmError } }
  /** A remote broke the protocol (bad frames, bytes nobody asked for). */
  | { type: 'peer-error'; detail: { link: string; peer?: string; error: SignalboxError } }
  /** The peer stopped for good: `error` is set unless it was asked to leave. */
  | { type: 'stopped'; detail: { error?: SignalboxError } };

export const SIGNALLING_HINT =
  "use machine.provide({ actors: { signalling: fromTransport(() => webSocketTransport('wss://…/swarm'), swarm.clientCodec()) } })";

const send = (message: ClientMessage): SignallingCommand<ClientMessage> => ({ type: 'signalling.send', message });
const matchId = (context: string) => `match:${context}`;
const channelId = (link: string) => `channel:${link}`;
const bobId = (link: string) => `bob:${link}`;

/** The links alice asks for `job`: ready ones, one per remote client, none whose remote reserved it from us. */
export function candidatesFor(context: PeerContext, hash: Hash): LinkRef[] {
  const skip = new Set(context.reservers[hash] ?? []);
  const seen = new Set<string>();
  const out: LinkRef[] = [];
  for (const [link, { transport, peer }] of Object.entries(context.links)) {
    if (peer === undefined || skip.has(link) || seen.has(peer) || !transport.isOpen) continue;
    seen.add(peer);
    out.push({ link, transport });
  }
  return out;
}

const isOneOf = <T extends string>(list: readonly T[], value: string): value is T =>
  (list as readonly string[]).includes(value);

/** The running match of `context_id`, if any. */
/** What a match that ended reports (`isMatch` let only a match's end through: alice's has no `context_id`). */
function matchOutput({ output }: { output: MatchOutput | AliceOutput }): MatchOutput {
  if (!('context_id' in output)) throw new Error('not the output of a match');
  return output;
}

function liveMatch(self: AnyActorRef, context_id: string | undefined): AnyActorRef | undefined {
  if (context_id === undefined) return undefined;
  const match = (self.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> } | undefined)?.children?.[
    matchId(context_id)
  ];
  return match?.getSnapshot().status === 'active' ? match : undefined;
}

/**
 * A swarm peer: one machine for both of the seed's roles on both channels.
 *
 * Matchmaking (WebSocket): it introduces itself (`i_am`) and spawns a
 * {@link swarmMatch} (`match:<context_id>`) for each connection wanted. The
 * match sends `requesting_peers` and plays whichever role the server gives
 * it (alice offers, bob answers), with its own `rtc` child; the peer routes
 * the server's messages to it by `context_id` and sends what it reports. An
 * open data channel becomes a link; a match that ends before is a
 * `match-failed`.
 *
 * Resources (data channel): each side sends `i_am` as the channel opens;
 * then a {@link swarmBob} per link answers the remote's queries and
 * requests, and a {@link swarmAlice} per `fetch` (one at a time) asks the
 * links in turn. A `reserve_resource` for something we lack queues a fetch
 * from our other links, and bob answers once it ended.
 *
 * Provide `signalling` (a transport to the server's `/swarm`, with
 * `clientCodec()`) and `match`: {@link swarmMatch} with its `rtc`
 * (`fromRtc({ RTCPeerConnection })`), as `createSwarmPeer()` does.
 *
 * @example
 * ```ts
 * const peer = createActor(
 *   swarmPeer.provide({
 *     actors: {
 *       signalling: fromTransport(() => webSocketTransport('wss://…/swarm'), clientCodec()),
 *       match: swarmMatch.provide({ actors: { rtc: fromRtc({ RTCPeerConnection }) } }),
 *     },
 *   }),
 *   { input: { store: memoryStore(), connections: 2 } },
 * ).start();
 * ```
 */
export const swarmPeer = setup({
  types: {
    context: {} as PeerContext,
    events: {} as PeerEvent,
    input: {} as PeerInput,
    emitted: {} as PeerEmitted,
  },
  actors: {
    signalling: missingActor<SignallingCommand<ClientMessage>>('signalling', SIGNALLING_HINT),
    match: swarmMatch,
    channel: linkChannel,
    bob: swarmBob,
    alice: swarmAlice,
  },
  guards: {
    canStart: ({ context }) => {
      const next = context.queue[0];
      if (!next) return false;
      // The application's fetches wait for a peer; a reserve for a remote is answered at once.
      return !context.wanted.includes(next.hash) || candidatesFor(context, next.hash).length > 0;
    },
    hasContext: (_, { context_id }: { context_id?: string }) => context_id !== undefined,
    isMatch: (_, { actorId }: { actorId?: string }) => actorId?.startsWith('match:') === true,
  },
  actions: {
    introduce: enqueueActions(({ context, enqueue }) => {
      enqueue.sendTo('signalling', send({ type: 'i_am', detail: { client_id: context.clientId } }));
      enqueue.emit({ type: 'online', detail: { clientId: context.clientId } });
      enqueue.raise({ type: 'connect', count: context.connections });
      enqueue.assign({ connections: 0 });
    }),
    deferConnect: enqueueActions(({ context, enqueue }, { count = 1 }: { count?: number }) => {
      enqueue.assign({ connections: context.connections + count });
    }),
    /** One match per connection wanted; each sends its own `requesting_peers`. */
    requestPeers: enqueueActions(({ context, enqueue }, { count = 1 }: { count?: number }) => {
      for (let i = 1; i <= count; i++) {
        const context_id = `${context.requests + i}`;
        enqueue.spawnChild('match', { id: matchId(context_id), input: { context_id } satisfies MatchInput });
      }
      enqueue.assign({ requests: context.requests + count });
    }),
    /** A server message for one of our requests goes to its match; one for a request that ended is dropped. */
    routeToMatch: enqueueActions(({ enqueue, self }, message: MatchMessage) => {
      const match = liveMatch(self, message.detail.context_id);
      if (match) enqueue.sendTo(match, message);
    }),
    relaySignal: enqueueActions(({ enqueue }, { message }: { message: ClientMessage }) => {
      enqueue.sendTo('signalling', send(message));
    }),
    announceMatch: enqueueActions(({ enqueue }, { context_id, role }: { context_id: string; role: MatchRole }) => {
      enqueue.emit({ type: 'matched', detail: { context_id, role } });
    }),
    /** A match ended before its data channel opened. */
    endMatch: enqueueActions(({ enqueue }, { context_id, error }: MatchOutput) => {
      enqueue.stopChild(matchId(context_id));
      enqueue.emit({ type: 'match-failed', detail: { context_id, error } });
    }),
    fetch: enqueueActions(({ context, enqueue }, { hash, urgent = true }: { hash: Hash; urgent?: boolean }) => {
      if (!isHash(hash)) {
        const error = new SwarmError('invalid-hash', `${JSON.stringify(String(hash).slice(0, 80))} is not a SHA-256`);
        return enqueue.emit({ type: 'fetch-failed', detail: { hash, error } });
      }
      const size = context.store.stat(hash);
      if (size !== undefined) return enqueue.emit({ type: 'fetched', detail: { hash, size, misses: [] } });
      if (!context.wanted.includes(hash)) enqueue.assign({ wanted: [...context.wanted, hash] });
      if (context.current?.hash !== hash && !context.queue.some((job) => job.hash === hash)) {
        enqueue.assign({ queue: [...context.queue, { hash, urgent }] });
      }
    }),
    /** Every event of a link (and the match that holds its connection). */
    handle: enqueueActions(({ context, event, enqueue, self }) => {
      const reply = (link: string, message: PeerMessage) => {
        const target = context.links[link];
        if (target) enqueue(() => sendFrame(target.transport, message));
      };
      /** alice, while she is still asking (not once she reached her final state). */
      const aliceAsking = () => {
        const alice = self.getSnapshot()?.children?.alice as ActorRefFrom<typeof swarmAlice> | undefined;
        return alice?.getSnapshot().status === 'active';
      };
      const dropLink = (link: string, reason: UnlinkReason) => {
        const entry = context.links[link];
        if (!entry) return;
        enqueue.stopChild(matchId(link));
        enqueue.stopChild(channelId(link));
        enqueue.stopChild(bobId(link));
        enqueue(() => entry.transport.close());
        if (aliceAsking()) enqueue.sendTo('alice', { type: 'link.closed', link } satisfies LinkEvent);
        enqueue.assign({
          links: ({ context }) => without(context.links, link),
          peerLists: ({ context }) => without(context.peerLists, link),
          reservers: ({ context }) =>
            Object.fromEntries(
              Object.entries(context.reservers).map(([hash, links]) => [hash, links.filter((l) => l !== link)]),
            ),
        });
        enqueue.emit({ type: 'unlinked', detail: { link, peer: entry.peer, reason } });
      };
      const misbehaved = (link: string, error: SignalboxError) => {
        enqueue.emit({ type: 'peer-error', detail: { link, peer: context.links[link]?.peer, error } });
        dropLink(link, 'protocol');
      };
      /** True when alice is taking the bytes of a transfer on `link`. */
      const isStreaming = (link: string) => {
        const alice = self.getSnapshot()?.children?.alice as ActorRefFrom<typeof swarmAlice> | undefined;
        const snapshot = alice?.getSnapshot();
        if (snapshot?.status !== 'active' || !snapshot.matches('receiving')) return false;
        return snapshot.context.candidates[snapshot.context.index]?.link === link;
      };

      switch (event.type) {
        case 'match.linked': {
          const { context_id: link, transport, role } = event;
          enqueue.assign({ links: ({ context }) => ({ ...context.links, [link]: { transport, role } }) });
          enqueue.spawnChild('channel', { id: channelId(link), input: { link, transport } });
          // alice speaks first: a frame bob sent before her channel reported open could be lost.
          if (role === 'alice') {
            enqueue(() => sendFrame(transport, { type: 'i_am', detail: { client_id: context.clientId } }));
          }
          return;
        }
        case 'match.unlinked':
          dropLink(event.context_id, event.reason);
          return;
        case 'link.closed':
          dropLink(event.link, 'closed');
          return;
        case 'link.error': {
          if (event.binary) return misbehaved(event.link, event.error);
          reply(event.link, {
            type: 'error',
            detail: { code: event.error.code as 'ERR_MALFORMED_FRAME', message: event.error.message.slice(0, 1024) },
          });
          return;
        }
        case 'link.chunk': {
          if (!context.links[event.link]) return;
          if (isStreaming(event.link)) {
            enqueue.sendTo('alice', event);
            return;
          }
          reply(event.link, {
            type: 'error',
            detail: { code: 'ERR_NOT_PERMITTED', message: 'bytes nobody asked for' },
          });
          misbehaved(event.link, new SwarmError('unsolicited-bytes', `${event.link} sent bytes nobody asked for`));
          return;
        }
        case 'link.message': {
          const { link, message } = event;
          const entry = context.links[link];
          if (!entry) return;
          if (entry.peer === undefined) {
            if (message.type !== 'i_am') {
              reply(link, {
                type: 'error',
                detail: { code: 'ERR_NOT_PERMITTED', message: `${message.type}: introduce yourself with i_am first` },
              });
              return;
            }
            const peer = message.detail.client_id;
            enqueue.assign({ links: ({ context }) => ({ ...context.links, [link]: { ...entry, peer } }) });
            if (entry.role === 'bob') reply(link, { type: 'i_am', detail: { client_id: context.clientId } });
            enqueue.spawnChild('bob', {
              id: bobId(link),
              input: {
                link,
                transport: entry.transport,
                store: context.store,
                ...definedOnly(context.bob),
              } satisfies BobInput,
            });
            enqueue.emit({ type: 'linked', detail: { link, peer } });
            return;
          }
          if (message.type === 'i_am') {
            reply(link, { type: 'error', detail: { code: 'ERR_NOT_PERMITTED', message: 'i_am comes once' } });
            return;
          }
          if (message.type === 'requesting_peer_list') {
            const peers = [
              ...new Set(
                Object.values(context.links)
                  .map((l) => l.peer)
                  .filter((p): p is string => p !== undefined && p !== entry.peer),
              ),
            ].slice(0, 256);
            reply(link, { type: 'sending_peer_list', detail: { peer_list: peers } });
            return;
          }
          if (message.type === 'sending_peer_list') {
            const peers = message.detail.peer_list;
            enqueue.assign({ peerLists: ({ context }) => ({ ...context.peerLists, [link]: peers }) });
            enqueue.emit({ type: 'peer-list', detail: { link, peer: entry.peer, peers } });
            return;
          }
          if (isOneOf(peerRequestTypes, message.type)) {
            enqueue.sendTo(bobId(link), event);
            return;
          }
          if (isOneOf(peerReplyTypes, message.type)) {
            const hash = (message.detail as { hash?: string }).hash;
            // A late answer (after a timeout, or to an alice that moved on) is dropped.
            if (context.current && (hash === undefined || hash === context.current.hash)) {
              enqueue.sendTo('alice', event);
            }
          }
          return;
        }
        case 'bob.reserve': {
          const { link, hash } = event;
          if (!context.links[link]) return;
          enqueue.assign({
            reservers: ({ context }) => ({
              ...context.reservers,
              [hash]: [...(context.reservers[hash] ?? []), link],
            }),
          });
          if (context.current?.hash !== hash && !context.queue.some((job) => job.hash === hash)) {
            // Tier 2 stops here: we only query our own peers, we never reserve on.
            enqueue.assign({ queue: ({ context }) => [...context.queue, { hash, urgent: true }] });
          }
          return;
        }
        case 'requestPeerList':
          // Only a ready link: before the remote's i_am it would be refused.
          if (context.links[event.link]?.peer !== undefined) {
            reply(event.link, { type: 'requesting_peer_list', detail: {} });
          }
          return;
      }
    }),
    startJob: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ current: context.queue[0], queue: context.queue.slice(1) });
    }),
    /** alice ended (`output`), or crashed (`crash`). */
    finishJob: enqueueActions(({ context, enqueue }, { output, crash }: { output?: AliceOutput; crash?: unknown }) => {
      const job = context.current!;
      const error = output?.error ?? new SwarmError('protocol', `fetching ${job.hash} crashed: ${String(crash)}`);
      const ok = output !== undefined && output.error === undefined;
      if (ok) enqueue.emit({ type: 'resource', detail: { hash: job.hash, size: output.size!, from: output.from! } });
      const misses = output?.misses ?? [];
      for (const link of context.reservers[job.hash] ?? []) {
        enqueue.sendTo(bobId(link), { type: ok ? 'reserve.done' : 'reserve.failed', hash: job.hash } as ReserveResult);
      }
      if (context.wanted.includes(job.hash)) {
        enqueue.emit(
          ok
            ? { type: 'fetched', detail: { hash: job.hash, size: output.size!, from: output.from, misses } }
            : { type: 'fetch-failed', detail: { hash: job.hash, error } },
        );
      }
      enqueue.assign({
        current: undefined,
        wanted: context.wanted.filter((h) => h !== job.hash),
        reservers: without(context.reservers, job.hash),
      });
    }),
    recordError: enqueueActions(({ event, enqueue }) => {
      assertEvent(event, ['signalling.closed', 'signalling.error', 'xstate.error.actor.signalling', 'error']);
      enqueue.assign({ error: errorFrom(event) });
    }),
    sendLeave: enqueueActions(({ enqueue }) => {
      enqueue.sendTo('signalling', { type: 'signalling.close', code: 1000, reason: 'leaving' });
    }),
    announceStop: enqueueActions(({ context, enqueue }) => {
      for (const { transport } of Object.values(context.links)) enqueue(() => transport.close());
      for (const hash of context.wanted) {
        enqueue.emit({
          type: 'fetch-failed',
          detail: { hash, error: new SwarmError('cancelled', 'the peer stopped before the fetch ended') },
        });
      }
      enqueue.emit({ type: 'stopped', detail: { error: context.error } });
    }),
  },
}).createMachine({
  id: 'swarmPeer',
  context: ({ input }) => ({
    clientId: input.clientId ?? globalThis.crypto.randomUUID(),
    store: input.store,
    alice: {
      maxSize: input.maxSize,
      answerTimeout: input.answerTimeout,
      reserveTimeout: input.reserveTimeout,
      stallTimeout: input.stallTimeout,
    },
    bob: { maxReserves: input.maxReserves },
    connections: input.connections ?? 0,
    requests: 0,
    links: {},
    peerLists: {},
    queue: [],
    wanted: [],
    reservers: {},
  }),
  initial: 'active',
  states: {
    active: {
      invoke: { id: 'signalling', src: 'signalling' },
      on: {
        'signalling.closed': { target: 'failed', actions: 'recordError' },
        'signalling.error': { target: 'failed', actions: 'recordError' },
        'xstate.error.actor.signalling': { target: 'failed', actions: 'recordError' },
        fetch: { actions: { type: 'fetch', params: ({ event }) => event } },
        leave: '.leaving',
      },
      initial: 'connecting',
      states: {
        connecting: {
          on: {
            'signalling.open': { target: 'online', actions: 'introduce' },
            connect: { actions: { type: 'deferConnect', params: ({ event }) => event } },
          },
        },
        online: {
          on: {
            connect: { actions: { type: 'requestPeers', params: ({ event }) => event } },
            requesting_offer: { actions: { type: 'routeToMatch', params: ({ event }) => event } },
            wait_for_offer: { actions: { type: 'routeToMatch', params: ({ event }) => event } },
            forwarding_offer: { actions: { type: 'routeToMatch', params: ({ event }) => event } },
            forwarding_answer: { actions: { type: 'routeToMatch', params: ({ event }) => event } },
            error: [
              {
                guard: { type: 'hasContext', params: ({ event }) => event.detail },
                actions: { type: 'routeToMatch', params: ({ event }) => event },
              },
              { target: '#swarmPeer.failed', actions: 'recordError' },
            ],
            'match.signal': { actions: { type: 'relaySignal', params: ({ event }) => event } },
            'match.matched': { actions: { type: 'announceMatch', params: ({ event }) => event } },
            'match.linked': { actions: 'handle' },
            'match.unlinked': { actions: 'handle' },
            'xstate.done.actor.*': {
              guard: { type: 'isMatch', params: ({ event }) => event },
              actions: { type: 'endMatch', params: ({ event }) => matchOutput(event) },
            },
            'link.message': { actions: 'handle' },
            'link.chunk': { actions: 'handle' },
            'link.error': { actions: 'handle' },
            'link.closed': { actions: 'handle' },
            'bob.reserve': { actions: 'handle' },
            requestPeerList: { actions: 'handle' },
          },
          // One fetch (one alice) at a time: `running` while it asks the links.
          initial: 'idle',
          states: {
            idle: { always: { guard: 'canStart', target: 'running', actions: 'startJob' } },
            running: {
              invoke: {
                id: 'alice',
                src: 'alice',
                input: ({ context }) =>
                  ({
                    hash: context.current!.hash,
                    urgent: context.current!.urgent,
                    candidates: candidatesFor(context, context.current!.hash),
                    store: context.store,
                    ...definedOnly(context.alice),
                  }) satisfies AliceInput,
                onDone: {
                  target: 'idle',
                  actions: { type: 'finishJob', params: ({ event }) => ({ output: event.output }) },
                },
                onError: {
                  target: 'idle',
                  actions: { type: 'finishJob', params: ({ event }) => ({ crash: event.error }) },
                },
              },
            },
          },
        },
        // The close goes out before leaving `active` stops the signalling actor.
        leaving: { entry: 'sendLeave', always: '#swarmPeer.closed' },
      },
    },
    closed: { type: 'final', entry: 'announceStop' },
    failed: { type: 'final', entry: 'announceStop' },
  },
});

function without<T>(record: Record<string, T>, key: string): Record<string, T> {
  const copy = { ...record };
  delete copy[key];
  return copy;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The error a peer ends with, from the event that ended it. */
function errorFrom(
  event:
    | Extract<SignallingEvent, { type: 'signalling.closed' | 'signalling.error' }>
    | ErrorActorEvent
    | MessageOf<ServerMessage, 'error'>,
): SignalboxError {
  if (event.type === 'error') {
    const { code, message } = event.detail;
    return new SwarmError('protocol', `the server refused a message: ${message}`, { code: errorCodeOf(code) });
  }
  if (event.type === 'signalling.error') {
    const { error } = event;
    return new SwarmError('protocol', `the server sent a bad frame: ${error.message}`, {
      code: error.code,
      cause: error,
    });
  }
  const error = event.error;
  if (error instanceof SignalboxError) {
    return new SwarmError('signalling-lost', error.message, { code: error.code, cause: error });
  }
  if (event.type === 'signalling.closed') {
    return new SwarmError('signalling-lost', `signalling closed (${event.info.code} ${event.info.reason})`.trim());
  }
  return new SwarmError('signalling-lost', error instanceof Error ? error.message : String(error), {
    code: ErrorCode.ConnectFailed,
    cause: error,
  });
}
