import type { Actor, AnyStateMachine, InputFrom, InspectionEvent, Observer } from 'xstate';
import type { Clock } from './clock.js';
import { ErrorCode } from './errors.js';
import { clockNow, RATE_LIMITED, resolveLimits, type ConnectionLimits } from './limits.js';
import { silentLogger, type Logger } from './logger.js';
import type { Message } from './message.js';
import { closeReasonLabel, type ServerMetrics } from './metrics.js';
import type { Router } from './router.js';
import type { ProtocolServer } from './runtime.js';
import { sessionHost, type SessionHost, type SessionHostInit } from './session-host.js';
import {
  TransportView,
  type ConnectionCheck,
  type ConnectionInfo,
  type Frame,
  type Transport,
  type TransportEvents,
  type TransportFunctions,
} from './transport.js';

/**
 * The options every `create…Server()` shares: limits, admission, delivery,
 * and where time, inspection, logs and metrics go. `M` is what the
 * protocol's server sends.
 */
export interface HubOptions<M extends Message = Message> {
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
  /**
   * Delivery to sessions by id; a shared one (`redisRouter` from
   * `signalbox/redis`) lets several server processes serve one protocol.
   * @default memoryRouter
   */
  router?: Router<M>;
}

/**
 * The {@link HubOptions} among a server's options, for
 * {@link protocolServer}: `protocolServer({ ...hubOptions(options), … })`.
 * All but `router`: the server passes the one it resolved (the option, or
 * its `memoryRouter`).
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

/**
 * What every protocol's session machine gets from its server, whatever else
 * the protocol adds: delivery to the other sessions, its own connection and
 * the log.
 */
export interface SessionServicesBase<M extends Message> {
  /** Delivery to sessions by id. */
  readonly router: Router<M>;
  /** This session's own connection. */
  readonly transport: Transport;
  readonly log: Logger;
}

/** A session machine's input: the id its server drew for the connection (the router's key), and the services. */
export interface SessionInputOf<TServices> {
  id: string;
  services: TServices;
}

/** What a session machine's context starts from: its {@link SessionInputOf}, kept as it came. */
export interface SessionContextOf<TServices> {
  readonly id: string;
  readonly services: TServices;
}

/** What {@link protocolServer} needs to know of one protocol. */
export interface ProtocolServerInit<TLogic extends AnyStateMachine> extends HubOptions {
  /** The protocol's name, as logs name it. */
  protocol: string;
  /** The session machine: one root actor per connection. */
  logic: TLogic;
  /** Decodes what clients send. */
  codec: { decode(frame: Frame): Message };
  /** See {@link SessionHostInit.shortcut}. */
  shortcut?: SessionHostInit<TLogic>['shortcut'];
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
    shortcut: init.shortcut,
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

  const hub: GuardHub = {
    protocol: init.protocol,
    limits: resolveLimits(init.limits),
    now: clockNow(init.clock),
    metrics: init.metrics,
    log,
    rateLimited: init.rateLimited,
    handling: undefined,
  };
  const metrics = init.metrics;
  const live = new Set<Transport>();

