import { afterEach, describe, expect, it } from 'vitest';
import { Opcode } from '../machines/cloudlink/protocol.js';
import type { CloudLinkServerOptions } from '../machines/cloudlink/server.js';
import { cloudlinkSocketTestbed, cloudlinkTestbed, type RawClient, type Testbed } from './cloudlink-helpers.js';

const O = Opcode;
/** `[[[…]]]`, `depth` arrays deep. */
const nested = (depth: number): unknown => (depth === 0 ? 'x' : [nested(depth - 1)]);
let bed: Testbed;

afterEach(async () => {
  await bed?.close();
});

type Offender = (ctx: {
  bed: Testbed;
  host: RawClient & { id: string };
  peer: RawClient & { id: string };
}) => Promise<RawClient>;

const fresh =
  (): Offender =>
  async ({ bed }) =>
    bed.connect();
const initialized =
  (): Offender =>
  async ({ bed }) => {
    const c = await bed.connect();
    await c.init();
    return c;
  };
const asPeer =
  (lobby = 'L'): Offender =>
  async ({ bed }) => {
    const c = await bed.join('peer', lobby);
    if (lobby === 'L') await c.next(); // NEW_HOST
    return c;
  };
const asHost =
  (lobby: string): Offender =>
  async ({ bed }) =>
    bed.join('host', lobby);

const cases: Array<{
  name: string;
  who: Offender;
  frame: (ids: { host: string; peer: string }) => unknown;
  reason: RegExp;
}> = [
  { name: 'a frame that is not JSON', who: fresh(), frame: () => 'hello?', reason: /not valid JSON/ },
  { name: 'JSON that is not an object', who: fresh(), frame: () => '[2]', reason: /must be a JSON object/ },
  { name: 'an unknown opcode', who: initialized(), frame: () => ({ opcode: 42 }), reason: /unknown opcode 42/ },
  { name: 'a non-integer opcode', who: fresh(), frame: () => ({ opcode: '2' }), reason: /`opcode` must be an integer/ },
  {
    name: 'a server-only opcode',
    who: initialized(),
    frame: () => ({ opcode: O.INIT_OK, payload: 'me' }),
    reason: /sent by the server only/,
  },
  {
    name: 'a missing field',
    who: initialized(),
    frame: () => ({ opcode: O.CONFIG_HOST }),
    reason: /CONFIG_HOST: `payload`/,
  },
  {
    // A relayed payload may be any JSON (see cloudlink-wire.test.ts); a lobby id is routed by.
    name: 'a wrong-typed field',
    who: initialized(),
    frame: () => ({ opcode: O.CONFIG_HOST, payload: 42 }),
    reason: /lobby ID payload must be a string/,
  },
  {
    name: 'a relay without its payload',
    who: asPeer(),
    frame: ({ host }) => ({ opcode: O.ACCEPT_OFFER, rx: host }),
    reason: /ACCEPT_OFFER: `payload`/,
  },
  { name: 'a wrong-typed rx', who: asPeer(), frame: () => ({ opcode: O.ACK_READY, rx: 7 }), reason: /ACK_READY: `rx`/ },
  {
    // Extra keys are ignored (see cloudlink-wire.test.ts), but nesting is bounded.
    name: 'a frame nested too deeply',
    who: initialized(),
    frame: ({ peer }) => ({ opcode: O.MAKE_OFFER, payload: nested(40), rx: peer }),
    reason: /nested deeper than 32 levels/,
  },
  {
    name: 'a frame nested thousands deep',
    who: fresh(),
    frame: () => `{"opcode":2,"payload":${'['.repeat(2000)}${']'.repeat(2000)}}`,
    reason: /nested deeper than 32 levels/,
  },
  {
    name: 'a client frame carrying tx',
    who: initialized(),
    frame: ({ peer }) => ({ opcode: O.MAKE_OFFER, payload: 'x', rx: peer, tx: 'me' }),
    reason: /`tx` is set by the server only/,
  },
  {
    name: 'anything but INIT first',
    who: fresh(),
    frame: () => ({ opcode: O.CONFIG_HOST, payload: 'L' }),
    reason: /^CONFIG_HOST before INIT$/,
  },
  {
    name: 'MAKE_OFFER before CONFIG_HOST',
    who: initialized(),
    frame: ({ peer }) => ({ opcode: O.MAKE_OFFER, payload: 'x', rx: peer }),
    reason: /^MAKE_OFFER: expected CONFIG_HOST or CONFIG_PEER$/,
  },
  {
    name: 'a second INIT',
    who: initialized(),
    frame: () => ({ opcode: O.INIT }),
    reason: /^INIT: expected CONFIG_HOST/,
  },
  {
    name: 'a peer-only message from a host',
    who: asHost('other'),
    frame: ({ host }) => ({ opcode: O.ACCEPT_OFFER, payload: 'x', rx: host }),
    reason: /ACCEPT_OFFER is not allowed from a host/,
  },
  {
    name: 'a host-only message from a peer',
    who: asPeer(),
    frame: ({ host }) => ({ opcode: O.ACK_CHECK, rx: host }),
    reason: /ACK_CHECK is not allowed from a peer/,
  },
  {
    name: 'ACK_READY from a stranger in another lobby',
    who: asPeer('elsewhere'),
    frame: ({ host }) => ({ opcode: O.ACK_READY, rx: host }),
    reason: /is not a host in your lobby/,
  },
  {
    name: 'ACK_READY to a host that never sent ACK_CHECK',
    who: asPeer(),
    frame: ({ host }) => ({ opcode: O.ACK_READY, rx: host }),
    reason: /did not send you ACK_CHECK/,
  },
  {
    name: 'ACCEPT_OFFER without an offer',
    who: asPeer(),
    frame: ({ host }) => ({ opcode: O.ACCEPT_OFFER, payload: 'x', rx: host }),
    reason: /has not made you an offer/,
  },
  {
    name: 'MAKE_ANSWER before the offers',
    who: asPeer(),
    frame: ({ host }) => ({ opcode: O.MAKE_ANSWER, payload: 'x', rx: host }),
    reason: /no offers have been exchanged/,
  },
  {
    name: 'an rx outside the lobby',
    who: asHost('other'),
    frame: ({ peer }) => ({ opcode: O.MAKE_OFFER, payload: 'x', rx: peer }),
    reason: /is not a peer in your lobby/,
  },
  {
    name: 'SHUTDOWN_WRN before joining a lobby',
    who: initialized(),
    frame: ({ peer }) => ({ opcode: O.SHUTDOWN_WRN, rx: peer }),
    reason: /before joining a lobby/,
  },
  {
    name: 'an oversized frame',
    who: fresh(),
    frame: () => ({ opcode: O.INIT, payload: 'x'.repeat(5000) }),
    reason: /exceeds the cap of 4096/,
  },
];

