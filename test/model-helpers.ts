/**
 * Shared machinery of the model-based tests (`*.model.test.ts`): plans paths
 * through a model with @xstate/graph so that every state node and every
 * transition of a machine is taken, replays each path on the real actor (one
 * test a path, {@link replayEach}), and checks what the plan and the real
 * actors took ({@link expectFullCoverage}).
 */
import { getStateNodes, TestModel, type StatePath, type TestPath } from '@xstate/graph';
import { expect, it } from 'vitest';
import { memoryPair } from '../adapters/memory/index.js';
import type { ClientEmitted, ClientInput } from '../machines/cloudlink/client.js';
import { clientCodec } from '../machines/cloudlink/codec.js';
import { Opcode, type OpcodeName } from '../machines/cloudlink/protocol.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import { fromTransport } from '../src/runtime.js';
import type { RtcActorLogic, RtcCommand, RtcEmitted, RtcInput } from '../src/rtc/rtc.actor.js';
import type { CloseInfo, Transport } from '../src/transport.js';
import { deferred, settle as settleRounds } from './socket-helpers.js';
import {
  createActor,
  createEmptyActor,
  fromCallback,
  SimulatedClock,
  type AnyActorRef,
  type AnyMachineSnapshot,
  type AnyStateMachine,
  type AnyStateNode,
  type AnyTransitionDefinition,
  type EventObject,
  type InspectionEvent,
} from 'xstate';

/** Every state node of `machine`, root included, by id. */
export function stateNodeIds(machine: AnyStateMachine): string[] {
  return [machine.root, ...getStateNodes(machine.root)].map((node) => node.id);
}

/**
 * A stable, readable name for one transition definition: its source state,
 * its trigger (`on X`, `after <delay>`, `always`) and, when the trigger has
 * several guarded branches, the branch index.
 */
export function transitionKey(t: AnyTransitionDefinition): string {
  const source = t.source as AnyStateNode;
  const list: AnyTransitionDefinition[] =
    t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
  const index = list.indexOf(t);
  const afterPrefix = 'xstate.after.';
  let trigger: string;
  if (t.eventType === '') trigger = 'always';
  else if (t.eventType.startsWith(afterPrefix) && t.eventType.endsWith(`.${source.id}`)) {
    trigger = `after ${t.eventType.slice(afterPrefix.length, -source.id.length - 1)}`;
  } else trigger = `on ${t.eventType}`;
  return `${source.id}: ${trigger}${list.length > 1 ? ` [${index}]` : ''}`;
}

/** Every transition of `machine` (`on`, `after`, `always`, branch by branch), by {@link transitionKey}. */
export function transitionKeys(machine: AnyStateMachine): string[] {
  const keys: string[] = [];
  for (const node of [machine.root, ...getStateNodes(machine.root)]) {
    for (const list of node.transitions.values()) for (const t of list) keys.push(transitionKey(t));
    for (const t of node.always ?? []) keys.push(transitionKey(t));
  }
  return keys;
}

/** What a run visited: state node ids and transition keys. */
export interface Visited {
  readonly states: Set<string>;
  readonly transitions: Set<string>;
}

function visit(into: Visited, snapshot: AnyMachineSnapshot | undefined, transitions: AnyTransitionDefinition[]) {
  for (const t of transitions) {
    into.transitions.add(transitionKey(t));
    // The source of a transition was active, even if no snapshot at rest shows it
    // (a state left at once by `always`, like the initial `checkingEndpoint`).
    for (let node: AnyStateNode | undefined = t.source; node; node = node.parent) into.states.add(node.id);
  }
  for (const node of snapshot?._nodes ?? []) into.states.add(node.id);
}

/**
 * Records the state nodes and transitions that real actors take, from XState
 * inspection events: pass `inspect` to `createActor` (or to a server), and
 * `accept` picks the actors that count.
 */
export function coverageTracker(accept: (actor: AnyActorRef, snapshot: AnyMachineSnapshot) => boolean) {
  const visited: Visited = { states: new Set(), transitions: new Set() };
  return {
    visited,
    inspect(event: InspectionEvent) {
      if (event.type !== '@xstate.microstep') return;
      if (!accept(event.actorRef as AnyActorRef, event.snapshot as AnyMachineSnapshot)) return;
      visit(visited, event.snapshot as AnyMachineSnapshot, event._transitions);
    },
    /** Adds the nodes of a snapshot seen directly (an initial one has no microstep). */
    see(snapshot: AnyMachineSnapshot) {
      visit(visited, snapshot, []);
    },
  };
}

