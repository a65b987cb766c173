import { RTCPeerConnection } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import type { RtcActorInit, RtcIceCandidateInit, RtcInput } from '../src/rtc/index.js';
import { RtcPeer, WERIFT_LOOPBACK, candidateLines, delay, stopPeers } from './rtc-helpers.js';

// RtcInput.holdRemoteCandidates: an answerer that applies the offer without
// its candidates until the parent says the offerer has our answer.

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
  remote: string[] = [];
  added: RtcIceCandidateInit[] = [];
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
    return { type: 'answer', sdp: 'v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n' };
  }
  async setLocalDescription(d: { type: string; sdp?: string }) {
    this.localDescription = { type: d.type, sdp: `${d.sdp}a=candidate:9 1 udp 1 127.0.0.1 9 typ host\r\n` };
  }
  async setRemoteDescription(d: { sdp: string }) {
    this.remote.push(d.sdp);
  }
  async addIceCandidate(c: RtcIceCandidateInit) {
    this.added.push(c);
  }
  close() {}
}

const answerer = (input: Partial<RtcInput> = {}) =>
  new RtcPeer(
    { label: 'b', role: 'answerer', remoteOffer: OFFER, holdRemoteCandidates: true, ...input },
    { RTCPeerConnection: RecordingPc as unknown as RtcActorInit['RTCPeerConnection'] },
  );

const HELD = [
  { candidate: 'candidate:1 1 udp 2122194687 127.0.0.1 50000 typ host', sdpMLineIndex: 0, sdpMid: 'data' },
  { candidate: 'candidate:2 1 udp 2122267903 ::1 50001 typ host', sdpMLineIndex: 0, sdpMid: 'data' },
];

describe('rtc actor: holdRemoteCandidates', () => {
  it('applies the offer without its candidates and adds them at rtc.releaseCandidates', async () => {
    const b = answerer();
    await b.waitFor('rtc.description');
    const pc = RecordingPc.last;
    expect(pc.remote).toHaveLength(1);
    expect(candidateLines(pc.remote[0]!)).toEqual([]);
    expect(pc.remote[0]).not.toContain('end-of-candidates');
    expect(pc.remote[0]).toContain('a=sctp-port:5000');
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

  it('drops the held candidates when ICE connected before the release (the offerer reached us)', async () => {
    const b = answerer();
    await b.waitFor('rtc.description');
    RecordingPc.last.iceConnectionState = 'connected';
    b.send({ type: 'rtc.releaseCandidates' });
    await delay(10);
    expect(RecordingPc.last.added).toEqual([]);
  });

  it('without it, the offer is applied as received', async () => {
    const b = answerer({ holdRemoteCandidates: false });
    await b.waitFor('rtc.description');
    expect(RecordingPc.last.remote).toEqual([OFFER]);
    b.send({ type: 'rtc.releaseCandidates' });
    await delay(10);
    expect(RecordingPc.last.added).toEqual([]);
  });

  it('werift: an answerer that never gets the candidates connects through the offerer’s checks', async () => {
    const init: RtcActorInit = { RTCPeerConnection, config: WERIFT_LOOPBACK };
    const a = new RtcPeer({ label: 'a', role: 'offerer' }, init);
    const offer = await a.waitFor('rtc.description');
    expect(candidateLines(offer.description.sdp).length).toBeGreaterThan(0);
    const b = new RtcPeer(
      { label: 'b', role: 'answerer', remoteOffer: offer.description.sdp, holdRemoteCandidates: true },
      init,
    );
    const answer = await b.waitFor('rtc.description');
    // As in CloudLink, the offerer gets the answer later than it was made.
    await delay(50);
    a.send({ type: 'rtc.remoteDescription', description: answer.description });
    const [ta, tb] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
    b.send({ type: 'rtc.releaseCandidates' });
    const heard = new Promise((resolve) => ta.transport.on('message', resolve));
    tb.transport.send('through a peer-reflexive pair');
    expect(await heard).toBe('through a peer-reflexive pair');
    expect(b.of('rtc.failed')).toEqual([]);
  });
});
