import { assertEvent, assign, emit, enqueueActions, setup, type ErrorActorEvent } from 'xstate';
import { ErrorCode, errorCodeOf, ProtocolError, SignalboxError, TransportError } from '../../src/errors.js';
import { missingActor, type SignallingCommand, type SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { RtcMediaTrackLike } from '../../src/rtc/types.js';
import { readCandidate, readDescription, wireProblem } from '../../src/rtc/wire.js';
import type { Transport } from '../../src/transport.js';
import {
  CLOSE_TAKEN_OVER,
  generateId,
  type CallInfo,
  type ClientMessage,
  type DirectoryEntry,
  type MessageOf,
  type SentIceRelay,
  type SentSdpRelay,
  type ServerMessage,
  type UserProfiles,
} from './protocol.js';
import { profileError } from './codec.js';

export interface ClientInput {
  /**
   * This run's `sessionid`. Keep it secret: whoever has it can take the
   * session over. @default generateId(): fresh and unguessable
   */
  sessionid?: string;
  /** Profiles to announce (`userprofile`) after each `register`; `profile` commands replace them. */
  profile?: UserProfiles;
  /** How long to wait before connecting again after the signalling connection dropped, in ms. @default 1000 */
  reconnectDelay?: number;
  /** How many reconnects in a row (without a `registered` in between) before giving up. @default 10 */
  reconnectAttempts?: number;
  /** How long the server has to answer `register` before the connection counts as failed, in ms. @default 10000 */
  registerTimeout?: number;
}

/** One call this client is in, and its WebRTC connection (`rtc` child `call:<callid>`). */
export interface ClientCall {
  readonly info: CallInfo;
  /** The other side's sessionid. */
  readonly peerid: string;
  /** The caller makes the offer and the data channel. */
  readonly role: 'offerer' | 'answerer';
  /** The call's data channel, once open. */
  transport?: Transport;
}

export interface ClientContext {
  readonly sessionid: string;
  profile?: UserProfiles;
  readonly reconnectDelay: number;
  readonly reconnectAttempts: number;
  readonly registerTimeout: number;
  /** Reconnects since the last `registered`. */
  attempts: number;
  calls: Record<string, ClientCall>;
  error?: SignalboxError;
}

/** What the application sends a workrooms client. */
export type ClientCommand =
  /** Calls a session (`call`). */
  | { type: 'call'; to: string }
  /** Hangs up one call (or several: `hangup` with every callid). */
  | { type: 'end'; callids: string[] }
  /** Searches the directory (`autocomplete`); the answer is emitted as `autocomplete`. */
  | { type: 'search'; search: string }
  /** Replaces this client's profiles (`userprofile`, now and after every reconnect). */
  | { type: 'profile'; profile: UserProfiles }
  /** Hangs up every call and disconnects for good. */
  | { type: 'leave' };

export type ClientEvent = ServerMessage | SignallingEvent | RtcEmitted | ClientCommand;

/** Why a call ended, as the `hangup` event says. */
export type HangupReason =
  /** This client hung up (`end`, `leave`). */
  | 'local'
  /**
   * The other side hung up (or closed the call's data channel), or the server
   * ended it (the other side did not come back in time).
   */
  | 'remote'
  /**
   * Its WebRTC connection failed, the other side sent a description or candidate it could not read, or the client
   * stopped for good (`stopped` with an error).
   */
  | 'failed';

/** Emitted by a workrooms client (subscribe with `actor.on(type, …)` or `dispatchEmitted`). */
export type ClientEmitted =
  /** `register` was answered: `calls` are the calls that carried over a reconnect. */
  | { type: 'registered'; detail: { sessionid: string; calls: string[] } }
  | { type: 'outboundcall'; detail: CallInfo }
  | { type: 'inboundcall'; detail: CallInfo }
  /** The call's data channel is open: `transport` sends and receives on it. */
  | { type: 'connected'; detail: { callid: string; peerid: string; transport: Transport } }
  /**
   * The other side of a call sends a media track (a `MediaStreamTrack` of the
   * WebRTC implementation), in these `MediaStream`s. Only where both sides
   * give the `rtc` actor media (`fromRtc({ media })`).
   */
  | { type: 'track'; detail: { callid: string; peerid: string; track: RtcMediaTrackLike; streams: readonly unknown[] } }
  /** A call ended. `sessionid` is the other side. */
  | { type: 'hangup'; detail: { callid: string; sessionid: string; reason: HangupReason } }
  /** A search's answer; `truncated` when more matched than it carries (the server's count or size limit). */
  | { type: 'autocomplete'; detail: { search: string; results: DirectoryEntry[]; truncated?: boolean } }
  /**
   * A message was refused (by the server, or here: offline, a bad profile) or the server sent a bad frame; nothing
   * else happened. Or (`ERR_INVALID_FIELD`, `event` `offer` / `answer` / `ice`) the other side of a call sent a
   * description or candidate this client cannot read: that call ended (`hangup`, reason `failed`).
   */
  | { type: 'error'; detail: { code: string; message: string; event?: string } }
  /** The signalling connection dropped; the client connects again after `reconnectDelay`. Calls stay up. */
  | { type: 'disconnected'; detail: { attempt: number } }
  /**
   * The client stopped for good: `error` is set unless it was asked to `leave`
   * (`ERR_CANCELLED` when another connection took its session over). Each of
   * its calls ended with `hangup` just before.
   */
  | { type: 'stopped'; detail: { error?: SignalboxError } };

export type ClientSignallingCommand = SignallingCommand<ClientMessage>;

export const SIGNALLING_HINT =
  "use machine.provide({ actors: { signalling: fromTransport(() => webSocketTransport('wss://…/workrooms'), workrooms.clientCodec()) } })";
export const RTC_HINT =
  'use machine.provide({ actors: { rtc: fromRtc({ RTCPeerConnection, trickle: true }) } }) with the browser global, werift or node-datachannel';

/** The id of the `rtc` child of a call. */
export const rtcId = (callid: string) => `call:${callid}`;

const send = (message: ClientMessage): ClientSignallingCommand => ({ type: 'signalling.send', message });

type ServerDetail<T extends ServerMessage['type']> = MessageOf<ServerMessage, T>['detail'];
type SignallingClosed = Extract<SignallingEvent, { type: 'signalling.closed' }>;

// Transitions whose action is given what it reads from their event (see the setup's `actions`).
const recordError = {
  type: 'recordError',
  params: ({ event }: { event: SignallingClosed | MessageOf<ServerMessage, 'error'> }) => ({ error: errorFrom(event) }),
} as const;
const recordCrash = {
  type: 'recordError',
  params: ({ event }: { event: ErrorActorEvent }) => ({ error: errorFrom(event) }),
} as const;
/** A call's rtc actor failed, closed or crashed: `callFailed`, telling the server when `tell` (online). */
const callFailedOn = (tell: boolean) =>
  ({
    'rtc.failed': { actions: { type: 'callFailed', params: { tell } } },
    'rtc.closed': { actions: { type: 'callFailed', params: { tell } } },
    'xstate.error.actor.*': { actions: { type: 'callFailed', params: { tell } } },
  }) as const;
const sendCall = {
  type: 'sendCall',
  params: ({ event }: { event: Extract<ClientCommand, { type: 'call' }> }) => ({ to: event.to }),
} as const;
const sendSearch = {
  type: 'sendSearch',
  params: ({ event }: { event: Extract<ClientCommand, { type: 'search' }> }) => ({ search: event.search }),
} as const;

/**
 * @internal The setup (types, actions with their `params`, guards, actors) that
 * {@link workroomsClient} is created from; exported for the type tests, which show
 * that an action wired to a transition whose event lacks what it reads does
 * not compile.
 */
export const workroomsClientSetup = setup({
  types: {
    context: {} as ClientContext,
    events: {} as ClientEvent,
    input: {} as ClientInput,
    emitted: {} as ClientEmitted,
  },
  actors: {
    signalling: missingActor<ClientSignallingCommand>('signalling', SIGNALLING_HINT),
    rtc: missingActor<RtcCommand, RtcInput>('rtc', RTC_HINT),
  },
  delays: {
    reconnectDelay: ({ context }) => context.reconnectDelay,
    registerTimeout: ({ context }) => context.registerTimeout,
  },
  guards: {
    canReconnect: ({ context }) => context.attempts < context.reconnectAttempts,
    isAboutRegister: ({ event }) => {
      assertEvent(event, 'error');
      return event.detail.event === 'register';
    },
    /**
     * The server refused a `hangup`: this client names only calls it holds, so
     * the server had just ended them (the other side's hangup crossed ours).
     */
    isHangupRace: ({ event }) => {
      assertEvent(event, 'error');
      const { code, event: about } = event.detail;
      return about === 'hangup' && code === ErrorCode.NotPermitted;
    },
    isTakenOver: ({ event }) => {
      assertEvent(event, 'signalling.closed');
      return event.info.code === CLOSE_TAKEN_OVER;
    },
  },
  actions: {
    sendRegister: enqueueActions(({ context, enqueue }) => {
      // Who is on each call, not the profiles: those could make `register` outgrow the server's frame cap.
      const calls = Object.values(context.calls).map(({ info: { userprofiles: _, ...call } }) => call);
      enqueue.sendTo('signalling', send({ type: 'register', detail: { sessionid: context.sessionid, calls } }));
    }),
    registered: enqueueActions(({ context, enqueue }, { sessionid, calls: restored }: ServerDetail<'registered'>) => {
      enqueue.assign({ attempts: 0 });
      // Calls the server no longer has are over (it also says so with `hangup`).
      for (const call of Object.values(context.calls)) {
        if (!restored.includes(call.info.callid)) dropCall(enqueue, context, call.info.callid, 'remote');
      }
      if (context.profile) enqueue.sendTo('signalling', send({ type: 'userprofile', detail: context.profile }));
      enqueue.emit({ type: 'registered', detail: { sessionid, calls: restored } });
    }),
    sendCall: enqueueActions(({ enqueue }, { to }: { to: string }) => {
      enqueue.sendTo('signalling', send({ type: 'call', detail: { to } }));
    }),
    sendSearch: enqueueActions(({ enqueue }, { search }: { search: string }) => {
      enqueue.sendTo('signalling', send({ type: 'autocomplete', detail: { search } }));
    }),
    /** `profile`: keeps the profile, and sends it when `send` (registered); one the server would refuse is refused here. */
    takeProfile: enqueueActions(({ enqueue }, { profile, send: now }: { profile: UserProfiles; send: boolean }) => {
      const problem = profileError(profile);
      if (problem !== undefined) {
        // Kept, a profile that cannot be encoded would crash the signalling connection after every register.
        enqueue.emit({
          type: 'error',
          detail: { code: ErrorCode.InvalidField, message: `profile: ${problem}`, event: 'profile' },
        });
        return;
      }
      enqueue.assign({ profile });
      if (now) enqueue.sendTo('signalling', send({ type: 'userprofile', detail: profile }));
    }),
    /** `end`: drops the calls here, and tells the server when `tell` (online). */
    endCalls: enqueueActions(({ context, enqueue }, { callids, tell }: { callids: string[]; tell: boolean }) => {
      hangUp(enqueue, context, callids, tell);
    }),
    endAll: enqueueActions(({ context, enqueue }, { tell }: { tell: boolean }) => {
      hangUp(enqueue, context, Object.keys(context.calls), tell);
    }),
    /** The client stopped for good: its calls are over (the server learns from the closed connection). */
    dropAll: enqueueActions(({ context, enqueue }) => {
      for (const callid of Object.keys(context.calls)) dropCall(enqueue, context, callid, 'failed');
    }),
    remoteHangup: enqueueActions(({ context, enqueue }, { calls }: ServerDetail<'hangup'>) => {
      for (const callid of new Set(calls.map((call) => call.callid))) dropCall(enqueue, context, callid, 'remote');
    }),
    addCall: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, ['outboundcall', 'inboundcall']);
      const { type, detail } = event;
      if (context.calls[detail.callid]) return;
      const role = type === 'outboundcall' ? 'offerer' : 'answerer';
      const peerid = role === 'offerer' ? detail.tosessionid : detail.fromsessionid;
      const call: ClientCall = { info: detail, peerid, role };
      enqueue.assign({ calls: { ...context.calls, [detail.callid]: call } });
      enqueue.spawnChild('rtc', {
        id: rtcId(detail.callid),
        input: { label: detail.callid, role } satisfies RtcInput,
      });
      enqueue.emit({ type, detail });
    }),
    /** Sends what a call's rtc child made to the other side, in the browser's form: `{ type, sdp }`, `RTCIceCandidateInit`. */
    relaySignal: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, ['rtc.description', 'rtc.candidate']);
      const call = context.calls[event.label];
      if (!call) return;
      const base = { callid: event.label, peerid: call.peerid };
      enqueue.sendTo(
        'signalling',
        send(
          event.type === 'rtc.candidate'
            ? { type: 'ice', detail: { ...base, candidate: event.candidate } satisfies SentIceRelay }
            : {
                type: event.description.type,
                detail: {
                  ...base,
                  sdp: { type: event.description.type, sdp: event.description.sdp },
                } satisfies SentSdpRelay,
              },
        ),
      );
    }),
    /**
     * Hands a relayed `offer`, `answer` or `ice` of one of this client's calls
     * to its rtc child, read in any form the other side may send (see
     * `readDescription`, `readCandidate`); the end of candidates needs nothing.
     * One it cannot read ends the call (`hangup`, reason `failed`, and the
     * server is told) with an `error` event naming the field: the connection
     * could not be made without it.
     */
    applySignal: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, ['offer', 'answer', 'ice']);
      const { type, detail } = event;
      const call = context.calls[detail.callid];
      if (!call || call.peerid !== detail.peerid) return;
      const read =
        type === 'ice'
          ? readCandidate(detail.candidate, 'detail.candidate')
          : readDescription(detail.sdp, type, 'detail.sdp');
      if (read.problem !== undefined) {
        enqueue.emit({
          type: 'error',
          detail: {
            code: ErrorCode.InvalidField,
            message: `${type}: ${wireProblem(read)}; call ${detail.callid} ended`,
            event: type,
          },
        });
        dropCall(enqueue, context, detail.callid, 'failed');
        enqueue.sendTo('signalling', send({ type: 'hangup', detail: { calls: [{ callid: detail.callid }] } }));
        return;
      }
      if (read.value === null) return;
      enqueue.sendTo(
        rtcId(detail.callid),
        ('sdp' in read.value
          ? { type: 'rtc.remoteDescription', description: read.value }
          : { type: 'rtc.remoteCandidate', candidate: read.value }) satisfies RtcCommand,
      );
    }),
    callOpen: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, 'rtc.open');
      const { label, transport } = event;
      const call = context.calls[label];
      if (!call) return;
      enqueue.assign({ calls: { ...context.calls, [label]: { ...call, transport } } });
      enqueue.emit({ type: 'connected', detail: { callid: label, peerid: call.peerid, transport } });
    }),
    callTrack: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, 'rtc.track');
      const { label, track, streams } = event;
      const call = context.calls[label];
      if (call) enqueue.emit({ type: 'track', detail: { callid: label, peerid: call.peerid, track, streams } });
    }),
    /**
     * A call's WebRTC connection failed or closed: the call is over, for the
     * other side too when `tell`. A channel that closes after it was open was
     * closed by the other side (this one stops its rtc child first): `remote`.
     */
    callFailed: enqueueActions(({ context, event, enqueue }, { tell }: { tell: boolean }) => {
      const callid = rtcCallid(event);
      if (callid === undefined || !context.calls[callid]) return;
      dropCall(enqueue, context, callid, event.type === 'rtc.closed' ? 'remote' : 'failed');
      if (tell) enqueue.sendTo('signalling', send({ type: 'hangup', detail: { calls: [{ callid }] } }));
    }),
    reportResults: emit((_, detail: ServerDetail<'autocomplete'>) => ({ type: 'autocomplete' as const, detail })),
    reportServerError: emit((_, detail: ServerDetail<'error'>) => ({ type: 'error' as const, detail })),
    reportBadFrame: emit(({ event }) => {
      assertEvent(event, 'signalling.error');
      const { error } = event;
      return {
        type: 'error' as const,
        detail: { code: error.code, message: `the server sent a bad frame: ${error.message}` },
      };
    }),
    refuseOffline: emit(({ event }) => ({
      type: 'error' as const,
      detail: {
        code: ErrorCode.TransportClosed,
        message: `${event.type}: not connected to the server (reconnecting)`,
        event: event.type,
      },
    })),
    countAttempt: enqueueActions(({ context, enqueue }) => {
      enqueue.assign({ attempts: context.attempts + 1 });
      enqueue.emit({ type: 'disconnected', detail: { attempt: context.attempts + 1 } });
    }),
    recordError: assign((_, { error }: { error: SignalboxError }) => ({ error })),
    recordTimeout: assign({
      error: ({ context }) =>
        new SignalboxError(
          ErrorCode.Timeout,
          `the server did not answer register within ${context.registerTimeout} ms`,
        ),
    }),
    announceStop: emit(({ context }) => ({ type: 'stopped' as const, detail: { error: context.error } })),
  },
});

