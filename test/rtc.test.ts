import { MediaStream, MediaStreamTrack, RTCPeerConnection, RtpHeader, RtpPacket } from 'werift';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ErrorCode, RtcError } from '../src/errors.js';
import type { RTCDataChannelLike, RTCPeerConnectionLike, RtcActorInit, RtcInput } from '../src/rtc/index.js';
import { takeCandidates } from '../src/rtc/rtc.actor.js';
import {
  RtcPeer,
  WERIFT_LOOPBACK,
  candidateLines,
  delay,
  exchange,
  stopPeers,
  ufrag,
  withoutCandidates,
} from './rtc-helpers.js';
import { nextEvent } from './transport-compliance.js';

// Compile-time only: the DOM's and werift's classes fit the structural types.
type Fits<T, U> = [T] extends [U] ? true : false;
const fits: [
  Fits<typeof globalThis.RTCPeerConnection, RtcActorInit['RTCPeerConnection']>,
  Fits<typeof RTCPeerConnection, RtcActorInit['RTCPeerConnection']>,
  Fits<RTCPeerConnection, RTCPeerConnectionLike>,
  Fits<globalThis.RTCDataChannel, RTCDataChannelLike>,
  Fits<ReturnType<RTCPeerConnection['createDataChannel']>, RTCDataChannelLike>,
] = [true, true, true, true, true];
void fits;

/** A werift `RtcPeer`, loopback-only unless `init` says otherwise. */
class Peer extends RtcPeer {
  constructor(input: RtcInput, init: Partial<RtcActorInit> = {}) {
    super(input, { RTCPeerConnection, config: WERIFT_LOOPBACK, ...init });
  }
}

afterEach(async () => {
  stopPeers();
  // werift's close() is asynchronous: let it finish before the next test.
  await delay(50);
});

/** An offerer and an answerer wired to each other, both open. */
async function connectedPair(init: Partial<RtcActorInit> = {}) {
  const a = new Peer({ label: 'a', role: 'offerer' }, init);
  const b = new Peer({ label: 'b', role: 'answerer' }, init);
  a.forwardTo(b);
  b.forwardTo(a);
  const [openA, openB] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
  return { a, b, ta: openA.transport, tb: openB.transport };
}

describe('rtc actor, non-trickle (default)', () => {
  it('reports one SDP with every candidate, answers a remoteOffer from input, and both sides open', async () => {
    const a = new Peer({ label: 'a', role: 'offerer' });
    const offer = await a.waitFor('rtc.description');
    expect(offer).toMatchObject({ label: 'a', description: { type: 'offer' } });
    expect(candidateLines(offer.description.sdp)).toEqual([expect.stringContaining(' 127.0.0.1 ')]);

    const b = new Peer({ label: 'b', role: 'answerer', remoteOffer: offer.description.sdp });
    const answer = await b.waitFor('rtc.description');
    expect(answer).toMatchObject({ label: 'b', description: { type: 'answer' } });
    expect(candidateLines(answer.description.sdp).length).toBeGreaterThan(0);
    a.send({ type: 'rtc.remoteDescription', description: answer.description });

    const [openA, openB] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
    expect(openA.label).toBe('a');
    expect(openB.label).toBe('b');

    const [text, textBack] = await exchange(openA.transport, openB.transport, 'hello 👋');
    expect(text).toBe('hello 👋');
    expect(textBack).toBe('hello 👋');
    const [bin, binBack] = await exchange(openA.transport, openB.transport, Uint8Array.of(0, 1, 254, 255));
    expect(bin).toBeInstanceOf(Uint8Array);
    expect(bin).toEqual(Uint8Array.of(0, 1, 254, 255));
    expect(binBack).toEqual(Uint8Array.of(0, 1, 254, 255));

    // Exactly one description each, no trickled candidates, no failure.
    for (const peer of [a, b]) {
      expect(peer.of('rtc.description')).toHaveLength(1);
      expect(peer.of('rtc.candidate')).toHaveLength(0);
      expect(peer.of('rtc.failed')).toHaveLength(0);
    }
  });
});