export interface PlanOptions<TEvent extends EventObject> {
  /** The model: the machine itself, provided with side-effect-free implementations. */
  model: AnyStateMachine;
  /** The machine whose transitions must all be covered (usually the model's origin). */
  machine: AnyStateMachine;
  /** Model inputs to start from; the first one is explored for extra edges. */
  inputs: unknown[];
  /** The events that may happen in a model state. */
  events: (snapshot: AnyMachineSnapshot) => TEvent[];
  /** What makes two model states the same state. Keep it finite. */
  serializeState: (snapshot: AnyMachineSnapshot) => string;
  /** One line describing a path, used in test names. */
  describe: (path: StatePath<AnyMachineSnapshot, TEvent>) => string;
  /**
   * Transitions that paths need not plan for, with the reason: taken by every
   * run without a model event (e.g. `signalling.open` as the transport is
   * already open), or unreachable by design.
   */
  notPlanned?: Record<string, string>;
  /**
   * Beyond the machine's transitions: model edges fall into classes (say, one
   * per control state and event), and some path takes an edge of each class.
   */
  edgeClass?: (from: AnyMachineSnapshot, event: TEvent) => string;
}

export interface Plan<TEvent extends EventObject> {
  paths: Array<TestPath<AnyMachineSnapshot, TEvent>>;
  /** What the planned paths take in the model. */
  planned: Visited & { events: Set<string>; edgeClasses: Set<string> };
  /** Transitions and events of the model that no path takes. */
  unplanned: string[];
  /** Number of model states (as serialized) and edges explored. */
  size: { states: number; edges: number };
}

const serializeEvent = (event: EventObject) => JSON.stringify(event);

/**
 * Plans the paths of a model-based test: @xstate/graph's shortest path to
 * every model state, then, for each transition of `machine` (and each model
 * event) no path takes yet, the shortest path to a state where it fires plus
 * that event. Paths that are a prefix of another are dropped.
 */
