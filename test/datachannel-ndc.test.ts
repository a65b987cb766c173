import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import { createActor, setup, type Actor, type AnyStateMachine } from 'xstate';
import { DEFAULT_HIGH_WATER_MARK, sendWithBackpressure } from '../src/backpressure.js';
import { ErrorCode } from '../src/errors.js';
import {
  dataChannelTransport,
  fromRtc,
  type DataChannelTransportInit,
  type RTCDataChannelLike,
  type RTCPeerConnectionLike,
  type RtcActorInit,
  type RtcCommand,
  type RtcEmitted,
  type RtcInput,
} from '../src/rtc/index.js';
import type { Frame, Transport } from '../src/transport.js';
import { nextEvent, transportCompliance } from './transport-compliance.js';

// Compile-time only: node-datachannel's polyfill fits the structural types without a cast.
type Fits<T, U> = [T] extends [U] ? true : false;
const fits: [
  Fits<typeof NdcPeerConnection, RtcActorInit['RTCPeerConnection']>,
  Fits<NdcPeerConnection, RTCPeerConnectionLike>,
  Fits<ReturnType<NdcPeerConnection['createDataChannel']>, RTCDataChannelLike>,
] = [true, true, true];
void fits;

/** Loopback-only node-datachannel config: no ICE servers, one host candidate on 127.0.0.1. */
const NDC_LOOPBACK = { iceServers: [], bindAddress: '127.0.0.1' };

/** Loopback-only werift config (see test/rtc.test.ts). */
const WERIFT_LOOPBACK = {
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
};

const NDC: Partial<RtcActorInit> = { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK };
const WERIFT: Partial<RtcActorInit> = { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK };

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const candidateLines = (sdp: string) => sdp.split(/\r?\n/).filter((line) => line.startsWith('a=candidate:'));
const ufrag = (sdp: string) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];
const withoutCandidates = (sdp: string) =>
  sdp
    .split('\r\n')
    .filter((line) => !line.startsWith('a=candidate:') && line !== 'a=end-of-candidates')
    .join('\r\n');

// ---- a raw node-datachannel pair ---------------------------------------------

type NdcChannel = ReturnType<NdcPeerConnection['createDataChannel']>;

/**
 * node-datachannel resolves `setLocalDescription()` (and `createOffer()`) before
 * gathering: wait until gathering completed and the local description lists a candidate.
 */
function gathered(pc: NdcPeerConnection): Promise<string> {
  return new Promise((resolve) => {
    const check = () => {
      const sdp = pc.localDescription?.sdp ?? '';
      if (pc.iceGatheringState !== 'complete' || !/\na=candidate:/.test(sdp)) return;
      pc.removeEventListener('icegatheringstatechange', check);
      resolve(sdp);
    };
    pc.addEventListener('icegatheringstatechange', check);
    check();
  });
}

const opened = (channel: NdcChannel) =>
  new Promise<void>((resolve) => {
    if (channel.readyState === 'open') resolve();
    else channel.addEventListener('open', () => resolve());
  });

/** Two node-datachannel peer connections joined by one open, ordered data channel, wrapped as transports. */
async function ndcPair(init: DataChannelTransportInit = {}) {
  const pcA = new NdcPeerConnection(NDC_LOOPBACK);
  const pcB = new NdcPeerConnection(NDC_LOOPBACK);
  const teardown = async () => {
    pcA.close();
    pcB.close();
    // Channel close events are dispatched on setImmediate: let them pass.
    await delay(10);
  };
  try {
    const channelA = pcA.createDataChannel('test', { ordered: true });
    const channelB = new Promise<RTCDataChannelLike>((resolve) =>
      pcB.addEventListener('datachannel', (event) => resolve((event as unknown as { channel: NdcChannel }).channel)),
    );
    const offer = await pcA.createOffer();
    await pcA.setLocalDescription(offer);
    // The offer goes without its candidates: B then cannot start checks before
    // A has the answer, which otherwise stalls about one pair in ten for a
    // ~1 s retransmission. B learns A's address from A's checks (peer-reflexive).
    await pcB.setRemoteDescription({ type: 'offer', sdp: withoutCandidates(await gathered(pcA)) });
    await pcB.setLocalDescription(await pcB.createAnswer());
    await pcA.setRemoteDescription({ type: 'answer', sdp: await gathered(pcB) });
    const b = await channelB;
    await opened(channelA);
    return {
      a: dataChannelTransport(channelA, { ...init, peerConnection: pcA }),
      b: dataChannelTransport(b, { ...init, peerConnection: pcB }),
      channelA,
      channelB: b,
      teardown,
    };
  } catch (error) {
    await teardown();
    throw error;
  }
}

