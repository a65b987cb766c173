/**
 * `bench:connect --trace`: when each step of a CloudLink handshake happened,
 * read from an actor's inspection events (no change to the machines). Shared
 * by the Node side and the Chromium harness page. Times are milliseconds
 * since the epoch (`performance.timeOrigin + performance.now()`), so that a
 * host and a peer in different processes or pages of one machine line up.
 */
import type { InspectionEvent } from 'xstate';

/** First time each milestone was seen, by name: `host gets NEW_PEER`, `peer sends ACCEPT_OFFER`, `host rtc.open in`, … */
export type Milestones = Record<string, number>;

export const now = () => performance.timeOrigin + performance.now();

/** An `inspect` callback for `createActor` that records `who`'s milestones into `times`. */
export function milestoneRecorder(who: 'host' | 'peer', times: Milestones = {}) {
  const mark = (name: string) => {
    times[name] ??= now();
  };
  const inspect = (inspection: InspectionEvent) => {
    if (inspection.type !== '@xstate.event') return;
    const event = inspection.event as { type: string; label?: string; message?: { type?: string } };
    if (event.type === 'signalling.send' && event.message?.type) mark(`${who} sends ${event.message.type}`);
    else if (event.type === 'signalling.open') mark(`${who} socket open`);
    else if (/^[A-Z_]+$/.test(event.type) && event.type !== 'KEEPALIVE') mark(`${who} gets ${event.type}`);
    else if (event.type.startsWith('rtc.') && event.label !== undefined)
      mark(`${who} ${event.type} ${event.label.split(':')[0]}`);
  };
  return { times, inspect };
}