export function planPaths<TEvent extends EventObject>(options: PlanOptions<TEvent>): Plan<TEvent> {
  const { model, serializeState } = options;
  // What each model edge takes, recorded while @xstate/graph explores the model.
  const edges = new Map<
    string,
    { visited: Visited; event: TEvent; from: string; to: AnyMachineSnapshot; edgeClass?: string }
  >();
  // The model runs on @xstate/graph's mock actor scope; a copy of it whose
  // system reports microsteps tells which transitions an edge takes.
  const recordingScope = <TScope extends { system: object }>(scope: TScope, into: Visited): TScope => {
    const system = Object.create(scope.system) as { _sendInspectionEvent(event: InspectionEvent): void };
    system._sendInspectionEvent = (event: InspectionEvent) => {
      if (event.type === '@xstate.microstep') visit(into, event.snapshot as AnyMachineSnapshot, event._transitions);
    };
    return { ...scope, system };
  };
  const tracked = Object.create(model) as AnyStateMachine;
  (tracked as { transition: unknown }).transition = (snapshot: AnyMachineSnapshot, event: TEvent, scope: unknown) => {
    const visited: Visited = { states: new Set(), transitions: new Set() };
    const next = model.transition(
      snapshot,
      event,
      recordingScope(scope as Parameters<AnyStateMachine['transition']>[2], visited),
    ) as AnyMachineSnapshot;
    const from = serializeState(snapshot);
    const edgeClass = options.edgeClass?.(snapshot, event);
    edges.set(`${from}\n${serializeEvent(event)}`, { visited, event, from, to: next, edgeClass });
    return next;
  };

  const testModel = new TestModel(tracked, {
    events: options.events as never,
    serializeState: (snapshot: AnyMachineSnapshot) => serializeState(snapshot),
  });

  const planned: Visited & { events: Set<string>; edgeClasses: Set<string> } = {
    states: new Set(),
    transitions: new Set(),
    events: new Set(),
    edgeClasses: new Set(),
  };
  const take = (v: Visited) => {
    for (const s of v.states) planned.states.add(s);
    for (const t of v.transitions) planned.transitions.add(t);
  };

  const all: Array<StatePath<AnyMachineSnapshot, TEvent>> = [];
  const shortestTo = new Map<string, StatePath<AnyMachineSnapshot, TEvent>>();
  const initialVisits = new Map<StatePath<AnyMachineSnapshot, TEvent>, Visited>();
  for (const [i, input] of options.inputs.entries()) {
    // The initial macrostep (e.g. `always` out of a checking state) happens before any event.
    const initial: Visited = { states: new Set(), transitions: new Set() };
    const actor = createEmptyActor();
    const scope = {
      self: actor,
      logger: () => {},
      id: '',
      sessionId: 'plan',
      defer: () => {},
      system: actor.system,
      stopChild: () => {},
      emit: () => {},
      actionExecutor: () => {},
    };
    visit(initial, model.getInitialSnapshot(recordingScope(scope, initial) as never, input) as AnyMachineSnapshot, []);
    const paths = testModel.getShortestPaths({ input, allowDuplicatePaths: true } as never);
    for (const path of paths) {
      initialVisits.set(path, initial);
      all.push(path);
      if (i === 0) shortestTo.set(serializeState(path.state), path);
    }
  }

  const visitsOf = (path: StatePath<AnyMachineSnapshot, TEvent>): Visited[] => {
    const out = [initialVisits.get(path)!];
    for (let i = 1; i < path.steps.length; i++) {
      const edge = edges.get(`${serializeState(path.steps[i - 1]!.state)}\n${serializeEvent(path.steps[i]!.event)}`);
      if (edge) out.push(edge.visited);
    }
    return out;
  };
  const eventsOf = (path: StatePath<AnyMachineSnapshot, TEvent>) =>
    path.steps.slice(1).map((step) => serializeEvent(step.event));
  const classesOf = (path: StatePath<AnyMachineSnapshot, TEvent>) =>
    path.steps
      .slice(1)
      .map((step, i) => edges.get(`${serializeState(path.steps[i]!.state)}\n${serializeEvent(step.event)}`)?.edgeClass);
  const takePath = (path: StatePath<AnyMachineSnapshot, TEvent>) => {
    visitsOf(path).forEach(take);
    for (const e of eventsOf(path)) planned.events.add(e);
    for (const c of classesOf(path)) if (c !== undefined) planned.edgeClasses.add(c);
  };

  for (const path of all) takePath(path);

  // Extra edges for what the shortest paths miss.
  const notPlanned = new Set(Object.keys(options.notPlanned ?? {}));
  const targets = [...new Set(transitionKeys(options.machine))].filter((t) => !notPlanned.has(t));
  const modelEvents = new Set([...edges.values()].map((e) => serializeEvent(e.event)));
  const byLength = [...edges.values()]
    .filter((e) => shortestTo.has(e.from))
    .sort((a, b) => shortestTo.get(a.from)!.steps.length - shortestTo.get(b.from)!.steps.length);
  const unplanned: string[] = [];
  const extend = (want: (e: (typeof byLength)[number]) => boolean, what: string) => {
    const edge = byLength.find(want);
    if (!edge) {
      unplanned.push(what);
      return;
    }
    const base = shortestTo.get(edge.from)!;
    const path: StatePath<AnyMachineSnapshot, TEvent> = {
      state: edge.to,
      steps: [...base.steps, { state: edge.to, event: edge.event }],
      weight: base.weight + 1,
    };
    initialVisits.set(path, initialVisits.get(base)!);
    all.push(path);
    takePath(path);
  };
  for (const t of targets) {
    if (!planned.transitions.has(t)) extend((e) => e.visited.transitions.has(t), `transition ${t}`);
  }
  for (const e of modelEvents) {
    if (!planned.events.has(e)) extend((edge) => serializeEvent(edge.event) === e, `event ${e}`);
  }
  const classes = new Set([...edges.values()].map((e) => e.edgeClass).filter((c) => c !== undefined));
  for (const c of classes) {
    if (!planned.edgeClasses.has(c)) extend((edge) => edge.edgeClass === c, `edge class ${c}`);
  }

  // Drop paths that are a prefix of a longer one.
  const sequences = all.map((path) => ({ path, seq: eventsOf(path) })).sort((a, b) => b.seq.length - a.seq.length);
  const kept: typeof sequences = [];
  for (const candidate of sequences) {
    const covered = kept.some(
      (k) =>
        initialVisits.get(k.path) === initialVisits.get(candidate.path) &&
        candidate.seq.every((e, i) => k.seq[i] === e),
    );
    if (!covered) kept.push(candidate);
  }

  return {
    paths: kept.map(({ path }) => ({
      ...path,
      description: options.describe(path),
      test: (params) => testModel.testPath(path, params),
    })),
    planned,
    unplanned,
    size: {
      states: new Set([...edges.values()].flatMap((e) => [e.from, serializeState(e.to)])).size,
      edges: edges.size,
    },
  };
}