/**
 * A workrooms client: it registers its `sessionid` (and, after a reconnect,
 * the calls it still has), announces its profile, places and takes calls,
 * and runs one WebRTC connection per call (`rtc` child `call:<callid>`,
 * trickle ICE over `offer` / `answer` / `ice`). The caller makes the offer
 * and the data channel. When the signalling connection drops, the calls stay
 * up peer to peer and the client connects again after `reconnectDelay`,
 * registering with its calls so the server keeps them.
 *
 * Provide `signalling` (a transport to the server's `/workrooms`, with
 * `clientCodec()`) and `rtc` (`fromRtc({ RTCPeerConnection, trickle: true })`).
 */
export const workroomsClient = workroomsClientSetup.createMachine({
  id: 'workroomsClient',
  context: ({ input }) => ({
    sessionid: input?.sessionid ?? generateId(),
    profile: checkedProfile(input?.profile),
    reconnectDelay: input?.reconnectDelay ?? 1000,
    reconnectAttempts: input?.reconnectAttempts ?? 10,
    registerTimeout: input?.registerTimeout ?? 10_000,
    attempts: 0,
    calls: {},
  }),
  initial: 'active',
  states: {
    active: {
      on: {
        'rtc.open': { actions: 'callOpen' },
        'rtc.track': { actions: 'callTrack' },
        ...callFailedOn(false),
        end: { actions: { type: 'endCalls', params: ({ event }) => ({ callids: event.callids, tell: false }) } },
        leave: { target: 'left', actions: { type: 'endAll', params: { tell: false } } },
      },
      initial: 'online',
      states: {
        online: {
          invoke: { id: 'signalling', src: 'signalling' },
          on: {
            'signalling.closed': [
              // Another connection registered our sessionid: reconnecting would only take it back, and so on.
              { guard: 'isTakenOver', target: '#workroomsClient.failed', actions: recordError },
              { guard: 'canReconnect', target: 'reconnecting', actions: 'countAttempt' },
              { target: '#workroomsClient.failed', actions: recordError },
            ],
            'xstate.error.actor.signalling': [
              { guard: 'canReconnect', target: 'reconnecting', actions: 'countAttempt' },
              { target: '#workroomsClient.failed', actions: recordCrash },
            ],
            'signalling.error': { actions: 'reportBadFrame' },
            error: [
              { guard: 'isAboutRegister', target: '#workroomsClient.failed', actions: recordError },
              // The call is over either way: not worth an error event.
              { guard: 'isHangupRace' },
              { actions: { type: 'reportServerError', params: ({ event }) => event.detail } },
            ],
            outboundcall: { actions: 'addCall' },
            inboundcall: { actions: 'addCall' },
            hangup: { actions: { type: 'remoteHangup', params: ({ event }) => event.detail } },
            autocomplete: { actions: { type: 'reportResults', params: ({ event }) => event.detail } },
            offer: { actions: 'applySignal' },
            answer: { actions: 'applySignal' },
            ice: { actions: 'applySignal' },
            'rtc.description': { actions: 'relaySignal' },
            'rtc.candidate': { actions: 'relaySignal' },
            ...callFailedOn(true),
            end: { actions: { type: 'endCalls', params: ({ event }) => ({ callids: event.callids, tell: true }) } },
            profile: {
              actions: { type: 'takeProfile', params: ({ event }) => ({ profile: event.profile, send: true }) },
            },
            leave: '.leaving',
          },
          initial: 'registering',
          states: {
            registering: {
              entry: 'sendRegister',
              after: {
                registerTimeout: [
                  { guard: 'canReconnect', target: '#workroomsClient.active.reconnecting', actions: 'countAttempt' },
                  { target: '#workroomsClient.failed', actions: 'recordTimeout' },
                ],
              },
              on: {
                registered: { target: 'ready', actions: { type: 'registered', params: ({ event }) => event.detail } },
                // Kept until registered, when the profile goes out anyway.
                profile: {
                  actions: { type: 'takeProfile', params: ({ event }) => ({ profile: event.profile, send: false }) },
                },
                call: { actions: sendCall },
                search: { actions: sendSearch },
              },
            },
            ready: {
              on: {
                call: { actions: sendCall },
                search: { actions: sendSearch },
              },
            },
            // What the server must hear goes out before leaving `online` stops the signalling actor.
            leaving: {
              entry: { type: 'endAll', params: { tell: true } },
              always: '#workroomsClient.left',
            },
          },
        },
        // The calls stay up peer to peer meanwhile; what they signal is dropped.
        reconnecting: {
          after: { reconnectDelay: 'online' },
          on: {
            call: { actions: 'refuseOffline' },
            search: { actions: 'refuseOffline' },
            profile: {
              actions: { type: 'takeProfile', params: ({ event }) => ({ profile: event.profile, send: false }) },
            },
          },
        },
      },
    },
    left: { type: 'final', entry: 'announceStop' },
    failed: { type: 'final', entry: ['dropAll', 'announceStop'] },
  },
  output: ({ context }) => ({ error: context.error }),
});

