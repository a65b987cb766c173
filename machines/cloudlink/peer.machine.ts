import { and, assign, cancel, enqueueActions, not, raise, setup, stateIn } from 'xstate';
import { joinTransports } from '../../src/duplex.js';
import { ErrorCode, SignalboxError } from '../../src/errors.js';
import type { RtcCommand, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import {
  clientActors,
  errorFrom,
  inLabel,
  outLabel,
  parseLabel,
  type ClientEmitted,
  type ClientEvent,
  type ClientInput,
  type ClientSignallingCommand,
  type LinkTimeout,
  type UnlinkReason,
} from './client.js';
import type { ClientMessage, MessageOf, ServerMessage } from './protocol.js';

export interface PeerContext {
  readonly lobby: string;
  readonly name?: string;
  readonly serverTimeout: number;
  readonly handshakeTimeout: number;
  /** Our peer id, from INIT_OK. */
  id?: string;
  /** Hosts announced with NEW_HOST and still there. */
  hosts: string[];
  /** The host we are linking or linked to. */
  host?: string;
  /** The host's offer (ANTICIPATE_OFFER), answered by our `in` connection. */
  remoteOffer?: string;
  /** Our answer to the host's offer; sent (MAKE_ANSWER) after the host answered ours. */
  pendingAnswer?: string;
  out?: Transport;
  in?: Transport;
  error?: SignalboxError;
}

const send = (message: ClientMessage): ClientSignallingCommand => ({ type: 'signalling.send', message });

/**
 * A CloudLink Omega game peer: INIT, CONFIG_PEER, then it accepts the first
 * host offer that arrives (others are ignored while it is busy, as the seed
 * allows), runs the handshake of peer lifespan steps 7–12, and emits `linked`
 * when both data channels are open. If the host leaves or the link fails it
 * goes back to the lobby and waits for the next offer.
 */
export const cloudlinkPeer = setup({
  types: {
    context: {} as PeerContext,
    events: {} as ClientEvent,
    input: {} as ClientInput,
    emitted: {} as ClientEmitted,
  },
  actors: clientActors,
  delays: {
    serverTimeout: ({ context }) => context.serverTimeout,
    handshakeTimeout: ({ context }) => context.handshakeTimeout,
  },
  guards: {
    isFromHost: ({ context, event }) => (event as { detail?: { tx?: string } }).detail?.tx === context.host,
    isAboutHost: ({ context, event }) => parseLabel((event as { label: string }).label).id === context.host,
    isOurOffer: ({ event }) => parseLabel((event as { label: string }).label).side === 'out',
    hasAnswer: ({ context }) => context.pendingAnswer !== undefined,
    /** The deadline of the handshake under way (a stale one, or one that lost a race with `linked`, is ignored). */
    isDeadlineDue: and([
      ({ context, event }) => (event as LinkTimeout).peer === context.host,
      not(stateIn({ active: { protocol: { linking: 'linked' } } })),
    ]),
    hasChannels: ({ context }) => context.out !== undefined && context.in !== undefined,
  },
  actions: {
    sendInit: enqueueActions(({ context, enqueue }) =>
      enqueue.sendTo(
        'signalling',
        send({ type: 'INIT', detail: context.name === undefined ? {} : { payload: context.name } }),
      ),
    ),
    configure: enqueueActions(({ context, event, enqueue }) => {
      const id = (event as MessageOf<ServerMessage, 'INIT_OK'>).detail.payload;
      enqueue.assign({ id });
      enqueue.emit({ type: 'initialized', detail: { id } });
      enqueue.sendTo('signalling', send({ type: 'CONFIG_PEER', detail: { payload: context.lobby } }));
    }),
    answerKeepalive: enqueueActions(({ enqueue }) =>
      enqueue.sendTo('signalling', send({ type: 'KEEPALIVE', detail: {} })),
    ),
    sendShutdown: enqueueActions(({ enqueue }) => {
      enqueue.sendTo('signalling', send({ type: 'SHUTDOWN', detail: {} }));
      enqueue.sendTo('signalling', { type: 'signalling.close', code: 1000, reason: 'leaving' });
    }),
    recordError: assign({ error: ({ event }) => errorFrom(event) }),
    recordTimeout: assign({
      error: ({ context }) =>
        new SignalboxError(ErrorCode.KeepaliveTimeout, `no KEEPALIVE from the server for ${context.serverTimeout} ms`),
    }),
    addHost: assign({
      hosts: ({ context, event }) => {
        const host = (event as MessageOf<ServerMessage, 'NEW_HOST'>).detail.payload;
        return context.hosts.includes(host) ? context.hosts : [...context.hosts, host];
      },
    }),
    removeHost: assign({
      hosts: ({ context, event }) =>
        context.hosts.filter((h) => h !== (event as MessageOf<ServerMessage, 'SHUTDOWN_ACK'>).detail.tx),
    }),
    takeOffer: assign(({ event }) => {
      const { tx, payload } = (event as MessageOf<ServerMessage, 'ANTICIPATE_OFFER'>).detail;
      return { host: tx, remoteOffer: payload, pendingAnswer: undefined, out: undefined, in: undefined };
    }),
    acceptOffer: enqueueActions(({ context, event, enqueue }) => {
      const { description } = event as Extract<ClientEvent, { type: 'rtc.description' }>;
      enqueue.sendTo(
        'signalling',
        send({ type: 'ACCEPT_OFFER', detail: { payload: description.sdp, rx: context.host! } }),
      );
    }),
    keepAnswer: assign({
      pendingAnswer: ({ event }) => (event as Extract<ClientEvent, { type: 'rtc.description' }>).description.sdp,
    }),
    applyHostAnswer: enqueueActions(({ event, enqueue }) => {
      const { payload } = (event as MessageOf<ServerMessage, 'ANTICIPATE_ANSWER'>).detail;
      enqueue.sendTo('rtcOut', {
        type: 'rtc.remoteDescription',
        description: { type: 'answer', sdp: payload },
      } satisfies RtcCommand);
    }),
    sendAnswer: enqueueActions(({ context, enqueue }) =>
      enqueue.sendTo(
        'signalling',
        send({ type: 'MAKE_ANSWER', detail: { payload: context.pendingAnswer!, rx: context.host! } }),
      ),
    ),
    keepChannel: assign(({ event }) => {
      const { label, transport } = event as Extract<ClientEvent, { type: 'rtc.open' }>;
      return parseLabel(label).side === 'out' ? { out: transport } : { in: transport };
    }),
    sendReady: enqueueActions(({ context, enqueue }) => {
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
    unlink: enqueueActions(({ context, event, enqueue }, params: { reason: UnlinkReason }) => {
      const host = context.host!;
      context.out?.close();
      context.in?.close();
      enqueue.emit({ type: 'unlinked', detail: { id: host, reason: params.reason } });
      // A link that dies under us may be a host that vanished: tell the server.
      if (params.reason === 'failed' || params.reason === 'lost') {
        enqueue.sendTo('signalling', send({ type: 'SHUTDOWN_WRN', detail: { rx: host } }));
      }
      enqueue.assign({
        host: undefined,
        remoteOffer: undefined,
        pendingAnswer: undefined,
        out: undefined,
        in: undefined,
        hosts: ({ context }) =>
          event.type === 'SHUTDOWN_ACK' ? context.hosts.filter((h) => h !== host) : context.hosts,
      });
    }),
    announceStop: enqueueActions(({ context, enqueue }) => {
      context.out?.close();
      context.in?.close();
      enqueue.emit({ type: 'stopped', detail: { error: context.error } });
    }),
  },
}).createMachine({
  id: 'cloudlinkPeer',
  context: ({ input }) => ({
    lobby: input.lobby,
    name: input.name,
    serverTimeout: input.serverTimeout ?? 25_000,
    handshakeTimeout: input.handshakeTimeout ?? 30_000,
    hosts: [],
  }),
  initial: 'active',
  states: {
    active: {
      type: 'parallel',
      invoke: { id: 'signalling', src: 'signalling' },
      on: {
        VIOLATION: { target: 'failed', actions: 'recordError' },
        'signalling.error': { target: 'failed', actions: 'recordError' },
        'signalling.closed': { target: 'failed', actions: 'recordError' },
        'xstate.error.actor.*': { target: 'failed', actions: 'recordError' },
        leave: '.protocol.leaving',
      },
      states: {
        protocol: {
          initial: 'connecting',
          states: {
            connecting: { on: { 'signalling.open': { target: 'initializing', actions: 'sendInit' } } },
            initializing: { on: { INIT_OK: { target: 'configuring', actions: 'configure' } } },
            configuring: { on: { ACK_PEER: 'lobby' } },
            lobby: {
              on: {
                NEW_HOST: { actions: 'addHost' },
                SHUTDOWN_ACK: { actions: 'removeHost' },
                ANTICIPATE_OFFER: { target: 'linking', actions: 'takeOffer' },
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
                    }) satisfies RtcInput,
                },
              ],
              on: {
                NEW_HOST: { actions: 'addHost' },
                SHUTDOWN_ACK: [
                  { guard: 'isFromHost', target: 'lobby', actions: { type: 'unlink', params: { reason: 'left' } } },
                  { actions: 'removeHost' },
                ],
                'rtc.open': { guard: 'isAboutHost', actions: 'keepChannel' },
                'link.timeout': {
                  guard: 'isDeadlineDue',
                  target: 'lobby',
                  actions: { type: 'unlink', params: { reason: 'timeout' } },
                },
                'rtc.failed': {
                  guard: 'isAboutHost',
                  target: 'lobby',
                  actions: { type: 'unlink', params: { reason: 'failed' } },
                },
                'rtc.closed': {
                  guard: 'isAboutHost',
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
                        guard: ({ event }) => parseLabel(event.label).side === 'out',
                        target: 'awaitingAnswer',
                        actions: 'acceptOffer',
                      },
                      { actions: 'keepAnswer' },
                    ],
                  },
                },
                awaitingAnswer: {
                  on: {
                    'rtc.description': { actions: 'keepAnswer' },
                    ANTICIPATE_ANSWER: { guard: 'isFromHost', target: 'answering', actions: 'applyHostAnswer' },
                  },
                },
                answering: {
                  always: { guard: 'hasAnswer', target: 'awaitingCheck', actions: 'sendAnswer' },
                  on: { 'rtc.description': { actions: 'keepAnswer' } },
                },
                awaitingCheck: { on: { ACK_CHECK: { guard: 'isFromHost', target: 'awaitingChannels' } } },
                awaitingChannels: { always: { guard: 'hasChannels', target: 'linked', actions: 'sendReady' } },
                linked: { entry: 'cancelDeadline' },
              },
            },
            leaving: { entry: 'sendShutdown', always: '#cloudlinkPeer.closed' },
          },
        },
        watchdog: {
          initial: 'idle',
          states: {
            idle: { on: { INIT_OK: 'watching', KEEPALIVE: { actions: 'answerKeepalive' } } },
            watching: {
              after: { serverTimeout: { target: '#cloudlinkPeer.failed', actions: 'recordTimeout' } },
              // Any KEEPALIVE from the server is answered, and restarts the watch.
              on: { KEEPALIVE: { target: 'watching', reenter: true, actions: 'answerKeepalive' } },
            },
          },
        },
      },
    },
    closed: { type: 'final', entry: 'announceStop' },
    failed: { type: 'final', entry: 'announceStop' },
  },
});
