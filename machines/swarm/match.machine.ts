import { assertEvent, assign, sendParent, sendTo, setup, type ErrorActorEvent } from 'xstate';
import { errorCodeOf } from '../../src/errors.js';
import { missingActor } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { RtcSessionDescription } from '../../src/rtc/types.js';
import { readDescription, wireProblem, type WireProblem, type WireRead } from '../../src/rtc/wire.js';
import type { Transport } from '../../src/transport.js';
import { SwarmError } from './errors.js';
import type { ClientMessage, MessageOf, ServerMessage } from './protocol.js';

export const RTC_HINT =
  'use swarmMatch.provide({ actors: { rtc: fromRtc({ RTCPeerConnection }) } }) and give it to the peer as its `match` ' +
  '(non-trickle: swarm has no candidate message); createSwarmPeer() does both';

/** Our side of a match: alice makes the offer, bob answers it. */
export type MatchRole = 'alice' | 'bob';

export interface MatchInput {
  /** This request's `context_id`: the peer numbers them. Also the label of the match's `rtc` actor and the name of the link. */
  context_id: string;
}

export interface MatchContext {
  readonly context_id: string;
  /** Set by the server's `requesting_offer` (alice) or `wait_for_offer` (bob). */
  role?: MatchRole;
  /** bob: alice's SDP offer, for the answering `rtc` actor. */
  offer?: string;
  /** The open data channel, once linked. */
  transport?: Transport;
  /** Why the match failed. */
  error?: SwarmError;
}

/** The server messages of one request, routed to its match by `context_id`. */
export type MatchMessage = MessageOf<
  ServerMessage,
  'requesting_offer' | 'wait_for_offer' | 'forwarding_offer' | 'forwarding_answer' | 'error'
>;

export type MatchEvent = MatchMessage | RtcEmitted | ErrorActorEvent<unknown, 'rtc'>;

/** What a match tells the peer that spawned it (`sendParent`). */
export type MatchReport =
  /** A message for the server: the peer sends it on its signalling connection. */
  | { type: 'match.signal'; message: ClientMessage }
  /** The server paired the request: we play `role`. */
  | { type: 'match.matched'; context_id: string; role: MatchRole }
  /** The data channel is open: from now on the match holds the link's connection, until the peer stops it. */
  | { type: 'match.linked'; context_id: string; role: MatchRole; transport: Transport }
  /** The link's connection closed, or WebRTC failed after the channel opened. */
  | { type: 'match.unlinked'; context_id: string; reason: 'closed' | 'failed' };

/** How a match ended (its output): it failed before its data channel opened. */
export interface MatchOutput {
  context_id: string;
  /** `peer-gone` (the other side left), `timeout` (the server gave up), `rtc-failed`, `protocol` (the server refused the request). */
  error: SwarmError;
}

const signal = (message: ClientMessage): MatchReport => ({ type: 'match.signal', message });

/** alice's offer, as any client of the protocol may send it: an SDP string or `{ type, sdp }`. */
const readOffer = ({ offer }: MessageOf<ServerMessage, 'forwarding_offer'>['detail']) =>
  readDescription(offer, 'offer', 'offer');
/** bob's answer, likewise. */
const readAnswer = ({ answer }: MessageOf<ServerMessage, 'forwarding_answer'>['detail']) =>
  readDescription(answer, 'answer', 'answer');
/** The error of a description that could not be read (the `isReadable` guard said so), named by its message. */
const unreadable = (type: string, read: WireRead<unknown>) => `${type}: ${wireProblem(read as WireProblem)}`;
/** Report params: the role the server gave us (`takeRole` ran just before). */
const matched = ({ context }: { context: MatchContext }): MatchReport => ({
  type: 'match.matched',
  context_id: context.context_id,
  role: context.role!,
});
const unlinked =
  (reason: 'closed' | 'failed') =>
  ({ context }: { context: MatchContext }): MatchReport => ({
    type: 'match.unlinked',
    context_id: context.context_id,
    reason,
  });

/** The error a server `error` message for this request stands for. */
function serverError({ code, message }: MessageOf<ServerMessage, 'error'>['detail']): SwarmError {
  if (code === 'ERR_PEER_GONE') return new SwarmError('peer-gone', `the server: ${message}`);
  if (code === 'ERR_TIMEOUT') return new SwarmError('timeout', `the server: ${message}`);
  return new SwarmError('protocol', `the server refused: ${message}`, { code: errorCodeOf(code) });
}