/** Lets queued microtasks and the memory network's deliveries run (three rounds unless told). */
export const settle = (rounds = 3): Promise<void> => settleRounds(rounds);

/** A frame as parsed JSON, for comparing what went over a memory transport. */
export interface WireFrame {
  opcode: number;
  payload?: unknown;
  tx?: string;
  rx?: string;
}

/** One end of a connection, read as JSON frames: what the other side sent, and how it closed. */
export interface Wire {
  readonly transport: Transport;
  readonly frames: WireFrame[];
  closed?: CloseInfo;
  send(frame: WireFrame | string): void;
  /** Frames received since the last call. */
  take(): WireFrame[];
}

export function wire(transport: Transport, react: (frame: WireFrame, w: Wire) => void = () => {}): Wire {
  let read = 0;
  const w: Wire = {
    transport,
    frames: [],
    send: (frame) => transport.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    take: () => w.frames.slice(read, (read = w.frames.length)),
  };
  transport.on('message', (frame) => {
    const parsed = JSON.parse(frame as string) as WireFrame;
    w.frames.push(parsed);
    react(parsed, w);
  });
  transport.on('close', (info) => (w.closed = info));
  return w;
}

/** One invocation of the scripted `rtc` actor. */
export interface RtcScript {
  /** The actor's id in its parent (`rtcOut`, `out:peer-1#2`, …). */
  readonly id: string;
  readonly input: RtcInput;
  /** Commands the machine sent it. */
  readonly commands: RtcCommand[];
  stopped: boolean;
  /** The data channel it reported open: `local` went to the machine, `remote` is the far end. */
  channel?: { local: Transport; remote: Transport };
  /** Makes the next command throw, so the actor fails (`xstate.error.actor.<id>`). */
  crashing: boolean;
  emit(event: RtcEmitted): void;
}

/**
 * An `rtc` actor that does nothing by itself: the test decides when each
 * connection reports its description, opens, fails or closes.
 */
export function scriptedRtc() {
  const live = new Map<string, RtcScript>();
  const scripts: RtcScript[] = [];
  const logic: RtcActorLogic = fromCallback<RtcCommand, RtcInput>(({ input, self, sendBack, receive }) => {
    const script: RtcScript = {
      id: self.id,
      input,
      commands: [],
      stopped: false,
      crashing: false,
      emit: (event) => {
        if (script.stopped) throw new Error(`rtc ${input.label} is stopped: the model sent it an event`);
        sendBack(event);
      },
    };
    live.set(input.label, script);
    scripts.push(script);
    receive((command) => {
      if (script.crashing) throw new Error(`rtc ${input.label} crashed (simulated)`);
      script.commands.push(command);
    });
    return () => {
      script.stopped = true;
      if (live.get(input.label) === script) live.delete(input.label);
    };
  });
  return {
    logic,
    /** The running invocation of each label (a later one replaces an earlier). */
    live,
    /** Every invocation so far, stopped or not. */
    scripts,
    /** Reports the data channel of `label` open; returns its far end. */
    open(label: string): Transport {
      const script = live.get(label)!;
      const [local, remote] = memoryPair();
      script.channel = { local, remote };
      script.emit({ type: 'rtc.open', label, transport: local });
      return remote;
    },
  };
}

/** A transport that does nothing, for model events that carry one. */
export const stubTransport: Transport = {
  isOpen: true,
  bufferedAmount: 0,
  send() {},
  on: () => () => {},
  close() {},
};

/** How {@link replay} runs a path on the system under test. */
export interface ReplayDriver<
  TWorld,
  TEvent extends EventObject,
  TSnapshot extends AnyMachineSnapshot = AnyMachineSnapshot,
> {
  /** Builds the system under test on the path's first step. */
  start(initial: TSnapshot): TWorld | Promise<TWorld>;
  /** Makes one later event happen in it; `prev` is the model state before the step. */
  exec(world: TWorld, prev: TSnapshot, event: TEvent): Promise<void>;
  /** Compares it with the model after every step (`prev` is undefined after `start`). */
  check(world: TWorld, prev: TSnapshot | undefined, event: TEvent, next: TSnapshot): Promise<void>;
  stop(world: TWorld): void | Promise<void>;
}