/** The part of `enqueueActions`' enqueuer that {@link dropCall} uses. */
interface Enqueue {
  stopChild(id: string): void;
  assign(assigner: { calls: (args: { context: ClientContext }) => Record<string, ClientCall> }): void;
  emit(event: ClientEmitted): void;
}

/** Drops the calls of `callids` this client is in (each once) and, when `tell`, sends the server one `hangup` for them. */
function hangUp(
  enqueue: Enqueue & { sendTo(to: string, event: ClientSignallingCommand): void },
  context: ClientContext,
  callids: string[],
  tell: boolean,
): void {
  const ours = [...new Set(callids)].filter((callid) => context.calls[callid]);
  for (const callid of ours) dropCall(enqueue, context, callid, 'local');
  if (tell && ours.length > 0) {
    enqueue.sendTo('signalling', send({ type: 'hangup', detail: { calls: ours.map((callid) => ({ callid })) } }));
  }
}

/** Stops the call's rtc child, forgets the call and emits `hangup`. */
function dropCall(enqueue: Enqueue, context: ClientContext, callid: string, reason: HangupReason): void {
  const call = context.calls[callid];
  if (!call) return;
  enqueue.stopChild(rtcId(callid));
  enqueue.assign({
    calls: ({ context }) => Object.fromEntries(Object.entries(context.calls).filter(([id]) => id !== callid)),
  });
  enqueue.emit({ type: 'hangup', detail: { callid, sessionid: call.peerid, reason } });
}