/** The error of a failed (`rtc.failed`) or crashed (`xstate.error.actor.rtc`, e.g. none provided) rtc actor. */
function rtcError(event: Extract<RtcEmitted, { type: 'rtc.failed' }> | ErrorActorEvent): SwarmError {
  const { error: cause } = event;
  return new SwarmError('rtc-failed', cause instanceof Error ? cause.message : String(cause), { cause });
}

/**
 * One matchmaking request of a `swarmPeer`, from `requesting_peers` to an
 * open data channel, and the WebRTC connection under it (its `rtc` child,
 * non-trickle: one SDP with every candidate in it).
 *
 * It asks the server on entry; the server makes it alice
 * (`requesting_offer`: make the offer, send it with `sending_offer`, apply
 * the `forwarding_answer`) or bob (`wait_for_offer`: answer the
 * `forwarding_offer` with `sending_answer`). Once the channel is open it is
 * `linked` and keeps the connection for the link's lifetime: the peer
 * stops it to close the link, and hears `match.unlinked` when the
 * connection ends by itself.
 *
 * It sends its description as `{ type, sdp }` and reads the other side's as
 * that or an SDP string; one it cannot read ends the match `protocol`,
 * naming the field.
 *
 * Every end before the channel opened is the final state `failed`, its
 * output a typed {@link SwarmError}. There is no timer here: the server's
 * `matchTimeout` ends a match that takes too long (`error`, `ERR_TIMEOUT`),
 * and a connection that cannot be made ends in `rtc.failed`.
 *
 * Messages go to the parent as {@link MatchReport}s (`report`); the peer
 * routes the server's messages here by `context_id`. Provide `rtc`
 * (`fromRtc({ RTCPeerConnection })`); without it a match fails
 * `rtc-failed`, saying so.
 */