describe('takeCandidates', () => {
  it('takes the candidates out of each media section with its mid and index, wherever a=mid stands', () => {
    const sdp = [
      'v=0',
      'o=- 1 1 IN IP4 127.0.0.1',
      's=-',
      't=0 0',
      'm=audio 9 UDP/TLS/RTP/SAVPF 111',
      'a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host',
      'a=mid:audio',
      'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
      'a=mid:0',
      'a=candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host',
      'a=end-of-candidates',
      'a=sctp-port:5000',
      '',
    ].join('\r\n');
    const split = takeCandidates(sdp);
    expect(split.candidates).toEqual([
      { candidate: 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host', sdpMLineIndex: 0, sdpMid: 'audio' },
      { candidate: 'candidate:2 1 udp 2122260223 127.0.0.1 50001 typ host', sdpMLineIndex: 1, sdpMid: '0' },
    ]);
    expect(split.sdp).toBe(
      ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 't=0 0', 'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:audio']
        .concat(['m=application 9 UDP/DTLS/SCTP webrtc-datachannel', 'a=mid:0', 'a=sctp-port:5000', ''])
        .join('\r\n'),
    );
    expect(takeCandidates('v=0\r\nm=application 9 x\r\na=sctp-port:5000\r\n')).toEqual({
      sdp: 'v=0\r\nm=application 9 x\r\na=sctp-port:5000\r\n',
      candidates: [],
    });
  });
});

describe('rtc actor, trickle', () => {
  it('exchanges candidates, including ones delivered before the remote description', async () => {
    const init = { trickle: true };
    const a = new Peer({ label: 'a', role: 'offerer' }, init);
    const offer = await a.waitFor('rtc.description');
    // werift gathers inside setLocalDescription: every candidate of the offer is known by now, and held back.
    expect(candidateLines(offer.description.sdp)).toEqual([]);
    expect(a.of('rtc.candidate')).toEqual([]);

    // The answerer waits for the offer as a command; it gets no candidate of the offerer yet.
    const b = new Peer({ label: 'b', role: 'answerer' }, init);
    b.send({ type: 'rtc.remoteDescription', description: offer.description });
    const answer = await b.waitFor('rtc.description');
    expect(answer.description.type).toBe('answer');
    const answerCandidates = b.of('rtc.candidate');
    expect(answerCandidates.length).toBeGreaterThan(0);
    // The answerer's description goes out before its candidates.
    expect(b.events.findIndex((e) => e.type === 'rtc.description')).toBeLessThan(
      b.events.findIndex((e) => e.type === 'rtc.candidate'),
    );

    // Candidates first, then the answer with its own candidates stripped, so only trickled ones can work.
    for (const { candidate } of answerCandidates) a.send({ type: 'rtc.remoteCandidate', candidate });
    const sentAnswerAt = a.events.length;
    a.send({
      type: 'rtc.remoteDescription',
      description: { type: 'answer', sdp: withoutCandidates(answer.description.sdp) },
    });
    // Once the answer is applied, the offerer's candidates follow.
    await a.waitFor('rtc.candidate');
    const offerCandidates = a.of('rtc.candidate');
    expect(a.events.findIndex((e) => e.type === 'rtc.candidate')).toBeGreaterThanOrEqual(sentAnswerAt);
    for (const { candidate, label } of offerCandidates) {
      expect(label).toBe('a');
      expect(candidate.candidate).toContain('127.0.0.1');
      expect(JSON.parse(JSON.stringify(candidate))).toEqual(candidate);
    }
    for (const { candidate } of offerCandidates) b.send({ type: 'rtc.remoteCandidate', candidate });

    const [openA, openB] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
    const [text] = await exchange(openA.transport, openB.transport, 'trickled');
    expect(text).toBe('trickled');
    const [bin] = await exchange(openA.transport, openB.transport, Uint8Array.of(9, 8, 7));
    expect(bin).toEqual(Uint8Array.of(9, 8, 7));
    expect([...a.of('rtc.failed'), ...b.of('rtc.failed')]).toEqual([]);
  });

  it('connects on the candidates an answer carries in its SDP: they are added once it is set', async () => {
    const init = { trickle: true };
    const a = new Peer({ label: 'a', role: 'offerer' }, init);
    const b = new Peer({ label: 'b', role: 'answerer' }, init);
    const offer = await a.waitFor('rtc.description');
    b.send({ type: 'rtc.remoteDescription', description: offer.description });
    const answer = await b.waitFor('rtc.description');
    // werift's answer lists its candidates; b's trickled copies are not passed on here.
    expect(candidateLines(answer.description.sdp).length).toBeGreaterThan(0);
    a.send({ type: 'rtc.remoteDescription', description: answer.description });
    a.forwardTo(b);
    const [openA, openB] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
    const [text] = await exchange(openA.transport, openB.transport, 'in the answer');
    expect(text).toBe('in the answer');
  });
});

