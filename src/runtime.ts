import { fromCallback, type CallbackActorLogic, type EventObject, type NonReducibleUnknown } from 'xstate';
import type { Codec } from './codec.js';
import { ErrorCode, ProtocolError, SignalboxError, TransportError } from './errors.js';
import type { Message } from './message.js';
import type { CloseInfo, ConnectionCheck, ConnectionInfo, Frame, Transport, TransportServer } from './transport.js';

/** Sent by the `signalling` actor to its parent, besides each decoded message. */
export type SignallingEvent =
  | { type: 'signalling.open' }
  /** A frame the codec rejected. The transport stays open: the machine decides. */
  | { type: 'signalling.error'; error: ProtocolError }
  | { type: 'signalling.closed'; info: CloseInfo; error?: SignalboxError };

/** What a machine sends to its `signalling` actor. */
export type SignallingCommand<Out extends Message = Message> =
  { type: 'signalling.send'; message: Out } | { type: 'signalling.close'; code?: number; reason?: string };

/**
 * A transport, or a function that opens one (it may return a promise). The
 * function gets the actor's input, so one logic can serve many connections.
 */
export type TransportSource<TInput = unknown> = Transport | ((input: TInput) => Transport | Promise<Transport>);

/**
 * The `signalling` actor every client machine invokes: a callback actor that
 * opens a transport, decodes each incoming frame with `codec` and sends it to
 * its parent as an event, and encodes what the parent sends it. Stopping the
 * actor closes the transport.
 *
 * Messages sent before the transport is open are queued. Decode failures are
 * reported as `signalling.error` events, never thrown.
 *
 * @example
 * ```ts
 * import { webSocketTransport } from 'signalbox/websocket';
 * const host = createActor(
 *   cloudlink.host.provide({
 *     actors: { signalling: fromTransport(() => webSocketTransport(url), cloudlink.clientCodec()) },
 *   }),
 *   { input: { lobby: 'main' } },
 * );
 * ```
 */
export function fromTransport<In extends Message, Out extends Message, TInput = unknown>(
  source: TransportSource<TInput>,
  codec: Codec<In, Out>,
): CallbackActorLogic<SignallingCommand<Out>, TInput> {
  return fromCallback<SignallingCommand<Out>, TInput>(({ sendBack, receive, input }) => {
    let transport: Transport | undefined;
    let stopped = false;
    let queue: Frame[] | undefined = [];
    let pendingClose: { code?: number; reason?: string } | undefined;
    const unsubscribe: Array<() => void> = [];

    const release = (code: number, reason: string) => {
      stopped = true;
      for (const off of unsubscribe.splice(0)) off();
      transport?.close(code, reason);
    };

    const send = (message: Out) => {
      let frame: Frame;
      try {
        frame = codec.encode(message);
      } catch (error) {
        // A message the codec cannot encode is a bug in the parent: the actor
        // crashes with it. XState does not run a crashed callback actor's
        // cleanup, so let go of the transport first, or its frames would keep
        // reaching the parent over a connection nobody owns.
        release(1011, 'internal error');
        throw error;
      }
      if (transport) deliver(transport, frame);
      else queue?.push(frame);
    };

    const deliver = (t: Transport, frame: Frame) => {
      try {
        t.send(frame);
      } catch (error) {
        // Sending after close is a race with the remote, not a bug: the
        // parent learns of the close through `signalling.closed`.
        if (error instanceof TransportError) return;
        // A transport that throws anything else is broken: report it closed.
        release(1011, 'transport failed');
        sendBack({
          type: 'signalling.closed',
          info: { code: 1011, reason: 'transport failed', initiator: 'local' },
          error: new TransportError(ErrorCode.TransportFailed, errorMessage(error), { cause: error }),
        });
      }
    };

    const attach = (t: Transport) => {
      if (stopped) {
        t.close(1001, 'actor stopped');
        return;
      }
      transport = t;
      unsubscribe.push(
        t.on('message', (frame) => {
          let decoded: In;
          try {
            decoded = codec.decode(frame);
          } catch (error) {
            sendBack({ type: 'signalling.error', error: asProtocolError(error) });
            return;
          }
          sendBack(decoded);
        }),
        t.on('close', (info) => sendBack({ type: 'signalling.closed', info })),
      );
      sendBack({ type: 'signalling.open' });
      const queued = queue ?? [];
      queue = undefined;
      for (const frame of queued) if (!stopped) deliver(t, frame);
      if (pendingClose) t.close(pendingClose.code, pendingClose.reason);
    };

    try {
      const opened = typeof source === 'function' ? source(input) : source;
      if (isPromise(opened)) {
        opened.then(attach, (error: unknown) => {
          if (stopped) return;
          const err =
            error instanceof SignalboxError
              ? error
              : new TransportError(ErrorCode.ConnectFailed, errorMessage(error), { cause: error });
          sendBack({
            type: 'signalling.closed',
            info: { code: 1006, reason: err.message, initiator: 'remote' },
            error: err,
          });
        });
      } else {
        attach(opened);
      }
    } catch (error) {
      const err = new TransportError(ErrorCode.ConnectFailed, errorMessage(error), { cause: error });
      queueMicrotask(() =>
        sendBack({
          type: 'signalling.closed',
          info: { code: 1006, reason: err.message, initiator: 'remote' },
          error: err,
        }),
      );
    }

    receive((command) => {
      if (command.type === 'signalling.send') send(command.message);
      else if (transport) transport.close(command.code, command.reason);
      else pendingClose = { code: command.code, reason: command.reason };
    });

    return () => release(1000, 'actor stopped');
  });
}

