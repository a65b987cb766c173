/**
 * Type tests for the workrooms machines, checked by `npx tsc --noEmit` (this
 * file is compiled, never run). Each action that reads a field of its event
 * is given that field as typed `params`, computed at the transition, so an
 * action wired to a transition whose event lacks the field does not compile.
 * Each `@ts-expect-error` fails the typecheck if the line below it compiles.
 */
import type { ErrorActorEvent } from 'xstate';
import { errorFrom, workroomsClientSetup, type ClientContext } from '../machines/workrooms/client.machine.js';
import type { ClientMessage, MessageOf, RelayType, ServerMessage } from '../machines/workrooms/protocol.js';
import { workroomsSessionSetup, type SessionContext } from '../machines/workrooms/server.machine.js';

type Relay = MessageOf<ClientMessage, RelayType>;

// Only the types matter here.
const context = {} as ClientContext;
const sessionContext = {} as SessionContext;

export const client = [
  // Wired as the machine wires them: compiles.
  workroomsClientSetup.createMachine({
    context,
    on: {
      call: { actions: { type: 'sendCall', params: ({ event }) => ({ to: event.to }) } },
      search: { actions: { type: 'sendSearch', params: ({ event }) => ({ search: event.search }) } },
      hangup: { actions: { type: 'remoteHangup', params: ({ event }) => event.detail } },
      autocomplete: { actions: { type: 'reportResults', params: ({ event }) => event.detail } },
      end: { actions: { type: 'endCalls', params: ({ event }) => ({ callids: event.callids, tell: true }) } },
    },
  }),
  workroomsClientSetup.createMachine({
    context,
    on: {
      // @ts-expect-error sendCall reads `to`, and a `search` event has none
      search: { actions: { type: 'sendCall', params: ({ event }) => ({ to: event.to }) } },
    },
  }),
  workroomsClientSetup.createMachine({
    context,
    on: {
      // @ts-expect-error remoteHangup reads the `calls` of a server hangup, and `registered` lists callids, not entries
      registered: { actions: { type: 'remoteHangup', params: ({ event }) => event.detail } },
    },
  }),
  workroomsClientSetup.createMachine({
    context,
    on: {
      // @ts-expect-error endCalls reads `callids`, and a `leave` event has none
      leave: { actions: { type: 'endCalls', params: ({ event }) => ({ callids: event.callids, tell: true }) } },
    },
  }),
  workroomsClientSetup.createMachine({
    context,
    on: {
      // @ts-expect-error an action that reads its event cannot be wired by name alone: its params are required
      call: { actions: 'sendCall' },
    },
  }),
  workroomsClientSetup.createMachine({
    context,
    on: {
      // @ts-expect-error recordError needs the error of a crash: a `search` event has none
      search: {
        actions: {
          type: 'recordError',
          params: ({ event }: { event: ErrorActorEvent }) => ({ error: errorFrom(event) }),
        },
      },
    },
  }),
];

export const session = [
  // Wired as the machine wires them: compiles.
  workroomsSessionSetup.createMachine({
    context: sessionContext,
    on: {
      call: { actions: { type: 'placeCall', params: ({ event }) => event.detail } },
      offer: { actions: { type: 'relay', params: ({ event }: { event: Relay }) => event } },
      ice: { actions: { type: 'relay', params: ({ event }: { event: Relay }) => event } },
    },
  }),
  workroomsSessionSetup.createMachine({
    context: sessionContext,
    on: {
      // @ts-expect-error relay sends an offer, answer or ice on: a `call` is none of them
      call: { actions: { type: 'relay', params: ({ event }) => event } },
    },
  }),
  workroomsSessionSetup.createMachine({
    context: sessionContext,
    on: {
      // @ts-expect-error placeCall reads `to`, and a hangup's detail has `calls` instead
      hangup: { actions: { type: 'placeCall', params: ({ event }) => event.detail } },
    },
  }),
  workroomsSessionSetup.createMachine({
    context: sessionContext,
    on: {
      // @ts-expect-error register reads the sessionid and calls of `register`, and a userprofile has neither
      userprofile: { actions: { type: 'register', params: ({ event }) => event.detail } },
    },
  }),
];

// What the server sends is typed the same way: a relay's payload stays `unknown` until the client reads it.
export const payload = (message: MessageOf<ServerMessage, 'offer' | 'answer'>) => {
  // @ts-expect-error `sdp` may be SDP text, `{ type, sdp }` or any JSON: read it with readDescription first
  const text: string = message.detail.sdp;
  return text;
};
