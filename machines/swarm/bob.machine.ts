import { and, assertEvent, assign, enqueueActions, setup } from 'xstate';
import type { Transport } from '../../src/transport.js';
import { upload, type UploadEvent } from '../transfer/transfer.js';
import { sendFrame, type LinkRequest } from './link.js';
import type { Hash, PeerMessage, PeerRequest } from './protocol.js';
import type { ResourceStore } from './store.js';
import { resourceSource } from './transfer.js';

export interface BobInput {
  /** The link's name (the `context_id` of the match that made it). */
  link: string;
  transport: Transport;
  store: ResourceStore;
  /** High-water mark for the bytes sent. @default 262144 (256 KiB) */
  highWaterMark?: number;
  /**
   * Most `reserve_resource` of the remote that may wait at once (each one
   * makes this peer query its other peers); more get `error`.
   * @default 16
   */
  maxReserves?: number;
}

export interface BobContext {
  readonly link: string;
  readonly transport: Transport;
  readonly store: ResourceStore;
  readonly highWaterMark?: number;
  readonly maxReserves: number;
  /** Hashes the remote reserved that we are fetching from our own peers for it. */
  reserves: Hash[];
  /** The resource being transferred. */
  serving?: Hash;
}

/** Sent to bob by his parent peer once a reserve it asked for ended. */
export type ReserveResult = { type: 'reserve.done'; hash: Hash } | { type: 'reserve.failed'; hash: Hash };

export type BobEvent = LinkRequest | ReserveResult | UploadEvent;

/** What bob asks his parent peer: fetch `hash` from our other peers for the remote of `link`. */
export type BobReserve = { type: 'bob.reserve'; link: string; hash: Hash };

/** The request of a `link.message` (bob is sent requests only), and the hash it names if any. */
function requestOf(event: BobEvent): { type: PeerRequest['type']; hash?: Hash } {
  assertEvent(event, 'link.message');
  const { message } = event;
  return { type: message.type, ...('hash' in message.detail && { hash: message.detail.hash }) };
}

/**
 * The seed's bob on one link: he answers what the remote (alice) asks.
 * `querying_resource` is answered from the store at once (`resource_found`
 * with the size, or `resource_not_found`); `reserve_resource` too when the
 * store has it, else he asks his parent to fetch it from his other peers
 * (`bob.reserve`) and answers once that ended; `requesting_resource` is
 * answered `transferring_resource` and the bytes follow, with backpressure.
 * One transfer at a time per link: a second request meanwhile gets `error`;
 * so does a reserve beyond `maxReserves` waiting.
 */
export const swarmBob = setup({
  types: {
    context: {} as BobContext,
    events: {} as BobEvent,
    input: {} as BobInput,
  },
  actors: { upload },
  guards: {
    isQuery: ({ event }) => requestOf(event).type === 'querying_resource',
    isReserve: ({ event }) => requestOf(event).type === 'reserve_resource',
    isRequest: ({ event }) => requestOf(event).type === 'requesting_resource',
    hasRequested: ({ context, event }) => context.store.stat(requestOf(event).hash!) !== undefined,
  },
  actions: {
    transmit: ({ context }, message: PeerMessage) => sendFrame(context.transport, message),
    answer: enqueueActions(({ context, enqueue }, { hash }: { hash: Hash }) => {
      const size = context.store.stat(hash);
      const message: PeerMessage =
        size === undefined
          ? { type: 'resource_not_found', detail: { hash } }
          : { type: 'resource_found', detail: { hash, size } };
      enqueue({ type: 'transmit', params: message } as never);
    }),
    reserve: enqueueActions(({ context, event, enqueue }) => {
      const hash = requestOf(event).hash!;
      if (context.reserves.includes(hash)) return; // answered once the fetch under way ends
      if (context.store.stat(hash) !== undefined) return enqueue({ type: 'answer', params: { hash } } as never);
      if (context.reserves.length >= context.maxReserves) {
        const message = `at most ${context.maxReserves} reserve_resource may wait at once`;
        const refusal: PeerMessage = { type: 'error', detail: { code: 'ERR_NOT_PERMITTED', message, hash } };
        return enqueue({ type: 'transmit', params: refusal } as never);
      }
      enqueue.assign({ reserves: [...context.reserves, hash] });
      enqueue.sendParent({ type: 'bob.reserve', link: context.link, hash } satisfies BobReserve);
    }),
    settleReserve: enqueueActions(({ context, enqueue }, { hash }: { hash: Hash }) => {
      if (!context.reserves.includes(hash)) return;
      enqueue.assign({ reserves: context.reserves.filter((h) => h !== hash) });
      enqueue({ type: 'answer', params: { hash } } as never);
    }),
    startTransfer: enqueueActions(({ event, enqueue }) => {
      const hash = requestOf(event).hash!;
      enqueue.assign({ serving: hash });
      enqueue({ type: 'transmit', params: { type: 'transferring_resource', detail: { hash } } } as never);
    }),
    /** Reading the store failed mid-transfer: the remote cannot get whole bytes any more, so the link goes. */
    closeLink: ({ context }) => context.transport.close(),
    endTransfer: assign({ serving: undefined }),
  },
}).createMachine({
  id: 'swarmBob',
  context: ({ input }) => ({
    link: input.link,
    transport: input.transport,
    store: input.store,
    highWaterMark: input.highWaterMark,
    maxReserves: input.maxReserves ?? 16,
    reserves: [],
  }),
  on: {
    'reserve.done': { actions: { type: 'settleReserve', params: ({ event }) => event } },
    'reserve.failed': { actions: { type: 'settleReserve', params: ({ event }) => event } },
  },
  initial: 'idle',
  states: {
    idle: {
      on: {
        'link.message': [
          {
            guard: 'isQuery',
            actions: { type: 'answer', params: ({ event }) => ({ hash: event.message.detail.hash as Hash }) },
          },
          { guard: 'isReserve', actions: 'reserve' },
          { guard: and(['isRequest', 'hasRequested']), target: 'transferring', actions: 'startTransfer' },
          {
            guard: 'isRequest',
            actions: { type: 'answer', params: ({ event }) => ({ hash: event.message.detail.hash as Hash }) },
          },
        ],
      },
    },
    transferring: {
      invoke: {
        id: 'upload',
        src: 'upload',
        input: ({ context }) => ({
          transport: context.transport,
          source: resourceSource(context.store, context.serving!, context.store.stat(context.serving!) ?? 0),
          ...(context.highWaterMark !== undefined && { highWaterMark: context.highWaterMark }),
        }),
      },
      on: {
        'link.message': [
          {
            guard: 'isQuery',
            actions: { type: 'answer', params: ({ event }) => ({ hash: event.message.detail.hash as Hash }) },
          },
          { guard: 'isReserve', actions: 'reserve' },
          {
            guard: 'isRequest',
            actions: {
              type: 'transmit',
              params: ({ context, event }) => ({
                type: 'error' as const,
                detail: {
                  code: 'ERR_NOT_PERMITTED' as const,
                  message: `one transfer at a time: ${context.serving} is still being sent`,
                  hash: event.message.detail.hash as Hash,
                },
              }),
            },
          },
        ],
        'upload.done': { target: 'idle', actions: 'endTransfer' },
        'upload.failed': { target: 'idle', actions: ['closeLink', 'endTransfer'] },
      },
    },
  },
});