/**
 * Feeds a transport to an actor that has no `signalling` child of its own (a
 * server session): each frame decoded with `codec` is sent to the actor as an
 * event, a frame the codec rejects as `signalling.error`, and the close as
 * `signalling.closed`. Returns the function that stops feeding. Sending back
 * is the actor's business (servers write through a {@link Router}).
 *
 * Cheaper than invoking {@link fromTransport} per connection: no second actor.
 *
 * @example
 * ```ts
 * const session = createActor(cloudlinkSession, { input }).start();
 * feedActor(session, transport, serverCodec());
 * ```
 */
export function feedActor<In extends Message>(
  actor: { send(event: NoInfer<In> | SignallingEvent): void },
  transport: Transport,
  codec: { decode(frame: Frame): In },
): () => void {
  const offMessage = transport.on('message', (frame) => {
    let decoded: In;
    try {
      decoded = codec.decode(frame);
    } catch (error) {
      actor.send({ type: 'signalling.error', error: asProtocolError(error) });
      return;
    }
    actor.send(decoded);
  });
  const offClose = transport.on('close', (info) => actor.send({ type: 'signalling.closed', info }));
  return () => {
    offMessage();
    offClose();
  };
}

/**
 * The server side of a protocol: it takes each accepted connection. Every
 * protocol's `create…Server()` returns one; {@link serve} plugs it into a
 * {@link TransportServer}.
 */
export interface ProtocolServer {
  /** Takes one open connection. It trusts its caller: {@link serve} runs `authorize` first. */
  accept(transport: Transport, info: ConnectionInfo): void;
  /** Who may connect; {@link serve} checks it before the upgrade where the transport server can. */
  readonly authorize?: ConnectionCheck;
  /** Closes every session and stops the hub. */
  close(): Promise<void>;
}

/**
 * Hands every connection that `transports` accepts to `protocol`. Returns the
 * function that stops forwarding.
 *
 * A protocol's `authorize` is added to the transport server's checks, so a
 * refused client gets its HTTP status before any upgrade; on a transport
 * server without checks it runs on each connection instead, and a refused
 * one is closed with 1008 `not authorized`.
 *
 * @example
 * ```ts
 * const stop = serve(webSocketServer({ server, path: (p) => p.startsWith('/ws/') }), createCloudLinkServer());
 * ```
 */
export function serve(transports: TransportServer, protocol: ProtocolServer): () => void {
  const check = protocol.authorize;
  const unverify = check && transports.verify?.(check);
  const off = transports.on('connection', ({ transport, info }) => {
    if (!check || unverify) return protocol.accept(transport, info);
    const refuse = () => transport.close(1008, 'not authorized');
    void Promise.resolve()
      .then(() => check(info))
      .then((verdict) => (verdict === true ? protocol.accept(transport, info) : refuse()), refuse);
  });
  return () => {
    off();
    unverify?.();
  };
}

function isPromise<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T>)?.then === 'function';
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** @internal A decoder's failure as the {@link ProtocolError} a `signalling.error` carries. */
export function asProtocolError(error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error;
  return new ProtocolError(ErrorCode.MalformedFrame, errorMessage(error), { cause: error });
}

/**
 * @internal The default of an actor a machine names and its caller must
 * supply with `.provide()`: it fails at once, with `hint` saying how.
 */
export function missingActor<TEvent extends EventObject = EventObject, TInput = NonReducibleUnknown>(
  name: string,
  hint: string,
): CallbackActorLogic<TEvent, TInput> {
  return fromCallback<TEvent, TInput>(() => {
    throw new Error(`No \`${name}\` actor was provided: ${hint}`);
  });
}
