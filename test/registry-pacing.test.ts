/**
 * The registry server's paced writes (pacer.ts, announce.ts, welcome.ts):
 * bulk writes spread over turns of the event loop, each peer's frames in
 * order whatever the slicing, peers that close mid-slice, rounds due while
 * one is still being written, and the Welcome list kept in step.
 */
import { describe, expect, it } from 'vitest';
import { memoryPair } from '../adapters/memory/index.js';
import { pacer } from '../machines/registry/pacer.js';
import type { Announcement, FileEntry, ServerMessage } from '../machines/registry/protocol.js';
import { memoryFileRegistry } from '../machines/registry/registry.js';
import { createRegistryServer, type RegistryServerOptions } from '../machines/registry/server.js';
import { WelcomeList, WELCOME_BATCH_SIZE } from '../machines/registry/welcome.js';
import { ErrorCode } from '../src/errors.js';
import { TransportError } from '../src/errors.js';
import type { Frame, Transport, TransportEvents } from '../src/transport.js';

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A transport that records what is written to it, as it is written. */
function recorder(name: string, log: string[]) {
  const closeHandlers: Array<(event: TransportEvents['close']) => void> = [];
  const written: Frame[] = [];
  let open = true;
  const transport: Transport = {
    get isOpen() {
      return open;
    },
    bufferedAmount: 0,
    send(frame) {
      if (!open) throw new TransportError(ErrorCode.TransportClosed, 'closed');
      written.push(frame);
      log.push(`${name}:${String(frame)}`);
    },
    on(type, handler) {
      if (type === 'close') closeHandlers.push(handler as (event: TransportEvents['close']) => void);
      return () => {};
    },
    close(code = 1000, reason = '') {
      if (!open) return;
      open = false;
      for (const handler of closeHandlers) handler({ code, reason, initiator: 'local' });
    },
  };
  return { transport, written };
}

