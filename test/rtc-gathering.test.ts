import { RTCPeerConnection } from 'werift';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { RtcActorInit, RtcEventListener, RtcInput } from '../src/rtc/index.js';
import { RtcPeer, WERIFT_LOOPBACK, candidateLines, delay, stopPeers } from './rtc-helpers.js';

// Non-trickle descriptions: when the rtc actor stops waiting for ICE gathering.

afterEach(async () => {
  vi.useRealTimers();
  stopPeers();
  await delay(50);
});

const BASE_SDP = 'v=0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:0\r\n';
const HOST = 'candidate:1 1 udp 2122194687 127.0.0.1 50000 typ host';
const HOST_V6 = 'candidate:2 1 udp 2122267903 ::1 50001 typ host';
const SRFLX = 'candidate:3 1 udp 1686052607 203.0.113.7 50002 typ srflx raddr 127.0.0.1 rport 50000';

/**
 * A fake connection whose ICE gathering is driven by the test: `gather()`
 * adds a candidate to the local description and fires `icecandidate`, as a
 * browser does; gathering completes only when `complete()` is called.
 */
class GatheringPc {
  static last: GatheringPc;
  connectionState = 'new';
  iceGatheringState = 'new';
  localDescription: { type: string; sdp: string } | null = null;
  private readonly handlers = new Map<string, Set<RtcEventListener>>();
  readonly channel = {
    label: 'x',
    readyState: 'connecting',
    bufferedAmount: 0,
    bufferedAmountLowThreshold: 0,
    addEventListener() {},
    removeEventListener() {},
    send() {},
    close() {},
  };
  constructor(readonly config: unknown) {
    GatheringPc.last = this;
  }
  addEventListener(type: string, listener: RtcEventListener) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type)!.add(listener);
  }
  removeEventListener(type: string, listener: RtcEventListener) {
    this.handlers.get(type)?.delete(listener);
  }
  private dispatch(type: string, event: unknown = {}) {
    for (const listener of [...(this.handlers.get(type) ?? [])]) listener(event);
  }
  createDataChannel() {
    return this.channel;
  }
  async createOffer() {
    return { type: 'offer', sdp: BASE_SDP };
  }
  async createAnswer() {
    return { type: 'answer', sdp: BASE_SDP };
  }
  async setLocalDescription(d?: { type: string; sdp?: string }) {
    this.localDescription = { type: d!.type, sdp: d!.sdp! };
    this.iceGatheringState = 'gathering';
    this.dispatch('icegatheringstatechange');
  }
  async setRemoteDescription() {}
  async addIceCandidate() {}
  close() {}
  gather(candidate: string) {
    this.localDescription!.sdp += `a=${candidate}\r\n`;
    this.dispatch('icecandidate', { candidate: { candidate, sdpMid: '0', sdpMLineIndex: 0 } });
  }
  complete() {
    this.iceGatheringState = 'complete';
    this.dispatch('icegatheringstatechange');
    this.dispatch('icecandidate', { candidate: null });
  }
}

const fake = (init: Partial<RtcActorInit> = {}) =>
  new RtcPeer(
    { label: 'a', role: 'offerer' },
    {
      RTCPeerConnection: GatheringPc as unknown as RtcActorInit['RTCPeerConnection'],
      trickle: false,
      ...init,
    },
  );

