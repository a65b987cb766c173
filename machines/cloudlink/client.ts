import { enqueueActions, type ErrorActorEvent, type ParameterizedObject } from 'xstate';
import { ErrorCode, ProtocolError, SignalboxError, TransportError } from '../../src/errors.js';
import { missingActor, type SignallingCommand, type SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcEmitted, RtcInput } from '../../src/rtc/rtc.actor.js';
import type { Transport } from '../../src/transport.js';
import type { ClientBoundMessage, ClientMessage } from './protocol.js';

/** Input shared by the host and peer machines. */
export interface ClientInput {
  /** The lobby to host or join (CONFIG_HOST / CONFIG_PEER payload). */
  lobby: string;
  /** Optional display name sent with INIT. */
  name?: string;
  /**
   * Give up on the server after this long without a KEEPALIVE from it (the
   * server sends one every `keepaliveInterval`, 10 s by default).
   * @default 25000
   */
  serverTimeout?: number;
  /**
   * A pair that is not linked this long after its handshake began is given
   * up (`unlinked` with reason `timeout`): the other side may be busy with
   * someone else, or gone.
   * @default 30000
   */
  handshakeTimeout?: number;
  /**
   * Host only: how many times in a row the host offers to one peer whose link
   * failed, timed out or was lost, before it waits for the peer to come back
   * (a new NEW_PEER). A link that reaches `ready` resets the count.
   * @default 3
   */
  offerAttempts?: number;
}

/** Events a host or peer machine accepts from the application. */
export type ClientCommand = { type: 'leave' };

/** A pair's handshake ran out of time; `generation` tells stale timers apart. */
export type LinkTimeout = { type: 'link.timeout'; peer: string; generation: number };

/** Everything a client machine reacts to. */
export type ClientEvent = ClientBoundMessage | SignallingEvent | RtcEmitted | ClientCommand | LinkTimeout;

/** Why a pair ended. */
export type UnlinkReason = 'left' | 'failed' | 'lost' | 'timeout';

/** Emitted by both client machines (subscribe with `actor.on(type, …)` or {@link dispatchEmitted}). */
export type ClientEmitted =
  /** INIT_OK arrived: `id` is this client's peer id. */
  | { type: 'initialized'; detail: { id: string } }
  /** The other side of a pair is ready: both data channels are open. `transport` sends on ours, receives on theirs. */
  | { type: 'linked'; detail: { id: string; transport: Transport } }
  /**
   * A pair ended: the remote left (SHUTDOWN_ACK), its WebRTC link failed, its
   * channels closed under us (lost), or the handshake took too long.
   */
  | { type: 'unlinked'; detail: { id: string; reason: UnlinkReason } }
  /** The client stopped for good: `error` is set unless it was asked to leave. */
  | { type: 'stopped'; detail: { error?: SignalboxError } };

export type ClientSignallingCommand = SignallingCommand<ClientMessage>;

export const SIGNALLING_HINT =
  'use machine.provide({ actors: { signalling: fromTransport(() => webSocketTransport(url), cloudlink.clientCodec()) } })';
export const RTC_HINT =
  'use machine.provide({ actors: { rtc: fromRtc({ RTCPeerConnection }) } }) with the browser global, werift or node-datachannel';

/**
 * The error a client ends with, from the event that ended it: VIOLATION, the
 * signalling connection's error or close, or a child actor's crash
 * (`xstate.error.actor.<id>`).
 */
export function errorFrom(event: ClientEvent | ErrorActorEvent): SignalboxError {
  switch (event.type) {
    case 'VIOLATION':
      return new ProtocolError(ErrorCode.Violation, `server reported a violation: ${event.detail.payload}`);
    case 'signalling.closed':
      return (
        event.error ??
        new TransportError(
          ErrorCode.TransportClosed,
          `signalling closed (${event.info.code} ${event.info.reason})`.trim(),
        )
      );
    case 'signalling.error':
      return event.error;
  }
  const error = 'error' in event ? event.error : undefined;
  if (error instanceof SignalboxError) return error;
  // `xstate.error.actor.<id>`: a child crashed. Only `signalling` opens the connection.
  const code = event.type === 'xstate.error.actor.signalling' ? ErrorCode.ConnectFailed : ErrorCode.RtcFailed;
  return new SignalboxError(code, error instanceof Error ? error.message : String(error ?? event.type), {
    cause: error,
  });
}

/** What the host's and the peer's contexts have in common, and all the {@link clientActions} read. */
export interface ClientContext {
  readonly lobby: string;
  readonly name?: string;
  readonly serverTimeout: number;
  readonly handshakeTimeout: number;
  /** Our peer id, from INIT_OK. */
  id?: string;
  error?: SignalboxError;
}

type Params = ParameterizedObject['params'] | undefined;
type EnqueueArgs<TContext extends ClientContext, TParams extends Params> = Parameters<
  typeof enqueueActions<TContext, ClientEvent, TParams, ClientEvent, never, never, never, never, ClientEmitted>
>;

/**
 * `enqueueActions` for an action of a client machine whose `TContext` and
 * `TParams` are given, not inferred: inference from a `setup()` whose other
 * actions take params as well does not settle. `TParams` are computed at the
 * transition that runs the action, from its (narrowed) event.
 */