transportCompliance(
  'node-datachannel data channel',
  async () => {
    const { a, b, teardown } = await ndcPair();
    return { a, b, teardown };
  },
  // A data channel close carries no code or reason: the remote always sees 1000.
  { binary: true, closeCode: false },
);

describe('dataChannelTransport over node-datachannel', () => {
  it('sets bufferedAmountLowThreshold, delivers binary as plain Uint8Arrays and empty frames in order', async () => {
    const { a, b, channelA, teardown } = await ndcPair({ lowWaterMark: 1234, highWaterMark: 5000 });
    try {
      expect(channelA.bufferedAmountLowThreshold).toBe(1234);
      const frames: Frame[] = [];
      const all = new Promise<void>((resolve) =>
        b.on('message', (frame) => {
          frames.push(frame);
          if (frames.length === 5) resolve();
        }),
      );
      a.send('');
      a.send(new Uint8Array(0));
      a.send('x');
      a.send(Uint8Array.of(1, 2, 3));
      a.send('');
      await all;
      expect(frames).toEqual(['', new Uint8Array(0), 'x', Uint8Array.of(1, 2, 3), '']);
      expect(frames[3]).toBeInstanceOf(Uint8Array);
      expect(Buffer.isBuffer(frames[3])).toBe(false);
    } finally {
      a.close();
      b.close();
      await teardown();
    }
  });

  it('sends 8 MiB in 16 KiB chunks without letting bufferedAmount exceed the high-water mark plus one chunk', async () => {
    const { a, b, teardown } = await ndcPair();
    try {
      const chunk = 16 * 1024;
      const total = 8 * 1024 * 1024;
      const source = Uint8Array.from({ length: total }, (_, i) => (i * 7 + (i >> 14)) & 0xff);
      const received = new Uint8Array(total);
      let receivedBytes = 0;
      const done = new Promise<void>((resolve) =>
        b.on('message', (frame) => {
          const bytes = frame as Uint8Array;
          received.set(bytes, receivedBytes);
          receivedBytes += bytes.byteLength;
          if (receivedBytes >= total) resolve();
        }),
      );
      let maxBuffered = 0;
      let drains = 0;
      a.on('drain', () => drains++);
      for (let offset = 0; offset < total; offset += chunk) {
        await sendWithBackpressure(a, source.subarray(offset, offset + chunk));
        maxBuffered = Math.max(maxBuffered, a.bufferedAmount);
      }
      await done;
      expect(maxBuffered).toBeLessThanOrEqual(DEFAULT_HIGH_WATER_MARK + chunk);
      expect(drains).toBeGreaterThan(0);
      expect(receivedBytes).toBe(total);
      // Byte-for-byte, so any reordering or loss shows.
      expect(Buffer.compare(received, source)).toBe(0);
    } finally {
      a.close();
      b.close();
      await teardown();
    }
  });
});

// ---- the rtc actor over node-datachannel and mixed backends ------------------

type EventOf<T extends RtcEmitted['type']> = Extract<RtcEmitted, { type: T }>;

/** One peer: a parent machine that invokes one `rtc` actor and records what it sends back. */
class Peer {
  readonly events: RtcEmitted[] = [];
  readonly actor: Actor<AnyStateMachine>;
  private readonly listeners = new Set<(event: RtcEmitted) => void>();

