import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import { describe, expect, it } from 'vitest';
import { waitFor } from 'xstate';
import { createCloudLinkWorld } from '../testing/index.js';

describe('inspection', () => {
  it('shows the server sessions, the clients and their rtc actors in the Stately inspector, serialisable as JSON', async () => {
    const wire: string[] = [];
    // The adapter is what the WebSocket / browser inspectors put on the wire.
    const inspector = createInspector({ send: (event: StatelyInspectionEvent) => wire.push(JSON.stringify(event)) });
    const world = createCloudLinkWorld({ inspect: inspector.inspect });
    const host = world.host({ lobby: 'L' });
    const peer = world.peer({ lobby: 'L' });
    await waitFor(peer, (s) => s.matches({ active: { protocol: { linking: 'linked' } } }));
    await waitFor(host, (s) => Object.values(s.context.links).some((l) => l.stage === 'ready'));
    const ids = [host.getSnapshot().context.id, peer.getSnapshot().context.id];
    await world.close();
    // The inspector hands events to its adapter when the event loop is idle.
    await new Promise((resolve) => setTimeout(resolve, 100));

    const events = wire.map((line) => JSON.parse(line) as StatelyInspectionEvent);
    const actors = events.filter((e) => e.type === '@xstate.actor').map((e) => (e as { name: string }).name);
    // Sessions are named by the peer id they serve.
    expect(actors).toEqual(expect.arrayContaining(['cloudlinkHost', 'cloudlinkPeer', 'signalling', ...ids]));
    const seen = new Set(
      events.filter((e) => e.type === '@xstate.event').map((e) => (e as { event: { type: string } }).event.type),
    );
    for (const type of [
      'INIT',
      'INIT_OK',
      'CONFIG_HOST',
      'NEW_PEER',
      'MAKE_OFFER',
      'ANTICIPATE_OFFER',
      'RETURN_OFFER',
      'ACK_CHECK',
      'ACK_READY',
      'rtc.open',
    ]) {
      expect(seen, type).toContain(type);
    }
  });
});
