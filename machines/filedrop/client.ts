import type { ErrorActorEvent } from 'xstate';
import { missingActor, type SignallingCommand, type SignallingEvent } from '../../src/runtime.js';
import type { RtcCommand, RtcInput } from '../../src/rtc/rtc.actor.js';
import { ErrorCode, errorCodeOf, SignalboxError } from '../../src/errors.js';
import { FileDropError, transferFailures, type TransferFailure } from './errors.js';
import type { ClientMessage, MessageOf, ServerMessage } from './protocol.js';

export type ClientSignallingCommand = SignallingCommand<ClientMessage>;

export const SIGNALLING_HINT =
  "use machine.provide({ actors: { signalling: fromTransport(() => webSocketTransport('wss://…/filedrop'), filedrop.clientCodec()) } })";
export const RTC_HINT =
  'use machine.provide({ actors: { rtc: fromRtc({ RTCPeerConnection, trickle: true }) } }) with the browser global, werift or node-datachannel';

/** The placeholder actors of both client machines, typed as what a caller must provide. */
export const clientActors = {
  signalling: missingActor<ClientSignallingCommand>('signalling', SIGNALLING_HINT),
  rtc: missingActor<RtcCommand, RtcInput>('rtc', RTC_HINT),
};

export const send = (message: ClientMessage): ClientSignallingCommand => ({ type: 'signalling.send', message });

/** What ends a client's signalling: the connection closing or misbehaving, the server refusing, opening it throwing. */
export type SignallingFailure =
  | Extract<SignallingEvent, { type: 'signalling.closed' | 'signalling.error' }>
  | MessageOf<ServerMessage, 'error' | 'invalid peer id'>
  | ErrorActorEvent;

/**
 * How both client machines' `active` state takes a {@link SignallingFailure}:
 * it records the error ({@link signallingError}) and ends `failed`.
 */
export const failOnSignalling = {
  target: 'failed',
  actions: { type: 'recordSignallingError', params: ({ event }: { event: SignallingFailure }) => event },
} as const;

/**
 * {@link failOnSignalling} for every {@link SignallingFailure} both clients
 * end on; the sender ends on `invalid peer id` too (a receiver's is about
 * the code it asked for: `invalid-code`).
 */
export const signallingFailures = {
  'signalling.closed': failOnSignalling,
  'signalling.error': failOnSignalling,
  error: failOnSignalling,
  'xstate.error.actor.signalling': failOnSignalling,
} as const;

/**
 * The first states of both client machines' `active` state: the signalling
 * connection opens, then the server's `assign` gives the client its id
 * (`keepId`), and the client goes on to `next`.
 */
export const assigning = <TNext extends string>(next: TNext) =>
  ({
    connecting: { on: { 'signalling.open': 'awaitingAssign' } },
    awaitingAssign: {
      on: {
        assign: {
          target: next,
          actions: {
            type: 'keepId',
            params: ({ event }: { event: MessageOf<ServerMessage, 'assign'> }) => ({ id: event.detail.peer }),
          },
        },
      },
    },
  }) as const;

/** The error a client ends with when its signalling connection ends or misbehaves. */
export function signallingError(event: SignallingFailure): FileDropError {
  switch (event.type) {
    case 'signalling.closed': {
      const { info, error } = event;
      return new FileDropError(
        'signalling-lost',
        error?.message ?? `signalling closed (${info.code} ${info.reason})`.trim(),
        {
          ...(error && { code: error.code, cause: error }),
        },
      );
    }
    case 'signalling.error': {
      const { error } = event;
      return new FileDropError('protocol', `the server sent a bad frame: ${error.message}`, {
        code: error.code,
        cause: error,
      });
    }
    case 'error': {
      const { code, message } = event.detail;
      return new FileDropError('protocol', `the server refused a message: ${message}`, {
        code: errorCodeOf(code),
      });
    }
    case 'invalid peer id': {
      const { event: type } = event.detail;
      return new FileDropError(
        'protocol',
        `the server says the peer of ${type ? `a ${type}` : 'a message'} is not a peer id`,
      );
    }
    default: {
      // `xstate.error.actor.signalling`: opening the connection threw.
      const { error } = event;
      if (error instanceof SignalboxError) {
        return new FileDropError('signalling-lost', error.message, { code: error.code, cause: error });
      }
      return new FileDropError('signalling-lost', error instanceof Error ? error.message : String(error), {
        code: ErrorCode.ConnectFailed,
        cause: error,
      });
    }
  }
}

/**
 * The error for a failure the other side reported (`response` with
 * `error`, or `progress` with `error`): `busy` stays `busy`, anything else is
 * `remote-cancelled` with the remote's reason kept in `remote`.
 */
export function remoteError(reason: string, who: 'sender' | 'receiver'): FileDropError {
  if (reason === 'busy') return new FileDropError('busy', `the ${who} is busy with another transfer`);
  const known = (transferFailures as string[]).includes(reason);
  return new FileDropError(
    'remote-cancelled',
    `the ${who} ${reason === 'cancelled' ? 'cancelled' : `gave up (${known ? reason : 'unknown reason'})`}`,
    { remote: reason },
  );
}

/** Local failures worth telling the other side about (not those the other side or the server caused). */
export function isOwnFailure(reason: TransferFailure): boolean {
  return !['remote-cancelled', 'busy', 'no-such-peer', 'invalid-code', 'peer-gone', 'signalling-lost'].includes(reason);
}
