import type { Actor, AnyStateMachine, InputFrom, InspectionEvent, Observer } from 'xstate';
import type { Clock } from './clock.js';
import { ErrorCode } from './errors.js';
import { clockNow, RATE_LIMITED, resolveLimits, tokenBucket, type ConnectionLimits } from './limits.js';
import { silentLogger, type Logger } from './logger.js';
import type { Message } from './message.js';
import { closeReasonLabel, type ServerMetrics } from './metrics.js';
import type { Router } from './router.js';
import type { ProtocolServer } from './runtime.js';
import { sessionHost, type SessionHost } from './session-host.js';
import { TransportView, type ConnectionCheck, type ConnectionInfo, type Frame, type Transport } from './transport.js';

/** The options every `create…Server()` shares: limits, admission, and where time, inspection, logs and metrics go. */
export interface HubOptions {
  /**
   * Timer source of the sessions and of the rate limits (pass XState's
   * `SimulatedClock` in tests: its `now()` drives the token buckets).
   * @default the global timers
   */
  clock?: Clock;
  /** Outbound buffer cap and rate limits of every connection. @default {@link defaultLimits} */
  limits?: ConnectionLimits;
  /**
   * Decides whether a client may connect, from its path, query, headers and
   * address; it may be async. `true` accepts; `false` refuses with 403, a
   * number (401, 403) with that HTTP status. `serve()` runs it before the
   * upgrade on a transport server that can refuse one (`webSocketServer`,
   * `socketIoServer`), else on each connection, closing a refused one with
   * 1008. `accept()` itself trusts its caller.
   * @default every client is accepted
   */
  authorize?: ConnectionCheck;
  /** Counters for `GET /metrics` (`signalbox/server` passes prom-client ones). @default none */
  metrics?: ServerMetrics;
  /** XState inspection observer, e.g. from `@statelyai/inspect`; every session reports to it, named by its id. */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** @default silentLogger */
  logger?: Logger;
}

/**
 * The {@link HubOptions} among a server's options, for
 * {@link protocolServer}: `protocolServer({ ...hubOptions(options), … })`.
 */
export function hubOptions(options: HubOptions): HubOptions {
  const { clock, limits, authorize, metrics, inspect, logger } = options;
  return { clock, limits, authorize, metrics, inspect, logger };
}

/**
 * The `rateLimited` of a JSON protocol whose server reports errors as
 * `{ type, detail: { code, message } }` (`type` is `error` or `Error`): an
 * error with `ERR_RATE_LIMITED`, encoded with the protocol's codec.
 *
 * @example
 * ```ts
 * protocolServer({ ...init, rateLimited: rateLimitedError(serverCodec(), 'error') });
 * ```
 */
export function rateLimitedError<M extends Message>(
  codec: { encode(message: M): Frame },
  type: 'error' | 'Error',
): (id: string, transport: Transport) => void {
  const message = { type, detail: { code: ErrorCode.RateLimited, message: RATE_LIMITED } } as unknown as M;
  return (_id, transport) => transport.send(codec.encode(message));
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
   * Tells session `id` that its frame was refused for the rate, the
   * protocol's own way (an `error` with `ERR_RATE_LIMITED`; CloudLink: a
   * VIOLATION and a close). Called once per run of refused frames; after
   * `limits.rateLimitStrikes` refused frames the connection is closed anyway.
   */
  rateLimited?(id: string, transport: Transport): void;
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
  /** Bytes queued for all of this server's connections and not yet sent. */
  buffered(): number;
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
  const log = init.logger ?? silentLogger;
  const host = sessionHost({
    logic: init.logic,
    codec: init.codec,
    clock: init.clock,
    inspect: init.inspect,
    log,
    cleanup(id, code, reason, crashed) {
      init.cleanup?.(id, code, reason, crashed);
      if (router) {
        router.close(id, code, reason);
        router.remove(id);
      }
    },
  });

  const protocol = init.protocol;
  const limits = resolveLimits(init.limits);
  const now = clockNow(init.clock);
  const metrics = init.metrics;
  const live = new Set<Transport>();
  // The connection whose frame is being handled: a frame sent to another one meanwhile is a relay.
  let handling: Transport | undefined;

  /**
   * The transport a session and the router see: the outbound cap on every
   * send, the rate limits on every frame in, and the counting of both.
   */
  const guard = (transport: Transport, info: ConnectionInfo, session: { id?: string }): Transport => {
    const messages = tokenBucket(limits.messagesPerSecond, limits.messageBurst, now);
    const bytes = tokenBucket(limits.bytesPerSecond, limits.byteBurst, now);
    let strikes = 0;
    let limited = false;
    const refuse = (kind: 'messages' | 'bytes') => {
      metrics?.rateLimited(protocol, kind);
      strikes++;
      if (strikes >= limits.rateLimitStrikes) {
        log.warn('rate limited', { protocol, session: session.id, remote: info.remoteAddress, kind, closed: true });
        transport.close(1008, 'rate limited');
        return;
      }
      if (limited) return;
      limited = true;
      log.warn('rate limited', { protocol, session: session.id, remote: info.remoteAddress, kind });
      if (session.id !== undefined) init.rateLimited?.(session.id, guarded);
    };
    const guarded: Transport = new TransportView({
      isOpen: () => transport.isOpen,
      bufferedAmount: () => transport.bufferedAmount,
      send(frame) {
        transport.send(frame);
        metrics?.sent(protocol, sizeOf(frame), handling !== undefined && handling !== transport);
        const buffered = transport.bufferedAmount;
        if (buffered > limits.maxBufferedBytes && transport.isOpen) {
          log.warn('too slow', { protocol, session: session.id, remote: info.remoteAddress, buffered });
          transport.close(1008, 'too slow');
        }
      },
      on(type, handler) {
        if (type !== 'message') return transport.on(type, handler);
        const deliver = handler as (frame: Frame) => void;
        return transport.on('message', (frame) => {
          const size = sizeOf(frame);
          metrics?.received(protocol, size);
          if (!messages.take()) return refuse('messages');
          if (!bytes.take(size)) return refuse('bytes');
          limited = false;
          const outer = handling;
          handling = transport;
          try {
            deliver(frame);
          } finally {
            handling = outer;
          }
        });
      },
      close: (code, reason) => transport.close(code, reason),
    });
    return guarded;
  };

  const start = (transport: Transport, info: ConnectionInfo) => {
    if (!host.admits(transport)) return;
    const session: { id?: string } = {};
    const guarded = guard(transport, info, session);
    const opened = init.open(guarded, info, host);
    if (!opened) return;
    session.id = opened.id;
    live.add(transport);
    metrics?.opened(protocol);
    transport.on('close', ({ code, reason }) => {
      live.delete(transport);
      metrics?.closed(protocol, code, closeReasonLabel(reason));
    });
    host.start(opened.id, guarded, opened.input);
  };

  return {
    sessions: host.sessions,
    accept: start,
    authorize: init.authorize,
    buffered() {
      let sum = 0;
      for (const transport of live) sum += transport.bufferedAmount;
      return sum;
    },
    async close() {
      host.close();
    },
  };
}

/** A frame's size as the limits count it: characters of text, bytes of binary. */
function sizeOf(frame: Frame): number {
  return typeof frame === 'string' ? frame.length : frame.byteLength;
}