export const enqueueAction = <TContext extends ClientContext, TParams extends Params = undefined>(
  ...args: EnqueueArgs<TContext, TParams>
) => enqueueActions<TContext, ClientEvent, TParams, ClientEvent, never, never, never, never, ClientEmitted>(...args);

/** The command that makes the `signalling` actor send `message` to the server. */
export const send = (message: ClientMessage): ClientSignallingCommand => ({ type: 'signalling.send', message });

/** The part of {@link ClientContext} that comes from the input, defaults applied. */
export const clientContext = (input: ClientInput) => ({
  lobby: input.lobby,
  name: input.name,
  serverTimeout: input.serverTimeout ?? 25_000,
  handshakeTimeout: input.handshakeTimeout ?? 30_000,
});

/** The delays of both client machines, from their context. */
export const clientDelays = {
  serverTimeout: ({ context }: { context: ClientContext }) => context.serverTimeout,
  handshakeTimeout: ({ context }: { context: ClientContext }) => context.handshakeTimeout,
};

/**
 * The actions the host and the peer share: the signalling connection's
 * life (INIT, CONFIG_HOST or CONFIG_PEER as `config` says, KEEPALIVE answers,
 * SHUTDOWN) and how the client records why it stopped. `configure` takes our
 * id as a param, computed from INIT_OK at the transition. (The
 * `as Partial<TContext>` casts are for TypeScript, which does not see that a
 * field of `ClientContext` is a field of every `TContext` that extends it.)
 */
export function clientActions<TContext extends ClientContext>(config: 'CONFIG_HOST' | 'CONFIG_PEER') {
  const sendInit = enqueueAction<TContext>(({ context, enqueue }) =>
    enqueue.sendTo(
      'signalling',
      send({ type: 'INIT', detail: context.name === undefined ? {} : { payload: context.name } }),
    ),
  );
  const configure = enqueueAction<TContext, { id: string }>(({ context, enqueue }, { id }) => {
    enqueue.assign({ id } as Partial<TContext>);
    enqueue.emit({ type: 'initialized', detail: { id } });
    enqueue.sendTo('signalling', send({ type: config, detail: { payload: context.lobby } }));
  });
  const answerKeepalive = enqueueAction<TContext>(({ enqueue }) =>
    enqueue.sendTo('signalling', send({ type: 'KEEPALIVE', detail: {} })),
  );
  const sendShutdown = enqueueAction<TContext>(({ enqueue }) => {
    enqueue.sendTo('signalling', send({ type: 'SHUTDOWN', detail: {} }));
    enqueue.sendTo('signalling', { type: 'signalling.close', code: 1000, reason: 'leaving' });
  });
  const recordError = enqueueAction<TContext>(({ event, enqueue }) =>
    enqueue.assign({ error: errorFrom(event) } as Partial<TContext>),
  );
  const recordTimeout = enqueueAction<TContext>(({ context, enqueue }) => {
    const error = new SignalboxError(
      ErrorCode.KeepaliveTimeout,
      `no KEEPALIVE from the server for ${context.serverTimeout} ms`,
    );
    enqueue.assign({ error } as Partial<TContext>);
  });
  return { sendInit, configure, answerKeepalive, sendShutdown, recordError, recordTimeout };
}

/** The placeholder actors of both client machines, typed as what a caller must provide. */
export const clientActors = {
  signalling: missingActor<ClientSignallingCommand>('signalling', SIGNALLING_HINT),
  rtc: missingActor<RtcCommand, RtcInput>('rtc', RTC_HINT),
};

/** Labels of the two peer connections of a pair: the one we offered and the one we answered. */
export const outLabel = (id: string) => `out:${id}`;
export const inLabel = (id: string) => `in:${id}`;
export function parseLabel(label: string): { side: 'out' | 'in'; id: string } {
  const colon = label.indexOf(':');
  return { side: label.slice(0, colon) as 'out' | 'in', id: label.slice(colon + 1) };
}

/**
 * The parts of the host's and the peer's `active` state that are the same:
 * the ways the client fails (`failOn`, its `on`) and the `watchdog` region
 * that answers the server's KEEPALIVEs and fails (to `#<machine id>.failed`)
 * when they stop.
 */
export const failOn = {
  VIOLATION: { target: 'failed', actions: 'recordError' },
  'signalling.error': { target: 'failed', actions: 'recordError' },
  'signalling.closed': { target: 'failed', actions: 'recordError' },
  'xstate.error.actor.*': { target: 'failed', actions: 'recordError' },
} as const;

/** See {@link failOn}. */
export const watchdog = <TId extends string>(machineId: TId) =>
  ({
    initial: 'idle',
    states: {
      idle: { on: { INIT_OK: 'watching', KEEPALIVE: { actions: 'answerKeepalive' } } },
      watching: {
        after: { serverTimeout: { target: `#${machineId}.failed`, actions: 'recordTimeout' } },
        // Any KEEPALIVE from the server is answered, and restarts the watch.
        on: { KEEPALIVE: { target: 'watching', reenter: true, actions: 'answerKeepalive' } },
      },
    },
  }) as const;