const transports: Array<[string, (options: CloudLinkServerOptions) => Promise<Testbed>]> = [
  ['memory', async (options) => cloudlinkTestbed(options)],
  ['websocket', cloudlinkSocketTestbed],
];

describe.each(transports)('cloudlink server over %s: bad input gets VIOLATION, then close', (_, testbed) => {
  for (const c of cases) {
    it(`answers ${c.name} with VIOLATION and leaves the lobby unaffected`, async () => {
      bed = await testbed({ maxFrameSize: 4096 });
      const host = await bed.join('host', 'L');
      const peer = await bed.join('peer', 'L');
      await host.next(); // NEW_PEER
      await peer.next(); // NEW_HOST
      const offender = await c.who({ bed, host, peer });
      const frame = c.frame({ host: host.id, peer: peer.id });
      offender.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
      const violation = await offender.next();
      expect(violation.opcode).toBe(O.VIOLATION);
      expect(violation.payload).toMatch(c.reason);
      const closed = await offender.closed;
      expect(closed).toMatchObject({ code: 1008, initiator: 'remote' });

      // The server keeps running and the lobby still works end to end.
      host.send({ opcode: O.MAKE_OFFER, payload: 'o', rx: peer.id });
      expect(await peer.next()).toEqual({ opcode: O.ANTICIPATE_OFFER, payload: 'o', tx: host.id });
      peer.send({ opcode: O.ACCEPT_OFFER, payload: 'p', rx: host.id });
      // An offender that had joined lobby L was announced (NEW_PEER, SHUTDOWN_ACK) on the way.
      let relayed = await host.next();
      while (relayed.opcode === O.NEW_PEER || relayed.opcode === O.SHUTDOWN_ACK) relayed = await host.next();
      expect(relayed).toEqual({ opcode: O.RETURN_OFFER, payload: 'p', tx: peer.id });
      expect(bed.server.stats().connections).toBe(2);
    });
  }

  it('answers a binary frame with VIOLATION', async () => {
    bed = await testbed({});
    const c = await bed.connect();
    c.transport.send(new Uint8Array([123, 125]));
    expect(await c.next()).toMatchObject({
      opcode: O.VIOLATION,
      payload: expect.stringMatching(/binary frames are not accepted/),
    });
    expect((await c.closed).code).toBe(1008);
  });

  it.each([
    ['7', /^unsupported version 7/],
    ['abc', /^unsupported version/],
  ])('refuses version v=%s with VIOLATION', async (v, reason) => {
    bed = await testbed({});
    const c = await bed.connect('game', { v });
    const frame = await c.next();
    expect(frame.opcode).toBe(O.VIOLATION);
    expect(frame.payload).toMatch(reason);
    expect((await c.closed).code).toBe(1008);
    expect(bed.server.stats().connections).toBe(0);
  });

  it('accepts v=0 and a missing v alike', async () => {
    bed = await testbed({});
    const a = await bed.connect('game', { v: '0' });
    const b = await bed.connect('game');
    expect(await a.init()).toMatch(/-/);
    expect(await b.init()).toMatch(/-/);
  });

  it('refuses a path without a game id', async () => {
    bed = await testbed({});
    const c = await bed.connect('');
    expect(await c.next()).toMatchObject({ opcode: O.VIOLATION, payload: expect.stringMatching(/game id/) });
  });

  it('treats an escaped game id as its decoded text', async () => {
    bed = await testbed({});
    const host = await bed.join('host', 'L', encodeURIComponent('my game/1'));
    const peer = await bed.join('peer', 'L', encodeURIComponent('my game/1'));
    expect(await peer.next()).toEqual({ opcode: O.NEW_HOST, payload: host.id });
  });
});
