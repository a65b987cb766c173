/**
 * workrooms wire fidelity: frames as other implementations of the protocol
 * send them (a description as SDP text or `{ type, sdp }`, a candidate as an
 * init, a line or `null`, extra keys in `detail`) go through the real
 * `signalbox serve` stack on 127.0.0.1 exactly as sent, but for `peerid`
 * (the sender, stamped by the server); and a `createWorkroomsClient` makes a
 * working call with a hand-driven client that speaks the other form, with
 * werift on loopback.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import { createWorkroomsClient, type WorkroomsClient } from '../machines/workrooms/client.js';
import type { ClientEmitted } from '../machines/workrooms/client.machine.js';
import type { Transport } from '../src/transport.js';
import { WERIFT_LOOPBACK } from './rtc-helpers.js';
import { until } from './socket-helpers.js';
import { placeCall, workroomsSocketTestbed, type Frame, type RawClient, type Testbed } from './workrooms-helpers.js';

const SDP =
  'v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sctp-port:5000\r\n';
const LINE = 'candidate:842163049 1 udp 1677729535 127.0.0.1 50000 typ srflx raddr 0.0.0.0 rport 0 generation 0';

/**
 * One frame as another implementation sends it: `from` the caller (`a`) or
 * the callee (`b`), with `detail` minus `callid` and `peerid`, which the
 * table fills in (the recipient's sessionid, as the protocol says).
 */
interface Fixture {
  name: string;
  from: 'a' | 'b';
  type: 'offer' | 'answer' | 'ice';
  detail: Record<string, unknown>;
}

const fixtures: Fixture[] = [
  { name: 'an offer with SDP text', from: 'a', type: 'offer', detail: { sdp: SDP } },
  {
    name: 'an offer as JSON.stringify(pc.localDescription)',
    from: 'a',
    type: 'offer',
    detail: { sdp: { type: 'offer', sdp: SDP } },
  },
  { name: 'an answer with SDP text', from: 'b', type: 'answer', detail: { sdp: SDP } },
  {
    name: 'an answer as { type, sdp }',
    from: 'b',
    type: 'answer',
    detail: { sdp: { type: 'answer', sdp: SDP } },
  },
  {
    name: 'an offer whose description carries keys of its own',
    from: 'b',
    type: 'offer',
    detail: { sdp: { type: 'offer', sdp: SDP, iceRestart: true } },
  },
  {
    name: 'ice with a full RTCIceCandidateInit',
    from: 'a',
    type: 'ice',
    detail: { candidate: { candidate: LINE, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: 'Xq7f' } },
  },
  {
    name: 'ice as RTCIceCandidate.toJSON() with null fields',
    from: 'b',
    type: 'ice',
    detail: { candidate: { candidate: LINE, sdpMid: null, sdpMLineIndex: null, usernameFragment: null } },
  },
  { name: 'ice with the candidate line alone', from: 'a', type: 'ice', detail: { candidate: LINE } },
  { name: 'ice with null (the end of candidates)', from: 'b', type: 'ice', detail: { candidate: null } },
  { name: 'ice with an empty line (the end of candidates)', from: 'a', type: 'ice', detail: { candidate: '' } },
  {
    name: 'an offer with extra keys in detail',
    from: 'a',
    type: 'offer',
    detail: { sdp: SDP, from: 'ada', seq: 3, meta: { renegotiation: false, tags: ['x', 1, null] } },
  },
  {
    name: 'ice with extra keys in detail and inside the candidate',
    from: 'b',
    type: 'ice',
    detail: { candidate: { candidate: LINE, sdpMid: '0', foundation: '842163049' }, ts: 1733472000000 },
  },
  {
    name: 'an answer whose sdp is some other JSON (the receiver judges it)',
    from: 'b',
    type: 'answer',
    detail: { sdp: [SDP] },
  },
];