export const swarmMatch = setup({
  types: {
    context: {} as MatchContext,
    events: {} as MatchEvent,
    input: {} as MatchInput,
    output: {} as MatchOutput,
  },
  actors: {
    rtc: missingActor<RtcCommand, RtcInput>('rtc', RTC_HINT),
  },
  guards: {
    /** The other side's description could be read. */
    isReadable: (_, read: WireRead<RtcSessionDescription>) => read.problem === undefined,
  },
  actions: {
    /** Everything a match tells its peer goes through here (tests replace it to watch). */
    report: sendParent((_, report: MatchReport) => report),
    takeRole: assign((_, role: MatchRole) => ({ role })),
    keepOffer: assign((_, { sdp }: RtcSessionDescription) => ({ offer: sdp })),
    applyAnswer: sendTo('rtc', (_, description: RtcSessionDescription): RtcCommand => ({
      type: 'rtc.remoteDescription',
      description,
    })),
    keepTransport: assign((_, { transport }: { transport: Transport }) => ({ transport })),
    /** A channel that opened before the answer was applied is not ours to keep. */
    closeStrayChannel: ({ event }) => {
      assertEvent(event, 'rtc.open');
      event.transport.close();
    },
    failFromServer: assign((_, detail: MessageOf<ServerMessage, 'error'>['detail']) => ({
      error: serverError(detail),
    })),
    failRtc: assign({
      error: ({ event }) => {
        assertEvent(event, ['rtc.failed', 'xstate.error.actor.rtc']);
        return rtcError(event);
      },
    }),
    /** The other side's description cannot be read: `problem` names the field. */
    failUnreadable: assign((_, { problem }: { problem: string }) => ({ error: new SwarmError('protocol', problem) })),
  },
}).createMachine({
  id: 'swarmMatch',
  context: ({ input }) => ({ context_id: input.context_id }),
  initial: 'pending',
  states: {
    /** `requesting_peers` sent, no partner yet. */
    pending: {
      entry: {
        type: 'report',
        params: ({ context }) => signal({ type: 'requesting_peers', detail: { context_id: context.context_id } }),
      },
      on: {
        requesting_offer: {
          target: 'connection.negotiating.offering',
          actions: [
            { type: 'takeRole', params: 'alice' },
            { type: 'report', params: matched },
          ],
        },
        wait_for_offer: {
          target: 'awaitingOffer',
          actions: [
            { type: 'takeRole', params: 'bob' },
            { type: 'report', params: matched },
          ],
        },
        error: { target: 'failed', actions: { type: 'failFromServer', params: ({ event }) => event.detail } },
      },
    },
    /** bob: `wait_for_offer` came; waiting for `forwarding_offer`. */
    awaitingOffer: {
      on: {
        forwarding_offer: [
          {
            guard: { type: 'isReadable', params: ({ event }) => readOffer(event.detail) },
            target: 'connection.negotiating.answering',
            actions: { type: 'keepOffer', params: ({ event }) => readOffer(event.detail).value! },
          },
          // alice hears nothing of it: the server's matchTimeout ends her side.
          {
            target: 'failed',
            actions: {
              type: 'failUnreadable',
              params: ({ event }) => ({ problem: unreadable('forwarding_offer', readOffer(event.detail)) }),
            },
          },
        ],
        error: { target: 'failed', actions: { type: 'failFromServer', params: ({ event }) => event.detail } },
      },
    },
    /** The WebRTC connection: alice offers, bob answers the offer he got. */
    connection: {
      invoke: {
        id: 'rtc',
        src: 'rtc',
        input: ({ context }): RtcInput =>
          context.role === 'alice'
            ? { label: context.context_id, role: 'offerer' }
            : { label: context.context_id, role: 'answerer', remoteOffer: context.offer! },
      },
      initial: 'negotiating',
      states: {
        /** Before the data channel opened: any failure ends the match. */
        negotiating: {
          initial: 'offering',
          on: {
            error: {
              target: '#swarmMatch.failed',
              actions: { type: 'failFromServer', params: ({ event }) => event.detail },
            },
            'rtc.failed': { target: '#swarmMatch.failed', actions: 'failRtc' },
            'xstate.error.actor.rtc': { target: '#swarmMatch.failed', actions: 'failRtc' },
            'rtc.open': { actions: 'closeStrayChannel' },
          },
          states: {
            /** alice: our offer is being made (ICE gathering). */
            offering: {
              on: {
                'rtc.description': {
                  target: 'awaitingAnswer',
                  actions: {
                    type: 'report',
                    params: ({ context, event }) =>
                      signal({
                        type: 'sending_offer',
                        // The browser's form, `{ type, sdp }`, as `JSON.stringify(pc.localDescription)` gives.
                        detail: { offer: event.description, context_id: context.context_id },
                      }),
                  },
                },
              },
            },
            /** alice: `sending_offer` sent; waiting for `forwarding_answer`. */
            awaitingAnswer: {
              on: {
                forwarding_answer: [
                  {
                    guard: { type: 'isReadable', params: ({ event }) => readAnswer(event.detail) },
                    target: 'connecting',
                    actions: { type: 'applyAnswer', params: ({ event }) => readAnswer(event.detail).value! },
                  },
                  {
                    target: '#swarmMatch.failed',
                    actions: {
                      type: 'failUnreadable',
                      params: ({ event }) => ({ problem: unreadable('forwarding_answer', readAnswer(event.detail)) }),
                    },
                  },
                ],
              },
            },
            /** bob: the offer came; our answer is being made. */
            answering: {
              on: {
                'rtc.description': {
                  target: 'connecting',
                  actions: {
                    type: 'report',
                    params: ({ context, event }) =>
                      signal({
                        type: 'sending_answer',
                        detail: { answer: event.description, context_id: context.context_id },
                      }),
                  },
                },
              },
            },
            /** Both descriptions are set (alice applied the answer, bob sent it): waiting for the data channel. */
            connecting: {
              on: {
                'rtc.open': {
                  target: '#swarmMatch.connection.linked',
                  actions: { type: 'keepTransport', params: ({ event }) => event },
                },
              },
            },
          },
        },
        /** The data channel is open: the link's connection, kept until the peer stops the match. */
        linked: {
          entry: {
            type: 'report',
            params: ({ context }) => ({
              type: 'match.linked',
              context_id: context.context_id,
              role: context.role!,
              transport: context.transport!,
            }),
          },
          on: {
            'rtc.closed': { actions: { type: 'report', params: unlinked('closed') } },
            'rtc.failed': { actions: { type: 'report', params: unlinked('failed') } },
            'xstate.error.actor.rtc': { actions: { type: 'report', params: unlinked('failed') } },
          },
        },
      },
    },
    /** It ended before its data channel opened; the output says why. */
    failed: { type: 'final' },
  },
  output: ({ context }) => ({ context_id: context.context_id, error: context.error! }),
});
