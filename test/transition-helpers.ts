/**
 * Level 1 helpers: run events through a machine with XState's pure
 * `transition()` and sort what the last step would do by kind.
 */
import { initialTransition, transition, type AnyStateMachine, type SnapshotFrom } from 'xstate';
import type { Message } from '../src/message.js';

export interface Step<M extends AnyStateMachine, Sent extends Message = Message> {
  snapshot: SnapshotFrom<M>;
  /** Messages sent to the `signalling` actor, in order. */
  sent: Sent[];
  /** Other sendTo targets, spawned children, emitted events and custom actions, by kind. */
  sentTo: Array<{ to: string; event: { type: string } }>;
  spawned: Array<{ id: string; input: unknown }>;
  stopped: string[];
  emitted: Array<{ type: string; detail?: unknown }>;
  actions: Array<{ type: string; params?: unknown }>;
}

type Action = { type: string; params?: Record<string, unknown> };

export function describeActions<M extends AnyStateMachine, Sent extends Message = Message>(
  snapshot: SnapshotFrom<M>,
  actions: readonly Action[],
): Step<M, Sent> {
  const step: Step<M, Sent> = { snapshot, sent: [], sentTo: [], spawned: [], stopped: [], emitted: [], actions: [] };
  for (const action of actions) {
    const p = action.params ?? {};
    if (action.type === 'xstate.sendTo') {
      const event = p.event as { type: string; message?: Sent };
      if (p.targetId === 'signalling' && event.type === 'signalling.send') step.sent.push(event.message!);
      else step.sentTo.push({ to: String(p.targetId ?? (p.to as { id: string }).id), event });
    } else if (action.type === 'xstate.spawnChild') step.spawned.push({ id: String(p.id), input: p.input });
    // stopChild's params are the child's actor ref itself (empty when there is no such child).
    else if (action.type === 'xstate.stopChild') step.stopped.push(String(p.id));
    else if (action.type === 'xstate.emit') step.emitted.push(p.event as { type: string });
    else step.actions.push({ type: action.type, params: action.params });
  }
  return step;
}

/** Runs `events` from the machine's start; returns what the last one did. */
export function run<M extends AnyStateMachine, Sent extends Message = Message>(
  machine: M,
  input: unknown,
  events: readonly unknown[],
): Step<M, Sent> {
  let [snapshot, actions] = initialTransition(machine, input as never) as [SnapshotFrom<M>, Action[]];
  for (const event of events) {
    [snapshot, actions] = transition(machine, snapshot, event as never) as [SnapshotFrom<M>, Action[]];
  }
  return describeActions<M, Sent>(snapshot, actions);
}