/** The next text frame `transport` receives, as the bytes it was sent. */
function nextText(transport: Transport, ms = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no frame within ${ms} ms`)), ms);
    const off = transport.on('message', (frame) => {
      off();
      clearTimeout(timer);
      resolve(frame as string);
    });
  });
}

describe('workrooms wire fixtures over the real server: relayed as sent', () => {
  let bed: Testbed;
  let a: RawClient;
  let b: RawClient;
  let callid: string;
  beforeAll(async () => {
    bed = await workroomsSocketTestbed();
    [a, b] = [await bed.join(), await bed.join()];
    callid = await placeCall(a, b);
  });
  afterAll(() => bed.close());

  for (const fixture of fixtures) {
    it(`relays ${fixture.name}`, async () => {
      const [sender, receiver] = fixture.from === 'a' ? [a, b] : [b, a];
      const detail = { callid, peerid: receiver.sessionid, ...fixture.detail };
      const text = nextText(receiver.transport);
      sender.send({ type: fixture.type, detail });
      // Only `peerid` changes: it names the sender now. Keys keep their order.
      const expected = { type: fixture.type, detail: { ...detail, peerid: sender.sessionid } };
      expect(JSON.parse(await text)).toEqual(expected);
      expect(await text).toBe(JSON.stringify(expected));
      expect(await receiver.next()).toEqual(expected);
      expect(sender.inbox).toEqual([]);
    });
  }

  it('relays a frame written by hand (spaces, other key order) JSON-equal', async () => {
    const text = nextText(b.transport);
    a.send(`{ "detail": { "candidate": null, "peerid": "${b.sessionid}", "callid": "${callid}" },\n  "type": "ice" }`);
    expect(JSON.parse(await text)).toEqual({
      type: 'ice',
      detail: { candidate: null, peerid: a.sessionid, callid },
    });
    await b.next();
  });

  it('still routes only within the call: the same frames to a stranger are refused', async () => {
    const stranger = await bed.join();
    for (const fixture of fixtures) {
      stranger.send({ type: fixture.type, detail: { callid, peerid: a.sessionid, ...fixture.detail } });
      expect(await stranger.next()).toEqual({
        type: 'error',
        detail: {
          code: 'ERR_NOT_PERMITTED',
          message: `${fixture.type}: you have no call ${callid}`,
          event: fixture.type,
        },
      });
    }
    expect(a.inbox).toEqual([]);
    expect(b.inbox).toEqual([]);
    stranger.transport.close();
  });
});

type Detail<T extends ClientEmitted['type']> = Extract<ClientEmitted, { type: T }>['detail'];

function next<T extends ClientEmitted['type']>(client: WorkroomsClient, type: T, ms = 10_000): Promise<Detail<T>> {
  return new Promise<Detail<T>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${type} within ${ms} ms`)), ms);
    client.addEventListener(
      type,
      (event) => {
        clearTimeout(timer);
        (resolve as (value: unknown) => void)((event as CustomEvent).detail);
      },
      { once: true },
    );
  });
}

/**
 * The other side of a call, written as another implementation would be: a
 * werift peer connection that sends its descriptions as SDP text and its
 * candidates as lines (then `null`), and reads what our client sends. It
 * records every relay it receives, so the test can check the form.
 */
function stringFormPeer(raw: RawClient, callid: string, peerid: string) {
  const pc = new RTCPeerConnection(WERIFT_LOOPBACK);
  const received: Frame[] = [];
  const sent: Array<{ type: string; body: Record<string, unknown> }> = [];
  const send = (type: string, body: Record<string, unknown>) => {
    sent.push({ type, body });
    raw.send({ type, detail: { callid, peerid, ...body } });
  };
  // Lines as they are gathered, then null once, as a browser app forwards its icecandidate events.
  let ended = false;
  const end = () => {
    if (!ended) send('ice', { candidate: null });
    ended = true;
  };
  pc.onicecandidate = ({ candidate }) =>
    candidate?.candidate ? send('ice', { candidate: candidate.candidate }) : end();
  pc.iceGatheringStateChange.subscribe((state) => state === 'complete' && end());
  let stop!: () => void;
  const stopped = new Promise<undefined>((resolve) => (stop = () => resolve(undefined)));
  const pump = (async () => {
    for (;;) {
      const frame = await Promise.race([raw.next(15_000).catch(() => undefined), stopped]);
      if (!frame) return;
      received.push(frame);
      const detail = frame.detail ?? {};
      if (frame.type === 'offer') {
        await pc.setRemoteDescription(detail.sdp as { type: 'offer'; sdp: string });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        send('answer', { sdp: answer.sdp });
      } else if (frame.type === 'answer') {
        await pc.setRemoteDescription(detail.sdp as { type: 'answer'; sdp: string });
      } else if (frame.type === 'ice') {
        await pc.addIceCandidate(detail.candidate as { candidate: string });
      }
    }
  })();
  return {
    pc,
    received,
    sent,
    async offer() {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      send('offer', { sdp: offer.sdp });
    },
    async close() {
      stop();
      raw.transport.close();
      await pump;
      await pc.close();
    },
  };
}

/** Resolves with the first message on a werift data channel. */
function firstMessage(channel: RTCDataChannel) {
  return new Promise<string>((resolve) => channel.onMessage.subscribe((data) => resolve(data.toString())));
}