/** Lets the actor's promise chain (createOffer, setLocalDescription) run. */
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe('rtc actor, non-trickle: ending ICE gathering early', () => {
  it('reports the offer gatheringQuietPeriod after the last candidate, without waiting for gathering to complete', async () => {
    vi.useFakeTimers();
    const a = fake({ gatheringQuietPeriod: 20 });
    await settle();
    const pc = GatheringPc.last;
    pc.gather(HOST);
    await vi.advanceTimersByTimeAsync(15);
    // A new candidate within the quiet period starts it again.
    pc.gather(HOST_V6);
    await vi.advanceTimersByTimeAsync(15);
    expect(a.of('rtc.description')).toEqual([]);
    await vi.advanceTimersByTimeAsync(5);
    const [offer] = a.of('rtc.description');
    expect(offer?.description.type).toBe('offer');
    expect(candidateLines(offer!.description.sdp)).toEqual([`a=${HOST}`, `a=${HOST_V6}`]);
    expect(pc.iceGatheringState).toBe('gathering');
    // Completing later does not report a second description.
    pc.gather(SRFLX);
    pc.complete();
    await vi.advanceTimersByTimeAsync(100);
    expect(a.of('rtc.description')).toHaveLength(1);
  });

  it('by default the quiet period is 5 ms', async () => {
    vi.useFakeTimers();
    const a = fake();
    await settle();
    GatheringPc.last.gather(HOST);
    await vi.advanceTimersByTimeAsync(4);
    expect(a.of('rtc.description')).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.of('rtc.description')).toHaveLength(1);
  });

  it('does not end before the description lists a candidate: without one it waits for gatheringTimeout', async () => {
    vi.useFakeTimers();
    const a = fake({ gatheringQuietPeriod: 20, gatheringTimeout: 1000 });
    await settle();
    await vi.advanceTimersByTimeAsync(999);
    expect(a.of('rtc.description')).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.of('rtc.description')).toHaveLength(1);
  });

  it('with a STUN server configured, waits for a server-reflexive candidate before the quiet period counts', async () => {
    vi.useFakeTimers();
    const a = fake({ gatheringQuietPeriod: 20, config: { iceServers: [{ urls: ['stun:stun.invalid:3478'] }] } });
    await settle();
    const pc = GatheringPc.last;
    pc.gather(HOST);
    await vi.advanceTimersByTimeAsync(500);
    expect(a.of('rtc.description')).toEqual([]);
    pc.gather(SRFLX);
    await vi.advanceTimersByTimeAsync(20);
    const [offer] = a.of('rtc.description');
    expect(candidateLines(offer!.description.sdp)).toEqual([`a=${HOST}`, `a=${SRFLX}`]);
  });

  it('with a TURN server configured, waits for a relay candidate (up to gatheringTimeout)', async () => {
    vi.useFakeTimers();
    const a = fake({
      gatheringQuietPeriod: 20,
      gatheringTimeout: 3000,
      config: { iceServers: [{ urls: 'turn:turn.invalid:3478', username: 'u', credential: 'c' }] },
    });
    await settle();
    GatheringPc.last.gather(HOST);
    GatheringPc.last.gather(SRFLX);
    await vi.advanceTimersByTimeAsync(2999);
    expect(a.of('rtc.description')).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.of('rtc.description')).toHaveLength(1);
  });

  it('gatheringQuietPeriod: Infinity waits for gathering to complete', async () => {
    vi.useFakeTimers();
    const a = fake({ gatheringQuietPeriod: Infinity });
    await settle();
    const pc = GatheringPc.last;
    pc.gather(HOST);
    await vi.advanceTimersByTimeAsync(1000);
    expect(a.of('rtc.description')).toEqual([]);
    pc.gather(HOST_V6);
    pc.complete();
    await settle();
    const [offer] = a.of('rtc.description');
    expect(candidateLines(offer!.description.sdp)).toEqual([`a=${HOST}`, `a=${HOST_V6}`]);
  });

  it('the answerer ends early too', async () => {
    vi.useFakeTimers();
    const b = new RtcPeer(
      { label: 'b', role: 'answerer', remoteOffer: BASE_SDP },
      {
        RTCPeerConnection: GatheringPc as unknown as RtcActorInit['RTCPeerConnection'],
        gatheringQuietPeriod: 10,
      },
    );
    await settle();
    GatheringPc.last.gather(HOST);
    await vi.advanceTimersByTimeAsync(10);
    const [answer] = b.of('rtc.description');
    expect(answer?.description.type).toBe('answer');
    expect(candidateLines(answer!.description.sdp)).toEqual([`a=${HOST}`]);
  });

  it('stopping during the quiet period clears its timer', async () => {
    vi.useFakeTimers();
    const a = fake({ gatheringQuietPeriod: 20 });
    await settle();
    GatheringPc.last.gather(HOST);
    expect(vi.getTimerCount()).toBe(2); // gatheringTimeout and the quiet period
    a.stop();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses a negative or non-numeric gatheringQuietPeriod', () => {
    expect(() => fake({ gatheringQuietPeriod: -1 })).toThrow(RangeError);
    expect(() => fake({ gatheringQuietPeriod: Number.NaN })).toThrow(/gatheringQuietPeriod/);
  });
});

/**
 * werift, except that its ICE gathering never reports completion: no
 * `complete` state, no end-of-candidates event. Only the early end can
 * report its description.
 */
class NeverCompletingPc extends RTCPeerConnection {
  constructor(config?: ConstructorParameters<typeof RTCPeerConnection>[0]) {
    super(config);
    // werift's addEventListener is an instance field, so it is wrapped here rather than overridden.
    const add = this.addEventListener;
    this.addEventListener = (type, listener, options) => {
      if (type === 'icegatheringstatechange') return;
      if (type === 'icecandidate') {
        add(type, (event: { candidate?: unknown }) => event?.candidate && listener(event), options);
        return;
      }
      add(type, listener, options);
    };
  }
  override get iceGatheringState(): 'complete' | 'new' | 'gathering' {
    return 'gathering';
  }
}

describe('rtc actor, non-trickle: an early description is enough to connect (werift)', () => {
  it('offer and answer both end early, and the data channel opens', async () => {
    const init: RtcActorInit = {
      RTCPeerConnection: NeverCompletingPc,
      config: WERIFT_LOOPBACK,
      trickle: false,
      gatheringQuietPeriod: 20,
      // Far beyond the test's timeout: only the early end can report.
      gatheringTimeout: 600_000,
    };
    const input = (label: string, role: RtcInput['role']): RtcInput => ({ label, role });
    const a = new RtcPeer(input('a', 'offerer'), init);
    const b = new RtcPeer(input('b', 'answerer'), init);
    a.forwardTo(b);
    b.forwardTo(a);
    const [offer, answer] = await Promise.all([a.waitFor('rtc.description'), b.waitFor('rtc.description')]);
    expect(candidateLines(offer.description.sdp).length).toBeGreaterThan(0);
    expect(candidateLines(answer.description.sdp).length).toBeGreaterThan(0);
    const [ta, tb] = await Promise.all([a.waitFor('rtc.open'), b.waitFor('rtc.open')]);
    const heard = new Promise((resolve) => tb.transport.on('message', resolve));
    ta.transport.send('over an early description');
    expect(await heard).toBe('over an early description');
  });
});