/** Writes numbered RTP packets on `track` until stopped; resolves each received payload on `remote`. */
function rtpFlow(track: MediaStreamTrack, remote: MediaStreamTrack, text: string) {
  let sequenceNumber = 0;
  const timer = setInterval(() => {
    sequenceNumber++;
    const header = new RtpHeader({ payloadType: 96, sequenceNumber, timestamp: sequenceNumber * 960, ssrc: 4242 });
    track.writeRtp(new RtpPacket(header, Buffer.from(text)));
  }, 20);
  const received = new Promise<string>((resolve) => {
    const { unSubscribe } = remote.onReceiveRtp.subscribe((packet) => {
      unSubscribe();
      resolve(packet.payload.toString());
    });
  });
  return received.finally(() => clearInterval(timer));
}

describe('rtc actor, media', () => {
  it('sends each side its tracks next to the data channel: rtc.track with the streams, RTP flowing both ways', async () => {
    const camera = new MediaStream({ id: 'camera' });
    const mine = { a: new MediaStreamTrack({ kind: 'audio' }), b: new MediaStreamTrack({ kind: 'audio' }) };
    const asked: RtcInput[] = [];
    const media = (input: RtcInput) => {
      asked.push(input);
      return input.label === 'a' ? { tracks: [mine.a], streams: [camera] } : { tracks: [mine.b] };
    };
    const { a, b, ta, tb } = await connectedPair({ trickle: true, media });
    expect(asked.map((input) => input.label).sort()).toEqual(['a', 'b']);
    expect(/\nm=audio /.test(a.of('rtc.description')[0]!.description.sdp)).toBe(true);

    const [atB, atA] = await Promise.all([b.waitFor('rtc.track'), a.waitFor('rtc.track')]);
    expect(atB).toMatchObject({ label: 'b', track: { kind: 'audio' } });
    expect((atB.streams as MediaStream[]).map((stream) => stream.id)).toEqual(['camera']);
    expect(atA).toMatchObject({ label: 'a', track: { kind: 'audio' } });

    const [there, back] = await Promise.all([
      rtpFlow(mine.a, atB.track as MediaStreamTrack, 'from a'),
      rtpFlow(mine.b, atA.track as MediaStreamTrack, 'from b'),
    ]);
    expect([there, back]).toEqual(['from a', 'from b']);
    const [text] = await exchange(ta, tb, 'data too');
    expect(text).toBe('data too');
    expect([...a.of('rtc.failed'), ...b.of('rtc.failed')]).toEqual([]);
  });

  it('carries no media section without media, and reports a media callback that throws as rtc.failed', async () => {
    const plain = new Peer({ label: 'plain', role: 'offerer' }, { trickle: true });
    expect(/\nm=(audio|video) /.test((await plain.waitFor('rtc.description')).description.sdp)).toBe(false);

    const broken = new Peer(
      { label: 'broken', role: 'offerer' },
      {
        media: () => {
          throw new Error('no camera');
        },
      },
    );
    const { error } = await broken.waitFor('rtc.failed');
    expect(error).toBeInstanceOf(RtcError);
    expect(error.code).toBe(ErrorCode.RtcFailed);
    expect(error.message).toContain('could not add the local media: no camera');
    expect(broken.of('rtc.description')).toEqual([]);
  });
});

