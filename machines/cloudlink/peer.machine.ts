import { and, assertEvent, assign, cancel, not, raise, setup, stateIn } from 'xstate';
import { joinTransports } from '../../src/duplex.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import {
  clientActions,
  clientActors,
  clientContext,
  clientDelays,
  send,
  enqueueAction,
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

/** A description our `rtc` actors made. */
type LocalDescription = Extract<RtcEmitted, { type: 'rtc.description' }>['description'];

export interface PeerContext extends ClientContext {
  /** Hosts announced with NEW_HOST and still there. */
  hosts: string[];
  /** The host we are linking or linked to. */
  host?: string;
  /** The SDP of the host's offer (ANTICIPATE_OFFER), answered by our `in` connection. */
  remoteOffer?: string;
  /** Our answer to the host's offer; sent (MAKE_ANSWER) after the host answered ours. */
  pendingAnswer?: LocalDescription;
  out?: Transport;
  in?: Transport;
}

/**
 * The peer's types and implementations, before its states: the actions and
 * guards take `params` computed at each transition from its event, so wiring
 * one to an event that lacks what it needs does not compile
 * (test/cloudlink-types.test-d.ts).
 */
export const peerSetup = setup({
  types: {
    context: {} as PeerContext,
    events: {} as ClientEvent,
    input: {} as ClientInput,
    emitted: {} as ClientEmitted,
  },
  actors: clientActors,
  delays: clientDelays,
  guards: {
    isFromHost: ({ context }, { peer }: { peer: string }) => peer === context.host,
    isAboutHost: ({ context }, { label }: { label: string }) => parseLabel(label).id === context.host,
    isOurOffer: (_, { label }: { label: string }) => parseLabel(label).side === 'out',
    hasAnswer: ({ context }) => context.pendingAnswer !== undefined,
    /** The deadline of the handshake under way (a stale one, or one that lost a race with `linked`, is ignored). */
    isDeadlineDue: and([
      ({ context, event }) => {
        assertEvent(event, 'link.timeout');
        return event.peer === context.host;
      },
      not(stateIn({ active: { protocol: { linking: 'linked' } } })),
    ]),
    hasChannels: ({ context }) => context.out !== undefined && context.in !== undefined,
  },
  actions: {
    ...clientActions<PeerContext>('CONFIG_PEER'),
    addHost: assign({
      hosts: ({ context }, { host }: { host: string }) =>
        context.hosts.includes(host) ? context.hosts : [...context.hosts, host],
    }),
    removeHost: assign({
      hosts: ({ context }, { host }: { host: string }) => context.hosts.filter((h) => h !== host),
    }),
    takeOffer: assign((_, { host, offer }: { host: string; offer: string }) => ({
      host,
      remoteOffer: offer,
      pendingAnswer: undefined,
      out: undefined,
      in: undefined,
    })),
    acceptOffer: enqueueAction<PeerContext, { offer: LocalDescription }>(({ context, enqueue }, { offer }) => {
      enqueue.sendTo('signalling', send({ type: 'ACCEPT_OFFER', detail: { payload: offer, rx: context.host! } }));
    }),
    keepAnswer: assign({ pendingAnswer: (_, { answer }: { answer: LocalDescription }) => answer }),
    applyHostAnswer: enqueueAction<PeerContext, { sdp: string }>(({ enqueue }, { sdp }) => {
      enqueue.sendTo('rtcOut', {
        type: 'rtc.remoteDescription',
        description: { type: 'answer', sdp },
      } satisfies RtcCommand);
    }),
    sendAnswer: enqueueAction<PeerContext>(({ context, enqueue }) =>
      enqueue.sendTo(
        'signalling',
        send({ type: 'MAKE_ANSWER', detail: { payload: context.pendingAnswer!, rx: context.host! } }),
      ),
    ),
    /** The host applied our answer (it sent ACK_CHECK): our answering connection may check its candidates too. */
    releaseCandidates: enqueueAction<PeerContext>(({ enqueue }) =>
      enqueue.sendTo('rtcIn', { type: 'rtc.releaseCandidates' } satisfies RtcCommand),
    ),
    keepChannel: assign((_, { label, transport }: { label: string; transport: Transport }) =>
      parseLabel(label).side === 'out' ? { out: transport } : { in: transport },
    ),
    sendReady: enqueueAction<PeerContext>(({ context, enqueue }) => {
      enqueue.sendTo('signalling', send({ type: 'ACK_READY', detail: { rx: context.host! } }));
      enqueue.emit({
        type: 'linked',
        detail: { id: context.host!, transport: joinTransports(context.out!, context.in!) },
      });
    }),
    startDeadline: raise(({ context }) => ({ type: 'link.timeout', peer: context.host!, generation: 0 }) as const, {
      id: 'link.timeout',
      delay: 'handshakeTimeout',
    }),
    cancelDeadline: cancel('link.timeout'),
    unlink: enqueueAction<PeerContext, { reason: UnlinkReason }>(({ context, enqueue }, { reason }) => {
      const host = context.host!;
      context.out?.close();
      context.in?.close();
      enqueue.emit({ type: 'unlinked', detail: { id: host, reason } });
      // A link that dies under us may be a host that vanished: tell the server.
      if (reason === 'failed' || reason === 'lost') {
        enqueue.sendTo('signalling', send({ type: 'SHUTDOWN_WRN', detail: { rx: host } }));
      }
      enqueue.assign({
        host: undefined,
        remoteOffer: undefined,
        pendingAnswer: undefined,
        out: undefined,
        in: undefined,
        // The host left the lobby (SHUTDOWN_ACK): it will not offer again.
        hosts: ({ context }) => (reason === 'left' ? context.hosts.filter((h) => h !== host) : context.hosts),
      });
    }),
    announceStop: enqueueAction<PeerContext>(({ context, enqueue }) => {
      context.out?.close();
      context.in?.close();
      enqueue.emit({ type: 'stopped', detail: { error: context.error } });
    }),
  },
});

