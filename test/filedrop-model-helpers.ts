/**
 * Shared machinery of the filedrop client model tests
 * (`filedrop-sender.model.test.ts`, `filedrop-receiver.model.test.ts`): a real
 * client actor on a SimulatedClock whose signalling connection leads to a
 * server end the test reads and writes raw frames on, and whose WebRTC is
 * {@link scriptedRtc}; and models whose one event may stand for several
 * machine events in a row (what one real step makes happen).
 */
import {
  createActor,
  SimulatedClock,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type EventObject,
  type InspectionEvent,
} from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import type { ClientMessage } from '../machines/filedrop/protocol.js';
import { fromTransport } from '../src/runtime.js';
import type { CloseInfo, Transport } from '../src/transport.js';
import { scriptedRtc } from './model-helpers.js';
import { deferred } from './socket-helpers.js';

/**
 * A model event standing for one machine event, or for several in a row
 * (`then`): one real step (say, the last chunk of a file whose digest is
 * wrong) makes the real actor take two events (`download.progress`, then
 * `download.failed`), and the model must take both.
 */
export type Chained<TEvent extends EventObject> = TEvent & { then?: Chained<TEvent> };

/** `machine`, whose `transition` follows a {@link Chained} event's `then` links. */
export function chainedModel<TMachine extends AnyStateMachine>(machine: TMachine): TMachine {
  const model = Object.create(machine) as TMachine;
  (model as { transition: unknown }).transition = (
    snapshot: AnyMachineSnapshot,
    event: Chained<EventObject>,
    scope: never,
  ) => {
    let next = machine.transition(snapshot as never, event as never, scope) as AnyMachineSnapshot;
    for (let link = event.then; link; link = link.then) {
      if (next.status !== 'active') break;
      next = machine.transition(next as never, link as never, scope) as AnyMachineSnapshot;
    }
    return next;
  };
  return model;
}

/** A frame the client sent, parsed. */
export interface SentFrame {
  type: string;
  detail: Record<string, unknown>;
}

/**
 * A real filedrop client actor (sender or receiver) on a SimulatedClock. Its
 * signalling connection opens when the test says (`open`, or `refuse`); what
 * it sends arrives at `server`, where the test also writes frames; its
 * WebRTC is {@link scriptedRtc}. `crashSignalling` makes the signalling
 * actor fail as when its transport throws a programming error.
 */
export function filedropClientWorld<TMachine extends AnyStateMachine>(
  machine: TMachine,
  input: unknown,
  inspect: (event: InspectionEvent) => void,
  actors: Record<string, unknown> = {},
) {
  const clock = new SimulatedClock();
  let encodeThrows = false;
  // The client codec, except that `encode` can be made to throw (a programming error, not a transport's).
  const codec = clientCodec();
  const crashingCodec: typeof codec = {
    decode: (frame) => codec.decode(frame),
    encode(message) {
      if (encodeThrows) throw new Error('the codec broke (simulated)');
      return codec.encode(message);
    },
  };
  const rtc = scriptedRtc();
  const emitted: EventObject[] = [];
  // Each start of the signalling actor is a new connection (a receiver reconnects); the test drives the last.
  let clientEnd!: Transport;
  let serverEnd!: Transport;
  let connection!: ReturnType<typeof deferred<Transport>>;
  let connections = 0;
  const connect = () => {
    [clientEnd, serverEnd] = memoryPair();
    connection = deferred<Transport>();
    connections += 1;
    world.connected = false;
    serverEnd.on('message', (frame) => frames.push(JSON.parse(frame as string) as SentFrame));
    serverEnd.on('close', (info) => (closed = info));
    return connection.promise;
  };
  const logic = machine.provide({
    actors: { signalling: fromTransport(connect, crashingCodec), rtc: rtc.logic, ...actors },
  } as never) as AnyStateMachine;
  const actor = createActor(logic, { input, clock, inspect });
  actor.on('*', (event) => emitted.push(event));

  const frames: SentFrame[] = [];
  let read = 0;
  let readEmitted = 0;
  let closed: CloseInfo | undefined;

  const world = {
    clock,
    rtc,
    actor,
    /** The server's end of the current signalling connection. */
    get serverEnd() {
      return serverEnd;
    },
    /** How many signalling connections the client started. */
    get signallingConnections() {
      return connections;
    },
    /** Whether the current signalling connection was opened. */
    connected: false,
    get closed() {
      return closed;
    },
    open() {
      connection.resolve(clientEnd);
      world.connected = true;
    },
    refuse: (error: Error) => connection.reject(error),
    /** The server sends the client a frame. */
    send(type: string, detail: unknown) {
      serverEnd.send(JSON.stringify({ type, detail }));
    },
    /** Frames the client sent since the last call. */
    take: (): SentFrame[] => frames.slice(read, (read = frames.length)),
    /** Events the actor emitted since the last call. */
    emitted: () => emitted.slice(readEmitted, (readEmitted = emitted.length)),
    /** Makes the signalling actor crash: its codec throws on the next send, which the test asks for directly. */
    crashSignalling() {
      encodeThrows = true;
      const signalling = actor.getSnapshot().children.signalling as { send(e: unknown): void } | undefined;
      signalling?.send({
        type: 'signalling.send',
        message: { type: 'retry', detail: { peer: 'XXXXXXXX' } } satisfies ClientMessage,
      });
    },
    /** Makes the running rtc actor `id` crash: it throws on the next command, which the test sends it directly. */
    crashRtc(id: string) {
      const script = rtc.scripts.find((s) => s.id === id && !s.stopped);
      if (!script) throw new Error(`no running rtc actor ${id}`);
      script.crashing = true;
      (actor.getSnapshot().children[id] as { send(e: unknown): void }).send({ type: 'rtc.restartIce' });
    },
  };
  actor.start();
  return world;
}

export type FileDropClientWorld = ReturnType<typeof filedropClientWorld>;
