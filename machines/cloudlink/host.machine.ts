import { enqueueActions, setup } from 'xstate';
import { joinTransports } from '../../src/duplex.js';
import type { RtcCommand, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import {
  clientActions,
  clientActors,
  clientContext,
  clientDelays,
  send,
  failOn,
  inLabel,
  outLabel,
  parseLabel,
  type ClientEmitted,
  type ClientContext,
  type ClientEvent,
  type ClientInput,
  type UnlinkReason,
  watchdog,
} from './client.js';
import { sdpOf } from './codec.js';

/**
 * Where one host↔peer handshake stands, in the seed's order (host lifespan
 * steps 6–14).
 */
export type HostLinkStage =
  /** NEW_PEER arrived; our offer is being made (ICE gathering). */
  | 'offering'
  /** MAKE_OFFER sent; waiting for RETURN_OFFER. */
  | 'awaitingReturnOffer'
  /** RETURN_OFFER arrived; our answer to it is being made. */
  | 'answering'
  /** MAKE_ANSWER sent; waiting for the peer's answer (ANTICIPATE_ANSWER). */
  | 'awaitingAnswer'
  /** ACK_CHECK sent; waiting for ACK_READY and both data channels. */
  | 'awaitingReady'
  /** Both channels open and the peer said ACK_READY. */
  | 'ready';

export interface HostLink {
  stage: HostLinkStage;
  peerReady: boolean;
  /** Counts the handshakes begun with this peer; part of the rtc actors' ids. */
  generation: number;
  /** Links with this peer that failed, timed out or were lost in a row. */
  failures: number;
  out?: Transport;
  in?: Transport;
}

/** The rtc actors of a handshake: the label names the connection, the generation the attempt. */
const childId = (label: string, generation: number) => `${label}#${generation}`;
const timerId = (peer: string) => `link.timeout:${peer}`;

export interface HostContext extends ClientContext {
  readonly offerAttempts: number;
  /** One entry per peer being linked or linked. */
  links: Record<string, HostLink>;
}

/**
 * A CloudLink Omega game host: INIT, CONFIG_HOST, then for every NEW_PEER
 * the two-offer, two-answer handshake, ACK_CHECK, and a `linked` event once
 * the peer said ACK_READY and both data channels are open. Any number of
 * peers at once.
 *
 * Provide `signalling` (a transport to `/ws/{ugi}`) and `rtc` (a WebRTC
 * implementation); see the README.
 */
export const cloudlinkHost = setup({
  types: {
    context: {} as HostContext,
    events: {} as ClientEvent,
    input: {} as ClientInput,
    emitted: {} as ClientEmitted,
  },
  actors: clientActors,
  delays: clientDelays,
  actions: {
    ...clientActions<HostContext>('CONFIG_HOST'),
    announceStop: enqueueActions(({ context, enqueue }) => {
      for (const link of Object.values(context.links)) {
        link.out?.close();
        link.in?.close();
      }
      enqueue.emit({ type: 'stopped', detail: { error: context.error } });
    }),
    /** Every step of every pair's handshake: which step is decided by the event and the pair's stage. */
    handshake: enqueueActions(({ context, event, enqueue }) => {
      const update = (peer: string, patch: Partial<HostLink>) =>
        enqueue.assign({
          links: ({ context }) => ({ ...context.links, [peer]: { ...context.links[peer]!, ...patch } }),
        });
      /** Begins (or begins again) the handshake with `peer`: a fresh offering connection and a deadline. */
      const offer = (peer: string, generation: number, failures: number) => {
        enqueue.assign({
          links: ({ context }) => ({
            ...context.links,
            [peer]: { stage: 'offering', peerReady: false, generation, failures },
          }),
        });
        enqueue.spawnChild('rtc', {
          id: childId(outLabel(peer), generation),
          input: { label: outLabel(peer), role: 'offerer' } satisfies RtcInput,
        });
        enqueue.raise({ type: 'link.timeout', peer, generation }, { id: timerId(peer), delay: 'handshakeTimeout' });
      };
      const drop = (peer: string, reason: UnlinkReason) => {
        const link = context.links[peer];
        if (!link) return;
        enqueue.cancel(timerId(peer));
        enqueue.stopChild(childId(outLabel(peer), link.generation));
        enqueue.stopChild(childId(inLabel(peer), link.generation));
        link.out?.close();
        link.in?.close();
        enqueue.assign({
          links: ({ context }) => Object.fromEntries(Object.entries(context.links).filter(([id]) => id !== peer)),
        });
        enqueue.emit({ type: 'unlinked', detail: { id: peer, reason } });
        // A link that dies under us may be a peer that vanished: tell the server.
        if (reason === 'failed' || reason === 'lost') {
          enqueue.sendTo('signalling', send({ type: 'SHUTDOWN_WRN', detail: { rx: peer } }));
        }
        // The peer is still in the lobby as far as we know: offer again, a bounded number of times.
        const failures = link.failures + 1;
        if (reason !== 'left' && failures < context.offerAttempts) offer(peer, link.generation + 1, failures);
      };
      /** `peer`'s link, when its handshake is at `stage`: a message out of turn is ignored. */
      const at = (peer: string, stage: HostLink['stage']) => {
        const link = context.links[peer];
        return link?.stage === stage ? link : undefined;
      };
      const tryReady = (peer: string, link: HostLink) => {
        if (link.stage === 'awaitingReady' && link.peerReady && link.out && link.in) {
          update(peer, { ...link, stage: 'ready', failures: 0 });
          enqueue.cancel(timerId(peer));
          enqueue.emit({ type: 'linked', detail: { id: peer, transport: joinTransports(link.out, link.in) } });
        } else {
          update(peer, link);
        }
      };

      switch (event.type) {
        case 'NEW_PEER': {
          const peer = event.detail.payload;
          if (!context.links[peer]) offer(peer, 1, 0);
          return;
        }
        case 'rtc.description': {
          const { side, id: peer } = parseLabel(event.label);
          const link = context.links[peer];
          if (side === 'out' && link?.stage === 'offering') {
            enqueue.sendTo(
              'signalling',
              send({ type: 'MAKE_OFFER', detail: { payload: event.description, rx: peer } }),
            );
            update(peer, { stage: 'awaitingReturnOffer' });
          } else if (side === 'in' && link?.stage === 'answering') {
            enqueue.sendTo(
              'signalling',
              send({ type: 'MAKE_ANSWER', detail: { payload: event.description, rx: peer } }),
            );
            update(peer, { stage: 'awaitingAnswer' });
          }
          return;
        }
        case 'RETURN_OFFER': {
          const peer = event.detail.tx;
          const link = at(peer, 'awaitingReturnOffer');
          if (!link) return;
          enqueue.spawnChild('rtc', {
            id: childId(inLabel(peer), link.generation),
            input: {
              label: inLabel(peer),
              role: 'answerer',
              remoteOffer: sdpOf(event.detail.payload),
              // The peer applies this answer only once ours to its offer came back: see RtcInput.lateAnswer.
              // Anything held is released at ANTICIPATE_ANSWER, which the peer sends once it applied it.
              lateAnswer: true,
            } satisfies RtcInput,
          });
          update(peer, { stage: 'answering' });
          return;
        }
        case 'ANTICIPATE_ANSWER': {
          const peer = event.detail.tx;
          const link = at(peer, 'awaitingAnswer');
          if (!link) return;
          enqueue.sendTo(childId(outLabel(peer), link.generation), {
            type: 'rtc.remoteDescription',
            description: { type: 'answer', sdp: sdpOf(event.detail.payload) },
          } satisfies RtcCommand);
          enqueue.sendTo(childId(inLabel(peer), link.generation), {
            type: 'rtc.releaseCandidates',
          } satisfies RtcCommand);
          enqueue.sendTo('signalling', send({ type: 'ACK_CHECK', detail: { rx: peer } }));
          update(peer, { stage: 'awaitingReady' });
          return;
        }
        case 'ACK_READY': {
          const link = at(event.detail.tx, 'awaitingReady');
          if (link) tryReady(event.detail.tx, { ...link, peerReady: true });
          return;
        }
        case 'rtc.open': {
          const { side, id: peer } = parseLabel(event.label);
          const link = context.links[peer];
          if (link) tryReady(peer, { ...link, [side]: event.transport });
          else event.transport.close();
          return;
        }
        case 'rtc.failed':
          drop(parseLabel(event.label).id, 'failed');
          return;
        case 'rtc.closed':
          drop(parseLabel(event.label).id, 'lost');
          return;
        case 'link.timeout': {
          const link = context.links[event.peer];
          if (link?.generation === event.generation && link.stage !== 'ready') drop(event.peer, 'timeout');
          return;
        }
        case 'SHUTDOWN_ACK':
          drop(event.detail.tx, 'left');
          return;
      }
    }),
  },
}).createMachine({
  id: 'cloudlinkHost',
  context: ({ input }) => ({
    ...clientContext(input),
    offerAttempts: input.offerAttempts ?? 3,
    links: {},
  }),
  initial: 'active',
  states: {
    active: {
      type: 'parallel',
      invoke: { id: 'signalling', src: 'signalling' },
      on: { ...failOn, leave: '.protocol.leaving' },
      states: {
        protocol: {
          initial: 'connecting',
          states: {
            connecting: { on: { 'signalling.open': { target: 'initializing', actions: 'sendInit' } } },
            initializing: {
              on: {
                INIT_OK: {
                  target: 'configuring',
                  actions: { type: 'configure', params: ({ event }) => ({ id: event.detail.payload }) },
                },
              },
            },
            configuring: { on: { ACK_HOST: 'hosting' } },
            hosting: {
              on: {
                NEW_PEER: { actions: 'handshake' },
                RETURN_OFFER: { actions: 'handshake' },
                ANTICIPATE_ANSWER: { actions: 'handshake' },
                ACK_READY: { actions: 'handshake' },
                SHUTDOWN_ACK: { actions: 'handshake' },
                'rtc.description': { actions: 'handshake' },
                'rtc.open': { actions: 'handshake' },
                'rtc.failed': { actions: 'handshake' },
                'rtc.closed': { actions: 'handshake' },
                'link.timeout': { actions: 'handshake' },
              },
            },
            // SHUTDOWN goes out on entry, before leaving `active` stops the signalling actor.
            leaving: { entry: 'sendShutdown', always: '#cloudlinkHost.closed' },
          },
        },
        watchdog: watchdog('cloudlinkHost'),
      },
    },
    closed: { type: 'final', entry: 'announceStop' },
    failed: { type: 'final', entry: 'announceStop' },
  },
});
