import {
  createActor,
  type Actor,
  type AnyActorRef,
  type AnyStateMachine,
  type InputFrom,
  type InspectionEvent,
  type Observer,
} from 'xstate';
import { adoptActor, sharedActorSystem } from './actor-system.js';
import type { Clock } from './clock.js';
import type { Logger } from './logger.js';
import type { Message } from './message.js';
import { asProtocolError, type SignallingEvent } from './runtime.js';
import type { Frame, Transport } from './transport.js';

export interface SessionHostInit<TLogic extends AnyStateMachine> {
  /** The session machine: one root actor per connection, named by its id. */
  logic: TLogic;
  /** Decodes what clients send; frames go straight from the transport into the session. */
  codec: { decode(frame: Frame): Message };
  /**
   * Handles a decoded message without the session's transition when that
   * transition would change nothing in the session and only pass the message
   * on (a relay the machine allows in its current state); returns false to
   * leave the message to the machine, which then handles it as always.
   * It must give exactly the machine's outcome: it is an optimisation of the
   * hot path, not a second set of rules. Unused when `inspect` is given, so
   * that an inspector sees every event.
   */
  shortcut?: (session: Actor<TLogic>, message: Message) => boolean;
  clock?: Clock;
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  log: Logger;
  /**
   * Drops what a session that did not reach its final state left in the
   * shared registries: it crashed (`crashed`) or the server is shutting down.
   * The host has already stopped feeding it and stopped its actor.
   */
  cleanup(id: string, code: number, reason: string, crashed: boolean): void;
}

/** How {@link SessionHost.claimId} draws a session id. */
export interface IdDraw {
  /** A candidate id. */
  generate(): string;
  /** Takes `id` if it is free (and may reserve it there and then); false sends the draw on. */
  claim(id: string): boolean;
  /** Names the protocol in the log line of a refusal. */
  protocol: string;
}

/** Draws of an id before the connection is refused. */
const ID_ATTEMPTS = 16;

export interface SessionHost<TLogic extends AnyStateMachine> {
  /** The running sessions, by id. */
  readonly sessions: ReadonlyMap<string, Actor<TLogic>>;
  /** False once closing, or for a transport that closed before it was accepted (which it then closes). */
  admits(transport: Transport): boolean;
  /**
   * A fresh id for the session of a new connection: `generate` is drawn
   * until `claim` takes one, at most 16 times. When none was free the
   * connection is refused (logged, and closed with 1013: try again later)
   * and the result is undefined.
   */
  claimId(transport: Transport, draw: IdDraw): string | undefined;
  /** Starts session `id` on `transport`. */
  start(id: string, transport: Transport, input: InputFrom<TLogic>): void;
  /** Stops every session, each through `cleanup`. */
  close(): void;
}

/**
 * `feedActor` for a session: the same events, and none once the session has
 * stopped (finished, crashed or stopped by the host). It checks the session's
 * status on each frame instead of keeping the unsubscribe functions, which
 * cost ~400 B per connection. The transport lets go of its listeners when it
 * closes: a session machine's final state closes its transport (every
 * protocol's does; the host closes it after a crash or on shutdown), else the
 * finished actor stays reachable until the connection ends. A decoded
 * message that `shortcut` takes does not reach the session.
 */
function feed<TActor extends AnyActorRef>(
  session: TActor,
  transport: Transport,
  codec: { decode(frame: Frame): Message },
  shortcut: ((session: TActor, message: Message) => boolean) | undefined,
): void {
  transport.on('message', (frame) => {
    if (session.getSnapshot().status !== 'active') return;
    let decoded: Message;
    try {
      decoded = codec.decode(frame);
    } catch (error) {
      session.send({ type: 'signalling.error', error: asProtocolError(error) } satisfies SignallingEvent);
      return;
    }
    if (shortcut?.(session, decoded)) return;
    session.send(decoded);
  });
  transport.on('close', (info) => {
    if (session.getSnapshot().status === 'active') {
      session.send({ type: 'signalling.closed', info } satisfies SignallingEvent);
    }
  });
}

/**
 * What a session's subscription reports to: one small object per session,
 * its methods on the prototype, instead of two closures and their context
 * (XState binds the methods either way).
 */
class SessionWatch<TLogic extends AnyStateMachine> {
  private readonly sessions: Map<string, Actor<TLogic>>;
  private readonly init: SessionHostInit<TLogic>;
  private readonly id: string;

  constructor(sessions: Map<string, Actor<TLogic>>, init: SessionHostInit<TLogic>, id: string) {
    this.sessions = sessions;
    this.init = init;
    this.id = id;
  }

  /** Reached its final state. */
  complete(): void {
    this.sessions.delete(this.id);
  }

  /** Crashed: the registries are told, through `cleanup`. */
  error(error: unknown): void {
    const { id, init } = this;
    init.log.error('session crashed', { session: id, error: String(error) });
    this.sessions.delete(id);
    init.cleanup(id, 1011, 'server error', true);
  }
}

/**
 * What every protocol server does with its sessions: one root actor per
 * connection in a Map (not children of a hub actor, which made each connect
 * and disconnect O(sessions) inside XState), frames fed straight in with
 * `feedActor`, and a cleanup for sessions that crash or outlive the
 * server. The sessions share one XState actor system and its timers (see
 * {@link sharedActorSystem}): each is still a root actor that the `inspect`
 * observer sees under its own id, but a session machine's `systemId`s are
 * shared by all of them.
 *
 * @example
 * ```ts
 * const host = sessionHost({ logic: session, codec, log, cleanup: (id) => registry.remove(id) });
 * if (host.admits(transport)) {
 *   const id = host.claimId(transport, { generate: () => crypto.randomUUID(), claim: (id) => registry.add(id), protocol: 'mine' });
 *   if (id !== undefined) host.start(id, transport, { id, transport });
 * }
 * ```
 */
export function sessionHost<TLogic extends AnyStateMachine>(init: SessionHostInit<TLogic>): SessionHost<TLogic> {
  const sessions = new Map<string, Actor<TLogic>>();
  // XState treats an explicit `undefined` as "no clock": pass only what was given.
  const actorOptions = {
    ...(init.clock && { clock: init.clock }),
    ...(init.inspect && { inspect: init.inspect }),
  };
  const system = sharedActorSystem(init.clock, init.inspect);
  const shortcut = init.inspect ? undefined : init.shortcut;
  let closed = false;

  return {
    sessions,
    admits(transport) {
      if (!closed && transport.isOpen) return true;
      // A connection that died before we got it must not leave a session behind.
      transport.close(1001, 'server closing');
      return false;
    },
    claimId(transport, draw) {
      for (let attempt = 0; attempt < ID_ATTEMPTS; attempt++) {
        const id = draw.generate();
        if (draw.claim(id)) return id;
      }
      init.log.error('no free peer id', { protocol: draw.protocol, attempts: ID_ATTEMPTS });
      transport.close(1013, 'no free peer id, try again later');
      return undefined;
    },
    start(id, transport, input) {
      const session = createActor(init.logic, { ...actorOptions, id, input } as never) as Actor<TLogic>;
      adoptActor(session, system);
      sessions.set(id, session);
      session.subscribe(new SessionWatch(sessions, init, id));
      session.start();
      if ((session.getSnapshot() as { status: string }).status === 'active') {
        feed(session, transport, init.codec, shortcut);
      }
    },
    close() {
      closed = true;
      for (const [id, session] of [...sessions]) {
        sessions.delete(id);
        session.stop();
        init.cleanup(id, 1001, 'server closing', false);
      }
    },
  };
}