describe('pacer', () => {
  it('writes bulk frames a slice a turn, each connection’s in order, direct ones at once when nothing is held', async () => {
    const log: string[] = [];
    const pace = pacer({ sliceFrames: 3, sliceSize: 1_000_000 });
    const [a, b] = [recorder('a', log), recorder('b', log)];
    const [boxA, boxB] = [pace.outbox(a.transport), pace.outbox(b.transport)];
    pace.bulk(() => {
      for (let i = 1; i <= 4; i++) {
        boxA.send(`a${i}`);
        boxB.send(`b${i}`);
      }
    });
    // The turn's budget: three frames written at once, the rest held.
    expect(log).toEqual(['a:a1', 'b:b1', 'a:a2']);
    expect(pace.held).toBe(5);
    expect(boxB.bufferedAmount).toBe(6); // b2 b3 b4 held
    // A direct send to a connection with frames held goes behind them.
    boxB.send('relay');
    expect(log).toHaveLength(3);
    // Connections in the order they first had frames held (b2 was held before a3).
    await turn();
    expect(log.slice(3)).toEqual(['b:b2', 'b:b3', 'b:b4']);
    await turn();
    expect(log.slice(6)).toEqual(['b:relay', 'a:a3', 'a:a4']);
    expect(pace.held).toBe(0);
    // Nothing held: a direct send is written at once, even past the turn's budget.
    boxA.send('x');
    expect(log.at(-1)).toBe('a:x');
  });

  it('keeps the order of a long run of frames held for one connection while more keep coming', async () => {
    const pace = pacer({ sliceFrames: 100, sliceSize: 1_000_000 });
    const a = recorder('a', []);
    const box = pace.outbox(a.transport);
    let sent = 0;
    for (let round = 0; round < 40; round++) {
      pace.bulk(() => {
        for (let i = 0; i < 150; i++) box.send(String(sent++));
      });
      await turn();
    }
    while (pace.held > 0) await turn();
    expect(a.written).toEqual(Array.from({ length: sent }, (_, i) => String(i)));
  });

  it('counts characters too: a slice ends past sliceSize (one frame at least)', async () => {
    const log: string[] = [];
    const pace = pacer({ sliceFrames: 100, sliceSize: 10 });
    const a = recorder('a', log);
    const box = pace.outbox(a.transport);
    pace.bulk(() => ['x'.repeat(25), 'yyyy', 'zzzz', 'wwwwwwwwww', 'v'].forEach((f) => box.send(f)));
    expect(a.written).toEqual(['x'.repeat(25)]);
    await turn();
    expect(a.written.slice(1)).toEqual(['yyyy', 'zzzz', 'wwwwwwwwww']);
    await turn();
    expect(a.written.slice(4)).toEqual(['v']);
  });

  it('drops what is held for a connection that closes mid-slice, and writes the others’', async () => {
    const log: string[] = [];
    const pace = pacer({ sliceFrames: 2, sliceSize: 1_000_000 });
    const a = recorder('a', log);
    const b = recorder('b', log);
    const [boxA, boxB] = [pace.outbox(a.transport), pace.outbox(b.transport)];
    pace.bulk(() => {
      for (let i = 1; i <= 3; i++) {
        boxA.send(`a${i}`);
        boxB.send(`b${i}`);
      }
    });
    expect(pace.held).toBe(4);
    a.transport.close(1006, 'gone'); // the remote went (the socket closed)
    expect(pace.held).toBe(2);
    await turn();
    await turn();
    expect(log).toEqual(['a:a1', 'b:b1', 'b:b2', 'b:b3']);
    expect(pace.held).toBe(0);
    // Sending to it now fails as the transport contract says.
    expect(() => boxA.send('late')).toThrow(TransportError);
  });

  it('a write that closes its connection (too slow) drops the rest of its frames', async () => {
    const log: string[] = [];
    const pace = pacer({ sliceFrames: 1, sliceSize: 1_000_000 });
    const a = recorder('a', log);
    const send = a.transport.send.bind(a.transport);
    a.transport.send = (frame) => {
      send(frame);
      if (frame === 'a2') a.transport.close(1008, 'too slow');
    };
    const box = pace.outbox(a.transport);
    pace.bulk(() => ['a1', 'a2', 'a3', 'a4'].forEach((f) => box.send(f)));
    for (let i = 0; i < 4; i++) await turn();
    expect(a.written).toEqual(['a1', 'a2']);
    expect(pace.held).toBe(0);
  });

  it('closing through the outbox drops what is held; stop() drops everything', async () => {
    const log: string[] = [];
    const pace = pacer({ sliceFrames: 1, sliceSize: 1_000_000 });
    const [a, b] = [recorder('a', log), recorder('b', log)];
    const [boxA, boxB] = [pace.outbox(a.transport), pace.outbox(b.transport)];
    pace.bulk(() => ['1', '2', '3'].forEach((f) => (boxA.send(`a${f}`), boxB.send(`b${f}`))));
    boxA.close(1000, 'session ended');
    expect(a.transport.isOpen).toBe(false);
    expect(pace.held).toBe(3);
    pace.stop();
    expect(pace.held).toBe(0);
    await turn();
    expect(log).toEqual(['a:a1']);
  });
});