/**
 * A CloudLink Omega game peer: INIT, CONFIG_PEER, then it accepts the first
 * host offer that arrives (others are ignored while it is busy, as the seed
 * allows), runs the handshake of peer lifespan steps 7–12, and emits `linked`
 * when both data channels are open. If the host leaves or the link fails it
 * goes back to the lobby and waits for the next offer.
 */
export const cloudlinkPeer = peerSetup.createMachine({
  id: 'cloudlinkPeer',
  context: ({ input }) => ({
    ...clientContext(input),
    hosts: [],
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
            configuring: { on: { ACK_PEER: 'lobby' } },
            lobby: {
              on: {
                NEW_HOST: { actions: { type: 'addHost', params: ({ event }) => ({ host: event.detail.payload }) } },
                SHUTDOWN_ACK: { actions: { type: 'removeHost', params: ({ event }) => ({ host: event.detail.tx }) } },
                ANTICIPATE_OFFER: {
                  target: 'linking',
                  actions: {
                    type: 'takeOffer',
                    params: ({ event }) => ({ host: event.detail.tx, offer: sdpOf(event.detail.payload) }),
                  },
                },
              },
            },
            linking: {
              // The handshake has `handshakeTimeout` to reach `linked`.
              entry: 'startDeadline',
              exit: 'cancelDeadline',
              invoke: [
                {
                  id: 'rtcOut',
                  src: 'rtc',
                  input: ({ context }) => ({ label: outLabel(context.host!), role: 'offerer' }) satisfies RtcInput,
                },
                {
                  id: 'rtcIn',
                  src: 'rtc',
                  input: ({ context }) =>
                    ({
                      label: inLabel(context.host!),
                      role: 'answerer',
                      remoteOffer: context.remoteOffer,
                      // The host gets this answer only after it answered our offer: see RtcInput.lateAnswer.
                      lateAnswer: true,
                    }) satisfies RtcInput,
                },
              ],
              on: {
                NEW_HOST: { actions: { type: 'addHost', params: ({ event }) => ({ host: event.detail.payload }) } },
                SHUTDOWN_ACK: [
                  {
                    guard: { type: 'isFromHost', params: ({ event }) => ({ peer: event.detail.tx }) },
                    target: 'lobby',
                    actions: { type: 'unlink', params: { reason: 'left' } },
                  },
                  { actions: { type: 'removeHost', params: ({ event }) => ({ host: event.detail.tx }) } },
                ],
                'rtc.open': {
                  guard: { type: 'isAboutHost', params: ({ event }) => ({ label: event.label }) },
                  actions: {
                    type: 'keepChannel',
                    params: ({ event }) => ({ label: event.label, transport: event.transport }),
                  },
                },
                'link.timeout': {
                  guard: 'isDeadlineDue',
                  target: 'lobby',
                  actions: { type: 'unlink', params: { reason: 'timeout' } },
                },
                'rtc.failed': {
                  guard: { type: 'isAboutHost', params: ({ event }) => ({ label: event.label }) },
                  target: 'lobby',
                  actions: { type: 'unlink', params: { reason: 'failed' } },
                },
                'rtc.closed': {
                  guard: { type: 'isAboutHost', params: ({ event }) => ({ label: event.label }) },
                  target: 'lobby',
                  actions: { type: 'unlink', params: { reason: 'lost' } },
                },
              },
              initial: 'offering',
              states: {
                offering: {
                  on: {
                    'rtc.description': [
                      {
                        guard: { type: 'isOurOffer', params: ({ event }) => ({ label: event.label }) },
                        target: 'awaitingAnswer',
                        actions: { type: 'acceptOffer', params: ({ event }) => ({ offer: event.description }) },
                      },
                      { actions: { type: 'keepAnswer', params: ({ event }) => ({ answer: event.description }) } },
                    ],
                  },
                },
                awaitingAnswer: {
                  on: {
                    'rtc.description': {
                      actions: { type: 'keepAnswer', params: ({ event }) => ({ answer: event.description }) },
                    },
                    ANTICIPATE_ANSWER: {
                      guard: { type: 'isFromHost', params: ({ event }) => ({ peer: event.detail.tx }) },
                      target: 'answering',
                      actions: {
                        type: 'applyHostAnswer',
                        params: ({ event }) => ({ sdp: sdpOf(event.detail.payload) }),
                      },
                    },
                  },
                },
                answering: {
                  always: { guard: 'hasAnswer', target: 'awaitingCheck', actions: 'sendAnswer' },
                  on: {
                    'rtc.description': {
                      actions: { type: 'keepAnswer', params: ({ event }) => ({ answer: event.description }) },
                    },
                  },
                },
                awaitingCheck: {
                  on: {
                    ACK_CHECK: {
                      guard: { type: 'isFromHost', params: ({ event }) => ({ peer: event.detail.tx }) },
                      target: 'awaitingChannels',
                      actions: 'releaseCandidates',
                    },
                  },
                },
                awaitingChannels: { always: { guard: 'hasChannels', target: 'linked', actions: 'sendReady' } },
                linked: { entry: 'cancelDeadline' },
              },
            },
            leaving: { entry: 'sendShutdown', always: '#cloudlinkPeer.closed' },
          },
        },
        watchdog: watchdog('cloudlinkPeer'),
      },
    },
    closed: { type: 'final', entry: 'announceStop' },
    failed: { type: 'final', entry: 'announceStop' },
  },
});