/** The call whose rtc child an event is about: `rtc.*` events carry the label; a crash names the child. */
function rtcCallid(event: { type: string; label?: string }): string | undefined {
  if (event.label !== undefined) return event.label;
  const prefix = `xstate.error.actor.${rtcId('')}`;
  return event.type.startsWith(prefix) ? event.type.slice(prefix.length) : undefined;
}

/** @internal The input profile, if the server would take it: misuse throws, saying what is wrong. */
export function checkedProfile(profile: UserProfiles | undefined): UserProfiles | undefined {
  const problem = profile === undefined ? undefined : profileError(profile);
  if (problem !== undefined) {
    throw new TypeError(
      `workrooms: the server would refuse this profile (${problem}); pass JSON like { github: { login: 'ada' } }`,
    );
  }
  return profile;
}

/** The error a client stops with: its connection closed, the server refused `register`, or the signalling actor crashed. */
export function errorFrom(
  event: SignallingClosed | MessageOf<ServerMessage, 'error'> | ErrorActorEvent,
): SignalboxError {
  if (event.type === 'signalling.closed') {
    if (event.info.code === CLOSE_TAKEN_OVER) {
      return new SignalboxError(
        ErrorCode.Cancelled,
        'another connection registered this sessionid and took the session over (close 4001)',
      );
    }
    return (
      event.error ??
      new TransportError(
        ErrorCode.TransportClosed,
        `signalling closed (${event.info.code} ${event.info.reason})`.trim(),
      )
    );
  }
  if (event.type === 'error') {
    const { code, message } = event.detail;
    return new ProtocolError(errorCodeOf(code), `the server refused register: ${message}`);
  }
  const { error } = event;
  if (error instanceof SignalboxError) return error;
  return new TransportError(ErrorCode.ConnectFailed, error instanceof Error ? error.message : String(error), {
    cause: error,
  });
}
