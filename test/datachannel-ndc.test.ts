import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import type {
  DataChannelTransportInit,
  RTCDataChannelLike,
  RTCPeerConnectionLike,
  RtcActorInit,
} from '../src/rtc/index.js';
import type { Frame } from '../src/transport.js';
import {
  NDC_LOOPBACK,
  RtcPeer,
  WERIFT_LOOPBACK,
  candidateLines,
  checkBackpressure,
  dataChannelCompliance,
  dataChannelPair,
  delay,
  exchange,
  opened,
  stopPeers,
  ufrag,
  withoutCandidates,
} from './rtc-helpers.js';
import { nextEvent } from './transport-compliance.js';

// Compile-time only: node-datachannel's polyfill fits the structural types without a cast.
type Fits<T, U> = [T] extends [U] ? true : false;
const fits: [
  Fits<typeof NdcPeerConnection, RtcActorInit['RTCPeerConnection']>,
  Fits<NdcPeerConnection, RTCPeerConnectionLike>,
  Fits<ReturnType<NdcPeerConnection['createDataChannel']>, RTCDataChannelLike>,
] = [true, true, true];
void fits;

const NDC: RtcActorInit = { RTCPeerConnection: NdcPeerConnection, config: NDC_LOOPBACK };
const WERIFT: RtcActorInit = { RTCPeerConnection: WeriftPeerConnection, config: WERIFT_LOOPBACK };

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
  return dataChannelPair(
    pcA,
    pcB,
    teardown,
    async () => {
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
      return { channelA, channelB: b };
    },
    init,
  );
}

dataChannelCompliance('node-datachannel data channel', () => ndcPair());

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
    await checkBackpressure(await ndcPair(), 8 * 1024 * 1024);
  });
});

// ---- the rtc actor over node-datachannel and mixed backends ------------------

afterEach(async () => {
  stopPeers();
  // werift's close() is asynchronous, node-datachannel's close events come on setImmediate.
  await delay(50);
});

/** An offerer and an answerer, each with its own backend, wired to each other and both open. */
async function connectedPair(offerer: RtcActorInit, answerer: RtcActorInit, trickle: boolean) {
  const a = new RtcPeer({ label: 'a', role: 'offerer' }, { ...offerer, trickle });
  const b = new RtcPeer({ label: 'b', role: 'answerer' }, { ...answerer, trickle });
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

// Known flake: now and then (about once in ten full-suite runs on this 2-core
// machine) a node-datachannel offerer fails its DTLS handshake ("unknown CA")
// while it applies the answer: libdatachannel 0.24 checks the certificate
// before it has committed the remote description. Trickle mode avoids it (the
// offerer's candidates wait for the answer, see `rtc.candidate` in
// src/rtc/rtc.actor.ts); a non-trickle offer must carry its candidates, so the
// race stays possible there unless the answerer holds them (RtcInput.lateAnswer,
// as CloudLink does). One retry keeps CI honest about real breakage (a
// broken backend fails every attempt) without letting that flake stop a landing.
describe.each(backends)(
  'rtc actor: %s offerer, %s answerer',
  { retry: 1 },
  (_offerer, _answerer, offererInit, answererInit) => {
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
  },
);

describe('rtc actor over node-datachannel', () => {
  it('a non-trickle offer lists only the loopback candidate', async () => {
    const a = new RtcPeer({ label: 'a', role: 'offerer' }, NDC);
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

  // libdatachannel 0.24 checks the remote DTLS certificate against a remote description it may
  // not have committed yet: checks (and the DTLS hello) that reach an offerer while it applies the
  // answer failed about one connection in twenty with "DTLS alert: unknown CA". See `rtc.candidate` in src/rtc/rtc.actor.ts.
  it('trickle: the offerer keeps its candidates until the answer is applied, so no check can race it', async () => {
    const a = new RtcPeer({ label: 'a', role: 'offerer' }, { ...NDC, trickle: true });
    const b = new RtcPeer({ label: 'b', role: 'answerer' }, { ...NDC, trickle: true });
    const offer = await a.waitFor('rtc.description');
    expect(candidateLines(offer.description.sdp)).toEqual([]);
    b.send({ type: 'rtc.remoteDescription', description: offer.description });
    await b.waitFor('rtc.candidate');
    // node-datachannel gathers a loopback candidate within milliseconds: a has one by now, and holds it.
    await delay(200);
    expect(a.of('rtc.candidate')).toEqual([]);
    const answeredAt = a.events.length;
    b.forwardTo(a);
    await a.waitFor('rtc.candidate');
    expect(a.events.findIndex((e) => e.type === 'rtc.candidate')).toBeGreaterThanOrEqual(answeredAt);
    // Held candidates go out together (forwardTo would send the offer again).
    for (const { candidate } of a.of('rtc.candidate')) b.send({ type: 'rtc.remoteCandidate', candidate });
    const [openA, openB] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
    expect(await exchange(openA.transport, openB.transport, 'no race')).toEqual(['no race', 'no race']);
    expect([...a.of('rtc.failed'), ...b.of('rtc.failed')]).toEqual([]);
  });

  it('reports a bad remote answer as rtc.failed', async () => {
    const a = new RtcPeer({ label: 'a', role: 'offerer' }, NDC);
    await a.waitFor('rtc.description');
    a.send({ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0\r\nnonsense\r\n' } });
    const failed = await a.waitFor('rtc.failed');
    expect(failed.error.code).toBe(ErrorCode.RtcFailed);
  });

  it('cannot send media: a connection given tracks reports rtc.failed before any offer', async () => {
    const a = new RtcPeer({ label: 'a', role: 'offerer' }, { ...NDC, media: () => ({ tracks: [{ kind: 'audio' }] }) });
    const failed = await a.waitFor('rtc.failed');
    expect(failed.error.code).toBe(ErrorCode.RtcFailed);
    expect(failed.error.message).toMatch(/could not add the local media: .*Not implemented/);
    expect(a.of('rtc.description')).toEqual([]);
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
