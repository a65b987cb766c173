import { and, assertEvent, assign, enqueueActions, not, setup } from 'xstate';
import { SwarmError, type Miss, type SwarmFailure } from './errors.js';
import { sendFrame, type LinkEvent, type LinkRef } from './link.js';
import { isHash, type Hash, type PeerMessage } from './protocol.js';
import type { ResourceStore } from './store.js';
import { collect, type CollectEvent } from './transfer.js';

export interface AliceInput {
  /** The resource wanted: its SHA-256. */
  hash: Hash;
  /** The links to ask, in order; the next is asked when one fails. */
  candidates: LinkRef[];
  /**
   * `true`: ask with `querying_resource` (the peer has it or not).
   * `false`: ask with `reserve_resource`, which lets the peer fetch it from
   * its own peers first (our tier 2); slower, so for what is not urgent.
   * @default true
   */
  urgent?: boolean;
  store: ResourceStore;
  /** Largest `size` accepted in `resource_found`. @default 268435456 (256 MiB) */
  maxSize?: number;
  /** How long a peer has to answer `querying_resource` or `requesting_resource`. @default 10000 */
  answerTimeout?: number;
  /** How long a peer has to answer `reserve_resource` (it may fetch from its own peers first). @default 60000 */
  reserveTimeout?: number;
  /** Longest silence between two chunks of a transfer. @default 15000 */
  stallTimeout?: number;
}

export type { Miss };

export interface AliceContext {
  readonly hash: Hash;
  readonly candidates: LinkRef[];
  readonly urgent: boolean;
  readonly store: ResourceStore;
  readonly maxSize: number;
  readonly answerTimeout: number;
  readonly reserveTimeout: number;
  readonly stallTimeout: number;
  /** The candidate being asked. */
  index: number;
  /** What `resource_found` announced. */
  size?: number;
  received: number;
  misses: Miss[];
  /** The link that delivered. */
  from?: string;
  error?: SwarmError;
}

export type AliceEvent = LinkEvent | CollectEvent | { type: 'cancel' };

/** What a finished alice outputs: the link that delivered, or the error. */
export interface AliceOutput {
  hash: Hash;
  size?: number;
  from?: string;
  misses: Miss[];
  error?: SwarmError;
}

/**
 * The seed's alice for one resource: she asks her candidates one at a time
 * (`querying_resource`, or `reserve_resource` when not urgent) until one
 * answers `resource_found`, gives the go (`requesting_resource`), and takes
 * the bytes that follow `transferring_resource`. The bytes are checked
 * against the announced size and the hash before the store commits them.
 * A candidate that answers `resource_not_found` or `error`, times out,
 * disconnects or sends bad bytes is skipped (bad bytes also close its
 * link); she ends `done`, or `failed` with `not-found` (or `no-peers`) once
 * every candidate was tried.
 *
 * Her parent routes data-channel events to her: replies for her hash, the
 * chunks of the link she is receiving on, and `link.closed`.
 */