describe('a signalbox client and a client that speaks the other form (werift, loopback)', () => {
  let bed: Testbed;
  let client: WorkroomsClient;
  let errors: unknown[];
  beforeAll(async () => {
    bed = await workroomsSocketTestbed();
  });
  afterEach(async () => {
    await client?.leave();
  });
  afterAll(async () => {
    await bed.close();
    // werift closes its sockets asynchronously.
    await new Promise((resolve) => setTimeout(resolve, 100));
  });

  const ours = async () => {
    errors = [];
    client = createWorkroomsClient({
      connect: () => bed.connect().then((raw) => raw.transport),
      rtc: { RTCPeerConnection, config: WERIFT_LOOPBACK },
    });
    client.addEventListener('error', (e) => errors.push(e.detail));
    await next(client, 'registered');
    return client;
  };

  it('calls it: sends { type, sdp } and RTCIceCandidateInit, takes SDP text, candidate lines and null back', async () => {
    const raw = await bed.join();
    const us = await ours();
    us.call(raw.sessionid);
    const inbound = await raw.next();
    expect(inbound.type).toBe('inboundcall');
    const callid = inbound.detail!.callid as string;
    const connected = next(us, 'connected');
    const peer = stringFormPeer(raw, callid, us.sessionid);
    const channel = new Promise<RTCDataChannel>((resolve) => peer.pc.onDataChannel.subscribe(resolve));
    const { transport } = await connected;
    const theirs = await channel;
    await until(() => peer.sent.some((s) => s.type === 'ice' && s.body.candidate === null));
    expect(peer.sent.filter((s) => s.type === 'ice').map((s) => typeof s.body.candidate)).toContain('string');
    const heard = firstMessage(theirs);
    transport.send('hello from signalbox');
    expect(await heard).toBe('hello from signalbox');
    const back = new Promise((resolve) => transport.on('message', resolve));
    theirs.send('hello back');
    expect(await back).toBe('hello back');

    const offer = peer.received.find((f) => f.type === 'offer')!;
    expect(offer.detail!.sdp).toEqual({ type: 'offer', sdp: expect.stringContaining('v=0') });
    const ice = peer.received.filter((f) => f.type === 'ice');
    expect(ice.length).toBeGreaterThan(0);
    for (const frame of ice)
      expect(frame.detail!.candidate).toEqual(expect.objectContaining({ candidate: expect.any(String) }));
    expect(errors).toEqual([]);
    await peer.close();
  });

  it('is called by it: answers an offer of SDP text and its candidate lines', async () => {
    const raw = await bed.join();
    const us = await ours();
    raw.send({ type: 'call', detail: { to: us.sessionid } });
    const outbound = await raw.next();
    expect(outbound.type).toBe('outboundcall');
    const callid = outbound.detail!.callid as string;
    const connected = next(us, 'connected');
    const peer = stringFormPeer(raw, callid, us.sessionid);
    const theirs = peer.pc.createDataChannel('workrooms');
    await peer.offer();
    const { transport } = await connected;
    const heard = new Promise((resolve) => transport.on('message', resolve));
    await new Promise<void>((resolve) =>
      theirs.readyState === 'open' ? resolve() : theirs.stateChanged.subscribe((s) => s === 'open' && resolve()),
    );
    theirs.send('hello from the other form');
    expect(await heard).toBe('hello from the other form');
    await until(() => peer.sent.some((s) => s.type === 'ice' && s.body.candidate === null));
    expect(us.calls().map((call) => call.info.callid)).toEqual([callid]);

    const answer = peer.received.find((f) => f.type === 'answer')!;
    expect(answer.detail!.sdp).toEqual({ type: 'answer', sdp: expect.stringContaining('v=0') });
    expect(errors).toEqual([]);
    await peer.close();
  });

  it('ends the call, naming the field, when that client sends a description it cannot read', async () => {
    const raw = await bed.join();
    const us = await ours();
    const inbound = next(us, 'inboundcall');
    raw.send({ type: 'call', detail: { to: us.sessionid } });
    const callid = (await raw.next()).detail!.callid as string;
    await inbound;
    const hangup = next(us, 'hangup');
    const error = next(us, 'error');
    raw.send({ type: 'offer', detail: { callid, peerid: us.sessionid, sdp: { type: 'answer', sdp: SDP } } });
    expect(await error).toEqual({
      code: 'ERR_INVALID_FIELD',
      message: `offer: \`detail.sdp.type\` is "answer", expected "offer"; call ${callid} ended`,
      event: 'offer',
    });
    expect(await hangup).toEqual({ callid, sessionid: raw.sessionid, reason: 'failed' });
    // The server heard it too: the other side gets the hangup.
    expect(await raw.next()).toEqual({
      type: 'hangup',
      detail: { calls: [{ callid, sessionid: us.sessionid }] },
    });
    expect(us.calls()).toEqual([]);
    raw.transport.close();
  });
});