/**
 * Replays one planned path: `start` builds the system under test on the
 * path's first step, `exec` makes each later event happen in it, and `check`
 * compares it with the model after every step (`prev` is the model state
 * before the step, undefined after `start`).
 */
export async function replay<
  TWorld,
  TEvent extends EventObject,
  TSnapshot extends AnyMachineSnapshot = AnyMachineSnapshot,
>(path: TestPath<AnyMachineSnapshot, TEvent>, driver: ReplayDriver<TWorld, TEvent, TSnapshot>): Promise<void> {
  let world: TWorld | undefined;
  let prev: TSnapshot | undefined;
  let pending: TEvent | undefined;
  const exec = async (step: { event: TEvent; state: AnyMachineSnapshot }) => {
    pending = step.event;
    if (step.event.type === 'xstate.init') world = await driver.start(step.state as TSnapshot);
    else await driver.exec(world!, prev!, step.event);
  };
  const types = new Set(['xstate.init', ...path.steps.map((step) => step.event.type)]);
  try {
    await path.test({
      events: Object.fromEntries([...types].map((type) => [type, exec])) as never,
      states: {
        '*': async (snapshot) => {
          await driver.check(world!, prev, pending!, snapshot as TSnapshot);
          prev = snapshot as TSnapshot;
        },
      },
    });
  } finally {
    if (world !== undefined) await driver.stop(world);
  }
}

/**
 * Declares one test per planned path, named `` `${title} ${path.description}` ``,
 * that {@link replay}s it with `driver`. Returns whether every one of them
 * ran and passed (not so in a filtered run), for {@link expectFullCoverage}.
 */
export function replayEach<
  TWorld,
  TEvent extends EventObject,
  TSnapshot extends AnyMachineSnapshot = AnyMachineSnapshot,
>(
  title: string,
  paths: ReadonlyArray<TestPath<AnyMachineSnapshot, TEvent>>,
  driver: ReplayDriver<TWorld, TEvent, TSnapshot>,
): () => boolean {
  let ran = 0;
  for (const path of paths) {
    it(`${title} ${path.description}`, async () => {
      await replay(path, driver);
      ran++;
    });
  }
  return () => ran === paths.length;
}

/**
 * Checks that `planned` takes every state node of `machine`, and every
 * transition but those the plan left out on purpose (`notPlanned`, as given
 * to {@link planPaths}): exactly those.
 */
export function expectPlanned(
  machine: AnyStateMachine,
  planned: Visited,
  notPlanned: Record<string, string> = {},
): void {
  const transitions = [...new Set(transitionKeys(machine))];
  expect([...planned.states].sort(), `state nodes of ${machine.id} the plan takes`).toEqual(
    stateNodeIds(machine).sort(),
  );
  expect(
    transitions.filter((t) => !planned.transitions.has(t)).sort(),
    `transitions of ${machine.id} the plan leaves out`,
  ).toEqual(Object.keys(notPlanned).sort());
}

/** Checks that the real actors took every state node and every transition of `machine`. */
export function expectVisited(machine: AnyStateMachine, visited: Visited): void {
  const transitions = [...new Set(transitionKeys(machine))];
  expect([...visited.states].sort(), `state nodes of ${machine.id} the real actors took`).toEqual(
    stateNodeIds(machine).sort(),
  );
  expect(
    transitions.filter((t) => !visited.transitions.has(t)),
    `transitions of ${machine.id} the real actors never took`,
  ).toEqual([]);
}

/** `taken/all` state nodes and transitions of `machine`, for a test's summary line. */
export function coverageCount(machine: AnyStateMachine, visited: Visited): string {
  const states = stateNodeIds(machine);
  const transitions = [...new Set(transitionKeys(machine))];
  const count = (all: string[], seen: Set<string>) => `${all.filter((x) => seen.has(x)).length}/${all.length}`;
  return `${count(states, visited.states)} state nodes, ${count(transitions, visited.transitions)} transitions`;
}

/**
 * The check that ends every model-based test: the plan reaches every state
 * node and every transition of `machine` (but `notPlanned`) and nothing of
 * the model is left unplanned; and, when every path ran (`ranAll`, from
 * {@link replayEach}), the real actors took every one of them. Then prints a
 * summary line, `<label>: <model size>, <paths>; <coverage>`.
 */