describe('rtc actor failures', () => {
  it('reports a bad remote offer from input as rtc.failed with ERR_RTC_FAILED', async () => {
    const b = new Peer({ label: 'b', role: 'answerer', remoteOffer: 'this is not SDP' });
    const failed = await b.waitFor('rtc.failed');
    expect(failed.label).toBe('b');
    expect(failed.error).toBeInstanceOf(RtcError);
    expect(failed.error.code).toBe(ErrorCode.RtcFailed);
    expect(b.of('rtc.description')).toHaveLength(0);
  });

  it('reports a bad remote answer, and a malformed description command, as rtc.failed', async () => {
    const a = new Peer({ label: 'a', role: 'offerer' });
    await a.waitFor('rtc.description');
    a.send({ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0\r\nnonsense\r\n' } });
    const first = await a.waitFor('rtc.failed');
    expect(first.error.code).toBe(ErrorCode.RtcFailed);
    a.send({ type: 'rtc.remoteDescription', description: { type: 'pranswer', sdp: 42 } as never });
    const second = await a.waitFor('rtc.failed', 2);
    expect(second.error.message).toMatch(/expected \{ type/);
  });

  it('reports a description the implementation rejects (an answer in the wrong state) as rtc.failed', async () => {
    const { a } = await connectedPair();
    const answer = a.of('rtc.description')[0]!.description.sdp.replace(/a=setup:\w+/, 'a=setup:active');
    a.send({ type: 'rtc.remoteDescription', description: { type: 'answer', sdp: answer } });
    const failed = await a.waitFor('rtc.failed');
    expect(failed.error.code).toBe(ErrorCode.RtcFailed);
    expect(failed.error.message).toMatch(/remote answer was rejected/);
    expect(failed.error.cause).toBeDefined();
  });

  it('reports a throwing constructor as rtc.failed instead of crashing the parent', async () => {
    const Broken = function () {
      throw new Error('no WebRTC here');
    } as unknown as RtcActorInit['RTCPeerConnection'];
    const a = new Peer({ label: 'a', role: 'offerer' }, { RTCPeerConnection: Broken });
    const failed = await a.waitFor('rtc.failed');
    expect(failed.error.message).toContain('no WebRTC here');
    expect(a.actor.getSnapshot().status).toBe('active');
  });

  it('sends what it has when gathering does not complete within gatheringTimeout', async () => {
    const started = Date.now();
    const a = new Peer({ label: 'a', role: 'offerer' }, { RTCPeerConnection: StuckPc, gatheringTimeout: 200 });
    const offer = await a.waitFor('rtc.description');
    expect(Date.now() - started).toBeGreaterThanOrEqual(190);
    expect(offer.description).toEqual({ type: 'offer', sdp: STUCK_SDP });
  });

  it('stopping mid-gathering removes every listener and timer and closes the connection', async () => {
    vi.useFakeTimers();
    try {
      const a = new Peer({ label: 'a', role: 'offerer' }, { RTCPeerConnection: StuckPc, trickle: false });
      const pc = StuckPc.last!;
      // Let the offer be created and the gathering wait begin.
      for (let i = 0; i < 10; i++) await Promise.resolve();
      expect(vi.getTimerCount()).toBe(1);
      expect(pc.listeners.size).toBeGreaterThan(0);
      a.stop();
      expect(vi.getTimerCount()).toBe(0);
      expect([...pc.listeners]).toEqual([]);
      expect([...pc.channel.listeners]).toEqual([]);
      expect(pc.closed).toBe(true);
      expect(pc.channel.closed).toBe(true);
      expect(a.of('rtc.description')).toEqual([]);
    } finally {
      vi.useRealTimers();
    }
  });
});

const STUCK_SDP = 'v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n';

/** A fake connection whose ICE gathering never completes; it records its listeners. */
class StuckPc implements RTCPeerConnectionLike {
  static last: StuckPc | undefined;
  connectionState = 'new';
  iceGatheringState = 'gathering';
  localDescription: { type: string; sdp: string } | null = null;
  closed = false;
  readonly listeners = new Set<string>();
  readonly channel = {
    label: 'x',
    readyState: 'connecting',
    bufferedAmount: 0,
    bufferedAmountLowThreshold: 0,
    closed: false,
    listeners: new Set<string>(),
    addEventListener(type: string) {
      this.listeners.add(type);
    },
    removeEventListener(type: string) {
      this.listeners.delete(type);
    },
    send() {},
    close() {
      this.closed = true;
    },
  };
  constructor() {
    StuckPc.last = this;
  }
  addEventListener(type: string) {
    this.listeners.add(type);
  }
  removeEventListener(type: string) {
    this.listeners.delete(type);
  }
  createDataChannel() {
    return this.channel;
  }
  async createOffer() {
    return { type: 'offer', sdp: STUCK_SDP };
  }
  async createAnswer() {
    return { type: 'answer', sdp: STUCK_SDP };
  }
  async setLocalDescription(d?: { type: string; sdp?: string }) {
    this.localDescription = { type: d!.type, sdp: d!.sdp! };
  }
  async setRemoteDescription() {}
  async addIceCandidate() {}
  close() {
    this.closed = true;
  }
}

/** A fake connection whose data channel dispatches events for real, driven by the test. */
class ScriptedChannelPc extends StuckPc {
  static latest: ScriptedChannelPc | undefined;
  readonly handlers = new Map<string, Set<(event: unknown) => void>>();
  constructor() {
    super();
    ScriptedChannelPc.latest = this;
    Object.assign(this.channel, {
      binaryType: 'blob',
      addEventListener: (type: string, handler: (event: unknown) => void) => {
        if (!this.handlers.has(type)) this.handlers.set(type, new Set());
        this.handlers.get(type)!.add(handler);
      },
      removeEventListener: (type: string, handler: (event: unknown) => void) =>
        this.handlers.get(type)?.delete(handler),
    });
  }
  emitChannel(type: string, event: unknown = {}) {
    for (const handler of [...(this.handlers.get(type) ?? [])]) handler(event);
  }
}

describe('rtc actor, early messages', () => {
  it('keeps what the channel delivers before its open event and hands it to the transport first, in order', async () => {
    const a = new Peer({ label: 'a', role: 'offerer' }, { RTCPeerConnection: ScriptedChannelPc, trickle: true });
    const pc = ScriptedChannelPc.latest!;
    expect((pc.channel as { binaryType?: string }).binaryType).toBe('arraybuffer');
    pc.emitChannel('message', { data: 'first' });
    pc.emitChannel('message', { data: Uint8Array.of(2).buffer });
    Object.assign(pc.channel, { readyState: 'open' });
    pc.emitChannel('open');
    const { transport } = await a.waitFor('rtc.open');
    pc.emitChannel('message', { data: 'third' });
    const frames: unknown[] = [];
    transport.on('message', (frame) => frames.push(frame));
    await delay(10);
    expect(frames).toEqual(['first', Uint8Array.of(2), 'third']);
  });
});

describe('rtc actor lifecycle', () => {
  it('stopping the parent closes the channel: the other side sees a remote close and rtc.closed', async () => {
    const { a, b, ta, tb } = await connectedPair();
    const remoteClose = nextEvent(tb, 'close');
    const localClose = nextEvent(ta, 'close');
    a.stop();
    expect(await localClose).toMatchObject({ initiator: 'local' });
    expect(await remoteClose).toEqual({ code: 1000, reason: '', initiator: 'remote' });
    await b.waitFor('rtc.closed');
    expect(ta.isOpen).toBe(false);
    expect(tb.isOpen).toBe(false);
    expect(b.of('rtc.failed')).toEqual([]);
  });

  it('rtc.close closes both ends and reports rtc.closed on both sides', async () => {
    const { a, b, tb } = await connectedPair();
    const remoteClose = nextEvent(tb, 'close');
    a.send({ type: 'rtc.close' });
    await a.waitFor('rtc.closed');
    expect((await remoteClose).initiator).toBe('remote');
    await b.waitFor('rtc.closed');
    expect(a.of('rtc.closed')).toHaveLength(1);
  });

  it('a transport closed by its user reports rtc.closed once on both sides', async () => {
    const { a, b, ta } = await connectedPair({ trickle: true });
    ta.close();
    await Promise.all([a.waitFor('rtc.closed'), b.waitFor('rtc.closed')]);
    await delay(100);
    expect(a.of('rtc.closed')).toHaveLength(1);
    expect(b.of('rtc.closed')).toHaveLength(1);
  });

  it.each([
    ['non-trickle', false],
    ['trickle', true],
  ])('ICE restart (%s) produces a new offer and the data channel stays usable', async (_, trickle) => {
    const { a, b, ta, tb } = await connectedPair({ trickle });
    const [before] = await exchange(ta, tb, 'before restart');
    expect(before).toBe('before restart');
    const firstOffer = a.of('rtc.description')[0]!.description.sdp;

    a.send({ type: 'rtc.restartIce' });
    const restartOffer = await a.waitFor('rtc.description', 2);
    expect(restartOffer.description.type).toBe('offer');
    expect(ufrag(restartOffer.description.sdp)).not.toBe(ufrag(firstOffer));
    if (!trickle) expect(candidateLines(restartOffer.description.sdp).length).toBeGreaterThan(0);
    // forwardTo() relays it; the answerer answers the new offer.
    const restartAnswer = await b.waitFor('rtc.description', 2);
    expect(restartAnswer.description.type).toBe('answer');

    // Sent while the offerer may still be applying the answer: reliable
    // delivery must carry it over once ICE reconnects.
    const [after, afterBack] = await exchange(ta, tb, Uint8Array.of(4, 2));
    expect(after).toEqual(Uint8Array.of(4, 2));
    expect(afterBack).toEqual(Uint8Array.of(4, 2));
    expect(ta.isOpen && tb.isOpen).toBe(true);
    for (const peer of [a, b]) {
      expect(peer.of('rtc.failed')).toEqual([]);
      expect(peer.of('rtc.closed')).toEqual([]);
      expect(peer.of('rtc.open')).toHaveLength(1);
    }
  });
});
