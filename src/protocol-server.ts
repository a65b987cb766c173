import type { Actor, AnyStateMachine, InputFrom, InspectionEvent, Observer } from 'xstate';
import type { Clock } from './clock.js';
import { silentLogger, type Logger } from './logger.js';
import type { Message } from './message.js';
import type { Router } from './router.js';
import type { ProtocolServer } from './runtime.js';
import { sessionHost, type SessionHost } from './session-host.js';
import type { ConnectionInfo, Frame, Transport } from './transport.js';

/** The options every `create…Server()` shares: where time, inspection and logs go. */
export interface HubOptions {
  /** Timer source of the sessions (pass XState's `SimulatedClock` in tests). @default the global timers */
  clock?: Clock;
  /** XState inspection observer, e.g. from `@statelyai/inspect`; every session reports to it, named by its id. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** @default silentLogger */
  logger?: Logger;
}

/** What {@link protocolServer} needs to know of one protocol. */
export interface ProtocolServerInit<TLogic extends AnyStateMachine> extends HubOptions {
  /** The protocol's name, as logs name it. */
  protocol: string;
  /** The session machine: one root actor per connection. */
  logic: TLogic;
  /** Decodes what clients send. */
  codec: { decode(frame: Frame): Message };
  /**
   * The protocol's router. When given, every session that ends without
   * reaching its final state (it crashed, or the server is closing) has its
   * connection closed and its route removed after `cleanup`.
   */
  router?: Router<Message>;
  /**
   * Drops what such a session left in the protocol's shared registries; on a
   * crash (`crashed`) it may tell the session's partners.
   */
  cleanup?(id: string, code: number, reason: string, crashed: boolean): void;
  /**
   * Takes one new, open connection: draws its session id (with
   * `host.claimId`, or its own way), reads the path, and returns the id and
   * the session's input, or undefined when the connection was refused (and
   * closed) here.
   */
  open(
    transport: Transport,
    info: ConnectionInfo,
    host: SessionHost<TLogic>,
  ): { id: string; input: InputFrom<TLogic> } | undefined;
}

/** The {@link ProtocolServer} {@link protocolServer} returns, with its sessions. */
export interface HostedProtocolServer<TLogic extends AnyStateMachine> extends ProtocolServer {
  /** The running sessions, by id. */
  readonly sessions: ReadonlyMap<string, Actor<TLogic>>;
}

/**
 * The one way a protocol's server is built: a {@link sessionHost} running
 * one session per connection, an `accept` that lets the protocol draw the id
 * and build the input, and a `close` that stops every session. A protocol's
 * `create…Server()` keeps only what is its own: its options, its registries,
 * its cleanup, its id draw and its path.
 *
 * @example
 * ```ts
 * const router = memoryRouter<ServerMessage>(serverCodec());
 * const server = protocolServer({
 *   protocol: 'echo',
 *   logic: echoSession,
 *   codec: serverCodec(),
 *   router,
 *   open: (transport, _info, host) => {
 *     const id = host.claimId(transport, { generate: () => crypto.randomUUID(), claim: (id) => !router.has(id), protocol: 'echo' });
 *     return id === undefined ? undefined : { id, input: { id, services: { router, transport } } };
 *   },
 * });
 * serve(webSocketServer({ server: http, path: '/echo' }), server);
 * ```
 */
export function protocolServer<TLogic extends AnyStateMachine>(
  init: ProtocolServerInit<TLogic>,
): HostedProtocolServer<TLogic> {
  const { router } = init;
  const host = sessionHost({
    logic: init.logic,
    codec: init.codec,
    clock: init.clock,
    inspect: init.inspect,
    log: init.logger ?? silentLogger,
    cleanup(id, code, reason, crashed) {
      init.cleanup?.(id, code, reason, crashed);
      if (router) {
        router.close(id, code, reason);
        router.remove(id);
      }
    },
  });

  return {
    sessions: host.sessions,
    accept(transport, info) {
      if (!host.admits(transport)) return;
      const opened = init.open(transport, info, host);
      if (opened) host.start(opened.id, transport, opened.input);
    },
    async close() {
      host.close();
    },
  };
}