  constructor(input: RtcInput, init: Partial<RtcActorInit>) {
    const machine = setup({
      types: { events: {} as RtcEmitted },
      actors: { rtc: fromRtc({ RTCPeerConnection: NdcPeerConnection, ...init }) },
    }).createMachine({
      invoke: { id: 'rtc', src: 'rtc', input },
      on: {
        '*': {
          actions: ({ event }) => {
            this.events.push(event);
            for (const listener of [...this.listeners]) listener(event);
          },
        },
      },
    });
    this.actor = createActor(machine).start();
    peers.push(this);
  }

  send(command: RtcCommand) {
    this.actor.getSnapshot().children.rtc?.send(command);
  }

  of<T extends RtcEmitted['type']>(type: T): EventOf<T>[] {
    return this.events.filter((e): e is EventOf<T> => e.type === type);
  }

  waitFor<T extends RtcEmitted['type']>(type: T, n = 1, timeout = 8000): Promise<EventOf<T>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.of(type)[n - 1];
        if (!found) return false;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        reject(new Error(`no ${type} #${n} within ${timeout} ms; got ${this.events.map((e) => e.type).join(', ')}`));
      }, timeout);
      if (!check()) this.listeners.add(check);
    });
  }

  /** Forwards every description and candidate (past and future) to `other`. */
  forwardTo(other: Peer) {
    const forward = (event: RtcEmitted) => {
      if (event.type === 'rtc.description')
        other.send({ type: 'rtc.remoteDescription', description: event.description });
      if (event.type === 'rtc.candidate') other.send({ type: 'rtc.remoteCandidate', candidate: event.candidate });
    };
    this.events.forEach(forward);
    this.listeners.add(forward);
  }

  stop() {
    this.actor.stop();
  }
}

let peers: Peer[] = [];
afterEach(async () => {
  for (const peer of peers) peer.stop();
  peers = [];
  // werift's close() is asynchronous, node-datachannel's close events come on setImmediate.
  await delay(50);
});

async function exchange(a: Transport, b: Transport, frame: Frame) {
  const atB = nextEvent(b, 'message');
  a.send(frame);
  const back = nextEvent(a, 'message');
  b.send(frame);
  return [await atB, await back] as const;
}

/** An offerer and an answerer, each with its own backend, wired to each other and both open. */
async function connectedPair(offerer: Partial<RtcActorInit>, answerer: Partial<RtcActorInit>, trickle: boolean) {
  const a = new Peer({ label: 'a', role: 'offerer' }, { ...offerer, trickle });
  const b = new Peer({ label: 'b', role: 'answerer' }, { ...answerer, trickle });
  a.forwardTo(b);
  b.forwardTo(a);
  const [openA, openB] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
  return { a, b, ta: openA.transport, tb: openB.transport };
}

const backends = [
  ['node-datachannel', 'node-datachannel', NDC, NDC],
  ['werift', 'node-datachannel', WERIFT, NDC],
  ['node-datachannel', 'werift', NDC, WERIFT],
] as const;

describe.each(backends)('rtc actor: %s offerer, %s answerer', (_offerer, _answerer, offererInit, answererInit) => {
  it.each([
    ['non-trickle', false],
    ['trickle', true],
  ])('connects (%s), carries text and binary both ways, and closes on both sides', async (_, trickle) => {
    const { a, b, ta, tb } = await connectedPair(offererInit, answererInit, trickle);
    const [text, textBack] = await exchange(ta, tb, 'hello 👋');
    expect([text, textBack]).toEqual(['hello 👋', 'hello 👋']);
    const [bin, binBack] = await exchange(ta, tb, Uint8Array.of(0, 1, 254, 255));
    expect(bin).toBeInstanceOf(Uint8Array);
    expect(bin).toEqual(Uint8Array.of(0, 1, 254, 255));
    expect(binBack).toEqual(Uint8Array.of(0, 1, 254, 255));

    for (const peer of [a, b]) {
      expect(peer.of('rtc.description')).toHaveLength(1);
      expect(peer.of('rtc.failed')).toEqual([]);
      const { sdp } = peer.of('rtc.description')[0]!.description;
      if (trickle) {
        const candidates = peer.of('rtc.candidate');
        expect(candidates.length).toBeGreaterThan(0);
        for (const { candidate } of candidates) {
          // W3C form: no "a=" prefix (node-datachannel reports one), JSON-safe.
          expect(candidate.candidate).toMatch(/^candidate:/);
          expect(JSON.parse(JSON.stringify(candidate))).toEqual(candidate);
        }
      } else {
        expect(peer.of('rtc.candidate')).toEqual([]);
        expect(candidateLines(sdp).length).toBeGreaterThan(0);
      }
    }

    const remoteClose = nextEvent(tb, 'close');
    a.send({ type: 'rtc.close' });
    await a.waitFor('rtc.closed');
    expect(await remoteClose).toEqual({ code: 1000, reason: '', initiator: 'remote' });
    await b.waitFor('rtc.closed');
    expect(a.of('rtc.closed')).toHaveLength(1);
    expect(b.of('rtc.closed')).toHaveLength(1);
  });
});

