import { RTCPeerConnection, type RTCDataChannel } from 'werift';
import { afterEach, describe, expect, it } from 'vitest';
import { sendWithBackpressure } from '../src/backpressure.js';
import { ErrorCode, TransportError } from '../src/errors.js';
import { dataChannelTransport, type DataChannelTransportInit } from '../src/rtc/index.js';
import { WERIFT_LOOPBACK, checkBackpressure, dataChannelCompliance, dataChannelPair, opened } from './rtc-helpers.js';
import { nextEvent } from './transport-compliance.js';

/** Two werift peer connections joined by one open, ordered data channel, wrapped as transports. */
async function weriftPair(init: DataChannelTransportInit = {}) {
  const pcA = new RTCPeerConnection(WERIFT_LOOPBACK);
  const pcB = new RTCPeerConnection(WERIFT_LOOPBACK);
  const teardown = async () => {
    await Promise.allSettled([pcA.close(), pcB.close()]);
  };
  return dataChannelPair(
    pcA,
    pcB,
    teardown,
    async () => {
      const channelA = pcA.createDataChannel('test', { ordered: true });
      const channelB = new Promise<RTCDataChannel>((resolve) =>
        pcB.addEventListener('datachannel', (event: { channel: RTCDataChannel }) => resolve(event.channel)),
      );
      // werift resolves setLocalDescription after gathering: the SDPs carry every candidate.
      await pcA.setLocalDescription(await pcA.createOffer());
      await pcB.setRemoteDescription({ type: 'offer', sdp: pcA.localDescription!.sdp });
      await pcB.setLocalDescription(await pcB.createAnswer());
      await pcA.setRemoteDescription({ type: 'answer', sdp: pcB.localDescription!.sdp });
      const b = await channelB;
      await Promise.all([opened(channelA), opened(b)]);
      return { channelA, channelB: b };
    },
    init,
  );
}

dataChannelCompliance('werift data channel', () => weriftPair());

describe('dataChannelTransport', () => {
  let cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(cleanup.map((fn) => fn()));
    cleanup = [];
  });

  const pair = async (init?: DataChannelTransportInit) => {
    const p = await weriftPair(init);
    cleanup.push(async () => {
      p.a.close();
      p.b.close();
      await p.teardown();
    });
    return p;
  };

  it('refuses a channel that is not open yet, with a message that says what to do', async () => {
    const pc = new RTCPeerConnection(WERIFT_LOOPBACK);
    cleanup.push(() => pc.close());
    const channel = pc.createDataChannel('early');
    expect(() => dataChannelTransport(channel)).toThrow(/open data channel.*'open' event/);
  });

  it('sets bufferedAmountLowThreshold to the low-water mark', async () => {
    const { channelA, channelB } = await pair({ lowWaterMark: 1234, highWaterMark: 5000 });
    expect(channelA.bufferedAmountLowThreshold).toBe(1234);
    expect(channelB.bufferedAmountLowThreshold).toBe(1234);
  });

  it('delivers werift Buffers as plain Uint8Arrays', async () => {
    const { a, b } = await pair();
    const received = nextEvent(b, 'message');
    a.send(Uint8Array.of(1, 2, 3));
    const frame = await received;
    expect(frame).toBeInstanceOf(Uint8Array);
    expect(Buffer.isBuffer(frame)).toBe(false);
    expect(frame).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('reports a remote close as code 1000, initiator remote', async () => {
    const { a, b } = await pair();
    const closed = nextEvent(b, 'close');
    a.close(4000, 'not carried');
    expect(await closed).toEqual({ code: 1000, reason: '', initiator: 'remote' });
  });

  it('reports 1006 when the channel closes after its peer connection failed', async () => {
    const { b, channelB } = await pair();
    const failedPc = { connectionState: 'failed' };
    // Re-wrap the open channel with a connection that reports 'failed', then close it from our side of werift.
    const wrapped = dataChannelTransport(channelB, { peerConnection: failedPc });
    const closed = nextEvent(wrapped, 'close');
    channelB.close();
    expect(await closed).toMatchObject({ code: 1006, initiator: 'remote' });
    b.close();
  });
});

describe('sendWithBackpressure over werift', () => {
  it('sends 4 MiB in 16 KiB chunks without letting bufferedAmount exceed the high-water mark plus one chunk', async () => {
    await checkBackpressure(await weriftPair(), 4 * 1024 * 1024);
  });

  it('keeps call order for sends that are not awaited one by one', async () => {
    const { a, b, teardown } = await weriftPair();
    try {
      const count = 64;
      const frames: string[] = [];
      const all = new Promise<void>((resolve) =>
        b.on('message', (frame) => {
          frames.push((frame as string).slice(0, 8));
          if (frames.length === count) resolve();
        }),
      );
      const sends = Array.from({ length: count }, (_, i) =>
        sendWithBackpressure(a, String(i).padStart(8, '0') + 'x'.repeat(32 * 1024), 64 * 1024),
      );
      await Promise.all(sends);
      await all;
      expect(frames).toEqual(Array.from({ length: count }, (_, i) => String(i).padStart(8, '0')));
    } finally {
      a.close();
      b.close();
      await teardown();
    }
  });

  it('rejects with ERR_TRANSPORT_CLOSED when the transport closes while waiting, and when already closed', async () => {
    const { a, b, teardown } = await weriftPair();
    try {
      const big = new Uint8Array(64 * 1024);
      // Fill past a tiny high-water mark so that the next send has to wait.
      a.send(big);
      a.send(big);
      const waiting = sendWithBackpressure(a, big, 1024);
      a.close();
      const error = await waiting.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TransportError);
      expect((error as TransportError).code).toBe(ErrorCode.TransportClosed);
      await expect(sendWithBackpressure(a, 'late')).rejects.toMatchObject({ code: ErrorCode.TransportClosed });
    } finally {
      b.close();
      await teardown();
    }
  });

  it('does not hang when the transport drains for a higher mark than ours (falls back to re-checking)', async () => {
    // The transport only emits drain above 256 KiB; we ask for 32 KiB.
    const { a, b, teardown } = await weriftPair({ highWaterMark: 256 * 1024 });
    try {
      let bytes = 0;
      const total = 512 * 1024;
      const done = new Promise<void>((resolve) =>
        b.on('message', (frame) => {
          bytes += (frame as Uint8Array).byteLength;
          if (bytes >= total) resolve();
        }),
      );
      for (let sent = 0; sent < total; sent += 16 * 1024) {
        await sendWithBackpressure(a, new Uint8Array(16 * 1024), 32 * 1024);
      }
      await done;
      expect(bytes).toBe(total);
    } finally {
      a.close();
      b.close();
      await teardown();
    }
  });
});

describe('empty frames over werift', () => {
  it('delivers empty text and binary frames in order without stalling the channel (werift workaround)', async () => {
    const { a, b, teardown } = await weriftPair();
    try {
      const frames: Array<string | number[]> = [];
      const all = new Promise<void>((resolve) =>
        b.on('message', (frame) => {
          frames.push(typeof frame === 'string' ? frame : Array.from(frame));
          if (frames.length === 5) resolve();
        }),
      );
      a.send('');
      a.send(new Uint8Array(0));
      a.send('x');
      a.send(Uint8Array.of(1));
      a.send('');
      await all;
      expect(frames).toEqual(['', [], 'x', [1], '']);
      expect(a.bufferedAmount).toBe(0);
    } finally {
      a.close();
      b.close();
      await teardown();
    }
  });
});