describe('welcome list', () => {
  const list = (n: number): FileEntry[] =>
    Array.from({ length: 5 + (n % 7) }, (_, i) => ({ path: `${'d'.repeat(200)}/${n}-${i}.bin`, size: i }));

  it('stays the registry’s, in order, through joins, updates and leaves, reusing the frames nobody changed', () => {
    const registry = memoryFileRegistry();
    const messages = new WeakMap<readonly FileEntry[], ServerMessage>();
    const registerPeer = (peer: string, files: readonly FileEntry[]) => {
      const made = { type: 'RegisterPeer' as const, detail: { peer, files: files as FileEntry[] } };
      messages.set(files, made);
      return made;
    };
    const welcome = new WelcomeList(registry, registerPeer, undefined);
    const announce = (message: Announcement) => welcome.announced(message);
    /** The list as a newcomer is told it: every event of every frame, in order. */
    const events = (frames: ServerMessage[]) =>
      frames.flatMap((f) => (f.type === 'Batch' ? f.detail.events : [f])) as Array<{
        detail: { peer: string; files: FileEntry[] };
      }>;
    const expected = () => [...registry.entries()].map(([peer, files]) => ({ peer, files }));
    let seed = 1;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (let n = 0; n < 600; n++) {
      const ids = [...registry.entries()].map(([id]) => id);
      const roll = random();
      if (roll < 0.6 || ids.length < 3) {
        const files = list(n);
        registry.add(`p${n}`, files);
        announce(registerPeer(`p${n}`, files));
      } else if (roll < 0.8) {
        const peer = ids[Math.floor(random() * ids.length)]!;
        const files = list(n + 3);
        registry.update(peer, files);
        announce({ type: 'UpdatePeer', detail: { peer, files } });
      } else {
        const peer = ids[Math.floor(random() * ids.length)]!;
        registry.remove(peer);
        announce({ type: 'UnregisterPeer', detail: { peer } });
      }
      if (n % 50 !== 49) continue;
      const before = welcome.messages(true);
      expect(events(before).map((e) => e.detail)).toEqual(expected());
      expect(events(welcome.messages(false)).map((e) => e.detail)).toEqual(expected());
      for (const frame of before) {
        expect(JSON.stringify(frame).length).toBeLessThanOrEqual(WELCOME_BATCH_SIZE + 64);
      }
      if (n > 100) expect(before.length).toBeGreaterThan(1);
      // A newcomer joins: every frame but the last is the same object as before.
      const files = list(n + 5);
      registry.add(`q${n}`, files);
      announce(registerPeer(`q${n}`, files));
      const after = welcome.messages(true);
      expect(after.slice(0, before.length - 1)).toEqual(before.slice(0, -1));
      for (let k = 0; k < before.length - 1; k++) expect(after[k]).toBe(before[k]);
    }
    // Changed without an announcement: built again from the registry.
    registry.add('silent', []);
    expect(events(welcome.messages(true)).map((e) => e.detail)).toEqual(expected());
  });
});

