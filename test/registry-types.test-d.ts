/**
 * Compile-only (checked by `npx tsc --noEmit`, not run by vitest): the
 * registry machines' actions and guards take what they read from the event
 * as typed `params`, computed at the transition, so wiring one to a
 * transition whose event lacks that field is a type error, not a failure at
 * run time. Each `@ts-expect-error` fails the typecheck if its line compiles.
 */
import type { RegistryClientContext } from '../machines/registry/client.machine.js';
import { registryClientSetup } from '../machines/registry/client.machine.js';
import type { SessionContext } from '../machines/registry/server.machine.js';
import { registrySessionSetup } from '../machines/registry/server.machine.js';

declare const client: RegistryClientContext;
declare const session: SessionContext;

// Wired to the events that carry what they read: compiles.
registryClientSetup.createMachine({
  context: client,
  on: {
    RegisterPeer: { actions: { type: 'storePeer', params: ({ event }) => ({ type: event.type, ...event.detail }) } },
    UnregisterPeer: { actions: { type: 'removePeer', params: ({ event }) => event.detail } },
    Answer: { actions: { type: 'applyAnswer', params: ({ event }) => event.detail } },
    Error: { guard: { type: 'isListRefusal', params: ({ event }) => event.detail }, actions: 'announceStop' },
  },
});
registrySessionSetup.createMachine({
  context: session,
  on: { Connect: { actions: { type: 'register', params: ({ event }) => event.detail } } },
});

// `Welcome` carries no `files`: storePeer's params cannot be made from it.
registryClientSetup.createMachine({
  context: client,
  on: {
    // @ts-expect-error Property 'files' is missing
    Welcome: { actions: { type: 'storePeer', params: ({ event }) => ({ type: 'RegisterPeer', ...event.detail }) } },
  },
});

// `UnregisterPeer` has no `connection` nor `sdp` for applyAnswer.
registryClientSetup.createMachine({
  context: client,
  // @ts-expect-error Property 'connection' is missing
  on: { UnregisterPeer: { actions: { type: 'applyAnswer', params: ({ event }) => event.detail } } },
});

// An action that reads the event cannot be named without its params.
registryClientSetup.createMachine({
  context: client,
  // @ts-expect-error params are required
  on: { Offer: { actions: 'startServe' } },
});

// Nor a guard: `canServe` needs the offering `peer`.
registryClientSetup.createMachine({
  context: client,
  // @ts-expect-error params are required
  on: { Candidate: { guard: 'canServe', actions: 'announceStop' } },
});

// `Disconnect` carries no file list to register.
registrySessionSetup.createMachine({
  context: session,
  // @ts-expect-error Property 'files' is missing
  on: { Disconnect: { actions: { type: 'register', params: ({ event }) => event.detail } } },
});