export const swarmAlice = setup({
  types: {
    context: {} as AliceContext,
    events: {} as AliceEvent,
    input: {} as AliceInput,
    output: {} as AliceOutput,
  },
  actors: { collect },
  delays: {
    answerTimeout: ({ context }) => context.answerTimeout,
    reserveTimeout: ({ context }) => context.reserveTimeout,
    stallTimeout: ({ context }) => context.stallTimeout,
  },
  guards: {
    isValidHash: ({ context }) => isHash(context.hash),
    hasCandidate: ({ context }) => context.index < context.candidates.length,
    hasNoCandidates: ({ context }) => context.candidates.length === 0,
    isUrgent: ({ context }) => context.urgent,
    isCurrent: ({ context, event }) => {
      assertEvent(event, ['link.message', 'link.chunk', 'link.closed']);
      return event.link === context.candidates[context.index]?.link;
    },
    isForHash: ({ context, event }) => {
      assertEvent(event, 'link.message');
      const { detail } = event.message;
      return !('hash' in detail) || detail.hash === undefined || detail.hash === context.hash;
    },
    isReply: ({ event }, type: string) => {
      assertEvent(event, 'link.message');
      return event.message.type === type;
    },
    isTooLarge: ({ context, event }) => {
      assertEvent(event, 'link.message');
      return foundSize(event.message) > context.maxSize;
    },
    isIntegrityFailure: ({ event }) => {
      assertEvent(event, 'collect.failed');
      return event.reason !== 'store-failed';
    },
  },
  actions: {
    /** Sends `message` on the current candidate's link. */
    transmit: ({ context }, message: PeerMessage) => sendFrame(context.candidates[context.index]!.transport, message),
    ask: enqueueActions(({ context, enqueue }) => {
      const { link, transport } = context.candidates[context.index]!;
      // A candidate whose link closed since the list was made is skipped at once.
      if (!transport.isOpen) return enqueue.raise({ type: 'link.closed', link });
      const type = context.urgent ? 'querying_resource' : 'reserve_resource';
      enqueue({ type: 'transmit', params: { type, detail: { hash: context.hash } } } as never);
    }),
    keepSize: assign((_, { size }: { size: number }) => ({ size, received: 0 })),
    /** Records why the current candidate failed and moves to the next. */
    skip: enqueueActions(({ context, enqueue }, miss: Omit<Miss, 'link'>) => {
      enqueue.assign({
        misses: [...context.misses, { link: context.candidates[context.index]!.link, ...miss }],
        index: context.index + 1,
        size: undefined,
        received: 0,
      });
    }),
    /** A peer that sent bad bytes is not asked again: its link is closed. */
    closeLink: ({ context }) => context.candidates[context.index]?.transport.close(),
    forward: enqueueActions(({ event, enqueue }) => enqueue.sendTo('collect', event)),
    recordProgress: assign((_, { received }: { received: number }) => ({ received })),
    recordDone: assign({ from: ({ context }) => context.candidates[context.index]!.link }),
    fail: assign(({ context }, { reason, message }: { reason: SwarmFailure; message: string }) => ({
      error: new SwarmError(reason, message, { misses: context.misses }),
    })),
    giveUp: assign(({ context }) => {
      const why = context.misses.map((m) => `${m.link}: ${m.reason}`).join(', ');
      return {
        error: new SwarmError('not-found', `no peer delivered ${context.hash} (${why})`, { misses: context.misses }),
      };
    }),
  },
}).createMachine({
  id: 'swarmAlice',
  context: ({ input }) => ({
    hash: String(input.hash ?? ''),
    candidates: input.candidates ?? [],
    urgent: input.urgent ?? true,
    store: input.store,
    maxSize: input.maxSize ?? 256 * 1024 * 1024,
    answerTimeout: input.answerTimeout ?? 10_000,
    reserveTimeout: input.reserveTimeout ?? 60_000,
    stallTimeout: input.stallTimeout ?? 15_000,
    index: 0,
    received: 0,
    misses: [],
  }),
  initial: 'checking',
  on: {
    cancel: { target: '.failed', actions: { type: 'fail', params: { reason: 'cancelled', message: 'cancelled' } } },
  },
  states: {
    checking: {
      always: [
        {
          guard: 'isValidHash',
          target: 'choosing',
        },
        {
          target: 'failed',
          actions: {
            type: 'fail',
            params: ({ context }) => ({
              reason: 'invalid-hash',
              message: `${JSON.stringify(context.hash.slice(0, 80))} is not a SHA-256 (64 lowercase hex digits)`,
            }),
          },
        },
      ],
    },
    choosing: {
      always: [
        { guard: 'hasCandidate', target: 'asking' },
        {
          guard: 'hasNoCandidates',
          target: 'failed',
          actions: {
            type: 'fail',
            params: ({ context }) => ({ reason: 'no-peers', message: `no peer to ask for ${context.hash}` }),
          },
        },
        { target: 'failed', actions: 'giveUp' },
      ],
    },
    asking: {
      entry: 'ask',
      after: {
        answerTimeout: {
          guard: 'isUrgent',
          target: 'choosing',
          actions: { type: 'skip', params: { reason: 'timeout', message: 'no answer to querying_resource' } },
        },
        reserveTimeout: {
          guard: not('isUrgent'),
          target: 'choosing',
          actions: { type: 'skip', params: { reason: 'timeout', message: 'no answer to reserve_resource' } },
        },
      },
      on: {
        'link.message': [
          {
            guard: and(['isCurrent', 'isForHash', { type: 'isReply', params: 'resource_found' }, 'isTooLarge']),
            target: 'choosing',
            actions: { type: 'skip', params: { reason: 'too-large', message: 'the resource is over maxSize' } },
          },
          {
            guard: and(['isCurrent', 'isForHash', { type: 'isReply', params: 'resource_found' }]),
            target: 'requesting',
            actions: { type: 'keepSize', params: ({ event }) => ({ size: foundSize(event.message) }) },
          },
          {
            guard: and(['isCurrent', 'isForHash', { type: 'isReply', params: 'resource_not_found' }]),
            target: 'choosing',
            actions: { type: 'skip', params: { reason: 'not-found', message: 'resource_not_found' } },
          },
          {
            guard: and(['isCurrent', 'isForHash', { type: 'isReply', params: 'error' }]),
            target: 'choosing',
            actions: {
              type: 'skip',
              params: ({ event }) => ({ reason: 'protocol', message: refusal(event.message) }),
            },
          },
        ],
        'link.closed': {
          guard: 'isCurrent',
          target: 'choosing',
          actions: { type: 'skip', params: { reason: 'peer-gone', message: 'the link closed' } },
        },
      },
    },
    requesting: {
      entry: {
        type: 'transmit',
        params: ({ context }) => ({ type: 'requesting_resource' as const, detail: { hash: context.hash } }),
      },
      after: {
        answerTimeout: {
          target: 'choosing',
          actions: { type: 'skip', params: { reason: 'timeout', message: 'no answer to requesting_resource' } },
        },
      },
      on: {
        'link.message': [
          {
            guard: and(['isCurrent', 'isForHash', { type: 'isReply', params: 'transferring_resource' }]),
            target: 'receiving',
          },
          {
            guard: and(['isCurrent', 'isForHash', { type: 'isReply', params: 'resource_not_found' }]),
            target: 'choosing',
            actions: { type: 'skip', params: { reason: 'not-found', message: 'resource_not_found after found' } },
          },
          {
            guard: and(['isCurrent', 'isForHash', { type: 'isReply', params: 'error' }]),
            target: 'choosing',
            actions: { type: 'skip', params: ({ event }) => ({ reason: 'protocol', message: refusal(event.message) }) },
          },
        ],
        'link.closed': {
          guard: 'isCurrent',
          target: 'choosing',
          actions: { type: 'skip', params: { reason: 'peer-gone', message: 'the link closed' } },
        },
      },
    },
    receiving: {
      invoke: {
        id: 'collect',
        src: 'collect',
        input: ({ context }) => ({ store: context.store, hash: context.hash, size: context.size! }),
      },
      on: {
        'collect.progress': { actions: { type: 'recordProgress', params: ({ event }) => event } },
        'collect.done': { target: 'done', actions: 'recordDone' },
        'collect.failed': [
          {
            guard: 'isIntegrityFailure',
            target: 'choosing',
            actions: [
              'closeLink',
              {
                type: 'skip',
                params: ({ event }) => ({ reason: event.reason, message: event.message }),
              },
            ],
          },
          { target: 'failed', actions: { type: 'fail', params: ({ event }) => event } },
        ],
        'link.closed': {
          guard: 'isCurrent',
          target: 'choosing',
          actions: { type: 'skip', params: { reason: 'peer-gone', message: 'the link closed mid-transfer' } },
        },
      },
      initial: 'flowing',
      states: {
        flowing: {
          // Each chunk restarts the stall timer (the invoke of `receiving` goes on).
          on: { 'link.chunk': { guard: 'isCurrent', target: 'flowing', reenter: true, actions: 'forward' } },
          after: {
            stallTimeout: {
              target: '#swarmAlice.choosing',
              actions: ['closeLink', { type: 'skip', params: { reason: 'timeout', message: 'the transfer stalled' } }],
            },
          },
        },
      },
    },
    done: { type: 'final' },
    failed: { type: 'final' },
  },
  output: ({ context }) => ({
    hash: context.hash,
    size: context.size,
    from: context.from,
    misses: context.misses,
    error: context.error,
  }),
});

/** What an `error` from the peer says, for the miss it makes. */
function refusal(message: PeerMessage): string {
  const detail = message.type === 'error' ? message.detail : undefined;
  return `the peer refused: ${detail?.code ?? '?'} ${detail?.message ?? ''}`.trim();
}

/** The size a `resource_found` announces (the guards made sure it is one). */
function foundSize(message: PeerMessage): number {
  return message.type === 'resource_found' ? message.detail.size : Number.NaN;
}