  const start = (transport: Transport, info: ConnectionInfo) => {
    if (!host.admits(transport)) return;
    const guard = new GuardedTransport(hub, transport, info.remoteAddress);
    const opened = init.open(guard.view, info, host);
    if (!opened) return;
    guard.session = opened.id;
    live.add(transport);
    metrics?.opened(hub.protocol);
    transport.on('close', ({ code, reason }) => {
      live.delete(transport);
      metrics?.closed(hub.protocol, code, closeReasonLabel(reason));
    });
    host.start(opened.id, guard.view, opened.input);
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

/** What every {@link GuardedTransport} of one server shares. */
interface GuardHub {
  protocol: string;
  limits: Required<ConnectionLimits>;
  now: () => number;
  metrics: ServerMetrics | undefined;
  log: Logger;
  rateLimited: ((id: string, transport: Transport) => void) | undefined;
  /** The connection whose frame is being handled: a frame sent to another one meanwhile is a relay. */
  handling: Transport | undefined;
}

/**
 * The transport a session and the router see: the outbound cap on every
 * send, the rate limits (two token buckets) on every frame in, and the
 * counting of both. A class over the server's shared {@link GuardHub}, not
 * closures: a server holds one per connection.
 */
class GuardedTransport implements TransportFunctions {
  readonly view: Transport;
  /** The session's id, once the protocol drew it. */
  session: string | undefined;
  private readonly hub: GuardHub;
  private readonly transport: Transport;
  private readonly remote: string;
  private messageTokens: number;
  private messagesAt: number;
  private byteTokens: number;
  private bytesAt: number;
  private strikes = 0;
  private limited = false;

  constructor(hub: GuardHub, transport: Transport, remote: string) {
    this.hub = hub;
    this.transport = transport;
    this.remote = remote;
    this.messageTokens = hub.limits.messageBurst;
    this.byteTokens = hub.limits.byteBurst;
    this.messagesAt = this.bytesAt = hub.now();
    this.view = new TransportView(this);
  }

  isOpen(): boolean {
    return this.transport.isOpen;
  }

  bufferedAmount(): number {
    return this.transport.bufferedAmount;
  }

  send(frame: Frame): void {
    const { hub, transport } = this;
    transport.send(frame);
    hub.metrics?.sent(hub.protocol, sizeOf(frame), hub.handling !== undefined && hub.handling !== transport);
    const buffered = transport.bufferedAmount;
    if (buffered > hub.limits.maxBufferedBytes && transport.isOpen) {
      hub.log.warn('too slow', { protocol: hub.protocol, session: this.session, remote: this.remote, buffered });
      transport.close(1008, 'too slow');
    }
  }

  on<K extends keyof TransportEvents>(type: K, handler: (event: TransportEvents[K]) => void): () => void {
    if (type !== 'message') return this.transport.on(type, handler);
    const deliver = handler as (frame: Frame) => void;
    return this.transport.on('message', (frame) => this.receive(frame, deliver));
  }

  close(code?: number, reason?: string): void {
    this.transport.close(code, reason);
  }

  private receive(frame: Frame, deliver: (frame: Frame) => void): void {
    const { hub } = this;
    const size = sizeOf(frame);
    hub.metrics?.received(hub.protocol, size);
    const now = hub.now();
    const { limits } = hub;
    // Two token buckets, refilled by the time since they were last used.
    this.messageTokens = Math.min(
      limits.messageBurst,
      this.messageTokens + ((now - this.messagesAt) * limits.messagesPerSecond) / 1000,
    );
    this.messagesAt = now;
    if (this.messageTokens < 1) return this.refuse('messages');
    this.messageTokens -= 1;
    this.byteTokens = Math.min(
      limits.byteBurst,
      this.byteTokens + ((now - this.bytesAt) * limits.bytesPerSecond) / 1000,
    );
    this.bytesAt = now;
    if (this.byteTokens < size) return this.refuse('bytes');
    this.byteTokens -= size;
    this.limited = false;
    const outer = hub.handling;
    hub.handling = this.transport;
    try {
      deliver(frame);
    } finally {
      hub.handling = outer;
    }
  }

  private refuse(kind: 'messages' | 'bytes'): void {
    const { hub } = this;
    hub.metrics?.rateLimited(hub.protocol, kind);
    this.strikes++;
    const where = { protocol: hub.protocol, session: this.session, remote: this.remote, kind };
    if (this.strikes >= hub.limits.rateLimitStrikes) {
      hub.log.warn('rate limited', { ...where, closed: true });
      this.transport.close(1008, 'rate limited');
      return;
    }
    if (this.limited) return;
    this.limited = true;
    hub.log.warn('rate limited', where);
    if (this.session !== undefined) hub.rateLimited?.(this.session, this.view);
  }
}

/** A frame's size as the limits count it: characters of text, bytes of binary. */
function sizeOf(frame: Frame): number {
  return typeof frame === 'string' ? frame.length : frame.byteLength;
}