describe('registry server, paced', () => {
  /** A raw registry peer on a memory pair: every frame it got, parsed, in order. */
  const peer = (server: ReturnType<typeof createRegistryServer>, batch = true) => {
    const [transport, client] = memoryPair();
    const frames: Array<{ type: string; detail: Record<string, unknown> }> = [];
    client.on('message', (frame) => frames.push(JSON.parse(frame as string) as (typeof frames)[number]));
    server.accept(transport, {
      path: '/registry',
      query: new URLSearchParams(),
      remoteAddress: '127.0.0.1',
      headers: {},
    });
    client.send(JSON.stringify({ type: 'Connect', detail: { files: [], ...(batch && { batch }) } }));
    return { client, frames };
  };
  /** Turns until every one of `peers` has its Welcome. */
  const welcomed = async (peers: Array<{ frames: unknown[] }>) => {
    for (let i = 0; peers.some((p) => p.frames.length === 0); i++) {
      expect(i).toBeLessThan(1000);
      await turn();
    }
  };
  const settle = async () => {
    for (let i = 0; i < 400; i++) await turn();
  };
  /** What a peer was told, each announcement alone, in order (a Batch read as its events). */
  const told = (frames: Array<{ type: string; detail: Record<string, unknown> }>) =>
    frames.flatMap((f) => (f.type === 'Batch' ? (f.detail.events as typeof frames) : [f]));
  const tight: RegistryServerOptions = {
    pacing: { sliceFrames: 3, sliceSize: 2_000 },
    limits: { messagesPerSecond: 1e6, messageBurst: 1e6, byteBurst: 1 << 30 },
  };

  it('tells every peer its whole Welcome list first, then every join and leave after it, in order', async () => {
    const server = createRegistryServer(tight);
    const peers = Array.from({ length: 40 }, (_, i) => peer(server, i % 3 !== 0));
    await turn();
    const late = Array.from({ length: 10 }, () => peer(server));
    // Some leave while the rounds telling of them are still being written.
    await welcomed(late);
    for (const p of late.slice(0, 4)) p.client.send(JSON.stringify({ type: 'Disconnect' }));
    await settle();
    const ids = [...peers, ...late].map((p) => p.frames[0]!.detail.id as string);
    const staying = ids.filter((_, i) => i < 40 || i >= 44);
    for (const [i, p] of [...peers, ...late].entries()) {
      if (i >= 40 && i < 44) continue;
      const events = told(p.frames);
      expect(events[0]!.type).toBe('Welcome');
      const listed = events[0]!.detail.peers as number;
      // The Welcome list: the peers before it, each once, before anything else.
      expect(events.slice(1, 1 + listed).map((e) => e.type)).toEqual(Array(listed).fill('RegisterPeer'));
      expect(events.slice(1, 1 + listed).map((e) => e.detail.peer)).toEqual(ids.slice(0, listed));
      // Then each later peer's join, and for those that left, their leave after it.
      const known = new Set(ids.slice(0, listed));
      for (const event of events.slice(1 + listed)) {
        const who = event.detail.peer as string;
        if (event.type === 'RegisterPeer') {
          expect(known.has(who)).toBe(false);
          known.add(who);
        } else {
          expect(event.type).toBe('UnregisterPeer');
          expect(known.delete(who)).toBe(true);
        }
      }
      expect([...known].sort()).toEqual(staying.filter((id) => id !== ids[i]).sort());
    }
    expect(server.stats()).toMatchObject({ connections: 46, peers: 46 });
    await server.close();
  });

  it('relays an Offer to a newcomer only after its whole Welcome list', async () => {
    const server = createRegistryServer(tight);
    const crowd = Array.from({ length: 30 }, () => peer(server));
    await settle();
    // A seed client: its list is 30 frames, written a few a turn.
    const newcomer = peer(server, false);
    const offerer = crowd[0]!;
    let turns = 0;
    while (
      !told(offerer.frames).some((e) => e.type === 'RegisterPeer' && e.detail.peer === newcomer.frames[0]?.detail.id)
    ) {
      await turn();
      expect(++turns).toBeLessThan(1000);
    }
    const id = newcomer.frames[0]!.detail.id as string;
    offerer.client.send(JSON.stringify({ type: 'Offer', detail: { peer: id, connection: 'c1', sdp: 'v=0 offer' } }));
    await settle();
    const types = newcomer.frames.map((f) => f.type);
    expect(types.slice(0, 31)).toEqual(['Welcome', ...Array(30).fill('RegisterPeer')]);
    expect(types.slice(31)).toEqual(['Offer']);
    expect(newcomer.frames[31]!.detail).toMatchObject({ peer: offerer.frames[0]!.detail.id, connection: 'c1' });
    await server.close();
  });

  it('a peer that closes while frames are held for it leaves nothing behind and the others miss nothing', async () => {
    const server = createRegistryServer(tight);
    const crowd = Array.from({ length: 30 }, () => peer(server));
    await turn();
    // Closed as soon as they are in: their Welcome lists and the rounds are still being written.
    await welcomed([crowd[5]!, crowd[6]!]);
    crowd[5]!.client.close();
    crowd[6]!.client.close();
    await settle();
    const gone = [5, 6].map((i) => crowd[i]!.frames[0]!.detail.id);
    for (const [i, p] of crowd.entries()) {
      if (i === 5 || i === 6) continue;
      const unregistered = told(p.frames)
        .filter((e) => e.type === 'UnregisterPeer')
        .map((e) => e.detail.peer);
      expect(unregistered.sort()).toEqual(gone.sort());
    }
    expect(server.stats()).toMatchObject({ connections: 28, peers: 28 });
    await server.close();
  });
});