export function expectFullCoverage(check: {
  label: string;
  machine: AnyStateMachine;
  plan: Pick<Plan<EventObject>, 'planned' | 'unplanned' | 'size'> & { paths: { length: number } };
  tracker: { visited: Visited };
  notPlanned?: Record<string, string>;
  ranAll: boolean;
}): void {
  const { machine, plan } = check;
  // The plan reaches everything in the model...
  expect(plan.unplanned, `what no planned path of ${machine.id} takes`).toEqual([]);
  expectPlanned(machine, plan.planned, check.notPlanned);
  // ...and the real actors took every one of them.
  if (!check.ranAll) return; // a filtered run: not every path ran
  expectVisited(machine, check.tracker.visited);
  console.info(
    `${check.label}: ${plan.size.states} states, ${plan.size.edges} edges, ${plan.paths.length} paths; ` +
      coverageCount(machine, check.tracker.visited),
  );
}

/**
 * A real CloudLink client actor (host or peer) on a SimulatedClock, whose
 * signalling connection opens when the test says (`open`, or `refuse`) and
 * leads to a server end the test reads and writes (`server`), and whose
 * WebRTC is {@link scriptedRtc}.
 */
export function clientWorld<TMachine extends AnyStateMachine>(
  machine: TMachine,
  input: ClientInput,
  inspect: (event: InspectionEvent) => void,
) {
  const clock = new SimulatedClock();
  const [client, serverEnd] = memoryPair();
  const connection = deferred<Transport>();
  const rtc = scriptedRtc();
  const emitted: ClientEmitted[] = [];
  const logic: AnyStateMachine = machine.provide({
    actors: { signalling: fromTransport(() => connection.promise, clientCodec()), rtc: rtc.logic },
  });
  const actor = createActor(logic, { input, clock, inspect });
  actor.on('*', (event) => emitted.push(event as ClientEmitted));
  actor.start();
  let read = 0;
  const world = {
    clock,
    rtc,
    actor,
    server: wire(serverEnd),
    /** Whether the signalling connection was opened. */
    connected: false,
    /** The far ends of every data channel the scripted rtc opened. */
    channels: [] as Transport[],
    open() {
      connection.resolve(client);
      world.connected = true;
    },
    refuse: (error: Error) => connection.reject(error),
    /** Events the actor emitted since the last call. */
    emitted: () => emitted.slice(read, (read = emitted.length)),
    /**
     * Lets `ms` pass on the clock while the server keeps the connection alive,
     * as it does on its own schedule: a KEEPALIVE, then at most `pingEvery` ms,
     * and again until `ms` have passed. Resolves with the number of KEEPALIVEs
     * sent (each one the client answers).
     */
    async elapse(ms: number, pingEvery: number): Promise<number> {
      let pings = 0;
      for (let passed = 0; passed < ms; passed += pingEvery) {
        world.server.send({ opcode: Opcode.KEEPALIVE });
        pings++;
        await settle();
        clock.increment(Math.min(pingEvery, ms - passed));
      }
      await settle();
      return pings;
    },
  };
  return world;
}

/** Resolves with the next frame `transport` receives. */
export function nextFrame(transport: Transport): Promise<unknown> {
  return new Promise((resolve) => {
    const off = transport.on('message', (frame) => {
      off();
      resolve(frame);
    });
  });
}

/** A model step both client models take the same way: the scripted rtc actor or the scripted server acts. */
export type ScriptedStep =
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  | { type: 'rtc.open'; label: string }
  | { type: 'rtc.failed'; label: string }
  | { type: 'rtc.closed'; label: string }
  | { type: OpcodeName; detail: { payload?: string; tx?: string } };

/** Plays a {@link ScriptedStep} on a {@link clientWorld}. */
export function playScripted(w: ReturnType<typeof clientWorld>, event: ScriptedStep): void {
  const script = 'label' in event ? w.rtc.live.get(event.label) : undefined;
  switch (event.type) {
    case 'rtc.description':
      script!.emit({ type: 'rtc.description', label: event.label, description: event.description });
      break;
    case 'rtc.open':
      w.channels.push(w.rtc.open(event.label));
      break;
    case 'rtc.failed':
      script!.emit({ type: 'rtc.failed', label: event.label, error: new RtcError(ErrorCode.RtcFailed, 'ICE failed') });
      break;
    case 'rtc.closed':
      script!.channel!.remote.close();
      script!.emit({ type: 'rtc.closed', label: event.label });
      break;
    default: {
      const { payload, tx } = event.detail;
      w.server.send({ opcode: Opcode[event.type], payload, tx });
    }
  }
}
