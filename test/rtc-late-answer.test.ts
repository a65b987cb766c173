import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import type { RtcActorInit, RtcIceCandidateInit, RtcInput } from '../src/rtc/index.js';
import { NDC_LOOPBACK, RtcPeer, WERIFT_LOOPBACK, candidateLines, delay, stopPeers } from './rtc-helpers.js';

// RtcInput.lateAnswer: an answerer whose offerer gets the answer late answers
// a libdatachannel offer as the DTLS server, and holds another offer's
// candidates only when its own side is libdatachannel's.

afterEach(async () => {
  stopPeers();
  await delay(50);
});

const OFFER = [
  'v=0',
  'o=- 1 0 IN IP4 0.0.0.0',
  's=-',
  't=0 0',
  'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
  'a=mid:data',
  'a=setup:actpass',
  'a=candidate:1 1 udp 2122194687 127.0.0.1 50000 typ host',
  'a=candidate:2 1 udp 2122267903 ::1 50001 typ host',
  'a=end-of-candidates',
  'a=sctp-port:5000',
  '',
].join('\r\n');

/** A fake connection that records what it is given. */
class RecordingPc {
  static last: RecordingPc;
  connectionState = 'new';
  iceGatheringState = 'complete';
  iceConnectionState = 'new';
  localDescription: { type: string; sdp: string } | null = null;
  /** The origin line of the answers it makes: `rtc` as libdatachannel's. */
  static origin = '-';
  remote: string[] = [];
  added: RtcIceCandidateInit[] = [];
  /** What it was asked to do, in order. */
  log: string[] = [];
  constructor() {
    RecordingPc.last = this;
  }
  addEventListener() {}
  removeEventListener() {}
  createDataChannel() {
    throw new Error('not for an answerer');
  }
  async createOffer() {
    return { type: 'offer', sdp: OFFER };
  }
  async createAnswer() {
    this.log.push('createAnswer');
    return {
      type: 'answer',
      sdp: `v=0\r\no=${RecordingPc.origin} 2 0 IN IP4 127.0.0.1\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n`,
    };
  }
  async setLocalDescription(d: { type: string; sdp?: string }) {
    this.log.push('setLocalDescription');
    this.localDescription = { type: d.type, sdp: `${d.sdp}a=candidate:9 1 udp 1 127.0.0.1 9 typ host\r\n` };
  }
  async setRemoteDescription(d: { sdp: string }) {
    this.remote.push(d.sdp);
  }
  async addIceCandidate(c: RtcIceCandidateInit) {
    this.log.push('addIceCandidate');
    this.added.push(c);
  }
  close() {}
}

const answerer = (input: Partial<RtcInput> = {}) =>
  new RtcPeer(
    { label: 'b', role: 'answerer', remoteOffer: OFFER, lateAnswer: true, ...input },
    { RTCPeerConnection: RecordingPc as unknown as RtcActorInit['RTCPeerConnection'] },
  );

const HELD = [
  { candidate: 'candidate:1 1 udp 2122194687 127.0.0.1 50000 typ host', sdpMLineIndex: 0, sdpMid: 'data' },
  { candidate: 'candidate:2 1 udp 2122267903 ::1 50001 typ host', sdpMLineIndex: 0, sdpMid: 'data' },
];

const setupLines = (sdp: string) => sdp.split(/\r?\n/).filter((line) => line.startsWith('a=setup:'));
const LIBDATACHANNEL_OFFER = OFFER.replace('o=- 1 0', 'o=rtc 1 0');

