/**
 * Compile-only type tests of the CloudLink client machines (checked by
 * `npx tsc --noEmit`; vitest does not run this file). The peer's actions and
 * guards read no event: each takes `params` that the transition computes
 * from its own, narrowed event. So wiring one to a transition whose event
 * lacks the field does not compile. Each `@ts-expect-error` fails the
 * typecheck if the line under it ever compiles.
 */
import { peerSetup } from '../machines/cloudlink/peer.machine.js';

// The wiring the peer machine uses compiles.
peerSetup.createMachine({
  context: { lobby: 'L', serverTimeout: 1, handshakeTimeout: 1, hosts: [] },
  on: {
    INIT_OK: { actions: { type: 'configure', params: ({ event }) => ({ id: event.detail.payload }) } },
    NEW_HOST: { actions: { type: 'addHost', params: ({ event }) => ({ host: event.detail.payload }) } },
    'rtc.description': { actions: { type: 'keepAnswer', params: ({ event }) => ({ answer: event.description }) } },
    ACK_CHECK: { guard: { type: 'isFromHost', params: ({ event }) => ({ peer: event.detail.tx }) } },
  },
});

peerSetup.createMachine({
  context: { lobby: 'L', serverTimeout: 1, handshakeTimeout: 1, hosts: [] },
  on: {
    // `configure` needs our id, which INIT_OK carries and `rtc.open` does not.
    // @ts-expect-error Property 'detail' does not exist on the `rtc.open` event
    'rtc.open': { actions: { type: 'configure', params: ({ event }) => ({ id: event.detail.payload }) } },
    // `keepAnswer` keeps a description, which only `rtc.description` carries.
    // @ts-expect-error Property 'description' does not exist on the NEW_HOST event
    NEW_HOST: { actions: { type: 'keepAnswer', params: ({ event }) => ({ answer: event.description }) } },
    // `isAboutHost` reads a connection's label; ACK_CHECK has none.
    // @ts-expect-error Property 'label' does not exist on the ACK_CHECK event
    ACK_CHECK: { guard: { type: 'isAboutHost', params: ({ event }) => ({ label: event.label }) } },
  },
});

peerSetup.createMachine({
  context: { lobby: 'L', serverTimeout: 1, handshakeTimeout: 1, hosts: [] },
  on: {
    // Params of the wrong shape: `addHost` takes `{ host }`.
    // @ts-expect-error `{ peer }` is not the `{ host }` that addHost takes
    NEW_HOST: { actions: { type: 'addHost', params: ({ event }) => ({ peer: event.detail.payload }) } },
    // An action that takes params cannot be named without them.
    // @ts-expect-error params are missing
    SHUTDOWN_ACK: { actions: 'removeHost' },
  },
});