describe('rtc actor over node-datachannel', () => {
  it('a non-trickle offer lists only the loopback candidate', async () => {
    const a = new Peer({ label: 'a', role: 'offerer' }, NDC);
    const offer = await a.waitFor('rtc.description');
    expect(offer.description.type).toBe('offer');
    expect(candidateLines(offer.description.sdp)).toEqual([expect.stringContaining(' 127.0.0.1 ')]);
  });

  it('stopping the parent closes the channel: the other side sees a remote close and rtc.closed', async () => {
    const { a, b, ta, tb } = await connectedPair(NDC, NDC, false);
    const remoteClose = nextEvent(tb, 'close');
    a.stop();
    expect(await remoteClose).toEqual({ code: 1000, reason: '', initiator: 'remote' });
    await b.waitFor('rtc.closed');
    expect(ta.isOpen).toBe(false);
    expect(b.of('rtc.failed')).toEqual([]);
  });

  it('a transport closed by its user reports rtc.closed once on both sides', async () => {
    const { a, b, ta } = await connectedPair(NDC, NDC, true);
    ta.close();
    await Promise.all([a.waitFor('rtc.closed'), b.waitFor('rtc.closed')]);
    await delay(100);
    expect(a.of('rtc.closed')).toHaveLength(1);
    expect(b.of('rtc.closed')).toHaveLength(1);
  });

  it('reports a bad remote answer as rtc.failed', async () => {
    const a = new Peer({ label: 'a', role: 'offerer' }, NDC);
    await a.waitFor('rtc.description');
    a.send({ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0\r\nnonsense\r\n' } });
    const failed = await a.waitFor('rtc.failed');
    expect(failed.error.code).toBe(ErrorCode.RtcFailed);
  });

  it('ICE restart: reports rtc.failed (the polyfill cannot restart ICE) and the channel stays usable', async () => {
    const { a, b, ta, tb } = await connectedPair(NDC, NDC, false);
    const firstOffer = a.of('rtc.description')[0]!.description.sdp;
    a.send({ type: 'rtc.restartIce' });
    const failed = await a.waitFor('rtc.failed');
    expect(failed.error.code).toBe(ErrorCode.RtcFailed);
    expect(failed.error.message).toMatch(/ICE restart/);
    // Nothing was sent to the remote, and the connection is as it was.
    expect(a.of('rtc.description')).toHaveLength(1);
    expect(ufrag(a.of('rtc.description')[0]!.description.sdp)).toBe(ufrag(firstOffer));
    const [after, back] = await exchange(ta, tb, 'still here');
    expect([after, back]).toEqual(['still here', 'still here']);
    expect(b.of('rtc.failed')).toEqual([]);
  });

  it('a node-datachannel answerer rejects an ICE-restart offer (from werift) with rtc.failed', async () => {
    const { a, b } = await connectedPair(WERIFT, NDC, false);
    a.send({ type: 'rtc.restartIce' });
    const failed = await b.waitFor('rtc.failed');
    expect(failed.error.code).toBe(ErrorCode.RtcFailed);
    expect(failed.error.message).toMatch(/remote offer was rejected/);
    // It did not answer: the parent has to replace the connection.
    expect(b.of('rtc.description')).toHaveLength(1);
  });
});