describe('rtc actor: lateAnswer', () => {
  afterEach(() => {
    RecordingPc.origin = '-';
  });

  it('libdatachannel answering another offer: applies it without its candidates and adds them at rtc.releaseCandidates', async () => {
    RecordingPc.origin = 'rtc';
    const b = answerer();
    await b.waitFor('rtc.description');
    const pc = RecordingPc.last;
    expect(pc.remote).toHaveLength(1);
    expect(candidateLines(pc.remote[0]!)).toEqual([]);
    expect(pc.remote[0]).not.toContain('end-of-candidates');
    expect(pc.remote[0]).toContain('a=sctp-port:5000');
    expect(setupLines(pc.remote[0]!)).toEqual(['a=setup:actpass']);
    // A trickled candidate waits with them.
    const trickled = { candidate: 'candidate:3 1 udp 1 127.0.0.1 50003 typ host', sdpMid: 'data' };
    b.send({ type: 'rtc.remoteCandidate', candidate: trickled });
    await delay(10);
    expect(pc.added).toEqual([]);
    b.send({ type: 'rtc.releaseCandidates' });
    await delay(10);
    expect(pc.added).toEqual([...HELD, trickled]);
    // Released once: later candidates go straight in, a second release does nothing.
    b.send({ type: 'rtc.releaseCandidates' });
    b.send({ type: 'rtc.remoteCandidate', candidate: trickled });
    await delay(10);
    expect(pc.added).toEqual([...HELD, trickled, trickled]);
  });

  it('libdatachannel answering: drops the held candidates when ICE connected before the release', async () => {
    RecordingPc.origin = 'rtc';
    const b = answerer();
    await b.waitFor('rtc.description');
    RecordingPc.last.iceConnectionState = 'connected';
    b.send({ type: 'rtc.releaseCandidates' });
    await delay(10);
    expect(RecordingPc.last.added).toEqual([]);
  });

  it('another implementation answering: the candidates go in before its answer is set, nothing is held', async () => {
    const b = answerer();
    await b.waitFor('rtc.description');
    const pc = RecordingPc.last;
    expect(candidateLines(pc.remote[0]!)).toEqual([]);
    expect(pc.added).toEqual(HELD);
    expect(pc.log).toEqual(['createAnswer', 'addIceCandidate', 'addIceCandidate', 'setLocalDescription']);
    b.send({ type: 'rtc.releaseCandidates' });
    await delay(10);
    expect(pc.added).toEqual(HELD);
  });

  it('a libdatachannel offer is applied as if it said a=setup:active, with its candidates, whoever answers', async () => {
    for (const origin of ['rtc', '-']) {
      RecordingPc.origin = origin;
      const b = answerer({ remoteOffer: LIBDATACHANNEL_OFFER });
      await b.waitFor('rtc.description');
      expect(RecordingPc.last.remote).toEqual([LIBDATACHANNEL_OFFER.replace('a=setup:actpass', 'a=setup:active')]);
      expect(RecordingPc.last.added).toEqual([]);
    }
  });

  it('a later offer (an ICE restart) is applied as received: the roles agreed stay', async () => {
    RecordingPc.origin = 'rtc';
    const b = answerer({ remoteOffer: LIBDATACHANNEL_OFFER });
    await b.waitFor('rtc.description');
    const restart = LIBDATACHANNEL_OFFER.replace('o=rtc 1 0', 'o=rtc 1 1');
    b.send({ type: 'rtc.remoteDescription', description: { type: 'offer', sdp: restart } });
    await b.waitFor('rtc.description', 2);
    expect(RecordingPc.last.remote[1]).toBe(restart);
  });

  it('without it, the offer is applied as received', async () => {
    RecordingPc.origin = 'rtc';
    for (const remoteOffer of [OFFER, LIBDATACHANNEL_OFFER]) {
      const b = answerer({ lateAnswer: false, remoteOffer });
      await b.waitFor('rtc.description');
      expect(RecordingPc.last.remote).toEqual([remoteOffer]);
      b.send({ type: 'rtc.releaseCandidates' });
      await delay(10);
      expect(RecordingPc.last.added).toEqual([]);
    }
  });

  const backends: [string, RtcActorInit][] = [
    ['werift', { RTCPeerConnection, config: WERIFT_LOOPBACK }],
    [
      'node-datachannel',
      { RTCPeerConnection: NdcPeerConnection as unknown as RtcActorInit['RTCPeerConnection'], config: NDC_LOOPBACK },
    ],
  ];
  // What each pair answers: libdatachannel answers its own offers passive; werift answers active whatever it is offered.
  const expectedSetup = (offerer: string, answering: string) =>
    offerer === 'node-datachannel' && answering === 'node-datachannel' ? 'a=setup:passive' : 'a=setup:active';
  for (const [offerer, offererInit] of backends) {
    for (const [answering, answererInit] of backends) {
      it(`${offerer} offerer, ${answering} answerer: connects with the answer applied late`, async () => {
        const a = new RtcPeer({ label: 'a', role: 'offerer' }, offererInit);
        const offer = await a.waitFor('rtc.description');
        expect(setupLines(offer.description.sdp)).toEqual(['a=setup:actpass']);
        const b = new RtcPeer(
          { label: 'b', role: 'answerer', remoteOffer: offer.description.sdp, lateAnswer: true },
          answererInit,
        );
        const answer = await b.waitFor('rtc.description');
        expect(setupLines(answer.description.sdp)).toEqual([expectedSetup(offerer, answering)]);
        // As in CloudLink: the offerer gets the answer later than it was made, and the answerer hears of it after.
        await delay(50);
        a.send({ type: 'rtc.remoteDescription', description: answer.description });
        await delay(5);
        b.send({ type: 'rtc.releaseCandidates' });
        const [ta, tb] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
        const heard = new Promise((resolve) => ta.transport.on('message', resolve));
        tb.transport.send(`${offerer} to ${answering}`);
        expect(await heard).toBe(`${offerer} to ${answering}`);
        expect([...a.of('rtc.failed'), ...b.of('rtc.failed')]).toEqual([]);
      });
    }
  }
});
